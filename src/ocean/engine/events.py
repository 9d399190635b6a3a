"""Per-route event logs: sealed column chunks plus an open tail; paging by seq, ``keep`` and retention.

An event is the row ``(seq, ms, payload, expires_ms, source)``. New events go to the open
``tail`` (a list of those rows: appending is as cheap as it was); every ``ROWS`` rows the tail
is sealed into an immutable ``Chunk`` (chunks.py), typed numpy columns. ``chunks`` is a tuple
and is replaced, never edited; a sealed tail list is never appended to again and a trimmed one
is replaced: so a ``View`` (the chunks, the tail and its length at one moment) stays the log
as it was then, however long a snapshot, a forked child or an export takes to read it.
"""
from __future__ import annotations

import bisect
import gc
import operator
from typing import NamedTuple

import numpy as np

from .chunks import Chunk

# PERF: the events take 17 B each in a sealed chunk and ~390 B in the open tail (a tuple
# and a dict); 16,384 rows per chunk bound the tail to ~6 MB per route and a seal (a pause of
# the writer) to ~13 ms (0.8 us a row; 8,192: 4 ms, 0.5 us; 65,536: 64 ms, 1.0 us), and the
# bytes per sealed event are the same at all three. The garbage collector is paused while
# sealing: a collection that started mid-seal walked the whole heap, and seals cost 3.5 us a row
# in a real ingest (ingest 100k/s against 140k/s before chunks; paused: 137k/s, CPU time, 300k
# events). bench/load/event_memory.py at 1M events: 31.5 B/event of RSS growth (392 B before
# chunks), a snapshot in 0.14 s (2.80 s), reopening in 0.02 s and +17 MB (3.09 s, +460 MB);
# at 10M: +185 MB live, reopened in 0.23 s and +173 MB.
ROWS = 16384
PAGE = 4096  # rows decoded at a time when a reader walks the log
MEMO_LIMIT = 1 << 16  # shared strings (field names, sources, values) kept per route
_SEQ = operator.itemgetter(0)


class View(NamedTuple):
    """The log at one moment: read it at leisure (nothing it holds changes)."""
    chunks: tuple
    tail: list
    ntail: int

    def rows(self, page: int = PAGE):
        """Every row (expired ones not yet purged included), oldest first, decoded ``page`` at a time."""
        for chunk in self.chunks:
            for lo in range(0, chunk.n, page):
                yield from chunk.rows(lo, min(chunk.n, lo + page))
        yield from self.tail[:self.ntail]


