"""Typed vectors: one column of values as a numpy array plus a null mask.

A ``Vec`` is what the column store hands out and what every expression in the
executor evaluates to. Kinds:

- ``null``  every value is NULL (a field no row has, or the NULL literal)
- ``bool``  numpy bool
- ``int``   numpy int64
- ``float`` numpy float64
- ``ts``    int64 epoch milliseconds of canonical ISO strings (``2026-02-10T12:34:56.789Z``);
            shown and compared as those strings, bucketed as numbers
- ``str``   dictionary encoded: int32 codes (-1 is NULL) into a ``Dictionary`` of strings
- ``obj``   numpy object array (None is NULL): mixed types, JSON arrays and objects

A constant is a length-1 vector with ``const=True``; numpy broadcasting does the rest.
``valid`` is a bool mask of non-NULL rows, or None when no row is NULL.
"""
from __future__ import annotations

import re
import threading

import numpy as np

from ..errors import SqlError
from ..kernels import core

KINDS = ("null", "bool", "int", "float", "ts", "str", "obj")
NUMERIC = ("bool", "int", "float")
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_CANON_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z\Z")


class Dictionary:
    """The distinct strings of a ``str`` vector, with their sort ranks computed once."""

    __slots__ = ("values", "unique", "_ranks", "_ranks_ext", "_lookup")

    def __init__(self, values: np.ndarray, unique: bool = True):
        self.values = values
        self.unique = unique
        self._ranks = None
        self._ranks_ext = None
        self._lookup = None

    def __len__(self) -> int:
        return len(self.values)

    def ranks(self) -> np.ndarray:
        """Rank of each entry in string order (equal strings share a rank)."""
        if self._ranks is None:
            if len(self.values) == 0:
                self._ranks = np.zeros(0, np.int64)
            else:
                uniq, inverse = np.unique(self.values, return_inverse=True)
                self._ranks = inverse.astype(np.int64).reshape(-1)
        return self._ranks

    def ranks_ext(self) -> np.ndarray:
        """``ranks()`` with one more entry (0) so that code -1 (NULL) can index it."""
        if self._ranks_ext is None:
            self._ranks_ext = np.append(self.ranks(), np.int64(0))
        return self._ranks_ext

    def code_of(self, s: str) -> int:
        """The code of ``s`` (-1 when absent); only for unique dictionaries."""
        if self._lookup is None:
            self._lookup = {v: i for i, v in enumerate(self.values.tolist())}
        return self._lookup.get(s, -1)


class Vec:
    """One column of typed values with a null mask (see the module docstring)."""

    __slots__ = ("kind", "data", "valid", "dict", "const")

    def __init__(self, kind: str, data: np.ndarray, valid: np.ndarray | None = None,
                 dictionary: Dictionary | None = None, const: bool = False):
        self.kind = kind
        self.data = data
        self.valid = valid
        self.dict = dictionary
        self.const = const

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Vec({self.kind}, n={len(self.data)}, const={self.const})"

    # -- construction -------------------------------------------------------
    @staticmethod
    def nulls(n: int) -> "Vec":
        return Vec("null", np.zeros(n, np.int8), np.zeros(n, bool))

    @staticmethod
    def constant(value) -> "Vec":
        """A broadcasting constant from a Python scalar."""
        if value is None:
            return Vec("null", np.zeros(1, np.int8), np.zeros(1, bool), const=True)
        v = from_values([value])
        v.const = True
        return v

    # -- access -------------------------------------------------------------
    def notnull(self) -> np.ndarray | None:
        """Bool mask of non-NULL rows, or None when none is NULL."""
        if self.kind == "str":
            return self.data >= 0
        if self.kind == "obj":
            return np.not_equal(self.data, None)
        return self.valid

    def take(self, idx: np.ndarray) -> "Vec":
        """The rows at positions ``idx`` (a constant stays a constant)."""
        if self.const:
            return self
        valid = None if self.valid is None else self.valid[idx]
        return Vec(self.kind, self.data[idx], valid, self.dict)

    def broadcast(self, n: int) -> "Vec":
        """A full-length copy of a constant (non-constants are returned as they are)."""
        if not self.const:
            return self
        valid = None if self.valid is None else np.broadcast_to(self.valid, (n,))
        return Vec(self.kind, np.broadcast_to(self.data, (n,)), valid, self.dict)

    def const_value(self):
        """The Python value of a constant."""
        return self.to_list(1)[0]

    def to_list(self, n: int | None = None) -> list:
        """Python values (None for NULL): what the rows of a result hold."""
        v = self.broadcast(n) if (self.const and n is not None) else self
        kind = v.kind
        if kind == "null":
            return [None] * len(v.data)
        if kind == "str":
            codes = v.data
            values = v.dict.values
            if len(values) == 0:
                return [None] * len(codes)
            out = values[np.maximum(codes, 0)].tolist() if len(codes) else []
            if len(codes) and codes.min() < 0:
                for i in np.flatnonzero(codes < 0).tolist():
                    out[i] = None
            return out
        if kind == "obj":
            return list(v.data)
        if kind == "ts":
            out = format_ts(v.data)
        else:
            out = v.data.tolist()
        if v.valid is not None and len(out) and not v.valid.all():
            for i in np.flatnonzero(~v.valid).tolist():
                out[i] = None
        return out

    def decoded(self) -> np.ndarray:
        """Values as an object array with None for NULL (the slow, general form)."""
        return np.array(self.to_list(len(self.data)) + [None], dtype=object)[:-1]


