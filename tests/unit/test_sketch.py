"""Hll and Dist: accuracy against exact answers, and the compiled kernels against the pure twin.

Every behaviour runs on both; ``test_*_twins_agree`` hold them to the same registers, bins,
bytes and answers for the same adds. The 1M-value accuracy case runs on the compiled kernel
only (the twin needs minutes for it); the twin is checked against exact counts up to 100k.
"""
from __future__ import annotations

import math
import os
import pickle
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import ocean._core as compiled
import ocean._reference as pure
from ocean._reference import sketch as ref

IMPLS = [compiled, pure]
IDS = ["compiled", "pure"]
STDERR = 1.04 / math.sqrt(ref.HLL_REGISTERS)  # 0.81%


@pytest.fixture(params=IMPLS, ids=IDS)
def impl(request):
    return request.param


def distinct(n: int, tag: str = "u") -> list[str]:
    return [f"{tag}-{i}" for i in range(n)]


# ---- Hll: behaviour ----------------------------------------------------------------


def test_hll_empty(impl):
    h = impl.Hll()
    assert h.count() == 0
    assert h.to_bytes() == bytes((1, 1))
    assert h.nbytes == 0
    assert h.add([]) is False


def test_hll_add_reports_change(impl):
    h = impl.Hll()
    assert h.add(["a", "b"]) is True
    assert h.add(["a", "b"]) is False
    assert h.add(["a", "c"]) is True
    assert h.count() == 3


def test_hll_values_hash_as_utf8_or_canonical_json(impl):
    a, b = impl.Hll(), impl.Hll()
    a.add(["5", "true", "null", '{"a":1,"b":[1,2]}', "é"])
    b.add([5, True, None, {"a": 1, "b": [1, 2]}, "é"])
    assert a.to_bytes() == b.to_bytes()
    assert a.count() == 5


def test_hll_takes_any_iterable_but_not_one_string(impl):
    h = impl.Hll()
    h.add(iter(["a", "b"]))
    h.add(("c",))
    h.add(x for x in ["d"])
    assert h.count() == 4
    for bad in ("abc", b"abc"):
        with pytest.raises(TypeError):
            h.add(bad)
    with pytest.raises(TypeError):
        h.add(5)


def test_hll_bad_value_changes_nothing(impl):
    h = impl.Hll()
    h.add(["a"])
    before = h.to_bytes()
    with pytest.raises(UnicodeEncodeError):
        h.add(["b", "\ud800"])
    with pytest.raises(TypeError):
        h.add(["c", b"raw bytes are not JSON"])
    assert h.to_bytes() == before and h.count() == 1


def test_hll_matches_known_redis_figures(impl):
    """PFCOUNT of the same strings on redis-server 7.0 (this kernel copies its hash,
    register layout and estimator, so the estimates are Redis's own)."""
    for n, redis_count in ((10, 10), (100, 100), (1000, 1002), (5000, 4994), (50000, 50567)):
        if impl is pure and n > 5000:
            continue
        h = impl.Hll()
        h.add([f"u-{i}-é" for i in range(n)])
        assert h.count() == redis_count, n


def test_hll_sparse_then_dense(impl):
    h = impl.Hll()
    h.add(distinct(10))
    assert not h.dense and h.nbytes == 40
    assert len(h.to_bytes()) == 2 + 40
    h.add(distinct(5000))
    assert h.dense and h.nbytes == 12288
    assert len(h.to_bytes()) == 2 + 12288


def test_hll_form_follows_registers(impl):
    """Sparse exactly while at most HLL_SPARSE_MAX registers are set, whatever the path."""
    h = impl.Hll()
    i = 0
    while h.nbytes // 4 < ref.HLL_SPARSE_MAX:
        h.add([f"v{i}"])
        i += 1
    assert not h.dense
    count = h.count()
    while not h.add([f"v{i}"]):
        i += 1
    assert h.dense
    assert abs(h.count() - count) <= 2  # the estimate does not jump at the change of form


