"""A served engine writes its snapshots from a forked child (``engine/bgsave.py``), as Redis's BGSAVE."""
import os
import signal
import time

import pytest

pytestmark = pytest.mark.integration


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _metrics(srv) -> str:
    import urllib.request

    req = urllib.request.Request(srv.url + "/metrics", headers={"X-Ocean-Key": srv.key})
    with urllib.request.urlopen(req, timeout=5) as answer:
        return answer.read().decode()


def test_snapshots_are_written_by_a_child_and_reported(make_server):
    srv = make_server(snapshot_every=100)
    for b in range(5):
        answers = srv.post_json("/drop", [{"route": "snap/ev", "payload": {"i": b * 100 + i}} for i in range(100)])
        assert all(a["ok"] for a in answers)
    deadline = time.monotonic() + 20
    while "by child" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "by child" in srv.log()
    text = _metrics(srv)
    assert _metric(text, "ocean_engine_snapshots_total") >= 1
    assert _metric(text, "ocean_engine_snapshot_bytes") > 0
    assert _metric(text, "ocean_engine_snapshot_seconds") > 0
    srv.stop()
    again = make_server()
    rows = again.post_json("/sql", {"query": 'SELECT COUNT(*) AS n FROM "snap/ev"'})["rows"]
    assert rows == [{"n": 500}]


def test_a_killed_worker_takes_its_snapshot_child_with_it(make_server, tmp_path):
    """The child dies with its parent (PR_SET_PDEATHSIG): a restart is never refused the directory."""
    srv = make_server(snapshot_every=1)
    worker = None
    deadline = time.monotonic() + 10
    while worker is None and time.monotonic() < deadline:
        kids = _children(srv.pid)
        worker = kids[0] if kids else None
        time.sleep(0.02)
    assert worker
    payload = {"route": "snap/big", "payload": {"pad": "x" * 50000}}
    child = None
    for _ in range(400):  # until a snapshot child is caught running
        srv.post_json("/drop", [payload] * 20)
        kids = _children(worker)
        if kids:
            child = kids[0]
            break
    if child is None:
        pytest.skip("no snapshot child was caught running on this machine")
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:
        try:
            with open(f"/proc/{child}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    break  # a zombie waiting for init: dead
        except OSError:
            break
        time.sleep(0.02)
    srv.kill()
    again = make_server()
    rows = again.post_json("/sql", {"query": 'SELECT COUNT(*) AS n FROM "snap/big"'})["rows"]
    assert rows[0]["n"] > 0
    assert not [n for n in os.listdir(again.data) if n.endswith(".tmp")]
