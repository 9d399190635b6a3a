"""The bus: every write published with its seq, replay ring, gaps, bounded queues."""
import threading
import time

from ocean.settings import Settings


def test_every_write_is_published_with_new_totals(engine):
    sub = engine.subscribe("analytics/*")
    engine.incr("analytics/daily", "d", {"page_views": 1})
    engine.incr("analytics/daily", "d", {"page_views": 1})
    engine.save("analytics/events", {"method": "GET"})
    engine.save("other", {"x": 1})
    msgs = [sub.get(timeout=1) for _ in range(3)]
    assert [m.seq for m in msgs] == [1, 2, 3]
    assert msgs[1].data["page_views"] == 2 and msgs[1].data["_key"] == "d"
    assert msgs[2].data["method"] == "GET" and msgs[2].data["_route"] == "analytics/events"
    assert "_key" not in msgs[2].data
    assert sub.get(timeout=0.05) is None  # "other" is not under analytics/*


def test_message_encoded_once(engine):
    a, b = engine.subscribe("r"), engine.subscribe("r")
    engine.save("r", {"x": 1})
    ma, mb = a.get(timeout=1), b.get(timeout=1)
    assert ma is mb and ma.sse() is mb.sse()
    assert ma.sse().startswith(b"id: 1\ndata: {")


def test_resume_from_seq_and_gap(make_engine):
    eng = make_engine(settings=Settings.load(replay_history=5))
    for i in range(4):
        eng.save("r", {"i": i})
    sub = eng.subscribe("r", after_seq=2)
    assert not sub.gap and [m.seq for m in sub.backlog] == [3, 4]
    for i in range(10):
        eng.save("r", {"i": i})
    late = eng.subscribe("r", after_seq=2)
    assert late.gap and [m.seq for m in late.backlog] == [10, 11, 12, 13, 14]


def test_resume_after_restart_signals_gap(make_engine):
    eng = make_engine()
    eng.save("r", {"i": 1})
    eng.close()
    eng2 = make_engine()
    assert eng2.subscribe("r", after_seq=0).gap
    assert not eng2.subscribe("r", after_seq=1).gap


def test_system_writes_do_not_make_a_gap_after_a_restart(make_engine):
    """Request accounting writes ``_admin/...`` counters between a user's drops: a client that
    saw the last user drop before the restart resumes without a false gap, whether the restart
    replays the log or loads a snapshot."""
    eng = make_engine()
    last = eng.save("r", {"i": 1})["seq"]
    for i in range(20):
        eng.incr("_admin/requests", "d", {"n": 1})
    eng.save("_admin/x", {"i": 1})
    eng.close()
    eng2 = make_engine()
    assert eng2.seq > last
    assert not eng2.subscribe("r", after_seq=last).gap
    assert eng2.subscribe("r", after_seq=last - 1).gap  # that drop is gone from replay
    assert eng2.subscribe("*", after_seq=last).gap  # the system writes after it are not replayable
    eng2.incr("_admin/requests", "d", {"n": 1})
    eng2.snapshot()
    eng2.close()
    eng3 = make_engine()
    assert not eng3.subscribe("r", after_seq=last).gap
    new = eng3.incr("r", "k", {"n": 1})
    eng3.close()
    eng4 = make_engine()
    assert eng4.subscribe("r", after_seq=last).gap  # a user write since: the point is behind it now
    assert not eng4.subscribe("r", after_seq=eng4.bus.user.last).gap


def test_slow_subscriber_overflows_and_is_dropped(make_engine):
    eng = make_engine(settings=Settings.load(subscriber_queue=10))
    slow, fine = eng.subscribe("r"), eng.subscribe("r", maxsize=1000)
    for i in range(50):
        eng.save("r", {"i": i})
    assert slow.overflowed and slow.get(timeout=0.01) is None
    assert fine.pending() == 50
    assert eng.stats()["subscribers"] == 1


def test_recent_last_n(engine):
    for i in range(5):
        engine.save("a/x", {"i": i})
        engine.save("b", {"i": i})
    assert [m.data["i"] for m in engine.recent("a/*", 3)] == [2, 3, 4]


def test_publish_not_stored(engine):
    sub = engine.subscribe("_admin/events")
    engine.publish("_admin/events", {"method": "GET", "status": 200})
    assert sub.get(timeout=1).data["status"] == 200
    assert engine.routes() == []


