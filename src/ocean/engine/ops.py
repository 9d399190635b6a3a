"""The op record: one write as it is logged, replayed and applied.

Layout (a JSON array): ``[kind, seq, ms, route, key, body, incs, expires_ms, source]``.
The compiled increment path logs ``i`` ops in a binary record instead (layout in
``_log.pxi``); ``decode`` gives the same list for both.

======  ======================================  ===========================
kind    body                                    incs
======  ======================================  ===========================
``s``   plain fields of a keyed save            ``{"field": amount}`` or null
``v``   a keyed save of a plain (non-object)    null
``u``   fields merged by update                 increments or null
``i``   null                                    increments
``r``   null (remove)                           null
``e``   an event's payload (key is null)        null
``l``   null: seqs up to this one may have      null
        gone to bus-only messages (a lease)
======  ======================================  ===========================

A lease record changes no state: it only keeps seqs from going backwards across a
restart, since bus-only messages (``_admin/events``) take seqs that no op logs.
"""
from __future__ import annotations

import json
import re

from ..kernels import kernel

SAVE, VALUE, UPDATE, INCR, REMOVE, EVENT, LEASE = "s", "v", "u", "i", "r", "e", "l"
NAMES = {SAVE: "save", VALUE: "save", UPDATE: "update", INCR: "incr", REMOVE: "remove", EVENT: "event",
         LEASE: "lease"}

_decode_incr = kernel("decode_incr")  # the compiled write path logs increments in binary (_log.pxi)
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_loads = json.loads


_SAFE = re.compile(r'[ !#-\[\]-~]*\Z')  # printable ASCII but '"' and '\\': JSON as is
_safe_names: dict[str, bool] = {}


def encode(op: list) -> bytes:
    """Compact UTF-8 JSON of one op (NaN and non-JSON data raise ValueError/TypeError)."""
    if op[0] == INCR:
        fast = _encode_incr(op)
        if fast is not None:
            return fast
    return _dumps(op).encode("utf-8")


def _encode_incr(op: list) -> bytes | None:
    """PERF: increments are the hot op; formatting them by hand takes 0.75 us against
    1.9 us for the JSON encoder. Routes and keys are JSON-safe by validation; field
    names and the source qualify when they are plain printable ASCII (cached)."""
    source = op[8]
    if (source is not None and not _is_safe(source)) or len(op[6]) > 8:
        return None  # many fields: the C encoder is faster than formatting each by hand
    parts = []
    for name, amount in op[6].items():
        if not _is_safe(name):
            return None
        parts.append('"%s":%r' % (name, amount))
    return ('["i",%d,%d,"%s","%s",null,{%s},%d,%s]' % (
        op[1], op[2], op[3], op[4], ",".join(parts), op[7],
        "null" if source is None else '"%s"' % source)).encode("ascii")


def _is_safe(name: str) -> bool:
    ok = _safe_names.get(name)
    if ok is None:
        ok = bool(_SAFE.match(name))
        if len(_safe_names) < 100000:
            _safe_names[name] = ok
    return ok


def decode_many(bodies: list[bytes]) -> list[list]:
    """Decode many record bodies: binary incr records one by one (compiled), runs of JSON
    records with one parser call each.

    PERF: replay spent ~40% of its time in per-record ``json.loads`` overhead;
    parsing ``[body,body,...]`` in one call halves that.
    """
    out, run = [], []
    for body in bodies:
        if body[0] == 73:  # b"I": a binary incr record
            if run:
                out.extend(_decode_json_run(run))
                run = []
            out.append(_decode_incr(body))
        else:
            run.append(body)
    if run:
        out.extend(_decode_json_run(run))
    return out


def _decode_json_run(bodies: list[bytes]) -> list[list]:
    out = []
    for i in range(0, len(bodies), 4096):
        chunk = _loads(b"[" + b",".join(bodies[i:i + 4096]) + b"]")
        for op in chunk:
            if not isinstance(op, list) or len(op) != 9 or op[0] not in NAMES:
                raise ValueError("not an op record")
        out.extend(chunk)
    return out


def decode(body: bytes) -> list:
    """The op list of one record body."""
    if body[:1] == b"I":
        return _decode_incr(body)
    op = _loads(body)
    if not isinstance(op, list) or len(op) != 9 or op[0] not in NAMES:
        raise ValueError("not an op record")
    return op
