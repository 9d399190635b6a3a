"""Scalar SQL operators and functions over ``Vec`` columns, vectorised with numpy.

Semantics follow SQLite where SQLite is clear (three-valued logic, NULL
propagation, integer division truncating toward zero, division by zero giving
NULL, ``LIKE`` case-insensitive for ASCII, ``SUBSTR`` positions) and are strict
where SQLite silently coerces: arithmetic on text, or comparing a number with
text, is an ``SqlError`` that says which types met. A column holding mixed
types (kind ``obj``) compares in SQLite's cross-type order (NULL < numbers < text).

String functions work on a column's dictionary (each distinct string once),
not on every row.
"""
from __future__ import annotations

import json
import math
import operator
import re

import numpy as np

from ..errors import SqlError
from . import calendar
from .vectors import (NUMERIC, Dictionary, Vec, as_kind, encode_strings, merge_kinds, narrow, parse_ts_loose, tick,
                      ts_threshold)

AGGREGATES = frozenset({"count", "sum", "avg", "min", "max", "percentile", "median", "uniq_merge", "quantile_merge"})
AGGREGATE_ARGS = {"percentile": 2, "quantile_merge": 2}  # arguments of an aggregate that takes more than one
SKETCH_AGGREGATES = frozenset({"uniq_merge", "quantile_merge"})  # they read a field's sketches, not its values

# name -> (fewest, most) arguments
SCALARS = {
    "coalesce": (1, 99), "ifnull": (2, 2), "nullif": (2, 2),
    "lower": (1, 1), "upper": (1, 1), "length": (1, 1), "substr": (2, 3), "substring": (2, 3),
    "trim": (1, 1), "round": (1, 2), "abs": (1, 1),
    "date_trunc": (2, 3), "time_bucket": (2, 3),
    "now": (0, 0),
}

_CMP = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_FLIP = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
BUCKET_ORIGIN_MS = 946_857_600_000  # 2000-01-03T00:00:00Z, a Monday (TimescaleDB's default origin)


# -- helpers -------------------------------------------------------------------

def describe(v: Vec) -> str:
    """How a type is named in error messages."""
    return {"null": "NULL", "bool": "a boolean", "int": "an integer", "float": "a real number", "ts": "a timestamp",
            "str": "text", "obj": "mixed values"}[v.kind]


def length(*vecs: Vec) -> int:
    """Rows of the result: a non-constant's length (constants broadcast to it), else 1."""
    for v in vecs:
        if not v.const:
            return len(v.data)
    return 1


def is_const(*vecs: Vec) -> bool:
    return all(v.const for v in vecs)


def and_masks(*masks):
    out = None
    for m in masks:
        if m is None:
            continue
        out = m if out is None else (out & m)
    return out


def nulls_like(*vecs: Vec, kind: str = "null") -> Vec:
    n = length(*vecs)
    v = Vec.nulls(n) if kind == "null" else as_kind(Vec.nulls(n), kind)
    v.const = is_const(*vecs)
    return v


def bool_vec(data: np.ndarray, valid, const: bool) -> Vec:
    if valid is not None and not isinstance(valid, np.ndarray):
        valid = np.asarray(valid)
    return Vec("bool", np.asarray(data, bool), valid, None, const)


def numeric_data(v: Vec) -> np.ndarray:
    return v.data.astype(np.int64) if v.kind == "bool" else v.data


def require_numeric(v: Vec, what: str) -> Vec:
    v = narrow(v)
    if v.kind not in NUMERIC and v.kind != "null":
        raise SqlError(f"{what} needs numbers, got {describe(v)}")
    return v


def per_entry_lookup(values: np.ndarray, codes: np.ndarray, fill) -> np.ndarray:
    """``values[codes]`` where code -1 (NULL) gives ``fill``."""
    ext = np.append(values, np.array([fill], dtype=values.dtype if len(values) else None))
    return ext[codes]


# -- logic -----------------------------------------------------------------------