def test_close_wakes_blocked_subscriber(engine):
    sub = engine.subscribe("r")
    got = []
    t = threading.Thread(target=lambda: got.append(sub.get(timeout=5)))
    t.start()
    sub.close()
    t.join(2)
    assert got == [None] and not t.is_alive()


def test_request_feed_does_not_push_user_drops_out_of_replay(make_engine):
    eng = make_engine(settings=Settings.load(replay_history=5))
    eng.save("r", {"i": 1})
    for i in range(50):
        eng.publish("_admin/events", {"i": i})
    sub = eng.subscribe("r", after_seq=0)
    assert not sub.gap and [m.data["i"] for m in sub.backlog] == [1]
    everything = eng.subscribe("*", after_seq=0)
    assert everything.gap  # the system ring no longer reaches back to seq 1
    assert [m.seq for m in everything.backlog] == sorted(m.seq for m in everything.backlog)
    assert [m.route for m in eng.recent("*", 3)] == ["_admin/events"] * 3


def test_seqs_of_bus_only_messages_are_never_reused_after_a_restart(make_engine):
    eng = make_engine()
    eng.save("r", {"i": 1})
    seen = [eng.publish("_admin/events", {"i": i}).seq for i in range(5)]
    eng.close()
    eng2 = make_engine()
    new = eng2.save("r", {"i": 2})["seq"]
    assert new > max(seen)
    assert eng2.subscribe("*", after_seq=max(seen)).gap  # that point is from a past life
    eng2.snapshot()  # the lease outlives compaction too
    for i in range(3):
        eng2.publish("_admin/events", {"i": i})
    last = eng2.publish("_admin/events", {}).seq
    eng2.close()
    eng3 = make_engine()
    assert eng3.save("r", {"i": 3})["seq"] > last


def test_replay_history_is_bounded_in_bytes_too(make_engine):
    eng = make_engine(settings=Settings.load(replay_history=10000, replay_history_bytes=1 << 20))
    for i in range(40):
        eng.save("big", {"i": i, "blob": "x" * 100_000})
    ring = eng.bus.user
    assert ring.bytes <= 1 << 20 and 8 <= len(ring.messages) <= 11
    assert ring.bytes == sum(m.size for m in ring.messages)
    sub = eng.subscribe("big", after_seq=0)
    assert sub.gap and sub.backlog[-1].data["i"] == 39
    huge = eng.save("big", {"blob": "y" * 1_000_000})["seq"]
    assert ring.messages[-1].seq == huge  # the newest stays, whatever its size


def _blocked(target, *args):
    """Run ``target`` in a thread; returns (thread, result list)."""
    out = []
    t = threading.Thread(target=lambda: out.append(target(*args)), daemon=True)
    t.start()
    return t, out


def test_wake_ends_a_blocked_get_and_only_that_one(engine):
    from ocean.engine.bus import Subscription

    subs = [engine.subscribe("w") for _ in range(Subscription.GROUPS + 1)]
    first, same_group = subs[0], subs[-1]  # groups are dealt in turn: these two share a bell
    assert first.group == same_group.group
    t1, out1 = _blocked(first.get)
    t2, out2 = _blocked(same_group.get, 5)
    time.sleep(0.1)  # let both block (the test is of wake-ups, not timing: the joins bound it)
    first.wake()
    t1.join(5)
    assert not t1.is_alive() and out1 == [None]
    assert t2.is_alive()  # woken by the shared bell, it found nothing for itself and waits again
    engine.save("w", {"x": 1})
    t2.join(5)
    assert out2 and out2[0] is not None and out2[0].fields == {"x": 1}
    assert first.get(timeout=1).fields == {"x": 1}  # the wake did not cost it a message


def test_no_wakeup_is_lost_between_threads(engine):
    n_subs, n_msgs = 12, 300
    subs = [engine.subscribe("t") for _ in range(n_subs)]
    got = [[] for _ in subs]

    def read(i):
        while len(got[i]) < n_msgs:
            m = subs[i].get(timeout=10)
            assert m is not None, f"subscriber {i} stalled after {len(got[i])} messages"
            got[i].append(m.seq)

    readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(n_subs)]
    for t in readers:
        t.start()
    for i in range(n_msgs):
        engine.save("t", {"i": i})
    for t in readers:
        t.join(30)
    assert all(not t.is_alive() for t in readers)
    assert all(g == sorted(g) and len(g) == n_msgs for g in got)
