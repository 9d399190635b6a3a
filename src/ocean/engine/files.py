"""The data directory's numbered files (``wal-<seq>.log``, ``snapshot-<seq>.snap``) and directory fsync."""
from __future__ import annotations

import os


def numbered_name(prefix: str, seq: int, suffix: str) -> str:
    """``<prefix><seq, 20 digits><suffix>``: names sort in seq order."""
    return f"{prefix}{seq:020d}{suffix}"


def list_numbered(path: str, prefix: str, suffix: str) -> list[tuple[int, str]]:
    """``(seq, filename)`` of every ``<prefix><seq><suffix>`` file in ``path``, lowest seq first."""
    out = []
    for name in os.listdir(path):
        if name.startswith(prefix) and name.endswith(suffix):
            digits = name[len(prefix):len(name) - len(suffix)]
            if digits.isdigit():
                out.append((int(digits), name))
    return sorted(out)


def fsync_dir(path: str) -> None:
    """Make renames, creations and deletions in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
