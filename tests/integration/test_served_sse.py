"""Live streams against a real server: resume after a disconnect gets exactly the missed drops."""
import json
import time

import pytest
import requests

pytestmark = pytest.mark.integration


def _events(lines, want: int, timeout: float = 10.0):
    """Read ``want`` data messages from an ``iter_lines`` iterator as (id, data), and the raw lines."""
    out, ident, raw = [], None, []
    deadline = time.monotonic() + timeout
    for line in lines:
        raw.append(line)
        if line.startswith("id: "):
            ident = int(line[4:])
        elif line.startswith("data: "):
            out.append((ident, json.loads(line[6:])))
            if len(out) >= want:
                break
        assert time.monotonic() < deadline, raw
    return out, raw


def _write(server, i):
    return server.post_json("/drop", {"route": "resume/feed", "payload": {"i": i}})["seq"]


@pytest.mark.parametrize("how", ["header", "query"])
def test_resume_after_disconnect_gets_exactly_the_missed(server, how):
    with requests.get(f"{server.url}/live/resume/feed", stream=True, timeout=10,
                      headers={"X-Ocean-Key": server.key}) as resp:
        lines = resp.iter_lines(decode_unicode=True)
        next(lines)  # open
        first = [_write(server, i) for i in range(3)]
        got, _ = _events(lines, 3)
        assert [s for s, _ in got] == first
    last_seen = got[-1][0]
    missed = [_write(server, i) for i in range(3, 9)]  # written while disconnected
    url = f"{server.url}/live/resume/feed"
    headers = {"X-Ocean-Key": server.key}
    if how == "header":
        headers["Last-Event-ID"] = str(last_seen)
    else:
        url += f"?last_event_id={last_seen}"
    with requests.get(url, stream=True, timeout=10, headers=headers) as resp:
        lines = resp.iter_lines(decode_unicode=True)
        got, raw = _events(lines, len(missed))
        assert [s for s, _ in got] == missed
        assert [d["i"] for _, d in got] == list(range(3, 9))
        assert "event: gap" not in raw
        after = _write(server, 99)
        more, _ = _events(lines, 1)
        assert more[0][0] == after  # and then live, nothing repeated


def test_stream_json_pull(server):
    for i in range(4):
        server.post_json("/drop", {"route": "pull/feed", "payload": {"i": i}})
    r = requests.get(f"{server.url}/stream/pull/*?last=2", headers={"X-Ocean-Key": server.key,
                                                                    "Accept": "application/json"}, timeout=10)
    assert [m["i"] for m in r.json()] == [2, 3]


def test_heartbeat_keeps_idle_streams_open(server):
    with requests.get(f"{server.url}/live/idle/feed", stream=True, timeout=10,
                      headers={"X-Ocean-Key": server.key}) as resp:
        lines = resp.iter_lines(decode_unicode=True)
        deadline = time.monotonic() + 5
        for line in lines:
            if line == ": heartbeat":
                break
            assert time.monotonic() < deadline


def test_a_client_that_goes_away_is_cleaned_up(server):
    base = server.get_json("/health")["sse_clients"]
    resp = requests.get(f"{server.url}/live/gone/feed", stream=True, timeout=10, headers={"X-Ocean-Key": server.key})
    next(resp.iter_lines())
    assert server.get_json("/health")["sse_clients"] == base + 1
    resp.close()  # the client vanishes without a word
    deadline = time.monotonic() + 10  # noticed at the next write to it: a drop or a heartbeat (1 s here)
    while server.get_json("/health")["sse_clients"] > base:
        assert time.monotonic() < deadline
        time.sleep(0.1)
