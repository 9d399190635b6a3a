"""SQL beside stdlib sqlite3 (in memory, the same rows): ocean's time should be <= 1.0x sqlite3's.

Run: ``PYTHONPATH=src python -m pytest bench/bench_sql.py --benchmark-only``
(``OCEAN_BENCH_SQL_SIZES=200000`` skips the 1M-event data set; the default is
``200000,1000000``.)

Every benchmark asserts its answer, and ocean's answer equals sqlite3's. Groups:

- ``sql-groupby-day-<n>``: n events, ``GROUP BY`` day with ``COUNT(*)`` and ``SUM``.
- ``sql-top10-<n>``: a filtered top-10 (``WHERE ... ORDER BY latency DESC LIMIT 10``).
- ``sql-percentile-<n>`` and ``sql-percentile-by-path-<n>``: exact ``percentile``/``median`` of a
  float column (and per path) beside DuckDB's ``quantile_cont`` on the same values, both on one
  thread; both answers are checked against ``numpy.percentile``.
- ``sql-tutorial-3y``: the tutorial's query over 3 years of daily entities; sqlite3 plain
  (the same rows, no index) and with ``key`` as its PRIMARY KEY (an index ocean does not keep).
- ``sql-after-1000-writes``: the day group-by on 200k events right after 1,000 new events
  were written (writes not timed): the columns are patched, never rebuilt.
- ``sql-tutorial-after-1000-incr``: the tutorial query right after 1,000 counter increments
  spread over the 3 years of days (sqlite3: 1,000 UPDATEs), increments not timed.
- ``sql-issue14-first-query-<n>`` and ``sql-issue14-{count,by-path,since}-<n>``: issue 14's events
  (``OCEAN_BENCH_SQL_ISSUE14``, default 1M, dropped in batches of 1,000): a route's first query
  (its table's memory per event in ``extra_info``), then a count, a group by path with a WHERE on
  status, a time filter; ``ocean-copy`` runs the same plans over a table holding a copy of the
  events (what SQL kept before it read the engine's chunks in place).

Setup: the data goes through the real engine (``fsync="no"``, no maintenance thread,
no snapshots): ~35 us a write, then ocean's first query of the route (its table: the
sealed event chunks are read in place by each query, only the open tail becomes rows). The
timed queries run on the built table, the way a server answers every query after the first.
The whole file, 1M events included, runs in about 1.5 minutes on 2 cores.
"""
from __future__ import annotations

import datetime
import os
import shutil
import sqlite3
import sys
import tempfile

import numpy as np
import pytest

from ocean import Engine
from ocean.settings import Settings
from ocean.sql import query
from ocean.sql.columns import store_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "sql"))
from sqlcases import RecordsOnly  # noqa: E402  (the records-only engine: a table holding a copy)

SIZES = [int(s) for s in os.environ.get("OCEAN_BENCH_SQL_SIZES", "200000,1000000").split(",") if s]
PATHS = ["/drop", "/entity/*", "/sql", "/live/*", "/admin", "/exec"]

GROUP_OCEAN = ('SELECT date_trunc(\'day\', ts) AS day, COUNT(*) AS n, SUM(bytes) AS total '
               'FROM "bench/events" GROUP BY day ORDER BY day')
# sqlite3 has no date_trunc: grouping on the date prefix of the ISO text is its fastest equivalent
GROUP_SQLITE = ("SELECT substr(ts, 1, 10) || 'T00:00:00.000Z' AS day, COUNT(*) AS n, SUM(bytes) AS total "
                "FROM events GROUP BY substr(ts, 1, 10) ORDER BY day")
TOP_OCEAN = ('SELECT path, status, latency FROM "bench/events" WHERE status = 500 AND latency > 100 '
             'ORDER BY latency DESC LIMIT 10')
TOP_SQLITE = ("SELECT path, status, latency FROM events WHERE status = 500 AND latency > 100 "
              "ORDER BY latency DESC LIMIT 10")
