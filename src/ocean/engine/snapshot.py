"""Snapshots: the whole state at one seq, written in the background, loaded at open.

A snapshot is ``snapshot-<seq>.snap``: JSON lines -- a header, then per route its event
chunks, then one line per entity, counter and history entry, then a trailer with the line
count and a CRC-32 of everything before it. It is written to a temporary name, fsynced and
renamed, so a crash never leaves a half snapshot under the real name.

Format 2 (this one) writes a route's sealed chunks as a line ``["K", route, header, nbytes]``
(chunkio.py: the dictionaries, dtypes and row count) followed by ``nbytes`` of raw column data
and a newline each, then its open tail (at most ``events.ROWS`` rows) as one line
``["V", route, seq, ms, payload, expires, source]`` per event, which is how format 1 wrote every
event: its snapshots still load (old data directories open).
"""
from __future__ import annotations

import json
import os
import zlib

from ..errors import CorruptLog
from .entities import Entity
from .chunkio import from_parts, to_parts
from .events import EventLog
from . import sketches
from .files import fsync_dir, list_numbered, numbered_name

FORMAT = 2
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def snapshot_name(seq: int) -> str:
    return numbered_name("snapshot-", seq, ".snap")


def list_snapshots(path: str) -> list[tuple[int, str]]:
    return list_numbered(path, "snapshot-", ".snap")


