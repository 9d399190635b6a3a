"""The write-ahead log: framed, checksummed records in segment files, with an fsync policy.

Framing: every record is ``<u32 length><u32 crc32c(body)><body>`` (little endian;
older logs carry zlib's CRC-32, still accepted);
the body is one op: JSON from ``ops.encode``, or the binary incr record of the
compiled write path (see ``_log.pxi``). A segment is ``wal-<first seq>.log``;
``rotate()`` starts a new one so a snapshot can drop the old ones.

Durability: records are copied into the segment through a shared memory map
(``LogFile``), so they are in the OS page cache when ``append`` returns and a
killed process loses nothing acknowledged. Room is reserved ahead
(``_reserve``, posix_fallocate): a full disk fails the reservation, before any
byte of a record is written. Past the last record a segment holds zeros, which
replay treats as the end; a clean close cuts them off. ``fsync``:

* ``always``   -- ``sync_to(ticket)`` fsyncs before the caller answers; writers that
  arrive while one fsync runs share the next one (group commit).
* ``everysec`` -- a background flusher fsyncs about once a second (``flush_due``).
* ``no``       -- the OS decides.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time

from ..errors import CorruptLog, StorageError
from ..kernels import kernel
from .files import fsync_dir, list_numbered, numbered_name

log = logging.getLogger("ocean.wal")

LogFile = kernel("LogFile")
_scan_records = kernel("scan_records")
_fallocate = getattr(os, "posix_fallocate", None)
_BODY_START = re.compile(rb"[\[{I]")  # the first byte of every op body


def segment_name(first_seq: int) -> str:
    return numbered_name("wal-", first_seq, ".log")


def list_segments(path: str) -> list[tuple[int, str]]:
    """``(first_seq, filename)`` of every segment in ``path``, oldest first."""
    return list_numbered(path, "wal-", ".log")


def read_segment(path: str, last: bool) -> tuple[list[bytes], int]:
    """Read every record body of one segment; returns ``(bodies, good_length)``.

    Zero bytes after the last record are the log's reserved room: its clean end.
    A damaged record at the very end of the last segment is a torn write: it is
    reported by a ``good_length`` shorter than the records (the caller cuts it off).
    Damage anywhere else raises ``CorruptLog`` naming the file and offset.
    """
    with open(path, "rb") as f:
        data = f.read()
    bodies, pos, bad = _scan_records(data, 0)
    if bad is None:
        return bodies, pos
    if last and not _any_record_after(data, pos + 1):
        log.warning("ocean: %s: cut off a torn record at byte %d (%s); it was never acknowledged", path, pos, bad)
        return bodies, pos
    raise CorruptLog(
        f"the log file {path} is damaged at byte {pos} ({bad}) and records follow it. "
        f"ocean will not guess. Restore the data directory from a backup, or, to keep "
        f"everything before the damage, truncate the file to {pos} bytes "
        f"(`truncate -s {pos} {path}`) and delete any later wal-*.log files."
    )


def _any_record_after(data: bytes, start: int) -> bool:
    """True if a valid record starts anywhere at or after ``start`` (damage, not a torn tail)."""
    size = len(data)
    pos = start + 8
    while True:
        m = _BODY_START.search(data, pos)  # PERF: jumps over reserved room (zeros) in one step
        if m is None:
            return False
        at = m.start() - 8
        n = int.from_bytes(data[at:at + 4], "little")
        if 0 < n <= size - at - 8 and _scan_records(data[at:at + 8 + n], 0)[0]:
            return True
        pos = m.start() + 1


class WriteAheadLog:
    """Appends op records to the current segment; fsyncs by policy; rotates for snapshots."""

    def __init__(self, path: str, fsync: str, first_seq: int, offload=None):
        self.path = path
        self.policy = fsync
        self._offload = offload or (lambda fn, *a: fn(*a))
        self._sync_lock = threading.Lock()
        self._fd = -1
        self.segment = ""
        # the appender; it lives across segments (``_reserve`` is looked up per call, so tests can patch it)
        self.log = LogFile(-1, 0, lambda fd, length: self._reserve(fd, length))
        self.older_bytes = 0     # bytes in older segments still on disk
        self.synced = 0          # records known to be on disk (tickets, like ``appended``)
        self.fsyncs = 0
        self.fsync_seconds = 0.0
        self.last_fsync_ms = 0.0
        self._open_segment(first_seq, existing=True)

    @property
    def size(self) -> int:
        """Bytes of records in the current segment."""
        return self.log.size

    @property
    def appended(self) -> int:
        """Records appended since open (the tickets ``sync_to`` waits for)."""
        return self.log.appended

    # -- segments --------------------------------------------------------
    def _open_segment(self, first_seq: int, existing: bool) -> None:
        segs = list_segments(self.path)
        if existing and segs:
            first_seq, name = segs[-1]
            self.older_bytes = sum(os.path.getsize(os.path.join(self.path, n)) for _, n in segs[:-1])
        else:
            name = segment_name(first_seq)
        fd = os.open(os.path.join(self.path, name), os.O_RDWR | os.O_CREAT, 0o644)
        self.log.switch(fd, os.fstat(fd).st_size)  # the store cut the file to its records at open
        self._fd, self.segment = fd, name
        fsync_dir(self.path)

    def rotate(self, next_seq: int) -> str:
        """Start a new segment for records from ``next_seq`` on; returns the old segment's name.

        Called under the engine's write lock, so no append races it.
        """
        old, old_fd = self.segment, self._fd
        self.log.release_room()
        self._fsync_now()
        self.older_bytes += self.log.size
        self._open_segment(next_seq, existing=False)
        os.close(old_fd)
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
        """Put one record into the OS page cache; returns its ticket for ``sync_to``."""
        return self.log.append(body)

    def append_many(self, bodies: list[bytes]) -> int:
        """Append several records (all, or none if no room can be had); returns the last ticket."""
        return self.log.append_many(bodies)

    def _reserve(self, fd: int, length: int) -> None:
        """Make the segment ``length`` bytes long with its blocks allocated (the one place the log
        asks the disk for room; tests inject a full disk here). Raises OSError."""
        have = os.fstat(fd).st_size
        if length > have:
            if _fallocate is not None:
                _fallocate(fd, have, length - have)
            else:  # no posix_fallocate (macOS): a sparse file -- there a full disk is not refused
                os.ftruncate(fd, length)  # cleanly but kills the process at a write (SIGBUS)

    def release_room(self) -> None:
        """Cut the reserved room off the current segment (the next append reserves again)."""
        self.log.release_room()

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
        """The one place the log is fsynced (tests inject faults here). The records sit in the
        file's page cache through the shared map, so fsync of the file writes them."""
        os.fsync(fd)

    @property
    def bytes(self) -> int:
        return self.older_bytes + self.log.size

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self.log.release_room()
                self._fsync_now()
            finally:
                self.log.close()
                os.close(self._fd)
                self._fd = -1