def test_hll_round_trip(impl):
    for n in (0, 1, 10, 700, 768, 769, 3000, 20000):
        h = impl.Hll()
        h.add(distinct(n))
        data = h.to_bytes()
        back = impl.Hll(data)
        assert back.to_bytes() == data and back.count() == h.count() and back.nbytes == h.nbytes
        assert impl.Hll(bytearray(data)).to_bytes() == data
        assert impl.Hll(memoryview(data)).to_bytes() == data
        assert pickle.loads(pickle.dumps(h)).to_bytes() == data
        c = h.copy()
        assert c.to_bytes() == data
        c.add(["another"])
        assert h.to_bytes() == data  # a copy is independent


def test_hll_merge_equals_adding_all(impl):
    for na, nb in ((0, 0), (5, 7), (500, 500), (10, 5000), (5000, 10), (3000, 3000)):
        a, b, both = impl.Hll(), impl.Hll(), impl.Hll()
        a.add(distinct(na, "a"))
        b.add(distinct(nb, "b"))
        both.add(distinct(na, "a") + distinct(nb, "b"))
        b_bytes = b.to_bytes()
        a.merge(b)
        assert a.to_bytes() == both.to_bytes() and a.count() == both.count()
        assert b.to_bytes() == b_bytes
    a.merge(a)
    assert a.to_bytes() == both.to_bytes()
    with pytest.raises(TypeError):
        a.merge("not a sketch")


def _bad_hll_bytes():
    sparse = ref.Hll()
    sparse.add(distinct(3))
    s = sparse.to_bytes()
    dense = ref.Hll()
    dense.add(distinct(3000))
    d = dense.to_bytes()
    e = lambda index, rank: (index << 6 | rank).to_bytes(4, "little")  # noqa: E731
    return [
        b"", b"\x01", b"\x02\x01", b"\x01\x03", b"\x00\x01",
        s[:-1], s + b"\x00",
        bytes((1, 1)) + e(5, 3) + e(5, 4),          # repeated index
        bytes((1, 1)) + e(6, 3) + e(5, 4),          # not sorted
        bytes((1, 1)) + e(5, 0),                    # rank 0
        bytes((1, 1)) + e(5, 52),                   # rank past Q+1
        bytes((1, 1)) + e(16384, 1),                # index past the registers
        bytes((1, 1)) + b"".join(e(i, 1) for i in range(ref.HLL_SPARSE_MAX + 1)),  # too many
        d[:-1], d + b"\x00",
        d[:2] + b"\xff" * ref.HLL_DENSE_BYTES,      # registers of 63
    ]


def test_hll_rejects_bad_bytes(impl):
    for data in _bad_hll_bytes():
        with pytest.raises(ValueError):
            impl.Hll(data)
    with pytest.raises(TypeError):
        impl.Hll("text")


def test_hll_dense_bytes_with_few_registers_load_sparse(impl):
    h = impl.Hll()
    h.add(distinct(10))
    regs = [0] * ref.HLL_REGISTERS
    for e in np.frombuffer(h.to_bytes()[2:], "<u4"):
        regs[int(e) >> 6] = int(e) & 63
    dense = bytes((1, 2)) + ref._pack_dense(regs)
    back = impl.Hll(dense)
    assert back.to_bytes() == h.to_bytes() and not back.dense


# ---- Hll: accuracy against exact counts --------------------------------------------


@pytest.mark.parametrize("n", [10, 1000, 100_000, 1_000_000])
def test_hll_accuracy(impl, n):
    if impl is pure and n > 100_000:
        pytest.skip("the twin is checked up to 100k; the compiled kernel at 1M")
    h = impl.Hll()
    batch = 100_000
    for start in range(0, n, batch):
        h.add([f"visitor:{i}" for i in range(start, min(n, start + batch))])
    est = h.count()
    if n <= 10:
        assert abs(est - n) <= 1
    else:
        assert abs(est - n) / n <= 3 * STDERR, (n, est)


