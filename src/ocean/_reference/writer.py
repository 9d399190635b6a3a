"""Pure twin of ``_writer.pxi``: entity records, bus messages, the replay ring, and the
``Writer`` that holds the engine's seq and clock. The twin's ``Writer.incr`` always
takes the engine's Python path -- the reference semantics the compiled fast path
must match."""
from __future__ import annotations

import json
import threading
import time
from collections import deque

from ..errors import EngineClosed
from ..model import drop_id, iso_ms
from .log import decode_incr

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


_NO_FIELDS: dict = {}  # never changed: every write copies the fields it starts from


class Entity:
    """One entity's stored state; never mutated once stored (snapshots share records)."""

    __slots__ = ("fields", "value", "created_ms", "updated_ms", "version", "expires_ms", "gen")

    def __init__(self, fields, value, created_ms, updated_ms, version, expires_ms):
        # dict of plain fields, or None for a plain value; no plain fields share one empty dict
        self.fields = _NO_FIELDS if type(fields) is dict and not fields else fields
        self.value = value            # the plain value when fields is None
        self.created_ms = created_ms
        self.updated_ms = updated_ms
        self.version = version
        self.expires_ms = expires_ms  # 0: never
        self.gen = 0                  # only the compiled path updates records in place (see _writer.pxi)

    def touched(self, ms: int) -> "Entity":
        """A copy with a new update time and version (an increment's bookkeeping)."""
        return Entity(self.fields, self.value, self.created_ms, ms, self.version + 1, self.expires_ms)

    def to_row(self) -> list:
        return [self.fields, self.value, self.created_ms, self.updated_ms, self.version, self.expires_ms]

    @classmethod
    def from_row(cls, row) -> "Entity":
        return cls(*row)


class Message:
    """One published drop; its JSON and SSE bytes are built on first use and cached."""

    __slots__ = ("seq", "route", "key", "op", "fields", "ms", "instance", "size", "_json", "_sse")

    def __init__(self, seq, route, key, op, fields, ms, instance, size=0):
        self.seq = seq
        self.route = route
        self.key = key
        self.op = op
        self.fields = fields
        self.ms = ms
        self.instance = instance
        self.size = size
        self._json = None
        self._sse = None

    @property
    def drop_id(self) -> str:
        return drop_id(self.instance, self.seq)

    @property
    def data(self) -> dict:
        out = dict(self.fields) if isinstance(self.fields, dict) else {"_value": self.fields}
        out["_route"] = self.route
        if self.key is not None:
            out["_key"] = self.key
        out["_id"] = self.drop_id
        out["_at"] = iso_ms(self.ms)
        out["_op"] = self.op
        return out

    def json(self) -> str:
        if self._json is None:
            self._json = _dumps(self.data)
        return self._json

    def sse(self) -> bytes:
        if self._sse is None:
            self._sse = f"id: {self.seq}\ndata: {self.json()}\n\n".encode("utf-8")
        return self._sse


