"""uniq_merge and quantile_merge: unions and merged quantiles of sketch fields over rows, checked exactly."""
import numpy as np
import pytest

from ocean.errors import SqlError
from ocean.sql import query


@pytest.fixture
def week(engine):
    """Seven daily entities of overlapping visitors and latencies; returns the exact answers."""
    rng = np.random.default_rng(16)
    union, by_half, latencies = set(), {0: set(), 1: set()}, {0: [], 1: []}
    for day in range(7):
        visitors = [f"u-{v}" for v in rng.integers(0, 40_000, 6_000)]
        ms = rng.lognormal(3, 1, 2_000).round(3).tolist()
        half = day % 2
        union.update(visitors)
        by_half[half].update(visitors)
        latencies[half].extend(ms)
        key = f"2026-02-{10 + day}"
        engine.uniq("analytics/daily", key, {"visitors": visitors})
        engine.observe("analytics/daily", key, {"ms": ms})
        engine.drop("analytics/daily", {"half": half, "+page_views": len(visitors)}, key=key)
    return union, by_half, latencies


def test_uniq_merge_is_the_union_over_rows_not_the_sum(engine, week):
    union, _, _ = week
    [row] = query(engine, 'SELECT uniq_merge(visitors) AS weekly, SUM(visitors) AS summed FROM "analytics/daily"')["rows"]
    assert abs(row["weekly"] - len(union)) <= 0.03 * len(union)  # 0.81% standard error, 3.7 sigma
    assert row["summed"] > 1.5 * len(union)
    rows = query(engine, 'SELECT key, visitors FROM "analytics/daily" ORDER BY key LIMIT 1')["rows"]
    assert type(rows[0]["visitors"]) is int  # a uniq field reads as an integer


def test_merges_group_by_and_follow_where(engine, week):
    _, by_half, latencies = week
    rows = query(engine, 'SELECT half, uniq_merge(visitors) AS u, quantile_merge(ms, 0.95) AS p95, '
                         'quantile_merge(ms, 0.5) AS p50 FROM "analytics/daily" GROUP BY half ORDER BY half')["rows"]
    for row in rows:
        exact = len(by_half[row["half"]])
        assert abs(row["u"] - exact) <= 0.03 * exact
        for q, got in ((0.95, row["p95"]), (0.5, row["p50"])):
            want = np.quantile(latencies[row["half"]], q, method="lower")
            assert abs(got - want) <= 0.01 * want, (q, got, want)
            assert abs(got - np.quantile(latencies[row["half"]], q)) <= 0.015 * want  # numpy's default too
    [row] = query(engine, "SELECT uniq_merge(visitors) AS u FROM \"analytics/daily\" WHERE key = '2026-02-10'")["rows"]
    [one] = query(engine, "SELECT visitors FROM \"analytics/daily\" WHERE key = '2026-02-10'")["rows"]
    assert row["u"] == one["visitors"]


def test_merges_see_writes_after_the_first_query(engine, week):
    union, _, _ = week
    before = query(engine, 'SELECT uniq_merge(visitors) AS u FROM "analytics/daily"')["rows"][0]["u"]
    engine.uniq("analytics/daily", "2026-02-10", {"visitors": [f"new-{i}" for i in range(2_000)]})
    after = query(engine, 'SELECT uniq_merge(visitors) AS u FROM "analytics/daily"')["rows"][0]["u"]
    assert abs(after - before - 2_000) <= 0.05 * 2_000 + 0.02 * len(union)
    engine.remove("analytics/daily", "2026-02-10")
    engine.save("analytics/daily", {"half": 0}, key="2026-02-10")
    assert query(engine, "SELECT uniq_merge(visitors) AS u FROM \"analytics/daily\" WHERE key = '2026-02-10'"
                 )["rows"] == [{"u": None}]


@pytest.mark.parametrize("sql, message", [
    ('SELECT uniq_merge(page_views) FROM "analytics/daily"', "needs a uniq field"),
    ('SELECT uniq_merge(ms) FROM "analytics/daily"', "needs a uniq field"),
    ('SELECT quantile_merge(visitors, 0.5) FROM "analytics/daily"', "needs a dist field"),
    ('SELECT quantile_merge(ms, 1.5) FROM "analytics/daily"', "from 0 to 1"),
    ('SELECT quantile_merge(ms) FROM "analytics/daily"', "argument"),
    ('SELECT uniq_merge(visitors || key) FROM "analytics/daily"', "not an expression"),
    ('SELECT uniq_merge(DISTINCT visitors) FROM "analytics/daily"', "DISTINCT"),
])
def test_merge_errors(engine, week, sql, message):
    with pytest.raises(SqlError, match=message):
        query(engine, sql)


def test_a_field_no_row_has_merges_to_null(engine, week):
    assert query(engine, 'SELECT uniq_merge(nothing) AS u, quantile_merge(nothing, 0.5) AS q FROM "analytics/daily"'
                 )["rows"] == [{"u": None, "q": None}]
