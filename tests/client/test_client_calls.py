"""``ocean.Client`` against a real ``ocean serve``: every call, typed errors, keep-alive, timeouts."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from ocean import Client, errors
from ocean.client import Reply, Rows
from ocean.keys import KeyStore

pytestmark = pytest.mark.integration


def test_every_call_answers(client):
    assert client.incr("shop/daily", "2026-02-10", "page_views") == {"page_views": 1}
    assert client.incr("shop/daily", "2026-02-10", page_views=2, requests=1) == {"page_views": 3, "requests": 1}
    assert client.incr("shop/daily", "2026-02-10", {"POST /drop": 1, "a\"b c": 0.5}) == {"POST /drop": 1,
                                                                                        "a\"b c": 0.5}
    assert client.get("shop/daily", "2026-02-10") == {"page_views": 3, "requests": 1, "POST /drop": 1,
                                                      "a\"b c": 0.5}
    rec = client.entity("shop/daily", "2026-02-10")
    assert rec["route"] == "shop/daily" and rec["key"] == "2026-02-10" and rec["payload"]["page_views"] == 3

    saved = client.save("shop/users", "alice", {"name": "Alice", "age": 30})
    assert saved["route"] == "shop/users" and saved["key"] == "alice" and saved["seq"] > 0
    client.save("shop/users", "alice", {"name": "Alice B."})  # save replaces the plain fields
    assert client.get("shop/users", "alice") == {"name": "Alice B."}
    event = client.drop("shop/events", {"method": "POST", "path": "/drop", "status": 200})
    assert event["key"] is None and event["drop_id"]
    assert client.drop("shop/users", {"+visits": 2}, key="alice")["key"] == "alice"
    assert client.get("shop/users", "alice") == {"name": "Alice B.", "visits": 2}

    batch = client.drops([{"route": "shop/events", "payload": {"n": 1}},
                          {"route": "bad route", "payload": {"n": 2}},
                          {"route": "shop/events", "payload": {"n": 3}}])
    assert [r.ok for r in batch] == [True, False, True]
    assert batch[0].data["route"] == "shop/events" and "ok" not in batch[0].data
    assert isinstance(batch[1].error, errors.InvalidRoute) and batch[1].error.code == "invalid_route"

    results = client.exec("incr shop/daily @2026-02-10 .page_views\n"
                          "-- a comment gives no result\n"
                          "read shop/daily @2026-02-10\n"
                          "sql `SELECT key, page_views FROM \"shop/daily\"`")
    assert [r.ok for r in results] == [True, True, True]
    assert results[0].data == {"page_views": 4} and results[1].value["requests"] == 1
    assert results[2].data == [{"key": "2026-02-10", "page_views": 4}] and results[2].columns == ["key", "page_views"]

    rows = client.sql('SELECT key AS date, page_views FROM "shop/daily" ORDER BY key DESC LIMIT 7')
    assert isinstance(rows, Rows) and rows == [{"date": "2026-02-10", "page_views": 4}]
    assert rows.columns == ["date", "page_views"]
    empty = client.sql('SELECT key, page_views FROM "shop/daily" WHERE page_views > 1000')
    assert empty == [] and empty.columns == ["key", "page_views"]

    assert client.remove("shop/users", "alice")["removed"] is True
    with pytest.raises(errors.NotFound):
        client.get("shop/users", "alice")
    assert client.health()["ok"] is True


def test_url_and_key_come_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("OCEAN_URL", server.url)
    monkeypatch.setenv("OCEAN_KEY", server.key)
    with Client() as c:
        assert c.url == server.url and c.incr("env/daily", "d", "n") == {"n": 1}
    monkeypatch.delenv("OCEAN_URL")
    assert Client().url == "http://127.0.0.1:8080"
    assert Client(server.url, key="explicit").key == "explicit"
    for bad in ("127.0.0.1:8080", "ftp://host", "http://127.0.0.1:99999", "http://host:port"):
        with pytest.raises(ValueError):
            Client(bad)


def test_errors_are_typed_and_carry_the_servers_code(server, client):
    with pytest.raises(errors.Unauthorized) as e:
        Client(server.url, key="").get("shop/daily", "2026-02-10")  # "": no key, whatever OCEAN_KEY says
    assert e.value.code == "unauthorized" and e.value.status == 401 and "key" in e.value.message
    with pytest.raises(errors.Unauthorized):
        Client(server.url, key="not-a-key").get("shop/daily", "2026-02-10")

    token, _ = KeyStore(server.data).create(name="client-ro", read=["shop/*"])
    ro = Client(server.url, key=token)
    ro.sql('SELECT key FROM "shop/daily"')  # reading is allowed
    with pytest.raises(errors.Forbidden) as e:
        ro.drop("shop/events", {"n": 1})
    assert e.value.code == "forbidden" and e.value.status == 403
    with pytest.raises(errors.Forbidden):
        ro.incr("shop/daily", "2026-02-10", "page_views")  # a per-command error, raised by incr

    with pytest.raises(errors.NotFound) as e:
        client.get("shop/daily", "1999-01-01")
    assert e.value.code == "not_found" and e.value.status == 404

    with pytest.raises(errors.ParseError) as e:
        client.sql("SELECT key FROM\n  WHERE")
    assert e.value.code == "parse_error" and (e.value.line, e.value.column) == (2, 3)

    results = client.exec("read shop/daily @2026-02-10\nget shop/daily @x junk (")
    assert results[0].ok and isinstance(results[1].error, errors.ParseError)
    assert (results[1].error.line, results[1].error.column) == (2, 19)
    with pytest.raises(errors.ParseError) as e:
        client.exec("read shop/daily @2026-02-10\nget shop/daily @x junk (", check=True)
    assert e.value.line == 2
    with pytest.raises(errors.ParseError):
        results[1].value


def test_routes_keys_and_amounts_are_checked_before_sending(client):
    before = client._conn.opened
    with pytest.raises(errors.InvalidKey):
        client.incr("shop/daily", "x\nremove shop/users @alice", "n")  # no way into the script
    with pytest.raises(errors.InvalidRoute):
        client.incr("shop daily", "k", "n")
    with pytest.raises(errors.InvalidAmount):
        client.incr("shop/daily", "k", n=float("nan"))
    with pytest.raises(errors.InvalidAmount):
        client.incr("shop/daily", "k", n=True)
    with pytest.raises(errors.InvalidField):
        client.incr("shop/daily", "k")
    with pytest.raises(errors.InvalidKey):
        client.get("shop/daily", "../../exec")
    assert client._conn.opened == before


def _server_side_peers(port: int) -> set[int]:
    """Remote ports of ESTABLISHED connections to 127.0.0.1:``port``, as the kernel lists them."""
    peers = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            local, remote, state = line.split()[1:4]
            if state == "01" and int(local.split(":")[1], 16) == port:
                peers.add(int(remote.split(":")[1], 16))
    return peers


def test_keep_alive_one_connection_for_many_calls(server):
    c = Client(server.url, key=server.key)
    c.incr("ka/daily", "d", "n")
    first = c._conn.local_address()
    for i in range(50):
        c.incr("ka/daily", "d", "n")
        c.get("ka/daily", "d")
        assert c._conn.local_address() == first
    assert c.sql('SELECT n FROM "ka/daily"') == [{"n": 51}]
    assert c._conn.opened == 1
    assert first[1] in _server_side_peers(server.port)  # the server holds that one connection
    c.close()


def test_a_keep_alive_connection_the_server_closed_is_reopened(server):
    c = Client(server.url, key=server.key)
    c.incr("ka/idle", "d", "n")
    time.sleep(2.6)  # gunicorn closes a keep-alive connection idle for 2 s (keepalive = 2)
    assert c.incr("ka/idle", "d", "n") == {"n": 2}  # counted once: the closed connection never saw it
    assert c._conn.opened == 2
    c.close()


def test_a_server_restart_between_calls(make_server):
    srv = make_server()
    c = Client(srv.url, key=srv.key)
    assert c.incr("rs/daily", "d", "n") == {"n": 1}
    srv.stop()
    with pytest.raises(errors.Unreachable) as e:
        c.get("rs/daily", "d")
    assert e.value.code == "unreachable" and srv.url in e.value.message
    make_server(port=srv.port)
    assert c.incr("rs/daily", "d", "n") == {"n": 2}
    c.close()


def test_timeouts_and_unreachable_servers():
    """A listener that accepts and never answers: ClientTimeout; a closed port: Unreachable."""
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(4)
        port = lsock.getsockname()[1]
        c = Client(f"http://127.0.0.1:{port}", key="k", timeout=0.3)
        t0 = time.monotonic()
        with pytest.raises(errors.ClientTimeout) as e:
            c.sql("SELECT 1")
        assert 0.25 < time.monotonic() - t0 < 3 and e.value.code == "timeout"
        assert isinstance(e.value, errors.ClientError)
        lsock.close()
    with pytest.raises(errors.Unreachable) as e:
        Client(f"http://127.0.0.1:{port}", timeout=1).health()
    assert isinstance(e.value, errors.ClientError) and e.value.code == "unreachable"


def test_the_raw_request_the_cli_needs(server):
    c = Client(server.url, key=server.key)
    reply = c.request("POST", "/exec", "incr cli2/daily @d .n 2\nget cli2/daily @missing")
    assert isinstance(reply, Reply) and reply.status == 200 and reply.ok
    assert reply.body.startswith(b"[") and reply.json()[0] == {"ok": True, "data": {"n": 2}}
    assert reply.json()[1]["code"] == "not_found"
    reply = c.request("POST", "/sql", "SELEC")
    assert reply.status == 400 and reply.json()["code"] == "parse_error"
    assert isinstance(reply.error(), errors.ParseError)
    reply = Client(server.url).request("POST", "/sql", "SELECT 1")  # no key: a reply, not an exception
    assert reply.status == 401 and reply.json()["code"] == "unauthorized"
    text = c.request("GET", "/metrics")
    assert text.status == 200 and text.json()["code"] == "http_200"  # not JSON: described, never raised


def test_one_client_shared_by_threads(server):
    c = Client(server.url, key=server.key)
    failures = []

    def work():
        try:
            for _ in range(20):
                c.incr("threads/daily", "d", "n")
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert failures == [] and c.get("threads/daily", "d") == {"n": 80}
    assert c._conn.opened == 1


def test_uniq_and_observe_answer_estimates_and_summaries(client):
    assert client.uniq("shop/daily", "2026-02-11", visitors="u-1") == {"visitors": 1}
    assert client.uniq("shop/daily", "2026-02-11", {"visitors": ["u-1", "u-2", 7], "a\"b c": "x"}) == {
        "visitors": 3, "a\"b c": 1}
    ms = client.observe("shop/daily", "2026-02-11", ms=[12.5, 40, [3, 2]])["ms"]
    assert ms["count"] == 4 and ms["min"] == 3 and ms["max"] == 40 and ms["sum"] == 58.5
    assert client.get("shop/daily", "2026-02-11")["visitors"] == 3
    with pytest.raises(errors.NotASketch):
        client.observe("shop/daily", "2026-02-11", visitors=1)
    with pytest.raises(errors.InvalidAmount):
        client.uniq("shop/daily", "2026-02-11", visitors=1.5)
    with pytest.raises(errors.InvalidAmount):
        client.observe("shop/daily", "2026-02-11", ms=float("nan"))  # refused before sending
    with pytest.raises(errors.InvalidField):
        client.uniq("shop/daily", "2026-02-11")