TUTORIAL = 'SELECT key AS date, page_views, requests FROM "analytics/daily" ORDER BY key DESC LIMIT 7'
TUTORIAL_SQLITE = "SELECT key AS date, page_views, requests FROM daily ORDER BY key DESC LIMIT 7"


def _open_engine() -> Engine:
    settings = Settings.load(environ={}, snapshot_every=0, event_retention=0)
    return Engine(tempfile.mkdtemp(prefix="ocean-bench-sql-"), fsync="no", settings=settings, maintenance=False)


def _close(eng: Engine) -> None:
    eng.close()
    shutil.rmtree(eng.path, ignore_errors=True)


def _events(n: int, seed: int = 42) -> list[dict]:
    """n request events spread over 2025: ISO ``ts``, path, status, latency, bytes."""
    rng = np.random.default_rng(seed)
    ms = rng.integers(0, 365 * 86_400_000, n)
    ts = np.datetime_as_string(np.datetime64("2025-01-01T00:00:00.000") + ms.astype("timedelta64[ms]"), unit="ms")
    status = rng.choice([200, 200, 200, 201, 404, 500], n).tolist()
    latency = np.round(rng.gamma(2.0, 30.0, n), 3).tolist()
    size = rng.integers(100, 100_000, n).tolist()
    path = rng.choice(PATHS, n).tolist()
    return [{"ts": t + "Z", "path": p, "status": s, "latency": lat, "bytes": b}
            for t, p, s, lat, b in zip(ts.tolist(), path, status, latency, size)]


class Dataset:
    """The same rows in ocean (through the engine) and in sqlite3 (in memory)."""

    def __init__(self, events: list[dict]):
        self.engine = _open_engine()
        for payload in events:
            self.engine.save("bench/events", payload)
        self.sqlite = sqlite3.connect(":memory:")
        self.sqlite.execute("CREATE TABLE events (key, created_at, updated_at, ts, path, status, latency, bytes)")
        self.insert_sqlite(list(self.engine.route_events("bench/events")))
        query(self.engine, 'SELECT COUNT(*) FROM "bench/events"')  # ocean's first query builds the route's table

    def insert_sqlite(self, records: list[dict]) -> None:
        self.sqlite.executemany(
            "INSERT INTO events VALUES (NULL, ?, NULL, ?, ?, ?, ?, ?)",
            [(r["created_at"], r["payload"]["ts"], r["payload"]["path"], r["payload"]["status"],
              r["payload"]["latency"], r["payload"]["bytes"]) for r in records])

    def close(self) -> None:
        _close(self.engine)
        self.sqlite.close()
        if getattr(self, "duck", None) is not None:
            self.duck.close()


_datasets: dict[int, Dataset] = {}


@pytest.fixture(scope="module")
def datasets():
    yield _datasets
    for ds in _datasets.values():
        ds.close()
    _datasets.clear()


def dataset(datasets, n: int) -> Dataset:
    if n not in datasets:
        datasets[n] = Dataset(_events(n))
    return datasets[n]


def _rows(out) -> list[tuple]:
    return [tuple(r.values()) for r in out["rows"]] if isinstance(out, dict) else [tuple(r) for r in out]


def _check_groupby(got, n: int) -> None:
    rows = _rows(got)
    assert len(rows) == 365
    assert rows[0][0] == "2025-01-01T00:00:00.000Z" and rows[-1][0] == "2025-12-31T00:00:00.000Z"
    assert sum(r[1] for r in rows) == n


def _check_top(got) -> None:
    rows = _rows(got)
    assert len(rows) == 10 and all(r[1] == 500 and r[2] > 100 for r in rows)
    assert [r[2] for r in rows] == sorted((r[2] for r in rows), reverse=True)


# -- GROUP BY day ------------------------------------------------------------------------