class EventLog:
    """The events of one route, oldest first."""

    __slots__ = ("parts", "count", "expiring", "memo")

    def __init__(self, chunks=(), tail=None):
        # ``(chunks, tail)`` in one attribute, replaced in one step: a reader on another thread
        # never sees a sealed chunk's rows twice (old tail + new chunk) or not at all
        self.parts: tuple[tuple, list] = (tuple(c for c in chunks if c.live), list(tail or ()))
        self.memo: dict = {}
        self.count = sum(c.live for c in self.chunks) + len(self.tail)
        self.expiring = sum(c.expiring for c in self.chunks) + sum(1 for e in self.tail if e[3])

    @classmethod
    def load(cls, chunks: list, rows: list, memo: dict | None = None) -> EventLog:
        """A log of loaded ``chunks`` then ``rows`` (oldest first): a snapshot's open tail, or every
        event of a format-1 snapshot, sealed ``ROWS`` at a time; ``memo``: the chunks' shared strings."""
        log = cls(chunks)
        log.memo = memo if memo is not None else {}
        full = len(rows) - len(rows) % ROWS
        log.parts = (log.chunks + tuple(Chunk.seal(rows[i:i + ROWS], log.memo) for i in range(0, full, ROWS)),
                     list(rows[full:]))
        log.count = sum(c.live for c in log.chunks) + len(log.tail)
        log.expiring = sum(c.expiring for c in log.chunks) + sum(1 for e in log.tail if e[3])
        return log

    def append(self, event: tuple) -> None:
        tail = self.parts[1]
        tail.append(event)
        self.count += 1
        if event[3]:
            self.expiring += 1
        if len(tail) >= ROWS:
            self.seal()

    def seal(self) -> None:
        """Turn the open tail into a chunk (the old tail list is left as it is, for views)."""
        chunks, tail = self.parts
        if tail:
            if len(self.memo) > MEMO_LIMIT:
                self.memo = {}
            paused = gc.isenabled()
            gc.disable()  # PERF: see ROWS; sealing makes no cycles, and a collection mid-seal walked the heap
            try:
                chunk = Chunk.seal(tail, self.memo)
            finally:
                if paused:
                    gc.enable()
            self.parts = (chunks + (chunk,), [])

    @property
    def chunks(self) -> tuple:
        return self.parts[0]

    @property
    def tail(self) -> list:
        return self.parts[1]

    def view(self) -> View:
        chunks, tail = self.parts
        return View(chunks, tail, len(tail))

    def __len__(self) -> int:
        return self.count

    # -- reading ---------------------------------------------------------------
    def newest(self, limit: int, before: int | None, now_ms: int) -> list[tuple]:
        """Up to ``limit`` live events with seq < ``before``, newest first."""
        out: list = []
        if limit <= 0:
            return out
        chunks, tail = self.parts
        end = len(tail) if before is None else bisect.bisect_left(tail, before, key=_SEQ)
        i = end - 1
        while i >= 0 and len(out) < limit:
            e = tail[i]
            if not e[3] or e[3] > now_ms:
                out.append(e)
            i -= 1
        for chunk in reversed(chunks):
            if len(out) >= limit:
                break
            hi = chunk.n if before is None else chunk.index(before)
            while hi > 0 and len(out) < limit:
                lo = max(0, hi - max(limit - len(out), 16))
                rows = chunk.rows(lo, hi)
                for e in reversed(rows):
                    if not e[3] or e[3] > now_ms:
                        out.append(e)
                        if len(out) >= limit:
                            break
                hi = lo
        return out

    def live(self, now_ms: int):
        """Live events, oldest first (the log as it is now, read lazily)."""
        rows = self.view().rows()
        if not self.expiring:
            return rows
        return (e for e in rows if not e[3] or e[3] > now_ms)

    def after(self, seq: int, limit: int) -> list[tuple]:
        """Up to ``limit`` rows with a seq > ``seq``, oldest first (expired ones not yet purged included)."""
        out: list = []
        chunks, tail = self.parts
        for chunk in chunks:
            if chunk.last_seq <= seq:
                continue
            lo = chunk.index(seq + 1)
            while lo < chunk.n and len(out) < limit:
                hi = min(chunk.n, lo + limit - len(out))
                out += chunk.rows(lo, hi)
                lo = hi
            if len(out) >= limit:
                return out
        i = bisect.bisect_right(tail, seq, key=_SEQ)
        out += tail[i:i + limit - len(out)]
        return out

    # -- removing ----------------------------------------------------------------
    def trim(self, retention: int, now_ms: int) -> list[int]:
        """Drop expired events and the oldest beyond ``retention``; returns the dropped seqs."""
        dropped: list = []
        chunks, tail = self.parts
        chunks = list(chunks)
        if self.expiring:
            kept = []
            for chunk in chunks:
                if chunk.expiring:
                    hit = (chunk.expires != 0) & (chunk.expires <= now_ms) & chunk.alive()
                    if hit.any():
                        dropped += chunk.seqs()[hit].tolist()
                        chunk = chunk.without(hit)
                        if not chunk.live:
                            chunk = None
                        elif chunk.live < chunk.n // 2:  # mostly removed: rebuild it small
                            chunk = Chunk.seal(chunk.rows(0, chunk.n), self.memo)
                if chunk is not None:
                    kept.append(chunk)
            chunks = kept
            if any(e[3] and e[3] <= now_ms for e in tail):
                dropped += [e[0] for e in tail if e[3] and e[3] <= now_ms]
                tail = [e for e in tail if not e[3] or e[3] > now_ms]
        count = self.count - len(dropped)
        extra = count - retention if retention else 0
        if extra > 0:
            while chunks and extra >= chunks[0].live:
                first = chunks.pop(0)
                dropped += first.seqs()[first.alive()].tolist()
                extra -= first.live
            if chunks and extra:
                first = chunks[0]
                alive = first.alive()
                cut = int(np.searchsorted(np.cumsum(alive), extra)) + 1  # rows holding ``extra`` live ones
                dropped += first.seqs()[:cut][alive[:cut]].tolist()
                chunks[0] = first.cut(cut)
                extra = 0
            if extra:
                dropped += [e[0] for e in tail[:extra]]
                tail = tail[extra:]
        if not dropped:
            return []
        dropped.sort()
        self.parts = (tuple(chunks), tail)
        self.count -= len(dropped)
        self.expiring = sum(c.expiring for c in self.chunks) + sum(1 for e in self.tail if e[3])
        return dropped

    def nbytes(self) -> int:
        """Bytes of the sealed columns' arrays."""
        return sum(c.nbytes() for c in self.chunks)
