"""``Client.stream`` against a real ``ocean serve``: resume across restarts, gap, overflow, keys."""
from __future__ import annotations

import socket

import pytest

from ocean import Client, errors
from ocean.client import End, Gap, Message, Overflow
from ocean.keys import KeyStore

pytestmark = pytest.mark.integration


def _ns(collector):
    return [m.data["n"] for m in collector.messages()]


def _ids(collector):
    return [int(m.id) for m in collector.messages()]


def test_messages_arrive_typed(server, collect):
    c = Client(server.url, key=server.key)
    stream = c.stream("typed/*")
    got = collect(stream)
    c.drop("typed/events", {"method": "POST", "path": "/drop", "status": 200})
    c.incr("typed/daily", "d", page_views=2)
    assert got.wait_for(lambda g: len(g.messages()) == 2), got.items
    ev, inc = got.messages()
    assert isinstance(ev, Message) and ev.route == "typed/events" and ev.key is None and ev.data["path"] == "/drop"
    assert inc.route == "typed/daily" and inc.key == "d" and inc.data["page_views"] == 2
    assert inc.seq > ev.seq and stream.last_event_id == inc.id


def test_resume_across_a_server_restart_loses_and_repeats_nothing(make_server, collect):
    # accounting off: its writes between the last drop and the stop would put the resume point
    # behind the restarted server's (empty) replay history, which it reports as a gap.
    srv = make_server(heartbeat_s=1, accounting=False)
    c = Client(srv.url, key=srv.key)
    stream = c.stream("rs/*", idle_timeout=5, backoff=0.05)
    got = collect(stream)
    c.drops([{"route": "rs/events", "payload": {"n": i}} for i in range(10)], check=True)
    assert got.wait_for(lambda g: len(g.messages()) == 10), got.items
    srv.stop()  # SIGTERM: the stream gets `event: end`, then the port closes
    assert got.wait_for(lambda g: any(isinstance(i, End) for i in g.items))
    srv = make_server(port=srv.port, heartbeat_s=1, accounting=False)  # same data, same port
    for i in range(10, 20):  # some of these are written before the stream is back: replayed
        c.drop("rs/events", {"n": i})
    assert got.wait_for(lambda g: len(g.messages()) >= 20), (got.items, got.error)
    assert _ns(got) == list(range(20))
    ids = _ids(got)
    assert ids == sorted(set(ids))
    assert not any(isinstance(i, Gap) for i in got.items) and got.error is None
    assert stream.reconnects >= 1


def test_gap_when_the_resume_point_is_older_than_the_replay_history(make_server, collect):
    srv = make_server(replay_history=5, accounting=False)
    c = Client(srv.url, key=srv.key)
    seqs = [r.data["seq"] for r in c.drops([{"route": "gap/events", "payload": {"n": i}} for i in range(20)],
                                           check=True)]
    got = collect(c.stream("gap/*", last_event_id=seqs[0]))
    assert got.wait_for(lambda g: len(g.messages()) == 5), got.items
    assert isinstance(got.items[0], Gap) and "missed" in got.items[0].data["reason"]
    assert _ns(got) == list(range(15, 20))
    # resuming from inside the history: no gap, exactly what followed
    again = collect(c.stream("gap/*", last_event_id=seqs[17]))
    assert again.wait_for(lambda g: len(g.messages()) == 2)
    assert _ns(again) == [18, 19] and not any(isinstance(i, Gap) for i in again.items)


def test_overflow_is_surfaced_and_the_stream_resumes_without_loss(make_server, collect):
    srv = make_server(subscriber_queue=2, accounting=False)
    c = Client(srv.url, key=srv.key)
    stream = c.stream("of/*", backoff=0.05)
    got = collect(stream)
    c.drop("of/events", {"n": -1})
    assert got.wait_for(lambda g: len(g.messages()) == 1)  # the subscription is in place
    c.drops([{"route": "of/events", "payload": {"n": i}} for i in range(200)], check=True)  # one burst
    assert got.wait_for(lambda g: len(g.messages()) >= 201), (len(got.messages()), got.error)
    assert any(isinstance(i, Overflow) for i in got.items)
    assert _ns(got) == [-1] + list(range(200))
    assert stream.reconnects >= 1


def test_a_revoked_key_ends_the_stream_with_unauthorized(server, collect):
    token, rec = KeyStore(server.data).create(name="stream-short", read=["rv/*"])
    c = Client(server.url, key=token)
    got = collect(c.stream("rv/*"))
    Client(server.url, key=server.key).drop("rv/events", {"n": 1})
    assert got.wait_for(lambda g: len(g.messages()) == 1)
    KeyStore(server.data).revoke(rec["id"])
    assert got.wait_for(lambda g: g.error is not None, timeout=10), got.items
    ends = [i for i in got.items if isinstance(i, End)]
    assert ends and ends[0].code == "unauthorized"
    assert isinstance(got.error, errors.Unauthorized)


def test_a_key_without_read_access_fails_at_once(server):
    token, _ = KeyStore(server.data).create(name="stream-other", read=["elsewhere/*"])
    with pytest.raises(errors.Forbidden) as e:
        Client(server.url, key=token).stream("rv/*")  # refused when opened, before any iteration
    assert e.value.status == 403
    with pytest.raises(errors.Unauthorized):
        Client(server.url, key="not-a-key").stream("rv/*")
    with pytest.raises(errors.InvalidRoute):
        Client(server.url, key=server.key).stream("bad prefix")


def test_retries_are_bounded():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(errors.Unreachable):
        Client(f"http://127.0.0.1:{port}", key="k", timeout=1).stream("x/*", retries=2, backoff=0.01)
