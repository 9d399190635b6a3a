"""Limits, scopes and the errors users see: row cap, time limit, read scope, unknown names, types."""
import pytest

from ocean.access import Access
from ocean.errors import Forbidden, QueryLimit, SqlError
from ocean.settings import Settings
from ocean.sql import query
from sqlcases import FixtureEngine


def test_row_cap_names_the_setting(fixture_engine):
    settings = Settings.load(environ={}, sql_max_rows=5)
    with pytest.raises(QueryLimit) as info:
        query(fixture_engine, 'SELECT * FROM "shop/orders"', settings=settings)
    assert "sql_max_rows" in info.value.message and info.value.code == "query_limit"
    out = query(fixture_engine, 'SELECT * FROM "shop/orders" LIMIT 5', settings=settings)
    assert len(out["rows"]) == 5
    out = query(fixture_engine, 'SELECT status, COUNT(*) FROM "shop/orders" GROUP BY status', settings=settings)
    assert len(out["rows"]) == 3


def test_zero_turns_the_limits_off(fixture_engine):
    settings = Settings.load(environ={}, sql_max_rows=0, sql_time_limit_ms=0)
    assert len(query(fixture_engine, 'SELECT * FROM "shop/*"', settings=settings)["rows"]) == 48


def test_time_limit_names_the_setting():
    eng = FixtureEngine({"big/t": {"entities": {}, "events": [
        {"seq": i + 1, "created_at": "2026-02-10T00:00:00.000Z", "payload": {"v": [i] if i % 2 else f"s{i}"}}
        for i in range(8000)]}})
    settings = Settings.load(environ={}, sql_time_limit_ms=1)
    query(eng, 'SELECT COUNT(*) FROM "big/t"')  # build the table first: the limit is on the query
    with pytest.raises(QueryLimit) as info:
        query(eng, 'SELECT v FROM "big/t" WHERE v LIKE v ORDER BY v', settings=settings)
    assert "sql_time_limit_ms" in info.value.message


def test_the_engine_settings_are_the_default():
    eng = FixtureEngine(settings=Settings.load(environ={}, sql_max_rows=2))
    with pytest.raises(QueryLimit):
        query(eng, 'SELECT key FROM "analytics/daily"')


def test_read_scope_is_checked_for_from():
    eng = FixtureEngine()
    shop = Access("k1", read=("shop/*",))
    assert query(eng, 'SELECT COUNT(*) AS n FROM "shop/orders"', access=shop)["rows"] == [{"n": 40}]
    assert query(eng, 'SELECT COUNT(*) AS n FROM "shop/*"', access=shop)["rows"] == [{"n": 48}]
    for source in ('"analytics/daily"', '"analytics/*"', '"*"'):
        with pytest.raises(Forbidden):
            query(eng, f"SELECT COUNT(*) FROM {source}", access=shop)
    exact = Access("k2", read=("shop/orders",))
    with pytest.raises(Forbidden):
        query(eng, 'SELECT COUNT(*) FROM "shop/*"', access=exact)
    assert query(eng, 'SELECT COUNT(*) AS n FROM "*"')["rows"] == [{"n": 60}]


def test_unknown_column_is_null_unknown_function_is_an_error(fixture_engine):
    out = query(fixture_engine, 'SELECT typo FROM "analytics/daily" LIMIT 1')
    assert out == {"columns": ["typo"], "rows": [{"typo": None}]}
    assert query(fixture_engine, 'SELECT COUNT(*) AS n FROM "analytics/daily" WHERE typo = 1')["rows"] == [{"n": 0}]
    with pytest.raises(SqlError) as info:
        query(fixture_engine, 'SELECT typo(key) FROM "analytics/daily"')
    assert "unknown function TYPO()" in info.value.message and "DATE_TRUNC" in info.value.message


@pytest.mark.parametrize("text, says", [
    ('SELECT key * 2 FROM "analytics/daily"', "'*' needs numbers, got text"),
    ('SELECT AVG(name) FROM "shop/customers"', "AVG() needs numbers, got text"),
    ('SELECT key FROM "analytics/daily" WHERE page_views > \'100\'', "cannot compare an integer with text"),
    ('SELECT ROUND(amount, qty) FROM "shop/orders"', "whole-number constant"),
    ('SELECT SUBSTR(name, tier) FROM "shop/customers"', "whole-number constant"),
    ('SELECT date_trunc(status, ts) FROM "shop/orders"', "unit in quotes"),
])
def test_type_errors_say_what_met(fixture_engine, text, says):
    with pytest.raises(SqlError) as info:
        query(fixture_engine, text)
    assert says in info.value.message


def test_integer_overflow_in_sum_is_an_error():
    eng = FixtureEngine({"o/v": {"entities": {}, "events": [
        {"seq": i + 1, "created_at": "2026-02-10T00:00:00.000Z", "payload": {"v": 2 ** 62}} for i in range(3)]}})
    with pytest.raises(SqlError) as info:
        query(eng, 'SELECT SUM(v) FROM "o/v"')
    assert "overflow" in info.value.message
    assert query(eng, 'SELECT AVG(v) AS a FROM "o/v"')["rows"] == [{"a": float(2 ** 62)}]
    assert query(eng, 'SELECT SUM(CAST(v AS REAL)) AS s FROM "o/v"')["rows"] == [{"s": 3.0 * 2 ** 62}]


def test_not_text_is_a_parse_error(fixture_engine):
    from ocean.errors import ParseError
    with pytest.raises(ParseError):
        query(fixture_engine, b"SELECT 1")
