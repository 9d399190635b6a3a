"""``GET /export`` and ``POST /import`` in process: shapes, since, keys, bad lines, the round trip."""
import csv
import io
import json

import pytest

from ocean.engine.export import parse_time

NDJSON = {"Content-Type": "application/x-ndjson"}


def _lines(result) -> list[dict]:
    return [json.loads(line) for line in result.text.splitlines()]


def _fill(web):
    c = web.client
    c.simulate_post("/exec", body="incr shop/daily @2026-02-10 .views 3 .orders 2\n"
                                  "incr shop/daily @2026-02-11 .views 5\n"
                                  "update shop/daily @2026-02-11 note: \"sale, 10%\" tags: [\"a\", \"b\"]\n"
                                  "save shop/users @u1 name: \"Ann\" age: 30\n"
                                  "save shop/users @u2 \"plain value\"")
    events = [{"route": "shop/events", "payload": {"path": f"/p/{i % 4}", "status": 200 + i % 2, "ms": i * 1.5}}
              for i in range(25)]
    events.append({"route": "shop/events", "payload": "a non-object event"})
    assert all(o["ok"] for o in c.simulate_post("/drop", json=events).json)
    c.simulate_post("/drop", json={"route": "other/events", "payload": {"x": 1}})


def test_export_entities_with_counters(web):
    _fill(web)
    r = web.client.simulate_get("/export/shop/daily")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    assert 'filename="shop_daily.ndjson"' in r.headers["content-disposition"]
    recs = _lines(r)
    assert [x["key"] for x in recs] == ["2026-02-10", "2026-02-11"]
    assert recs[0]["payload"] == {"views": 3, "orders": 2} and recs[0]["counters"] == ["views", "orders"]
    assert recs[1]["payload"] == {"note": "sale, 10%", "tags": ["a", "b"], "views": 5}
    assert recs[1]["counters"] == ["views"] and recs[1]["version"] == 2
    assert recs[1]["payload"] == web.client.simulate_get("/entity/shop/daily/2026-02-11").json["payload"]


def test_export_events_in_order(web):
    _fill(web)
    recs = _lines(web.client.simulate_get("/export/shop/events", params={"format": "ndjson"}))
    assert len(recs) == 26 and [x["payload"]["ms"] for x in recs[:25]] == [i * 1.5 for i in range(25)]
    assert set(recs[0]) == {"route", "payload", "created_at", "seq"}
    assert recs[-1]["payload"] == "a non-object event"


def test_export_a_prefix_and_everything(web):
    _fill(web)
    routes = [x["route"] for x in _lines(web.client.simulate_get("/export/shop/*"))]
    assert routes == ["shop/daily"] * 2 + ["shop/events"] * 26 + ["shop/users"] * 2
    everything = _lines(web.client.simulate_get("/export/*"))
    assert {x["route"] for x in everything} >= {"shop/daily", "shop/events", "shop/users", "other/events"}


