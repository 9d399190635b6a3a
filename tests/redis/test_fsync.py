"""``--fsync`` in Redis mode (redisstore/durability.py): ``always`` acknowledges a write once a replica
has it, else answers 503 ``not_replicated`` (the write stays applied); what each master does is read,
reported in /health and warned about, never changed by ocean; a Redis that cannot honour
``always`` is refused at start."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ocean import errors
from ocean.redisstore import RedisEngine, durability
from ocean.settings import Settings
from cluster import free_ports
from serverproc import SRC, Server
from test_serve import call


def replica_of(cluster, master):
    c = master.client()
    try:
        port = int(c.info("replication")["slave0"]["port"])
    finally:
        c.close()
    return next(n for n in cluster.nodes if n.port == port)


def test_always_acknowledges_a_write_once_a_replica_has_it(redis_cluster):
    red = RedisEngine(redis_cluster.url, settings=Settings.load(fsync="always", replica_wait_ms=400))
    route, meta = "dur/a", "o:{dur/a}:m"
    master = redis_cluster.master_of(meta)
    replica = replica_of(redis_cluster, master)
    other = next(f"dur/o{i}" for i in range(100) if redis_cluster.master_of(f"o:{{dur/o{i}}}:m") is not master)
    try:
        assert red.durability["mode"] == durability.WAIT and red.incr(route, "k", {"n": 1}) == {"n": 1}
        rc = replica.client()
        try:
            rc.execute_command("READONLY")
            assert rc.hget("o:{dur/a}:c:k", "n") == "1"  # acknowledged: the replica has it already
        finally:
            rc.close()
        os.kill(replica.pid, signal.SIGSTOP)
        try:
            with pytest.raises(errors.NotReplicated) as info:
                red.incr(route, "k", {"n": 1})
            assert info.value.status == 503 and info.value.code == "not_replicated"
            assert "no replica confirmed it within 400 ms" in info.value.message
            out = red.drop_many([{"route": route, "key": "k", "payload": {"+n": 1}},
                                 {"route": other, "key": "k", "payload": {"+n": 1}},
                                 {"route": route, "key": "k", "payload": {"+n": "x"}}])
            assert isinstance(out[0], errors.NotReplicated) and out[1]["seq"] == 1
            assert isinstance(out[2], errors.InvalidAmount)  # refused before Redis: nothing to wait for
            assert red.get(route, "k")["payload"] == {"n": 3}  # applied on the master all the same
        finally:
            os.kill(replica.pid, signal.SIGCONT)
        deadline = time.monotonic() + 30
        while True:  # the replica catches up once it runs again
            try:
                assert red.incr(route, "k", {"n": 1}) == {"n": 4}
                break
            except errors.NotReplicated:
                assert time.monotonic() < deadline, "the resumed replica never confirmed a write"
    finally:
        os.kill(replica.pid, signal.SIGCONT)
        red.close()
        redis_cluster.wait_ok(60)


def test_everysec_and_no_never_wait(redis_single):
    for policy in ("no", "everysec"):
        red = RedisEngine(redis_single.url, settings=Settings.load(fsync=policy))
        try:
            assert red.durability["mode"] == durability.NONE and red.incr("dur/n", "k", {"n": 1})
        finally:
            red.close()


def test_what_redis_does_is_read_reported_and_warned_never_changed(redis_single):
    c = redis_single.client()
    try:
        c.config_set("appendonly", "no")
        red = RedisEngine(redis_single.url, settings=Settings.load(fsync="everysec"))
        try:
            [warning] = red.durability["warnings"]
            assert "appendonly no" in warning and "weaker than --fsync everysec" in warning
            found = red.health()["durability"]
            assert found["fsync"] == "everysec" and found["masters"][0]["appendonly"] == "no"
            assert found["masters"][0]["replicas"] == 0
        finally:
            red.close()
        assert c.config_get("appendonly")["appendonly"] == "no"  # left as the user has it
        assert RedisEngine(redis_single.url, settings=Settings.load(fsync="no")).durability["warnings"] == []
    finally:
        c.config_set("appendonly", "yes")
        c.close()


def test_a_refused_config_get_is_reported_as_unknown():
    plan = durability.plan("everysec", [{"address": "h:1", "appendonly": None, "appendfsync": None, "replicas": 1}])
    assert plan["refusal"] is None and "would not say" in plan["warnings"][0]
    plan = durability.plan("always", [{"address": "h:1", "appendonly": None, "appendfsync": None, "replicas": None}])
    assert plan["refusal"] and plan["mode"] == durability.NONE


def test_always_on_one_server_without_a_replica(redis_single, tmp_path):
    """Nothing can confirm a write: ``ocean serve`` refuses to start, in one line, unless the server
    fsyncs its AOF on every write (then that stands in for the replica: no wait)."""
    out = subprocess.run([sys.executable, "-m", "ocean", "serve", "--store", redis_single.url, "--fsync", "always",
                          "--port", str(free_ports(1)[0])], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=SRC))
    assert out.returncode == 1, out
    assert "--fsync always needs every Redis master to have a replica" in out.stderr
    c = redis_single.client()
    try:
        c.config_set("appendfsync", "always")
        red = RedisEngine(redis_single.url, settings=Settings.load(fsync="always"))
        try:
            assert red.durability["mode"] == durability.AOF and red.incr("dur/aof", "k", {"n": 1}) == {"n": 1}
        finally:
            red.close()
    finally:
        c.config_set("appendfsync", "everysec")
        c.close()


def test_serve_warns_at_start_and_health_reports_it(redis_cluster, tmp_path):
    masters = redis_cluster.masters()
    clients = [m.client() for m in masters]
    srv = Server(str(tmp_path / "d"), store=redis_cluster.url, fsync="always", replica_wait_ms=2000)
    try:
        clients[0].config_set("appendfsync", "no")
        srv.start(timeout=40)
        assert f"ocean: warning: Redis at {masters[0].address} runs appendonly yes, appendfsync no" in srv.log()
        status, health = call(srv, "GET", "/health")
        dur = health["redis"]["durability"]
        assert status == 200 and dur["fsync"] == "always" and dur["mode"] == "wait" and dur["replica_wait_ms"] == 2000
        assert sorted(m["address"] for m in dur["masters"]) == sorted(m.address for m in masters)
        assert call(srv, "POST", "/exec", text="incr dur/s @k .n")[0] == 200
    finally:
        srv.stop(timeout=15)
        clients[0].config_set("appendfsync", "everysec")
        for c in clients:
            c.close()
