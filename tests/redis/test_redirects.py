"""The function calls' client (``redisstore/direct.py``) while a route's slot moves between masters:
writes follow ``ASK`` during the migration and ``MOVED`` after it, each applied exactly once; a
connection Redis closed while idle is replaced without a failed write; a Redis that is not there
is a StorageError after the bounded retries."""
import socket

import pytest
import redis

from ocean import errors
from ocean.redisstore import RedisEngine, layout

ROUTE = "slot/moving"


def _node_id(node) -> str:
    c = node.client()
    try:
        return c.execute_command("CLUSTER", "MYID")
    finally:
        c.close()


def _give_slot(cluster, slot: int, owner, other) -> None:
    """Make ``owner`` the only holder of ``slot``, from any point of a migration between the two:
    ``other``'s keys of the slot migrated to ``owner`` (importing them), then every master told."""
    own, oth = owner.client(), other.client()
    try:
        for c, state, peer in ((own, "IMPORTING", other), (oth, "MIGRATING", owner)):
            try:
                c.execute_command("CLUSTER", "SETSLOT", slot, state, _node_id(peer))
            except redis.ResponseError as exc:  # the slot is already where this side wants it
                assert "owner" in str(exc), exc
        keys = oth.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        if keys:
            oth.execute_command("MIGRATE", "127.0.0.1", owner.port, "", 0, 5000, "KEYS", *keys)
        for node in cluster.masters():
            c = node.client()
            try:
                c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", _node_id(owner))
            except redis.ResponseError as exc:
                assert "already the owner" in str(exc)
            finally:
                c.close()
    finally:
        own.close()
        oth.close()


def test_writes_follow_ask_then_moved_and_land_once(redis_cluster):
    meta = layout.meta(ROUTE)
    source = redis_cluster.master_of(meta)
    target = next(n for n in redis_cluster.masters() if n is not source)
    src = source.client()
    slot = src.execute_command("CLUSTER", "KEYSLOT", meta)
    red = RedisEngine(redis_cluster.url)
    try:
        assert red.incr(ROUTE, "k", {"n": 1}) == {"n": 1}
        red.save(ROUTE, {"e": 1})
        # migrating: the keys went to the target, the source still owns the slot -> ASK
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", _node_id(target))
        dst = target.client()
        try:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", _node_id(source))
            keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            assert src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000) == []
            with pytest.raises(redis.exceptions.AskError):
                src.execute_command("HGET", meta, "seq")  # what the engine's client meets
            assert red.incr(ROUTE, "k", {"n": 1}) == {"n": 2}
            out = red.drop_many([{"route": ROUTE, "key": "k", "payload": {"+n": 1}}] * 3)  # pipelined
            assert all(isinstance(r, dict) and r["route"] == ROUTE for r in out), out
        finally:
            dst.close()
        _give_slot(redis_cluster, slot, target, source)  # the target's now, everywhere: MOVED from the source
        assert red.incr(ROUTE, "k", {"n": 1}) == {"n": 6}
        out = red.drop_many([{"route": ROUTE, "key": "k", "payload": {"+n": 1}} for _ in range(10)])
        assert [r["seq"] for r in out] == list(range(out[0]["seq"], out[0]["seq"] + 10))  # in order
        assert red.get(ROUTE, "k")["payload"]["n"] == 16  # every write once: none lost, none twice
        assert [m["seq"] for m in red.changes(ROUTE, None, limit=100)[1]] == list(range(1, out[-1]["seq"] + 1))
        _give_slot(redis_cluster, slot, source, target)  # and back: MOVED from the target
        assert red.incr(ROUTE, "k", {"n": 1}) == {"n": 17}
    finally:
        red.close()
        src.close()
        _give_slot(redis_cluster, slot, source, target)
        redis_cluster.wait_ok(30)


def test_a_connection_redis_closed_while_idle_is_replaced(redis_cluster):
    red = RedisEngine(redis_cluster.url)
    try:
        assert red.incr("idle/closed", "k", {"n": 1}) == {"n": 1}
        master = redis_cluster.master_of(layout.meta("idle/closed"))
        c = master.client()
        try:  # what Redis's idle ``timeout`` or a CLIENT KILL does to the engine's pooled connection
            killed = c.execute_command("CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal")
        finally:
            c.close()
        assert killed >= 1
        assert red.incr("idle/closed", "k", {"n": 1}) == {"n": 2}  # no error: nothing had been sent
        out = red.drop_many([{"route": "idle/closed", "key": "k", "payload": {"+n": 1}}])
        assert out[0]["seq"] == 3
        assert red.get("idle/closed", "k")["payload"]["n"] == 3
    finally:
        red.close()


def test_a_redis_that_is_gone_is_storage_unavailable_after_bounded_retries(redis_single):
    from ocean.redisstore.direct import Direct

    red = RedisEngine(redis_single.url, retries=1)
    try:
        red.incr("gone/r", "k", {"n": 1})
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[1]
        red.direct.close()
        red.direct = Direct(red.client, False, retries=1)
        red.direct.single = ("127.0.0.1", dead)
        with pytest.raises(errors.StorageError, match="Redis is unavailable"):
            red.incr("gone/r", "k", {"n": 1})
        with pytest.raises(errors.StorageError, match="Redis is unavailable"):
            red.drop_many([{"route": "gone/r", "key": "k", "payload": {"+n": 1}}])
    finally:
        red.close()


INTERRUPTED = r"""
from gevent import monkey; monkey.patch_all()
import sys, gevent
from ocean.redisstore import RedisEngine
eng = RedisEngine(sys.argv[1])
done, cut = {}, {}
def work(j):
    done[j] = cut[j] = last = 0
    for i in range(150):
        try:  # every third call is cut at its first wait: sent, its reply never read
            with gevent.Timeout(0 if i % 3 == 0 else 10):
                out = eng.incr("cut/r", f"g{j}", {f"n{j}": 1})
        except gevent.Timeout:
            cut[j] += 1
            continue
        assert list(out) == [f"n{j}"], out  # never another call's reply
        assert out[f"n{j}"] > last, (out, last)
        last = out[f"n{j}"]
        done[j] += 1
gevent.joinall([gevent.spawn(work, j) for j in range(8)], raise_error=True)
for j in range(8):
    total = eng.get("cut/r", f"g{j}")["payload"][f"n{j}"]
    assert done[j] <= total <= done[j] + cut[j], (j, done[j], cut[j], total)
print(sum(cut.values()), sum(done.values()))
eng.close()
"""


def test_a_call_cut_by_a_gevent_timeout_never_hands_its_reply_to_another(redis_cluster):
    """A greenlet interrupted after sending (``gevent.Timeout``): its connection is closed, not
    returned with an unread reply that the next caller would take for its own."""
    import os
    import subprocess
    import sys

    src = os.path.dirname(os.path.dirname(os.path.abspath(errors.__file__)))
    out = subprocess.run([sys.executable, "-c", INTERRUPTED, redis_cluster.url], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, PYTHONPATH=src))
    assert out.returncode == 0, out.stderr[-2000:]
    cut, done = map(int, out.stdout.split())
    assert cut > 0 and done == 8 * 150 - cut
