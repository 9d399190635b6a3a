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
