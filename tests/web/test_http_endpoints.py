"""Every endpoint in process (falcon.testing): answers, statuses and shapes (SPEC section 3)."""
import json

JSON = {"Content-Type": "application/json"}


def test_drop_event_and_entity(web):
    r = web.client.simulate_post("/drop", json={"route": "analytics/events", "payload": {"status": 200}})
    assert r.status_code == 200
    doc = r.json
    assert doc["ok"] is True and doc["key"] is None and doc["route"] == "analytics/events"
    assert set(doc) == {"ok", "drop_id", "seq", "route", "key", "created_at"}
    assert doc["created_at"].endswith("Z")
    r = web.client.simulate_post("/drop", json={"route": "users", "key": "u1", "payload": {"name": "Ann", "age": 3}})
    assert r.json["key"] == "u1" and r.json["seq"] > doc["seq"]
    ent = web.client.simulate_get("/entity/users/u1").json
    assert ent["payload"] == {"name": "Ann", "age": 3} and ent["version"] == 1
    assert set(ent) == {"route", "key", "payload", "created_at", "updated_at", "version"}


def test_drop_increments_merge_plain_fields(web):
    web.client.simulate_post("/drop", json={"route": "pages", "key": "home", "payload": {"title": "Home", "lang": "en"}})
    for _ in range(3):
        r = web.client.simulate_post("/drop", json={"route": "pages", "key": "home", "payload": {"+views": 1, "lang": "fr"}})
        assert r.status_code == 200 and r.json["ok"]
    ent = web.client.simulate_get("/entity/pages/home").json
    assert ent["payload"] == {"title": "Home", "lang": "fr", "views": 3}
    # the answer names the drop that did it
    last = web.engine.history("pages", "home", limit=1)[0]
    assert r.json["seq"] == last["seq"] and r.json["drop_id"] == last["drop_id"]


def test_drop_batch_answers_each_item(web):
    batch = [{"route": "c", "key": "k", "payload": {"+n": 1}} for _ in range(5)]
    batch.insert(2, {"route": "bad route", "payload": 1})
    batch.insert(3, "not an object")
    r = web.client.simulate_post("/drop", json=batch)
    assert r.status_code == 200
    out = r.json
    assert len(out) == 7
    assert [o["ok"] for o in out] == [True, True, False, False, True, True, True]
    assert out[2]["code"] == "invalid_route" and out[3]["code"] == "invalid_payload"
    assert web.engine.get("c", "k")["payload"] == {"n": 5}


def test_drop_batch_refusals_keep_their_places(web):
    token, _ = web.keys.create(name="w", write=["a/*"])
    batch = [{"route": "a/x", "key": "k", "payload": {"+n": 1}}, {"route": "b/y", "payload": 1},
             {"route": "a/x", "key": "k", "payload": {"+n": 1}}, {"route": "bad route", "payload": 1},
             {"route": "b/y", "payload": 2}, {"route": "a/x", "payload": 3}, {"route": ["a/x"], "payload": 4},
             {"route": {"a": 1}, "payload": 5}, 7]
    out = web.as_key(token).simulate_post("/drop", json=batch).json
    assert [o["ok"] for o in out] == [True, False, True, False, False, True, False, False, False]
    assert [o.get("code") for o in out] == [None, "forbidden", None, "invalid_route", "forbidden", None,
                                            "invalid_route", "invalid_route", "invalid_payload"]
    assert [o["seq"] for o in out if o["ok"]] == sorted(o["seq"] for o in out if o["ok"])
    assert web.engine.get("a/x", "k")["payload"] == {"n": 2} and web.engine.events("b/y") == []


def test_drop_batch_items_without_a_route_or_with_a_non_json_number_fail_alone(web):
    body = b'[{"route": "e", "payload": {"a": 1}}, {"payload": 2}, {"route": "e", "payload": {"x": NaN}},' \
           b' {"route": "e", "payload": {"b": null, "big": 123456789012345678901234567890}}]'
    out = web.client.simulate_post("/drop", body=body, headers={"Content-Type": "application/json"}).json
    assert [o["ok"] for o in out] == [True, False, False, True]
    assert out[1]["code"] == "invalid_route" and out[2]["code"] == "invalid_payload"
    assert [e["payload"] for e in web.engine.events("e")] == [{"b": None, "big": 123456789012345678901234567890},
                                                              {"a": 1}]