# -- the running query's deadline (checked inside per-row Python loops) -------------

_running = threading.local()  # greenlet-local under gevent's monkey patching


def set_deadline(deadline) -> None:
    """Make ``deadline`` (an object with ``check()``) the current one of this thread, or clear it."""
    _running.deadline = deadline


def tick(i: int) -> None:
    """Every 16k rows of a per-row loop, check the running query's time limit."""
    if not i & 0x3FFF:
        deadline = getattr(_running, "deadline", None)
        if deadline is not None:
            deadline.check()


# -- timestamps ----------------------------------------------------------------

def format_ts(ms: np.ndarray) -> list:
    """Canonical ISO strings (``...T12:34:56.789Z``) of epoch milliseconds."""
    if len(ms) == 0:
        return []
    text = np.datetime_as_string(np.asarray(ms, np.int64).astype("datetime64[ms]"), unit="ms")
    return [s + "Z" for s in text.tolist()]


def parse_ts_loose(s) -> int | None:
    """Epoch ms of an ISO date or timestamp string (``2026-02-10``, ``...T12:00Z``, offsets), else None."""
    from datetime import datetime, timezone
    if not isinstance(s, str) or not (4 <= len(s) <= 40):
        return None
    if s[-1] in "Zz":  # NOTE: Python 3.10's fromisoformat does not read a "Z" suffix
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000) if dt.year > 1 else None


_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()


def parse_ts_canonical(s: str) -> int | None:
    """Epoch ms of one canonical ISO string (``kind_of(s) == "ts"``), or None if it is no real date."""
    from datetime import date
    try:
        days = date(int(s[0:4]), int(s[5:7]), int(s[8:10])).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    h, mi, sec = int(s[11:13]), int(s[14:16]), int(s[17:19])
    if h > 23 or mi > 59 or sec > 59:
        return None
    return ((days * 24 + h) * 60 + mi) * 60000 + sec * 1000 + int(s[20:23])


def ts_threshold(s: str, strict: bool) -> int:
    """Smallest epoch ms whose ISO text is >= s (``strict``: > s): ISO text order is time order."""
    lo, hi = -62135596800000, 253402300799999 + 1  # 0001-01-01 .. one past 9999-12-31T23:59:59.999
    while lo < hi:  # binary search on the monotonic ms -> text mapping
        mid = (lo + hi) // 2
        text = format_ts(np.array([mid], np.int64))[0]
        if (text > s) if strict else (text >= s):
            hi = mid
        else:
            lo = mid + 1
    return lo


# -- building vectors from Python values ----------------------------------------------

def kind_of(value) -> str:
    """The kind a single Python value would have in a column."""
    t = type(value)
    if value is None:
        return "null"
    if t is bool:
        return "bool"
    if t is int:
        return "int" if INT64_MIN <= value <= INT64_MAX else "obj"
    if t is float:
        return "float"
    if t is str:
        return "ts" if len(value) == 24 and _CANON_TS.match(value) else "str"
    return "obj"


def merge_kinds(a: str, b: str) -> str:
    """The kind a column becomes when it holds values of kinds ``a`` and ``b``."""
    if a == b or b == "null":
        return a
    if a == "null":
        return b
    pair = {a, b}
    if pair == {"int", "float"}:
        return "float"
    if pair == {"ts", "str"}:
        return "str"
    return "obj"


def encode_strings(values: list) -> Vec:
    """Dictionary-encode a list of str/None."""
    index: dict = {}
    setdefault = index.setdefault
    codes = np.fromiter((-1 if s is None else setdefault(s, len(index)) for s in values), np.int32, len(values))
    return Vec("str", codes, None, Dictionary(np.array(list(index) + [""], dtype=object)[:-1]))


def parse_ts_array(values: list) -> tuple[np.ndarray, bool]:
    """(ms, all_ok) for a list of str/None candidates of canonical ISO form."""
    arr = np.array(values + [None], dtype=object)[:-1]
    ms, ok = core().iso_parse(arr)
    ms = np.asarray(ms, np.int64)
    ok = np.asarray(ok, bool)
    nonnull = np.not_equal(arr, None)
    return ms, bool(ok[nonnull].all())


