"""The entity store: current plain fields of each (route, key), version history, expiry.

Records are immutable once stored (copy on write): a snapshot can take a
shallow copy of the tables under the write lock and serialise it later while
writes go on. Counters live apart, in the counter table (``counters.py``).
"""
from __future__ import annotations

import heapq
from collections import deque

from ..kernels import kernel


# One entity's stored state: a compiled record (``_writer.pxi``; twin in ``_reference``).
Entity = kernel("Entity")


class EntityTable:
    """(route, key) -> Entity, with key order per route, bounded history and an expiry heap."""

    def __init__(self, history_limit: int):
        self.routes: dict[str, dict[str, Entity]] = {}
        self.history: dict[tuple[str, str], deque] = {}
        self.history_limit = history_limit
        self._sorted: dict[str, list[str]] = {}
        self._expiring: list[tuple[int, str, str]] = []
        self.count = 0

    def get(self, route: str, key: str) -> Entity | None:
        table = self.routes.get(route)
        return None if table is None else table.get(key)

    def put(self, route: str, key: str, ent: Entity) -> None:
        table = self.routes.get(route)
        if table is None:
            table = self.routes[route] = {}
        if key not in table:
            self.count += 1
            self._sorted.pop(route, None)
        table[key] = ent
        if ent.expires_ms:
            heapq.heappush(self._expiring, (ent.expires_ms, route, key))

    def added(self, route: str) -> None:
        """The compiled writer put a new key (no expiry) into ``routes[route]`` itself (``_writer.pxi``)."""
        self.count += 1
        self._sorted.pop(route, None)

    def delete(self, route: str, key: str) -> Entity | None:
        table = self.routes.get(route)
        ent = table.pop(key, None) if table else None
        if ent is not None:
            self.count -= 1
            self._sorted.pop(route, None)
            if not table:
                del self.routes[route]
        return ent

    def record(self, route: str, key: str, version: int, seq: int, ms: int, op: str, payload) -> None:
        """Remember one past version for ``history``."""
        if self.history_limit <= 0:
            return
        h = self.history.get((route, key))
        if h is None:
            h = self.history[(route, key)] = deque(maxlen=self.history_limit)
        h.append((version, seq, ms, op, payload))

    def sorted_keys(self, route: str) -> list[str]:
        keys = self._sorted.get(route)
        if keys is None:
            keys = self._sorted[route] = sorted(self.routes.get(route, ()))
        return keys

    def due(self, now_ms: int) -> list[tuple[str, str]]:
        """Pop (route, key) pairs whose expiry time has passed and whose record still expires then."""
        out = []
        while self._expiring and self._expiring[0][0] <= now_ms:
            expires, route, key = heapq.heappop(self._expiring)
            ent = self.get(route, key)
            if ent is not None and ent.expires_ms == expires:
                out.append((route, key))
        return out
