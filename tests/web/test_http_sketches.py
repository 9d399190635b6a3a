"""Sketch fields over HTTP: "~f"/"%f" in POST /drop, their summaries in GET /entity and on SSE."""

from webapp import Reader


def _drop(web, payload, key="2026-02-10", route="analytics/daily"):
    return web.client.simulate_post("/drop", json={"route": route, "key": key, "payload": payload})


def test_drop_adds_to_sketches_and_entity_reads_their_summaries(make_web):
    web = make_web(heartbeat_s=0.05)
    r = Reader(web.app, "/live/analytics/*")
    r.read_until("open")
    assert _drop(web, {"+page_views": 1, "~visitors": "u-123", "%ms": [12.5, 40]}).status_code == 200
    assert _drop(web, {"+page_views": 1, "~visitors": ["u-123", "u-456"], "%ms": 7}).status_code == 200
    r.read_until('"visitors":2')
    (_, first), (_, second) = r.events()
    assert first["visitors"] == 1 and first["ms"]["count"] == 2 and first["page_views"] == 1
    assert second["visitors"] == 2 and second["ms"]["count"] == 3 and second["_key"] == "2026-02-10"
    r.close()
    doc = web.client.simulate_get("/entity/analytics/daily/2026-02-10").json
    p = doc["payload"]
    assert p["page_views"] == 2 and p["visitors"] == 2
    assert p["ms"]["count"] == 3 and p["ms"]["min"] == 7 and p["ms"]["max"] == 40 and p["ms"]["sum"] == 59.5
    assert {"p50", "p90", "p95", "p99"} <= set(p["ms"])
    listed = web.client.simulate_get("/entities/analytics/daily").json["entities"]
    assert listed[0]["payload"] == p


def test_a_bad_value_or_a_type_mix_refuses_the_whole_drop(make_web):
    web = make_web()
    _drop(web, {"+page_views": 1, "~visitors": "u1", "title": "t"})
    before = web.client.simulate_get("/entity/analytics/daily/2026-02-10").json["payload"]
    bad = _drop(web, {"+page_views": 1, "%ms": "slow"})
    assert bad.status_code == 400 and bad.json["code"] == "invalid_amount"
    mixed = _drop(web, {"+page_views": 1, "%title": 3})
    assert mixed.status_code == 400 and mixed.json["code"] == "not_a_sketch"
    counter = _drop(web, {"+visitors": 1})
    assert counter.status_code == 400 and counter.json["code"] == "not_a_counter"
    assert web.client.simulate_get("/entity/analytics/daily/2026-02-10").json["payload"] == before
    batch = web.client.simulate_post("/drop", json=[
        {"route": "analytics/daily", "key": "2026-02-10", "payload": {"+page_views": 1}},
        {"route": "analytics/daily", "key": "2026-02-10", "payload": {"~visitors": {"no": 1}}},
        {"route": "analytics/daily", "key": "{day}", "payload": {"~visitors": "u9"}}]).json
    assert batch[0]["ok"] and batch[1]["code"] == "invalid_amount" and batch[2]["ok"]
