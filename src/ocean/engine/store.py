"""Storage behind one interface: ``Store``, and the embedded ``LocalStore``.

The engine validates, numbers (seq) and publishes writes; a store makes them
durable and applies them. ``LocalStore`` keeps the state in memory with a
write-ahead log and snapshots in one directory. The Redis store does not sit
here: there the numbering, applying and publishing all happen in Redis, in one
atomic call per write, so it stands beside ``Engine`` as a whole
(``ocean.redisstore.engine.RedisEngine``, with the same public methods).
"""
from __future__ import annotations

import abc
import fcntl
import json
import logging
import os
import threading
import time

from ..errors import BackupFailed, BackupRunning, CorruptLog, DataDirLocked, InvalidPayload, OceanError, PayloadTooLarge, StorageError
from ..kernels import kernel
from ..model import now_ms
from . import backup, bgsave, ops, snapshot
from .state import State
from .wal import WriteAheadLog, list_segments, read_segment

_replay = kernel("replay")  # compiled: binary incr records applied without a Python call each

log = logging.getLogger("ocean.store")


class Store(abc.ABC):
    """What the engine needs from storage."""

    state: State

    @abc.abstractmethod
    def open(self) -> int:
        """Load everything stored; returns the last seq."""

    @abc.abstractmethod
    def write(self, op: list, max_bytes: int):
        """Make ``op`` durable (per policy) and apply it; returns ``(result, published, ticket, size)``.

        ``size`` is the op's encoded length: what the bus counts against its replay byte cap.
        """

    @abc.abstractmethod
    def write_many(self, batch: list, max_bytes: int, first_seq: int, parsed: bool = False):
        """Number ops from ``first_seq`` (skipping refused ones), log them in one write, apply each;
        ``parsed``: the ops' data came from a JSON parser (``ops.encode_parsed`` may log them).

        Returns ``(outcomes, ticket)``: per op ``(result, published, size)`` or an ``OceanError``.
        """

    @abc.abstractmethod
    def extend_lease(self, upto: int) -> int:
        """Record durably that seqs up to ``upto`` may be in use (``lease`` never goes back); returns it."""

    @abc.abstractmethod
    def sync(self, ticket) -> None:
        """Return once the write with ``ticket`` is as durable as the policy promises."""

    @abc.abstractmethod
    def maintain(self, lock) -> None:
        """Periodic duties (flush, snapshot); called about once a second."""

    def abort_snapshot(self) -> None:
        """End a snapshot (or backup) being written in the background (the engine is closing)."""

    @abc.abstractmethod
    def backup(self, lock, dest: str | None) -> dict:
        """Write a consistent copy of the data to ``dest`` while writes go on; returns its summary."""

    @abc.abstractmethod
    def stats(self) -> dict:
        """Storage figures for /health and /metrics."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush, fsync and release the storage."""


