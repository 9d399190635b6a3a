"""The write-ahead log: framed, checksummed records in segment files, with an fsync policy.

Framing: every record is ``<u32 length><u32 crc32(body)><body>`` (little endian);
the body is one op encoded by ``ops.encode``. A segment is ``wal-<first seq>.log``;
``rotate()`` starts a new one so a snapshot can drop the old ones.

Durability: ``append`` puts the record in the OS (``os.write``) before it returns,
so a killed process loses nothing acknowledged. ``fsync``:

* ``always``   -- ``sync_to(ticket)`` fsyncs before the caller answers; writers that
  arrive while one fsync runs share the next one (group commit).
* ``everysec`` -- a background flusher fsyncs about once a second (``flush_due``).
* ``no``       -- the OS decides.

A failing write is cut back (``ftruncate``) so no half record stays in the middle of
the log, and raises ``StorageError``; the next append tries again.
"""
from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib

from ..errors import CorruptLog, StorageError
from .files import fsync_dir, list_numbered, numbered_name

log = logging.getLogger("ocean.wal")

HEADER = struct.Struct("<II")
MAX_RECORD = 256 << 20  # larger lengths can only be damage


def segment_name(first_seq: int) -> str:
    return numbered_name("wal-", first_seq, ".log")


def list_segments(path: str) -> list[tuple[int, str]]:
    """``(first_seq, filename)`` of every segment in ``path``, oldest first."""
    return list_numbered(path, "wal-", ".log")


def read_segment(path: str, last: bool) -> tuple[list[bytes], int]:
    """Read every record body of one segment; returns ``(bodies, good_length)``.

    A damaged record at the very end of the last segment is a torn write: it is
    reported by a ``good_length`` shorter than the file (the caller cuts it off).
    Damage anywhere else raises ``CorruptLog`` naming the file and offset.
    """
    with open(path, "rb") as f:
        data = f.read()
    bodies, pos, size = [], 0, len(data)
    while pos < size:
        bad = _bad_record(data, pos)
        if bad is None:
            n = HEADER.unpack_from(data, pos)[0]
            bodies.append(data[pos + 8: pos + 8 + n])
            pos += 8 + n
            continue
        if last and not _any_record_after(data, pos + 1):
            log.warning("ocean: %s: cut off a torn record at byte %d (%d bytes, %s); "
                        "it was never acknowledged", path, pos, size - pos, bad)
            return bodies, pos
        raise CorruptLog(
            f"the log file {path} is damaged at byte {pos} ({bad}) and records follow it. "
            f"ocean will not guess. Restore the data directory from a backup, or, to keep "
            f"everything before the damage, truncate the file to {pos} bytes "
            f"(`truncate -s {pos} {path}`) and delete any later wal-*.log files."
        )
    return bodies, pos


def _bad_record(data: bytes, pos: int) -> str | None:
    """None if a whole valid record starts at ``pos``, else what is wrong."""
    if pos + 8 > len(data):
        return "header cut short"
    n, crc = HEADER.unpack_from(data, pos)
    if n == 0 or n > MAX_RECORD:
        return f"impossible length {n}"
    if pos + 8 + n > len(data):
        return "body cut short"
    if zlib.crc32(data[pos + 8: pos + 8 + n]) != crc:
        return "checksum mismatch"
    return None


def _any_record_after(data: bytes, start: int) -> bool:
    """True if a valid record starts anywhere at or after ``start`` (damage, not a torn tail)."""
    for pos in range(start, len(data) - 8):
        if data[pos + 8: pos + 9] in (b"[", b"{") and _bad_record(data, pos) is None:
            return True
    return False


