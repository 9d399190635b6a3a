"""One corpus of raw requests, good and bad, sent to both workers: the answers must agree.

Each case goes to a server running ocean's worker and to one running gunicorn's
stock gevent worker, on a fresh connection each (the same order on both, so the
data agree too). Compared: the status of every answer, the headers that matter
(content type, connection, framing) and the bodies, with what varies by run
(seqs, ids, times) blanked. Where the stock worker answers a parser-level refusal
itself (an HTML page), only the statuses are compared: ocean's worker answers
those with its JSON error shape.
"""
import json
import os
import sys

import pytest

from rawhttp import exchange

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from serverproc import ADMIN_KEY, Server  # noqa: E402

pytestmark = pytest.mark.integration

K = ADMIN_KEY
VOLATILE = {"seq", "drop_id", "created_at", "updated_at", "uptime_s", "_id", "_at", "version", "ms",
            "sse_clients", "id"}
HEADERS = ("content-type", "connection", "transfer-encoding", "access-control-allow-origin", "allow")


def _req(method, path, body=None, key=K, extra=b"", ctype=b"text/plain", version=b"1.1"):
    head = b"%s %s HTTP/%s\r\nHost: 127.0.0.1\r\n" % (method, path, version)
    if key:
        head += b"X-Ocean-Key: %s\r\n" % key.encode()
    head += extra
    if body is not None:
        head += b"Content-Type: %s\r\nContent-Length: %d\r\n" % (ctype, len(body))
    return head + b"\r\n" + (body or b"")


def _chunked(method, path, chunks: bytes, key=K):
    return (b"%s %s HTTP/1.1\r\nHost: x\r\nX-Ocean-Key: %s\r\nContent-Type: text/plain\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" % (method, path, key.encode())) + chunks


# (id, raw bytes, compare bodies and headers too?)
CORPUS = [
    ("health", _req(b"GET", b"/health", key=None), True),
    ("metrics-head", _req(b"GET", b"/nowhere"), True),
    ("exec-incr", _req(b"POST", b"/exec", b"incr diff/daily @d .views\nincr diff/daily @d .views 2"), True),
    ("exec-json", _req(b"POST", b"/exec", b'{"query": "diff/daily @d"}', ctype=b"application/json"), True),
    ("exec-parse-error", _req(b"POST", b"/exec", b"incr diff/daily @d .views ???"), True),
    ("drop-one", _req(b"POST", b"/drop", json.dumps({"route": "diff/ev", "payload": {"a": 1}}).encode(),
                      ctype=b"application/json"), True),
    ("drop-batch", _req(b"POST", b"/drop", json.dumps([{"route": "diff/e", "key": f"k{i}", "payload": {"+n": i}}
                                                       for i in range(50)]).encode(), ctype=b"application/json"),
     True),
    ("drop-bad-json", _req(b"POST", b"/drop", b"{nope", ctype=b"application/json"), True),
    ("drop-wrong-type", _req(b"POST", b"/drop", b"<x/>", ctype=b"application/xml"), True),
    ("entity", _req(b"GET", b"/entity/diff/daily/d"), True),
    ("entity-missing", _req(b"GET", b"/entity/diff/daily/nope"), True),
    ("entity-quoted-path", _req(b"GET", b"/entity/diff/daily/%64"), True),
    ("entities-query", _req(b"GET", b"/entities/diff/e?limit=3&after=k1"), True),
    ("no-key", _req(b"GET", b"/entities/diff/e", key=None), True),
    ("key-in-query", _req(b"GET", b"/entities/diff/e?limit=2&_key=" + K.encode(), key=None), True),
    ("bad-key", _req(b"GET", b"/entities/diff/e", key="wrong"), True),
    ("sql", _req(b"POST", b"/sql", b"SELECT key, n FROM diff.e ORDER BY key LIMIT 3"), True),
    ("options-preflight", _req(b"OPTIONS", b"/exec", key=None,
                               extra=b"Origin: http://a\r\nAccess-Control-Request-Method: POST\r\n"), True),
    ("method-not-allowed", _req(b"DELETE", b"/health", key=None), True),
    ("http-1.0", _req(b"GET", b"/health", key=None, version=b"1.0"), True),
    ("http-1.0-keep-alive", _req(b"GET", b"/health", key=None, version=b"1.0",
                                 extra=b"Connection: keep-alive\r\n"), True),
    ("connection-close", _req(b"GET", b"/health", key=None, extra=b"Connection: close\r\n"), True),
    ("pipelined-three", _req(b"GET", b"/health", key=None) + _req(b"POST", b"/exec", b"incr diff/p @k .n")
     + _req(b"GET", b"/entity/diff/p/k"), True),
    ("chunked-exec", _chunked(b"POST", b"/exec", b"4\r\nincr\r\n10\r\n diff/daily @d .\r\n5\r\nviews\r\n0\r\n\r\n"),
     True),
    ("chunked-with-extension", _chunked(b"POST", b"/exec", b"4;x=y\r\nincr\r\n11\r\n diff/daily @d .v\r\n0\r\n\r\n"),
     True),
    ("chunked-bad-size", _chunked(b"POST", b"/exec", b"zz\r\nincr\r\n0\r\n\r\n"), False),
    ("cl-and-te", _req(b"POST", b"/exec", b"incr", extra=b"Transfer-Encoding: chunked\r\n"), False),
    ("two-content-lengths", _req(b"POST", b"/exec", b"incr", extra=b"Content-Length: 4\r\n"), False),
    ("te-gzip-chunked", _req(b"POST", b"/exec", extra=b"Transfer-Encoding: identity, chunked\r\n"), False),
    ("chunked-http-1.0", _req(b"POST", b"/exec", version=b"1.0", extra=b"Transfer-Encoding: chunked\r\n")
     + b"0\r\n\r\n", False),
    ("bad-version", b"GET /health HTTP/1.7\r\nHost: x\r\n\r\n", False),
    ("space-in-header-name", b"GET /health HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n", False),
    ("nul-in-header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", False),
    ("two-hosts", b"GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", False),
    ("expect-other", _req(b"GET", b"/health", key=None, extra=b"Expect: tea\r\n"), False),
    ("header-flood", b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(300)) + b"\r\n",
     False),
    ("huge-header", b"GET /health HTTP/1.1\r\nX-Big: " + b"y" * 9000 + b"\r\n\r\n", False),
    ("scheme-conflict", _req(b"GET", b"/health", key=None,
                             extra=b"X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n"), False),
    ("underscore-header-dropped", _req(b"GET", b"/entities/diff/e", key=None, extra=b"X_Ocean_Key: " + K.encode()
                                       + b"\r\n"), True),
    ("folded-header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", False),
    ("body-too-large", _req(b"POST", b"/exec", b"-" * 5000), True),
    ("empty-lines-first", b"\r\n\r\n" + _req(b"GET", b"/health", key=None), True),
]

