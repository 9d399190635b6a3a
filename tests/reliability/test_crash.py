"""Crash under load: SIGKILL the whole server mid-load, restart, and find every acknowledged write.

Eight clients write over keep-alive connections -- increments through
``POST /exec`` and ``POST /drop``, keyed saves, events -- while one SSE
subscriber watches. At a seeded random moment the server's process group is
SIGKILLed; a new server on the same directory must hold every write that was
answered ``ok`` (counters between acknowledged and attempted, every
acknowledged event, every acknowledged entity version). Each configuration is
killed ``KILLS`` times in a row on the same directory, and once more with a
tiny ``snapshot_every`` so the kill lands during snapshots and log compaction.
"""
import http.client
import json
import os
import random
import socket
import threading
import time

import pytest

from probes import Client

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLS = int(os.environ.get("OCEAN_RELIABILITY_KILLS", "3"))  # kills per configuration (bounded)
CLIENTS = 8
SEED = 7


class Ledger:
    """What each client attempted and what the server acknowledged, across kills."""

    def __init__(self):
        self.lock = threading.Lock()
        self.attempted = {}   # counter key -> increments sent
        self.acked = {}       # counter key -> increments answered ok
        self.saves_sent = {}  # save key -> [j, ...] sent
        self.saves_ok = {}    # save key -> [j, ...] answered ok
        self.events_sent = set()
        self.events_ok = set()

    def add(self, table, key, n=1):
        with self.lock:
            table[key] = table.get(key, 0) + n


def _client(port, key, i, ledger, stop, counter):
    c = Client(port, key, timeout=5.0)
    j = counter[i]
    try:
        while not stop.is_set():
            j += 1
            op = j % 4
            ckey, skey = f"c{i}", f"s{i}"
            if op in (0, 1):
                ledger.add(ledger.attempted, ckey)
                if op == 0:
                    status, _, body = c.call("POST", "/exec", f"incr crash/counters @{ckey} .n", retry=False)
                    ok = status == 200 and json.loads(body)[0]["ok"]
                else:
                    status, _, body = c.call("POST", "/drop", {"route": "crash/counters", "key": ckey,
                                                               "payload": {"+n": 1}}, retry=False)
                    ok = status == 200 and json.loads(body)["ok"]
                if ok:
                    ledger.add(ledger.acked, ckey)
            elif op == 2:
                with ledger.lock:
                    ledger.saves_sent.setdefault(skey, []).append(j)
                status, _, body = c.call("POST", "/drop", {"route": "crash/saves", "key": skey,
                                                           "payload": {"j": j, "pad": "x" * (j % 200)}}, retry=False)
                if status == 200 and json.loads(body)["ok"]:
                    with ledger.lock:
                        ledger.saves_ok.setdefault(skey, []).append(j)
            else:
                with ledger.lock:
                    ledger.events_sent.add((i, j))
                status, _, body = c.call("POST", "/drop", {"route": "crash/events", "payload": {"c": i, "j": j}},
                                         retry=False)
                if status == 200 and json.loads(body)["ok"]:
                    with ledger.lock:
                        ledger.events_ok.add((i, j))
    except (OSError, ValueError, http.client.HTTPException):
        pass  # the server died under us: whatever was in flight is attempted, not acknowledged
    finally:
        counter[i] = j
        c.close()


