"""Engine throughput beside its baselines (pure twin kernel; a dict under a threading.Lock).

Run: ``PYTHONPATH=src python -m pytest bench/bench_engine.py --benchmark-only``
"""
import itertools
import shutil
import tempfile
import threading

import pytest
from benchutil import Counted

from ocean import Engine
from ocean._reference import CounterTable as PureCounterTable

N = 20000


@pytest.fixture
def engine_factory():
    made = []

    def make(pure=False, fsync="no"):
        eng = Engine(tempfile.mkdtemp(prefix="ocean-bench-"), fsync=fsync, maintenance=False)
        if pure:
            # the baseline: the engine's Python write path over the pure-twin counter table
            eng.state.counters = PureCounterTable()
            eng.incr = eng._incr_python
        made.append(eng)
        return eng

    yield make
    for eng in made:
        eng.close()
        shutil.rmtree(eng.path, ignore_errors=True)


def _incr_loop(incr):
    """``N`` calls of ``incr(route, key, {field: 1})``, each exactly as a user writes one (a
    fresh dict of amounts per call), with no wrapper between the loop and the call."""
    @Counted
    def run():
        for _ in range(N):
            incr("analytics/daily", "2026-02-10", {"page_views": 1})
    return run


@pytest.mark.benchmark(group="engine-incr")
@pytest.mark.parametrize("impl", ["compiled", "pure"])
def test_engine_incr(benchmark, engine_factory, impl):
    eng = engine_factory(pure=impl == "pure")
    run = _incr_loop(eng.incr)
    benchmark.pedantic(run, rounds=5, iterations=1)
    assert eng.get("analytics/daily", "2026-02-10")["payload"]["page_views"] == run.calls * N
    benchmark.extra_info["ops_per_round"] = N


@pytest.mark.benchmark(group="engine-incr")
def test_locked_dict_incr(benchmark):
    lock, table = threading.Lock(), {}

    def incr(route, key, amounts):
        with lock:
            ent = table.setdefault((route, key), {})
            for field, n in amounts.items():
                ent[field] = ent.get(field, 0) + n

    run = _incr_loop(incr)
    benchmark.pedantic(run, rounds=5, iterations=1)
    assert table[("analytics/daily", "2026-02-10")]["page_views"] == run.calls * N
    benchmark.extra_info["ops_per_round"] = N


FIELDS = [f"f{i}" for i in range(1000)]


@pytest.mark.benchmark(group="engine-batch-1000")
@pytest.mark.parametrize("impl", ["compiled", "pure"])
def test_engine_batch_1000(benchmark, engine_factory, impl):
    eng = engine_factory(pure=impl == "pure")
    amounts = dict.fromkeys(FIELDS, 1)
    run = Counted(lambda: [eng.incr("b", "k", amounts) for _ in range(50)])
    benchmark.pedantic(run, rounds=5, iterations=1)
    payload = eng.get("b", "k")["payload"]
    assert len(payload) == 1000 and all(v == 50 * run.calls for v in payload.values())
    benchmark.extra_info["increments_per_round"] = 50 * 1000


@pytest.mark.benchmark(group="engine-batch-1000")
def test_locked_dict_batch_1000(benchmark):
    lock, table = threading.Lock(), {}

    @Counted
    def batch():
        for _ in range(50):
            with lock:
                ent = table.setdefault("k", {})
                for f in FIELDS:
                    ent[f] = ent.get(f, 0) + 1

    benchmark.pedantic(batch, rounds=5, iterations=1)
    assert all(v == 50 * batch.calls for v in table["k"].values())
    benchmark.extra_info["increments_per_round"] = 50 * 1000