def test_hll_accuracy_ints_and_many_sketches(impl):
    """Not one lucky run: 20 sketches of 20k int values each, mean error well inside 3 sigma."""
    if impl is pure:
        pytest.skip("the compiled kernel is held to the twin by the agreement tests")
    errors = []
    for s in range(20):
        h = impl.Hll()
        h.add(range(s * 1_000_000, s * 1_000_000 + 20_000))
        errors.append((h.count() - 20_000) / 20_000)
    assert max(abs(e) for e in errors) <= 3 * STDERR
    assert math.sqrt(sum(e * e for e in errors) / len(errors)) <= 1.5 * STDERR


# ---- Hll: the compiled kernel against the twin -------------------------------------

values = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF, exclude_categories=["Cs"]),
            max_size=12),
    st.booleans(), st.none(), st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(values, max_size=60), max_size=4), extra=st.integers(0, 1500))
def test_hll_twins_agree(batches, extra):
    c, p = compiled.Hll(), pure.Hll()
    for batch in batches:
        assert c.add(batch) == p.add(batch)
    if extra:  # sometimes across the sparse limit
        more = [f"x{i}" for i in range(extra)]
        assert c.add(more) == p.add(more)
    assert c.to_bytes() == p.to_bytes()
    assert c.count() == p.count() and c.nbytes == p.nbytes and c.dense == p.dense
    assert compiled.Hll(p.to_bytes()).to_bytes() == p.to_bytes()
    assert pure.Hll(c.to_bytes()).count() == c.count()


@settings(max_examples=60, deadline=None)
@given(a=st.lists(st.text(max_size=8), max_size=900), b=st.lists(st.text(max_size=8), max_size=900))
def test_hll_twins_merge_agree(a, b):
    ca, cb, pa, pb = compiled.Hll(), compiled.Hll(), pure.Hll(), pure.Hll()
    ca.add(a), pa.add(a), cb.add(b), pb.add(b)
    ca.merge(cb)
    pa.merge(pb)
    assert ca.to_bytes() == pa.to_bytes() and ca.count() == pa.count()


def test_hll_twins_agree_large():
    c, p = compiled.Hll(), pure.Hll()
    for vals in (distinct(20_000), list(range(5000)), ["é" * i for i in range(50)]):
        c.add(vals), p.add(vals)
        assert c.to_bytes() == p.to_bytes() and c.count() == p.count()


def test_hll_bad_bytes_same_on_both():
    for data in _bad_hll_bytes():
        for impl in IMPLS:
            with pytest.raises(ValueError):
                impl.Hll(data)


# ---- Hll against a real redis-server -----------------------------------------------


@pytest.fixture(scope="module")
def redis_client():
    """A redis-server (``cluster.SingleServer``) with dense HLLs from the first value, as a redis-py client."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "redis"))
    import cluster  # tests/redis/cluster.py: the throwaway Redis servers

    cluster.require()
    import redis
    with cluster.SingleServer(extra=["--appendonly", "no", "--hll-sparse-max-bytes", "0"]) as server:
        client = redis.Redis(host="127.0.0.1", port=server.port)
        yield client
        client.close()


@pytest.mark.parametrize("n", [1, 10, 2000, 30_000])
def test_hll_registers_equal_redis(impl, redis_client, n):
    """Same strings, same registers as Redis's dense HLL (hll-sparse-max-bytes 0), same estimate."""
    vals = [f"page:{i}:ü" for i in range(n)]
    redis_client.delete("h")
    for i in range(0, n, 1000):
        redis_client.pfadd("h", *vals[i:i + 1000])
    h = impl.Hll()
    h.add(vals)
    assert h.count() == redis_client.pfcount("h")
    if h.dense:
        raw = redis_client.get("h")
        assert raw[:5] == b"HYLL\x00"  # header, encoding 0 = dense
        assert h.to_bytes()[2:] == raw[16:]


