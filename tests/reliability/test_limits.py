"""Resource limits: each exists as a setting, is documented, and is enforced with a clear error.

One real server runs with every limit set small; each test hits one limit
and checks the status, the catalog code and that the message names the setting.
"""
import json
import os
import socket
import time

import pytest

from ocean.settings import BY_NAME, markdown_table
from probes import Client
from serverproc import Server

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIMITS = dict(max_body_bytes=65536, max_script_bytes=1024, max_payload_bytes=512, max_batch=1000,
              sql_max_rows=10, sql_time_limit_ms=1, max_sse_clients=3, max_sse_per_key=2)


def test_every_limit_is_a_documented_setting():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert markdown_table() in readme  # the README's table is generated from settings.py
    with open(os.path.join(ROOT, "docs", "http.md"), encoding="utf-8") as f:
        http_doc = f.read()
    for name in LIMITS:
        assert name in BY_NAME and BY_NAME[name].help
        assert f"| `{name}` |" in readme, name
    for name in ("max_body_bytes", "max_script_bytes", "max_batch", "max_sse_clients", "max_sse_per_key"):
        assert name in http_doc, name


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    srv = Server(str(tmp_path_factory.mktemp("limits") / "data"), heartbeat_s=1, **LIMITS).start()
    yield srv
    srv.stop()


def _limited(status, doc, want_status, code, setting):
    assert status == want_status, doc
    assert doc["ok"] is False and doc["code"] == code, doc
    assert setting in doc["error"], doc  # the message says which setting to raise


def test_max_body_bytes(served):
    c = Client(served.port)
    for path in ("/exec", "/sql", "/drop"):
        status, doc = c.json("POST", path, "x" * 65537)
        _limited(status, doc, 413, "too_large", "max_body_bytes")
    # declared too large: refused before the body is read
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as s:
        s.sendall(f"POST /drop HTTP/1.1\r\nHost: x\r\nX-Ocean-Key: {served.key}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {1 << 30}\r\n\r\n".encode())
        answer = b""
        while not answer.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b"max_body_bytes" in answer


