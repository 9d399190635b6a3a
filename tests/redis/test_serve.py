"""``ocean serve --store redis://...``: two real servers, two workers each, on the session's cluster,
driven over HTTP as a user would (no mocks): counters, SSE across nodes, resume on the other node,
keys made and revoked on one node seen by the other, SQL equal on both, a Redis that is not there."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from cluster import free_ports
from serverproc import SRC, Server


@pytest.fixture
def nodes(redis_cluster, tmp_path):
    """Node A and node B: ``ocean serve --store <cluster> --workers 2`` each; stopped by pid."""
    started = []
    for name in ("a", "b"):
        srv = Server(str(tmp_path / f"data-{name}"), store=redis_cluster.url, workers=2, heartbeat_s=1)
        started.append(srv)
        srv.start(timeout=40)
    yield started
    for srv in started:
        srv.stop(timeout=15)


def call(srv, method, path, doc=None, key=None, text=None, timeout=10.0):
    """``(status, json body)`` of one request with ``key`` (the admin key by default)."""
    data = text.encode() if text is not None else (json.dumps(doc).encode() if doc is not None else None)
    headers = {"X-Ocean-Key": key or srv.key}
    if doc is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(srv.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Reader:
    """An SSE client in a thread: collects ``(id, event, data)`` until the stream ends or ``close``."""

    def __init__(self, srv, path, key=None, last_id=None):
        headers = {"X-Ocean-Key": key or srv.key, "Accept": "text/event-stream"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        self.resp = urllib.request.urlopen(urllib.request.Request(srv.url + path, headers=headers), timeout=30)
        self.events, self.ended = [], False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        ev = {}
        try:
            for raw in self.resp:  # bounded: the server ends the stream, or close() does
                line = raw.decode().rstrip("\n")
                if not line:
                    if "data" in ev:
                        self.events.append((ev.get("id"), ev.get("event", "message"), json.loads(ev["data"])))
                    ev = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    ev[name] = value
        except Exception:
            pass
        self.ended = True

    def data(self):
        return [d for _, e, d in self.events if e == "message"]

    def wait(self, pred, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self):
                return True
            time.sleep(0.05)
        return False

    def close(self):
        try:
            self.resp.close()
        except Exception:
            pass


def test_concurrent_increments_from_two_nodes_lose_none(nodes):
    a, b = nodes
    per, threads = 100, []

    def hammer(srv):
        for _ in range(per):
            status, out = call(srv, "POST", "/exec", text="incr shop/hits @home .n")
            assert status == 200 and out[0]["ok"], out

    for srv in (a, b, a, b):
        threads.append(threading.Thread(target=hammer, args=(srv,)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for srv in (a, b):
        status, out = call(srv, "GET", "/entity/shop/hits/home")
        assert status == 200 and out["payload"]["n"] == 4 * per, out


def test_sse_on_node_b_sees_node_a_writes_and_resumes_on_node_a(nodes):
    a, b = nodes
    live = Reader(b, "/live/site/*")
    try:
        time.sleep(0.5)
        call(a, "POST", "/drop", {"route": "site/pages", "key": "home", "payload": {"views": 1}})
        call(a, "POST", "/drop", {"route": "site/clicks", "payload": {"x": 1}})  # a route new to every node
        assert live.wait(lambda r: len(r.data()) >= 2), live.events
        got = live.data()
        assert sorted(d["_route"] for d in got) == ["site/clicks", "site/pages"]  # in order per route, not across
        last_id = live.events[-1][0]
    finally:
        live.close()
    for i in range(3):  # missed while away
        call(b, "POST", "/drop", {"route": "site/clicks", "payload": {"x": 10 + i}})
    call(a, "POST", "/drop", {"route": "site/new", "payload": {"first": True}})
    again = Reader(a, "/live/site/*", last_id=last_id)
    try:
        assert again.wait(lambda r: len(r.data()) >= 4), again.events
        time.sleep(0.5)
        missed = again.data()
        assert sorted(json.dumps(d.get("x", d.get("first"))) for d in missed) == ["10", "11", "12", "true"]
        assert not [e for _, e, _ in again.events if e == "gap"]
    finally:
        again.close()


def test_resume_from_a_trimmed_point_is_a_gap(redis_cluster, tmp_path):
    srv = Server(str(tmp_path / "d"), store=redis_cluster.url, replay_history=20)
    srv.start(timeout=40)
    try:
        call(srv, "POST", "/drop", {"route": "t/r", "payload": {"i": 0}})
        live = Reader(srv, "/live/t/r")
        call(srv, "POST", "/drop", {"route": "t/r", "payload": {"i": 1}})
        assert live.wait(lambda r: r.data())
        live.close()
        first = live.events[-1][0]
        call(srv, "POST", "/drop", [{"route": "t/r", "payload": {"i": i}} for i in range(2, 200)])
        again = Reader(srv, "/live/t/r", last_id=first)
        assert again.wait(lambda r: r.data())
        again.close()
        assert again.events[0][1] == "gap"
    finally:
        srv.stop(timeout=15)


def test_a_key_made_on_one_node_works_on_the_other_and_its_revocation_ends_streams_there(nodes, redis_cluster):
    a, b = nodes
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, "-m", "ocean", "key", "create", "--store", redis_cluster.url,
                          "--read", "kv/*", "--write", "kv/*", "--name", "viewer", "--json"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    status, _ = call(b, "POST", "/drop", {"route": "kv/x", "key": "k", "payload": {"v": 1}}, key=made["token"])
    assert status == 200
    assert call(b, "POST", "/drop", {"route": "other", "payload": {}}, key=made["token"])[0] == 403
    live = Reader(b, "/live/kv/*", key=made["token"])
    try:
        listed = subprocess.run([sys.executable, "-m", "ocean", "key", "list", "--store", redis_cluster.url, "--json"],
                                capture_output=True, text=True, env=env, timeout=60)
        assert made["id"] in listed.stdout
        out = subprocess.run([sys.executable, "-m", "ocean", "key", "revoke", "--store", redis_cluster.url,
                              made["id"]], capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        t0 = time.monotonic()
        assert live.wait(lambda r: r.ended, timeout=10), live.events
        print(f"stream on the other node ended {time.monotonic() - t0:.2f} s after the revoke command returned")
        assert live.events[-1][1] == "end" and live.events[-1][2]["code"] == "unauthorized"
        deadline = time.monotonic() + 5
        while call(a, "GET", "/entity/kv/x/k", key=made["token"])[0] != 401 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert call(a, "GET", "/entity/kv/x/k", key=made["token"])[0] == 401
    finally:
        live.close()


def test_sql_is_equal_on_both_nodes(nodes):
    a, b = nodes
    assert call(a, "POST", "/sql", text="select count(*) as n from \"q/*\"")[0] in (200, 400)  # columns built early
    drops = [{"route": "q/ev", "payload": {"kind": "k%d" % (i % 3), "ms": i}} for i in range(60)]
    assert call(a, "POST", "/drop", drops)[0] == 200
    call(b, "POST", "/exec", text="incr q/c @x .n 5\nincr q/c @y .n 7")
    query = "select kind, count(*) as n, sum(ms) as total from \"q/ev\" group by kind order by kind"
    sa, ra = call(a, "POST", "/sql", text=query)
    sb, rb = call(b, "POST", "/sql", text=query)
    assert sa == sb == 200 and ra == rb and [list(r.values()) for r in ra["rows"]] == [
        ["k0", 20, 570], ["k1", 20, 590], ["k2", 20, 610]]
    call(b, "POST", "/drop", {"route": "q/ev", "payload": {"kind": "k0", "ms": 1000}})
    sa, ra = call(a, "POST", "/sql", text=query)  # a write on B, read on A right after
    assert list(ra["rows"][0].values()) == ["k0", 21, 1570]
    for i in range(6):  # a route new to node A, queried there at once, then written again on B
        q = f"select count(*) as n from \"q/new{i}\""
        call(b, "POST", "/drop", {"route": f"q/new{i}", "payload": {"i": 0}})
        assert call(a, "POST", "/sql", text=q)[1]["rows"] == [{"n": 1}]
        call(b, "POST", "/drop", {"route": f"q/new{i}", "payload": {"i": 1}})
        assert [call(a, "POST", "/sql", text=q)[1]["rows"] for _ in range(2)] == [[{"n": 2}]] * 2
    q2 = "select key, n from \"q/c\" order by key"
    assert call(a, "POST", "/sql", text=q2)[1] == call(b, "POST", "/sql", text=q2)[1]


def test_every_endpoint_answers_and_backup_is_a_typed_refusal(nodes):
    a, _ = nodes
    status, health = call(a, "GET", "/health")
    assert status == 200 and health["ok"] and health["store"] == "redis-cluster" and health["seq"] is None
    call(a, "POST", "/drop", {"route": "e/x", "key": "k", "payload": {"v": 1}})
    status, listed = call(a, "GET", "/entities/e/x")
    assert status == 200 and "k" in json.dumps(listed)
    req = urllib.request.Request(a.url + "/metrics")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert b"ocean_route_entities" in resp.read()
    status, out = call(a, "POST", "/admin/backup", {})
    assert status == 501 and out["code"] == "not_supported" and "Redis" in out["error"]
    with urllib.request.urlopen(a.url + "/admin/", timeout=10) as resp:
        assert resp.status == 200


def test_serve_refuses_a_redis_that_is_not_there(tmp_path):
    port = free_ports(1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCEAN_")}
    env["PYTHONPATH"] = SRC
    out = subprocess.run([sys.executable, "-m", "ocean", "serve", "--port", str(free_ports(1)[0]),
                          "--store", f"redis://127.0.0.1:{port}"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ocean: cannot use the store") and str(port) in lines[0], out.stderr


def test_workers_stay_refused_without_a_store(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCEAN_")}
    env["PYTHONPATH"] = SRC
    out = subprocess.run([sys.executable, "-m", "ocean", "serve", "--data", str(tmp_path / "d"), "--workers", "2",
                          "--port", str(free_ports(1)[0])], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and "--workers must be 1" in out.stderr


def test_a_redis_gone_while_serving_is_503_storage_unavailable(redis_tools, tmp_path):
    from cluster import SingleServer
    redis_server = SingleServer()
    srv = Server(str(tmp_path / "d"), store=redis_server.url)
    try:
        srv.start(timeout=40)
        assert call(srv, "POST", "/drop", {"route": "g/x", "key": "k", "payload": {"v": 1}})[0] == 200
        redis_server.stop()
        for method, path, doc in (("GET", "/entity/g/x/k", None), ("POST", "/drop", {"route": "g/x", "payload": {}}),
                                  ("GET", "/health", None)):
            status, out = call(srv, method, path, doc)
            assert status == 503 and out["code"] == "storage_unavailable" and "Redis" in out["error"], out
        status, out = call(srv, "POST", "/exec", text="incr g/x @k .n")
        assert status in (200, 503) and "storage_unavailable" in json.dumps(out), out
    finally:
        srv.stop(timeout=15)
        redis_server.stop()


def test_replay_stream_json_and_export_on_the_other_node(nodes):
    a, b = nodes
    for i in range(5):
        call(a, "POST", "/drop", {"route": "r/ev", "payload": {"i": i}})
    call(a, "POST", "/drop", {"route": "r/ent", "key": "k", "payload": {"v": 1}})
    req = urllib.request.Request(b.url + "/stream/r/ev?last=3", headers={"X-Ocean-Key": b.key,
                                                                         "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        got = json.loads(resp.read())
    assert [m["i"] for m in got] == [2, 3, 4] and [m["_seq"] for m in got] == [3, 4, 5]
    live = Reader(b, "/live/r/ev?last=2")
    try:
        assert live.wait(lambda r: len(r.data()) >= 2)
        assert [d["i"] for d in live.data()] == [3, 4]
        call(a, "POST", "/drop", {"route": "r/ev", "payload": {"i": 5}})
        assert live.wait(lambda r: len(r.data()) >= 3) and live.data()[-1]["i"] == 5
    finally:
        live.close()
    with urllib.request.urlopen(urllib.request.Request(b.url + "/export/r/*?format=csv",
                                                       headers={"X-Ocean-Key": b.key}), timeout=10) as resp:
        rows = resp.read().decode().splitlines()
    assert rows[0] == "route,key,seq,created_at,updated_at,v,i" and len(rows) == 1 + 1 + 6, rows
    req = urllib.request.Request(b.url + "/import", method="POST", headers={"X-Ocean-Key": b.key},
                                 data=b'{"route": "r/imp", "key": "z", "payload": {"v": 2}}\n')
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["ok"]
    assert call(a, "GET", "/entity/r/imp/z")[1]["payload"] == {"v": 2}


def test_a_node_killed_its_client_resumes_on_the_other(nodes):
    """kill -9 node A (master and workers): node B keeps serving; A's SSE client reconnects to B
    with its last id and gets exactly what was written meanwhile."""
    a, b = nodes
    live = Reader(a, "/live/k9/ev")
    try:
        call(b, "POST", "/drop", {"route": "k9/ev", "payload": {"i": 0}})
        assert live.wait(lambda r: r.data())
        last_id = live.events[-1][0]
        a.kill()
        assert live.wait(lambda r: r.ended, timeout=10)
    finally:
        live.close()
    for i in (1, 2):
        assert call(b, "POST", "/drop", {"route": "k9/ev", "payload": {"i": i}})[0] == 200
    again = Reader(b, "/live/k9/ev", last_id=last_id)
    try:
        assert again.wait(lambda r: len(r.data()) >= 2)
        time.sleep(0.3)
        assert [d["i"] for d in again.data()] == [1, 2] and [e for _, e, _ in again.events] == ["message"] * 2
    finally:
        again.close()


def test_one_redis_server_serves_live_too(redis_single, tmp_path):
    srv = Server(str(tmp_path / "d"), store=redis_single.url, workers=2)
    srv.start(timeout=40)
    try:
        live = Reader(srv, "/live/one/*")
        try:
            for i in range(4):  # two workers: the writes and the stream may be on different ones
                assert call(srv, "POST", "/exec", text=f"incr one/c @k .n\nwrite one/ev {{ i: {i} }}")[0] == 200
            assert live.wait(lambda r: len(r.data()) >= 8), live.events
        finally:
            live.close()
        assert call(srv, "GET", "/entity/one/c/k")[1]["payload"] == {"n": 4}
        assert call(srv, "GET", "/health")[1]["store"] == "redis"
    finally:
        srv.stop(timeout=15)


def test_export_equals_the_embedded_servers(redis_cluster, tmp_path):
    """The same writes to an embedded server and a Redis-mode one export the same NDJSON (times,
    seqs and drop ids are each store's own), and the export imports back."""
    plain = Server(str(tmp_path / "plain")).start()
    red = Server(str(tmp_path / "red"), store=redis_cluster.url).start(timeout=40)
    script = ("incr x/c @b .n 2\nincr x/c @a .f 1.5\nsave x/c @a { name: \"A\", tags: [1, 2] }\n"
              "write x/ev { i: 1 }\nwrite x/ev { i: 2 }\nsave x/v @k 42")
    try:
        out = []
        for srv in (plain, red):
            assert call(srv, "POST", "/exec", text=script)[0] == 200
            with urllib.request.urlopen(urllib.request.Request(srv.url + "/export/x/*",
                                                               headers={"X-Ocean-Key": srv.key}), timeout=10) as r:
                lines = [json.loads(x) for x in r.read().splitlines()]
            out.append([{k: v for k, v in rec.items() if k not in ("created_at", "updated_at", "seq")}
                        for rec in lines])
        assert out[0] == out[1] and len(out[0]) == 5, out
    finally:
        plain.stop(timeout=15)
        red.stop(timeout=15)


def test_the_first_node_prints_the_one_admin_key_and_it_works_on_every_node(redis_cluster, tmp_path):
    a = Server(str(tmp_path / "a"), store=redis_cluster.url, admin_key=None)
    b = Server(str(tmp_path / "b"), store=redis_cluster.url, admin_key=None)
    try:
        a.start(timeout=40)
        b.start(timeout=40)
        tokens = [line.split(": ", 1)[1] for line in a.log().splitlines() if line.startswith("admin key: ")]
        assert len(tokens) == 1 and "admin key" not in b.log()
        assert call(b, "POST", "/drop", {"route": "adm/x", "payload": {}}, key=tokens[0])[0] == 200
    finally:
        a.stop(timeout=15)
        b.stop(timeout=15)


@pytest.mark.slow
def test_a_master_killed_while_serving(redis_cluster, tmp_path):
    """kill -9 the master of a streamed route: writes answer 503 storage_unavailable (never 500) until
    the replica is promoted, /health says which master is down meanwhile, then writes land again and
    the open SSE stream gets them (or a gap first), with no silent skip of acknowledged ones."""
    srv = Server(str(tmp_path / "d"), store=redis_cluster.url, workers=2, heartbeat_s=1)
    srv.start(timeout=40)
    master = redis_cluster.master_of("o:{fo/r}:m")
    live = None
    try:
        assert call(srv, "POST", "/drop", {"route": "fo/r", "payload": {"i": 0}})[0] == 200
        live = Reader(srv, "/live/fo/r")
        assert call(srv, "POST", "/drop", {"route": "fo/r", "payload": {"i": 1}})[0] == 200
        assert live.wait(lambda r: r.data())
        c = master.client()
        try:
            c.execute_command("WAIT", 1, 5000)
        finally:
            c.close()
        master.kill()
        statuses, degraded, acked, i = set(), False, [], 2
        deadline = time.monotonic() + 60
        while len(acked) < 3 and time.monotonic() < deadline:
            status, out = call(srv, "POST", "/drop", {"route": "fo/r", "payload": {"i": i}}, timeout=30)
            statuses.add(status)
            if status == 200:
                acked.append(i)
            else:
                assert status == 503 and out["code"] == "storage_unavailable", out
                h_status, health = call(srv, "GET", "/health", timeout=30)
                degraded = degraded or (h_status == 503 or health.get("ok") is False)
                time.sleep(0.2)
            i += 1
        assert len(acked) == 3 and 503 in statuses and degraded
        assert live.wait(lambda r: set(acked) <= {d["i"] for d in r.data()}, timeout=20), live.events
    finally:
        if live is not None:
            live.close()
        srv.stop(timeout=15)
        master.start()
        redis_cluster.wait_ok(60)