def truth(v: Vec, what: str = "a condition") -> Vec:
    """A bool vector from a condition value (numbers: non-zero is true)."""
    v = narrow(v)
    if v.kind == "bool":
        return v
    if v.kind == "null":
        return bool_vec(np.zeros(len(v.data), bool), np.zeros(len(v.data), bool), v.const)
    if v.kind in ("int", "float"):
        return bool_vec(v.data != 0, v.valid, v.const)
    raise SqlError(f"{what} must be true or false, got {describe(v)}")


def logic_and(a: Vec, b: Vec) -> Vec:
    a, b = truth(a, "AND"), truth(b, "AND")
    a_true = a.data if a.valid is None else a.data & a.valid
    b_true = b.data if b.valid is None else b.data & b.valid
    a_false = ~a.data if a.valid is None else ~a.data & a.valid
    b_false = ~b.data if b.valid is None else ~b.data & b.valid
    true_ = a_true & b_true
    valid = None if (a.valid is None and b.valid is None) else (true_ | a_false | b_false)
    return bool_vec(true_, valid, is_const(a, b))


def logic_or(a: Vec, b: Vec) -> Vec:
    a, b = truth(a, "OR"), truth(b, "OR")
    a_true = a.data if a.valid is None else a.data & a.valid
    b_true = b.data if b.valid is None else b.data & b.valid
    a_false = ~a.data if a.valid is None else ~a.data & a.valid
    b_false = ~b.data if b.valid is None else ~b.data & b.valid
    true_ = a_true | b_true
    valid = None if (a.valid is None and b.valid is None) else (true_ | (a_false & b_false))
    return bool_vec(true_, valid, is_const(a, b))


def logic_not(a: Vec) -> Vec:
    a = truth(a, "NOT")
    return bool_vec(~a.data, a.valid, a.const)


def is_null(a: Vec, negated: bool) -> Vec:
    mask = a.notnull()
    n = len(a.data)
    if mask is None:
        mask = np.ones(n, bool)
    return bool_vec(mask if negated else ~mask, None, a.const)


# -- arithmetic ----------------------------------------------------------------------

def arith(op: str, a: Vec, b: Vec) -> Vec:
    """``a op b`` for + - * / % over numbers (NULL in, NULL out; x/0 is NULL)."""
    a = require_numeric(a, f"'{op}'")
    b = require_numeric(b, f"'{op}'")
    if a.kind == "null" or b.kind == "null":
        return nulls_like(a, b)
    kind = "float" if "float" in (a.kind, b.kind) else "int"
    x, y = numeric_data(a), numeric_data(b)
    if kind == "float":
        x, y = x.astype(np.float64, copy=False), y.astype(np.float64, copy=False)
    valid = and_masks(a.valid, b.valid)
    with np.errstate(all="ignore"):
        if op == "+":
            data = x + y
            if kind == "int" and ((x ^ data) & (y ^ data) < 0).any():
                raise SqlError("integer overflow in '+'")
        elif op == "-":
            data = x - y
            if kind == "int" and ((x ^ y) & (x ^ data) < 0).any():
                raise SqlError("integer overflow in '-'")
        elif op == "*":
            data = x * y
            if kind == "int" and (np.abs(x.astype(np.float64) * y) >= 9.2e18).any():
                raise SqlError("integer overflow in '*'")
        else:
            if op == "%" and kind == "float":  # SQLite: % truncates both sides to integers, answers a real
                x, y = np.trunc(x), np.trunc(y)
            zero = y == 0
            ys = np.where(zero, 1, y) if zero.any() else y
            if op == "/":
                if kind == "int":
                    q = x // ys
                    q = q + (((x - q * ys) != 0) & ((x < 0) != (ys < 0)))
                    data = q
                else:
                    data = x / ys
            else:
                data = np.fmod(x, ys)
            if zero.any():
                nz = ~zero
                valid = nz if valid is None else (valid & nz)
    if valid is not None:
        valid = np.broadcast_to(valid, data.shape)
    return Vec(kind, np.asarray(data), valid, None, is_const(a, b))


def negate(a: Vec) -> Vec:
    a = require_numeric(a, "'-'")
    if a.kind == "null":
        return a
    return Vec("int" if a.kind == "bool" else a.kind, -numeric_data(a), a.valid, None, a.const)