@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("engine_name", ["ocean", "sqlite3"])
def test_groupby_day(benchmark, datasets, n, engine_name):
    ds = dataset(datasets, n)
    benchmark.group = f"sql-groupby-day-{n}"
    if engine_name == "ocean":
        got = benchmark(query, ds.engine, GROUP_OCEAN)
    else:
        got = benchmark(lambda: ds.sqlite.execute(GROUP_SQLITE).fetchall())
    _check_groupby(got, n)
    assert _rows(got) == _rows(ds.sqlite.execute(GROUP_SQLITE).fetchall())


# -- filtered top-10 -------------------------------------------------------------------------

@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("engine_name", ["ocean", "sqlite3"])
def test_filtered_top10(benchmark, datasets, n, engine_name):
    ds = dataset(datasets, n)
    benchmark.group = f"sql-top10-{n}"
    if engine_name == "ocean":
        got = benchmark(query, ds.engine, TOP_OCEAN)
    else:
        got = benchmark(lambda: ds.sqlite.execute(TOP_SQLITE).fetchall())
    _check_top(got)
    assert _rows(got) == _rows(ds.sqlite.execute(TOP_SQLITE).fetchall())


# -- exact percentiles beside DuckDB's quantile_cont ------------------------------------------------

PCT_OCEAN = 'SELECT percentile(latency, 0.95) AS p95, median(latency) AS p50 FROM "bench/events"'
PCT_DUCKDB = "SELECT quantile_cont(latency, 0.95) AS p95, quantile_cont(latency, 0.5) AS p50 FROM events"
PCT_GROUP_OCEAN = ('SELECT path, percentile(latency, 0.95) AS p95 FROM "bench/events" GROUP BY path ORDER BY path')
PCT_GROUP_DUCKDB = "SELECT path, quantile_cont(latency, 0.95) AS p95 FROM events GROUP BY path ORDER BY path"


def _duckdb(ds: Dataset):
    """DuckDB in memory holding the same latency and path columns (loaded once from a CSV file)."""
    if getattr(ds, "duck", None) is None:
        duckdb = pytest.importorskip("duckdb")
        rows = ds.sqlite.execute("SELECT latency, path FROM events").fetchall()
        folder = tempfile.mkdtemp(prefix="ocean-bench-duckdb-")
        try:
            csv = os.path.join(folder, "events.csv")
            with open(csv, "w") as f:
                f.write("latency,path\n")
                f.writelines(f"{lat!r},{path}\n" for lat, path in rows)
            ds.duck = duckdb.connect(":memory:")
            ds.duck.execute("SET threads TO 1")  # one core each: ocean's query runs on one
            ds.duck.execute(f"CREATE TABLE events AS SELECT * FROM read_csv('{csv}', header = true, "
                            f"columns = {{'latency': 'DOUBLE', 'path': 'VARCHAR'}})")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        ds.latency = np.array([r[0] for r in rows], np.float64)
        ds.paths = np.array([r[1] for r in rows])
    return ds.duck


def _check_percentiles(got, ds: Dataset) -> None:
    (p95, p50), = _rows(got)
    assert abs(p95 - np.percentile(ds.latency, 95)) <= 1e-9 * p95
    assert abs(p50 - np.percentile(ds.latency, 50)) <= 1e-9 * p50


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("engine_name", ["ocean", "duckdb"])
def test_percentile(benchmark, datasets, n, engine_name):
    ds = dataset(datasets, n)
    duck = _duckdb(ds)
    benchmark.group = f"sql-percentile-{n}"
    if engine_name == "ocean":
        got = benchmark(query, ds.engine, PCT_OCEAN)
    else:
        got = benchmark(lambda: duck.execute(PCT_DUCKDB).fetchall())
    _check_percentiles(got, ds)
    theirs = duck.execute(PCT_DUCKDB).fetchall()[0]
    assert all(abs(a - b) <= 1e-9 * abs(b) for a, b in zip(_rows(got)[0], theirs))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("engine_name", ["ocean", "duckdb"])