def from_values(values: list, kind: str | None = None) -> Vec:
    """A vector of Python values (None is NULL), of the narrowest kind that holds them all."""
    n = len(values)
    types = set(map(type, values))
    has_null = type(None) in types
    types.discard(type(None))
    if kind is None:
        if not types:
            kind = "null"
        elif types == {int}:
            kind = "int"
        elif types == {float} or types == {int, float}:
            kind = "float"
        elif types == {bool}:
            kind = "bool"
        elif types == {str}:
            first = next(v for v in values if v is not None)
            kind = "ts" if kind_of(first) == "ts" else "str"
        else:
            kind = "obj"
    if kind == "null":
        return Vec.nulls(n)
    valid = np.fromiter((v is not None for v in values), bool, n) if has_null else None
    if kind == "ts":
        ms, ok = parse_ts_array(values)
        if ok:
            return Vec("ts", ms, valid)
        kind = "str"
    if kind == "str":
        return encode_strings(values)
    if kind == "int":
        try:
            data = np.fromiter((0 if v is None else v for v in values), np.int64, n) if has_null \
                else np.fromiter(values, np.int64, n)
        except OverflowError:  # beyond int64: keep the exact Python ints
            kind = "obj"
        else:
            return Vec("int", data, valid)
    if kind == "float":
        try:
            data = np.fromiter((0.0 if v is None else v for v in values), np.float64, n) if has_null \
                else np.fromiter(values, np.float64, n)
        except OverflowError:  # an int beyond float range among floats: keep the exact values
            kind = "obj"
        else:
            return Vec(kind, data, valid)
    if kind == "obj":
        return Vec("obj", np.array(values + [None], dtype=object)[:-1])
    data = np.fromiter((False if v is None else v for v in values), bool, n)
    return Vec(kind, data, valid)


def as_kind(v: Vec, kind: str) -> Vec:
    """Convert ``v`` to ``kind`` (a wider kind per ``merge_kinds``)."""
    if v.kind == kind:
        return v
    n = len(v.data)
    if v.kind == "null":
        if kind == "str":
            return Vec("str", np.full(n, -1, np.int32), None, Dictionary(np.zeros(0, object)), v.const)
        if kind == "obj":
            return Vec("obj", np.full(n, None, object), None, None, v.const)
        dtype = {"bool": bool, "int": np.int64, "float": np.float64, "ts": np.int64}[kind]
        return Vec(kind, np.zeros(n, dtype), np.zeros(n, bool), None, v.const)
    if kind == "float" and v.kind in ("int", "bool"):
        return Vec("float", v.data.astype(np.float64), v.valid, None, v.const)
    if kind == "int" and v.kind == "bool":
        return Vec("int", v.data.astype(np.int64), v.valid, None, v.const)
    if kind == "str" and v.kind == "ts":
        out = encode_strings(v.to_list())
        out.const = v.const
        return out
    if kind == "obj":
        return Vec("obj", v.decoded(), None, None, v.const)
    raise SqlError(f"cannot convert {v.kind} values to {kind}")  # pragma: no cover - callers merge first


def narrow(v: Vec) -> Vec:
    """An ``obj`` vector re-typed to the narrowest kind its values allow (others unchanged)."""
    if v.kind != "obj":
        return v
    out = from_values(list(v.data))
    out.const = v.const
    return out


def concat(vecs: list[Vec]) -> Vec:
    """Rows of several vectors one after another (kinds merged, dictionaries merged)."""
    kind = "null"
    for v in vecs:
        kind = merge_kinds(kind, v.kind)
    vecs = [as_kind(v, kind) for v in vecs]
    if kind == "null":
        return Vec.nulls(sum(len(v.data) for v in vecs))
    if kind == "str":
        index: dict = {}
        parts = []
        for v in vecs:
            mapping = np.fromiter((index.setdefault(s, len(index)) for s in v.dict.values.tolist()),
                                  np.int32, len(v.dict.values))
            mapping = np.append(mapping, np.int32(-1))  # code -1 stays NULL
            parts.append(mapping[v.data])
        return Vec("str", np.concatenate(parts) if parts else np.zeros(0, np.int32), None,
                   Dictionary(np.array(list(index) + [""], dtype=object)[:-1]))
    data = np.concatenate([v.data for v in vecs])
    if kind == "obj":
        return Vec("obj", data)
    if any(v.valid is not None for v in vecs):
        valid = np.concatenate([np.ones(len(v.data), bool) if v.valid is None else v.valid for v in vecs])
    else:
        valid = None
    return Vec(kind, data, valid)
