"""Request accounting (SPEC section 6): _admin/* counters and the _admin/events feed."""
import time

from webapp import Reader


def _today():
    return time.strftime("%Y-%m-%d", time.gmtime())


def test_requests_are_counted_by_day_hour_template_and_status(web):
    web.client.simulate_get("/entity/users/123")
    web.client.simulate_get("/entity/users/456")
    web.client.simulate_post("/drop", json={"route": "a", "payload": 1})
    web.anon.simulate_get("/health")
    web.app.service.accounting.flush()
    day, hour = _today(), time.strftime("%Y-%m-%dT%H", time.gmtime())
    daily = web.engine.get("_admin/daily", day)["payload"]
    assert daily["requests"] == 4 and daily["errors"] == 2 and daily["ms_total"] > 0
    assert web.engine.get("_admin/hourly", hour)["payload"]["requests"] == 4
    # each request's time went to the dist field ms (the dashboard's p50/p95), counted once
    assert daily["ms"]["count"] == 4 and daily["ms"]["p50"] <= daily["ms"]["p95"] <= daily["ms"]["max"]
    assert abs(daily["ms"]["sum"] - daily["ms_total"]) <= 0.01 * daily["ms_total"] + 0.01
    assert web.engine.get("_admin/hourly", hour)["payload"]["ms"]["count"] == 4
    endpoints = web.engine.get("_admin/endpoints", day)["payload"]
    assert endpoints == {"GET /entity/*": 2, "POST /drop": 1, "GET /health": 1}  # templates, never raw paths
    assert web.engine.get("_admin/status", day)["payload"] == {"404": 2, "200": 2}


def test_events_are_published_not_stored(make_web):
    web = make_web(heartbeat_s=0.05)
    r = Reader(web.app, "/live/_admin/events")
    r.read_until("open")
    web.client.simulate_get("/entity/users/123")
    r.read_until("/entity/users/123")
    data = [d for _, d in r.events() if d.get("path") == "/entity/users/123"][0]
    assert data["method"] == "GET" and data["status"] == 404 and data["ms"] >= 0
    r.close()
    assert web.engine.events("_admin/events") == []


def test_a_stream_is_counted_once_when_it_opens(make_web):
    web = make_web(heartbeat_s=0.02)
    r = Reader(web.app, "/live/feed")
    r.read_until(": heartbeat")
    r.read_until(": heartbeat\n\n: heartbeat")
    r.close()
    web.app.service.accounting.flush()
    assert web.engine.get("_admin/endpoints", _today())["payload"] == {"GET /live/*": 1}


def test_accounting_can_be_turned_off(make_web):
    web = make_web(accounting=False)
    web.client.simulate_get("/health")
    web.app.service.accounting.flush()
    assert web.engine.entity("_admin/daily", _today()) is None


def test_day_and_hour_keys_follow_the_timezone_setting():
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from ocean.web.accounting import Accounting

    def at(iso):
        return datetime.fromisoformat(iso).replace(tzinfo=timezone.utc).timestamp()

    paris = Accounting(SimpleNamespace(settings=SimpleNamespace(timezone="Europe/Paris")), enabled=False)
    assert [paris._hour_key(at(t)) for t in ("2026-03-28T22:59:59", "2026-03-28T23:00:00", "2026-03-29T00:59:00",
                                              "2026-03-29T01:00:00", "2026-10-25T00:30:00", "2026-10-25T01:30:00",
                                              "2026-10-25T02:00:00")] == [
        "2026-03-28T23", "2026-03-29T00", "2026-03-29T01", "2026-03-29T03",  # 02:00 never happens
        "2026-10-25T02", "2026-10-25T02", "2026-10-25T03"]  # the repeated hour is one key
    kolkata = Accounting(SimpleNamespace(settings=SimpleNamespace(timezone="Asia/Kolkata")), enabled=False)
    assert [kolkata._hour_key(at(t)) for t in ("2026-02-10T18:29:59", "2026-02-10T18:30:00", "2026-02-10T19:29:59",
                                                "2026-02-10T19:30:00")] == [
        "2026-02-10T23", "2026-02-11T00", "2026-02-11T00", "2026-02-11T01"]  # local hours start at :30 UTC
    pending = {("2026-02-11T00", "GET /health", "200"): [2, 1.5]}
    assert ("_admin/daily", "2026-02-11") in Accounting._entities(pending)
