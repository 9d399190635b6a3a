"""The op record: one write as it is logged, replayed and applied.

Layout (a JSON array): ``[kind, seq, ms, route, key, body, incs, expires_ms, source]``

======  ======================================  ===========================
kind    body                                    incs
======  ======================================  ===========================
``s``   plain fields of a keyed save            ``{"field": amount}`` or null
``v``   a keyed save of a plain (non-object)    null
``u``   fields merged by update                 increments or null
``i``   null                                    increments
``r``   null (remove)                           null
``e``   an event's payload (key is null)        null
======  ======================================  ===========================
"""
from __future__ import annotations

import json

SAVE, VALUE, UPDATE, INCR, REMOVE, EVENT = "s", "v", "u", "i", "r", "e"
NAMES = {SAVE: "save", VALUE: "save", UPDATE: "update", INCR: "incr", REMOVE: "remove", EVENT: "event"}

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_loads = json.loads


def encode(op: list) -> bytes:
    """Compact UTF-8 JSON of one op (NaN and non-JSON data raise ValueError/TypeError)."""
    return _dumps(op).encode("utf-8")


def decode(body: bytes) -> list:
    """The op list of one record body."""
    op = _loads(body)
    if not isinstance(op, list) or len(op) != 9 or op[0] not in NAMES:
        raise ValueError("not an op record")
    return op
