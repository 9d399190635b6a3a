"""Sketch fields against a real server: "~f"/"%f" drops, /entity, the SSE message, SQL, a restart."""
import json
import time

import pytest
import requests

pytestmark = pytest.mark.integration


def test_sketch_drops_read_stream_query_and_survive_a_restart(server):
    with requests.get(f"{server.url}/live/sk/*", stream=True, timeout=10,
                      headers={"X-Ocean-Key": server.key}) as resp:
        lines = resp.iter_lines(decode_unicode=True)
        next(lines)  # open
        for day in range(7):
            ack = server.post_json("/drop", {"route": "sk/daily", "key": f"2026-02-1{day}", "payload": {
                "+page_views": 3, "~visitors": [f"u{day}", f"u{day + 1}", "everyday"], "%ms": [10 * (day + 1), 5]}})
            assert ack["ok"]
        deadline, got = time.monotonic() + 10, []
        for line in lines:
            if line.startswith("data: "):
                got.append(json.loads(line[6:]))
                if len(got) == 7:
                    break
            assert time.monotonic() < deadline
    assert got[0]["visitors"] == 3 and got[0]["ms"]["count"] == 2 and got[0]["page_views"] == 3
    entity = server.get_json("/entity/sk/daily/2026-02-16")["payload"]
    assert entity["visitors"] == 3 and entity["ms"]["max"] == 70
    rows = server.post_json("/sql", {"query": 'SELECT uniq_merge(visitors) AS week, SUM(visitors) AS summed, '
                                              'quantile_merge(ms, 1) AS worst FROM "sk/daily"'})["rows"]
    assert rows == [{"week": 9, "summed": 21, "worst": 70.0}]
    bad = requests.post(f"{server.url}/drop", json={"route": "sk/daily", "key": "2026-02-10",
                                                    "payload": {"+page_views": 1, "%visitors": 1}},
                        headers={"X-Ocean-Key": server.key}, timeout=10)
    assert bad.status_code == 400 and bad.json()["code"] == "not_a_sketch"
    server.kill()  # kill -9: every acknowledged add is in the log
    server.start()
    assert server.get_json("/entity/sk/daily/2026-02-16")["payload"] == entity