# ---- Dist: behaviour ---------------------------------------------------------------


def test_dist_empty(impl):
    d = impl.Dist()
    assert d.count == 0 and d.sum == 0.0 and d.min is None and d.max is None
    assert d.quantile(0.5) is None
    assert impl.Dist(d.to_bytes()).to_bytes() == d.to_bytes()
    assert d.nbytes == 40


def test_dist_scalars(impl):
    d = impl.Dist()
    for v, n in ((12.5, 1), (-3, 2), (0, 1), (1e6, 4)):
        d.add(v, n)
    assert d.count == 8 and d.sum == 12.5 - 6 + 4e6
    assert d.min == -3.0 and d.max == 1e6
    assert d.quantile(0) == -3.0 and d.quantile(1) == 1e6
    assert isinstance(d.min, float) and isinstance(d.count, int)
    for name in ("count", "sum", "min", "max"):
        with pytest.raises(AttributeError):
            setattr(d, name, 1)


def test_dist_rejects_bad_input(impl):
    d = impl.Dist()
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            d.add(bad)
    for bad in ("1.5", b"1", None):
        with pytest.raises(TypeError):
            d.add(bad)
    with pytest.raises(ValueError):
        d.add(1.0, 0)
    with pytest.raises(TypeError):
        d.add(1.0, 1.5)
    d.add(1.0)
    for q in (-0.01, 1.01, math.nan):
        with pytest.raises(ValueError):
            d.quantile(q)
    assert d.count == 1
    with pytest.raises(OverflowError):
        d.add(1.0, (1 << 63) - 1)
    assert d.count == 1
    with pytest.raises(TypeError):
        d.merge(impl.Hll())


def test_dist_negative_zero_is_zero(impl):
    a, b = impl.Dist(), impl.Dist()
    a.add(-0.0), a.add(0.0)
    b.add(0.0), b.add(-0.0)
    assert a.to_bytes() == b.to_bytes() and math.copysign(1, a.min) == 1.0


DISTRIBUTIONS = {
    "lognormal": lambda r: r.lognormal(3, 2, 50_000),
    "uniform": lambda r: r.uniform(0.5, 1000, 50_000),
    "normal-with-negatives": lambda r: r.normal(0, 100, 50_000),
    "exponential-with-zeros": lambda r: np.concatenate([r.exponential(20, 40_000), np.zeros(5000)]),
    "negatives-only": lambda r: -r.pareto(1.5, 20_000) - 1e-3,
    "integers": lambda r: r.integers(0, 50, 30_000).astype(float),
    "wide": lambda r: 10.0 ** r.uniform(-8, 8, 20_000),  # 1842 bins: just inside the limit
}
QS = (0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1)


def _within(est, xs, q, a=0.01):
    lo, hi = np.quantile(xs, q, method="lower"), np.quantile(xs, q, method="higher")
    slack = 1e-9 * max(abs(lo), abs(hi))
    return lo - a * abs(lo) - slack <= est <= hi + a * abs(hi) + slack


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_dist_quantiles_within_one_percent(impl, name):
    xs = DISTRIBUTIONS[name](np.random.default_rng(7))
    if impl is pure:
        xs = xs[:10_000]
    d = impl.Dist()
    for x in xs.tolist():
        d.add(x)
    assert d.count == len(xs) and d.min == xs.min() and d.max == xs.max()
    assert math.isclose(d.sum, math.fsum(xs.tolist()), rel_tol=1e-9, abs_tol=1e-6)
    for q in QS:
        est = d.quantile(q)
        assert _within(est, xs, q), (name, q, est)


def test_dist_counts_weigh(impl):
    a, b = impl.Dist(), impl.Dist()
    for v in (1.0, 2.0, 3.0):
        a.add(v, 1000)
        for _ in range(1000):
            b.add(v)
    assert a.to_bytes() == b.to_bytes()


