"""Concurrency against a real server: 1000 concurrent HTTP increments lose none."""
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

pytestmark = pytest.mark.integration


def _raw_post(server, path, body: bytes, ctype="text/plain") -> bytes:
    """One request on its own connection (so the 1000 really are concurrent sockets)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Ocean-Key: {server.key}\r\nContent-Type: {ctype}\r\n"
                  f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def test_1000_concurrent_increments_lose_none(server):
    script = b"incr load/daily @2026-02-10 .page_views"
    drop = b'{"route": "load/daily", "key": "2026-02-10", "payload": {"+requests": 1}}'
    with ThreadPoolExecutor(max_workers=200) as pool:
        jobs = [pool.submit(_raw_post, server, "/exec", script) for _ in range(1000)]
        jobs += [pool.submit(_raw_post, server, "/drop", drop, "application/json") for _ in range(1000)]
        answers = [j.result() for j in jobs]
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers)
    ent = requests.get(server.url + "/entity/load/daily/2026-02-10", headers={"X-Ocean-Key": server.key}).json()
    assert ent["payload"] == {"page_views": 1000, "requests": 1000}


def test_bad_input_never_stops_the_server(server):
    cases = [(b"\xff\xfe", "text/plain", "/exec"), (b"{", "application/json", "/drop"),
             (b"x", "image/png", "/drop"), (b"[1, 2]", "application/json", "/drop")]
    for body, ctype, path in cases:
        answer = _raw_post(server, path, body, ctype)
        assert not answer.startswith(b"HTTP/1.1 5"), answer
        assert b"Traceback" not in answer
    assert requests.get(server.url + "/health").json()["ok"] is True