# -- text ------------------------------------------------------------------------------

def _float_text(x: float) -> str:
    if x != x or x in (math.inf, -math.inf):
        return str(x)
    return repr(x)


def _obj_text(x):
    if x is None:
        return None
    if type(x) is str:
        return x
    if type(x) is bool:
        return "true" if x else "false"
    if type(x) is float:
        return _float_text(x)
    if type(x) is int:
        return str(x)
    return json.dumps(x, separators=(",", ":"), ensure_ascii=False)


def to_text(v: Vec) -> Vec:
    """The text form of any vector (numbers as SQLite prints them, JSON values as JSON)."""
    if v.kind == "str":
        return v
    if v.kind == "null":
        return as_kind(v, "str")
    if v.kind == "ts":
        return as_kind(v, "str")
    values = v.to_list()
    out = encode_strings([_obj_text(x) for x in values])
    out.const = v.const
    return out


def map_strings(v: Vec, fn, unique: bool = False) -> Vec:
    """Apply ``fn`` to each distinct string of a text vector (NULL stays NULL)."""
    v = to_text(v)
    new = np.array([fn(s) for s in v.dict.values.tolist()] + [""], dtype=object)[:-1]
    return Vec("str", v.data, None, Dictionary(new, unique=unique and v.dict.unique), v.const)


def map_strings_to(v: Vec, fn, kind: str) -> Vec:
    """Apply ``fn`` (str -> number) to each distinct string; result of ``kind``."""
    v = to_text(v)
    dtype = np.int64 if kind == "int" else np.float64
    per = np.array([fn(s) for s in v.dict.values.tolist()], dtype=dtype)
    codes = v.data
    data = per_entry_lookup(per, codes, 0)
    return Vec(kind, data, codes >= 0, None, v.const)


def concat_text(a: Vec, b: Vec) -> Vec:
    if a.kind == "null" or b.kind == "null":
        return nulls_like(a, b, kind="str")
    a, b = to_text(a), to_text(b)
    if b.const:
        s = b.const_value()
        return map_strings(a, lambda x: x + s, unique=True)
    if a.const:
        s = a.const_value()
        return map_strings(b, lambda x: s + x, unique=True)
    left, right = a.to_list(), b.to_list()
    out = []
    for i, (x, y) in enumerate(zip(left, right)):
        tick(i)
        out.append(None if x is None or y is None else x + y)
    return encode_strings(out)


def _like_regex(pattern: str):
    parts = []
    for ch in pattern:
        if ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts) + r"\Z", re.IGNORECASE | re.ASCII | re.DOTALL)


def like(a: Vec, pattern: Vec, negated: bool) -> Vec:
    """``a [NOT] LIKE pattern``: % any run, _ one character, ASCII case-insensitive."""
    if a.kind == "null" or pattern.kind == "null":
        return bool_vec(np.zeros(length(a, pattern), bool), np.zeros(length(a, pattern), bool), is_const(a, pattern))
    a, pattern = to_text(a), to_text(pattern)
    if pattern.const:
        rx = _like_regex(pattern.const_value())
        per = np.array([bool(rx.match(s)) != negated for s in a.dict.values.tolist()], dtype=bool)
        data = per_entry_lookup(per, a.data, False)
        return bool_vec(data, a.data >= 0, a.const)
    left, pats = a.to_list(length(a, pattern)), pattern.to_list(length(a, pattern))
    data = np.zeros(len(left), bool)
    valid = np.zeros(len(left), bool)
    for i, (x, p) in enumerate(zip(left, pats)):
        tick(i)
        if x is not None and p is not None:
            valid[i] = True
            data[i] = bool(_like_regex(p).match(x)) != negated
    return bool_vec(data, valid, False)


# -- comparison ----------------------------------------------------------------------

def _class_key(x):
    """SQLite's cross-type order: numbers < text < JSON values."""
    if type(x) in (bool, int, float):
        return (0, x)
    if type(x) is str:
        return (1, x)
    return (2, json.dumps(x, sort_keys=True))


