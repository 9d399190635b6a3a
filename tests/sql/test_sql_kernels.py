"""Scan kernels: the compiled ones agree with their pure twins (ocean._reference.scan)."""
import os

import numpy as np
import pytest

from ocean import kernels
from ocean._reference import scan as pure

compiled = pytest.importorskip("ocean._core") if os.environ.get("OCEAN_PUREPYTHON") != "1" else None
NAMES = ["iso_parse", "hash_group", "group_count", "group_sum_i64", "group_sum_f64", "group_extreme_i64",
         "group_extreme_f64", "top_k_i64", "top_k_f64"]


def test_the_loaded_core_has_every_scan_kernel():
    core = kernels.core()
    for name in NAMES:
        assert callable(getattr(core, name)), name
    if os.environ.get("OCEAN_PUREPYTHON") != "1":
        assert kernels.implementation() == "compiled"
        assert core.__name__ == "ocean._core"


def _impls():
    return [pure] + ([compiled] if compiled is not None else [])


@pytest.mark.parametrize("n", [0, 1, 7, 1000, 50000])
def test_hash_group_and_aggregates_agree(n):
    rng = np.random.default_rng(n)
    keys = rng.integers(0, max(1, n // 20) + 1, n) * 86_400_000
    valid = rng.random(n) > 0.1
    ints = rng.integers(-10 ** 6, 10 ** 6, n)
    floats = rng.normal(size=n)
    results = []
    for impl in _impls():
        out = []
        for va in (None, valid):
            gid, first = impl.hash_group(keys, va)
            gid, first = np.asarray(gid), np.asarray(first)
            ng = len(first)
            out += [gid, first, impl.group_count(gid, va, ng)]
            s = impl.group_sum_i64(gid, ints, va, ng)
            out += [s[0], s[1], np.array([s[2]])]
            s = impl.group_sum_f64(gid, floats, va, ng)
            out += [np.round(s[0], 9), s[1]]
            for is_max in (False, True):
                out += list(impl.group_extreme_i64(gid, ints, va, ng, is_max))
                out += list(impl.group_extreme_f64(gid, floats, va, ng, is_max))
        results.append([np.asarray(x) for x in out])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


def test_hash_group_numbers_groups_by_first_appearance():
    for impl in _impls():
        gid, first = impl.hash_group(np.array([5, 3, 5, 9, 3, 0]), np.array([1, 1, 1, 1, 1, 0], bool))
        assert list(np.asarray(gid)) == [0, 1, 0, 2, 1, 3]
        assert list(np.asarray(first)) == [0, 1, 3, 5]


def test_group_sum_detects_int64_overflow():
    for impl in _impls():
        _, _, overflow = impl.group_sum_i64(np.zeros(2, np.int64), np.array([2 ** 62, 2 ** 62]), None, 1)
        assert overflow


def test_iso_parse_accepts_only_canonical_timestamps():
    values = np.array(["2026-02-10T12:34:56.789Z", "1970-01-01T00:00:00.000Z", "1969-12-31T23:59:59.999Z",
                       "2024-02-29T00:00:00.000Z", "2023-02-29T00:00:00.000Z", "2026-02-10T24:00:00.000Z",
                       "2026-02-10T12:34:56.789", "2026-02-10 12:34:56.789Z", "x", None, 5,
                       "0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z", "２０２６-02-10T12:34:56.789Z"],
                      dtype=object)
    want_ok = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0]
    for impl in _impls():
        ms, ok = impl.iso_parse(values)
        assert list(np.asarray(ok)) == want_ok
        assert list(np.asarray(ms)[:4]) == [1770726896789, 0, -1, 1709164800000]


@pytest.mark.parametrize("n", [0, 1, 9, 1096, 20000])
def test_top_k_is_a_stable_sorts_first_k(n):
    rng = np.random.default_rng(n)
    ints = rng.integers(0, 40, n)
    floats = rng.normal(size=n).round(1)
    for k in (0, 1, 7, 10, n, n + 5):
        for impl in _impls():
            assert list(impl.top_k_i64(ints, k)) == list(np.lexsort((np.arange(n), ints))[:k])
            assert list(impl.top_k_f64(floats, k)) == list(np.lexsort((np.arange(n), floats))[:k])