class LocalStore(Store):
    """Memory + write-ahead log + snapshots in one data directory owned by one process."""

    def __init__(self, path: str, settings, offload=None, fork: bool = False):
        self.path = os.path.abspath(path)
        self.settings = settings
        self.offload = offload
        self.fork = bool(fork)  # snapshots and backups from a forked child (bgsave.py); the server's choice
        self._child: bgsave.Child | None = None  # the snapshot being written (bgsave.py)
        self._backup_child: bgsave.Child | None = None
        self._aborted = False
        self.snapshot_bytes = 0
        self.snapshots = 0
        self.state = State(settings.history_limit, settings.event_retention)
        self.wal: WriteAheadLog | None = None
        self.meta: dict = {}
        self.snapshot_seq = 0
        self.lease = 0  # the highest seq bus-only messages may have taken (logged, so never reused)
        # The newest seq written on a user route (not ``_admin/...``): where the user replay ring
        # starts after a restart, so a client resuming from it is not told of a gap that system
        # writes (request accounting) made. Snapshots store it; replay moves it on.
        self.user_seq = 0
        self._user_seq_source = lambda: self.user_seq
        self._since = 0  # records replayed since the snapshot, until the log is open
        self._seq_source = lambda: 0
        self.snapshot_seconds = 0.0
        self.snapshot_pause_ms = 0.0
        self._snapshotting = False
        self._backup_guard = threading.Lock()
        self.last_backup: dict | None = None
        self._lock_fd = -1

    # -- opening -----------------------------------------------------------
    def open(self) -> int:
        os.makedirs(self.path, exist_ok=True)
        self._take_directory()
        try:
            return self._load()
        except BaseException:
            self._release_directory()  # a directory that cannot be opened is not kept locked
            raise

    def _load(self) -> int:
        backup.refuse_incomplete(self.path)
        self.meta = self._load_meta()
        self.last_backup = backup.load_last(self.path)
        for name in snapshot.remove_debris(self.path):
            log.warning("ocean: removed %s, a snapshot a crash left half written", name)
        seq = 0
        snaps = snapshot.list_snapshots(self.path)
        if snaps:
            snap_seq, name = snaps[-1]
            header = snapshot.load(self.path, name, self.state)
            self.snapshot_seq = snap_seq
            seq = self.lease = max(snap_seq, header.get("lease", 0))
            self.user_seq = header.get("user_seq", snap_seq)  # older snapshots: assume the worst
        segments = list_segments(self.path)
        sizes: dict[str, int] = {}  # good length of each segment replayed
        for i, (first, name) in enumerate(segments):
            full = os.path.join(self.path, name)
            if first > seq + 1:
                raise CorruptLog(
                    f"the log is missing seqs {seq + 1}..{first - 1}: {full} starts at seq {first}, but the "
                    f"snapshot and the log before it end at seq {seq}. Files were deleted, or this directory "
                    f"was copied while ocean was running (a snapshot removed older files during the copy). "
                    f"Restore it from a backup (`ocean restore`; see docs/operations.md).")
            bodies, good = read_segment(full, last=i == len(segments) - 1)
            self._check_link(first, name, bodies, sizes)
            sizes[name] = good
            if good < os.path.getsize(full):
                with open(full, "r+b") as f:
                    f.truncate(good)
                    os.fsync(f.fileno())
            try:
                last, count, last_user = _replay(bodies, self.state.counters, self.state.entities.routes, self.snapshot_seq,
                                      self._replay_json, self._replay_op)
            except ValueError as exc:
                raise CorruptLog(f"the log file {full} holds a record that passed its checksum but is "
                                 f"not an op ({exc}); it was written by something other than this "
                                 f"version of ocean. Restore the data directory from a backup.") from None
            seq = max(seq, last)
            self.user_seq = max(self.user_seq, last_user)
            self._since += count
        self.wal = WriteAheadLog(self.path, self.settings.fsync, seq + 1, offload=self.offload)
        self.wal.log.since_snapshot = self._since
        return seq

    @property
    def since_snapshot(self) -> int:
        """Records logged since the last snapshot (the log's appender counts them)."""
        return self.wal.log.since_snapshot if self.wal is not None else self._since

    @since_snapshot.setter
    def since_snapshot(self, value: int) -> None:
        if self.wal is not None:
            self.wal.log.since_snapshot = value
        else:
            self._since = value

    def _replay_json(self, bodies: list) -> tuple[int, int, int]:
        """Replay a run of JSON records (one parser call); returns ``(last seq, count, last user
        seq)`` after the snapshot."""
        last = count = last_user = 0
        for op in ops.decode_many(bodies):
            if op[1] <= self.snapshot_seq:
                continue
            last, count = max(last, op[1]), count + 1
            if op[0] != ops.LEASE and not op[3].startswith("_"):
                last_user = max(last_user, op[1])
            self._replay_op(op)
        return last, count, last_user

    def _replay_op(self, op: list) -> None:
        if op[0] == ops.LEASE:
            self.lease = max(self.lease, op[1])
            return
        try:
            self.state.apply(op)
        except OceanError:
            pass  # it failed live too (same state), so it changed nothing then either

    def _take_directory(self) -> None:
        fd = os.open(os.path.join(self.path, "ocean.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise DataDirLocked(f"the data directory {self.path} is in use by another ocean engine "
                                f"or server; stop it, or point this one at another --data directory") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _release_directory(self) -> None:
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _load_meta(self) -> dict:
        full = os.path.join(self.path, "meta.json")
        if os.path.exists(full):
            with open(full, encoding="utf-8") as f:
                return json.load(f)
        meta = {"instance": os.urandom(8).hex(), "created_ms": time.time_ns() // 1_000_000, "format": 1}
        tmp = full + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, full)
        return meta

    # -- writing -----------------------------------------------------------
    @staticmethod
    def _encode(op: list, max_bytes: int, encode=ops.encode) -> bytes:
        try:
            body = encode(op)
        except (TypeError, ValueError) as exc:
            raise InvalidPayload(f"payload is not JSON data: {exc}") from None
        except RecursionError:
            raise InvalidPayload("payload is nested too deeply") from None
        if encode is not ops.encode and 2 * len(body) > max_bytes:
            # the limit counts ``ops.encode``'s bytes, which may write a float longer (1e+16, not 1e16)
            return LocalStore._encode(op, max_bytes)
        if len(body) > max_bytes and len(body) - len(ops.encode(op[:5] + [None] * 4)) > max_bytes:
            raise PayloadTooLarge(f"payload is over the {max_bytes}-byte limit (setting max_payload_bytes)")
        return body

    def write(self, op: list, max_bytes: int):
        body = self._encode(op, max_bytes)
        ticket = self.wal.append(body)
        try:
            result, published = self.state.apply(op)
        except OceanError as exc:
            exc.logged = True  # the engine must not reuse this op's seq
            raise
        return result, published, ticket, len(body)

    def write_many(self, batch: list, max_bytes: int, first_seq: int, parsed: bool = False):
        """Log ``batch`` (one append) and apply each op; ``parsed``: its data came from a JSON parser
        (``ops.encode_parsed``). Returns one outcome per op (``apply``'s and the record size, or
        the ``OceanError`` that refused it) and the log ticket."""
        outcomes, bodies, seq = [], [], first_seq
        check = self._encode
        encode = ops.encode_parsed if parsed else ops.encode
        half = max_bytes // 2
        for op in batch:
            op[1] = seq
            try:
                try:  # PERF: a record under half the limit passes ``_encode``'s checks as it is
                    body = encode(op)
                except (TypeError, ValueError, RecursionError):
                    body = None
                if body is None or len(body) > half:
                    body = check(op, max_bytes, encode)  # the whole rules, and their errors
            except OceanError as exc:
                op[1] = 0
                outcomes.append(exc)
                continue
            bodies.append(body)
            outcomes.append(len(body))  # the record's size until apply's outcome joins it
            seq += 1
        ticket = self.wal.append_many(bodies) if bodies else self.wal.appended
        apply = self.state.apply
        for i, op in enumerate(batch):
            size = outcomes[i]
            if type(size) is int:
                try:
                    outcomes[i] = (*apply(op), size)
                except OceanError as exc:
                    outcomes[i] = exc  # logged and refused: replay refuses it the same way
        return outcomes, ticket

    def extend_lease(self, upto: int) -> int:
        """Log that seqs up to ``upto`` may be handed to bus-only messages; returns ``upto``."""
        self.wal.append(ops.encode([ops.LEASE, upto, 0, None, None, None, None, 0, None]))
        self.lease = upto
        return upto

    def sync(self, ticket) -> None:
        if self.wal.policy == "always":
            self.wal.sync_to(ticket)

    # -- housekeeping --------------------------------------------------------
    def maintain(self, lock) -> None:
        if self.wal.policy == "everysec":
            try:
                self.wal.flush_due()
            except StorageError as exc:
                log.error("%s", exc)
        every = self.settings.snapshot_every
        if every and self.since_snapshot >= every and not self._snapshotting:
            self.snapshot(lock)

    def snapshot(self, lock) -> str:
        """Capture the state under ``lock``, write it outside, then drop the log it covers."""
        self._snapshotting = True
        try:
            t0 = time.perf_counter()
            if self.fork:
                return self._snapshot_forked(lock, t0)
            with lock:
                seq = self.last_seq
                old_segment = self._rotate(seq)
                view = snapshot.capture(self.state, seq, self._snapshot_meta())
                self.since_snapshot = 0
            self.snapshot_pause_ms = (time.perf_counter() - t0) * 1000
            run = self.offload or (lambda fn, *a: fn(*a))
            name = run(snapshot.write, self.path, view)
            self._snapshot_done(seq, name, t0)
            log.info("ocean: snapshot at seq %d (%s), write pause %.1f ms", seq, old_segment, self.snapshot_pause_ms)
            return name
        finally:
            self._snapshotting = False

    def _snapshot_forked(self, lock, t0: float) -> str | None:
        """Fork under ``lock`` (the child's image is the state at one seq), then wait without blocking.

        The wait polls the child with short sleeps (a greenlet switch under gevent), so
        requests keep flowing; the log it covers is dropped only once the child reported
        the snapshot renamed into place and fsynced. Returns None when aborted (closing).
        """
        with lock:
            seq = self.last_seq
            old_segment = self._rotate(seq)
            self._aborted = False
            child = self._child = bgsave.fork(self.path, self.state, seq, self._snapshot_meta())
            self.since_snapshot = 0
        self.snapshot_pause_ms = (time.perf_counter() - t0) * 1000
        try:
            try:
                name = self._wait(child)
            except OSError:
                snapshot.remove_debris(self.path)  # a child killed mid-write leaves its .tmp
                if self._aborted:
                    return None
                raise
        finally:
            self._child = None
        self._snapshot_done(seq, name, t0)
        log.info("ocean: snapshot at seq %d (%s) by child %d, fork pause %.1f ms, %.2f s", seq, old_segment,
                 child.pid, self.snapshot_pause_ms, self.snapshot_seconds)
        return name

    def _snapshot_done(self, seq: int, name: str, t0: float) -> None:
        """The snapshot ``name`` at ``seq`` is durable: drop the log and the snapshots it replaces."""
        if self.wal is not None:
            self.wal.drop_segments_before(self.wal.segment)
        for _, older in snapshot.list_snapshots(self.path):
            if older < name:
                os.unlink(os.path.join(self.path, older))
        self.snapshot_seq = seq
        self.snapshot_seconds = time.perf_counter() - t0
        self.snapshots += 1
        try:
            self.snapshot_bytes = os.path.getsize(os.path.join(self.path, name))
        except OSError:
            pass

    def abort_snapshot(self) -> None:
        for child in (self._child, self._backup_child):
            if child is not None:
                self._aborted = True
                child.kill()

    def backup(self, lock, dest: str | None) -> dict:
        """Capture the state under ``lock`` (the snapshot pause), write the backup outside it.

        ``dest``: a path (relative: inside the backup directory), or None for a new name
        there. One backup at a time; a second is refused with BackupRunning.
        """
        if not self._backup_guard.acquire(blocking=False):
            raise BackupRunning("a backup of this data directory is being written; wait for it to finish")
        try:
            home = backup.default_dir(self.path, self.settings.backup_dir)
            if dest:  # a bad destination fails before the pause
                backup.resolve(dest, self.path, home, 0, 0)
            else:
                backup.check_target(os.path.join(home, "ocean-new"), self.path)
            t0 = time.perf_counter()
            with lock:
                seq = self.last_seq
                # NOTE: a new segment starts a new generation of entity records: the compiled
                # increment path changes records of the current one in place, and the view
                # shares the records it captures (see Entity in _writer.pxi), as a snapshot's does.
                self._rotate(seq)
                if self.fork:  # a child writes it from its image of this instant (bgsave.py)
                    child = self._backup_child = bgsave.spawn(
                        lambda: self._write_backup(snapshot.capture(self.state, seq, self._snapshot_meta()),
                                                   dest, home, seq))
                else:
                    view = snapshot.capture(self.state, seq, self._snapshot_meta())
            pause_ms = (time.perf_counter() - t0) * 1000
            if self.fork:
                try:
                    doc = self._wait(child)
                except OSError as exc:  # killed (the engine closed), or failed outside ocean's errors
                    raise BackupFailed(f"the backup could not be written ({exc}); nothing was left as "
                                       f"complete") from None
                finally:
                    self._backup_child = None
            else:
                target = backup.resolve(dest, self.path, home, seq, now_ms())
                run = self.offload or (lambda fn, *a: fn(*a))
                doc = run(backup.write, view, dict(self.meta), self.path, target, os.path.dirname(target) == home)
            info = backup.summary(doc, pause_ms, time.perf_counter() - t0)
            self.last_backup = info
            try:
                backup.save_last(self.path, info)
            except OSError as exc:  # the backup is whole; only the note of it is lost
                log.warning("ocean: could not record the last backup in %s: %s", self.path, exc)
            log.info("ocean: backup at seq %d in %s (%d bytes, %.2f s, write pause %.1f ms)",
                     seq, doc["path"], info["bytes"], info["seconds"], pause_ms)
            return info
        finally:
            self._backup_guard.release()

    def _write_backup(self, view: dict, dest: str | None, home: str, seq: int) -> dict:
        """In the child: where (it needs the seq) and the backup itself."""
        target = backup.resolve(dest, self.path, home, seq, now_ms())
        return backup.write(view, dict(self.meta), self.path, target, os.path.dirname(target) == home)

    @staticmethod
    def _wait(child: bgsave.Child):
        """Poll ``child`` with short sleeps (a greenlet switch under gevent) until it ends; its result."""
        nap = 0.001
        while not child.poll():
            time.sleep(nap)
            nap = min(nap * 2, 0.05)
        return child.result()

    def _rotate(self, seq: int) -> str:
        """Start a new log segment (under the write lock); its first record names the segment before it.

        The link -- ``[lease, 0, ...]`` with ``{"prev": name, "bytes": size}`` as its body, which
        older versions replay as a no-op lease -- lets ``open`` tell a log that lost a segment,
        or holds one cut short (a copy taken while ocean ran), from a whole one.
        """
        old = self.wal.rotate(seq + 1)
        link = {"prev": old, "bytes": os.path.getsize(os.path.join(self.path, old))}
        try:
            self.wal.append(ops.encode([ops.LEASE, 0, 0, None, None, link, None, 0, None]))
        except StorageError as exc:  # no room: the segment goes unlinked (open then skips the check)
            log.warning("ocean: %s", exc)
        return old

    def _check_link(self, first: int, name: str, bodies: list, sizes: dict) -> None:
        """Refuse a segment whose predecessor is missing (and no snapshot covers it) or cut short."""
        if not bodies or bodies[0][:1] != b"[":
            return
        try:
            op = ops.decode(bodies[0])
        except ValueError:
            return
        link = op[5] if op[0] == ops.LEASE else None
        if not isinstance(link, dict) or not isinstance(link.get("prev"), str):
            return
        prev, size = link["prev"], link.get("bytes", 0)
        full = os.path.join(self.path, name)
        what = None
        if prev in sizes and sizes[prev] < size:
            what = f"{prev} ends at byte {sizes[prev]}, but when {name} began it was {size} bytes long"
        elif prev not in sizes and self.snapshot_seq < first - 1:
            what = f"{prev}, the segment before {name}, is missing and no snapshot covers it"
        if what:
            raise CorruptLog(
                f"the log in {self.path} is incomplete: {what}. Files were deleted, or the directory was "
                f"copied while ocean was running. Writes would be missing from the middle, so ocean will "
                f"not open it. Restore from a backup (`ocean restore`; see docs/operations.md). ({full})")

    def follow_seq(self, source, user_source=None) -> None:
        """Where the engine keeps its newest seq (``source()``); snapshots are taken at it.
        ``user_source()`` gives the newest seq published on a user route (see ``user_seq``)."""
        self._seq_source = source
        if user_source is not None:
            self._user_seq_source = user_source

    def _snapshot_meta(self) -> dict:
        """The header fields a snapshot (or backup) carries besides the state (under the write lock)."""
        return {**self.meta, "lease": self.lease, "user_seq": self._user_seq_source()}

    @property
    def last_seq(self) -> int:
        """The seq of the newest write (read from the engine, which hands seqs out)."""
        return self._seq_source()

    def stats(self) -> dict:
        wal = self.wal
        out = {
            "log_bytes": wal.bytes if wal else 0,
            "fsync": self.settings.fsync,
            "fsyncs": wal.fsyncs if wal else 0,
            "fsync_seconds_total": wal.fsync_seconds if wal else 0.0,
            "last_fsync_ms": wal.last_fsync_ms if wal else 0.0,
            "snapshot_seq": self.snapshot_seq,
            "records_since_snapshot": self.since_snapshot,
            "snapshot_pause_ms": self.snapshot_pause_ms,
            "snapshot_seconds": self.snapshot_seconds,
            "snapshot_bytes": self.snapshot_bytes,
            "snapshots": self.snapshots,
            "snapshot_running": int(self._snapshotting),
        }
        last = self.last_backup
        if last:
            out.update(backup_last_seq=last.get("seq", 0), backup_last_bytes=last.get("bytes", 0),
                       backup_last_unixtime=round(last.get("created_ms", 0) / 1000, 3),
                       backup_last_seconds=last.get("seconds", 0.0), backup_last_pause_ms=last.get("pause_ms", 0.0))
        return out

    def close(self) -> None:
        try:
            if self.wal is not None:
                self.wal.close()
        finally:
            self.wal = None
            self._release_directory()
