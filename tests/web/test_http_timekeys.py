"""Key placeholders over HTTP: ``POST /drop`` (one and batches), ``/entity``, ``/exec``, and ``/health``'s zone."""
from datetime import datetime, timezone


def _ms(iso):
    return int(datetime.fromisoformat(iso).replace(tzinfo=timezone.utc).timestamp() * 1000)


def test_drop_and_entity_expand_placeholders_in_the_server_zone(make_web):
    web = make_web(timezone="Europe/Paris")
    web.engine.now_ms = lambda: _ms("2026-03-28T23:30:00")  # 00:30 on Sunday the 29th in Paris
    one = web.client.simulate_post("/drop", json={"route": "analytics/daily", "key": "{day}",
                                                  "payload": {"+page_views": 1}})
    assert one.status_code == 200 and one.json["key"] == "2026-03-29"
    batch = web.client.simulate_post("/drop", json=[
        {"route": "analytics/daily", "key": "{day}", "payload": {"+page_views": 2}},
        {"route": "analytics/hourly", "key": "{hour}", "payload": {"+page_views": 1}},
        {"route": "analytics/weekly", "key": "{week}", "payload": {"note": "w"}},
        {"route": "analytics/daily", "key": "{today}", "payload": {"+page_views": 1}},
    ])
    assert batch.status_code == 200
    answers = batch.json
    assert [a.get("key") for a in answers[:3]] == ["2026-03-29", "2026-03-29T00", "2026-W13"]
    assert answers[3]["ok"] is False and answers[3]["code"] == "invalid_key"
    got = web.client.simulate_get("/entity/analytics/daily/%7Bday%7D")
    assert got.status_code == 200 and got.json["key"] == "2026-03-29" and got.json["payload"] == {"page_views": 3}
    assert web.client.simulate_get("/entity/analytics/daily/2026-03-29").json["payload"] == {"page_views": 3}
    out = web.client.simulate_post("/exec", body="incr analytics/daily @{day} .page_views",
                                   headers={"Content-Type": "text/plain"})
    assert out.json == [{"ok": True, "data": {"page_views": 4}, "key": "2026-03-29"}]
    assert web.anon.simulate_get("/health").json["timezone"] == "Europe/Paris"


def test_the_default_zone_is_utc(web):
    assert web.anon.simulate_get("/health").json["timezone"] == "UTC"
    web.engine.now_ms = lambda: _ms("2026-03-28T23:30:00")
    one = web.client.simulate_post("/drop", json={"route": "a/b", "key": "{day}", "payload": {"x": 1}})
    assert one.json["key"] == "2026-03-28"
