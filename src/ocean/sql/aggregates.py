"""Hash grouping and per-group aggregates (COUNT, SUM, AVG, MIN, MAX, with DISTINCT; PERCENTILE,
MEDIAN; UNIQ_MERGE and QUANTILE_MERGE over sketch fields).

Group ids come from the compiled ``hash_group`` kernel over one int64 key per
row (``group_codes`` turns any vector into such keys); aggregates are the
``group_*`` kernels. Both have pure twins in ``ocean._reference.scan``.
"""
from __future__ import annotations

import json

import numpy as np

from ..errors import SqlError
from ..kernels import core
from .functions import describe, numeric_data
from .vectors import Vec, narrow, tick


def group_codes(v: Vec) -> tuple[np.ndarray, np.ndarray | None]:
    """(int64 keys, valid mask or None): equal values get equal keys; NULLs are masked."""
    kind = v.kind
    if kind == "null":
        n = len(v.data)
        return np.zeros(n, np.int64), np.zeros(n, bool)
    if kind in ("int", "ts"):
        return v.data, v.valid
    if kind == "bool":
        return v.data.astype(np.int64), v.valid
    if kind == "float":
        data = v.data + 0.0  # -0.0 -> 0.0: equal values, equal bits
        return data.view(np.int64), v.valid
    if kind == "str":
        codes = v.data
        valid = codes >= 0
        if v.dict.unique:
            return codes.astype(np.int64), valid
        ranks = np.append(v.dict.ranks(), np.int64(-1))
        return ranks[codes], valid
    # obj: values of mixed types, hashed through their JSON text
    index: dict = {}
    keys = np.zeros(len(v.data), np.int64)
    valid = np.ones(len(v.data), bool)
    for i, x in enumerate(v.data.tolist()):
        tick(i)
        if x is None:
            valid[i] = False
            continue
        token = (type(x) is str, json.dumps(x, sort_keys=True) if not isinstance(x, str) else x)
        if type(x) in (int, float) and not isinstance(x, bool):
            try:
                token = (False, repr(float(x)))  # 1 and 1.0 group together, as in SQLite
            except OverflowError:  # an int beyond float range groups by its own digits
                token = (False, repr(x))
        keys[i] = index.setdefault(token, len(index))
    return keys, valid