def compare(op: str, a: Vec, b: Vec) -> Vec:
    """``a op b`` for = != < <= > >=, NULL when either side is NULL."""
    ka, kb = a.kind, b.kind
    if ka == "obj" or kb == "obj":
        a, b = narrow(a), narrow(b)
        ka, kb = a.kind, b.kind
    if ka == "null" or kb == "null":
        n = length(a, b)
        return bool_vec(np.zeros(n, bool), np.zeros(n, bool), is_const(a, b))
    fn = _CMP[op]
    if ka in NUMERIC and kb in NUMERIC:
        x, y = a.data, b.data
        if ka == "bool" or kb == "bool":
            x, y = numeric_data(a), numeric_data(b)
        return bool_vec(fn(x, y), and_masks(a.valid, b.valid), is_const(a, b))
    if ka == "ts" and kb == "ts":
        return bool_vec(fn(a.data, b.data), and_masks(a.valid, b.valid), is_const(a, b))
    if ka == "str" and kb == "str":
        return _compare_str(op, a, b)
    if {ka, kb} == {"ts", "str"}:
        if ka == "str":
            return compare(_FLIP[op], b, a)
        if b.const:
            return _compare_ts_text(op, a, b.const_value())
        return _compare_str(op, as_kind(a, "str"), b)
    if ka == "obj" or kb == "obj":
        return _compare_objects(op, a, b)
    raise SqlError(f"cannot compare {describe(a)} with {describe(b)} "
                   f"(write the value with the column's type, or CAST one side)")


def _compare_ts_text(op: str, a: Vec, s: str) -> Vec:
    """Timestamp column vs a text constant, exactly as their ISO texts compare (no row formatting)."""
    ge = ts_threshold(s, strict=False)  # iso(ms) >= s  <=>  ms >= ge
    gt = ts_threshold(s, strict=True)   # iso(ms) >  s  <=>  ms >= gt
    x = a.data
    data = {"<": x < ge, "<=": x < gt, ">": x >= gt, ">=": x >= ge,
            "=": (x >= ge) & (x < gt), "!=": (x < ge) | (x >= gt)}[op]
    return bool_vec(data, a.valid, a.const)


def _compare_str(op: str, a: Vec, b: Vec) -> Vec:
    fn = _CMP[op]
    if a.const and not b.const:
        return _compare_str(_FLIP[op], b, a)
    if b.const:
        s = b.const_value()
        codes = a.data
        if op in ("=", "!=") and a.dict.unique:
            code = a.dict.code_of(s)
            data = (codes == code) if code >= 0 else np.zeros(len(codes), bool)
            if op == "!=":
                data = ~data
        else:
            per = np.asarray(fn(a.dict.values, s), dtype=bool) if len(a.dict) else np.zeros(0, bool)
            data = per_entry_lookup(per, codes, False)
        return bool_vec(data, codes >= 0, a.const)
    union = np.concatenate([a.dict.values, b.dict.values])
    if len(union):
        _, inverse = np.unique(union, return_inverse=True)
        inverse = inverse.reshape(-1).astype(np.int64)
    else:
        inverse = np.zeros(0, np.int64)
    ra = per_entry_lookup(inverse[:len(a.dict)], a.data, -1)
    rb = per_entry_lookup(inverse[len(a.dict):], b.data, -1)
    return bool_vec(fn(ra, rb), (a.data >= 0) & (b.data >= 0), False)


def _compare_objects(op: str, a: Vec, b: Vec) -> Vec:
    fn = _CMP[op]
    n = length(a, b)
    left, right = a.to_list(n), b.to_list(n)
    data = np.zeros(n, bool)
    valid = np.zeros(n, bool)
    for i, (x, y) in enumerate(zip(left, right)):
        tick(i)
        if x is not None and y is not None:
            valid[i] = True
            data[i] = fn(_class_key(x), _class_key(y))
    return bool_vec(data, valid, is_const(a, b))


