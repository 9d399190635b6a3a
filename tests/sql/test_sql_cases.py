"""SQL cases from tests/sql/cases/*.sqltest: each query's rows checked against the file and sqlite3."""
from __future__ import annotations

import pytest

from ocean.errors import OceanError
from ocean.sql import query

from sqlcases import load_cases, normalize, oracle_query

CASES = load_cases()


def _ordered(sql: str) -> bool:
    return "ORDER BY" in sql.upper()


@pytest.mark.parametrize("case", CASES, ids=[f"{c['file']}:{c['name']}" for c in CASES])
def test_case(case, fixture_engine, oracle):
    if case["error"]:
        with pytest.raises(OceanError) as info:
            query(fixture_engine, case["sql"], now_ms=case["now"])
        assert info.value.code == case["error"], info.value.message
        return
    got = query(fixture_engine, case["sql"], now_ms=case["now"])
    ordered = _ordered(case["sql"])
    assert normalize(got["rows"], ordered) == normalize(case["rows"], ordered)
    for row in got["rows"]:
        assert list(row) == got["columns"], "rows are objects in column order"
    if case["columns"] is not None:
        assert got["columns"] == case["columns"]
    if case["oracle"]:
        want = oracle_query(oracle, case["sql"])
        assert normalize(got["rows"], ordered) == normalize(want["rows"], ordered), "differs from sqlite3"
        assert got["columns"] == want["columns"]


def test_there_are_cases():
    assert len(CASES) >= 40