def test_dist_merge_equals_adding_all(impl):
    rng = np.random.default_rng(3)
    parts = [rng.normal(50, 30, 3000), rng.lognormal(1, 3, 3000), -rng.exponential(2, 500), np.zeros(10)]
    whole = impl.Dist()
    merged = impl.Dist()
    for xs in parts:
        part = impl.Dist()
        for x in xs.tolist():
            part.add(x)
            whole.add(x)
        merged.merge(part)
    assert merged.count == whole.count and merged.min == whole.min and merged.max == whole.max
    assert math.isclose(merged.sum, whole.sum, rel_tol=1e-12)
    for q in QS:
        assert merged.quantile(q) == whole.quantile(q)
    # the bins are the same: only the sum's float rounding may differ with the order
    assert merged.to_bytes()[41:] == whole.to_bytes()[41:]
    twice = whole.copy()
    twice.merge(twice)
    assert twice.count == 2 * whole.count and twice.quantile(0.5) == whole.quantile(0.5)


def test_dist_collapses_lowest_bins(impl):
    """Past 2048 bins a store folds its lowest: high quantiles stay within 1%."""
    d, other = impl.Dist(), impl.Dist()
    xs = 10.0 ** np.linspace(-300, 300, 5000)
    for x in xs.tolist():
        d.add(x)
    for x in xs[::-1].tolist():
        other.add(x)
    assert d.to_bytes()[41:] == other.to_bytes()[41:]  # the order of adds does not matter (but to the sum)
    assert d.nbytes == 40 + 8 * ref.DIST_BIN_LIMIT
    for q in (0.99, 0.999, 1):
        assert _within(d.quantile(q), xs, q)
    assert d.quantile(0) == xs[0]  # clamped to min


def test_dist_bytes_are_compact(impl):
    """Counts are varints: a latency sketch of 600-odd bins is about 1 KB, not 5 KB of u64s."""
    d = impl.Dist()
    for x in np.random.default_rng(2).lognormal(3, 1.5, 20_000).tolist():
        d.add(x)
    bins = (d.nbytes - 40) // 8
    assert 500 < bins < 1000
    assert len(d.to_bytes()) < 41 + 16 + 2 * bins
    big = impl.Dist()
    big.add(1.0, (1 << 63) - 1)
    assert impl.Dist(big.to_bytes()).count == (1 << 63) - 1


def test_dist_round_trip(impl):
    rng = np.random.default_rng(5)
    d = impl.Dist()
    for x in rng.normal(0, 10, 2000).tolist():
        d.add(x)
    d.add(0.0, 3)
    data = d.to_bytes()
    for back in (impl.Dist(data), impl.Dist(bytearray(data)), pickle.loads(pickle.dumps(d)), d.copy()):
        assert back.to_bytes() == data and back.quantile(0.9) == d.quantile(0.9)
        assert (back.count, back.sum, back.min, back.max, back.nbytes) == (d.count, d.sum, d.min, d.max, d.nbytes)
    c = d.copy()
    c.add(5.0)
    assert d.to_bytes() == data