def test_percentile_by_path(benchmark, datasets, n, engine_name):
    ds = dataset(datasets, n)
    duck = _duckdb(ds)
    benchmark.group = f"sql-percentile-by-path-{n}"
    if engine_name == "ocean":
        got = benchmark(query, ds.engine, PCT_GROUP_OCEAN)
    else:
        got = benchmark(lambda: duck.execute(PCT_GROUP_DUCKDB).fetchall())
    rows = _rows(got)
    assert [r[0] for r in rows] == sorted(PATHS)
    for path, p95 in rows:
        want = np.percentile(ds.latency[ds.paths == path], 95)
        assert abs(p95 - want) <= 1e-9 * want
    assert all(a[0] == b[0] and abs(a[1] - b[1]) <= 1e-9 * b[1]
               for a, b in zip(rows, duck.execute(PCT_GROUP_DUCKDB).fetchall()))


# -- the tutorial's query over 3 years of days -------------------------------------------------

@pytest.fixture(scope="module")
def three_years():
    eng = _open_engine()
    start = datetime.date(2023, 1, 1)
    for i in range(3 * 365 + 1):
        day = (start + datetime.timedelta(days=i)).isoformat()
        eng.incr("analytics/daily", day, {"page_views": (i * 37) % 5000 + 1, "requests": (i * 91) % 20000 + 1})
    rows = [(k, r["created_at"], r["updated_at"], r["payload"]["page_views"], r["payload"]["requests"])
            for k, r in eng.route_entities("analytics/daily")]
    plain = sqlite3.connect(":memory:")
    plain.execute("CREATE TABLE daily (key, created_at, updated_at, page_views, requests)")
    plain.executemany("INSERT INTO daily VALUES (?, ?, ?, ?, ?)", rows)
    indexed = sqlite3.connect(":memory:")
    indexed.execute("CREATE TABLE daily (key TEXT PRIMARY KEY, created_at, updated_at, page_views, requests)")
    indexed.executemany("INSERT INTO daily VALUES (?, ?, ?, ?, ?)", rows)
    query(eng, TUTORIAL)
    yield eng, {"sqlite3": plain, "sqlite3-primary-key": indexed}
    _close(eng)


@pytest.mark.parametrize("engine_name", ["ocean", "sqlite3", "sqlite3-primary-key"])
def test_tutorial_three_years(benchmark, three_years, engine_name):
    eng, sqlites = three_years
    benchmark.group = "sql-tutorial-3y"
    if engine_name == "ocean":
        got = benchmark(query, eng, TUTORIAL)
        assert got["columns"] == ["date", "page_views", "requests"]
    else:
        con = sqlites[engine_name]
        got = benchmark(lambda: con.execute(TUTORIAL_SQLITE).fetchall())
    rows = _rows(got)
    assert [r[0] for r in rows] == ["2025-12-31", "2025-12-30", "2025-12-29", "2025-12-28", "2025-12-27",
                                    "2025-12-26", "2025-12-25"]
    assert rows == _rows(sqlites["sqlite3"].execute(TUTORIAL_SQLITE).fetchall())


# -- a query right after 1,000 new writes -------------------------------------------------------

AFTER_N = 200_000


@pytest.fixture(scope="module")
def after_writes():
    ds = Dataset(_events(AFTER_N, seed=7))
    ds.extra = iter(_events(200 * 1000, seed=8))
    yield ds
    ds.close()


