"""Pure twin of ``_scan.pxi``: column-scan kernels for SQL (ISO parsing, hash group-by, aggregates).

Same names, arguments and results as the compiled kernels; numpy and plain
Python here, so it is the readable statement of what each kernel computes.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

import numpy as np

_CANON = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{3})Z\Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso_parse(values):
    """Epoch ms of canonical ISO strings ``YYYY-MM-DDTHH:MM:SS.mmmZ``.

    Args:
        values: object array of str/None/anything.
    Returns:
        (ms int64 array, ok uint8 array); ok is 0 (and ms 0) where a value is not a
        canonical, valid timestamp (None included).
    """
    n = len(values)
    ms = np.zeros(n, np.int64)
    ok = np.zeros(n, np.uint8)
    for i, s in enumerate(values):
        if type(s) is not str or len(s) != 24:
            continue
        m = _CANON.match(s)
        if not m:
            continue
        y, mo, d, h, mi, sec, frac = map(int, m.groups())
        if y < 1 or h > 23 or mi > 59 or sec > 59:
            continue
        try:
            dt = datetime(y, mo, d, h, mi, sec, tzinfo=timezone.utc)
        except ValueError:
            continue
        delta = dt - _EPOCH
        ms[i] = (delta.days * 86400 + delta.seconds) * 1000 + frac
        ok[i] = 1
    return ms, ok


def hash_group(keys, valid=None):
    """Group ids of int64 ``keys``, numbered in order of first appearance.

    Args:
        keys: int64 array.
        valid: None (no NULLs) or a bool/uint8 array; all NULL rows form one group.
    Returns:
        (gid int64 array, first int64 array): each row's group, and the first row of each group.
    """
    keys = np.asarray(keys, np.int64)
    n = len(keys)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if valid is not None:
        valid = np.asarray(valid, bool)
        keys = keys.copy()
        # NULLs: one group of their own, told apart by a second key
        _, first, inverse = np.unique(np.stack([keys * valid, ~valid]).T, axis=0, return_index=True,
                                      return_inverse=True)
    else:
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(first), np.int64)
    rank[order] = np.arange(len(first), dtype=np.int64)
    return rank[inverse], np.asarray(first, np.int64)[order]


def group_count(gid, valid, ngroups):
    """Rows per group; only rows where ``valid`` is true when it is given."""
    gid = np.asarray(gid, np.int64)
    if valid is not None:
        gid = gid[np.asarray(valid, bool)]
    return np.bincount(gid, minlength=ngroups).astype(np.int64)


def group_sum_i64(gid, values, valid, ngroups):
    """Per-group int64 sums of non-NULL values: (sums, counts, overflowed)."""
    gid = np.asarray(gid, np.int64)
    values = np.asarray(values, np.int64)
    if valid is not None:
        mask = np.asarray(valid, bool)
        gid, values = gid[mask], values[mask]
    sums = np.zeros(ngroups, dtype=object)
    sums[:] = 0
    np.add.at(sums, gid, values.astype(object))
    counts = np.bincount(gid, minlength=ngroups).astype(np.int64)
    overflow = any(not (-(1 << 63) <= s <= (1 << 63) - 1) for s in sums.tolist())
    out = np.array([s if -(1 << 63) <= s <= (1 << 63) - 1 else 0 for s in sums.tolist()], np.int64)
    return out, counts, overflow


def group_sum_f64(gid, values, valid, ngroups):
    """Per-group float64 sums of non-NULL values: (sums, counts)."""
    gid = np.asarray(gid, np.int64)
    values = np.asarray(values, np.float64)
    if valid is not None:
        mask = np.asarray(valid, bool)
        gid, values = gid[mask], values[mask]
    sums = np.zeros(ngroups, np.float64)
    np.add.at(sums, gid, values)
    return sums, np.bincount(gid, minlength=ngroups).astype(np.int64)


def _extreme(gid, values, valid, ngroups, is_max, dtype):
    gid = np.asarray(gid, np.int64)
    values = np.asarray(values, dtype)
    if valid is not None:
        mask = np.asarray(valid, bool)
        gid, values = gid[mask], values[mask]
    if dtype == np.float64:
        # NaN never wins (the compiled kernel compares with < and >)
        keep = ~np.isnan(values)
        gid, values = gid[keep], values[keep]
    out = np.zeros(ngroups, dtype)
    has = np.zeros(ngroups, np.uint8)
    if len(gid):
        if dtype == np.float64:
            init = -np.inf if is_max else np.inf
        else:
            info = np.iinfo(np.int64)
            init = info.min if is_max else info.max
        acc = np.full(ngroups, init, dtype)
        (np.maximum if is_max else np.minimum).at(acc, gid, values)
        has[np.unique(gid)] = 1
        out[has.astype(bool)] = acc[has.astype(bool)]
    return out, has


def group_extreme_i64(gid, values, valid, ngroups, is_max):
    """Per-group MIN (or MAX when ``is_max``) of non-NULL int64 values: (values, has)."""
    return _extreme(gid, values, valid, ngroups, is_max, np.int64)


def group_extreme_f64(gid, values, valid, ngroups, is_max):
    """Per-group MIN (or MAX when ``is_max``) of non-NULL float64 values: (values, has)."""
    return _extreme(gid, values, valid, ngroups, is_max, np.float64)


def top_k_i64(values, k):
    """Positions of the ``k`` smallest int64 values, smallest first, ties by position."""
    values = np.asarray(values, np.int64)
    return np.lexsort((np.arange(len(values)), values))[:max(k, 0)].astype(np.int64)


def top_k_f64(values, k):
    """Positions of the ``k`` smallest float64 values (no NaN), smallest first, ties by position."""
    values = np.asarray(values, np.float64)
    return np.lexsort((np.arange(len(values)), values))[:max(k, 0)].astype(np.int64)
