"""kill -9 the master of a route's slot under writes: they pause (503 meanwhile), then resume on the
promoted replica; every write acknowledged after a WAIT is still there; the cluster is whole again
afterwards (the killed node restarts as a replica), so the next test gets a healthy cluster."""
import time

import pytest

from ocean import errors
from ocean.redisstore import RedisEngine

pytestmark = pytest.mark.slow


def test_writes_resume_after_a_master_is_killed(redis_cluster):
    red = RedisEngine(redis_cluster.url)
    try:
        for _ in range(100):
            red.incr("fail/over", "k", {"n": 1})
        master = redis_cluster.master_of("o:{fail/over}:m")
        c = master.client()
        try:
            assert c.execute_command("WAIT", 1, 5000) == 1  # the replica holds all 100
        finally:
            c.close()
        master.kill()
        acked, unknown, started = 100, 0, time.monotonic()
        while acked < 150:
            assert time.monotonic() - started < 60, "writes did not resume within 60 s"
            try:
                red.incr("fail/over", "k", {"n": 1})
                acked += 1
            except errors.StorageError:
                unknown += 1  # it may or may not have landed before the master died
                time.sleep(0.05)
        new = redis_cluster.wait_promoted(master, "o:{fail/over}:m")
        assert new is not master
        total = red.get("fail/over", "k")["payload"]["n"]
        assert acked <= total <= acked + unknown
        assert red.changes("fail/over", None, limit=1)[1][0]["seq"] == red.get("fail/over", "k")["version"]
    finally:
        red.close()
        master.start()  # back as a replica of the promoted node
        redis_cluster.wait_ok(60)


def test_writes_lost_in_a_failover_show_up_as_a_gap_never_a_silent_skip(redis_cluster):
    """A real lost write: the replica is stopped (SIGSTOP by its pid) until its master drops it, two
    writes are acknowledged by the master alone, the master is killed and the replica promoted. The
    new master hands out the same seqs again; a client that saw the lost writes resumes with a gap
    and gets every new write."""
    import os
    import signal

    red = RedisEngine(redis_cluster.url)
    route, meta = "fail/lost", "o:{fail/lost}:m"
    master = redis_cluster.master_of(meta)
    replica = None
    try:
        for i in range(3):
            red.save(route, {"i": i})
        c = master.client()
        try:
            assert c.execute_command("WAIT", 1, 5000) == 1
            port = int(c.info("replication")["slave0"]["port"])
            replica = next(n for n in redis_cluster.nodes if n.port == port)
            c.config_set("repl-timeout", 1)
            os.kill(replica.pid, signal.SIGSTOP)
            deadline = time.monotonic() + 20
            while c.info("replication")["connected_slaves"] != 0:  # the master gives the replica up
                assert time.monotonic() < deadline, "the master kept its stopped replica"
                time.sleep(0.2)
        finally:
            c.close()
        red.save(route, {"i": "lost 4"})
        red.save(route, {"i": "lost 5"})
        seen = red.changes(route, None, limit=1)[1][-1]
        assert seen["seq"] == 5 and seen["data"] == {"i": "lost 5"}
        master.kill()
        os.kill(replica.pid, signal.SIGCONT)
        started = time.monotonic()
        while True:  # writes pause until the replica is promoted
            assert time.monotonic() - started < 60, "no write succeeded within 60 s of the failover"
            try:
                red.save(route, {"i": "new"})
                break
            except errors.StorageError:
                time.sleep(0.1)
        red.save(route, {"i": "newer"})
        assert [m["data"]["i"] for m in red.changes(route, None, limit=10)[1]] == [0, 1, 2, "new", "newer"]
        gap, missed = red.changes(route, seen["id"])
        assert gap and [m["data"]["i"] for m in missed] == ["new", "newer"]
        assert [m["seq"] for m in missed] == [4, 5]  # the same seqs as the lost writes: only the id tells
    finally:
        if replica is not None:
            os.kill(replica.pid, signal.SIGCONT)
        red.close()
        if master.proc.poll() is not None:
            master.start()
        redis_cluster.wait_ok(60)