@pytest.mark.parametrize("engine_name", ["ocean", "sqlite3"])
def test_query_after_1000_writes(benchmark, after_writes, engine_name):
    ds = after_writes
    table = store_for(ds.engine).table("bench/events")
    benchmark.group = "sql-after-1000-writes"
    state = {"expected": _total(ds, engine_name)}

    def write_1000():
        batch = [next(ds.extra) for _ in range(1000)]
        if engine_name == "ocean":
            for payload in batch:
                ds.engine.save("bench/events", payload)
        else:
            ds.insert_sqlite([{"created_at": "2026-01-01T00:00:00.000Z", "payload": p} for p in batch])
        state["expected"] += 1000
        return (), {}

    if engine_name == "ocean":
        run = lambda: query(ds.engine, GROUP_OCEAN)  # noqa: E731
    else:
        run = lambda: ds.sqlite.execute(GROUP_SQLITE).fetchall()  # noqa: E731
    got = benchmark.pedantic(run, setup=write_1000, rounds=40, iterations=1)
    _check_groupby(got, state["expected"])
    if engine_name == "ocean":
        assert table.builds == 1, "the columns were patched with the new rows, never rebuilt"


def _total(ds, engine_name) -> int:
    if engine_name == "ocean":
        return query(ds.engine, 'SELECT COUNT(*) AS n FROM "bench/events"')["rows"][0]["n"]
    return ds.sqlite.execute("SELECT COUNT(*) FROM events").fetchone()[0]


@pytest.mark.parametrize("engine_name", ["ocean", "sqlite3", "sqlite3-primary-key"])
def test_tutorial_after_1000_incr(benchmark, three_years, engine_name):
    eng, sqlites = three_years
    table = store_for(eng).table("analytics/daily")
    benchmark.group = "sql-tutorial-after-1000-incr"
    start = datetime.date(2023, 1, 1)
    days = [(start + datetime.timedelta(days=i)).isoformat() for i in range(3 * 365 + 1)]
    rng = np.random.default_rng(5)
    con = sqlites.get(engine_name)

    def incr_1000():
        for i in rng.integers(0, len(days), 1000).tolist():
            if engine_name == "ocean":
                eng.incr("analytics/daily", days[i], {"page_views": 1})
            else:
                con.execute("UPDATE daily SET page_views = page_views + 1 WHERE key = ?", (days[i],))
        return (), {}

    if engine_name == "ocean":
        run = lambda: query(eng, TUTORIAL)  # noqa: E731
    else:
        run = lambda: con.execute(TUTORIAL_SQLITE).fetchall()  # noqa: E731
    got = benchmark.pedantic(run, setup=incr_1000, rounds=30, iterations=1)
    rows = _rows(got)
    assert [r[0] for r in rows][:2] == ["2025-12-31", "2025-12-30"]
    if engine_name == "ocean":
        assert table.builds == 1, "the columns were patched with the changed rows, never rebuilt"
        want = {k: r["payload"]["page_views"] for k, r in eng.route_entities("analytics/daily")}
        assert [r[1] for r in rows] == [want[r[0]] for r in rows]


# -- issue 14: the issue's events, read from the engine's own chunks ------------------------------

ISSUE_N = int(os.environ.get("OCEAN_BENCH_SQL_ISSUE14", "1000000"))
ISSUE_ROUTE = "bench/issue14"
ISSUE_OCEAN = {
    "count": f'SELECT COUNT(*) AS n FROM "{ISSUE_ROUTE}"',
    "by-path": (f'SELECT path, COUNT(*) AS n, AVG(ms) AS avg_ms FROM "{ISSUE_ROUTE}" WHERE status = 404 '
                'GROUP BY path ORDER BY path'),
    "since": f'SELECT COUNT(*) AS n FROM "{ISSUE_ROUTE}" WHERE created_at >= \'{{since}}\'',
}
ISSUE_SQLITE = {
    "count": "SELECT COUNT(*) AS n FROM issue",
    "by-path": "SELECT path, COUNT(*) AS n, AVG(ms) AS avg_ms FROM issue WHERE status = 404 GROUP BY path ORDER BY path",
    "since": "SELECT COUNT(*) AS n FROM issue WHERE created_at >= '{since}'",
}


def _rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


