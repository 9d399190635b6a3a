"""Live streams in process: the WSGI body is read chunk by chunk (SPEC section 3, SSE)."""
from ocean.keys import KeyStore
from webapp import ADMIN, Reader


def drop(web, route, payload, key=None):
    doc = {"route": route, "payload": payload}
    if key:
        doc["key"] = key
    return web.client.simulate_post("/drop", json=doc).json


def test_live_receives_drops_as_written(make_web):
    web = make_web(heartbeat_s=0.05)
    r = Reader(web.app, "/live/analytics/events")
    assert r.status.startswith("200") and r.headers["content-type"].startswith("text/event-stream")
    r.read_until("ocean stream open")
    ack = drop(web, "analytics/events", {"method": "POST", "path": "/drop", "status": 200})
    drop(web, "analytics/other", {"x": 1})
    r.read_until('"/drop"')
    [(seq, data)] = r.events()
    assert seq == ack["seq"]
    assert data["method"] == "POST" and data["_route"] == "analytics/events" and data["_id"] == ack["drop_id"]
    assert data["_at"] == ack["created_at"] and "_key" not in data
    r.close()
    assert web.engine.stats()["subscribers"] == 0


def test_prefix_stream_and_counter_totals(make_web):
    web = make_web(heartbeat_s=0.05)
    r = Reader(web.app, "/live/analytics/*", query=f"_key={ADMIN}", headers={})
    r.read_until("open")
    drop(web, "analytics/daily", {"+page_views": 1}, key="2026-02-10")
    drop(web, "analytics/daily", {"+page_views": 1}, key="2026-02-10")
    r.read_until('"page_views":2')
    assert [d["_key"] for _, d in r.events()] == ["2026-02-10", "2026-02-10"]
    r.close()


def test_resume_gets_exactly_the_missed_drops(make_web):
    web = make_web(heartbeat_s=0.05)
    first = [drop(web, "feed", {"i": i})["seq"] for i in range(3)]
    missed = [drop(web, "feed", {"i": i})["seq"] for i in range(3, 8)]
    for how in ({"headers": {"X-Ocean-Key": ADMIN, "Last-Event-ID": str(first[-1])}},
                {"query": f"last_event_id={first[-1]}"}):
        r = Reader(web.app, "/live/feed", **how)
        r.read_until('"i":7')
        assert [s for s, _ in r.events()] == missed
        assert "event: gap" not in r.text
        r.close()


def test_gap_when_resume_point_left_the_history(make_web):
    web = make_web(heartbeat_s=0.05, replay_history=5)
    seqs = [drop(web, "feed", {"i": i})["seq"] for i in range(20)]
    r = Reader(web.app, "/live/feed", headers={"X-Ocean-Key": ADMIN, "Last-Event-ID": str(seqs[0])})
    r.read_until('"i":19')
    assert r.text.index("event: gap") < r.text.index("id: ")
    r.close()


def test_stream_replays_last_n_then_goes_live(make_web):
    web = make_web(heartbeat_s=0.05)
    for i in range(10):
        drop(web, "feed/a", {"i": i})
    r = Reader(web.app, "/stream/feed/*", query="last=3")
    r.read_until('"i":9')
    drop(web, "feed/a", {"i": 10})
    r.read_until('"i":10')
    assert [d["i"] for _, d in r.events()] == [7, 8, 9, 10]
    r.close()


def test_heartbeat_comment_when_idle(make_web):
    web = make_web(heartbeat_s=0.05)
    r = Reader(web.app, "/live/quiet")
    r.read_until(": heartbeat", timeout=2)
    r.close()


def test_slow_consumer_gets_overflow_and_is_disconnected(make_web):
    web = make_web(heartbeat_s=0.05, subscriber_queue=5)
    r = Reader(web.app, "/live/fast")
    r.read_until("open")
    for i in range(20):
        drop(web, "fast", {"i": i})
    r.read_to_end()
    assert "event: overflow" in r.text
    assert web.engine.stats()["subscribers"] == 0 and len(web.app.service.streams) == 0


