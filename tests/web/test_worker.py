"""The HTTP/1.1 behaviours ocean relies on, against a real ``ocean serve`` under both workers.

``ocean`` is ocean's own worker (``ocean.web.worker.OceanWorker``, the default) and
``gevent`` gunicorn's stock one (the fallback): each test runs against both, from
raw sockets, so the parser-level cases (smuggling, bad chunks, floods, slowloris,
absurd lines) reach the server byte for byte. Every loop has a deadline.
"""
import json
import os
import select
import sys
import time

import pytest

from rawhttp import Closed, Conn, exchange, request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from serverproc import Server  # noqa: E402

pytestmark = pytest.mark.integration

WORKERS = ("ocean", "gevent")
LIMIT = 100_000  # max_body_bytes of these servers


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    started = {}
    try:
        for wc in WORKERS:
            base = tmp_path_factory.mktemp(f"worker-{wc}")
            started[wc] = Server(str(base / "data"), worker_class=wc, max_body_bytes=LIMIT,
                                 heartbeat_s=1).start()
        yield started
    finally:
        for srv in started.values():
            srv.stop()


@pytest.fixture(params=WORKERS)
def srv(request, servers):
    s = servers[request.param]
    yield s
    # whatever a test sent, the same worker still answers
    assert s.get_json("/health")["ok"]


def ours(srv) -> bool:
    return srv.settings.get("worker_class") == "ocean"


def _exec(srv, script: bytes, **kw) -> bytes:
    return request("POST", "/exec", srv.key, script, **kw)


def _doc(answer):
    return json.loads(answer[2])


def test_the_default_worker_is_oceans(servers):
    from ocean.settings import Settings

    assert Settings.load(environ={}).worker_class == "ocean"
    assert "Using worker: ocean.web.worker.OceanWorker" in servers["ocean"].log()
    assert "Using worker: gevent" in servers["gevent"].log()


def test_keep_alive_serves_many_requests_on_one_connection(srv):
    with Conn(srv.port) as c:
        for i in range(1, 51):
            c.send(_exec(srv, b"incr worker/ka @one .n"))
            status, headers, body = c.response()
            assert status == 200 and headers["connection"] == "keep-alive", (status, headers)
        assert json.loads(body)[0]["data"]["n"] >= 50


def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_seconds(srv):
    with Conn(srv.port) as c:
        c.send(request("GET", "/health"))
        assert c.response()[0] == 200
        t0 = time.monotonic()
        assert c.closed(timeout=8.0)
        assert 1.0 <= time.monotonic() - t0 <= 5.0


def test_slowloris_a_head_sent_byte_by_byte_is_cut(srv):
    with Conn(srv.port) as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        t0 = time.monotonic()
        cut = False
        for i in range(40):  # a header line every 0.2 s, for at most 8 s
            try:
                c.send(b"X-Slow-%d: 1\r\n" % i)
            except (BrokenPipeError, ConnectionResetError):
                cut = True
                break
            if c.closed(timeout=0.2):
                cut = True
                break
        assert cut and time.monotonic() - t0 <= 6.0


def test_pipelined_requests_are_answered_in_order(srv):
    raw = (request("GET", "/health") + _exec(srv, b"incr worker/pipe @k .n 5")
           + request("GET", "/entity/worker/pipe/k", srv.key) + request("GET", "/nowhere"))
    answers = exchange(srv.port, raw)
    assert [a[0] for a in answers] == [200, 200, 200, 404]
    assert _doc(answers[0])["ok"]
    n = _doc(answers[1])[0]["data"]["n"]
    assert _doc(answers[2])["payload"]["n"] == n
    assert _doc(answers[3])["ok"] is False


def test_expect_100_continue_then_the_body(srv):
    body = b"incr worker/expect @k .n"
    head = (f"POST /exec HTTP/1.1\r\nHost: x\r\nX-Ocean-Key: {srv.key}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n").encode()
    with Conn(srv.port) as c:
        c.send(head)
        assert c.response()[0] == 100
        c.send(body)
        status, _, data = c.response()
        assert status == 200 and json.loads(data)[0]["ok"]