def null_safe_equal(a: Vec, b: Vec) -> Vec:
    """``a IS b``: like = but NULL IS NULL is true and never NULL."""
    eq = compare("=", a, b)
    n = length(a, b)
    na, nb = a.notnull(), b.notnull()
    na = np.ones(n, bool) if na is None else np.broadcast_to(na, (n,))
    nb = np.ones(n, bool) if nb is None else np.broadcast_to(nb, (n,))
    eq_true = np.broadcast_to(eq.data if eq.valid is None else eq.data & eq.valid, (n,))
    data = np.where(na & nb, eq_true, ~na & ~nb)
    return bool_vec(data, None, is_const(a, b))


def in_list(a: Vec, items: list, negated: bool) -> Vec:
    """``a [NOT] IN (items)`` with SQL's NULL rules."""
    if all(i.const for i in items) and a.kind in ("int", "float", "str", "ts") and \
            all(i.kind == a.kind or (a.kind in ("int", "float") and i.kind in ("int", "float")) for i in items):
        values = [i.const_value() for i in items]
        if a.kind == "str":
            if a.dict.unique:
                codes = [a.dict.code_of(s) for s in values]
                data = np.isin(a.data, [c for c in codes if c >= 0])
            else:
                wanted = set(values)
                per = np.array([s in wanted for s in a.dict.values.tolist()], dtype=bool)
                data = per_entry_lookup(per, a.data, False)
        else:
            data = np.isin(a.data, np.array([numeric_data(i)[0] for i in items]))
        out = bool_vec(data, a.notnull(), a.const)
        return logic_not(out) if negated else out
    out = None
    for item in items:
        eq = compare("=", a, item)
        out = eq if out is None else logic_or(out, eq)
    return logic_not(out) if negated else out


# -- choosing among values (CASE, COALESCE) ---------------------------------------------------

def choose(vecs: list[Vec], chosen: np.ndarray, n: int) -> Vec:
    """Row i from ``vecs[chosen[i]]`` (-1: NULL), the kinds of the vecs chosen anywhere merged.

    NOTE: only chosen vecs count, as SQLite types each value: COALESCE(2, real_col) is
    the integer 2 on every row, so 2 / 4 stays integer division (found by the differential fuzz).
    """
    used = [bool((chosen == i).any()) for i in range(len(vecs))]
    kind = "null"
    for v, u in zip(vecs, used):
        if u:
            kind = merge_kinds(kind, v.kind)
    if kind == "null":
        return Vec.nulls(n)
    vecs = [as_kind(v, kind).broadcast(n) if u else None for v, u in zip(vecs, used)]
    if kind == "str":
        index: dict = {}
        codes = np.full(n, -1, np.int32)
        for i, v in enumerate(vecs):
            rows = chosen == i
            if v is None:
                continue
            mapping = np.fromiter((index.setdefault(s, len(index)) for s in v.dict.values.tolist()),
                                  np.int32, len(v.dict))
            codes[rows] = per_entry_lookup(mapping, v.data[rows], -1)
        return Vec("str", codes, None, Dictionary(np.array(list(index) + [""], dtype=object)[:-1]))
    if kind == "obj":
        data = np.full(n, None, object)
        for i, v in enumerate(vecs):
            if v is not None:
                rows = chosen == i
                data[rows] = v.data[rows]
        return Vec("obj", data)
    data = np.zeros(n, next(v for v in vecs if v is not None).data.dtype)
    valid = np.zeros(n, bool)
    for i, v in enumerate(vecs):
        if v is None:
            continue
        rows = chosen == i
        data[rows] = v.data[rows]
        valid[rows] = True if v.valid is None else v.valid[rows]
    return Vec(kind, data, None if valid.all() else valid)


def coalesce(args: list[Vec]) -> Vec:
    n = length(*args)
    chosen = np.full(n, -1, np.int64)
    for i, v in enumerate(args):
        mask = v.notnull()
        mask = np.ones(n, bool) if mask is None else np.broadcast_to(mask, (n,))
        chosen[(chosen < 0) & mask] = i
    out = choose(args, chosen, n)
    out.const = is_const(*args)
    if out.const:
        out = out.take(np.zeros(1, np.int64))
        out.const = True
    return out