def test_drop_batch_over_max_batch_is_413(make_web):
    w = make_web(max_batch=3)
    r = w.client.simulate_post("/drop", json=[{"route": "a", "payload": 1}] * 4)
    assert r.status_code == 413 and r.json["code"] == "too_large"
    assert w.engine.stats()["events"] == 0  # nothing half-applied


def test_drop_keep_and_plain_value_and_text_plain_json(web):
    r = web.client.simulate_post("/drop", body=json.dumps({"route": "pages", "key": "p", "payload": "<b>hi</b>", "keep": 60}),
                                 headers={"Content-Type": "text/plain;charset=UTF-8"})  # what fetch() sends
    assert r.status_code == 200, r.text
    assert web.client.simulate_get("/entity/pages/p").json["payload"] == "<b>hi</b>"
    r = web.client.simulate_post("/drop", json={"route": "pages", "key": "p", "payload": 1, "keep": -1})
    assert r.status_code == 400


def test_entity_get_delete(web):
    web.engine.incr("analytics/daily", "2026-02-10", {"page_views": 4521, "requests": 12034})
    r = web.client.simulate_get("/entity/analytics/daily/2026-02-10")
    assert r.status_code == 200 and r.json["payload"]["page_views"] == 4521
    r = web.client.simulate_delete("/entity/analytics/daily/2026-02-10")
    assert r.status_code == 200 and r.json["removed"] is True
    assert web.client.simulate_get("/entity/analytics/daily/2026-02-10").status_code == 404
    assert web.client.simulate_get("/entity/onlyroute").json["code"] == "invalid_key"


def test_entities_paging(web):
    for i in range(7):
        web.engine.save("items", {"i": i}, key=f"k{i}")
    page = web.client.simulate_get("/entities/items", params={"limit": 3}).json
    assert [e["key"] for e in page["entities"]] == ["k0", "k1", "k2"] and page["next"] == "k2"
    page = web.client.simulate_get("/entities/items", params={"limit": 3, "after": "k5"}).json
    assert [e["key"] for e in page["entities"]] == ["k6"] and page["next"] is None
    assert web.client.simulate_get("/entities/nothing").json["entities"] == []


def test_limit_is_capped_by_list_limit(make_web):
    w = make_web(list_limit=2)
    for i in range(5):
        w.engine.save("items", {"i": i}, key=f"k{i}")
    assert len(w.client.simulate_get("/entities/items", params={"limit": 50}).json["entities"]) == 2