def test_an_unknown_expectation_is_417(srv):
    answers = exchange(srv.port, request("GET", "/health", headers={"Expect": "teapot"}))
    assert answers[0][0] == 417


def test_a_chunked_body_arrives_whole(srv):
    script = b"incr worker/chunked @k .n 2\nincr worker/chunked @k .m 3"
    parts = [script[i:i + 7] for i in range(0, len(script), 7)]
    raw = (f"POST /exec HTTP/1.1\r\nHost: x\r\nX-Ocean-Key: {srv.key}\r\nContent-Type: text/plain\r\n"
           "Transfer-Encoding: chunked\r\n\r\n").encode()
    raw += b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    with Conn(srv.port) as c:
        c.send(raw[:50])
        time.sleep(0.05)
        c.send(raw[50:])
        status, _, data = c.response()
    doc = json.loads(data)
    assert status == 200 and [d["ok"] for d in doc] == [True, True], doc


def test_a_body_sent_slowly_is_streamed_to_the_app(srv):
    docs = [{"route": "worker/slow", "key": f"k{i}", "payload": {"i": i}} for i in range(200)]
    body = json.dumps(docs).encode()
    head = (f"POST /drop HTTP/1.1\r\nHost: x\r\nX-Ocean-Key: {srv.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with Conn(srv.port) as c:
        c.send(head)
        for i in range(0, len(body), 2000):
            c.send(body[i:i + 2000])
            time.sleep(0.01)
        status, _, data = c.response()
    assert status == 200 and len(json.loads(data)) == 200


@pytest.mark.parametrize("framing", [
    b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
    b"Content-Length: 4\r\nContent-Length: 5\r\n",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked, identity\r\n",
    b"Content-Length: +4\r\n",
], ids=["cl-te", "te-cl", "cl-cl", "te-te", "te-identity", "cl-sign"])
def test_request_smuggling_is_400_and_the_smuggled_request_never_runs(srv, framing):
    smuggled = request("GET", "/health")
    raw = (b"POST /exec HTTP/1.1\r\nHost: x\r\nX-Ocean-Key: " + srv.key.encode() + b"\r\n"
           b"Content-Type: text/plain\r\n" + framing + b"\r\n4\r\nincr\r\n0\r\n\r\n" + smuggled)
    answers = exchange(srv.port, raw)
    assert [a[0] for a in answers] == [400], answers


def test_chunked_http_1_0_is_400(srv):
    raw = b"POST /exec HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nincr\r\n0\r\n\r\n"
    assert [a[0] for a in exchange(srv.port, raw)] == [400]


@pytest.mark.parametrize("chunks", [b"zz\r\nincr\r\n0\r\n\r\n", b"4\r\nincrXX0\r\n\r\n",
                                    b"-4\r\nincr\r\n0\r\n\r\n", b"ffffffffffffffffff\r\nincr\r\n0\r\n\r\n"],
                         ids=["not-hex", "no-crlf", "negative", "huge"])
def test_a_bad_chunk_is_400(srv, chunks):
    raw = (f"POST /exec HTTP/1.1\r\nHost: x\r\nX-Ocean-Key: {srv.key}\r\nContent-Type: text/plain\r\n"
           "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks
    answers = exchange(srv.port, raw)
    assert len(answers) == 1 and answers[0][0] in (400, 413), answers


def test_a_request_line_over_the_limit_is_refused(srv):
    answers = exchange(srv.port, request("GET", "/entity/a/" + "x" * 9000, srv.key))
    # the stock worker may close before the client has sent it all (the answer is then reset)
    assert [a[0] for a in answers] in ([414],) if ours(srv) else ([414], []), answers


def test_a_header_flood_is_431(srv):
    raw = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-F%d: y\r\n" % i for i in range(500)) + b"\r\n"
    assert [a[0] for a in exchange(srv.port, raw)] == [431]


def test_a_header_field_over_the_limit_is_431(srv):
    raw = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 20000 + b"\r\n\r\n"
    assert [a[0] for a in exchange(srv.port, raw)] == [431]


def test_an_endless_header_is_cut_not_buffered(srv):
    with Conn(srv.port) as c:
        c.send(b"GET /health HTTP/1.1\r\nX-Endless: ")
        sent = 0
        try:
            while sent < 50 << 20:  # at most 50 MiB
                c.send(b"y" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sent < 50 << 20
        try:
            status = c.response(timeout=3)[0]
            assert status == 431
        except (Closed, TimeoutError, ConnectionResetError):
            pass  # cut before the answer could be read: also fine, nothing was buffered


def test_a_header_name_with_an_underscore_is_dropped_as_gunicorn_does(srv):
    # gunicorn's header_map (default drop): X_Ocean_Key is not X-Ocean-Key
    answers = exchange(srv.port, request("GET", "/entities/worker/x", headers={"X_Ocean_Key": srv.key}))
    assert [a[0] for a in answers] == [401]


@pytest.mark.parametrize("raw", [
    b"GET / HTTP/9.9\r\n\r\n",
    b"\x00\x01\x02\x03 garbage \xff\xfe\r\n\r\n",
    b"GET /health HTTP/1.1\r\nBad Header: x\r\n\r\n",
    b"GET /health HTTP/1.1\r\nX-Null: a\x00b\r\n\r\n",
    b"GET /he\x7falth HTTP/1.1\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET /health HTTP/1.1\nHost: x\n\n",
], ids=["version", "binary", "space-in-name", "nul-in-value", "del-in-path", "two-hosts", "bare-lf"])
def test_absurd_requests_get_a_4xx_or_nothing_and_no_traceback(srv, raw):
    answers = exchange(srv.port, raw)
    assert len(answers) <= 1
    for status, _, body in answers:
        assert 400 <= status < 500 and b"Traceback" not in body, (status, body)


def test_a_body_over_max_body_bytes_is_413(srv):
    too_big = b"-- " + b"x" * LIMIT + b"\n"
    answers = exchange(srv.port, _exec(srv, too_big))
    assert answers[0][0] == 413 and _doc(answers[0])["code"] == "too_large"
    # chunked: counted as it arrives
    raw = (f"POST /exec HTTP/1.1\r\nHost: x\r\nX-Ocean-Key: {srv.key}\r\nContent-Type: text/plain\r\n"
           "Transfer-Encoding: chunked\r\n\r\n").encode() + b"".join(b"4000\r\n" + b"x" * 0x4000 + b"\r\n"
                                                                     for _ in range(10)) + b"0\r\n\r\n"
    answers = exchange(srv.port, raw)
    assert answers[0][0] == 413 and _doc(answers[0])["code"] == "too_large"


def test_an_endless_chunked_body_is_refused_as_it_arrives(srv):
    head = (f"POST /exec HTTP/1.1\r\nHost: x\r\nX-Ocean-Key: {srv.key}\r\nContent-Type: text/plain\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"
    with Conn(srv.port) as c:
        c.send(head)
        sent, got = 0, b""
        while sent < 64 * LIMIT and b"\r\n\r\n" not in got:  # at most 6.4 MB, 64x the limit
            try:
                c.send(chunk)
                sent += len(chunk)
                if select.select([c.sock], [], [], 0)[0]:
                    got += c.sock.recv(65536)
            except (BrokenPipeError, ConnectionResetError):
                break
        c.buf = got
        status, _, body = c.response()
    assert status == 413 and json.loads(body)["code"] == "too_large"
    assert sent < 64 * LIMIT


def test_secure_scheme_headers_are_taken_from_a_trusted_proxy_only(srv):
    # 127.0.0.1 is in gunicorn's default forwarded_allow_ips; contradicting scheme headers are refused
    raw = request("GET", "/health", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "off"})
    assert [a[0] for a in exchange(srv.port, raw)] == [400]
    raw = request("GET", "/health", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on"})
    assert [a[0] for a in exchange(srv.port, raw)] == [200]


def test_http_1_0_closes_after_the_answer(srv):
    answers = exchange(srv.port, b"GET /health HTTP/1.0\r\n\r\nGET /health HTTP/1.0\r\n\r\n")
    assert [a[0] for a in answers] == [200]
    assert answers[0][1]["connection"] == "close"


def test_head_answers_without_a_body(srv):
    with Conn(srv.port) as c:
        c.send(b"HEAD /admin HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = c.response(head_only=True)
        assert status < 500
        status, _, body = c.response()  # would fail to parse had a body followed the HEAD answer
        assert status == 200 and json.loads(body)["ok"]


def test_an_sse_stream_is_chunked_with_heartbeats_and_ends_on_its_own(srv):
    with Conn(srv.port) as c:
        c.send(request("GET", f"/live/worker/sse?_key={srv.key}"))
        status, headers, _ = c.response(head_only=True)
        assert status == 200 and headers["content-type"].startswith("text/event-stream")
        assert headers["transfer-encoding"] == "chunked"
        srv.post_json("/drop", {"route": "worker/sse", "key": "k", "payload": {"v": 1}})
        seen = b""
        deadline = time.monotonic() + 5
        while b'"v":1' not in seen and time.monotonic() < deadline:
            seen += c.chunk()
        assert b'"v":1' in seen
        deadline = time.monotonic() + 5
        while b":" not in seen.split(b'"v":1', 1)[1] and time.monotonic() < deadline:
            seen += c.chunk()  # a heartbeat comment within heartbeat_s (1 s)
        assert seen.split(b'"v":1', 1)[1].strip()


def test_the_access_log_never_holds_a_key(tmp_path):
    secret = "SECRET-" + "k" * 30
    for wc in WORKERS:
        log = tmp_path / f"access-{wc}.log"
        srv = Server(str(tmp_path / f"data-{wc}"), worker_class=wc, access_log=str(log),
                     admin_key=secret).start()
        try:
            for raw in (request("GET", f"/entities/analytics/events?_key={secret}"),
                        request("GET", "/entities/analytics/events", secret),
                        request("GET", "/entities/analytics/events",
                                headers={"Authorization": f"Bearer {secret}"}),
                        request("GET", f"/live/analytics/*?_key={secret}&x=1", headers={"Connection": "close"}),
                        b"GET /health?_key=" + secret.encode() + b" HTTP/1.1\r\nContent-Length: 1\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n"):
                with Conn(srv.port) as c:
                    c.send(raw)
                    assert c.response(head_only=True)[0] in (200, 400)
            srv.get_json("/health")
        finally:
            srv.stop()
        text = log.read_text()
        assert secret not in text and "SECRET" not in text, text
        assert '"GET /entities/analytics/events" 200' in text, text
        assert '127.0.0.1 "GET /health" 200' in text, text


def test_max_requests_restarts_the_worker_and_no_request_is_lost(tmp_path):
    for wc in WORKERS:
        srv = Server(str(tmp_path / f"data-{wc}"), worker_class=wc,
                     env={"GUNICORN_CMD_ARGS": "--max-requests 30"}).start()
        try:
            first = worker_pid_of(srv.pid)
            done = 0
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # until a second worker has served a few
                try:
                    n = srv.post_json("/exec", {"query": "incr worker/max @k .n"})[0]["data"]["n"]
                    done += 1
                except OSError:
                    pass  # refused while the next worker opens the data directory: not counted
                if done >= 40 and worker_pid_of(srv.pid) != first:
                    break
                time.sleep(0.02)
            assert worker_pid_of(srv.pid) != first and n == done, (done, n)
        finally:
            srv.stop()


def worker_pid_of(master: int) -> int:
    """The gunicorn worker: the one child of the master."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{master}/task/{master}/children") as f:
            kids = f.read().split()
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    raise AssertionError(f"no worker under master {master}")


def test_sigterm_ends_streams_with_event_end_and_drains(tmp_path):
    for wc in WORKERS:
        srv = Server(str(tmp_path / f"data-{wc}"), worker_class=wc).start()
        with Conn(srv.port, timeout=15) as c:
            c.send(request("GET", f"/live/worker/term?_key={srv.key}"))
            assert c.response(head_only=True)[0] == 200
            c.chunk()
            srv.proc.send_signal(15)
            seen = b""
            try:
                while True:
                    data = c.chunk(timeout=10)
                    seen += data
                    if not data:
                        break
            except Closed:
                pass
            assert b"event: end" in seen, (wc, seen)
        assert srv.stop() == 0
        assert "engine closed cleanly" in srv.log()