@pytest.fixture(scope="module")
def issue14():
    """ISSUE_N of the issue's events (``{"path": "/p/<i % 1000>", "status": 200|404, "ms": 12.5}``)
    dropped into the engine in batches of 1,000, the same rows in sqlite3; then ocean's first query,
    with the RSS it added and the bytes its table holds per event."""
    import gc
    from ocean.sql import columns_bytes
    eng = _open_engine()
    for s in range(0, ISSUE_N, 1000):
        eng.drop_many([{"route": ISSUE_ROUTE, "payload": {"path": f"/p/{i % 1000}", "status": 200 if i % 4 else 404,
                                                           "ms": 12.5}} for i in range(s, min(ISSUE_N, s + 1000))])
    records = list(eng.route_events(ISSUE_ROUTE))
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE issue (created_at, path, status, ms)")
    con.executemany("INSERT INTO issue VALUES (?, ?, ?, ?)",
                    [(r["created_at"], r["payload"]["path"], r["payload"]["status"], r["payload"]["ms"])
                     for r in records])
    since = records[len(records) // 2]["created_at"]
    del records
    gc.collect()
    before = _rss()
    query(eng, ISSUE_OCEAN["count"])
    gc.collect()
    memory = {"rss_growth_per_event": (_rss() - before) / ISSUE_N, "table_bytes_per_event": columns_bytes(eng) / ISSUE_N,
              "engine_event_bytes_per_event": eng.event_bytes() / ISSUE_N}
    yield eng, con, since, memory
    con.close()
    _close(eng)



@pytest.fixture(scope="module")
def issue14_copy(issue14):
    """The route's table as SQL held it before it read the chunks in place: a copy of every event."""
    from ocean.sql.columns import Table
    table = Table(ISSUE_ROUTE)
    table.build(RecordsOnly(issue14[0]))
    return table


@pytest.mark.parametrize("engine_name", ["ocean", "sqlite3"])
def test_issue14_first_query(benchmark, issue14, engine_name):
    """ocean: a route's first query (its table built anew each round; the memory figures of the
    fixture's first build in extra_info); sqlite3: the same count, its rows already in a table."""
    eng, con, _, memory = issue14
    benchmark.group = f"sql-issue14-first-query-{ISSUE_N}"
    if engine_name == "ocean":
        store = store_for(eng)

        def forget():
            store.tables.pop(ISSUE_ROUTE, None)

        got = benchmark.pedantic(lambda: query(eng, ISSUE_OCEAN["count"]), setup=forget, rounds=5, iterations=1)
        benchmark.extra_info.update(memory)
    else:
        got = benchmark(lambda: con.execute(ISSUE_SQLITE["count"]).fetchall())
    assert _rows(got) == [(ISSUE_N,)]


@pytest.mark.parametrize("name", ["count", "by-path", "since"])
@pytest.mark.parametrize("engine_name", ["ocean", "ocean-copy", "sqlite3"])
def test_issue14_queries(benchmark, issue14, name, engine_name, request):
    """ocean: the route's table reading the engine's chunks in place; ocean-copy: the same query over
    a table holding a copy of the events (the design before, built from records), in the same run."""
    eng, con, since, _ = issue14
    benchmark.group = f"sql-issue14-{name}-{ISSUE_N}"
    if engine_name == "ocean":
        got = benchmark(query, eng, ISSUE_OCEAN[name].format(since=since))
    elif engine_name == "ocean-copy":
        from ocean.sql import prepare, run_plan
        table, plan = request.getfixturevalue("issue14_copy"), prepare(ISSUE_OCEAN[name].format(since=since))
        got = benchmark(lambda: run_plan(plan, table.view()))
    else:
        got = benchmark(lambda: con.execute(ISSUE_SQLITE[name].format(since=since)).fetchall())
    assert _rows(got) == _rows(con.execute(ISSUE_SQLITE[name].format(since=since)).fetchall())
