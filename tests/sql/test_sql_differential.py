"""Differential fuzz: generated well-typed queries give the same rows in ocean and in sqlite3."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocean.sql import query
from sqlcases import FixtureEngine, normalize, oracle_connection, oracle_query

ENGINE = FixtureEngine()
ORACLE = oracle_connection(ENGINE)

NUM_COLS = ["amount", "qty"]
TEXT_COLS = ["status", "customer", "note"]
st_int = st.integers(-3, 120).map(str)
SOURCES = ['"shop/orders"', '"shop/*"']  # the prefix adds shop/customers' rows (NULL in these columns)
TIME_KEYS = ["date_trunc('day', ts)", "date_trunc('week', ts)", "time_bucket('6 hours', ts)",
             "date_trunc('hour', created_at)", "date_trunc('month', ts)"]


def nums(depth=2):
    base = st.one_of(st.sampled_from(NUM_COLS), st_int, st.sampled_from(["2.5", "NULL"]))
    if depth == 0:
        return base
    sub = nums(depth - 1)
    return st.one_of(
        base,
        st.tuples(sub, st.sampled_from(["+", "-", "*", "/", "%"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        sub.map(lambda x: f"ABS({x})"),
        st.tuples(sub, sub).map(lambda t: f"COALESCE({t[0]}, {t[1]})"),
        st.tuples(conds(depth - 1), sub, sub).map(lambda t: f"CASE WHEN {t[0]} THEN {t[1]} ELSE {t[2]} END"),
        texts(0).map(lambda x: f"LENGTH({x})"),
    )


def texts(depth=1):
    base = st.one_of(st.sampled_from(TEXT_COLS), st.sampled_from(["'paid'", "'c03'", "'gift'", "''"]))
    if depth == 0:
        return base
    sub = texts(depth - 1)
    return st.one_of(base, sub.map(lambda x: f"LOWER({x})"), sub.map(lambda x: f"UPPER({x})"),
                     sub.map(lambda x: f"SUBSTR({x}, 2, 2)"),
                     st.tuples(sub, sub).map(lambda t: f"({t[0]} || {t[1]})"),
                     st.tuples(sub, sub).map(lambda t: f"COALESCE({t[0]}, {t[1]})"))


def conds(depth=2):
    cmp = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])
    base = st.one_of(
        st.tuples(nums(0), cmp, nums(0)).map(" ".join),
        st.tuples(texts(0), cmp, texts(0)).map(" ".join),
        st.sampled_from(NUM_COLS + TEXT_COLS).map(lambda c: f"{c} IS NULL"),
        st.sampled_from(NUM_COLS + TEXT_COLS).map(lambda c: f"{c} IS NOT NULL"),
        st.tuples(nums(0), st_int, st_int).map(lambda t: f"{t[0]} BETWEEN {t[1]} AND {t[2]}"),
        texts(0).map(lambda x: f"{x} IN ('paid', 'pending', NULL)"),
        texts(0).map(lambda x: f"{x} NOT IN ('paid', 'c01')"),
        st.tuples(texts(0), st.sampled_from(["'p%'", "'%a_d'", "'G%'", "'%'"])).map(lambda t: f"{t[0]} LIKE {t[1]}"),
    )
    if depth == 0:
        return base
    sub = conds(depth - 1)
    return st.one_of(base, st.tuples(sub, sub).map(lambda t: f"({t[0]} AND {t[1]})"),
                     st.tuples(sub, sub).map(lambda t: f"({t[0]} OR {t[1]})"), sub.map(lambda x: f"NOT ({x})"))


@st.composite
def row_queries(draw):
    items = draw(st.lists(st.one_of(nums(), texts()), min_size=1, max_size=3))
    where = draw(st.one_of(st.none(), conds()))
    source = draw(st.sampled_from(SOURCES))
    distinct = draw(st.sampled_from(["", "DISTINCT "]))
    sql = f"SELECT {distinct}" + ", ".join(f"{e} AS c{i}" for i, e in enumerate(items)) + f" FROM {source}"
    if where:
        sql += f" WHERE {where}"
    if draw(st.booleans()):
        direction = st.sampled_from(["", " DESC", " ASC NULLS LAST", " DESC NULLS FIRST"])
        sql += " ORDER BY " + ", ".join(f"c{i}" + draw(direction) for i in range(len(items)))
        if draw(st.booleans()):
            sql += f" LIMIT {draw(st.integers(0, 12))}"
            if draw(st.booleans()):
                sql += f" OFFSET {draw(st.integers(0, 30))}"
    return sql


@st.composite
def group_queries(draw):
    key = draw(st.one_of(st.sampled_from(TEXT_COLS + ["qty"]), texts(1), st.sampled_from(TIME_KEYS)))
    aggs = draw(st.lists(st.one_of(
        st.just("COUNT(*)"),
        st.tuples(st.sampled_from(["COUNT", "SUM", "AVG", "MIN", "MAX"]), nums(1)).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(["MIN", "MAX", "COUNT"]), texts(0)).map(lambda t: f"{t[0]}({t[1]})"),
        nums(0).map(lambda x: f"COUNT(DISTINCT {x})"),
        st.sampled_from(["MIN(ts)", "MAX(created_at)", "COUNT(DISTINCT date_trunc('day', ts))"]),
    ), min_size=1, max_size=3))
    where = draw(st.one_of(st.none(), conds(1)))
    source = draw(st.sampled_from(SOURCES))
    sql = f"SELECT {key} AS k, " + ", ".join(f"{a} AS a{i}" for i, a in enumerate(aggs)) + f" FROM {source}"
    if where:
        sql += f" WHERE {where}"
    sql += " GROUP BY k"
    if draw(st.booleans()):
        sql += f" HAVING COUNT(*) > {draw(st.integers(0, 4))}"
    return sql


def same(sql):
    ordered = "ORDER BY" in sql
    got = query(ENGINE, sql)
    want = oracle_query(ORACLE, sql)
    assert normalize(got["rows"], ordered) == normalize(want["rows"], ordered), sql


@settings(max_examples=90, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row_queries())
def test_row_queries_match_sqlite(sql):
    same(sql)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(group_queries())
def test_group_queries_match_sqlite(sql):
    same(sql)
