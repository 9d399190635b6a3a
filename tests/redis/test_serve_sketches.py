"""Sketch fields, exports and request accounting over HTTP: an embedded server and a Redis-mode
one given the same writes answer alike (reads, SQL, SSE, NDJSON and CSV exports, import)."""
from __future__ import annotations

import csv
import io
import json
import time
import urllib.request

import pytest

from serverproc import Server
from test_serve import Reader, call

SCRIPT = "\n".join([
    'uniq an/daily @d1 .visitors "u1" "u2" "u3" .other "x"',
    "observe an/daily @d1 .ms 12.5 40 3",
    'uniq an/daily @d2 .visitors "u2" "u9"',
    "observe an/daily @d2 .ms 7 7 900",
    "incr an/daily @d2 .page_views 4",
    'save an/daily @d3 { title: "plain", n: 1 }',
    "write an/ev { i: 1 }",
])
DROPS = [{"route": "an/daily", "key": "d1", "payload": {"+page_views": 1, "~visitors": ["u4", "u1"], "%ms": 18}},
         {"route": "an/daily", "key": "d4", "payload": {"t": "x"}, "keep": 3600},
         {"route": "an/daily", "key": "d4", "payload": {"~visitors": "solo", "%ms": [[2.5, 3]]}},
         {"route": "an/daily", "key": "d1", "payload": {"%visitors": 1}},  # refused alike: not_a_sketch
         {"route": "an/daily", "key": "d5", "payload": {"v": 1}, "keep": 7200}]


VOLATILE = ("created_at", "updated_at", "seq", "drop_id", "_seq")


def raw(srv, path, timeout=10.0) -> bytes:
    req = urllib.request.Request(srv.url + path, headers={"X-Ocean-Key": srv.key})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.read()


def quiet(message: dict) -> dict:
    return {k: v for k, v in message.items() if k not in ("_id", "_at", "_seq")}


def drop_answers(out):
    return [{k: v for k, v in r.items() if k not in ("drop_id", "seq", "created_at")} for r in out]


@pytest.fixture
def servers(redis_cluster, tmp_path):
    plain = Server(str(tmp_path / "plain")).start()
    red = Server(str(tmp_path / "red"), store=redis_cluster.url).start(timeout=40)
    yield plain, red
    plain.stop(timeout=15)
    red.stop(timeout=15)


def test_sketches_read_query_stream_and_export_alike(servers):
    answers = []
    for srv in servers:
        live = Reader(srv, "/live/an/*")
        try:
            status, out = call(srv, "POST", "/exec", text=SCRIPT)
            assert status == 200, out
            status, dropped = call(srv, "POST", "/drop", DROPS)
            assert live.wait(lambda r: len(r.data()) >= 11), live.events
            got = {
                "exec": out, "drops": drop_answers(dropped),
                "live": sorted((quiet(d) for d in live.data()), key=lambda d: d["_route"]),  # ordered per route
                "entity": call(srv, "GET", "/entity/an/daily/d1")[1],
                "sql": call(srv, "POST", "/sql", {"sql": 'SELECT uniq_merge(visitors) AS u, quantile_merge(ms, 0.5) '
                                                         'AS p50, quantile_merge(ms, 0.99) AS p99 FROM "an/daily"'})[1],
                "find": call(srv, "POST", "/exec", text="find an/daily group uniq visitors")[1],
            }
        finally:
            live.close()
        for part in ("exec", "entity"):  # each store's own times, seqs and drop ids left out
            got[part] = json.loads(json.dumps(got[part]), object_hook=lambda d: {k: v for k, v in d.items()
                                                                                 if k not in VOLATILE})
        got["sql"].pop("ms", None)
        got["sql"].pop("took_ms", None)
        answers.append(got)
    for part in answers[0]:
        a, b = answers[0][part], answers[1][part]
        assert a == b, f"{part}:\n embedded {a}\n redis    {b}"
    payload = answers[1]["entity"]["payload"]
    assert payload["visitors"] == 4 and payload["ms"]["count"] == 4

    exports = []
    for srv in servers:
        lines = [json.loads(x) for x in raw(srv, "/export/an/*").splitlines()]
        for rec in lines:
            if "expires_at" in rec:  # each store's own clock: an hour or two from now, in both
                assert rec.pop("expires_at") > rec["updated_at"]
                rec["kept"] = True
            for k in ("created_at", "updated_at", "seq"):
                rec.pop(k, None)
        rows = list(csv.reader(io.StringIO(raw(srv, "/export/an/*?format=csv").decode())))
        exports.append((lines, [rows[0]] + [r[:2] + r[5:] for r in rows[1:]]))
    assert exports[0] == exports[1], f"\n embedded {exports[0]}\n redis    {exports[1]}"
    lines = exports[1][0]
    assert [r.get("kept") for r in lines if "key" in r] == [None, None, None, True, True]
    assert set(lines[0]["sketches"]) == {"~visitors", "~other", "%ms"}

    # the embedded export imports into the Redis store: the same sketches, byte for byte
    body = raw(servers[0], "/export/an/daily").replace(b'"route":"an/daily"', b'"route":"an/copy"')
    red = servers[1]
    req = urllib.request.Request(red.url + "/import", method="POST", data=body, headers={"X-Ocean-Key": red.key})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["ok"]
    copied = [json.loads(x) for x in raw(red, "/export/an/copy").splitlines()]
    original = [json.loads(x) for x in raw(servers[0], "/export/an/daily").splitlines()]
    assert [(r["key"], r["payload"], r.get("sketches")) for r in copied] == \
           [(r["key"], r["payload"], r.get("sketches")) for r in original]


def test_request_times_reach_the_dashboards_distribution(servers):
    """Request accounting writes ``ms`` (a dist field) to ``_admin/daily`` in Redis mode too."""
    _, red = servers
    for _ in range(5):
        assert call(red, "GET", "/health")[0] == 200
    deadline, payload = time.monotonic() + 20, {}
    while time.monotonic() < deadline:
        status, out = call(red, "POST", "/exec", text="find _admin/daily")
        assert status == 200, out
        rows = out[0]["data"]
        payload = rows[0] if rows else {}
        if payload.get("ms", {}).get("count", 0) >= 5:
            break
        time.sleep(0.3)
    ms = payload["ms"]
    assert ms["count"] >= 5 and ms["min"] <= ms["p50"] <= ms["p95"] <= ms["max"], payload
