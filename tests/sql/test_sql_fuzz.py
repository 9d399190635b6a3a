"""Any string given as SQL gives a result or an ocean error -- never another exception."""
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocean.errors import OceanError
from ocean.settings import Settings
from ocean.sql import query
from sqlcases import FixtureEngine

ENGINE = FixtureEngine()
LIMITS = Settings.load(environ={}, sql_max_rows=1000, sql_time_limit_ms=2000)

WORDS = ["SELECT", "DISTINCT", "FROM", '"shop/orders"', '"shop/*"', '"analytics/daily"', "WHERE", "GROUP", "BY",
         "HAVING", "ORDER", "ASC", "DESC", "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "AND", "OR", "NOT", "IN",
         "IS", "NULL", "BETWEEN", "LIKE", "CASE", "WHEN", "THEN", "ELSE", "END", "CAST", "AS", "INTEGER", "TEXT",
         "COUNT", "SUM", "AVG", "MIN", "MAX", "COALESCE", "LOWER", "UPPER", "LENGTH", "SUBSTR", "ROUND", "ABS",
         "date_trunc", "time_bucket", "'day'", "'1 hour'", "'paid'", "'%a%'", "key", "amount", "qty", "status",
         "ts", "note", "created_at", "customer", "page_views", "*", "(", ")", ",", "+", "-", "/", "%", "=", "<",
         ">=", "!=", "||", "0", "1", "2.5", "-3", "1e400", "9223372036854775807", "TRUE", "''", "\"\""]


def check(text):
    try:
        out = query(ENGINE, text, settings=LIMITS)
    except OceanError as exc:
        assert exc.code != "internal", exc.message
        return
    assert set(out) == {"columns", "rows"}
    for row in out["rows"]:
        assert list(row) == out["columns"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_any_text(text):
    check(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=string.printable, max_size=120).map(lambda s: "SELECT " + s))
def test_any_select_tail(text):
    check(text)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=25))
def test_token_soup(words):
    check(" ".join(words))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(WORDS[7:]), max_size=14), st.lists(st.sampled_from(WORDS[7:]), max_size=10),
       st.sampled_from(['"shop/orders"', '"shop/*"', '"analytics/daily"', '"none/x"']))
def test_select_shaped_soup(select, tail, source):
    check("SELECT " + (" ".join(select) or "*") + " FROM " + source + " " + " ".join(tail))