def test_export_csv(web):
    _fill(web)
    r = web.client.simulate_get("/export/shop/*", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 30
    assert list(rows[0])[:5] == ["route", "key", "seq", "created_at", "updated_at"]
    assert set(list(rows[0])[5:]) == {"views", "orders", "note", "tags", "path", "status", "ms", "value", "name", "age"}
    day = rows[1]
    assert day["key"] == "2026-02-11" and day["note"] == "sale, 10%" and day["tags"] == '["a","b"]'
    assert day["views"] == "5" and day["orders"] == "" and day["seq"] == ""
    ev = rows[2]
    assert ev["key"] == "" and ev["seq"] and ev["path"] == "/p/0" and ev["status"] == "200" and ev["ms"] == "0.0"
    assert rows[27]["value"] == "a non-object event" and rows[29]["value"] == "plain value"


def test_export_since_seq_and_time(web):
    _fill(web)
    recs = _lines(web.client.simulate_get("/export/shop/events"))
    tenth = recs[9]["seq"]
    later = _lines(web.client.simulate_get("/export/shop/*", params={"since": str(tenth)}))
    assert [x["seq"] for x in later] == [x["seq"] for x in recs[10:]]  # events only: entities have no seq
    old = {"route": "shop/events", "payload": {"old": True}, "created_at": "2020-01-01T00:00:00.000Z"}
    web.client.simulate_post("/import", body=json.dumps(old), headers=NDJSON)
    since = _lines(web.client.simulate_get("/export/shop/events", params={"since": "2021-01-01"}))
    assert len(since) == 26 and {"old": True} not in [x["payload"] for x in since]
    assert len(_lines(web.client.simulate_get("/export/shop/*", params={"since": "2021-01-01T00:00:00Z"}))) == 30


@pytest.mark.parametrize("params, code", [({"format": "xml"}, "invalid_parameter"),
                                          ({"since": "last tuesday"}, "invalid_parameter")])
def test_export_bad_parameters_are_400(web, params, code):
    r = web.client.simulate_get("/export/shop/events", params=params)
    assert r.status_code == 400 and r.json["code"] == code and r.json["ok"] is False


def test_export_bad_route_is_400_and_empty_route_is_empty(web):
    assert web.client.simulate_get("/export/bad route").json["code"] == "invalid_route"
    r = web.client.simulate_get("/export/nothing/here")
    assert r.status_code == 200 and r.text == ""


def test_export_and_import_need_keys(web):
    _fill(web)
    assert web.anon.simulate_get("/export/shop/events").status_code == 401
    assert web.anon.simulate_post("/import", body="", headers=NDJSON).status_code == 401
    reader, _ = web.keys.create(name="r", read=["shop/*"])
    writer, _ = web.keys.create(name="w", write=["shop/*"])
    assert web.as_key(reader).simulate_get("/export/shop/events").status_code == 200
    assert web.as_key(reader).simulate_get("/export/shop/*").status_code == 200
    for path in ("/export/other/events", "/export/*"):
        r = web.as_key(reader).simulate_get(path)
        assert r.status_code == 403 and r.json["code"] == "forbidden"
    assert web.as_key(writer).simulate_get("/export/shop/events").status_code == 403
    # import: a route the key may not write is that line's error; the others are written
    body = "\n".join(json.dumps(d) for d in [{"route": "shop/x", "payload": 1}, {"route": "other/x", "payload": 2},
                                             {"route": "_admin/x", "payload": 3}])
    out = web.as_key(writer).simulate_post("/import", body=body, headers=NDJSON).json
    assert out["imported"] == 1 and [(e["line"], e["code"]) for e in out["errors"]] == [(2, "forbidden"), (3, "forbidden")]
    r = web.as_key(reader).simulate_post("/import", body=body, headers=NDJSON)
    assert r.status_code == 200 and r.json["failed"] == 3


def test_import_good_and_bad_lines(web):
    body = "\n".join([
        json.dumps({"route": "a/ev", "payload": {"i": 1}, "created_at": "2025-05-05T05:05:05.555Z", "seq": 99}),
        "{not json",
        "",
        json.dumps({"route": "a/daily", "key": "k", "payload": {"views": 4, "name": "x"}, "counters": ["views"]}),
        json.dumps({"route": "a b", "payload": 1}),
        json.dumps({"route": "a/ev", "payload": {"+n": 1}}),
        json.dumps({"route": "a/daily", "key": "k", "payload": {"+views": 1}}),  # a hand-written drop
        json.dumps(["not", "an", "object"]),
    ]) + "\n"
    r = web.client.simulate_post("/import", body=body, headers=NDJSON)
    assert r.status_code == 200
    out = r.json
    assert (out["ok"], out["lines"], out["imported"], out["failed"], out["expired"]) == (True, 8, 3, 4, 0)
    assert [(e["line"], e["code"]) for e in out["errors"]] == [(2, "invalid_line"), (5, "invalid_route"),
                                                               (6, "invalid_payload"), (8, "invalid_line")]
    assert all(set(e) == {"line", "ok", "error", "code"} and e["ok"] is False for e in out["errors"])
    assert web.engine.get("a/daily", "k")["payload"] == {"name": "x", "views": 5}
    assert web.engine.state.counters.entity("a/daily", "k") == {"views": 5}  # a counter again, not a plain field
    [ev] = web.engine.route_events("a/ev")
    assert ev["created_at"] == "2025-05-05T05:05:05.555Z" and ev["seq"] != 99


def test_import_an_oversize_line_is_that_lines_error(make_web):
    web = make_web(max_payload_bytes=1024)
    huge = json.dumps({"route": "a", "payload": "x" * (200 << 10)})
    body = "\n".join([json.dumps({"route": "a", "payload": 1}), huge, json.dumps({"route": "a", "payload": 2}),
                      json.dumps({"route": "a", "payload": "y" * 2000})])
    out = web.client.simulate_post("/import", body=body, headers=NDJSON).json
    assert out["imported"] == 2 and [(e["line"], e["code"]) for e in out["errors"]] == [(2, "too_large"), (4, "too_large")]
    assert [e["payload"] for e in web.engine.route_events("a")] == [1, 2]


def test_import_an_empty_body(web):
    for body in ("", "\n\n  \n"):
        r = web.client.simulate_post("/import", body=body, headers=NDJSON)
        assert r.status_code == 200 and r.json["imported"] == 0 and r.json["failed"] == 0 and r.json["errors"] == []


def test_import_is_not_capped_by_max_body_bytes_and_batches(make_web):
    web = make_web(max_body_bytes=10_000)
    body = "".join(json.dumps({"route": "a", "payload": {"i": i}}) + "\n" for i in range(2500))
    assert len(body) > 10_000
    out = web.client.simulate_post("/import", body=body, headers={"Content-Type": "text/plain"}).json
    assert out["imported"] == 2500 and out["lines"] == 2500
    assert [e["payload"]["i"] for e in web.engine.route_events("a")] == list(range(2500))


def test_import_refuses_a_content_type_it_does_not_read(web):
    r = web.client.simulate_post("/import", body="x", headers={"Content-Type": "image/png"})
    assert r.status_code == 415 and r.json["code"] == "unsupported_media_type"


def test_import_never_answers_500_to_junk(web):
    junk = [b"\x00\x01\x02", b"\xff" * 10, b"{" * 5000, b"[" * 100000 + b"\n", b'{"route": 1, "payload": {}}',
            b'{"route": "a", "key": 5, "payload": {}}', b'{"route": "a", "key": "k", "payload": {}, "counters": [1]}',
            b'{"route": "a", "payload": 1, "keep": -1}', b'{"route": "a", "payload": NaN}',
            b'{"route": "a", "payload": 1, "created_at": "99999-01-01"}', b"1" * 5000 + b"\n",
            b'{"route": "a", "key": "k", "payload": {"+": 1, "+x": "y"}}']
    r = web.client.simulate_post("/import", body=b"\n".join(junk), headers=NDJSON)
    assert r.status_code == 200
    assert r.json["failed"] + r.json["imported"] == len(junk)


def test_round_trip_gives_equal_sql_answers(make_web):
    src, dst = make_web(), make_web()
    _fill(src)
    src.client.simulate_post("/drop", json=[{"route": "shop/events", "payload": {"path": "/late", "status": 404},
                                             "keep": 3600}])
    exported = src.client.simulate_get("/export/shop/*").text
    out = dst.client.simulate_post("/import", body=exported, headers=NDJSON).json
    assert out["failed"] == 0 and out["imported"] == len(exported.splitlines())
    queries = [
        'SELECT key, views, orders, note, tags FROM "shop/daily" ORDER BY key',
        'SELECT key, name, age, value FROM "shop/users" ORDER BY key',
        'SELECT created_at, path, status, ms, value FROM "shop/events" ORDER BY created_at, path, ms',
        'SELECT status, count(*) AS n, sum(ms) AS total FROM "shop/events" GROUP BY status ORDER BY status',
        'SELECT route, count(*) AS n FROM "shop/*" GROUP BY route ORDER BY route',
    ]
    for q in queries:
        a, b = src.client.simulate_post("/sql", body=q).json, dst.client.simulate_post("/sql", body=q).json
        assert a["ok"] and a == b, q
    # counters came back as counters: they go on counting
    dst.client.simulate_post("/exec", body="incr shop/daily @2026-02-10 .views")
    assert dst.engine.get("shop/daily", "2026-02-10")["payload"]["views"] == 4
    again = dst.client.simulate_get("/export/shop/*").text.splitlines()
    assert [json.loads(x)["payload"] for x in again][2:] == [json.loads(x)["payload"] for x in exported.splitlines()][2:]
    expiring = [json.loads(x) for x in again if "expires_at" in x]
    assert len(expiring) == 1 and parse_time(expiring[0]["expires_at"]) > parse_time(expiring[0]["created_at"])
