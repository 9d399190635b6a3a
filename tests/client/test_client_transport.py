"""The client's transport and stream against scripted servers: what a real one rarely does on cue."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from ocean import Client, errors
from ocean.client import Gap, Message, transport


class Scripted:
    """A one-thread HTTP server on 127.0.0.1: ``handle(conn, request_bytes, n)`` answers each request."""

    def __init__(self, handle):
        self.handle = handle
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn):
        with conn:
            conn.settimeout(5)
            buf = b""
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    self.requests.append(head)
                    if self.handle(conn, head, len(self.requests)) == "close":
                        return

    def close(self):
        self._stop.set()
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def scripted():
    made = []

    def make(handle):
        s = Scripted(handle)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def _json(conn, body: bytes, status: str = "200 OK"):
    conn.sendall(b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def test_a_reused_connection_reset_before_the_answer_is_resent_once(scripted, monkeypatch):
    """The server closes a kept-alive connection just as the next request goes out."""
    def handle(conn, head, n):
        _json(conn, b'{"ok": true, "n": %d}' % n)
        return "close"  # keep-alive announced, then closed: the next request meets a dead socket

    srv = scripted(handle)
    monkeypatch.setattr(transport, "_idle_closed", lambda sock: False)  # the close is not seen before sending
    c = Client(srv.url, key="k")
    assert c.call("GET", "/health") == {"ok": True, "n": 1}
    time.sleep(0.1)  # the server's FIN has arrived
    assert c.call("GET", "/health") == {"ok": True, "n": 2}  # resent on a new connection, counted once
    assert len(srv.requests) == 2 and srv.connections == 2 and c._conn.opened == 2


def test_a_fresh_connection_dropped_before_the_answer_is_not_resent(scripted):
    srv = scripted(lambda conn, head, n: "close")  # reads the request, closes without a word
    with pytest.raises(errors.Unreachable) as e:
        Client(srv.url, key="k").call("POST", "/exec", "incr a/b @k .n")
    assert "dropped the connection" in e.value.message
    assert len(srv.requests) == 1  # the call may have run: never sent twice


def test_a_non_json_error_page_is_described_with_its_status(scripted):
    def handle(conn, head, n):
        body = b"<html>bad gateway</html>"
        conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)

    srv = scripted(handle)
    with pytest.raises(errors.OceanError) as e:
        Client(srv.url, key="k").sql("SELECT 1")
    assert e.value.code == "http_502" and e.value.status == 502 and "bad gateway" in e.value.message


def test_a_silent_stream_is_reopened_after_idle_timeout_with_last_event_id(scripted):
    def handle(conn, head, n):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        if n == 1:
            conn.sendall(b"retry: 3000\n: open\n\nid: 7\ndata: {\"n\": 1}\n\n")  # then silence
            time.sleep(3)
            return "close"
        conn.sendall(b"event: gap\ndata: {\"reason\": \"missed\"}\n\nid: 9\ndata: {\"n\": 2,\n")  # torn: dropped
        return "close"

    srv = scripted(handle)
    stream = Client(srv.url, key="k").stream("a/*", idle_timeout=0.5, backoff=0.01, retries=1)
    got = [next(stream), next(stream)]
    assert got == [Message("7", {"n": 1}), Gap(None, {"reason": "missed"})]
    assert b"last-event-id: 7" in srv.requests[1].lower()
    assert stream.reconnects == 1
    stream.close()
