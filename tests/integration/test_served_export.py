"""Export and import against a real ``ocean serve``: a long export leaves the worker answering,
and ``ocean export`` / ``ocean import`` carry a dataset from one server to another."""
import http.client
import json
import os
import subprocess
import sys
import threading

from serverproc import SRC, Server

EVENTS = 400_000


def _post_events(srv, route, n, batch=10_000):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    try:
        for start in range(0, n, batch):
            body = json.dumps([{"route": route, "payload": {"i": i, "path": f"/p/{i % 50}"}}
                               for i in range(start, min(n, start + batch))])
            conn.request("POST", "/drop", body, {"X-Ocean-Key": srv.key, "Content-Type": "application/json"})
            answer = conn.getresponse()
            assert answer.status == 200
            answer.read()
    finally:
        conn.close()


def test_health_answers_while_a_long_export_streams(server):
    """A client that reads as fast as the server writes never blocks the worker on its socket:
    only the export's own turns let /health in. /health must answer while the export is mid-stream."""
    _post_events(server, "big/events", EVENTS)
    state = {"rows": 0, "done": False, "error": None}
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("GET", "/export/big/events", headers={"X-Ocean-Key": server.key})
    answer = conn.getresponse()
    assert answer.status == 200
    first = answer.read(1 << 16)  # the export is under way
    state["rows"] = first.count(b"\n")

    def reader():
        try:
            for chunk in iter(lambda: answer.read(1 << 16), b""):
                state["rows"] += chunk.count(b"\n")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            state["error"] = exc
        finally:
            state["done"] = True

    thread = threading.Thread(target=reader)
    thread.start()
    health = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    answered_mid_stream = 0
    try:
        for _ in range(1000):  # bounded: ends at 3 answers or at the export's end
            if state["done"] or answered_mid_stream >= 3:
                break
            health.request("GET", "/health")
            reply = health.getresponse()
            assert reply.status == 200 and json.loads(reply.read())["ok"]
            if not state["done"]:
                answered_mid_stream += 1
    finally:
        health.close()
        thread.join(60)
        conn.close()
    assert not thread.is_alive() and state["error"] is None
    assert state["rows"] == EVENTS
    assert answered_mid_stream >= 3, f"/health answered {answered_mid_stream} times during a {EVENTS}-row export"


def _cli(*args, stdin=None, key=None):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("OCEAN_URL", None)
    if key:
        env["OCEAN_KEY"] = key
    return subprocess.run([sys.executable, "-m", "ocean", *args], input=stdin, capture_output=True, timeout=120,
                          env=env)


def test_cli_export_then_import_into_an_empty_server(tmp_path):
    src = Server(str(tmp_path / "src" / "data"))
    dst = Server(str(tmp_path / "dst" / "data"))
    try:
        src.start()
        dst.start()
        src.post_json("/exec", {"query": "incr shop/daily @2026-02-10 .views 3\n"
                                         "save shop/users @u1 name: \"Ann\" tags: [1, 2]"})
        _post_events(src, "shop/events", 2500, batch=1000)
        out_file = tmp_path / "shop.ndjson"
        done = _cli("export", "shop/*", "-o", str(out_file), "--url", src.url, key=src.key)
        assert done.returncode == 0, done.stderr
        assert len(out_file.read_bytes().splitlines()) == 2502
        csv_out = _cli("export", "shop/events", "--format", "csv", "--url", src.url, key=src.key)
        assert csv_out.returncode == 0 and len(csv_out.stdout.splitlines()) == 2501
        assert csv_out.stdout.splitlines()[0] == b"route,key,seq,created_at,updated_at,i,path"
        # half from a file (Content-Length), half from standard input (a chunked body)
        lines = out_file.read_bytes().splitlines(keepends=True)
        half = tmp_path / "half.ndjson"
        half.write_bytes(b"".join(lines[:1000]))
        first = _cli("import", str(half), "--url", dst.url, key=dst.key)
        assert first.returncode == 0, first.stderr
        assert b"imported 1000 of 1000 lines" in first.stdout
        second = _cli("import", "-", "--url", dst.url, "--json", stdin=b"".join(lines[1000:]), key=dst.key)
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["imported"] == 1502
        for q in ['SELECT key, views FROM "shop/daily" ORDER BY key',
                  'SELECT key, name, tags FROM "shop/users" ORDER BY key',
                  'SELECT created_at, i, path FROM "shop/events" ORDER BY i',
                  'SELECT path, count(*) AS n FROM "shop/events" GROUP BY path ORDER BY path']:
            a, b = src.post_json("/sql", {"query": q}), dst.post_json("/sql", {"query": q})
            assert a["ok"] and a == b, q
        # bad lines: named on standard error, exit status 1
        bad = tmp_path / "bad.ndjson"
        bad.write_bytes(b'{"route": "shop/events", "payload": 1}\n{oops\n')
        failed = _cli("import", str(bad), "--url", dst.url, key=dst.key)
        assert failed.returncode == 1 and b"line 2: malformed JSON" in failed.stderr
        refused = _cli("export", "shop/*", "--url", dst.url, key="not-a-key")
        assert refused.returncode == 1 and b"does not know this key" in refused.stderr
    finally:
        src.stop()
        dst.stop()
