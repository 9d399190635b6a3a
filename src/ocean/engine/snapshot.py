"""Snapshots: the whole state at one seq, written in the background, loaded at open.

A snapshot is ``snapshot-<seq>.snap``: JSON lines -- a header, then one line per
entity, counter, event and history entry, then a trailer with the line count
and a CRC-32 of everything before it. It is written to a temporary name,
fsynced and renamed, so a crash never leaves a half snapshot under the real name.
"""
from __future__ import annotations

import json
import os
import zlib

from ..errors import CorruptLog
from .entities import Entity
from .events import EventLog
from .files import fsync_dir, list_numbered, numbered_name

FORMAT = 1
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def snapshot_name(seq: int) -> str:
    return numbered_name("snapshot-", seq, ".snap")


def list_snapshots(path: str) -> list[tuple[int, str]]:
    return list_numbered(path, "snapshot-", ".snap")


def capture(state, seq: int, meta: dict) -> dict:
    """A consistent view of ``state`` at ``seq``; cheap enough to take under the write lock.

    PERF: entity records and event lists are never mutated in place (copy on write,
    append-only), so shallow copies suffice; only counters are exported value by value.
    """
    return {
        "seq": seq,
        "meta": meta,
        "entities": {route: dict(table) for route, table in state.entities.routes.items()},
        "counters": state.counters.export(),
        "events": {route: (log.items, len(log.items)) for route, log in state.events.items()},
        "history": {k: tuple(h) for k, h in state.entities.history.items()},
    }


def write(path: str, view: dict) -> str:
    """Write a captured view to disk atomically; returns the file name."""
    name = snapshot_name(view["seq"])
    tmp = os.path.join(path, name + ".tmp")
    crc, count = 0, 0
    try:
        with open(tmp, "wb") as f:
            def emit(obj):
                nonlocal crc, count
                line = _dumps(obj).encode("utf-8") + b"\n"
                crc = zlib.crc32(line, crc)
                count += 1
                f.write(line)
            emit({"format": FORMAT, "seq": view["seq"], **view["meta"]})
            for route, table in view["entities"].items():
                for key, ent in table.items():
                    emit(["E", route, key, ent.to_row()])
            for route, key, field, value in view["counters"]:
                emit(["C", route, key, field, value])
            for route, (items, n) in view["events"].items():
                for i in range(n):
                    emit(["V", route, *items[i]])
            for (route, key), entries in view["history"].items():
                emit(["H", route, key, [list(e) for e in entries]])
            f.write(_dumps({"end": True, "lines": count, "crc": crc}).encode("utf-8") + b"\n")
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _remove(tmp)  # a failed write (disk full, I/O error) leaves no half file behind
        raise
    os.replace(tmp, os.path.join(path, name))
    fsync_dir(path)
    return name


def remove_debris(path: str) -> list[str]:
    """Delete half-written snapshot files a crash left behind; returns their names."""
    gone = [n for n in os.listdir(path) if n.startswith("snapshot-") and n.endswith(".snap.tmp")]
    for name in gone:
        _remove(os.path.join(path, name))
    return gone


def _remove(full: str) -> None:
    try:
        os.unlink(full)
    except OSError:
        pass


def load(path: str, name: str, state) -> dict:
    """Fill ``state`` from one snapshot file; returns its header. Damage raises CorruptLog."""
    full = os.path.join(path, name)
    crc, count, header, trailer = 0, 0, None, None
    events: dict[str, list] = {}
    try:
        with open(full, "rb") as f:
            for raw in f:
                if trailer is not None:
                    raise ValueError("data after the trailer")
                obj = json.loads(raw)
                if isinstance(obj, dict) and obj.get("end"):
                    trailer = obj
                    continue
                crc = zlib.crc32(raw, crc)
                count += 1
                if header is None:
                    header = obj
                    continue
                tag = obj[0]
                if tag == "E":
                    state.entities.put(obj[1], obj[2], Entity.from_row(obj[3]))
                elif tag == "C":
                    state.counters.set(obj[1], obj[2], obj[3], obj[4])
                elif tag == "V":
                    events.setdefault(obj[1], []).append(tuple(obj[2:]))
                elif tag == "H":
                    for entry in obj[3]:
                        state.entities.record(obj[1], obj[2], *entry)
    except (ValueError, IndexError, TypeError, KeyError) as exc:
        raise _damaged(full, f"unreadable line {count + 1}: {exc}") from None
    if header is None or trailer is None or trailer.get("lines") != count or trailer.get("crc") != crc:
        raise _damaged(full, "missing trailer or checksum mismatch")
    for route, items in events.items():
        state.events[route] = EventLog(items)
        state.event_count += len(items)
    return header


def _damaged(full: str, what: str) -> CorruptLog:
    return CorruptLog(f"the snapshot {full} is damaged ({what}). Restore the data directory from a "
                      f"backup; if an older snapshot-*.snap and every wal-*.log after it are present, "
                      f"moving this file away lets ocean open from those.")