def capture(state, seq: int, meta: dict) -> dict:
    """A consistent view of ``state`` at ``seq``; cheap enough to take under the write lock.

    PERF: entity records and event chunks are never mutated in place (copy on write,
    append-only), so shallow copies suffice; only counters are exported value by value.
    """
    return {
        "seq": seq,
        "meta": meta,
        "entities": {route: dict(table) for route, table in state.entities.routes.items()},
        "counters": state.counters.export(),
        "events": {route: log.view() for route, log in state.events.items()},
        "history": {k: tuple(h) for k, h in state.entities.history.items()},
        "sketches": state.sketches.capture(),
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
            # "format" is the data directory's (meta.json's, which overrides this one as it always
            # has); "snapshot" is this file's layout (absent: format 1)
            emit({"format": FORMAT, "seq": view["seq"], **view["meta"], "snapshot": FORMAT})
            for route, events in view["events"].items():
                for chunk in events.chunks:
                    header, bufs = to_parts(chunk)
                    size = sum(b.nbytes for b in bufs)
                    line = _dumps(["K", route, header, size]).encode("utf-8") + b"\n"
                    crc = zlib.crc32(line, crc)
                    count += 1
                    f.write(line)
                    for b in bufs:
                        crc = zlib.crc32(b, crc)
                        f.write(b)
                    crc = zlib.crc32(b"\n", crc)
                    f.write(b"\n")
                for i in range(events.ntail):  # the open tail: rows, as the log holds them
                    emit(["V", route, *events.tail[i]])
            for route, table in view["entities"].items():
                for key, ent in table.items():
                    emit(["E", route, key, ent.to_row()])
            for route, key, field, value in view["counters"]:
                emit(["C", route, key, field, value])
            for (route, key), entries in view["history"].items():
                emit(["H", route, key, [list(e) for e in entries]])
            write_sketches(emit, view.get("sketches", ()))
            f.write(_dumps({"end": True, "lines": count, "crc": crc}).encode("utf-8") + b"\n")
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _remove(tmp)  # a failed write (disk full, I/O error) leaves no half file behind
        raise
    os.replace(tmp, os.path.join(path, name))
    fsync_dir(path)
    return name


def write_sketches(emit, captured) -> None:
    """The sketch fields (uniq, dist), after the history: one line ``["S", route, key, field, kind,
    base64]`` each, holding the sketch's exact bytes (``to_bytes``). Snapshots written before
    sketches have no such line and load as they did."""
    for route, key, field, kind, sketch in captured:
        emit(["S", route, key, field, kind, sketches.encode(sketch)])


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


LOAD_BATCH = 4096  # lines parsed with one json.loads call


def load(path: str, name: str, state) -> dict:
    """Fill ``state`` from one snapshot file; returns its header. Damage raises CorruptLog.

    PERF: an event chunk loads as numpy views of the one bytes object read for it (no Python
    object per event): at 1M events reopening took 0.02 s against 2.9 s for format 1's line per
    event. Other lines are parsed ``LOAD_BATCH`` at a time as one JSON array (one parser call, and
    the parser's key memo is shared, so the rows of a batch share their field-name strings), and
    the events' ``source`` strings are shared: at 1M events, line-by-line loading of format 1 gave
    each event its own copies -- the worker held 1.56x the memory after a restart that it had before.
    """
    full = os.path.join(path, name)
    state_ = _Loading(state)
    try:
        with open(full, "rb") as f:
            batch = []
            for raw in f:
                if raw.startswith(b'["K",'):  # an event chunk: its header line, then its bytes
                    if batch:
                        state_.feed(batch)
                        batch = []
                    state_.chunk(raw, f)
                    continue
                batch.append(raw)
                if len(batch) >= LOAD_BATCH:
                    state_.feed(batch)
                    batch = []
            if batch:
                state_.feed(batch)
    except (ValueError, IndexError, TypeError, KeyError) as exc:
        raise _damaged(full, f"unreadable line {state_.count + 1}: {exc}") from None
    header, trailer, count, crc = state_.header, state_.trailer, state_.count, state_.crc
    if header is None or trailer is None or trailer.get("lines") != count or trailer.get("crc") != crc:
        raise _damaged(full, "missing trailer or checksum mismatch")
    for route in {**state_.chunks, **state_.events}:
        state.events[route] = log = EventLog.load(state_.chunks.get(route, []), state_.events.get(route, []),
                                                  state_._memos.get(route))
        state.event_count += len(log)
    return header


class _Loading:
    """The lines of one snapshot being read: checksum, header, trailer, and what they hold."""

    def __init__(self, state):
        self.state = state
        self.crc, self.count, self.header, self.trailer = 0, 0, None, None
        self.events: dict[str, list] = {}  # format 1: rows per route
        self.chunks: dict[str, list] = {}  # format 2: chunks per route
        self._memos: dict[str, dict] = {}  # per route: strings its chunks share
        self._sources: dict = {}
        # per route: each entity's key, so its counter, history and sketch lines (which come
        # after the entity lines) share the entity's key string instead of holding copies
        self._keys: dict[str, dict[str, str]] = {}

    def chunk(self, raw: bytes, f) -> None:
        """One event chunk: its header line ``raw``, then its bytes read from ``f``."""
        if self.trailer is not None or self.header is None:
            raise ValueError("an event chunk outside the snapshot's body")
        tag, route, header, size = json.loads(raw)
        blob = f.read(size + 1)
        if len(blob) != size + 1 or blob[-1:] != b"\n":
            raise ValueError(f"event chunk of {route!r} cut short")
        self.crc = zlib.crc32(blob, zlib.crc32(raw, self.crc))
        self.count += 1
        memo = self._memos.setdefault(route, {})
        self.chunks.setdefault(route, []).append(from_parts(header, memoryview(blob)[:size], memo))

    def feed(self, lines: list) -> None:
        try:
            objs = json.loads(b"[" + b",".join(lines) + b"]")
        except ValueError:
            objs = None
        if objs is None or len(objs) != len(lines):  # find the bad line (and its number) one by one
            for raw in lines:
                self._one(raw, json.loads(raw))
            return
        for raw, obj in zip(lines, objs):
            self._one(raw, obj)

    def _one(self, raw: bytes, obj) -> None:
        if self.trailer is not None:
            raise ValueError("data after the trailer")
        if isinstance(obj, dict) and obj.get("end"):
            self.trailer = obj
            return
        self.crc = zlib.crc32(raw, self.crc)
        self.count += 1
        if self.header is None:
            self.header = obj
            return
        tag = obj[0]
        state = self.state
        if tag == "V":
            route = obj[1]
            if len(obj) == 7 and type(obj[6]) is str:  # (seq, ms, payload, expires_ms, source)
                item = (obj[2], obj[3], obj[4], obj[5], self._sources.setdefault(obj[6], obj[6]))
            else:
                item = tuple(obj[2:])
            log = self.events.get(route)
            if log is None:
                log = self.events[route] = []
            log.append(item)
        elif tag == "E":
            keys = self._keys.get(obj[1])
            if keys is None:
                keys = self._keys[obj[1]] = {}
            key = keys.setdefault(obj[2], obj[2])
            state.entities.put(obj[1], key, Entity.from_row(obj[3]))
        elif tag == "C":
            state.counters.set(obj[1], self._key(obj[1], obj[2]), obj[3], obj[4])
        elif tag == "H":
            key = self._key(obj[1], obj[2])
            for entry in obj[3]:
                state.entities.record(obj[1], key, *entry)
        elif tag == "S":
            state.sketches.load(obj[1], self._key(obj[1], obj[2]), obj[3], obj[4], obj[5])

    def _key(self, route: str, key: str) -> str:
        keys = self._keys.get(route)
        return key if keys is None else keys.get(key, key)


def _damaged(full: str, what: str) -> CorruptLog:
    return CorruptLog(f"the snapshot {full} is damaged ({what}). Restore the data directory from a "
                      f"backup; if an older snapshot-*.snap and every wal-*.log after it are present, "
                      f"moving this file away lets ocean open from those.")