def group_ids(vecs: list[Vec], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(gid per row, first row of each group) for the combination of ``vecs`` (NULLs group together)."""
    scan = core()
    gid, first = None, None
    for v in vecs:
        keys, valid = group_codes(v.broadcast(n))
        g, f = scan.hash_group(keys, valid)
        g = np.asarray(g, np.int64)
        if gid is None:
            gid, first = g, np.asarray(f, np.int64)
            continue
        combined = gid * np.int64(len(f)) + g
        gid, first = scan.hash_group(combined, None)
        gid, first = np.asarray(gid, np.int64), np.asarray(first, np.int64)
    if gid is None:
        gid, first = np.zeros(n, np.int64), np.zeros(min(n, 1), np.int64)
    return gid, first


def _distinct_rows(gid: np.ndarray, v: Vec) -> np.ndarray:
    """Positions of the first row of each distinct (group, value) pair."""
    keys, valid = group_codes(v)
    vg, vf = core().hash_group(keys, valid)
    vg = np.asarray(vg, np.int64)
    _, first = core().hash_group(gid * np.int64(max(len(vf), 1)) + vg, None)
    return np.sort(np.asarray(first, np.int64))


def aggregate(name: str, star: bool, distinct: bool, arg: Vec | None, gid: np.ndarray, ngroups: int,
              param: Vec | None = None) -> Vec:
    """One aggregate over every group: COUNT(*), COUNT/SUM/AVG/MIN/MAX/MEDIAN([DISTINCT] x),
    PERCENTILE([DISTINCT] x, fraction) (``param`` is the fraction)."""
    scan = core()
    if star:
        if ngroups == 1:  # PERF: no GROUP BY (or one group): every row is in it, no scan of gid
            return Vec("int", np.array([len(gid)], np.int64))
        return Vec("int", np.asarray(scan.group_count(gid, None, ngroups), np.int64))
    if name in ("uniq_merge", "quantile_merge"):
        if distinct:
            raise SqlError(f"{name.upper()}() merges sketches; DISTINCT does not apply")
        return merge_sketches(name, arg, gid, ngroups, param)
    n = len(gid)
    arg = narrow(arg.broadcast(n))
    if distinct:
        rows = _distinct_rows(gid, arg)
        gid, arg = gid[rows], arg.take(rows)
    valid = arg.notnull()
    if name == "count":
        if arg.kind == "null":
            return Vec("int", np.zeros(ngroups, np.int64))
        return Vec("int", np.asarray(scan.group_count(gid, valid, ngroups), np.int64))
    if name in ("percentile", "median"):
        fraction = 0.5 if name == "median" else _fraction(param)
        if arg.kind not in ("int", "float", "bool", "null"):
            raise SqlError(f"{name.upper()}() needs numbers, got {describe(arg)}")
        return percentiles(gid, numeric_data(arg) if arg.kind != "null" else np.zeros(n), valid, ngroups, fraction)
    if arg.kind == "null":
        return Vec.nulls(ngroups)
    if name in ("sum", "avg"):
        if arg.kind not in ("int", "float", "bool"):
            raise SqlError(f"{name.upper()}() needs numbers, got {describe(arg)}")
        if arg.kind == "float":
            sums, counts = scan.group_sum_f64(gid, arg.data, valid, ngroups)
            overflow = False
        else:
            sums, counts, overflow = scan.group_sum_i64(gid, numeric_data(arg), valid, ngroups)
        sums, counts = np.asarray(sums), np.asarray(counts, np.int64)
        has = counts > 0
        if name == "sum":
            if overflow:
                raise SqlError("integer overflow in SUM(); CAST the values AS REAL to sum them approximately")
            return Vec(sums.dtype == np.float64 and "float" or "int", sums, None if has.all() else has)
        if overflow:  # exact integer sums overflowed: average the floats instead
            sums, counts = scan.group_sum_f64(gid, arg.data.astype(np.float64), valid, ngroups)
            sums, counts = np.asarray(sums), np.asarray(counts, np.int64)
        with np.errstate(all="ignore"):
            avg = np.asarray(sums, np.float64) / np.maximum(counts, 1)
        return Vec("float", avg, None if has.all() else has)
    # min / max
    is_max = name == "max"
    if arg.kind in ("int", "ts", "bool"):
        vals, has = scan.group_extreme_i64(gid, numeric_data(arg), valid, ngroups, is_max)
        vals, has = np.asarray(vals), np.asarray(has, bool)
        kind = arg.kind
        if kind == "bool":
            vals = vals.astype(bool)
        return Vec(kind, vals, None if has.all() else has)
    if arg.kind == "float":
        vals, has = scan.group_extreme_f64(gid, arg.data, valid, ngroups, is_max)
        has = np.asarray(has, bool)
        return Vec("float", np.asarray(vals), None if has.all() else has)
    if arg.kind == "str":
        ranks = arg.dict.ranks()
        rank_to_code = np.zeros(int(ranks.max()) + 1 if len(ranks) else 1, np.int32)
        rank_to_code[ranks] = np.arange(len(ranks), dtype=np.int32)
        row_ranks = np.append(ranks, np.int64(0))[arg.data]
        vals, has = scan.group_extreme_i64(gid, row_ranks, valid, ngroups, is_max)
        codes = np.where(np.asarray(has, bool), rank_to_code[np.asarray(vals)], -1).astype(np.int32)
        return Vec("str", codes, None, arg.dict)
    # obj: mixed values, in SQLite's cross-type order
    from .functions import _class_key
    best: list = [None] * ngroups
    for i, (g, x) in enumerate(zip(gid.tolist(), arg.data.tolist())):
        tick(i)
        if x is None:
            continue
        cur = best[g]
        if cur is None or (_class_key(x) > _class_key(cur) if is_max else _class_key(x) < _class_key(cur)):
            best[g] = x
    return Vec("obj", np.array(best + [None], dtype=object)[:-1])


def merge_sketches(name: str, sketches: Vec, gid: np.ndarray, ngroups: int, param: Vec | None) -> Vec:
    """UNIQ_MERGE(f): the distinct count of each group's uniq sketches together (their union, not
    the sum of their counts); QUANTILE_MERGE(f, q): quantile ``q`` of each group's dist sketches
    merged. NULL for a group without a sketch of that kind.

    PERF: one merge per row in Python (a compiled merge of two dense HLLs is a 16,384-register max).
    """
    want = core().Hll if name == "uniq_merge" else core().Dist
    fraction = _fraction(param, name) if name == "quantile_merge" else None
    merged: list = [None] * ngroups
    values = sketches.broadcast(len(gid)).data
    for i, (g, s) in enumerate(zip(gid.tolist(), values.tolist() if sketches.kind != "null" else [None] * len(gid))):
        tick(i)
        if s is None:
            continue
        if type(s) is not want:
            raise SqlError(f"{name.upper()}() needs a {'uniq' if want is core().Hll else 'dist'} field; "
                           f"this one holds {'dist' if want is core().Hll else 'uniq'} sketches")
        acc = merged[g]
        if acc is None:
            merged[g] = s.copy()
        else:
            acc.merge(s)
    if name == "uniq_merge":
        counts = np.array([0 if m is None else m.count() for m in merged], np.int64)
        has = np.array([m is not None for m in merged], bool)
        return Vec("int", counts, None if has.all() else has)
    out = [None if m is None else m.quantile(fraction) for m in merged]
    has = np.array([v is not None for v in out], bool)
    return Vec("float", np.array([0.0 if v is None else v for v in out], np.float64), None if has.all() else has)


def _fraction(param: Vec | None, name: str = "percentile") -> float:
    """PERCENTILE()'s (or QUANTILE_MERGE()'s) second argument: a constant number from 0 to 1
    (0.95 is the 95th percentile)."""
    label = name.upper()
    if param is None or not param.const or param.kind not in ("int", "float") or param.const_value() is None:
        raise SqlError(f"{label}()'s second argument must be a constant fraction from 0 to 1, like 0.95")
    p = float(param.const_value())
    if not 0.0 <= p <= 1.0:
        raise SqlError(f"{label}()'s fraction must be from 0 to 1 (0.95 is the 95th percentile), got {p:g}")
    return p


_PARTITION_GROUPS = 2048  # up to this many groups, select per group (linear); more: one lexsort (< 2**15)


def _two_ranks(x: np.ndarray, k0: int, k1: int):
    """The values of rank ``k0`` and ``k1`` (0-based, ascending) of ``x``, in linear time."""
    part = np.partition(x, k0)
    # PERF: rank k1 (k0 + 1) is the least of what lies above k0: one min, not a second selection
    # (1M rows: 1.4 ms + a min, against 8 ms for np.partition(x, (k0, k1)))
    return part[k0], (part[k1:].min() if k1 != k0 else part[k0])


def percentiles(gid: np.ndarray, values: np.ndarray, valid, ngroups: int, fraction: float) -> Vec:
    """The ``fraction`` percentile of each group's non-NULL values, exact, interpolated linearly
    between the two nearest ranks (numpy's default "linear" method, PostgreSQL's ``percentile_cont``).

    PERF: each group's two ranks are selected with ``np.partition`` (linear time) after one stable
    sort of the group ids; past ``_PARTITION_GROUPS`` groups the Python loop would cost more than one
    ``lexsort`` by (group, value). bench/bench_sql.py, 1M rows: 3.9 ms without GROUP BY and
    14 ms by 6 groups, against DuckDB's ``quantile_cont`` on one thread at 27 and 33 ms (a lexsort
    by 6 groups alone took ~150 ms). NaN sorts last, as numpy does.
    """
    x = values.astype(np.float64, copy=False)
    if valid is not None:
        keep = np.broadcast_to(valid, x.shape)
        x, gid = x[keep], gid[keep]
    if ngroups == 1:
        counts = np.array([len(x)], np.int64)
    else:
        counts = np.bincount(gid, minlength=ngroups) if len(gid) else np.zeros(ngroups, np.int64)
    h = fraction * np.maximum(counts - 1, 0)
    lo = np.floor(h).astype(np.int64)
    t = h - lo
    hi = np.minimum(lo + 1, np.maximum(counts - 1, 0))
    if ngroups == 1:
        if not len(x):
            return Vec.nulls(1)
        a, b = _two_ranks(x, int(lo[0]), int(hi[0]))
    elif ngroups <= _PARTITION_GROUPS:
        # rows by group, then each group's two ranks selected. PERF: ids under 2**15 sort as int16,
        # which numpy's stable sort does by radix: 10 ms for 1M rows, against 42 ms as int64
        xs = x[np.argsort(gid.astype(np.int16), kind="stable")]
        ends = np.cumsum(counts)
        a, b = np.full(ngroups, np.nan), np.full(ngroups, np.nan)
        for g in np.flatnonzero(counts).tolist():
            a[g], b[g] = _two_ranks(xs[ends[g] - counts[g]:ends[g]], int(lo[g]), int(hi[g]))
    else:
        order = np.lexsort((x, gid))
        xs = x[order]
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        has = counts > 0
        a = np.where(has, xs[np.minimum(starts + lo, max(len(xs) - 1, 0))] if len(xs) else 0.0, np.nan)
        b = np.where(has, xs[np.minimum(starts + hi, max(len(xs) - 1, 0))] if len(xs) else 0.0, np.nan)
    # numpy's _lerp: exact at both ends, monotonic in t
    diff = b - a
    with np.errstate(all="ignore"):
        out = np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)
        out = np.where(diff == 0, a, out)  # equal neighbours (or infinities): no inf - inf
    has = counts > 0
    return Vec("float", np.asarray(out, np.float64), None if has.all() else has)
