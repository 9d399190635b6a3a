"""Routes, keys, fields and drops: validation and the record shapes (SPEC section 1)."""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from datetime import datetime, timezone

from .errors import InvalidAmount, InvalidField, InvalidKey, InvalidPayload, InvalidRoute

MAX_ROUTE_CHARS = 512
MAX_SEGMENTS = 10
MAX_KEY_CHARS = 256
MAX_FIELD_CHARS = 256
MAX_INT64 = (1 << 63) - 1
MIN_INT64 = -(1 << 63)

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+\Z")
_KEY = re.compile(r"[A-Za-z0-9._-]{1,256}\Z")
_checked_routes: dict[str, bool] = {}  # PERF: validation of hot routes is a dict hit (~40 ns vs ~1 us)


def check_route(route) -> str:
    """Return ``route`` if valid, else raise InvalidRoute saying what is wrong."""
    if _checked_routes.get(route) if isinstance(route, str) else False:
        return route
    if not isinstance(route, str) or not route:
        raise InvalidRoute("a route is required (like analytics/daily)")
    if len(route) > MAX_ROUTE_CHARS:
        raise InvalidRoute(f"route is {len(route)} characters; at most {MAX_ROUTE_CHARS} are allowed")
    parts = route.split("/")
    if len(parts) > MAX_SEGMENTS:
        raise InvalidRoute(f"route {route[:60]!r} has {len(parts)} segments; at most {MAX_SEGMENTS} are allowed")
    for part in parts:
        if not part:
            raise InvalidRoute(f"route {route[:60]!r} has an empty segment (leading, trailing or double slash)")
        if not _SEGMENT.match(part):
            raise InvalidRoute(f"route {route[:60]!r}: segments may hold only letters, digits, '.', '_' and '-'")
        if part in (".", ".."):
            raise InvalidRoute(f"route {route[:60]!r}: '.' and '..' are not segments")
    if len(_checked_routes) < 100000:
        _checked_routes[route] = True
    return route


def check_prefix(prefix: str) -> str:
    """Validate a subscription/scope prefix: a route, ``route/*`` or ``*``."""
    if prefix == "*":
        return prefix
    if isinstance(prefix, str) and prefix.endswith("/*"):
        check_route(prefix[:-2])
        return prefix
    return check_route(prefix)


def prefix_matches(prefix: str, route: str) -> bool:
    """True when ``route`` is covered by ``prefix`` (exact route, ``a/*`` subtree, or ``*``)."""
    if prefix == "*":
        return True
    if prefix.endswith("/*"):
        base = prefix[:-2]
        return route == base or route.startswith(base + "/")
    return route == prefix


def is_system_route(route: str) -> bool:
    """Routes whose first segment starts with ``_`` belong to the server."""
    return route.startswith("_")


def check_key(key) -> str:
    """Return ``key`` if valid, else raise InvalidKey."""
    if isinstance(key, str) and _KEY.match(key):
        return key
    if not isinstance(key, str) or not key:
        raise InvalidKey("a key is required (like @2026-02-10)")
    if len(key) > MAX_KEY_CHARS:
        raise InvalidKey(f"key is {len(key)} characters; at most {MAX_KEY_CHARS} are allowed")
    raise InvalidKey(f"key {key[:60]!r} may hold only letters, digits, '.', '_' and '-'")


_checked_fields: dict[str, bool] = {}


def check_field(name) -> str:
    """Return a valid field name (any non-empty string up to 256 characters, no control characters)."""
    if _checked_fields.get(name) if type(name) is str else False:
        return name
    if not isinstance(name, str) or not name:
        raise InvalidField("a field name must be a non-empty string")
    if len(name) > MAX_FIELD_CHARS:
        raise InvalidField(f"field name is {len(name)} characters; at most {MAX_FIELD_CHARS} are allowed")
    if not name.isprintable():
        raise InvalidField(f"field name {name[:60]!r} holds control characters")
    if len(_checked_fields) < 100000:
        _checked_fields[name] = True
    return name


def check_increments(amounts) -> dict:
    """Validate ``{field: amount}`` for an increment; returns it unchanged when valid.

    PERF: inlined type/range checks (~0.15 us a field) -- a 1000-field batch spent
    most of its time here when each field went through check_field/check_amount calls.
    """
    if type(amounts) is not dict:
        raise InvalidAmount("increments must be an object of field: amount")
    fields = _checked_fields
    for name, amount in amounts.items():
        if not fields.get(name, False) if type(name) is str else True:
            check_field(name)
        t = type(amount)
        if t is int:
            if MIN_INT64 <= amount <= MAX_INT64:
                continue
        elif t is float and amount - amount == 0.0:
            continue
        check_amount(amount, name)
    return amounts