def _bad_dist_bytes():
    d = ref.Dist()
    for v in (1.0, 2.0, -5.0, 0.0):
        d.add(v)
    good = d.to_bytes()
    head = ref._DIST_HEAD
    store = ref._DIST_STORE
    empty_stores = store.pack(0, 0) * 2
    return [
        b"", good[:10], b"\x02" + good[1:], good[:-1], good + b"\x00",
        head.pack(1, 1, 0, 1.0, 1.0, 1.0) + empty_stores,                 # count without bins
        head.pack(1, 0, 0, 1.0, 0.0, 0.0) + empty_stores,                 # empty with a sum
        head.pack(1, 1, 1, 0.0, 1.0, 0.0) + empty_stores,                 # min > max
        head.pack(1, 1, 1, 0.0, math.nan, 0.0) + empty_stores,
        head.pack(1, 1, 0, 1.0, 1.0, 1.0) + store.pack(0, 2) + b"\x01\x00" + store.pack(0, 0),  # empty end
        head.pack(1, 1, 0, 1.0, 1.0, 1.0) + store.pack(5, 0) + store.pack(0, 0),  # empty store at a key
        head.pack(1, 1, 0, 1.0, 1.0, 1.0) + store.pack(0, ref.DIST_BIN_LIMIT + 1)
        + b"\x01" * (ref.DIST_BIN_LIMIT + 1) + store.pack(0, 0),                   # too wide
        head.pack(1, 1, 0, 1.0, 1.0, 1.0) + store.pack(10**5, 1) + b"\x01" + store.pack(0, 0),  # key range
        head.pack(1, 1, 0, 1.0, 1.0, 1.0) + store.pack(0, 1) + b"\x81\x00" + store.pack(0, 0),  # not minimal
        head.pack(1, 1, 0, 1.0, 1.0, 1.0) + store.pack(0, 1) + b"\x81" + store.pack(0, 0),  # cut short
        head.pack(1, 1, 0, 1.0, 1.0, 1.0) + store.pack(0, 1) + b"\xff" * 9 + b"\x01" + store.pack(0, 0),
        head.pack(1, 1 << 63, 0, 1.0, 1.0, 1.0) + store.pack(0, 1) + b"\x80" * 9 + b"\x01" + store.pack(0, 0),
    ]


def test_dist_rejects_bad_bytes(impl):
    for data in _bad_dist_bytes():
        with pytest.raises(ValueError):
            impl.Dist(data)
    with pytest.raises(TypeError):
        impl.Dist(1.5)


# ---- Dist: the compiled kernel against the twin ------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)


def _same(xs, ys) -> bool:
    """Equal item by item, a NaN equal to a NaN."""
    return len(xs) == len(ys) and all(x == y or (x != x and y != y) for x, y in zip(xs, ys))


@settings(max_examples=200, deadline=None)
@given(adds=st.lists(st.tuples(st.one_of(finite, st.integers(-1000, 1000),
                                          st.floats(min_value=1e-6, max_value=1e6)),
                               st.integers(1, 5)), max_size=80),
       qs=st.lists(st.floats(0, 1), max_size=5))
@example(adds=[(1.7e308, 1), (-1.7e308, 5), (1.7e308, 3)], qs=[])  # a NaN sum (CI once drew one)
def test_dist_twins_agree(adds, qs):
    c, p = compiled.Dist(), pure.Dist()
    for v, n in adds:
        c.add(v, n)
        p.add(v, n)
    assert c.to_bytes() == p.to_bytes()
    # huge finite values can sum to inf, or inf - inf = NaN (the engine refuses such an add before it
    # reaches the kernel, state.py): the twins must still agree, and NaN != NaN, so compare as floats
    assert _same((c.count, c.sum, c.min, c.max, c.nbytes), (p.count, p.sum, p.min, p.max, p.nbytes))
    for q in qs + [0, 0.5, 1]:
        assert _same([c.quantile(q)], [p.quantile(q)])
    if p.sum == p.sum:
        assert compiled.Dist(p.to_bytes()).to_bytes() == p.to_bytes()
    else:  # a NaN sum is never stored (the engine refuses the add); both twins refuse to load one
        for impl in IMPLS:
            with pytest.raises(ValueError):
                impl.Dist(p.to_bytes())
    half = len(adds) // 2
    c1, c2, p1, p2 = compiled.Dist(), compiled.Dist(), pure.Dist(), pure.Dist()
    for v, n in adds[:half]:
        c1.add(v, n), p1.add(v, n)
    for v, n in adds[half:]:
        c2.add(v, n), p2.add(v, n)
    c1.merge(c2)
    p1.merge(p2)
    assert c1.to_bytes() == p1.to_bytes()


