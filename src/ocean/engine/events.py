"""Per-route event logs: append-only, newest-first paging by seq, ``keep`` expiry and retention.

An event is the tuple ``(seq, ms, payload, expires_ms)``. Trimming builds a new
list rather than deleting in place, so a snapshot holding the old list keeps a
consistent view.
"""
from __future__ import annotations

import bisect


class EventLog:
    """The events of one route, oldest first."""

    __slots__ = ("items", "seqs", "expiring")

    def __init__(self, items=None):
        self.items: list[tuple] = list(items or ())
        self.seqs: list[int] = [e[0] for e in self.items]
        self.expiring = sum(1 for e in self.items if e[3])

    def append(self, event: tuple) -> None:
        self.items.append(event)
        self.seqs.append(event[0])
        if event[3]:
            self.expiring += 1

    def newest(self, limit: int, before: int | None, now_ms: int) -> list[tuple]:
        """Up to ``limit`` live events with seq < ``before``, newest first."""
        end = len(self.seqs) if before is None else bisect.bisect_left(self.seqs, before)
        out = []
        i = end - 1
        while i >= 0 and len(out) < limit:
            e = self.items[i]
            if not e[3] or e[3] > now_ms:
                out.append(e)
            i -= 1
        return out

    def live(self, now_ms: int):
        """Live events, oldest first."""
        if not self.expiring:
            return iter(self.items)
        return (e for e in self.items if not e[3] or e[3] > now_ms)

    def trim(self, retention: int, now_ms: int) -> list[int]:
        """Drop expired events and the oldest beyond ``retention``; returns the dropped seqs."""
        items = self.items
        if self.expiring:
            kept = [e for e in items if not e[3] or e[3] > now_ms]
        else:
            kept = items
        if retention and len(kept) > retention:
            kept = kept[len(kept) - retention:]
        if len(kept) == len(items):
            return []
        keep_seqs = {e[0] for e in kept} if self.expiring else None
        dropped = [e[0] for e in items if (e[0] not in keep_seqs if keep_seqs is not None else e[0] < kept[0][0])] \
            if kept else [e[0] for e in items]
        self.items = kept
        self.seqs = [e[0] for e in kept]
        self.expiring = sum(1 for e in kept if e[3])
        return dropped

    def __len__(self) -> int:
        return len(self.items)
