"""Live messages in Redis mode: the shard channel, resuming from a stream id, gaps; Redis going away."""
import json
import time

import pytest

from cluster import SingleServer
from ocean import errors
from ocean.redisstore import RedisEngine
from ocean.settings import Settings


@pytest.fixture
def red(redis_cluster):
    eng = RedisEngine(redis_cluster.url, settings=Settings.load(replay_history=50))
    yield eng
    eng.close()


def test_a_write_is_published_on_the_routes_shard_channel(red):
    """A subscriber (another connection, routed by redis-py to the slot's master) gets the message."""
    pubsub = red.client.pubsub()
    try:
        pubsub.ssubscribe("o:{live/x}")
        deadline = time.monotonic() + 5
        while pubsub.get_sharded_message(timeout=0.1) is None and time.monotonic() < deadline:
            pass  # the subscribe confirmation
        receipt = red.save("live/x", {"a": 1}, key="k")
        red.incr("live/x", "k", {"n": 2})
        got = []
        while len(got) < 2 and time.monotonic() < deadline + 5:
            msg = pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=0.2)
            if msg is not None:
                got.append(msg["data"])
        assert got[0].startswith(f'["{receipt["seq"]}-') and got[0].endswith(',"save","k",{"a":1}]')
        assert red.changes("live/x", None, limit=2)[1][0]["id"] == ".".join(json.loads(got[0])[:2])
        assert got[1].endswith(',"incr","k",{"n":2}]')
    finally:
        pubsub.close()


def test_resume_gets_exactly_the_missed_messages(red):
    for i in range(5):
        red.save("live/r", {"i": i})
    gap, newest = red.changes("live/r", None, limit=5)
    assert not gap and [m["data"]["i"] for m in newest] == [0, 1, 2, 3, 4]
    gap, missed = red.changes("live/r", newest[1]["id"])
    assert not gap and [m["data"]["i"] for m in missed] == [2, 3, 4]
    assert [m["seq"] for m in missed] == [3, 4, 5] and missed[0]["op"] == "event"
    assert red.changes("live/r", newest[-1]["id"]) == (False, [])


def test_a_trimmed_resume_point_is_a_gap(red):
    red.save("live/t", {"i": 0})
    gap, first = red.changes("live/t", None, limit=1)
    for i in range(1, 200):  # the change stream is capped near replay_history (50)
        red.save("live/t", {"i": i})
    kept = red.changes("live/t", None, limit=1000)[1]
    assert kept[0]["seq"] > 1
    gap, missed = red.changes("live/t", first[0]["id"], limit=1000)
    assert gap and missed == kept and missed[-1]["data"] == {"i": 199}


def test_a_resume_point_lost_in_a_failover_is_a_gap_with_every_unseen_message(red):
    """A client saw seq 4 of an epoch that a failover lost; the new epoch handed out seq 4 and 5
    again. Reloading the functions starts a new epoch as a promotion or restart does (the real
    failover is in test_failover.py): the client gets a gap and both new messages, nothing skipped."""
    for i in range(3):
        red.save("live/f", {"i": i})
    old = red.changes("live/f", None, limit=1)[1][0]
    lost_id = f"4-{old['at'] + 1}.{old['epoch']}"
    from ocean.redisstore.connection import library
    red.client.function_load(library()[0], replace=True)
    red.save("live/f", {"i": "new 4"})
    red.save("live/f", {"i": "new 5"})
    gap, missed = red.changes("live/f", lost_id)
    assert gap and [m["data"]["i"] for m in missed] == ["new 4", "new 5"]
    assert missed[0]["epoch"] != old["epoch"] and missed[0]["seq"] == 4


def test_ids_that_are_not_this_stores_are_refused(red):
    for bad in ("17", "abc", "1-2", "1-x.e"):
        with pytest.raises(errors.InvalidParameter):
            red.changes("live/f", bad)


def test_redis_going_away_is_storage_unavailable_not_a_crash(redis_tools):
    server = SingleServer()
    try:
        eng = RedisEngine(server.url)
        eng.incr("gone", "k", {"n": 1})
        server.stop()
        for call in (lambda: eng.incr("gone", "k", {"n": 1}), lambda: eng.get("gone", "k"),
                     lambda: eng.events("gone"), lambda: eng.routes()):
            with pytest.raises(errors.StorageError) as info:
                call()
            assert info.value.status == 503 and "Redis" in info.value.message
        eng.close()
    finally:
        server.stop()
