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


# -- percentiles against numpy -------------------------------------------------------------------

@st.composite
def percentile_tables(draw):
    """Events ``{g, x}`` (x: ints or reals, some NULL or missing) and a fraction."""
    floats = draw(st.booleans())
    value = st.floats(-1e6, 1e6, allow_nan=False) if floats else st.integers(-10**6, 10**6)
    rows = draw(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.one_of(st.none(), value)), max_size=60))
    events = [{"seq": i + 1, "created_at": "2026-02-01T00:00:00.000Z",
               "payload": {"g": g} if x is None and i % 2 else {"g": g, "x": x}} for i, (g, x) in enumerate(rows)]
    fraction = draw(st.one_of(st.sampled_from([0, 0.5, 0.95, 0.99, 1]), st.floats(0, 1)))
    return events, fraction


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(percentile_tables())
def test_percentiles_match_numpy(table):
    import numpy as np
    events, fraction = table
    engine = FixtureEngine({"t/x": {"entities": {}, "events": events}})
    grouped = query(engine, f'SELECT g, percentile(x, {fraction!r}) AS p, median(x) AS m, COUNT(x) AS n '
                            f'FROM "t/x" GROUP BY g ORDER BY g')["rows"]
    whole = query(engine, f'SELECT percentile(x, {fraction!r}) AS p, median(x) AS m FROM "t/x"')["rows"]
    values: dict = {}
    for e in events:
        values.setdefault(e["payload"]["g"], [])
        if e["payload"].get("x") is not None:
            values[e["payload"]["g"]].append(e["payload"]["x"])
    assert [r["g"] for r in grouped] == sorted(values)

    def want(xs, q):
        return None if not xs else float(np.percentile(np.array(xs, np.float64), q * 100))

    def close(a, b):
        return a is None and b is None or (a is not None and b is not None and abs(a - b) <= 1e-9 * max(1, abs(b)))

    for r in grouped:
        xs = values[r["g"]]
        assert r["n"] == len(xs)
        assert close(r["p"], want(xs, fraction)), (r, xs)
        assert close(r["m"], want(xs, 0.5)), (r, xs)
    every = [x for xs in values.values() for x in xs]
    assert close(whole[0]["p"], want(every, fraction)) and close(whole[0]["m"], want(every, 0.5))


# -- time zones: the vectorised offsets against zoneinfo, one instant at a time ---------------------

ZONES = ["Europe/Paris", "America/New_York", "America/Santiago", "Australia/Lord_Howe", "Asia/Kolkata",
         "Pacific/Chatham", "America/St_Johns", "UTC"]


def _pg_local_to_utc(naive, z):
    """PostgreSQL's reading of a local time: skipped -> the offset before the change; repeated -> after."""
    from datetime import timezone as tzu
    a, b = naive.replace(tzinfo=z, fold=0), naive.replace(tzinfo=z, fold=1)
    pick = b if a.utcoffset() > b.utcoffset() else a
    return pick.astimezone(tzu.utc)


def _oracle_trunc(unit, ms, zone_name):
    from datetime import datetime, timedelta, timezone as tzu
    from zoneinfo import ZoneInfo
    z = ZoneInfo(zone_name)
    local = datetime.fromtimestamp(ms / 1000, tzu.utc).astimezone(z)
    if unit == "hour":  # below a day: the instant keeps its own offset
        out = local.replace(minute=0, second=0, microsecond=0)
        return int(out.astimezone(tzu.utc).timestamp() * 1000)
    naive = local.replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    if unit == "week":
        naive -= timedelta(days=naive.weekday())
    elif unit == "month":
        naive = naive.replace(day=1)
    return int(_pg_local_to_utc(naive, z).timestamp() * 1000)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ZONES), st.lists(st.integers(631_152_000_000, 2_208_988_800_000), min_size=1, max_size=40),
       st.sampled_from(["hour", "day", "week", "month"]))
def test_date_trunc_in_a_zone_matches_zoneinfo(zone_name, instants, unit):
    from ocean.model import iso_ms
    events = [{"seq": i + 1, "created_at": iso_ms(ms), "payload": {"n": i}} for i, ms in enumerate(instants)]
    engine = FixtureEngine({"t/z": {"entities": {}, "events": events}})
    rows = query(engine, f"SELECT created_at, date_trunc('{unit}', created_at, '{zone_name}') AS t FROM \"t/z\"")["rows"]
    assert [r["t"] for r in rows] == [iso_ms(_oracle_trunc(unit, ms, zone_name)) for ms in instants]


def test_percentiles_of_many_groups_take_one_sort_and_agree():
    import numpy as np
    from ocean.sql import aggregates
    rng = np.random.default_rng(16)
    g = rng.integers(0, 3000, 20000)
    x = np.round(rng.gamma(2.0, 30.0, 20000), 3)
    assert len(np.unique(g)) > aggregates._PARTITION_GROUPS  # the lexsort path
    events = [{"seq": i + 1, "created_at": "2026-02-01T00:00:00.000Z", "payload": {"g": int(a), "x": float(b)}}
              for i, (a, b) in enumerate(zip(g, x))]
    engine = FixtureEngine({"t/m": {"entities": {}, "events": events}})
    rows = query(engine, 'SELECT g, percentile(x, 0.95) AS p FROM "t/m" GROUP BY g ORDER BY g')["rows"]
    for r in rows[::97]:
        assert abs(r["p"] - np.percentile(x[g == r["g"]], 95)) <= 1e-9 * r["p"]
    few = query(engine, 'SELECT g % 7 AS h, percentile(x, 0.95) AS p FROM "t/m" GROUP BY h ORDER BY h')["rows"]
    for r in few:
        assert abs(r["p"] - np.percentile(x[g % 7 == r["h"]], 95)) <= 1e-9 * r["p"]