def _subscriber(port, key, seen, stop):
    """One SSE client on ``crash/*``, reading until the server dies."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET /live/crash/* HTTP/1.1\r\nHost: x\r\nX-Ocean-Key: {key}\r\n\r\n".encode())
            while not stop.is_set():
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                seen[0] += chunk.count(b"\nid: ") + chunk.startswith(b"id: ")
    except OSError:
        pass


def _load_and_kill(srv, ledger, counter, rng, report, label):
    stop = threading.Event()
    seen = [0]
    sub = threading.Thread(target=_subscriber, args=(srv.port, srv.key, seen, stop), daemon=True)
    sub.start()
    time.sleep(0.1)
    clients = [threading.Thread(target=_client, args=(srv.port, srv.key, i, ledger, stop, counter), daemon=True)
               for i in range(CLIENTS)]
    for t in clients:
        t.start()
    time.sleep(rng.uniform(0.5, 1.6))  # the seeded kill point
    snapshots = sum(1 for n in os.listdir(srv.data) if n.startswith("snapshot-"))
    srv.kill()  # SIGKILL, master and worker together (the whole process group)
    stop.set()
    for t in clients + [sub]:
        t.join(10)
        assert not t.is_alive(), "a client hung after the kill"
    total = sum(ledger.acked.values()) + sum(map(len, ledger.saves_ok.values())) + len(ledger.events_ok)
    before = sum(r["acked"] for r in report)
    report.append({"run": label, "acked": total - before, "sse_seen": seen[0], "snapshots_at_kill": snapshots})


def _verify(srv, ledger) -> int:
    """Check the restarted server against the ledger; returns how many acknowledged writes are missing."""
    c = Client(srv.port, srv.key, timeout=30)
    lost = 0
    for ckey, sent in ledger.attempted.items():
        status, doc = c.json("GET", f"/entity/crash/counters/{ckey}")
        n = doc["payload"]["n"] if status == 200 else 0
        acked = ledger.acked.get(ckey, 0)
        lost += max(0, acked - n)
        assert acked <= n <= sent, (ckey, acked, n, sent)
    for skey, sent in ledger.saves_sent.items():
        ok = ledger.saves_ok.get(skey, [])
        status, doc = c.json("GET", f"/entity/crash/saves/{skey}")
        if not ok:
            continue
        assert status == 200, doc
        j = doc["payload"]["j"]
        assert j in sent and j >= max(ok), (skey, j, max(ok))
        assert len(ok) <= doc["version"] <= len(sent), (skey, doc["version"], len(ok), len(sent))
        status, hist = c.json("POST", "/exec", f"history crash/saves @{skey} limit 100")
        kept = {h["payload"]["j"] for h in hist[0]["data"] if isinstance(h.get("payload"), dict)}
        oldest = min(kept)
        missing = [x for x in ok if x >= oldest and x not in kept]
        lost += len(missing)
        assert not missing, (skey, missing)
    status, doc = c.json("POST", "/sql", {"query": 'SELECT c, j FROM "crash/events"'})
    assert status == 200, doc
    stored = {(r["c"], r["j"]) for r in doc["rows"]}
    missing = ledger.events_ok - stored
    lost += len(missing)
    assert not missing, sorted(missing)[:10]
    assert stored <= ledger.events_sent
    c.close()
    return lost


@pytest.mark.parametrize("fsync,snapshot_every", [("always", 0), ("everysec", 0), ("always", 40), ("everysec", 40)])
def test_sigkill_under_load_loses_no_acknowledged_write(make_server, tmp_path, fsync, snapshot_every):
    rng = random.Random(f"{SEED}-{fsync}-{snapshot_every}")
    ledger, counter, report = Ledger(), [0] * CLIENTS, []
    settings = dict(fsync=fsync, snapshot_every=snapshot_every, heartbeat_s=1)
    srv = make_server(**settings)
    for k in range(KILLS):
        _load_and_kill(srv, ledger, counter, rng, report, f"{fsync}/snapshot_every={snapshot_every}/kill{k + 1}")
        srv = make_server(**settings)  # the same directory: replays snapshot + log
        report[-1]["lost"] = _verify(srv, ledger)
        assert "damaged" not in srv.log()
        assert not [n for n in os.listdir(srv.data) if n.endswith(".tmp")]  # a half snapshot is cleared
    for line in report:
        print("crash run:", json.dumps(line))
    assert sum(r["acked"] for r in report) > 0
    if snapshot_every:
        assert any(r["snapshots_at_kill"] for r in report), "no snapshot was taken under load"


def test_resume_with_an_id_from_before_a_restart_misses_nothing(make_server):
    srv = make_server(heartbeat_s=1)
    c = Client(srv.port, srv.key)
    assert c.json("POST", "/drop", {"route": "resume/feed", "payload": {"i": 0}})[0] == 200
    for _ in range(10):
        c.call("GET", "/health")  # each request publishes _admin/events with a seq of its own
    msgs = c.json("GET", "/stream/*?last=1", headers={"Accept": "application/json"})[1]
    last_seen = msgs[-1]["_seq"]  # what a dashboard watching * holds as its Last-Event-ID
    srv.kill()
    srv = make_server(heartbeat_s=1)
    c = Client(srv.port, srv.key)
    written = [c.json("POST", "/drop", {"route": "resume/feed", "payload": {"i": i}})[1]["seq"] for i in (1, 2, 3)]
    status, _, head = c.call("GET", f"/stream/resume/feed?last_event_id={last_seen}&last=1000",
                             headers={"Accept": "application/json"})
    got = [m["_seq"] for m in json.loads(head)]
    assert set(written) <= set(got), (last_seen, written, got)
