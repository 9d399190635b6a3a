"""Generators of hostile HTTP requests (seeded): bodies, paths, headers, Drops and SQL fuzz.

Each generator yields raw request bytes; ``request()`` frames one. The
corpus is deterministic for a seed, so a failure reproduces with the seed
and the index printed by the test.
"""
from __future__ import annotations

import json
import random

SQL_SEEDS = [
    'SELECT key, page_views FROM "analytics/daily" ORDER BY key DESC LIMIT 7',
    'SELECT count(*) AS n, sum(n) FROM "fuzz/*" WHERE n > 1 GROUP BY route',
    "SELECT * FROM \"fuzz/c\" WHERE key LIKE 'a%' OR n BETWEEN 1 AND 3",
    'SELECT DISTINCT status FROM "fuzz/events" ORDER BY status NULLS FIRST LIMIT 3 OFFSET 1',
    "SELECT upper(name), length(name), coalesce(x, 0) FROM \"fuzz/c\" WHERE name IN ('a', 'b')",
    'SELECT avg(ms), min(ms), max(ms) FROM "fuzz/events" GROUP BY path HAVING count(*) > 1',
]
SQL_TOKENS = ["SELECT", "FROM", "WHERE", "GROUP", "BY", "ORDER", "LIMIT", "OFFSET", "HAVING", "AND", "OR",
              "NOT", "NULL", "IS", "IN", "LIKE", "BETWEEN", "CASE", "WHEN", "THEN", "ELSE", "END", "AS",
              "DISTINCT", "count(*)", "sum(", "avg(", ")", "(", ",", "*", "+", "-", "/", "%", "=", "<>",
              "<=", "'x'", "'", '"', '"fuzz/c"', '"_admin/daily"', '"*"', '"a/../b"', "1e308", "-9223372036854775809",
              "99999999999999999999999", "0x10", "key", "n", "route", ";", "--", "/*", "\x00", "\u202e", "é"]
DROPS_SEEDS = [
    "incr fuzz/c @a .n 2 .m -1",
    "save fuzz/c @b name: \"Bob\" age: 30 +visits: 1",
    "save fuzz/events { method: \"POST\", status: 200 } keep 60",
    "update fuzz/c @a { \"+n\": 1.5, tag: [1, {x: null}] }",
    "find fuzz/c where n > 1 and name != \"x\" sort n desc limit 5 then pick key, n",
    "find fuzz/events group status sum ms avg ms count",
    "count fuzz/* where status >= 400",
    "history fuzz/c @a limit 3",
    "sql `SELECT key, n FROM \"fuzz/c\"`",
    "fuzz/c @a",
    "remove fuzz/c @nope",
]
DROPS_TOKENS = ["save", "get", "incr", "update", "remove", "find", "count", "sql", "history", "where", "sort",
                "limit", "then", "pick", "group", "sum", "keep", "@", "@k", ".f", '."q f"', "{", "}", "[", "]",
                ":", ",", "=", "!=", "<", ">=", '"', '"s"', "`", "`x`", "-- c", "\n", "\n  ", "fuzz/c",
                "_admin/daily", "a/../b", "*", "fuzz/*", "+n", "1", "-1", "1e999", "9223372036854775807",
                "true", "null", "\\u0000", "\x00", "\t", "é", "\U0001f600", "\ud800"]
