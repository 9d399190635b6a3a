"""Pure twin of ``_counters.pxi``: sharded (route, key, field) -> int64 | float64 counters."""
from __future__ import annotations

import math
import threading

from ..errors import CounterOverflow, InvalidAmount

_MAX = (1 << 63) - 1
_MIN = -(1 << 63)


def _check(amount, field):
    t = type(amount)
    if t is int:
        if _MIN <= amount <= _MAX:
            return amount
        raise InvalidAmount(f"amount {amount} for {field!r} is outside the int64 range")
    if t is float:
        if math.isfinite(amount):
            return amount
        raise InvalidAmount(f"amount for {field!r} must be a finite number, got {amount}")
    raise InvalidAmount(f"amount for {field!r} must be a number, got {t.__name__}")


def _name(obj):
    if type(obj) is not str:
        raise TypeError(f"route, key and field must be str, got {type(obj).__name__}")
    return obj


def _added(old, amount, field):
    new = old + amount
    if type(new) is int and not (_MIN <= new <= _MAX):
        raise CounterOverflow.int64(field, old, amount)
    if type(new) is float and not math.isfinite(new):
        raise CounterOverflow.float64(field, old, amount)
    return new


class CounterTable:
    """Counters sharded by (route, key); one lock per shard, so an entity's fields change together."""

    def __init__(self, shards: int = 64):
        if shards < 1:
            raise ValueError("shards must be >= 1")
        self.shards = shards
        self._maps = [dict() for _ in range(shards)]
        self._locks = [threading.Lock() for _ in range(shards)]

    def _shard(self, route, key):
        _name(route)
        _name(key)
        return hash((route, key)) % self.shards

    def add(self, route: str, key: str, field: str, amount):
        """Add ``amount`` to one counter and return its new value."""
        return self.add_many(route, key, (field,), (amount,))[0]

    def add_many(self, route: str, key: str, fields, amounts) -> list:
        """Add to several counters of one entity atomically: all change, or (on error) none."""
        if len(fields) != len(amounts):
            raise ValueError("fields and amounts differ in length")
        checked = [_check(a, _name(f)) for f, a in zip(fields, amounts)]
        i = self._shard(route, key)
        if not checked:
            return []  # NOTE: no empty entity is stored (entity_count counts holders only)
        with self._locks[i]:
            ent = self._maps[i].get((route, key))
            staged = {}  # only the touched fields: the entity is not copied per call
            out = []
            for f, a in zip(fields, checked):
                old = staged[f] if f in staged else (ent.get(f, 0) if ent else 0)
                new = _added(old, a, f)
                staged[f] = new
                out.append(new)
            if ent is None:
                self._maps[i][(route, key)] = staged
            else:
                ent.update(staged)
            return out

    def set(self, route: str, key: str, field: str, value) -> None:
        """Set one counter to ``value`` (an int64 or finite float)."""
        value = _check(value, _name(field))
        i = self._shard(route, key)
        with self._locks[i]:
            self._maps[i].setdefault((route, key), {})[field] = value

    def get(self, route: str, key: str, field: str):
        """One counter's value, or None."""
        _name(field)
        i = self._shard(route, key)
        with self._locks[i]:
            ent = self._maps[i].get((route, key))
            return None if ent is None else ent.get(field)

    def entity(self, route: str, key: str) -> dict:
        """A copy of one entity's counters (empty when it has none)."""
        i = self._shard(route, key)
        with self._locks[i]:
            ent = self._maps[i].get((route, key))
            return dict(ent) if ent else {}

    def delete_entity(self, route: str, key: str) -> int:
        """Drop all counters of one entity; returns how many there were."""
        i = self._shard(route, key)
        with self._locks[i]:
            ent = self._maps[i].pop((route, key), None)
            return len(ent) if ent else 0

    def delete_field(self, route: str, key: str, field: str) -> bool:
        """Drop one counter; True when it existed."""
        _name(field)
        i = self._shard(route, key)
        with self._locks[i]:
            ent = self._maps[i].get((route, key))
            if not ent or field not in ent:
                return False
            del ent[field]
            if not ent:
                del self._maps[i][(route, key)]
            return True

    def export(self) -> list:
        """Every counter as ``(route, key, field, value)``, for snapshots (shard by shard)."""
        out = []
        for i in range(self.shards):
            with self._locks[i]:
                for (route, key), ent in self._maps[i].items():
                    out.extend((route, key, f, v) for f, v in ent.items())
        return out

    def __len__(self) -> int:
        n = 0
        for i in range(self.shards):
            with self._locks[i]:  # NOTE: iterating a shard others write needs its lock
                n += sum(len(ent) for ent in self._maps[i].values())
        return n

    def entity_count(self) -> int:
        """How many entities hold at least one counter."""
        n = 0
        for i in range(self.shards):
            with self._locks[i]:
                n += len(self._maps[i])
        return n
