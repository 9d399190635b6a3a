"""``ocean key`` beside a running server: scoped keys work at once, revocation ends open streams."""
import json
import os
import subprocess
import sys
import time

import pytest
import requests

from serverproc import SRC

pytestmark = pytest.mark.integration


def ocean_key(data, *args):
    run = subprocess.run([sys.executable, "-m", "ocean", "key", *args, "--data", data, "--json"],
                         env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_key_create_list_revoke_against_a_live_server(make_server):
    srv = make_server(heartbeat_s=1)
    made = ocean_key(srv.data, "create", "--read", "analytics/*", "--name", "dashboard")
    token = made["token"]
    assert made["read"] == ["analytics/*"] and made["write"] == []
    listed = ocean_key(srv.data, "list")
    assert any(k["id"] == made["id"] for k in listed) and token not in json.dumps(listed)
    h = {"X-Ocean-Key": token}
    srv.post_json("/drop", {"route": "analytics/daily", "key": "d", "payload": {"+n": 1}})
    assert requests.get(f"{srv.url}/entity/analytics/daily/d", headers=h, timeout=5).status_code == 200
    assert requests.post(f"{srv.url}/drop", json={"route": "analytics/x", "payload": 1}, headers=h,
                         timeout=5).status_code == 403
    with requests.get(f"{srv.url}/live/analytics/*?_key={token}", stream=True, timeout=10) as resp:
        lines = resp.iter_lines(decode_unicode=True)
        assert next(lines).startswith("retry:")
        t0 = time.monotonic()
        ocean_key(srv.data, "revoke", "dashboard")
        rest = list(lines)  # the server ends the stream by itself
        assert time.monotonic() - t0 < 5
    assert "event: end" in rest and any("unauthorized" in line for line in rest)
    assert requests.get(f"{srv.url}/entity/analytics/daily/d", headers=h, timeout=5).status_code == 401
