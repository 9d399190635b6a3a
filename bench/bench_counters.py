"""Counter kernels beside their baselines: the pure twin and a plain dict behind threading.Lock.

Run: ``PYTHONPATH=src python -m pytest bench/bench_counters.py --benchmark-only -q``
Each benchmark asserts its final totals; ``extra_info`` carries ops/s (or increments/s).
"""
from __future__ import annotations

import gc
import threading
import tracemalloc

import pytest
from benchutil import Counted, rate

import ocean._core as compiled
import ocean._reference as pure

CALLS = 1000  # add() calls per timed iteration
ROUNDS = 30
FIELDS = [f"field{i}" for i in range(1000)]
ONES = [1] * len(FIELDS)


class LockedDict:
    """The baseline: what one would write without ocean -- a dict behind a threading.Lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.data = {}

    def add(self, route, key, field, amount):
        k = (route, key, field)
        with self.lock:
            new = self.data[k] = self.data.get(k, 0) + amount
        return new

    def add_many(self, route, key, fields, amounts):
        data = self.data
        out = []
        with self.lock:
            for f, a in zip(fields, amounts):
                k = (route, key, f)
                new = data[k] = data.get(k, 0) + a
                out.append(new)
        return out

    def get(self, route, key, field):
        return self.data.get((route, key, field))


TABLES = {
    "compiled": lambda: compiled.CounterTable(),
    "pure": lambda: pure.CounterTable(),
    "locked-dict": LockedDict,
}


@pytest.mark.benchmark(group="counter-add")
@pytest.mark.parametrize("name", list(TABLES))
def test_add(benchmark, name):
    table = TABLES[name]()
    add = table.add

    @Counted
    def run():
        for _ in range(CALLS):
            add("analytics/daily", "2026-02-10", "page_views", 1)

    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert table.get("analytics/daily", "2026-02-10", "page_views") == run.calls * CALLS
    benchmark.extra_info["ops_per_s"] = rate(benchmark, CALLS)


@pytest.mark.benchmark(group="counter-batch-1000")
@pytest.mark.parametrize("name", list(TABLES))
def test_add_many_1000(benchmark, name):
    table = TABLES[name]()

    @Counted
    def run():
        return table.add_many("analytics/daily", "2026-02-10", FIELDS, ONES)

    out = benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert out == [run.calls] * len(FIELDS)
    assert table.get("analytics/daily", "2026-02-10", "field999") == run.calls
    benchmark.extra_info["increments_per_s"] = rate(benchmark, len(FIELDS))


def _bytes_per_counter(make, entities=10_000, fields=100):
    names = [f"f{i}" for i in range(fields)]  # field names are shared, as in real payloads
    keys = [f"k{i}" for i in range(entities)]  # made before measuring: they are the caller's
    amounts = [1000 + i for i in range(fields)]  # real counts: past the small-int cache
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        table = make()
        for key in keys:
            table.add_many("bench/memory", key, names, amounts)
            table.add_many("bench/memory", key, names, amounts)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(table) == entities * fields and table.entity_count() == entities
    return used / (entities * fields)


def test_memory_per_counter(benchmark):
    """1M counters (10k entities x 100 fields): bytes each, traced by tracemalloc."""
    # NOTE: the compiled core allocates with PyMem, so tracemalloc sees all of it.
    sizes = {name: _bytes_per_counter(TABLES[name]) for name in ("compiled", "pure")}
    print("\nbytes per counter (1M counters): " + ", ".join(f"{k} {v:.1f}" for k, v in sizes.items()))
    benchmark.extra_info.update({f"bytes_per_counter_{k}": round(v, 1) for k, v in sizes.items()})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert sizes["compiled"] < 120, sizes
    assert sizes["compiled"] < sizes["pure"], sizes
