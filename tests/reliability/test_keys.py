"""Keys and scopes against a real server: 401/403 on every endpoint, scope tricks, hashes, logs, revocation."""
import json
import os
import socket
import stat
import subprocess
import sys
import time

import pytest

from probes import Client
from serverproc import SRC

pytestmark = pytest.mark.integration

JSON_ACCEPT = {"Accept": "application/json"}
# (method, path, body, extra headers): every endpoint that needs a key, on analytics/daily
ENDPOINTS = [
    ("POST", "/exec", "get analytics/daily @k", {}),
    ("POST", "/sql", 'SELECT * FROM "analytics/daily"', {}),
    ("POST", "/drop", {"route": "analytics/daily", "key": "k", "payload": {"+n": 1}}, {}),
    ("GET", "/entity/analytics/daily/k", None, {}),
    ("DELETE", "/entity/analytics/daily/k", None, {}),
    ("GET", "/entities/analytics/daily", None, {}),
    ("GET", "/live/analytics/daily", None, {}),
    ("GET", "/live/analytics/*", None, {}),
    ("GET", "/stream/analytics/daily", None, JSON_ACCEPT),
    ("GET", "/stream/analytics/*", None, {}),
]


def new_key(data: str, *args) -> tuple[str, str]:
    """``ocean key create`` on the data directory beside the live server: (token, id)."""
    out = subprocess.run([sys.executable, "-m", "ocean", "key", "create", "--data", data, "--json", *args],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}, check=True)
    doc = json.loads(out.stdout)
    return doc["token"], doc["id"]


def revoke(data: str, key_id: str) -> None:
    subprocess.run([sys.executable, "-m", "ocean", "key", "revoke", "--data", data, key_id],
                   capture_output=True, env={**os.environ, "PYTHONPATH": SRC}, check=True)


