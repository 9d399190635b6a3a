"""Entities of counters stay compact in memory (issue 14), live and after a restart."""
import gc
import tracemalloc

import pytest

from ocean.kernels import PURE
from ocean.settings import Settings

ROUTE = "bench/ents"


def _load(eng, n: int) -> None:
    """``n`` entities x 5 counters, one ``+c<j>`` drop each, as bench/load/bench_scale.py writes them."""
    total = n * 5
    for start in range(0, total, 1000):
        drops = [{"route": ROUTE, "key": f"e{i % n}", "payload": {f"+c{i // n}": 1}}
                 for i in range(start, min(total, start + 1000))]
        assert all(type(r) is dict for r in eng.drop_many(drops))


def test_counter_only_entities_share_one_empty_fields_dict(engine):
    _load(engine, 50)
    table = engine.state.entities.routes[ROUTE]
    assert len({id(ent.fields) for ent in table.values()}) == 1
    engine.update(ROUTE, "e1", {"name": "one"})  # a write copies: the others keep no fields
    assert engine.get(ROUTE, "e1")["payload"] == {"name": "one", **{f"c{j}": 1 for j in range(5)}}
    assert engine.get(ROUTE, "e2")["payload"] == {f"c{j}": 1 for j in range(5)}
    assert table["e2"].fields == {}


def test_after_a_restart_counters_share_the_entity_key_and_field_names(make_engine):
    eng = make_engine()
    _load(eng, 200)
    eng.snapshot()
    eng.close()
    eng = make_engine()
    keys = {key: key for key in eng.state.entities.routes[ROUTE]}
    exported = eng.state.counters.export()
    assert len(exported) == 1000
    assert all(key is keys[key] for _, key, _, _ in exported)
    if not PURE:  # the compiled table holds a field name once per shard (the twin keeps copies)
        assert len({id(field) for _, _, field, _ in exported}) <= 5 * eng.state.counters.shards
    assert eng.get(ROUTE, "e199")["payload"] == {f"c{j}": 1 for j in range(5)}


@pytest.mark.skipif(PURE, reason="the bound is the compiled counter table's (the twin boxes every value)")
def test_bytes_per_entity_of_five_counters(make_engine):
    """Traced bytes the state grows by per entity (the key, its record, its counters); the replay
    ring is kept small so it does not count. ~300 with issue 14's compact counters;
    ~710 before them."""
    eng = make_engine(settings=Settings.load().with_(replay_history=10))
    n = 20_000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _load(eng, n)
        gc.collect()
        used = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    assert eng.state.counters.entity_count() == n and len(eng.state.counters) == 5 * n
    assert used < 340, used