def check_amount(amount, field: str = "") -> int | float:
    """An increment amount: an int within int64, or a finite float (bools are refused)."""
    if type(amount) is int:
        if MIN_INT64 <= amount <= MAX_INT64:
            return amount
        raise InvalidAmount(f"amount {amount} for {field!r} is outside the int64 range")
    if type(amount) is float:
        if math.isfinite(amount):
            return amount
        raise InvalidAmount(f"amount for {field!r} must be a finite number, got {amount}")
    raise InvalidAmount(f"amount for {field!r} must be a number, got {json.dumps(amount) if _jsonable(amount) else type(amount).__name__}")


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def split_increments(payload: dict) -> tuple[dict, dict]:
    """Split ``{"+views": 1, "~visitors": "u-1", "name": "x"}`` into plain fields and increments.

    Increments are ``{"views": 1}``; sketch adds ride beside them as ``{"~visitors": ["u-1"]}``
    (the op layout, ``engine/ops.py``), their values checked and always a list.
    """
    plain, incs = {}, {}
    for name, value in payload.items():
        if isinstance(name, str) and len(name) > 1 and name[0] in _ADD_PREFIXES:
            field = check_field(name[1:])
            if name[0] == "+":
                incs[field] = check_amount(value, field)
            else:
                other = ("%" if name[0] == "~" else "~") + field
                if other in incs:
                    raise InvalidPayload(f"field {field!r} is added to as both a uniq (~) and a dist (%) field")
                incs[name[0] + field] = check_sketch_values(name[0], value, field)
        else:
            plain[check_field(name)] = value
    return plain, incs


SKETCH_PREFIXES = {"~": "uniq", "%": "dist"}  # payload prefix -> sketch kind (engine/sketches.py)
_ADD_PREFIXES = frozenset("+~%")
MAX_UNIQ_VALUE_CHARS = 1024
MAX_DIST_COUNT = 1 << 40  # the count of one [value, count] pair (a sketch counts to 2**63 - 1)


def check_sketch_values(prefix: str, value, field: str = "") -> list:
    """The values of one sketch add (``"~f"``: strings or integers; ``"%f"``: finite numbers) as a list.

    One value or a list of them; integers added to a uniq field count as their decimal text
    (``123`` and ``"123"`` are one visitor, as in Redis). A dist value may also be a pair
    ``[value, count]``: the value added ``count`` times (a pre-aggregated histogram, as the
    request accounting writes). Either may also be a whole sketch to merge, ``{"sketch": base64
    of its bytes}`` (what ``GET /export`` writes, so an import restores sketches exactly).
    Raises InvalidAmount naming the field.
    """
    values = value if type(value) is list else [value]
    if prefix == "~":
        for v in values:
            t = type(v)
            if t is dict:
                check_serialized_sketch(prefix, v, field)
            elif t is str:
                if len(v) > MAX_UNIQ_VALUE_CHARS:
                    raise InvalidAmount(f"a value added to the uniq field {field!r} is {len(v)} characters; "
                                        f"at most {MAX_UNIQ_VALUE_CHARS} are allowed")
                if not v.isascii():
                    try:
                        v.encode("utf-8")  # a lone surrogate cannot be hashed (nor logged)
                    except UnicodeEncodeError:
                        raise InvalidAmount(f"a value added to the uniq field {field!r} is not valid "
                                            f"text (a lone surrogate)") from None
            elif t is not int or not MIN_INT64 <= v <= MAX_INT64:
                raise InvalidAmount(f"uniq field {field!r} takes strings or integers (int64), got "
                                    f"{json.dumps(v) if _jsonable(v) else t.__name__}")
    else:
        for v in values:
            if type(v) is dict:
                check_serialized_sketch(prefix, v, field)
                continue
            if type(v) is list and len(v) == 2 and type(v[1]) is int and 1 <= v[1] <= MAX_DIST_COUNT:
                v = v[0]  # [value, count]
            t = type(v)
            if not ((t is int and MIN_INT64 <= v <= MAX_INT64) or (t is float and math.isfinite(v))):
                raise InvalidAmount(f"dist field {field!r} takes finite numbers (or [number, count] pairs), got "
                                    f"{json.dumps(v) if _jsonable(v) else t.__name__}")
    return list(values)


def check_serialized_sketch(prefix: str, doc: dict, field: str = ""):
    """The sketch ``{"sketch": base64}`` holds (uniq for ``~``, dist for ``%``); InvalidAmount if it is not one."""
    from .kernels import kernel  # NOTE: here, not at the top: the compiled core imports this module
    kind = SKETCH_PREFIXES[prefix]
    data = doc.get("sketch") if len(doc) == 1 else None
    try:
        if type(data) is not str:
            raise ValueError("no sketch")
        return kernel("Hll" if kind == "uniq" else "Dist")(base64.b64decode(data, validate=True))
    except (ValueError, TypeError, binascii.Error):
        raise InvalidAmount(f"{{\"sketch\": ...}} for the {kind} field {field!r} must hold the base64 of a {kind} "
                            f"sketch's bytes, as GET /export writes them") from None


def drop_id(instance: str, seq: int) -> str:
    """A drop's id: UUID-shaped, from the data directory's instance id and the seq.

    Unique per data directory and seq and stable across restarts, so the log
    need not store it. PERF: ~0.3 us, against ~1.5 us for ``uuid.uuid4()``.
    """
    s = f"{seq:016x}"
    return f"{instance[:8]}-{instance[8:12]}-{instance[12:16]}-{s[:4]}-{s[4:]}"


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


_second_prefix: dict[int, str] = {}


def iso_ms(ms: int) -> str:
    """``2026-02-10T12:34:56.789Z`` from epoch milliseconds.

    PERF: ``strftime`` costs ~5 us; rows of one second share a cached prefix, so a
    listing of many records formats each time in ~0.3 us.
    """
    sec, milli = divmod(ms, 1000)
    prefix = _second_prefix.get(sec)
    if prefix is None:
        if len(_second_prefix) > 65536:
            _second_prefix.clear()
        prefix = _second_prefix[sec] = datetime.fromtimestamp(sec, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{prefix}.{milli:03d}Z"
