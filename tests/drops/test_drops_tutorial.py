"""Every Drops line of the seed tutorial runs and gives the documented result."""
from pathlib import Path

import pytest

from ocean.drops import commands, run

TUTORIAL = Path(__file__).resolve().parents[2].parent / "shared" / "seed" / "realtime-analytics-tutorial.txt"


def tutorial_lines() -> list[str]:
    """The tutorial's Drops lines: those starting with a command word, and its `--` comments."""
    if not TUTORIAL.exists():
        pytest.skip(f"tutorial not found at {TUTORIAL}")
    words = set(commands.WORDS)
    return [line for line in TUTORIAL.read_text().splitlines()
            if line.startswith("-- ") or line.split(" ", 1)[0] in words]


def test_the_tutorial_has_the_lines_we_expect():
    lines = tutorial_lines()
    assert lines[0] == "incr analytics/daily @2026-02-10 .page_views"
    assert sum(1 for line in lines if not line.startswith("--")) == 7


def test_every_tutorial_line_runs_as_documented(engine):
    lines = tutorial_lines()
    script = "\n".join(lines)
    results = run(engine, script)
    assert len(results) == 7  # comments give no result
    by_cmd = dict(zip([line for line in lines if not line.startswith("--")], results))

    # 2. Counting page views: a missing entity starts at 0.
    assert by_cmd["incr analytics/daily @2026-02-10 .page_views"] == {"ok": True, "data": {"page_views": 1}}
    assert by_cmd["incr analytics/daily @2026-02-10 .requests"] == {"ok": True, "data": {"requests": 1}}
    # 3. Reading the counts: counters merged into the read.
    assert by_cmd["read analytics/daily @2026-02-10"] == {"ok": True, "data": {"page_views": 1, "requests": 1}}
    # 4. Per-endpoint tracking with quoted field names; reading back gives the breakdown.
    assert by_cmd['incr analytics/endpoints @2026-02-10 ."POST /drop"'] == {"ok": True, "data": {"POST /drop": 1}}
    assert by_cmd['incr analytics/endpoints @2026-02-10 ."GET /entity/*"'] == \
        {"ok": True, "data": {"GET /entity/*": 1}}
    assert run(engine, "read analytics/endpoints @2026-02-10")[0]["data"] == {"POST /drop": 1, "GET /entity/*": 1}
    # 6. An event drop: no key, appended, never overwritten.
    wrote = by_cmd['write analytics/events { method: "POST", path: "/drop", status: 200 }']
    assert wrote["ok"] and wrote["data"]["key"] is None and set(wrote["data"]) == {"drop_id", "seq", "key"}
    events = engine.events("analytics/events")
    assert [e["payload"] for e in events] == [{"method": "POST", "path": "/drop", "status": 200}]
    # 5. SQL across days.
    sql = next(r for c, r in by_cmd.items() if c.startswith("sql "))
    assert sql["ok"], sql
    assert sql["columns"] == ["date", "page_views", "requests"]
    assert sql["data"] == [{"date": "2026-02-10", "page_views": 1, "requests": 1}]


def test_counts_accumulate_like_the_tutorial_says(engine):
    run(engine, "incr analytics/daily @2026-02-10 .page_views\n" * 4521)
    assert run(engine, "read analytics/daily @2026-02-10") == [{"ok": True, "data": {"page_views": 4521}}]
    assert engine.get("analytics/daily", "2026-02-10")["payload"]["page_views"] == 4521