def case(conditions: list[Vec], results: list[Vec], default: Vec | None, n: int) -> Vec:
    chosen = np.full(n, -1, np.int64)
    for i, cond in enumerate(conditions):
        t = truth(cond, "WHEN")
        hit = t.data if t.valid is None else t.data & t.valid
        hit = np.broadcast_to(hit, (n,))
        chosen[(chosen < 0) & hit] = i
    if default is not None:
        chosen[chosen < 0] = len(results)
        results = results + [default]
    return choose(results, chosen, n)


# -- numbers -----------------------------------------------------------------------------------

def round_(x: Vec, digits: Vec | None) -> Vec:
    x = require_numeric(x, "ROUND()")
    if x.kind == "null":
        return x
    nd = 0
    if digits is not None:
        if not digits.const or digits.kind not in ("int", "bool"):
            raise SqlError("ROUND()'s second argument must be a whole-number constant")
        nd = int(digits.const_value() or 0)
    f = 10.0 ** nd
    data = numeric_data(x).astype(np.float64)
    with np.errstate(all="ignore"):
        out = np.sign(data) * np.floor(np.abs(data) * f + 0.5) / f
        out = np.where(np.isfinite(out), out, data)
    return Vec("float", out, x.valid, None, x.const)


def abs_(x: Vec) -> Vec:
    x = require_numeric(x, "ABS()")
    if x.kind == "null":
        return x
    return Vec("int" if x.kind == "bool" else x.kind, np.abs(numeric_data(x)), x.valid, None, x.const)


def _prefix_number(s: str, integer: bool):
    m = re.match(r"\s*([+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?))", s)
    if not m:
        return 0 if integer else 0.0
    value = float(m.group(1))
    if integer:
        if not math.isfinite(value) or abs(value) >= 9.2e18:
            return 0
        return int(value)
    return value


def cast(x: Vec, type_name: str) -> Vec:
    if x.kind == "null":
        return x
    if type_name == "TEXT":
        return to_text(x)
    x = narrow(x)
    if type_name == "INTEGER":
        if x.kind in ("int", "bool"):
            return Vec("int", numeric_data(x), x.valid, None, x.const)
        if x.kind == "float":
            data = x.data
            ok = np.isfinite(data) & (np.abs(data) < 9.2e18)
            valid = and_masks(x.valid, ok if not ok.all() else None)
            return Vec("int", np.trunc(np.where(ok, data, 0)).astype(np.int64), valid, None, x.const)
        return map_strings_to(x, lambda s: _prefix_number(s, True), "int")
    if x.kind in NUMERIC:
        return Vec("float", numeric_data(x).astype(np.float64), x.valid, None, x.const)
    return map_strings_to(x, lambda s: _prefix_number(s, False), "float")


# -- text functions --------------------------------------------------------------------------

def _substr(s: str, p1: int, p2: int | None) -> str:
    """SQLite's substr(): 1-based; negative start counts from the end; negative length looks back."""
    n = len(s)
    neg = False
    if p2 is None:
        p2 = n + 1
    elif p2 < 0:
        p2, neg = -p2, True
    if p1 < 0:
        p1 += n
        if p1 < 0:
            p2 += p1
            if p2 < 0:
                p2 = 0
            p1 = 0
    elif p1 > 0:
        p1 -= 1
    elif p2 > 0:
        p2 -= 1
    if neg:
        p1 -= p2
        if p1 < 0:
            p2 += p1
            p1 = 0
    return s[p1:p1 + max(p2, 0)]


def _int_const(v: Vec, what: str) -> int:
    if not v.const or v.kind not in ("int", "bool"):
        raise SqlError(f"{what} must be a whole-number constant")
    return int(v.const_value())


