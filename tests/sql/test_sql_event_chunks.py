"""A route's SQL columns read from the engine's event chunks in place (sql/sealed.py, eventcols.py) are
exactly the columns of a table built from its event records: kinds, NULLs and values, row by row."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ocean.engine import events as events_mod
from ocean.sql import columns as columns_mod
from ocean.sql.columns import Table
from sqlcases import RecordsOnly

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.integers(-(2 ** 70), 2 ** 70),
    st.floats(allow_nan=False, allow_infinity=False, width=32), st.just(1.0),
    st.sampled_from(["a", "b", "", "2024-01-02T03:04:05.678Z", "2024-13-02T03:04:05.678Z", "x" * 24]))
FAMILIES = {
    "int": st.integers(-3, 300), "float": st.floats(-1e6, 1e6, width=32), "bool": st.booleans(),
    "str": st.sampled_from(["a", "b", "c", "", "\u2603"]),
    "ts": st.sampled_from(["2024-01-02T03:04:05.678Z", "2025-06-30T23:59:59.999Z", "2024-13-02T03:04:05.678Z"]),
    "num": st.one_of(st.integers(-3, 300), st.floats(-1e6, 1e6, width=32), st.integers(2 ** 53 - 1, 2 ** 53 + 1)),
    "mixed": scalars, "nested": st.lists(st.integers(0, 3), max_size=2),
}
FIELDS = ["a", "b", "c", "value"]


@st.composite
def batches(draw):
    """Events of one route: each field keeps one family of values (so chunks get typed columns),
    with NULLs, missing fields, changing key order and now and then a payload that is no object."""
    family = {f: draw(st.sampled_from(sorted(FAMILIES))) for f in FIELDS}
    out = []
    for _ in range(draw(st.integers(1, 5))):
        batch = []
        for _ in range(draw(st.integers(1, 20))):
            if draw(st.integers(0, 40)) == 0:
                batch.append(draw(scalars))
                continue
            names = draw(st.permutations(FIELDS))[:draw(st.integers(0, 4))]
            batch.append({f: None if draw(st.integers(0, 9)) == 0 else draw(FAMILIES[family[f]]) for f in names})
        out.append(batch)
    return out


_routes = itertools.count()



def _state(view, name):
    v = view.column(name)
    return [v.kind, len(v.data), json.dumps(v.to_list(), default=repr)]


@pytest.fixture
def engine(make_engine, monkeypatch):
    # a record-built table types its rows a page at a time (an int beyond int64 among floats reads
    # as an object in a page without floats): pages of one chunk's rows compare like with like
    monkeypatch.setattr(events_mod, "ROWS", 12)
    monkeypatch.setattr(columns_mod, "BUILD_PAGE", 12)
    return make_engine()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches(), st.integers(1, 4), st.integers(0, 3))
def test_chunk_read_columns_equal_record_built_ones(engine, batches, step, start):
    route = f"t/r{next(_routes)}"
    for batch in batches:
        engine.drop_many([{"route": route, "payload": p} for p in batch])
    log = engine.state.events[route]
    assert len(log.chunks) == len(log) // 12  # sealed chunks are read in place
    new, old = Table(route), Table(route)
    new.build(engine)
    old.build(RecordsOnly(engine))
    assert new.sealed is not None and old.sealed is None
    assert new.n == len(log.tail) and new.loaded_seq == old.loaded_seq  # the table holds the tail's rows only
    a, b = new.view(), old.view()
    assert a.n == b.n and a.names == b.names
    for name in list(b.names) + ["missing"]:
        assert _state(a, name) == _state(b, name), name
    # the rows a query kept (after a WHERE; in ORDER BY's order) are read from the chunks alone,
    # typed as the whole column is
    rows = np.arange(start, a.n, step)
    for at in (rows, rows[::-1].copy()):
        a, b = new.view(), old.view()
        for name in list(b.names) + ["missing"]:
            got, want = a.column_at(name, at), b.column(name).take(at)
            assert [got.kind, json.dumps(got.to_list(), default=repr)] == \
                [want.kind, json.dumps(want.to_list(), default=repr)], name