# Where the two differ on purpose: (ocean's statuses, the stock worker's statuses).
KNOWN = {
    # llhttp knows HTTP/1.0 and 1.1 only; the stock parser serves any HTTP/1.x as 1.1
    "bad-version": ([400], [200]),
    # RFC 9112 2.2: a server SHOULD ignore empty lines before the request line (llhttp does)
    "empty-lines-first": ([200], [400]),
}


def _blank(doc):
    if isinstance(doc, dict):
        return {k: "*" if k in VOLATILE else _blank(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_blank(v) for v in doc]
    return doc


def _view(answers, full: bool):
    out = []
    for status, headers, body in answers:
        if not full:
            out.append(status)
            continue
        try:
            body = _blank(json.loads(body)) if body else None
        except ValueError:
            body = body.decode("latin-1")
        out.append((status, {h: headers.get(h) for h in HEADERS}, body))
    return out


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    started = []
    try:
        for wc in ("ocean", "gevent"):
            base = tmp_path_factory.mktemp(f"diff-{wc}")
            # no accounting: the dashboard counters would make the two data sets drift apart
            started.append(Server(str(base / "data"), worker_class=wc, accounting=False,
                                  max_body_bytes=4096).start())
        yield started
    finally:
        for srv in started:
            srv.stop()


def test_both_workers_answer_the_corpus_alike(pair):
    ours, stock = pair
    differences = []
    for name, raw, full in CORPUS:
        a = _view(exchange(ours.port, raw), full and name not in KNOWN)
        b = _view(exchange(stock.port, raw), full and name not in KNOWN)
        if (a, b) != KNOWN.get(name, (a, a)):
            differences.append((name, a, b))
    assert not differences, "\n\n".join(f"{n}:\n ocean:  {a}\n gevent: {b}" for n, a, b in differences)
    assert "Traceback" not in ours.log()
