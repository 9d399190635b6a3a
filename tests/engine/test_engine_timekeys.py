"""Key placeholders in the engine and in Drops: expanded with the engine's clock in the timezone setting."""
from datetime import datetime, timezone

import pytest

from ocean.drops import run
from ocean.errors import InvalidKey
from ocean.settings import Settings


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


@pytest.fixture
def paris(make_engine):
    """An engine in Europe/Paris whose placeholder clock is fixed (``clock[0]``, epoch ms)."""
    eng = make_engine(settings=Settings.load(environ={}, timezone="Europe/Paris"))
    clock = [ms("2026-03-28T22:30:00")]
    eng.now_ms = lambda: clock[0]
    return eng, clock


def test_incr_counts_into_the_local_day_across_the_spring_change(paris):
    eng, clock = paris
    script = "incr analytics/daily @{day} .page_views"
    assert run(eng, script) == [{"ok": True, "data": {"page_views": 1}, "key": "2026-03-28"}]
    clock[0] = ms("2026-03-28T23:00:00")  # midnight in Paris
    assert run(eng, script + " 2") == [{"ok": True, "data": {"page_views": 2}, "key": "2026-03-29"}]
    clock[0] = ms("2026-03-29T21:59:59")  # 23:59:59 CEST: still the 23-hour Sunday
    assert run(eng, script)[0]["key"] == "2026-03-29"
    assert eng.get("analytics/daily", "2026-03-29")["payload"] == {"page_views": 3}
    assert eng.get("analytics/daily", "{day}")["payload"] == {"page_views": 3}
    clock[0] = ms("2026-03-29T22:00:00")
    assert run(eng, script)[0]["key"] == "2026-03-30"
    # the same increments again take the compiled path: the entities exist now
    for _ in range(3):
        eng.incr("analytics/daily", "{day}", {"page_views": 1})
    assert eng.get("analytics/daily", "2026-03-30")["payload"] == {"page_views": 4}


def test_hour_keys_across_the_autumn_change(paris):
    eng, clock = paris
    seen = []
    for utc in ("2026-10-24T23:30:00", "2026-10-25T00:30:00", "2026-10-25T01:30:00", "2026-10-25T02:30:00"):
        clock[0] = ms(utc)
        seen.append(eng.drop("analytics/hourly", {"+requests": 1}, key="{hour}")["key"])
    # 01:30 CEST, 02:30 CEST, 02:30 CET (the repeated hour shares its key), 03:30 CET
    assert seen == ["2026-10-25T01", "2026-10-25T02", "2026-10-25T02", "2026-10-25T03"]
    assert eng.get("analytics/hourly", "2026-10-25T02")["payload"] == {"requests": 2}


def test_every_keyed_command_expands_and_names_the_key(paris):
    eng, clock = paris
    clock[0] = ms("2026-02-10T13:00:00")  # 14:00 in Paris
    out = run(eng, "save a/s @{day} {n: 1}\nupdate a/s @{day} m: 2\nget a/s @{day}\nhistory a/s @{day} limit 1\n"
                   "incr a/s @w-{week} .n\nremove a/s @{day}\nget a/s @2026-02-10\nincr a/s @{dayz} .n\n"
                   "incr a/s @plain .n")
    assert [r.get("key") for r in out[:6]] == ["2026-02-10", "2026-02-10", "2026-02-10", "2026-02-10",
                                               "w-2026-W07", "2026-02-10"]
    assert out[0]["data"]["key"] == "2026-02-10"  # save's own answer names it too
    assert out[2]["data"] == {"n": 1, "m": 2}
    assert out[4]["data"] == {"n": 1}  # incr's data keeps its shape: field -> new value
    assert out[6]["code"] == "not_found"
    assert out[7]["ok"] is False and out[7]["code"] == "invalid_key" and "{day}" in out[7]["error"]
    assert out[8] == {"ok": True, "data": {"n": 1}}  # no placeholder: no "key" beside data


def test_drop_batches_expand_each_key_and_answer_it(paris):
    eng, clock = paris
    clock[0] = ms("2026-02-10T13:00:00")
    out = eng.drop_many([
        {"route": "a/d", "key": "{day}", "payload": {"+views": 1}},
        {"route": "a/d", "key": "{day}", "payload": {"+views": 1}},
        {"route": "a/d", "key": "{month}", "payload": {"plain": True}},
        {"route": "a/d", "key": "{year}", "payload": {"+views": 1}},
        {"route": "a/d", "key": "{hour}", "payload": {"+views": 1, "last": "x"}},
    ])
    assert [o["key"] if isinstance(o, dict) else o.code for o in out] == [
        "2026-02-10", "2026-02-10", "2026-02", "invalid_key", "2026-02-10T14"]
    assert eng.get("a/d", "2026-02-10")["payload"] == {"views": 2}
    assert eng.get("a/d", "2026-02-10T14")["payload"] == {"views": 1, "last": "x"}


def test_expanded_keys_are_what_replay_sees(make_engine, tmp_path):
    eng = make_engine(settings=Settings.load(environ={}, timezone="Europe/Paris"))
    eng.now_ms = lambda: ms("2026-03-28T23:30:00")
    eng.incr("a/r", "{day}", {"n": 5})
    eng.close()
    again = make_engine()
    assert again.get("a/r", "2026-03-29")["payload"] == {"n": 5}
    assert [k for k, _ in again.route_entities("a/r")] == ["2026-03-29"]


def test_an_unknown_zone_refuses_to_start(tmp_path):
    from ocean import Engine
    from ocean.errors import InvalidSetting
    with pytest.raises(InvalidSetting, match="Mars/Olympus"):
        Engine(str(tmp_path / "d"), settings=Settings(timezone="Mars/Olympus"), maintenance=False)


def test_the_default_zone_is_utc(engine):
    engine.now_ms = lambda: ms("2026-03-28T23:30:00")
    assert engine.incr("a/u", "{day}", {"n": 1}) == {"n": 1}
    assert engine.get("a/u", "2026-03-28")["payload"] == {"n": 1}
    with pytest.raises(InvalidKey):
        engine.incr("a/u", "{nope}", {"n": 1})