def call_scalar(name: str, args: list[Vec], n: int) -> Vec:
    """Evaluate scalar function ``name`` (already checked by the planner) on ``args``."""
    if name in ("coalesce", "ifnull"):
        return coalesce(args)
    if name == "nullif":
        eq = compare("=", args[0], args[1])
        hit = eq.data if eq.valid is None else eq.data & eq.valid
        m = length(*args)
        chosen = np.where(np.broadcast_to(hit, (m,)), -1, 0)
        out = choose([args[0]], chosen, m)
        out.const = is_const(*args)
        return out
    if name in ("lower", "upper", "trim"):
        if args[0].kind == "null":
            return nulls_like(args[0], kind="str")
        fn = {"lower": str.lower, "upper": str.upper, "trim": str.strip}[name]
        return map_strings(args[0], fn)
    if name == "length":
        if args[0].kind == "null":
            return nulls_like(args[0], kind="int")
        return map_strings_to(args[0], len, "int")
    if name in ("substr", "substring"):
        if args[0].kind == "null" or any(a.kind == "null" for a in args[1:]):
            return nulls_like(*args, kind="str")
        start = _int_const(args[1], "SUBSTR()'s start")
        count = _int_const(args[2], "SUBSTR()'s length") if len(args) > 2 else None
        return map_strings(args[0], lambda s: _substr(s, start, count))
    if name == "round":
        return round_(args[0], args[1] if len(args) > 1 else None)
    if name == "abs":
        return abs_(args[0])
    if name == "date_trunc":
        return date_trunc(args[0], args[1], _zone_arg(args, "date_trunc"))
    if name == "time_bucket":
        return time_bucket(args[0], args[1], _zone_arg(args, "time_bucket"))
    raise SqlError(f"unknown function {name.upper()}()")  # pragma: no cover - the planner checks names


# -- time --------------------------------------------------------------------------------------

def as_timestamps(v: Vec, fn: str) -> Vec:
    """A ``ts`` vector from timestamps or ISO text (text that is not a date becomes NULL)."""
    v = narrow(v)
    if v.kind in ("ts", "null"):
        return v if v.kind == "ts" else as_kind(v, "ts")
    if v.kind == "str":
        per = [parse_ts_loose(s) for s in v.dict.values.tolist()]
        ok = np.array([p is not None for p in per] + [False], dtype=bool)
        ms = np.array([0 if p is None else p for p in per] + [0], dtype=np.int64)
        codes = v.data
        return Vec("ts", ms[codes], ok[codes], None, v.const)
    raise SqlError(f"{fn}() needs an ISO timestamp (like '2026-02-10T12:34:56.789Z'), got {describe(v)}")


def _month_floor(ms: np.ndarray, months: int) -> np.ndarray:
    return calendar.month_floor(ms, months)


def _zone_arg(args: list, fn: str) -> str:
    """The IANA zone of a date function's optional third argument (a text constant), or UTC."""
    if len(args) < 3:
        return "UTC"
    z = args[2]
    if not z.const or z.kind != "str":
        raise SqlError(f"{fn}()'s time zone must be an IANA name in quotes, like 'Europe/Paris'")
    return calendar.check_zone(z.const_value())


def add_interval(ts: Vec, months: int, ms: int, sign: int) -> Vec:
    """``ts ± interval``: months first (day of month clamped), then days and time, in UTC."""
    v = narrow(ts)
    if v.kind not in ("ts", "str", "null"):
        raise SqlError(f"an interval is added to a timestamp, got {describe(v)}")
    t = as_timestamps(v, "interval arithmetic")
    return Vec("ts", calendar.shift(t.data, months, ms, sign), t.valid, None, t.const)


UNITS_MS = {"millisecond": 1, "second": 1000, "minute": 60_000, "hour": 3_600_000, "day": DAY_MS}