PATH_TRICKS = [
    "/entity/../../etc/passwd", "/entity/%2e%2e/%2e%2e/etc/passwd", "/entity/fuzz/%2e%2e/k", "//entity//fuzz//k",
    "/entity/fuzz%2Fc/a", "/entity/fuzz/c%2Fa", "/entities/%2F", "/entities/fuzz%2f..%2f_admin",
    "/entities/" + "/".join("s" * 1 for _ in range(11)), "/entities/" + "a" * 600, "/entity/" + "r" * 600 + "/k",
    "/entity/fuzz/c/" + "k" * 300, "/live/" + "/".join(["x"] * 11), "/live/*/*", "/live/fuzz/**", "/live/fuzz*",
    "/live/%00", "/entity/fuzz/c/%00", "/entity/fuzz/c/%ff%fe", "/entities/fuzz%00c", "/stream/..", "/stream/%2e",
    "/admin/../../../../etc/passwd", "/admin/%2e%2e/%2e%2e/etc/passwd", "/admin/..%2f..%2fsettings.py",
    "/admin/js/../../app.py", "/admin//etc/passwd", "/admin/%252e%252e/x", "/admin/\\..\\..\\x", "/./health",
    "/health/../exec", "/%68ealth", "/HEALTH", "/exec/", "/sql/x", "/drop?route=a", "/entity", "/entity/",
    "/entities", "/entities/", "/live", "/live/", "/stream", "/metrics/..", "/" + "x" * 5000, "*",
    "/entity/fuzz/c/a?_key=&_key=x", "/entities/fuzz/c?limit=99999999999999999999999",
    "/entities/fuzz/c?limit=-1", "/entities/fuzz/c?limit=1e3", "/entities/fuzz/c?after=%ff",
    "/entities/fuzz/c?after=" + "z" * 400, "/stream/fuzz/*?last=99999999999", "/stream/fuzz/*?last=-5",
    "/stream/fuzz/*?last_event_id=99999999999999999999999999", "/stream/fuzz/*?last_event_id=-1",
    "/stream/fuzz/*?last_event_id=%00", "/live/fuzz/c?last=abc",
    "/export/fuzz/*?since=abc", "/export/fuzz/c?format=%00", "/export/fuzz/*?since=99999999999999999999999",
    "/export/*?format=csv&since=-1", "/export/fuzz//c", "/export/..", "/import?x=1",
]
CONTENT_TYPES = ["application/json", "text/plain", "", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=x", "application/json; charset=utf-16", "text/plain; charset=latin-1",
                 "application/vnd.api+json", "image/png", "text/event-stream", "application/json;;;", "\x7f",
                 "application/" + "j" * 2000, "*/*"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT", "FOO", "get"]
ENDPOINTS = [("POST", "/exec"), ("POST", "/sql"), ("POST", "/drop"), ("GET", "/entity/fuzz/c/a"),
             ("DELETE", "/entity/fuzz/c/zz"), ("GET", "/entities/fuzz/c"), ("GET", "/stream/fuzz/*"),
             ("GET", "/live/fuzz/*"), ("GET", "/health"), ("GET", "/metrics"), ("GET", "/admin"),
             ("GET", "/admin/js/main.js"), ("OPTIONS", "/drop"), ("GET", "/export/fuzz/*"), ("POST", "/import")]


def request(method: str, path: str, body: bytes = b"", headers: dict | list | None = None,
            key: str | None = None, version: str = "HTTP/1.1") -> bytes:
    """One raw request, ``Connection: close``; ``headers`` may repeat names (a list of pairs)."""
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    head = [f"{method} {path} {version}".encode("latin-1", "replace"), b"Host: 127.0.0.1"]
    if key is not None:
        head.append(b"X-Ocean-Key: " + key.encode())
    names = {n.lower() for n, _ in pairs}
    if body and "content-length" not in names and "transfer-encoding" not in names:
        head.append(b"Content-Length: %d" % len(body))
    for name, value in pairs:
        head.append((name.encode("latin-1", "replace") if isinstance(name, str) else name) + b": " +
                    (value.encode("latin-1", "replace") if isinstance(value, str) else value))
    head.append(b"Connection: close")
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def mutate(rng: random.Random, data: bytes, n: int = 3) -> bytes:
    """Flip, insert, delete, duplicate or truncate a few bytes."""
    b = bytearray(data)
    for _ in range(rng.randint(1, n)):
        op = rng.randrange(6)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(pos, len(b) - 1)] = rng.randrange(256)
        elif op == 1:
            b[pos:pos] = bytes([rng.choice(b'{}[]":,\\\x00\xff\xc3\n`@.')])
        elif op == 2 and b:
            del b[pos:pos + rng.randint(1, 4)]
        elif op == 3 and b:
            b[pos:pos] = b[max(0, pos - 8):pos]
        elif op == 4:
            del b[pos:]
        else:
            b[pos:pos] = rng.choice([b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xe2\x80\xae", b"\\ud800"])
    return bytes(b)


def json_value(rng: random.Random, depth: int = 0):
    """A random JSON value with awkward corners: big ints, long strings, odd keys."""
    kind = rng.randrange(10 if depth < 4 else 6)
    if kind == 0:
        return rng.choice([0, -1, 2 ** 63 - 1, 2 ** 63, -(2 ** 63) - 1, 10 ** 400, 1.5, -0.0, 1e308])
    if kind == 1:
        return rng.choice(["", "x" * rng.randint(1, 3000), "\u0000", "\ud800", "é\U0001f600", "a/../b", "<script>"])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind in (3, 4, 5):
        return rng.choice(["fuzz/c", "_admin/daily", "a" * 600, "/".join("s" * 11), "", "fuzz//c", "fuzz/*", 7])
    if kind in (6, 7):
        return [json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["route", "key", "payload", "keep", "+n", "+", "n", "_route", "", "x" * 300, "query", "\u0000"]
    return {rng.choice(keys): json_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def drop_doc(rng: random.Random):
    """A /drop body that is nearly right."""
    doc = {"route": rng.choice(["fuzz/c", "fuzz/events", "_admin/daily", "fuzz/*", "a" * 600, "fuzz/c/", 5]),
           "payload": json_value(rng)}
    if rng.random() < 0.6:
        doc["key"] = rng.choice(["a", "b", "", "k" * 300, "a/b", "..", None, 3, "é"])
    if rng.random() < 0.3:
        doc["keep"] = rng.choice([1, 0, -1, 1e20, "10", None, float("1e300")])
    if rng.random() < 0.2:
        doc[rng.choice(["extra", "+n", ""])] = 1
    return doc


def token_soup(rng: random.Random, tokens: list, n: int) -> str:
    return " ".join(rng.choice(tokens) for _ in range(rng.randint(1, n)))


def nested(depth: int, opener: str = "[", closer: str = "]", inner: str = "1") -> str:
    return opener * depth + inner + closer * depth


def generate(rng: random.Random, key: str, count: int):
    """Yield ``(label, raw request bytes)``: ``count`` requests across every endpoint."""
    big = json.dumps({"route": "fuzz/events", "payload": {"blob": "x" * (1 << 20)}}).encode()
    fixed = [
        ("deep json array", request("POST", "/drop", nested(100000).encode(), {"Content-Type": "application/json"}, key)),
        ("deep json payload", request("POST", "/drop", ('{"route":"fuzz/events","payload":' + nested(900) + "}").encode(),
                                      {"Content-Type": "application/json"}, key)),
        ("deep json keyed", request("POST", "/drop", ('{"route":"fuzz/c","key":"d","payload":{"a":' + nested(900) + "}}").encode(),
                                    {"Content-Type": "application/json"}, key)),
        ("deep object", request("POST", "/drop", ('{"route":"fuzz/events","payload":' + nested(5000, '{"a":', "}") + "}").encode(),
                                {"Content-Type": "application/json"}, key)),
        ("deep exec json", request("POST", "/exec", nested(3000, '{"query":', "}", '"x"').encode(), {"Content-Type": "application/json"}, key)),
        ("deep drops object", request("POST", "/exec", ("save fuzz/events " + nested(20000, "{a:", "}")).encode(), {}, key)),
        ("deep drops list", request("POST", "/exec", ("save fuzz/c @k v: " + nested(20000)).encode(), {}, key)),
        ("deep sql parens", request("POST", "/sql", ('SELECT ' + nested(20000, "(", ")") + ' FROM "fuzz/c"').encode(), {}, key)),
        ("deep sql not", request("POST", "/sql", ('SELECT key FROM "fuzz/c" WHERE ' + "NOT " * 20000 + "n = 1").encode(), {}, key)),
        ("long sql or", request("POST", "/sql", ('SELECT key FROM "fuzz/c" WHERE ' + " OR ".join(["n = 1"] * 20000)).encode(), {}, key)),
        ("deep sql minus", request("POST", "/sql", ('SELECT ' + "-" * 30000 + '1 FROM "fuzz/c"').encode(), {}, key)),
        ("deep sql case", request("POST", "/sql", ('SELECT ' + "CASE WHEN 1 THEN " * 5000 + "1" + " END" * 5000 + ' FROM "fuzz/c"').encode(), {}, key)),
        ("huge payload", request("POST", "/drop", big, {"Content-Type": "application/json"}, key)),
        ("huge batch", request("POST", "/drop", json.dumps([{"route": "fuzz/events", "payload": i} for i in range(20000)]).encode(),
                               {"Content-Type": "application/json"}, key)),
        ("huge script", request("POST", "/exec", b"incr fuzz/c @a .n\n" * 70000, {}, key)),
        ("huge body declared", request("POST", "/drop", b"", {"Content-Length": str(1 << 40), "Content-Type": "application/json"}, key)),
        ("negative length", request("POST", "/drop", b"{}", {"Content-Length": "-5"}, key)),
        ("bad length", request("POST", "/drop", b"{}", {"Content-Length": "abc"}, key)),
        ("short body", request("POST", "/exec", b"get", {"Content-Length": "10"}, key)),
        ("te and cl", request("POST", "/exec", b"5\r\nhello\r\n0\r\n\r\n", [("Content-Length", "3"), ("Transfer-Encoding", "chunked")], key)),
        ("bad chunks", request("POST", "/exec", b"zz\r\nhello\r\n0\r\n\r\n", [("Transfer-Encoding", "chunked")], key)),
        ("chunked ok", request("POST", "/exec", b"5\r\nfuzz/\r\n1\r\nc\r\n0\r\n\r\n", [("Transfer-Encoding", "chunked")], key)),
        ("te gzip", request("POST", "/exec", b"x", [("Transfer-Encoding", "gzip")], key)),
        ("long header", request("GET", "/health", b"", [("X-Long", "a" * 70000)])),
        ("many headers", request("GET", "/health", b"", [(f"X-H{i}", "v") for i in range(500)])),
        ("dup key headers", request("GET", "/entity/fuzz/c/a", b"", [("X-Ocean-Key", "wrong"), ("X-Ocean-Key", key)])),
        ("key with nul", request("GET", "/entity/fuzz/c/a", b"", [("X-Ocean-Key", key + "\x00")])),
        ("key latin1", request("GET", "/entity/fuzz/c/a", b"", [("X-Ocean-Key", b"\xff\xfe\xe9")])),
        ("key huge", request("GET", "/entity/fuzz/c/a", b"", [("X-Ocean-Key", "k" * 8000)])),
        ("bearer empty", request("GET", "/entity/fuzz/c/a", b"", [("Authorization", "Bearer ")])),
        ("bearer odd", request("GET", "/entity/fuzz/c/a", b"", [("Authorization", "Bearer\t" + key)])),
        ("header no colon", request("GET", "/health", b"", [("Broken header line", "")]).replace(b"Broken header line: ", b"Broken header line")),
        ("header folding", request("GET", "/health", b"", [("X-A", "b\r\n  folded")])),
        ("header ctl", request("GET", "/health", b"", [("X-A", "b\x01c")])),
        ("last-event-id huge", request("GET", "/stream/fuzz/*", b"", [("Last-Event-ID", "9" * 5000), ("Accept", "application/json")], key)),
        ("last-event-id float", request("GET", "/stream/fuzz/*", b"", [("Last-Event-ID", "1.5"), ("Accept", "application/json")], key)),
        ("last-event-id neg live", request("GET", "/live/fuzz/*", b"", [("Last-Event-ID", "-1")], key)),
        ("accept odd", request("GET", "/stream/fuzz/*", b"", [("Accept", "application/json;q=0, text/event-stream;q=0")], key)),
        ("http/1.0", request("GET", "/health", version="HTTP/1.0")),
        ("http/0.9", b"GET /health\r\n\r\n"),
        ("http/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ("http/9", request("GET", "/health", version="HTTP/9.9")),
        ("absolute uri", request("GET", "http://127.0.0.1/health")),
        ("absolute uri other host", request("GET", "http://evil.example/entity/fuzz/c/a", key=key)),
        ("no host", b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n"),
        ("lf only", b"GET /health HTTP/1.1\nHost: x\nConnection: close\n\n"),
        ("garbage line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64),
        ("empty line", b"\r\n\r\n"),
        ("long method", request("X" * 5000, "/health")),
        ("space in path", b"GET /entity/fuzz c/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        ("utf8 path", request("GET", "/entity/fuzz/c/é", key=key)),
        ("raw high bytes path", b"GET /entity/fuzz/c/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        ("pipelined", request("GET", "/health").replace(b"Connection: close\r\n", b"") + request("GET", "/metrics")),
        # aimed at the HTTP parser (both workers): smuggling, chunk sizes, floods, absurd lines
        ("cl cl", request("POST", "/exec", b"get", [("Content-Length", "3"), ("Content-Length", "4")], key)),
        ("te te", request("POST", "/exec", b"0\r\n\r\n", [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")], key)),
        ("te chunked identity", request("POST", "/exec", b"0\r\n\r\n", [("Transfer-Encoding", "chunked, identity")], key)),
        ("te space cl", request("POST", "/exec", b"3\r\nget\r\n0\r\n\r\n", [("Transfer-Encoding", " chunked"), ("Content-Length", "12")], key)),
        ("chunked http/1.0", request("POST", "/exec", b"3\r\nget\r\n0\r\n\r\n", [("Transfer-Encoding", "chunked")], key, version="HTTP/1.0")),
        ("chunk size huge", request("POST", "/exec", b"ffffffffffffffffffff\r\nget\r\n0\r\n\r\n", [("Transfer-Encoding", "chunked")], key)),
        ("chunk size negative", request("POST", "/exec", b"-3\r\nget\r\n0\r\n\r\n", [("Transfer-Encoding", "chunked")], key)),
        ("chunk size overlong", request("POST", "/exec", b"3\r\ngetget\r\n0\r\n\r\n", [("Transfer-Encoding", "chunked")], key)),
        ("chunk ext flood", request("POST", "/exec", b"3;" + b"a=b;" * 20000 + b"\r\nget\r\n0\r\n\r\n", [("Transfer-Encoding", "chunked")], key)),
        ("chunk no end", request("POST", "/exec", b"3\r\nget\r\n", [("Transfer-Encoding", "chunked")], key)),
        ("two hosts", request("GET", "/health", b"", [("Host", "a"), ("Host", "b")])),
        ("underscore header", request("GET", "/entity/fuzz/c/a", b"", [("X_Ocean_Key", key)])),
        ("expect odd", request("POST", "/exec", b"get", [("Expect", "200-ok")], key)),
        ("expect 100 no wait", request("POST", "/exec", b"count fuzz/c", [("Expect", "100-continue")], key)),
        ("upgrade websocket", request("GET", "/health", b"", [("Connection", "Upgrade"), ("Upgrade", "websocket")])),
        ("connect", b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n"),
        ("url 20k", request("GET", "/entity/fuzz/c/" + "a" * 20000, key=key)),
        ("header flood 5000", request("GET", "/health", b"", [(f"X-{i}", "") for i in range(5000)])),
        ("nul in path", b"GET /health\x00 HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("options preflight", request("OPTIONS", "/drop", headers=[("Origin", "http://evil"), ("Access-Control-Request-Method", "POST"),
                                                                 ("Access-Control-Request-Headers", "x-ocean-key, " + "x" * 3000)])),
    ]
    yield from fixed
    for path in PATH_TRICKS:
        for method in ("GET", "DELETE", "POST"):
            yield f"path {method} {path[:60]}", request(method, path, b"x" if method == "POST" else b"", key=key)
        yield f"path anon {path[:60]}", request("GET", path)
    i = 0
    while i < count - len(fixed) - 4 * len(PATH_TRICKS):
        i += 1
        kind = rng.randrange(9)
        if kind == 0:
            body = json.dumps(drop_doc(rng) if rng.random() < 0.8 else [drop_doc(rng) for _ in range(rng.randint(0, 20))]).encode()
            if rng.random() < 0.5:
                body = mutate(rng, body)
            yield "drop", request("POST", "/drop", body, {"Content-Type": rng.choice(CONTENT_TYPES[:4])}, key)
        elif kind == 1:
            text = rng.choice(DROPS_SEEDS) if rng.random() < 0.5 else token_soup(rng, DROPS_TOKENS, 14)
            body = text.encode("utf-8", "surrogatepass")
            if rng.random() < 0.6:
                body = mutate(rng, body)
            if rng.random() < 0.3:
                body = json.dumps({"query": body.decode("utf-8", "replace")}).encode()
                yield "exec json", request("POST", "/exec", body, {"Content-Type": "application/json"}, key)
            else:
                yield "exec", request("POST", "/exec", body, {"Content-Type": rng.choice(CONTENT_TYPES)}, key)
        elif kind == 2:
            text = rng.choice(SQL_SEEDS) if rng.random() < 0.5 else "SELECT " + token_soup(rng, SQL_TOKENS, 16)
            body = text.encode("utf-8", "surrogatepass")
            if rng.random() < 0.6:
                body = mutate(rng, body)
            yield "sql", request("POST", "/sql", body, {"Content-Type": rng.choice(CONTENT_TYPES[:3])}, key)
        elif kind == 3:
            method, path = rng.choice(ENDPOINTS)
            method = rng.choice(METHODS) if rng.random() < 0.3 else method
            body = mutate(rng, json.dumps(json_value(rng)).encode(), 6) if rng.random() < 0.7 else b""
            hdrs = [("Content-Type", rng.choice(CONTENT_TYPES))]
            if "/stream" in path and rng.random() < 0.7:
                hdrs.append(("Accept", "application/json"))
            yield f"endpoint {method} {path}", request(method, path, body, hdrs, key if rng.random() < 0.8 else None)
        elif kind == 4:
            segs = [rng.choice(["fuzz", "c", "..", ".", "%2e%2e", "%2F", "", "*", "_admin", "a" * rng.randint(1, 300),
                                "%00", "%ff", "é", "@", "k"]) for _ in range(rng.randint(1, 12))]
            base = rng.choice(["/entity/", "/entities/", "/live/", "/stream/", "/admin/", "/"])
            query = rng.choice(["", "?limit=0", "?after=", "?last=1", "?_key=" + key, "?last_event_id=x", "?%zz=1"])
            hdrs = [("Accept", "application/json")] if base == "/stream/" else []
            yield "path", request(rng.choice(["GET", "DELETE"]), base + "/".join(segs) + query, headers=hdrs, key=key)
        elif kind == 5:
            raw = request(*rng.choice([("POST", "/exec", b"count fuzz/c"), ("GET", "/entity/fuzz/c/a", b""),
                                       ("POST", "/drop", b'{"route":"fuzz/events","payload":1}')]),
                          headers={"Content-Type": "text/plain"}, key=key)
            yield "framing", mutate(rng, raw, 4)
        elif kind == 6:
            inner = json.dumps(json_value(rng))
            depth = rng.choice([10, 200, 800, 1500])
            body = ('{"route":"fuzz/events","payload":' + nested(depth, '{"a":', "}", inner) + "}").encode()
            yield "nested", request("POST", "/drop", body, {"Content-Type": "application/json"}, key)
        elif kind == 7:
            text = "\n".join(rng.choice(DROPS_SEEDS) for _ in range(rng.randint(1, 30)))
            yield "script", request("POST", "/exec", mutate(rng, text.encode(), 8), {}, key)
        else:
            body = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"{\"route\":\"fuzz/c\",\"payload\":\"\xff\"}",
                               b"\x00" * 100, bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))])
            method, path = rng.choice([("POST", "/exec"), ("POST", "/sql"), ("POST", "/drop")])
            yield "bytes", request(method, path, body, {"Content-Type": rng.choice(CONTENT_TYPES[:3])}, key)
