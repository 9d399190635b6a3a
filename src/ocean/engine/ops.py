"""The op record: one write as it is logged, replayed and applied.

Layout (a JSON array): ``[kind, seq, ms, route, key, body, incs, expires_ms, source]``.
``i`` ops are logged in a binary record instead (layout in ``_log.pxi``);
``decode`` gives the same list for both.

======  ======================================  ===========================
kind    body                                    incs
======  ======================================  ===========================
``s``   plain fields of a keyed save            ``{"field": amount}`` or null
``v``   a keyed save of a plain (non-object)    null
``u``   fields merged by update                 increments or null
``i``   null                                    increments
``r``   null (remove)                           null
``e``   an event's payload (key is null)        null, or the event's own time in ms
                                                when it was imported (see below)
``l``   null: seqs up to this one may have      null
        gone to bus-only messages (a lease)
======  ======================================  ===========================

Sketch adds ride in ``incs`` beside the increments, under the field's name with its payload
prefix and with the list of values added (never the sketch: replay adds the same values again):
``{"page_views": 1, "~visitors": ["u-123"], "%ms": [12.5, 40, [3.2, 17]]}`` (``~``: a uniq field,
``%``: a dist field, where ``[value, count]`` adds a value ``count`` times; see ``engine/sketches.py``). A list is what tells an add from an increment, whose
amount is always a number, so a counter that happens to be named ``~x`` stays a counter. An
``i`` op holding adds is logged in the binary record too, each add an ``l`` entry (a value list,
``_log.pxi``), unless a value has no binary form (a ``[value, count]`` pair, a whole sketch): then
as JSON. The compiled sketch path (``Writer._sketch_write``) writes the same bytes.

An event's ``created_at`` is ``ms``, unless ``incs`` holds an integer: then that is its
time (``POST /import`` keeps an exported event's time). ``ms`` stays the write's clock time,
which decides expiry and retention, so live and replay agree whatever the event's own time.

A lease record changes no state: it only keeps seqs from going backwards across a
restart, since bus-only messages (``_admin/events``) take seqs that no op logs.
"""
from __future__ import annotations

import json

import orjson

from ..errors import InvalidPayload
from ..kernels import kernel
from ..model import SKETCH_PREFIXES

SAVE, VALUE, UPDATE, INCR, REMOVE, EVENT, LEASE = "s", "v", "u", "i", "r", "e", "l"
NAMES = {SAVE: "save", VALUE: "save", UPDATE: "update", INCR: "incr", REMOVE: "remove", EVENT: "event",
         LEASE: "lease"}

_encode_incr = kernel("encode_incr")  # increments are logged in binary (_log.pxi)
_decode_incr = kernel("decode_incr")
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_loads = json.loads


def event_ms(op: list) -> int:
    """An event op's own time (``created_at``): its imported time, else the write's ``ms``."""
    at = op[6]
    return at if type(at) is int else op[2]


def has_adds(incs: dict) -> bool:
    """True when an op's ``incs`` holds sketch adds (lists of values) beside its increments."""
    for amount in incs.values():
        if type(amount) is list:
            return True
    return False


def split_adds(incs: dict) -> tuple[dict, dict]:
    """``incs`` as ``(increments, {field: (kind, values)})``: the numbers, and the sketch adds."""
    numbers, adds = {}, {}
    for name, amount in incs.items():
        if type(amount) is list:
            if name[1:] in adds:  # "~f" and "%f" together (refused before logging; an old log may hold it)
                raise InvalidPayload(f"field {name[1:]!r} is added to as both a uniq and a dist field")
            adds[name[1:]] = (SKETCH_PREFIXES[name[0]], amount)
        else:
            numbers[name] = amount
    return numbers, adds


def encode(op: list) -> bytes:
    """One op's record body: the binary incr record (layout in ``_log.pxi``) for increments,
    compact UTF-8 JSON for the rest (NaN and non-JSON data raise ValueError/TypeError).

    PERF: an incr record encodes in ~0.2 us (hand-formatted JSON took 0.75 us, the JSON
    encoder 1.9 us) and replays without a JSON parse.
    """
    if op[0] == INCR and not op[7] and type(op[6]) is dict:
        body = _encode_incr(op[1], op[2], op[3], op[4], op[6], op[8])
        if body is not None:  # None: a name too long for the binary layout, or a non-str source
            return body
    return _dumps(op).encode("utf-8")


# orjson refuses (TypeError) what it would write differently from ``_dumps``: subclasses of
# builtins, datetimes, dataclasses, integers beyond 64 bits, lone surrogates, deep nesting.
_ORJSON = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_orjson_dumps = orjson.dumps


def encode_parsed(op: list) -> bytes:
    """``encode``, for an op whose body and incs came from a JSON parser (dicts, lists, str, int,
    float, bool and None only; ``POST /drop``): the same values, read back by ``decode``.

    orjson writes a non-finite float as ``null`` where ``_dumps`` refuses it: a body holding
    more ``null``s than the op's own None slots is encoded again by ``_dumps``, which decides.
    It would write a UUID or an enum where ``_dumps`` refuses them: none comes from a parser,
    which is why ``encode`` (any Python data) does not take this way.
    PERF: an event record in ~0.5 us against ~2.1 us (bench_drops ``drops-post-1000``).
    """
    if op[0] == INCR:
        return encode(op)
    try:
        body = _orjson_dumps(op, None, _ORJSON)
    except TypeError:
        return _dumps(op).encode("utf-8")
    # an op's own None slots: key, body, incs and source (kind, seq, ms, route and expiry never are)
    if body.count(b"null") != (op[4] is None) + (op[5] is None) + (op[6] is None) + (op[8] is None):
        return _dumps(op).encode("utf-8")
    return body


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