class Ring:
    """The most recent messages of one kind of route, bounded by count and bytes."""

    __slots__ = ("_messages", "forgotten", "last", "bytes", "max_bytes", "appended", "_cap")

    def __init__(self, size: int, start_seq: int, max_bytes: int = 0):
        self._messages: deque = deque()
        self.forgotten = start_seq
        self.last = start_seq
        self.bytes = 0
        self.max_bytes = max_bytes
        self.appended = 0
        self._cap = max(1, size)

    @property
    def messages(self) -> list:
        return list(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    def append(self, msg: Message) -> None:
        messages = self._messages
        messages.append(msg)
        self.bytes += msg.size
        self.appended += 1
        self.last = msg.seq
        while len(messages) > self._cap or (self.max_bytes and self.bytes > self.max_bytes and len(messages) > 1):
            old = messages.popleft()
            self.bytes -= old.size
            self.forgotten = old.seq


def _estimate(data) -> int:
    if type(data) is dict:
        return 64 + sum(8 + (len(k) if type(k) is str else 16) + (len(v) if type(v) is str else 16)
                        for k, v in data.items())
    if type(data) is str:
        return 64 + len(data)
    return 128


def WriteLock():
    """The engine's write lock (looked up per call, so gevent's patching applies)."""
    return threading.Lock()


class Writer:
    """The engine's write state (seq, clock); ``incr`` takes the Python path."""

    def __init__(self, seq: int, instance: str):
        self.seq = seq
        self.makes_entities = False  # its drop_many takes no drop (the compiled one makes entities of counters)
        self.last_ms = 0
        self.closed = False
        self.instance = instance
        self.max_bytes = 1 << 20
        self.snapshot_every = 1 << 62
        self.sync_always = False
        self.lease = 0
        self.extend_lease = None
        self._slow = None

    def attach(self, counters, entities, log, ring, system_ring, bus, subscribed, lock, slow, after, listeners):
        self._slow, self._ring, self._system_ring = slow, ring, system_ring
        self._bus, self._subscribed, self._lock = bus, subscribed, lock

    def attach_sketches(self, sketches):
        """The compiled writer's sketch path needs these; the twin's writes all take the Python path."""

    def adds(self, prefix, route, key, values, source=None):
        """Takes no sketch add: None sends ``uniq``/``observe`` to the engine's Python path."""
        return None

    def publish(self, route, data):
        """A message on the bus only (not stored); its seq is covered by a logged lease."""
        with self._lock:
            if self.closed:
                raise EngineClosed("the engine is closed")
            seq = self.seq + 1
            if seq > self.lease:
                self.lease = self.extend_lease(seq + 4096)
            self.seq = seq
            msg = Message(seq, route, None, "event", data, self.clock(), self.instance, _estimate(data))
            (self._system_ring if route.startswith("_") else self._ring).append(msg)
            if self._subscribed:
                self._bus._fanout(msg)
            return msg

    def clock(self) -> int:
        ms = time.time_ns() // 1_000_000
        if ms <= self.last_ms:
            return self.last_ms
        self.last_ms = ms
        return ms

    def incr(self, route, key, amounts, source=None):
        return self._slow(route, key, amounts, source)

    def drop_many(self, drops, start, results, source=None):
        """Takes no drop: the engine's Python path writes them all (``(start, 0, 0)``)."""
        return start, 0, 0

    def publish_run(self, where, batch, outcomes, results, ms, created_at, names, written):
        """``Engine._drop_run``'s last step: receipts, messages on the bus, applied ops (see ``_writer.pxi``)."""
        for i, op, outcome in zip(where, batch, outcomes):
            if type(outcome) is not tuple:
                results[i] = outcome
                continue
            seq, route, key = op[1], op[3], op[4]
            at = op[6] if op[0] == "e" and type(op[6]) is int else ms
            msg = Message(seq, route, key, names[op[0]], outcome[1], at, self.instance, outcome[2])
            (self._system_ring if route.startswith("_") else self._ring).append(msg)
            if self._subscribed:
                self._bus._fanout(msg)
            results[i] = {"drop_id": drop_id(self.instance, seq), "seq": seq, "route": route, "key": key,
                          "created_at": created_at if at == ms else iso_ms(at)}
            written.append(op)


def replay(bodies, counters, routes, after_seq, apply_json, apply_op):
    """Apply record bodies in log order after ``after_seq``; returns ``(last seq, count, last user seq)``."""
    last = count = last_user = 0
    run = []
    for body in bodies:
        if body[0] != 73:
            run.append(body)
            continue
        op = decode_incr(body)
        if op[1] <= after_seq:
            continue
        if run:
            s, c, u = apply_json(run)
            last, count, last_user, run = max(last, s), count + c, max(last_user, u), []
        last, count = max(last, op[1]), count + 1
        if not op[3].startswith("_"):
            last_user = max(last_user, op[1])
        apply_op(op)
    if run:
        s, c, u = apply_json(run)
        last, count, last_user = max(last, s), count + c, max(last_user, u)
    return last, count, last_user
