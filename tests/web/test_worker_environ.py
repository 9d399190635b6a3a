"""The WSGI environ and answers ``OceanWorker``'s connection handler makes, in-process.

A ``Connection`` serves one end of a socketpair in a thread, calling a small WSGI
app that echoes what it was given; the test writes raw bytes to the other end.
This pins what a real server would only show indirectly: which peers may set the
scheme (``forwarded_allow_ips``), how paths, queries and repeated headers map, and
that an app that fails gets a 500 in ocean's error shape, never a traceback.
"""
import itertools
import json
import socket
import sys
import threading

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from ocean.web.worker import Connection, OceanWorker
from rawhttp import Conn


def echo_app(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("a bug in the app")
    if environ["PATH_INFO"] == "/silent":
        return [b"no start_response"]
    if environ["PATH_INFO"] == "/bare":
        start_response("200 OK", [])
        return [b"bare"]
    if environ["PATH_INFO"] == "/split":
        start_response("200 OK", [("X-A", "1\r\nSet-Cookie: x=1")])
        return [b""]
    if environ["PATH_INFO"] == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"a", b"", b"bc"])
    if environ["PATH_INFO"] == "/endless":
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return itertools.repeat(b"data: x\n\n")
    body = environ["wsgi.input"].read()
    doc = {k: v for k, v in environ.items() if isinstance(v, str)}
    doc["body"] = body.decode("latin-1")
    data = json.dumps(doc).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def make_worker(**settings):
    cfg = Config()
    for name, value in settings.items():
        cfg.set(name, value)
    w = object.__new__(OceanWorker)
    w.cfg, w.log = cfg, Logger(cfg)
    w.setup_http()
    w.wsgi, w.nr, w.max_requests, w.alive = echo_app, 0, sys.maxsize, True
    return w


class Peer:
    """A served socketpair: ``send`` raw bytes, read answers with ``conn``."""

    def __init__(self, worker, addr=("10.1.2.3", 4567)):
        a, b = socket.socketpair()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self._serve, args=(worker, listener, a, addr), daemon=True)
        self.thread.start()
        self.conn = Conn.__new__(Conn)
        self.conn.sock, self.conn.buf, self.conn.timeout = b, b"", 5.0
        self.listener = listener

    @staticmethod
    def _serve(worker, listener, sock, addr):
        try:
            Connection(worker, listener, sock, addr).serve()
        finally:
            sock.close()

    def ask(self, raw: bytes):
        self.conn.send(raw)
        return self.conn.response()

    def close(self):
        self.conn.close()
        self.thread.join(5)
        self.listener.close()
        assert not self.thread.is_alive()


@pytest.fixture
def peer():
    made = []

    def make(addr=("10.1.2.3", 4567), **settings):
        p = Peer(make_worker(**settings), addr)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def _env(answer):
    assert answer[0] == 200, answer
    return json.loads(answer[2])


def test_path_query_and_headers_map_as_gunicorn_maps_them(peer):
    p = peer()
    env = _env(p.ask(b"GET /a%20b/%2Fc?x=1&y=%20#frag HTTP/1.1\r\nHost: h:81\r\nX-A: 1\r\nx-a: 2\r\n"
                     b"Content-Type: text/plain\r\n\r\n"))
    assert env["PATH_INFO"] == "/a b//c" and env["QUERY_STRING"] == "x=1&y=%20"
    assert env["RAW_URI"] == "/a%20b/%2Fc?x=1&y=%20#frag"
    assert env["HTTP_X_A"] == "1,2" and env["HTTP_HOST"] == "h:81" and env["CONTENT_TYPE"] == "text/plain"
    assert env["REQUEST_METHOD"] == "GET" and env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "10.1.2.3" and env["REMOTE_PORT"] == "4567"
    assert env["wsgi.url_scheme"] == "http" and env["SCRIPT_NAME"] == ""


def test_absolute_form_targets_are_read_for_their_path(peer):
    env = _env(peer().ask(b"GET http://example.com:8080/p/q?z=9 HTTP/1.1\r\nHost: example.com\r\n\r\n"))
    assert env["PATH_INFO"] == "/p/q" and env["QUERY_STRING"] == "z=9"


def test_an_untrusted_peer_cannot_set_the_scheme(peer):
    env = _env(peer().ask(b"GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\n\r\n"))  # 10.1.2.3: not trusted
    assert env["wsgi.url_scheme"] == "http"


def test_a_trusted_proxy_sets_the_scheme(peer):
    p = peer(forwarded_allow_ips="10.1.2.0/24")
    assert _env(p.ask(b"GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\n\r\n"))["wsgi.url_scheme"] == "https"
    assert _env(p.ask(b"GET / HTTP/1.1\r\nX-Forwarded-Proto: http\r\n\r\n"))["wsgi.url_scheme"] == "http"
    status, _, body = p.ask(b"GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n\r\n")
    assert status == 400 and json.loads(body)["code"] == "bad_request"


def test_secure_scheme_headers_are_configurable(peer):
    p = peer(forwarded_allow_ips="*", secure_scheme_headers={"X-Scheme": "https"})
    env = _env(p.ask(b"GET / HTTP/1.1\r\nX-Scheme: https\r\nX-Forwarded-Proto: http\r\n\r\n"))
    assert env["wsgi.url_scheme"] == "https"


def test_bodies_reach_the_app_whole(peer):
    p = peer()
    assert _env(p.ask(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"))["body"] == "hello"
    assert _env(p.ask(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nTrailer: x\r\n\r\n"))["body"] == "hello"


def test_a_failing_app_gets_a_500_in_oceans_shape_and_no_traceback(peer):
    p = peer()
    status, headers, body = p.ask(b"GET /boom HTTP/1.1\r\n\r\n")
    assert status == 500 and headers["connection"] == "close"
    assert json.loads(body) == {"ok": False, "error": "internal server error", "code": "error"}
    assert b"Traceback" not in body


def test_an_app_that_never_starts_a_response_gets_a_500(peer):
    status, _, body = peer().ask(b"GET /silent HTTP/1.1\r\n\r\n")
    assert status == 500 and json.loads(body)["ok"] is False


def test_a_streamed_answer_is_chunked_and_skips_empty_chunks(peer):
    status, headers, body = peer().ask(b"GET /stream HTTP/1.1\r\n\r\n")
    assert status == 200 and headers["transfer-encoding"] == "chunked" and body == b"abc"


def test_keep_alive_off_closes_after_each_answer(peer):
    p = peer(keepalive=0)
    status, headers, _ = p.ask(b"GET / HTTP/1.1\r\n\r\n")
    assert status == 200 and headers["connection"] == "close"
    assert p.conn.closed(2.0)


def test_an_answer_without_headers_gets_its_length(peer):
    status, headers, body = peer().ask(b"GET /bare HTTP/1.1\r\n\r\n")
    assert status == 200 and headers["content-length"] == "4" and body == b"bare"


def test_a_header_value_with_a_line_break_is_never_sent(peer):
    status, headers, body = peer().ask(b"GET /split HTTP/1.1\r\n\r\n")
    assert status == 500 and "set-cookie" not in headers


def test_head_of_an_endless_stream_answers_at_once(peer):
    p = peer()
    status, headers, body = p.conn.send(b"HEAD /endless HTTP/1.1\r\n\r\n") or p.conn.response(head_only=True)
    assert status == 200 and "transfer-encoding" not in headers
    assert p.ask(b"GET / HTTP/1.1\r\n\r\n")[0] == 200  # and the connection goes on
