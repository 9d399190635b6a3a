"""SQL reads the engine's sealed event chunks in place (sql/sealed.py): the table keeps references to
them and rows of its own only for entities and unsealed events; answers equal a table built from
the route's records, through writes, retention, ``keep`` expiry and sealing between queries."""
from __future__ import annotations

import gc
import itertools
import json
import threading
import time as _time
import weakref

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ocean import Engine
from ocean.engine import events as events_mod
from ocean.settings import Settings
from ocean.sql import prepare, query, run_plan
from ocean.sql import columns as columns_mod
from ocean.sql.columns import Table, columns_bytes, store_for
from sqlcases import RecordsOnly

ROWS = 12  # rows a sealed chunk holds in these tests
QUERIES = [
    'SELECT * FROM "{r}"',
    'SELECT COUNT(*) AS n, COUNT(path) AS p, SUM(ms) AS s, MIN(created_at) AS t0, COUNT(key) AS k FROM "{r}"',
    'SELECT path, COUNT(*) AS n, AVG(ms) AS a FROM "{r}" WHERE status = 404 GROUP BY path',
    'SELECT key, path, status, note FROM "{r}" WHERE created_at >= \'2000-01-01\' ORDER BY status, path',
]
_routes = itertools.count()



def _num(v):
    # a column that widened from int to real holds 1.0 where a rebuilt one holds 1 (as in test_sql_incremental)
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _norm(out: dict) -> list:
    return sorted(json.dumps({k: _num(v) for k, v in r.items()}, sort_keys=True, default=repr) for r in out["rows"])


def _oracle(engine, route: str, text: str) -> dict:
    table = Table(route)
    table.build(RecordsOnly(engine))
    return run_plan(prepare(text), table.view())


def _check(engine, route: str) -> None:
    for text in QUERIES:
        text = text.format(r=route)
        got, want = query(engine, text), _oracle(engine, route, text)
        if text.startswith("SELECT *"):  # fields in the order the table first saw them; one only removed
            # rows held may stay (all NULL) until the table compacts, as in a table patched from records
            assert set(want["columns"]) <= set(got["columns"])
            assert all(r[c] is None for r in got["rows"] for c in set(got["columns"]) - set(want["columns"]))
            got["rows"] = [{c: r[c] for c in want["columns"]} for r in got["rows"]]
        assert _norm(got) == _norm(want), text


@pytest.fixture
def clock(monkeypatch):
    now = {"ns": _time.time_ns()}
    monkeypatch.setattr(_time, "time_ns", lambda: now["ns"])
    return now


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(events_mod, "ROWS", ROWS)
    monkeypatch.setattr(columns_mod, "BUILD_PAGE", 5)


EVENT = st.fixed_dictionaries({"path": st.sampled_from(["/a", "/b", "/c", None]), "status": st.sampled_from([200, 404]),
                               "ms": st.one_of(st.just(12.5), st.integers(0, 9))})
OPS = st.lists(st.one_of(
    st.tuples(st.just("events"), st.lists(EVENT, min_size=1, max_size=30), st.sampled_from([None, 5, 60])),
    st.tuples(st.just("save"), st.sampled_from(["k1", "k2", "k3"]),
              st.fixed_dictionaries({"note": st.sampled_from(["x", "y"]), "status": st.just(200)})),
    st.tuples(st.just("remove"), st.sampled_from(["k1", "k2", "k3"]), st.none()),
    st.tuples(st.just("later"), st.integers(1, 70), st.none()),
    st.tuples(st.just("sweep"), st.none(), st.none()),
    st.tuples(st.just("query"), st.none(), st.none()),
), max_size=25)


@pytest.fixture
def retained(tmp_path):
    """An engine keeping 40 events a route (one for all the examples: each takes a route of its own)."""
    engine = Engine(str(tmp_path / "data"), maintenance=False, settings=Settings.load(environ={}, event_retention=40))
    yield engine
    engine.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(OPS)
def test_sealed_chunks_tail_and_removed_events_answer_like_records(retained, small_chunks, clock, ops):
    engine = retained
    route = f"t/s{next(_routes)}"
    engine.drop_many([{"route": route, "payload": {"path": "/a", "status": 200, "ms": 1}}])
    query(engine, QUERIES[1].format(r=route))  # the table exists from here on: the rest is refreshed
    for op, a, b in ops:
        if op == "events":
            engine.drop_many([{"route": route, "payload": p, "keep": b} for p in a])
        elif op == "save":
            engine.save(route, b, key=a)
        elif op == "remove" and engine.entity(route, a) is not None:
            engine.remove(route, a)
        elif op == "later":
            clock["ns"] += a * 10 ** 9
        elif op == "sweep":
            engine.sweep()
        elif op == "query":
            query(engine, QUERIES[2].format(r=route))
    engine.sweep()  # the table's own rows drop expired events when told (the sweep, once a second)
    _check(engine, route)
    table = store_for(engine).tables[route]
    log = engine.state.events.get(route)
    assert table.builds == 1
    assert table.n - table.dead <= len(log.tail) + 3, "sealed events are read from the chunks, not held"


