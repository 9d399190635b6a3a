"""SSE caps on a real ``ocean serve``: one public read key serves every viewer the server holds;
the per-address cap is what stops one client from taking them all."""
from __future__ import annotations

import json
import os
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from serverproc import Server  # noqa: E402

from ocean.keys import KeyStore
from ocean.settings import BY_NAME

pytestmark = pytest.mark.integration


def _stream(port: int, key: str, source: str = "127.0.0.1", path: str = "/live/site/events"):
    """Open a stream from the loopback address ``source``; ``(socket, status, JSON body or None)``."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    s.sendall(f"GET {path}?_key={key} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, head
        head += chunk
    status = int(head.split(b" ", 2)[1])
    if status == 200:
        return s, status, None
    while not head.rstrip().endswith(b"}"):
        chunk = s.recv(4096)
        assert chunk, head
        head += chunk
    s.close()
    return None, status, json.loads(head.split(b"\r\n\r\n", 1)[1])


def _wait_closed(srv: Server) -> None:
    deadline = time.monotonic() + 10
    while srv.get_json("/health")["sse_clients"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert srv.get_json("/health")["sse_clients"] == 0


def test_the_defaults_let_one_read_key_serve_the_whole_server():
    assert BY_NAME["max_sse_per_key"].default == 0  # no cap of its own: max_sse_clients bounds it
    assert 0 < BY_NAME["max_sse_per_ip"].default <= BY_NAME["max_sse_clients"].default


def test_one_public_read_key_fills_the_server_and_one_address_cannot(tmp_path):
    # the defaults for the per-key cap; a small server so the test opens few sockets
    srv = Server(str(tmp_path / "data"), max_sse_clients=5, max_sse_per_ip=3, heartbeat_s=1).start()
    opened = []
    try:
        public, _ = KeyStore(srv.data, environ={}).create(read=["site/*"], name="page")
        for i in range(3):  # three viewers behind one address: its cap
            s, status, doc = _stream(srv.port, public, "127.0.0.1")
            assert status == 200, doc
            opened.append(s)
        _, status, doc = _stream(srv.port, public, "127.0.0.1")
        assert status == 429 and doc["code"] == "too_many_connections" and "max_sse_per_ip" in doc["error"], doc
        for source in ("127.0.0.2", "127.0.0.3"):  # other viewers, same key: served up to the server's cap
            s, status, doc = _stream(srv.port, public, source)
            assert status == 200, doc
            opened.append(s)
        _, status, doc = _stream(srv.port, public, "127.0.0.4")
        assert status == 429 and "max_sse_clients" in doc["error"], doc
        assert srv.get_json("/health")["sse_clients"] == 5
        opened.pop(0).close()  # a closed stream gives its place back to its address
        deadline = time.monotonic() + 10
        while srv.get_json("/health")["sse_clients"] != 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        s, status, doc = _stream(srv.port, public, "127.0.0.1")
        assert status == 200, doc
        opened.append(s)
    finally:
        for s in opened:
            s.close()
        try:
            _wait_closed(srv)
        finally:
            srv.stop()


def test_max_sse_per_key_still_caps_a_key_when_set(tmp_path):
    srv = Server(str(tmp_path / "data"), max_sse_per_key=1, heartbeat_s=1).start()
    opened = []
    try:
        s, status, doc = _stream(srv.port, srv.key, "127.0.0.1")
        assert status == 200, doc
        opened.append(s)
        _, status, doc = _stream(srv.port, srv.key, "127.0.0.2")
        assert status == 429 and "max_sse_per_key" in doc["error"], doc
    finally:
        for s in opened:
            s.close()
        srv.stop()