class Stream:
    """A raw SSE request; ``head()`` gives the status, ``read_until()`` the text so far."""

    def __init__(self, port, path, key=None, headers=None):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        auth = f"X-Ocean-Key: {key}\r\n" if key else ""
        self.s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}{extra}\r\n".encode())
        self.text = b""

    def read_until(self, needle: bytes, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        self.s.settimeout(0.5)
        while needle not in self.text and time.monotonic() < deadline:
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            self.text += chunk
        return self.text

    def status(self) -> int:
        self.read_until(b"\r\n\r\n")
        return int(self.text.split(b" ", 2)[1])

    def close(self):
        self.s.close()


def status_of_call(c, method, path, body, headers, key):
    if path.startswith("/live/") or (path.startswith("/stream/") and not headers):
        st = Stream(c.port, path, key)
        try:
            status = st.status()
            if status != 200:  # an error is a plain JSON answer: read its body
                st.read_until(b"}", timeout=5)
            return status, st.text.split(b"\r\n\r\n", 1)[1]
        finally:
            st.close()
    status, _, data = c.call(method, path, body, headers, key=key)
    return status, data


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from serverproc import Server

    srv = Server(str(tmp_path_factory.mktemp("keys") / "data"), heartbeat_s=1).start()
    c = Client(srv.port, srv.key)
    c.json("POST", "/drop", [{"route": "analytics/daily", "key": "k", "payload": {"n": 1}},
                             {"route": "secret/x", "key": "k", "payload": {"pin": 1234}},
                             {"route": "analyticsX/y", "key": "k", "payload": {"pin": 5678}}])
    yield srv
    srv.stop()


def test_no_key_and_wrong_key_are_401_on_every_endpoint(served):
    c = Client(served.port, None)
    for method, path, body, headers in ENDPOINTS:
        for key in (None, "ok_wrong-key-value", served.key + "x", ""):
            status, data = status_of_call(c, method, path, body, headers, key)
            assert status == 401, (method, path, key, data[:300])
            assert b"unauthorized" in data and (not key or key.encode() not in data)
    # and through the query parameter and the bearer header too
    assert c.call("GET", "/entity/analytics/daily/k?_key=nope", key=None)[0] == 401
    assert c.call("GET", "/entity/analytics/daily/k", headers={"Authorization": "Bearer nope"}, key=None)[0] == 401
    assert c.call("GET", "/entity/analytics/daily/k?_key=" + served.key, key=None)[0] == 200
    for path in ("/health", "/admin", "/metrics"):  # public by default
        assert c.call("GET", path, key=None)[0] == 200


def test_out_of_scope_keys_are_403_on_every_endpoint(served):
    other, _ = new_key(served.data, "--read", "other/*", "--write", "other/*")
    c = Client(served.port, other)
    for method, path, body, headers in ENDPOINTS:
        status, data = status_of_call(c, method, path, body, headers, other)
        if path == "/exec":  # a script answers per command: the command is refused
            assert status == 200 and json.loads(data)[0]["code"] == "forbidden", data
        else:
            assert status == 403, (method, path, data[:300])
            assert json.loads(data)["code"] == "forbidden"


def test_scopes_cannot_be_widened(served):
    reader, _ = new_key(served.data, "--read", "analytics/*", "--write", "analytics/events")
    exact, _ = new_key(served.data, "--read", "analytics/daily")
    c = Client(served.port, reader)
    ok = [("POST", "/sql", 'SELECT key FROM "analytics/daily"'), ("POST", "/sql", 'SELECT * FROM "analytics/*"'),
          ("GET", "/entity/analytics/daily/k", None), ("GET", "/live/analytics/*", None)]
    for method, path, body in ok:
        assert status_of_call(c, method, path, body, {}, reader)[0] == 200, (path, body)
    refused = [
        ("POST", "/sql", 'SELECT * FROM "secret/x"'), ("POST", "/sql", 'SELECT * FROM "*"'),
        ("POST", "/sql", 'SELECT * FROM "analyticsX/y"'), ("POST", "/sql", 'SELECT * FROM "analyticsX/*"'),
        ("POST", "/sql", 'SELECT * FROM "secret/*" WHERE key IN (SELECT key FROM "analytics/daily")'),
        ("POST", "/sql", 'SELECT * FROM "analytics/daily" UNION SELECT * FROM "secret/x"'),
        ("POST", "/sql", 'SELECT * FROM "analytics/../secret/x"'), ("POST", "/sql", 'SELECT * FROM "analytics/*/../../secret/*"'),
        ("POST", "/sql", 'SELECT * FROM "analytics*"'), ("POST", "/sql", 'SELECT * FROM "_admin/daily"'),
        ("GET", "/entity/secret/x/k", None), ("GET", "/entity/analyticsX/y/k", None),
        ("GET", "/entity/analytics/../secret/x/k", None), ("GET", "/entity/analytics/%2e%2e/secret/x/k", None),
        ("GET", "/entity/analytics%2F..%2Fsecret/x/k", None), ("GET", "/entities/analytics/../secret/x", None),
        ("GET", "/entities/*", None), ("GET", "/entities/analytics*", None),
        ("GET", "/live/*", None), ("GET", "/live/secret/x", None), ("GET", "/live/analytics*", None),
        ("GET", "/live/analytics/../secret/*", None), ("GET", "/live/analytics/%2e%2e/secret/*", None),
        ("GET", "/live/analyticsX/*", None), ("GET", "/stream/*", None), ("GET", "/live/_admin/events", None),
        ("POST", "/drop", {"route": "analytics/daily", "key": "k", "payload": {"+n": 1}}),
        ("POST", "/drop", {"route": "analytics/events/../daily", "payload": 1}),
        ("POST", "/drop", {"route": "analytics/events/sub", "payload": 1}),
        ("DELETE", "/entity/analytics/daily/k", None),
    ]
    for method, path, body in refused:
        status, data = status_of_call(c, method, path, body, {}, reader)
        assert status in (400, 403, 404), (path, body, status, data[:300])
        assert b"1234" not in data and b"5678" not in data, (path, body, data[:300])
    for script in ('find secret/*', 'count *', 'secret/x @k', 'history secret/x @k', 'find analyticsX/*',
                   'sql `SELECT * FROM "secret/x"`', 'sql `SELECT * FROM "*"`', 'save analytics/daily @k n: 5',
                   'incr analytics/daily @k .n', 'remove analytics/daily @k', 'find _admin/*'):
        status, doc = c.json("POST", "/exec", script)
        assert status == 200 and doc[0]["ok"] is False and doc[0]["code"] in ("forbidden", "invalid_route"), (script, doc)
    assert c.json("POST", "/drop", {"route": "analytics/events", "payload": {"ok": 1}})[0] == 200
    e = Client(served.port, exact)
    for path in ("/live/analytics/*", "/stream/analytics/*", "/live/analytics"):
        assert status_of_call(e, "GET", path, None, {}, exact)[0] == 403, path
    assert e.json("POST", "/sql", 'SELECT * FROM "analytics/*"')[0] == 403
    assert e.json("GET", "/entity/analytics/daily/k")[0] == 200


def test_system_routes_are_unwritable_without_admin(served):
    wide, _ = new_key(served.data, "--read", "*", "--write", "*")
    c = Client(served.port, wide)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    c.call("GET", "/health")
    time.sleep(1.2)  # accounting writes _admin/* once a second
    for body in ({"route": "_admin/daily", "key": day, "payload": {"+requests": 1000}},
                 {"route": "_admin/events", "payload": {"forged": True}}, {"route": "_x/y", "key": "k", "payload": {}}):
        status, doc = c.json("POST", "/drop", body)
        assert status == 403 and doc["code"] == "forbidden", (body, doc)
    status, doc = c.json("POST", "/drop", [{"route": "_admin/daily", "key": day, "payload": {"+requests": 1}}])
    assert status == 200 and doc[0]["code"] == "forbidden"
    for script in (f"incr _admin/daily @{day} .requests 1000", f"save _admin/status @{day} x: 1",
                   f"update _admin/daily @{day} requests: 0", f"remove _admin/daily @{day}"):
        assert c.json("POST", "/exec", script)[1][0]["code"] == "forbidden", script
    assert c.json("DELETE", f"/entity/_admin/daily/{day}")[0] == 403
    assert c.json("GET", f"/entity/_admin/daily/{day}")[0] == 200  # reading is a read scope's business
    admin = Client(served.port, served.key)
    assert admin.json("POST", "/drop", {"route": "_admin/notes", "key": "k", "payload": {"by": "admin"}})[0] == 200


def test_keys_are_stored_only_as_hashes_and_never_logged(served):
    tokens = [served.key] + [new_key(served.data, "--read", "analytics/*")[0] for _ in range(2)]
    feed = Stream(served.port, "/live/_admin/events", served.key)
    feed.read_until(b"stream open")
    for t in tokens:  # use each token every way a client can send it, failing and succeeding
        c = Client(served.port, None)
        c.call("GET", f"/entity/analytics/daily/k?_key={t}", key=None)
        c.call("GET", "/entity/secret/x/k", headers={"Authorization": f"Bearer {t}"}, key=None)
        c.call("POST", f"/sql?_key={t}", 'SELECT nope FROM "analytics/daily"', key=None)
        c.call("GET", f"/nowhere?_key={t}", key=None)
        c.call("GET", "/entity/analytics/daily/k", key=t + "-not")
        st = Stream(served.port, f"/live/analytics/*?_key={t}")
        st.status()
        st.close()
    feed.read_until(b"/nowhere", timeout=5)
    feed.close()
    time.sleep(1.2)  # let accounting write its counts
    found = []
    for root, _, files in os.walk(served.data):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                blob = f.read()
            found += [(name, t[:6]) for t in tokens if t.encode() in blob]
    assert not found, found
    assert stat.S_IMODE(os.stat(os.path.join(served.data, "keys.json")).st_mode) == 0o600
    log = served.log()
    assert not [t[:6] for t in tokens if t in log]
    assert not [t[:6] for t in tokens if t.encode() in feed.text]  # nor in the request feed


def test_revoked_keys_stop_at_once_also_on_open_streams(served):
    token, key_id = new_key(served.data, "--read", "analytics/*", "--write", "analytics/*", "--name", "to-revoke")
    c = Client(served.port, token)
    assert c.json("GET", "/entity/analytics/daily/k")[0] == 200
    by_header = Stream(served.port, "/live/analytics/*", token)
    by_query = Stream(served.port, f"/live/analytics/*?_key={token}")
    for st in (by_header, by_query):
        assert st.status() == 200
        st.read_until(b"stream open")
    revoke(served.data, key_id)
    t0 = time.monotonic()
    status, doc = c.json("GET", "/entity/analytics/daily/k")  # the very next request
    assert status == 401 and doc["code"] == "unauthorized"
    assert c.json("POST", "/drop", {"route": "analytics/events", "payload": 1})[0] == 401
    for st in (by_header, by_query):
        text = st.read_until(b"event: end", timeout=5)
        assert b"event: end" in text and b"unauthorized" in text, text[-300:]
        st.read_until(b"\r\n0\r\n\r\n", timeout=5)
        assert st.text.endswith(b"\r\n0\r\n\r\n")  # and the stream is over
        st.close()
    assert time.monotonic() - t0 < 4
    assert status_of_call(c, "GET", "/live/analytics/*", None, {}, token)[0] == 401


def test_metrics_need_a_key_when_not_public(make_server):
    srv = make_server(metrics_public=False)
    c = Client(srv.port, None)
    assert c.call("GET", "/metrics", key=None)[0] == 401
    assert c.call("GET", "/metrics", key="wrong")[0] == 401
    assert c.call("GET", "/metrics", key=srv.key)[0] == 200
    assert c.call("GET", "/health", key=None)[0] == 200
