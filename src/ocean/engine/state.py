"""The in-memory state and the one deterministic function that applies an op to it.

An op is the list ``[kind, seq, ms, route, key, body, incs, expires_ms, source]``
(see ``ops.py``). ``State.apply`` is used both live and when replaying the log,
so both give the same state. Each apply is atomic: it checks everything that
can fail before it changes anything, and raises an ``ocean.errors`` error with
the state untouched. An op that failed live fails the same way on replay (the
state is the same), so the log may hold it harmlessly.

Expiry is decided by the op's own time: an entity whose ``keep`` ran out
before an op's ``ms`` is gone for that op, live or replayed alike.
"""
from __future__ import annotations

from ..errors import CounterOverflow, InvalidPayload, NotACounter, NotASketch, NotFound
from ..model import MAX_INT64, MIN_INT64, SKETCH_PREFIXES, check_amount
from . import ops
from .counters import is_number, new_table
from .entities import Entity, EntityTable
from .events import EventLog
from .sketches import DIST, SketchTable, dist_overflow, kind_of


class State:
    """Entities, counters and events of every route; ``apply`` changes them."""

    def __init__(self, history_limit: int, retention: int):
        self.entities = EntityTable(history_limit)
        self.counters = new_table()
        self.sketches = SketchTable()  # uniq and dist fields (sketches.py)
        self.events: dict[str, EventLog] = {}
        self.retention = retention
        self.event_count = 0
        self.trimmed: list[tuple[str, list[int]]] = []  # (route, seqs) dropped by retention; the engine drains it

    # -- reads -------------------------------------------------------------
    def live_entity(self, route: str, key: str, ms: int) -> Entity | None:
        ent = self.entities.get(route, key)
        if ent is not None and ent.expires_ms and ent.expires_ms <= ms:
            return None
        return ent

    def payload(self, ent: Entity, route: str, key: str):
        """The entity's fields with counters merged (or its plain value)."""
        if ent.fields is None:
            return ent.value
        counts = self.counters.entity(route, key)
        held = self.sketches.get(route, key) if self.sketches.routes else None
        if not counts and not held:
            return dict(ent.fields)
        out = dict(ent.fields)
        out.update(counts)
        if held:
            out.update(self.sketches.shown(route, key))  # over their markers (sketches.py)
        return out

    # -- the one write path --------------------------------------------------
    def apply(self, op: list):
        """Apply one op; returns ``(result, published_fields)``. Raises with nothing changed."""
        kind = op[0]
        if kind == ops.EVENT:
            return self._event(op)
        route, key, ms = op[3], op[4], op[2]
        ent = self._expire(route, key, ms)
        if kind == ops.INCR:
            if ent is not None and ent.fields is not None:
                fields = ent.fields
                incs = op[6]
                if (not fields or fields.keys().isdisjoint(incs)) and not ops.has_adds(incs):
                    # PERF: the hot path (plain counters) skips the general merge below.
                    totals = dict(zip(incs, self.counters.add_many(route, key, incs.keys(), incs.values())))
                    self.entities.put(route, key, ent.touched(ms))
                    return totals, totals
            return self._write(op, ent, replace=False)
        if kind in (ops.SAVE, ops.UPDATE):
            return self._write(op, ent, replace=kind == ops.SAVE)
        if kind == ops.VALUE:
            return self._value(op, ent)
        if kind == ops.REMOVE:
            return self._remove(op, ent)
        raise InvalidPayload(f"unknown op kind {kind!r} in the log")

    def _expire(self, route: str, key: str, ms: int) -> Entity | None:
        ent = self.entities.get(route, key)
        if ent is not None and ent.expires_ms and ent.expires_ms <= ms:
            self.entities.delete(route, key)
            self.counters.delete_entity(route, key)
            self.sketches.delete_entity(route, key)
            return None
        return ent

    def _event(self, op):
        _, seq, ms, route, _, body, at, expires, source = op
        log = self.events.get(route)
        if log is None:
            log = self.events[route] = EventLog()
        # an imported event keeps its own time; ``ms`` (the clock) still decides retention below
        log.append((seq, at if type(at) is int else ms, body, expires, source))
        self.event_count += 1
        if self.retention and len(log) > self.retention + max(16, self.retention // 10):
            dropped = log.trim(self.retention, ms)
            self.event_count -= len(dropped)
            self.trimmed.append((route, dropped))
        return None, body

    def _value(self, op, ent):
        _, seq, ms, route, key, body, _, expires, source = op
        self.counters.delete_entity(route, key)
        self.sketches.delete_entity(route, key)
        version = ent.version + 1 if ent else 1
        self.entities.put(route, key, Entity(None, body, ent.created_ms if ent else ms, ms, version, expires))
        self.entities.record(route, key, version, seq, ms, "save", body)
        return None, body

    def _write(self, op, ent, replace: bool):
        """save (replace=True), update and incr: plain fields and increments in one atomic step."""
        kind, seq, ms, route, key, plain, incs, expires, source = op
        adds = None
        if incs and ops.has_adds(incs):
            incs, adds = ops.split_adds(incs)
        if ent is not None and ent.fields is None and (incs or adds or not replace):
            raise NotACounter.plain_value(route, key)
        counts = self.counters.entity(route, key) if ent is not None else {}
        held = self.sketches.of(route, key) if ent is not None else {}
        fields = {} if replace or ent is None else dict(ent.fields)
        sets, promoted = {}, {}
        for name, value in (plain or {}).items():
            if name in held:
                raise NotASketch.sketch_set(name, kind_of(held[name]), _PREFIX[kind_of(held[name])])
            if name in counts:
                if not is_number(value):
                    raise NotACounter.counter_set(name, value)
                sets[name] = check_amount(value, name)
            else:
                fields[name] = value
        if incs:
            for name, amount in incs.items():
                if name in sets or (plain and name in plain and name not in counts):
                    raise InvalidPayload.set_and_incremented(name)
                if name in held:
                    raise NotACounter.sketch_incremented(name, kind_of(held[name]), _PREFIX[kind_of(held[name])])
                if name in fields:
                    base = fields[name]
                    if not is_number(base):
                        raise NotACounter.not_a_number(name, base)
                    promoted[name] = _add(base, amount, name)
        marked = _check_adds(adds, plain, incs, counts, fields, held) if adds else ()
        if held and replace:  # a save keeps an entity's sketches, as it keeps its counters
            for name, sketch in held.items():
                fields[name] = kind_of(sketch)
        for name in marked:
            fields[name] = adds[name][0]
        # Everything that can fail is checked; now change the state.
        totals = {}
        rest = [n for n in incs if n not in promoted] if incs else ()
        if rest:
            values = self.counters.add_many(route, key, rest, [incs[n] for n in rest])
            totals = dict(zip(rest, values))
        for name, value in promoted.items():
            del fields[name]
            self.counters.set(route, key, name, value)
            totals[name] = value
        for name, value in sets.items():
            self.counters.set(route, key, name, value)
        if adds:
            totals.update(self.sketches.add(route, key, adds))
        if ent is None:
            new = Entity(fields, None, ms, ms, 1, expires)
        elif kind == ops.INCR and not promoted and not marked:
            new = ent.touched(ms)
        else:
            new = Entity(fields, None, ent.created_ms, ms, ent.version + 1, expires if replace else ent.expires_ms)
        self.entities.put(route, key, new)
        if kind != ops.INCR:
            self.entities.record(route, key, new.version, seq, ms, "save" if replace else "update",
                                 self.payload(new, route, key))
        if kind == ops.INCR:
            return totals, totals
        published = dict(plain or {})
        published.update(totals)
        return (totals if kind == ops.SAVE else self.payload(new, route, key)), published

    def _remove(self, op, ent):
        _, seq, ms, route, key, _, _, _, source = op
        if ent is None:
            raise NotFound(f"{route} @{key} does not exist")
        self.entities.record(route, key, ent.version + 1, seq, ms, "remove", None)
        self.entities.delete(route, key)
        self.counters.delete_entity(route, key)
        self.sketches.delete_entity(route, key)
        return {"removed": True}, {}

    # -- housekeeping ----------------------------------------------------------
    def sweep(self, now_ms: int) -> tuple[list, dict]:
        """Purge expired entities and events; returns ``(removed (route, key) list, {route: seqs})``."""
        removed = []
        for route, key in self.entities.due(now_ms):
            self.entities.delete(route, key)
            self.counters.delete_entity(route, key)
            self.sketches.delete_entity(route, key)
            removed.append((route, key))
        events = {}
        for route, log in list(self.events.items()):
            if log.expiring:
                dropped = log.trim(self.retention, now_ms)
                if dropped:
                    self.event_count -= len(dropped)
                    events[route] = dropped
        return removed, events


_PREFIX = {kind: prefix for prefix, kind in SKETCH_PREFIXES.items()}


def _check_adds(adds: dict, plain, incs, counts: dict, fields: dict, held: dict) -> list:
    """Refuse sketch adds to a field of another type; returns the fields they make new sketches of."""
    new = []
    for name, (kind, _) in adds.items():
        if (plain and name in plain) or (incs and name in incs):
            raise InvalidPayload.written_and_added(name, "set" if plain and name in plain else "incremented", kind)
        sketch = held.get(name)
        if kind == DIST:
            why = dist_overflow(sketch if sketch is not None and kind_of(sketch) == DIST else None, adds[name][1])
            if why:
                raise CounterOverflow.dist(name, why)
        if sketch is not None:
            if kind_of(sketch) != kind:
                raise NotASketch.other_kind(name, kind_of(sketch), _PREFIX[kind_of(sketch)], kind)
            continue
        if name in counts:
            raise NotASketch.counter_added(name, kind)
        if name in fields:
            raise NotASketch.plain_added(name, fields[name], kind)
        new.append(name)
    return new


def _add(base, amount, name):
    """A plain number becoming a counter: checked here, before anything changes, as the counter
    table checks its own (a float sum past the float64 range once raised only when the counter
    was set, after the write's other increments were applied)."""
    new = base + amount
    if type(new) is int and not (MIN_INT64 <= new <= MAX_INT64):
        raise CounterOverflow.int64(name, base, amount)
    if type(new) is float and new - new != 0.0:
        raise CounterOverflow.float64(name, base, amount)
    return new