def test_caps_answer_429(make_web):
    web = make_web(max_sse_per_key=1, max_sse_clients=2)
    a = Reader(web.app, "/live/a")
    b = web.client.simulate_get("/live/a")
    assert b.status_code == 429 and b.json["code"] == "too_many_connections"
    token, _ = web.keys.create(read=["*"])
    c = Reader(web.app, "/live/a", headers={"X-Ocean-Key": token})
    d = web.as_key(ADMIN + "x").simulate_get("/live/a")
    assert d.status_code == 401
    token2, _ = web.keys.create(read=["*"])
    assert web.as_key(token2).simulate_get("/live/a").status_code == 429  # server cap
    a.close()
    c.close()
    assert len(web.app.service.streams) == 0


def test_revoked_key_ends_open_streams(make_web):
    web = make_web(heartbeat_s=0.05)
    web.app.service.streams.check_every = 0.05
    token, rec = web.keys.create(read=["feed"])
    r = Reader(web.app, "/live/feed", headers={"X-Ocean-Key": token})
    r.read_until("open")
    KeyStore(web.settings.data, environ={}).revoke(rec["id"])  # like `ocean key revoke` beside the server
    r.read_to_end(timeout=3)
    assert "event: end" in r.text and "unauthorized" in r.text
    assert web.as_key(token).simulate_get("/entities/feed").status_code == 401


def test_drain_ends_streams_and_refuses_new_ones(make_web):
    web = make_web(heartbeat_s=0.05)
    r = Reader(web.app, "/live/feed")
    r.read_until("open")
    web.app.service.streams.drain()
    r.read_to_end()
    assert "event: end" in r.text
    assert web.client.simulate_get("/live/feed").status_code == 503
    assert web.client.simulate_get("/health").status_code == 503


def test_closing_an_unread_stream_frees_it(web):
    r = Reader(web.app, "/live/x")
    assert len(web.app.service.streams) == 1
    r.close()
    assert len(web.app.service.streams) == 0 and web.engine.stats()["subscribers"] == 0


def test_streams_on_one_prefix_share_a_wake_up_but_not_a_fate(make_web):
    # The subscriptions to one prefix share one bell: a client that goes away, or whose key
    # is revoked, wakes the others, which must carry on as if nothing happened.
    web = make_web(heartbeat_s=0.05)
    web.app.service.streams.check_every = 0.05
    token, rec = web.keys.create(read=["feed"])
    gone, revoked, stays = (Reader(web.app, "/live/feed"), Reader(web.app, "/live/feed", headers={"X-Ocean-Key": token}),
                            Reader(web.app, "/live/feed"))
    for r in (gone, revoked, stays):
        r.read_until("open")
    gone.close()
    KeyStore(web.settings.data, environ={}).revoke(rec["id"])
    revoked.read_to_end(timeout=3)
    assert "unauthorized" in revoked.text
    ack = drop(web, "feed", {"i": 1})
    stays.read_until('"i":1')
    assert [s for s, _ in stays.events()] == [ack["seq"]] and "event:" not in stays.text
    assert web.engine.stats()["subscribers"] == 1 and len(web.app.service.streams) == 1
    stays.close()


def test_heartbeat_reaches_a_busy_stream_too(make_web):
    # One ticker beats for every stream each heartbeat_s, so messages never hold a heartbeat back.
    import threading

    web = make_web(heartbeat_s=0.05)
    r = Reader(web.app, "/live/busy")
    r.read_until("open")
    r.text = ""
    stop = threading.Event()

    def write():
        i = 0
        while not stop.wait(0.005):  # a drop every few ms: never idle for a whole heartbeat_s
            web.engine.drop("busy", {"i": i})
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        r.read_until('"i":0')
        r.text = r.text[r.text.index('"i":0'):]  # from the first message on: the stream is busy
        r.read_until(": heartbeat", timeout=5)
    finally:
        stop.set()
        writer.join()
    r.close()