class WriteAheadLog:
    """Appends op records to the current segment; fsyncs by policy; rotates for snapshots."""

    def __init__(self, path: str, fsync: str, first_seq: int, offload=None):
        self.path = path
        self.policy = fsync
        self._offload = offload or (lambda fn, *a: fn(*a))
        self._sync_lock = threading.Lock()
        self._fd = -1
        self.segment = ""
        self.size = 0            # bytes in the current segment
        self.older_bytes = 0     # bytes in older segments still on disk
        self.appended = 0        # records appended since open (tickets)
        self.synced = 0          # records known to be on disk
        self.fsyncs = 0
        self.fsync_seconds = 0.0
        self.last_fsync_ms = 0.0
        self._open_segment(first_seq, existing=True)

    # -- segments --------------------------------------------------------
    def _open_segment(self, first_seq: int, existing: bool) -> None:
        segs = list_segments(self.path)
        if existing and segs:
            first_seq, name = segs[-1]
            self.older_bytes = sum(os.path.getsize(os.path.join(self.path, n)) for _, n in segs[:-1])
        else:
            name = segment_name(first_seq)
        fd = os.open(os.path.join(self.path, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self.segment = fd, name
        self.size = os.fstat(fd).st_size
        fsync_dir(self.path)

    def rotate(self, next_seq: int) -> str:
        """Start a new segment for records from ``next_seq`` on; returns the old segment's name.

        Called under the engine's write lock, so no append races it.
        """
        old = self.segment
        self._fsync_now()
        self.older_bytes += self.size
        self._open_segment(next_seq, existing=False)
        return old

    def drop_segments_before(self, name: str) -> None:
        """Delete segments older than ``name`` (a snapshot now covers them)."""
        for _, seg in list_segments(self.path):
            if seg >= name:
                break
            full = os.path.join(self.path, seg)
            self.older_bytes -= os.path.getsize(full)
            os.unlink(full)
        fsync_dir(self.path)

    # -- writing ---------------------------------------------------------
    def append(self, body: bytes) -> int:
        """Write one record into the OS; returns its ticket for ``sync_to``."""
        return self._append_records(HEADER.pack(len(body), zlib.crc32(body)) + body, 1)

    def append_many(self, bodies: list[bytes]) -> int:
        """Write several records with one system call; returns the last one's ticket."""
        pack, crc = HEADER.pack, zlib.crc32
        return self._append_records(b"".join([pack(len(b), crc(b)) + b for b in bodies]), len(bodies))

    def _append_records(self, record: bytes, count: int) -> int:
        try:
            written = self._write(record)
            if written != len(record):
                raise OSError(f"short write ({written} of {len(record)} bytes)")
        except OSError as exc:
            self._cut_back()
            raise StorageError(f"ocean could not write its log ({exc.strerror or exc}); "
                               f"nothing was acknowledged") from None
        self.size += len(record)
        self.appended += count
        return self.appended

    def _write(self, record: bytes) -> int:
        """The one place bytes reach the log (tests inject disk faults here)."""
        return os.write(self._fd, record)

    def _cut_back(self) -> None:
        try:
            os.ftruncate(self._fd, self.size)
        except OSError:
            log.error("ocean: could not cut back a failed log write in %s", self.segment)

    def sync_to(self, ticket: int) -> None:
        """Return once record ``ticket`` is fsynced (group commit: one fsync serves many)."""
        if self.synced >= ticket:
            return
        with self._sync_lock:
            if self.synced >= ticket:   # another writer's fsync covered us
                return
            self._fsync_now()

    def flush_due(self) -> None:
        """The ``everysec`` flusher's step: fsync if anything was appended since the last one."""
        if self.synced < self.appended:
            with self._sync_lock:
                if self.synced < self.appended:
                    self._fsync_now()

    def _fsync_now(self) -> None:
        target = self.appended
        t0 = time.perf_counter()
        try:
            self._offload(self._fsync, self._fd)
        except OSError as exc:
            raise StorageError(f"ocean could not fsync its log ({exc.strerror or exc}); "
                               f"the write is not acknowledged") from None
        took = time.perf_counter() - t0
        self.fsyncs += 1
        self.fsync_seconds += took
        self.last_fsync_ms = took * 1000
        self.synced = max(self.synced, target)

    def _fsync(self, fd: int) -> None:
        """The one place the log is fsynced (tests inject faults here)."""
        os.fsync(fd)

    @property
    def bytes(self) -> int:
        return self.older_bytes + self.size

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self._fsync_now()
            finally:
                os.close(self._fd)
                self._fd = -1