def test_dist_bad_bytes_same_on_both():
    for data in _bad_dist_bytes():
        for impl in IMPLS:
            with pytest.raises(ValueError):
                impl.Dist(data)


def test_hll_threads_adding_at_once_lose_nothing():
    """Hll.add runs its register loop without the GIL: sketches shared by threads stay whole."""
    import sys
    import threading

    shared = [compiled.Hll() for _ in range(3)]
    chunks = [[f"t{t}-{i}" for i in range(j, j + 500)] for t in range(4) for j in range(0, 6000, 500)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        def work(t):
            for k, chunk in enumerate(chunks[t::4]):
                h = shared[k % 3]
                h.add(chunk)
                h.count(), h.to_bytes(), h.nbytes
                shared[(k + 1) % 3].merge(h)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(old)
    union = compiled.Hll()
    for h in shared:
        union.merge(h)
    expected = compiled.Hll()
    expected.add([v for c in chunks for v in c])
    assert union.to_bytes() == expected.to_bytes()


def test_hll_count_after_each_add_matches_a_fresh_load():
    """The compiled dense Hll keeps its register histogram as it goes; a load recounts it."""
    h = compiled.Hll()
    h.add(distinct(2000))
    other = compiled.Hll()
    other.add(distinct(3000, "m"))
    for i in range(300):
        h.add([f"w{i}", i])
        if i % 50 == 0:
            h.merge(other)
        assert h.count() == compiled.Hll(h.to_bytes()).count()
        if i % 30 == 0:
            assert h.count() == pure.Hll(h.to_bytes()).count()
    assert h.copy().count() == h.count()


magnitudes = st.builds(lambda m, e, s: s * m * 10.0 ** e, st.floats(1, 10), st.integers(-300, 300),
                       st.sampled_from([1.0, -1.0]))


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(st.lists(st.tuples(st.one_of(magnitudes, st.just(0.0)), st.integers(1, 1 << 40)),
                               max_size=40), min_size=1, max_size=4))
def test_dist_twins_agree_across_collapses_and_merges(parts):
    """Values over 600 orders of magnitude (the stores collapse), big counts, merges in two orders."""
    cs, ps = [], []
    for adds in parts:
        c, p = compiled.Dist(), pure.Dist()
        for v, n in adds:
            c.add(v, n)
            p.add(v, n)
        assert c.to_bytes() == p.to_bytes()
        cs.append(c)
        ps.append(p)
    fwd_c, fwd_p, back_c = compiled.Dist(), pure.Dist(), compiled.Dist()
    for c, p in zip(cs, ps):
        fwd_c.merge(c)
        fwd_p.merge(p)
    for c in reversed(cs):
        back_c.merge(c)
    assert fwd_c.to_bytes() == fwd_p.to_bytes()
    assert fwd_c.to_bytes()[41:] == back_c.to_bytes()[41:]  # the bins do not depend on the order
    for q in (0.01, 0.25, 0.5, 0.75, 0.99):
        assert fwd_c.quantile(q) == fwd_p.quantile(q) == back_c.quantile(q)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_hll_forked_child_does_not_wait_for_a_thread_it_lacks():
    """A snapshot child forked while another thread runs a long add (its register loop without
    the GIL) can still read the sketch: it does not wait for a thread that is not in it."""
    import threading

    h = compiled.Hll()
    h.add(distinct(5000))
    values = distinct(3_000_000, "big")
    for _ in range(3):
        started = threading.Event()

        def big_add():
            started.set()
            h.add(values)

        th = threading.Thread(target=big_add)
        th.start()
        started.wait()
        time.sleep(0.03)  # most likely inside the GIL-free loop by now
        pid = os.fork()
        if pid == 0:  # the child: one read, then out
            try:
                h.count()
                h.to_bytes()
            finally:
                os._exit(0)
        deadline = time.monotonic() + 10
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung reading the sketch")
            time.sleep(0.01)
        th.join()
        assert os.waitstatus_to_exitcode(status) == 0
