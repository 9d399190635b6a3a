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