def test_events_sealed_after_the_first_query_leave_the_table(make_engine, small_chunks):
    engine = make_engine()
    engine.save("t/e", {"note": "an entity", "status": 1}, key="k")
    engine.drop_many([{"route": "t/e", "payload": {"path": f"/p{i % 3}", "status": 200, "ms": i}} for i in range(30)])
    assert query(engine, 'SELECT COUNT(*) AS n FROM "t/e"')["rows"] == [{"n": 31}]
    table = store_for(engine).tables["t/e"]
    assert len(table.sealed.chunks) == 2 and table.n == 1 + 30 - 2 * ROWS  # the entity and the tail
    engine.drop_many([{"route": "t/e", "payload": {"path": "/new", "status": 404, "ms": 0.5}} for _ in range(50)])
    rows = query(engine, 'SELECT path, COUNT(*) AS n FROM "t/e" GROUP BY path ORDER BY path')["rows"]
    assert rows == [{"path": None, "n": 1}, {"path": "/new", "n": 50}, {"path": "/p0", "n": 10},
                    {"path": "/p1", "n": 10}, {"path": "/p2", "n": 10}]
    assert len(table.sealed.chunks) == 6
    assert table.n - table.dead == 1 + 80 - 6 * ROWS, "rows the engine sealed since are read from its chunks"
    _check(engine, "t/e")


def test_a_query_keeps_no_assembled_column(make_engine, small_chunks):
    engine = make_engine()
    engine.drop_many([{"route": "t/m", "payload": {"path": f"/p{i % 7}", "status": 200 + i % 2, "ms": i / 2}}
                      for i in range(ROWS * 10 + 3)])
    text = 'SELECT path, COUNT(*) AS n, SUM(ms) AS s FROM "t/m" WHERE status = 200 GROUP BY path'
    query(engine, text)
    table = store_for(engine).tables["t/m"]
    held = table.held_bytes()
    assert held == columns_bytes(engine)
    with table.lock:
        table.refresh(engine)
        view = table.view()
        vecs = [view.column(name) for name in ("path", "status", "ms", "created_at")]
    assert all(len(v.data) == ROWS * 10 + 3 for v in vecs)
    refs = [weakref.ref(v.data) for v in vecs if v.data.base is None]
    assert refs, "the vectors were assembled for the query"
    del view, vecs
    gc.collect()
    assert all(r() is None for r in refs), "nothing the table keeps holds a query's vectors"
    engine.drop_many([{"route": "t/m", "payload": {"path": "/p1", "status": 200, "ms": 1.0}}
                      for _ in range(ROWS * 20)])  # 20 more chunks, the same strings
    query(engine, text)
    assert table.held_bytes() < held + 64 * 20, "the table holds small code maps per chunk, no rows"


def test_writes_and_seals_while_querying(make_engine, small_chunks):
    engine = make_engine(settings=Settings.load(environ={}, event_retention=500))
    engine.drop_many([{"route": "t/w", "payload": {"v": 0}}])
    query(engine, 'SELECT COUNT(*) FROM "t/w"')
    errors = []

    def writer(w):
        for i in range(300):
            engine.drop_many([{"route": "t/w", "payload": {"v": 1, "w": w}}])
            if i % 50 == 0:
                engine.save("t/w", {"c": i}, key=f"k{w}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for _ in range(40):
        out = query(engine, 'SELECT COUNT(*) AS n, SUM(v) AS s, COUNT(DISTINCT key) AS k FROM "t/w"')["rows"][0]
        if not out["n"] - out["k"] <= 500 + 50:  # retention trims 10% at a time: a duplicate row would exceed it
            errors.append(out)
    for t in threads:
        t.join()
    assert not errors
    final = query(engine, 'SELECT COUNT(*) AS n, SUM(v) AS s FROM "t/w" WHERE key IS NULL')["rows"][0]
    want = [e["payload"] for e in engine.route_events("t/w")]
    assert final == {"n": len(want), "s": sum(p.get("v", 0) for p in want)}