def date_trunc(unit: Vec, ts: Vec, tz: str = "UTC") -> Vec:
    """``date_trunc('minute'|'hour'|'day'|'week'|'month'|..., ts [, zone])`` (weeks start on Monday).

    In a zone other than UTC, the rules are PostgreSQL's (see ``calendar``).
    """
    if not unit.const or unit.kind != "str":
        raise SqlError("date_trunc()'s first argument must be a unit in quotes, like 'day'")
    name = unit.const_value().lower().rstrip("s") if unit.const_value() else ""
    if name not in ("millisecond", "second", "minute", "hour", "day", "week", "month", "quarter", "year"):
        raise SqlError(f"date_trunc() unit must be second, minute, hour, day, week, month, quarter or year, "
                       f"got {unit.const_value()!r}")
    t = as_timestamps(ts, "date_trunc")
    ms = t.data
    off = calendar.offsets(ms, tz) if tz != "UTC" else None
    local = ms if off is None else ms + off
    if name in UNITS_MS and name != "day":  # keeps the instant's own offset (PostgreSQL)
        step = UNITS_MS[name]
        return Vec("ts", ms - local % step, t.valid, None, t.const)
    if name == "day":
        out = local - local % DAY_MS
    elif name == "week":  # 1970-01-01 was a Thursday: shift so that weeks start on Monday
        shifted = local + 3 * DAY_MS
        out = shifted - shifted % WEEK_MS - 3 * DAY_MS
    else:
        out = _month_floor(local, {"month": 1, "quarter": 3, "year": 12}[name])
    if off is not None:  # local midnight back to an instant, at that moment's offset
        out = calendar.local_to_utc(out, tz)
    return Vec("ts", out, t.valid, None, t.const)


_INTERVAL = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*\Z", re.IGNORECASE)
_INTERVAL_UNITS = {
    "ms": 1, "millisecond": 1, "milliseconds": 1,
    "s": 1000, "sec": 1000, "secs": 1000, "second": 1000, "seconds": 1000,
    "m": 60_000, "min": 60_000, "mins": 60_000, "minute": 60_000, "minutes": 60_000,
    "h": 3_600_000, "hr": 3_600_000, "hrs": 3_600_000, "hour": 3_600_000, "hours": 3_600_000,
    "d": DAY_MS, "day": DAY_MS, "days": DAY_MS, "w": WEEK_MS, "week": WEEK_MS, "weeks": WEEK_MS,
}


def interval_ms(value) -> int:
    """Milliseconds of an interval: '5 minutes', '1 hour', '15m', '1d' (a bare number is seconds)."""
    if type(value) in (int, float) and value > 0:
        return int(value * 1000)
    if isinstance(value, str):
        m = _INTERVAL.match(value)
        if m and m.group(2).lower() in _INTERVAL_UNITS or (m and m.group(2) == ""):
            unit = _INTERVAL_UNITS[m.group(2).lower()] if m.group(2) else 1000
            ms = int(float(m.group(1)) * unit)
            if ms > 0:
                return ms
    raise SqlError(f"time_bucket() interval must be like '5 minutes', '1 hour' or '1 day', got {value!r} "
                   f"(months vary in length: use date_trunc('month', ts))")


def time_bucket(interval: Vec, ts: Vec, tz: str = "UTC") -> Vec:
    """``time_bucket('15 minutes', ts [, zone])``: the start of ts's bucket (buckets from 2000-01-03, a
    Monday, at midnight in the zone).

    In a zone, a bucket of whole days starts at local midnight (a DST day is 23 or 25 hours);
    a shorter one keeps the instant's own offset, as ``date_trunc`` does below a day.
    """
    if not interval.const:
        raise SqlError("time_bucket()'s interval must be a constant, like '5 minutes'")
    step = interval_ms(interval.const_value())
    t = as_timestamps(ts, "time_bucket")
    if tz == "UTC":
        rel = t.data - BUCKET_ORIGIN_MS
        return Vec("ts", rel - rel % step + BUCKET_ORIGIN_MS, t.valid, None, t.const)
    ms = t.data
    rel = ms + calendar.offsets(ms, tz) - BUCKET_ORIGIN_MS  # local time since local 2000-01-03 00:00
    if step % DAY_MS:
        return Vec("ts", ms - rel % step, t.valid, None, t.const)
    return Vec("ts", calendar.local_to_utc(rel - rel % step + BUCKET_ORIGIN_MS, tz), t.valid, None, t.const)


__all__ = ["AGGREGATES", "SCALARS", "arith", "compare", "call_scalar", "case", "cast", "concat_text", "in_list",
           "is_null", "like", "logic_and", "logic_not", "logic_or", "negate", "null_safe_equal", "truth"]