def test_exec_text_and_json(web):
    r = web.client.simulate_post("/exec", body="incr analytics/daily @2026-02-10 .page_views\n\nread analytics/daily @2026-02-10",
                                 headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    assert r.json == [{"ok": True, "data": {"page_views": 1}}, {"ok": True, "data": {"page_views": 1}}]
    r = web.client.simulate_post("/exec", json={"query": "get analytics/daily @nope"})
    assert r.status_code == 200 and r.json[0]["ok"] is False and r.json[0]["code"] == "not_found"
    # curl -d sends form-urlencoded; the raw text is the script
    r = web.client.simulate_post("/exec", body="incr a/b @k .n", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.json == [{"ok": True, "data": {"n": 1}}]


def test_exec_script_too_large_is_413(make_web):
    w = make_web(max_script_bytes=10)
    r = w.client.simulate_post("/exec", body="incr a/b @k .n\n" * 3, headers={"Content-Type": "text/plain"})
    assert r.status_code == 413 and r.json["code"] == "script_too_large"


def test_exec_scopes_apply(web):
    token, _ = web.keys.create(read=["analytics/*"])
    r = web.as_key(token).simulate_post("/exec", body="incr analytics/daily @d .n", headers={"Content-Type": "text/plain"})
    assert r.json[0]["code"] == "forbidden"


def test_sql(web):
    web.engine.incr("analytics/daily", "2026-02-10", {"page_views": 5, "requests": 9})
    r = web.client.simulate_post("/sql", body='SELECT key AS date, page_views FROM "analytics/daily"',
                                 headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    assert r.json["ok"] is True and r.json["columns"] == ["date", "page_views"]
    r = web.client.simulate_post("/sql", json={"query": "SELEC nonsense"})
    assert r.status_code == 400 and r.json["ok"] is False


def test_stream_json_pull(web):
    for i in range(5):
        web.client.simulate_post("/drop", json={"route": "feed/a", "payload": {"i": i}})
    web.client.simulate_post("/drop", json={"route": "other", "payload": {"i": 99}})
    r = web.client.simulate_get("/stream/feed/*", params={"last": 3}, headers={"Accept": "application/json"})
    assert r.status_code == 200
    assert [m["i"] for m in r.json] == [2, 3, 4]
    assert all(m["_route"] == "feed/a" and "_seq" in m and "_id" in m and "_at" in m for m in r.json)


def test_health_and_metrics(web):
    h = web.anon.simulate_get("/health").json
    assert h["ok"] is True and h["version"] and h["heartbeat_s"] == 15.0 and "uptime_s" in h
    assert h["implementation"] in ("compiled", "pure")
    web.client.simulate_get("/entity/x/y")
    m = web.anon.simulate_get("/metrics")
    assert m.headers["content-type"].startswith("text/plain")
    text = m.text
    assert 'ocean_http_requests_total{method="GET",route="/entity/*",status="404"} 1' in text
    assert "ocean_http_request_duration_seconds_bucket" in text and "ocean_sse_clients 0" in text
    assert "ocean_engine_log_bytes" in text


def test_health_and_metrics_report_snapshots_largest_routes_and_columns(web):
    for i in range(3):
        web.client.simulate_post("/drop", json={"route": "big/ev", "payload": {"i": i}})
    web.client.simulate_post("/drop", json={"route": "small/e", "key": "k", "payload": {"+n": 1}})
    web.engine.snapshot()
    web.engine._largest = None  # recounted at most once a second; this test wants it now
    h = web.anon.simulate_get("/health").json
    snap = h["snapshot"]
    assert snap["running"] is False and snap["seq"] > 0 and snap["bytes"] > 0 and snap["seconds"] >= 0
    top = {r["route"]: r for r in h["largest_routes"]}
    assert top["big/ev"] == {"route": "big/ev", "events": 3, "entities": 0}
    assert top["small/e"] == {"route": "small/e", "events": 0, "entities": 1}
    web.client.simulate_post("/sql", body='SELECT COUNT(*) FROM "big/ev"', headers={"Content-Type": "text/plain"})
    text = web.anon.simulate_get("/metrics").text
    assert 'ocean_route_events{route="big/ev"} 3' in text and 'ocean_route_entities{route="small/e"} 1' in text
    assert "ocean_engine_snapshots_total 1" in text and "ocean_engine_snapshot_bytes" in text
    columns = [line for line in text.splitlines() if line.startswith("ocean_sql_columns_bytes ")]
    assert columns and int(columns[0].split()[1]) > 0


def _types(text: str) -> dict:
    return {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE ")}


def test_metrics_type_what_only_grows_as_counters_named_total(web):
    """Prometheus: a counter ends in _total and may be rate()d; a gauge goes up and down."""
    from ocean.web.metrics import ENGINE_COUNTERS, ENGINE_GAUGES

    numeric = {k for k, v in web.engine.stats().items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert numeric <= set(ENGINE_COUNTERS) | ENGINE_GAUGES, "classify the new engine figure in ocean/web/metrics.py"
    assert not set(ENGINE_COUNTERS) & ENGINE_GAUGES
    web.client.simulate_post("/exec", body="incr a @b .n", headers={"Content-Type": "text/plain"})
    types = _types(web.anon.simulate_get("/metrics").text)
    for name, kind in types.items():
        if kind == "counter":
            assert name.endswith("_total"), name
    for name in ("ocean_engine_fsyncs_total", "ocean_engine_fsync_seconds_total", "ocean_engine_published_total",
                 "ocean_engine_dropped_subscribers_total", "ocean_http_requests_total"):
        assert types[name] == "counter", (name, types.get(name))
    for name in ("ocean_engine_entities", "ocean_engine_events", "ocean_engine_routes", "ocean_engine_log_bytes",
                 "ocean_engine_seq", "ocean_sse_clients"):  # what the dashboard reads
        assert types[name] == "gauge", (name, types.get(name))


def test_metrics_can_require_a_key(make_web):
    w = make_web(metrics_public=False)
    assert w.anon.simulate_get("/metrics").status_code == 401
    assert w.client.simulate_get("/metrics").status_code == 200


def test_cors_preflight_and_headers(web):
    r = web.anon.simulate_options("/drop", headers={"Origin": "https://example.org", "Access-Control-Request-Method": "POST",
                                                    "Access-Control-Request-Headers": "X-Ocean-Key, Content-Type"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    assert "x-ocean-key" in r.headers["access-control-allow-headers"].lower()
    assert "POST" in r.headers["access-control-allow-methods"]
    r = web.client.simulate_get("/entity/a/b", headers={"Origin": "https://example.org"})
    assert r.headers["access-control-allow-origin"] == "*"


def test_admin_static(web, tmp_path):
    from falcon import testing

    from ocean.web import create_app

    (tmp_path / "index.html").write_text("<h1>dash</h1>")
    (tmp_path / "app.js").write_text("let x = 1;")
    app = create_app(web.engine, web.settings, web.keys, static_dir=str(tmp_path))
    client = testing.TestClient(app)
    r = client.simulate_get("/admin")
    assert r.status_code == 200 and "dash" in r.text and r.headers["content-type"].startswith("text/html")
    r = client.simulate_get("/admin/app.js")
    assert r.status_code == 200 and "let x" in r.text
    assert client.simulate_get("/admin/../keys.json").status_code == 404
    app.service.close()


def test_key_in_query_and_bearer(web):
    from webapp import ADMIN

    assert web.anon.simulate_get("/entities/a", params={"_key": ADMIN}).status_code == 200
    assert web.anon.simulate_get("/entities/a", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200


def test_drop_increment_answers_name_their_drop_under_every_fsync_policy(make_web):
    for policy in ("always", "everysec"):
        w = make_web(fsync=policy)
        r = w.client.simulate_post("/drop", json={"route": "c", "key": "k", "payload": {"+n": 2, "+m": 1}})
        msg = w.engine.recent("c", 1)[0]
        assert r.json["seq"] == msg.seq and r.json["drop_id"] == msg.drop_id
        assert w.engine.get("c", "k")["payload"] == {"n": 2, "m": 1}


def test_sql_checks_the_scope_of_from(web):
    web.engine.save("users", {"n": 1}, key="u")
    token, _ = web.keys.create(read=["analytics/*"])
    r = web.as_key(token).simulate_post("/sql", body='SELECT key FROM "users"', headers={"Content-Type": "text/plain"})
    assert r.status_code == 403 and r.json["code"] == "forbidden"


def test_admin_serves_the_shipped_dashboard_without_a_key(web):
    from ocean.web.app import STATIC_DIR

    import os

    if not os.path.isfile(os.path.join(STATIC_DIR, "index.html")):
        import pytest

        pytest.skip("the dashboard is not in this checkout")
    r = web.anon.simulate_get("/admin")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    r = web.anon.simulate_get("/admin/js/main.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]


def test_admin_dashboard_with_and_without_trailing_slash(web):
    for path in ("/admin", "/admin/"):
        r = web.client.simulate_get(path, headers={"X-Ocean-Key": ""})
        assert r.status_code == 200 and "text/html" in r.headers["content-type"], path
        assert "<html" in r.text.lower()