def test_a_chunked_text_body_is_read_whole(served):
    # no Content-Length: http.client sends the iterable chunked; the whole script runs
    parts = iter([b"incr chunked/t @k .n\n", b"incr chunked/t @k .n 2\n"])
    status, doc = Client(served.port).json("POST", "/exec", parts, {"Content-Type": "text/plain"})
    assert status == 200 and [r["data"]["n"] for r in doc] == [1, 3], doc
    drops = iter([b'[{"route": "chunked/d", "key": "k", ', b'"payload": {"+n": 5}}]'])
    status, doc = Client(served.port).json("POST", "/drop", drops, {"Content-Type": "application/json"})
    assert status == 200 and doc[0]["ok"], doc
    status, doc = Client(served.port).json("POST", "/exec", iter([b"x" * 40000, b"x" * 40000]),
                                           {"Content-Type": "text/plain"})
    assert status == 413 and doc["code"] == "too_large", doc  # the limit holds without a length too
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as s:
        s.sendall(f"POST /exec HTTP/1.1\r\nHost: x\r\nX-Ocean-Key: {served.key}\r\nContent-Type: text/plain\r\n"
                  "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".encode())
        answer = b""
        while (chunk := s.recv(65536)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and b'"code":"bad_request"' in answer, answer


def test_max_script_bytes(served):
    status, doc = Client(served.port).json("POST", "/exec", "count l/x\n" * 200)
    _limited(status, doc, 413, "script_too_large", "max_script_bytes")


def test_max_payload_bytes(served):
    c = Client(served.port)
    status, doc = c.json("POST", "/drop", {"route": "l/p", "key": "k", "payload": {"s": "x" * 600}})
    _limited(status, doc, 413, "too_large", "max_payload_bytes")
    status, doc = c.json("POST", "/exec", 'save l/p @k s: "' + "x" * 600 + '"')
    assert status == 200 and doc[0]["code"] == "too_large" and "max_payload_bytes" in doc[0]["error"]
    assert c.json("GET", "/entity/l/p/k")[0] == 404  # nothing was written


def test_max_batch(served):
    c = Client(served.port)
    status, doc = c.json("POST", "/drop", [{"route": "l/b", "payload": i} for i in range(1001)])
    _limited(status, doc, 413, "too_large", "max_batch")
    status, doc = c.json("POST", "/drop", [{"route": "l/b", "payload": i} for i in range(1000)])
    assert status == 200 and len(doc) == 1000


def _fill(c, n=20000):
    for start in range(0, n, 500):
        docs = [{"route": "l/big", "payload": {"i": i, "g": i % 97, "s": f"v{i % 1013}"}} for i in range(start, start + 500)]
        assert c.json("POST", "/drop", docs)[0] == 200


def test_sql_max_rows(tmp_path):
    # Its own server: under the module's 1 ms sql_time_limit_ms, a busy machine could stop the
    # queries meant to pass (or to hit the row cap) on time instead (a race, seen on 2 loaded cores).
    with Server(str(tmp_path / "data"), **dict(LIMITS, sql_time_limit_ms=5000)) as served:
        _sql_max_rows(served)


def _sql_max_rows(served):
    c = Client(served.port)
    _fill(c)
    status, doc = c.json("POST", "/sql", 'SELECT i FROM "l/big" LIMIT 11')
    _limited(status, doc, 400, "query_limit", "sql_max_rows")
    status, doc = c.json("POST", "/sql", 'SELECT i FROM "l/big" ORDER BY i LIMIT 10')
    assert status == 200 and len(doc["rows"]) == 10
    status, doc = c.json("POST", "/exec", 'sql `SELECT i FROM "l/big"`')
    assert doc[0]["code"] == "query_limit" and "sql_max_rows" in doc[0]["error"]


def test_sql_time_limit_ms(served):
    c = Client(served.port)
    if c.json("POST", "/sql", 'SELECT count(*) AS n FROM "l/big"')[1].get("rows") != [{"n": 20000}]:
        _fill(c)
    slow = ('SELECT s, count(*) AS n, sum(i), avg(i), min(upper(s)), max(length(s)) FROM "l/big" '
            "WHERE s LIKE '%1%' OR i % 3 = 0 GROUP BY s ORDER BY n DESC, s LIMIT 5")
    status, doc = c.json("POST", "/sql", slow)
    _limited(status, doc, 400, "query_limit", "sql_time_limit_ms")
    assert c.json("GET", "/health")[0] == 200


def _stream(port, key, path="/live/l/feed"):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Ocean-Key: {key}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    if not head.startswith(b"HTTP/1.1 200"):
        while not head.rstrip().endswith(b"}"):
            head += s.recv(4096)
    return s, head


def test_max_sse_per_key_and_max_sse_clients(served, tmp_path):
    from ocean.keys import KeyStore

    other, _ = KeyStore(served.data, environ={}).create(read=["l/*"])
    third, _ = KeyStore(served.data, environ={}).create(read=["l/*"])
    opened = []
    try:
        for _ in range(2):
            s, head = _stream(served.port, served.key)
            assert head.startswith(b"HTTP/1.1 200")
            opened.append(s)
        s, head = _stream(served.port, served.key)
        s.close()
        assert head.startswith(b"HTTP/1.1 429"), head
        doc = json.loads(head.split(b"\r\n\r\n", 1)[1])
        assert doc["code"] == "too_many_connections" and "max_sse_per_key" in doc["error"]
        s, head = _stream(served.port, other)
        assert head.startswith(b"HTTP/1.1 200")
        opened.append(s)
        s, head = _stream(served.port, third)  # a fresh key, but the server holds its 3
        s.close()
        assert head.startswith(b"HTTP/1.1 429"), head
        doc = json.loads(head.split(b"\r\n\r\n", 1)[1])
        assert doc["code"] == "too_many_connections" and "max_sse_clients" in doc["error"]
        assert Client(served.port).json("GET", "/entity/l/none/k")[0] == 404  # plain requests still served
    finally:
        for s in opened:
            s.close()
    deadline = time.monotonic() + 10  # closed streams give their places back
    while Client(served.port).json("GET", "/health")[1]["sse_clients"] and time.monotonic() < deadline:
        time.sleep(0.2)
    s, head = _stream(served.port, third)
    s.close()
    assert head.startswith(b"HTTP/1.1 200"), head