@pytest.mark.benchmark(group="engine-save-get")
def test_engine_save_get(benchmark, engine_factory):
    eng = engine_factory()
    counter = itertools.count()

    def run():
        for _ in range(N // 2):
            i = next(counter)
            eng.save("users", {"name": "Alice", "age": i}, key=f"u{i % 1000}")
            assert eng.get("users", f"u{i % 1000}")["payload"]["age"] == i

    benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info["ops_per_round"] = N


@pytest.mark.benchmark(group="engine-replay")
def test_log_replay(benchmark, engine_factory):
    eng = engine_factory()
    records = 100000
    for i in range(records):
        eng.incr("r", f"k{i % 100}", {"n": 1})
    path = eng.path
    eng.close()

    def reopen():
        e = Engine(path, maintenance=False)
        total = sum(e.get("r", f"k{i}")["payload"]["n"] for i in range(100))
        e.close()
        return total

    assert benchmark.pedantic(reopen, rounds=3, iterations=1) == records
    benchmark.extra_info["records"] = records


DROPS = [{"route": "analytics/daily", "key": f"2026-02-{i % 28 + 1:02d}", "payload": {"+page_views": 1}}
         for i in range(1000)]


@pytest.mark.benchmark(group="engine-drops-1000")
def test_drop_many_1000(benchmark, engine_factory):
    eng = engine_factory()
    run = Counted(lambda: eng.drop_many(DROPS))
    benchmark.pedantic(run, rounds=10, iterations=1)
    total = sum(eng.get("analytics/daily", f"2026-02-{d:02d}")["payload"]["page_views"] for d in range(1, 29))
    assert total == run.calls * 1000
    benchmark.extra_info["drops_per_round"] = 1000


@pytest.mark.benchmark(group="engine-drops-1000")
def test_single_incr_1000(benchmark, engine_factory):
    eng = engine_factory()
    calls = [(d["route"], d["key"], {"page_views": 1}) for d in DROPS]
    run = Counted(lambda: [eng.incr(*c) for c in calls])
    benchmark.pedantic(run, rounds=10, iterations=1)
    total = sum(eng.get("analytics/daily", f"2026-02-{d:02d}")["payload"]["page_views"] for d in range(1, 29))
    assert total == run.calls * 1000


# ---- sketch fields (uniq, dist) through the engine: an add is a whole durable, published write ----

def _visitors(n: int) -> list[str]:
    return [f"u-{i * 7919 % 1_000_003}" for i in range(n)]


@pytest.mark.benchmark(group="engine-uniq")
def test_engine_uniq_one_value_per_call(benchmark, engine_factory):
    """``Engine.uniq`` of one new visitor per call (validate, log the value, add, answer the estimate)."""
    eng = engine_factory()
    values = _visitors(N)
    run = Counted(lambda: [eng.uniq("analytics/daily", "2026-02-10", {"visitors": v}) for v in values])
    benchmark.pedantic(run, rounds=5, iterations=1)
    assert abs(eng.get("analytics/daily", "2026-02-10")["payload"]["visitors"] - N) <= 0.03 * N
    benchmark.extra_info["ops_per_round"] = N


@pytest.mark.benchmark(group="engine-uniq")
def test_engine_incr_beside_uniq(benchmark, engine_factory):
    """The baseline: the same number of counter increments (the compiled path)."""
    eng = engine_factory()
    run = _incr_loop(eng.incr)
    benchmark.pedantic(run, rounds=5, iterations=1)
    assert eng.get("analytics/daily", "2026-02-10")["payload"]["page_views"] == run.calls * N
    benchmark.extra_info["ops_per_round"] = N


@pytest.mark.benchmark(group="engine-sketch-drops-1000")
@pytest.mark.parametrize("payload", ["counter", "counter+uniq+dist"])
def test_drop_many_1000_with_sketches(benchmark, engine_factory, payload):
    """1000 drops of a page view, with and without its visitor (``~``) and latency (``%``) beside it."""
    eng = engine_factory()
    visitors = _visitors(1000)
    drops = [{"route": "analytics/daily", "key": "2026-02-10",
              "payload": {"+page_views": 1} if payload == "counter" else
              {"+page_views": 1, "~visitors": visitors[i], "%ms": float(i % 97)}} for i in range(1000)]
    run = Counted(lambda: eng.drop_many(drops))
    benchmark.pedantic(run, rounds=10, iterations=1)
    p = eng.get("analytics/daily", "2026-02-10")["payload"]
    assert p["page_views"] == run.calls * 1000
    if payload != "counter":
        assert abs(p["visitors"] - 1000) <= 30 and p["ms"]["count"] == run.calls * 1000
    benchmark.extra_info["drops_per_round"] = 1000
