"""The user's tutorial, end to end, against a real server (seed/realtime-analytics-tutorial.txt).

Every Drops snippet goes through ``POST /exec``; the curl, fetch and
EventSource snippets are run as written, with the base URL replaced.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import requests

from serverproc import SRC

pytestmark = pytest.mark.integration


def exec_(server, text):
    r = requests.post(server.url + "/exec", data=text.encode(), headers={"X-Ocean-Key": server.key,
                                                                        "Content-Type": "text/plain"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_tutorial(server):
    # 2. Counting page views
    out = exec_(server, "incr analytics/daily @2026-02-10 .page_views\nincr analytics/daily @2026-02-10 .requests")
    assert out == [{"ok": True, "data": {"page_views": 1}}, {"ok": True, "data": {"requests": 1}}]
    # a drop with {"+views": 1} increments atomically too
    r = requests.post(server.url + "/drop", json={"route": "analytics/daily", "key": "2026-02-10",
                                                  "payload": {"+page_views": 1}}, headers={"X-Ocean-Key": server.key})
    assert r.json()["ok"] is True
    # 3. Reading the counts: counters merged into the entity
    out = exec_(server, "read analytics/daily @2026-02-10")
    assert out[0]["data"]["page_views"] == 2 and out[0]["data"]["requests"] == 1
    # 4. Per-endpoint tracking with quoted field names
    out = exec_(server, '-- Track a POST /drop request\nincr analytics/endpoints @2026-02-10 ."POST /drop"\n'
                        '-- Track a GET /entity request\nincr analytics/endpoints @2026-02-10 ."GET /entity/*"')
    assert [o["ok"] for o in out] == [True, True]
    assert exec_(server, "read analytics/endpoints @2026-02-10")[0]["data"] == {"POST /drop": 1, "GET /entity/*": 1}
    # 7. fetch('/entity/analytics/daily/2026-02-10', {headers: {'X-Ocean-Key': key}}) -> stats.payload.page_views
    stats = requests.get(server.url + "/entity/analytics/daily/2026-02-10", headers={"X-Ocean-Key": server.key}).json()
    assert stats["payload"]["page_views"] == 2


def test_tutorial_sql(server):
    out = exec_(server, "incr analytics/daily @2026-02-11 .page_views 5")
    out = exec_(server, 'sql `SELECT key AS date, page_views, requests FROM "analytics/daily" ORDER BY key DESC LIMIT 7`')
    assert out[0]["ok"] is True, out
    assert out[0]["columns"] == ["date", "page_views", "requests"]
    assert out[0]["data"][0]["date"] == "2026-02-11"


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_tutorial_curl_sse_with_key_header(server):
    # curl -N https://api.infiniteocean.io/live/analytics/events -H "X-Ocean-Key: YOUR_KEY"
    cmd = f'curl -N {server.url}/live/analytics/events \\\n-H "X-Ocean-Key: {server.key}"'
    proc = subprocess.Popen(["bash", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        assert proc.stdout.readline().startswith(b"retry:")  # the stream is open
        # 6. write analytics/events { method: "POST", path: "/drop", status: 200 }
        out = exec_(server, '-- Write an event drop (no key = events accumulate, never overwritten)\n'
                            'write analytics/events { method: "POST", path: "/drop", status: 200 }')
        assert out[0]["ok"] is True
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = proc.stdout.readline().decode()
            if line.startswith("data: "):
                data = json.loads(line[6:])
                break
        assert data["method"] == "POST" and data["path"] == "/drop" and data["status"] == 200
        assert data["_route"] == "analytics/events"
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(5)


def test_tutorial_eventsource_with_key_in_query(server):
    # new EventSource(`/live/analytics/events?_key=${key}`) -- browsers cannot send headers
    with requests.get(f"{server.url}/live/analytics/events?_key={server.key}", stream=True, timeout=10,
                      headers={"Origin": "https://dashboard.example"}) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["access-control-allow-origin"] == "*"
        lines = resp.iter_lines(decode_unicode=True)
        assert next(lines).startswith("retry:")
        exec_(server, 'write analytics/events { method: "GET", path: "/entity/users/123", status: 200 }')
        for line in lines:
            if line.startswith("data: "):
                ev = json.loads(line[6:])
                assert ev["path"] == "/entity/users/123"
                break


def test_cli_exec_and_sql(server, tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC, "OCEAN_KEY": server.key}
    script = tmp_path / "count.drops"
    script.write_text("incr cli/daily @d .n 2\nread cli/daily @d\n")
    run = subprocess.run([sys.executable, "-m", "ocean", "exec", "--url", server.url, "-f", str(script)],
                         env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert '"n": 2' in run.stdout
    run = subprocess.run([sys.executable, "-m", "ocean", "exec", "--url", server.url, "get cli/daily @missing"],
                         env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 1 and "not_found" in run.stderr
    run = subprocess.run([sys.executable, "-m", "ocean", "sql", "--url", server.url,
                          'SELECT key, n FROM "cli/daily"'], env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert "key" in run.stdout and "(1 row)" in run.stdout
