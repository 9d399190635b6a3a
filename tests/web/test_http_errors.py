"""The one JSON error shape, pinned on every endpoint (SPEC section 3)."""
import json

import pytest

from ocean import errors

JSON = {"Content-Type": "application/json"}

# (method, path, body, headers, expected status, expected code) -- one failure per endpoint at least
CASES = [
    ("POST", "/exec", "x" * 200, {"Content-Type": "image/png"}, 415, "unsupported_media_type"),
    ("POST", "/exec", '{"query": 1}', JSON, 400, "bad_request"),
    ("POST", "/sql", b"\xff\xfe", {"Content-Type": "text/plain"}, 400, "bad_request"),
    ("POST", "/drop", "{oops", JSON, 400, "bad_request"),
    ("POST", "/drop", '{"route": "a b", "payload": 1}', JSON, 400, "invalid_route"),
    ("POST", "/drop", '{"route": "a/b", "payload": {"+n": 1}}', JSON, 400, "invalid_payload"),
    ("POST", "/drop", '"just a string"', JSON, 400, "bad_request"),
    ("POST", "/drop", '{"route": "a/b", "payload": 1, "color": "red"}', JSON, 400, "invalid_payload"),
    ("GET", "/entity/analytics/daily/nope", None, {}, 404, "not_found"),
    ("GET", "/entity/analytics/daily/bad@key", None, {}, 400, "invalid_key"),
    ("DELETE", "/entity/analytics/daily/nope", None, {}, 404, "not_found"),
    ("GET", "/entities/bad//route", None, {}, 400, "invalid_route"),
    ("GET", "/entities/a?limit=zero", None, {}, 400, "bad_request"),
    ("GET", "/live/bad route", None, {}, 400, "invalid_route"),
    ("GET", "/live/a?last_event_id=x", None, {}, 400, "bad_request"),
    ("GET", "/stream/a/*?last=-1", None, {"Accept": "application/json"}, 400, "bad_request"),
    ("GET", "/no/such/endpoint", None, {}, 404, "not_found"),
    ("PUT", "/drop", None, {}, 405, "method_not_allowed"),
    ("POST", "/health", None, {}, 405, "method_not_allowed"),
    ("DELETE", "/metrics", None, {}, 405, "method_not_allowed"),
    ("GET", "/admin/no-such-file.js", None, {}, 404, "not_found"),
    ("POST", "/admin/backup", '{"dest": 5}', JSON, 400, "bad_request"),
    ("POST", "/admin/backup?dest=../out", None, {}, 400, "invalid_destination"),
    ("DELETE", "/admin/backup", None, {}, 405, "method_not_allowed"),
]


def _check_shape(resp, status, code):
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    doc = json.loads(resp.text)
    assert set(doc) <= {"ok", "error", "code", "line", "column"}
    assert doc["ok"] is False and doc["code"] == code
    assert isinstance(doc["error"], str) and doc["error"] and "Traceback" not in doc["error"]


def test_every_endpoint_answers_errors_in_one_shape(web):
    for method, path, body, headers, status, code in CASES:
        resp = web.client.simulate_request(method, path, body=body, headers=headers)
        _check_shape(resp, status, code)
    # no key and a wrong key: 401 on every endpoint that needs one
    for method, path in [("POST", "/exec"), ("POST", "/sql"), ("POST", "/drop"), ("GET", "/entity/a/b"),
                         ("DELETE", "/entity/a/b"), ("GET", "/entities/a"), ("GET", "/live/a"),
                         ("GET", "/stream/a"), ("POST", "/admin/backup"), ("GET", "/admin/backup")]:
        _check_shape(web.anon.simulate_request(method, path, body="{}", headers=JSON), 401, "unauthorized")
        _check_shape(web.as_key("wrong").simulate_request(method, path, body="{}", headers=JSON), 401, "unauthorized")
    # a key without the scope: 403
    token, _ = web.keys.create(read=["other/*"])
    for method, path in [("GET", "/entity/a/b"), ("GET", "/entities/a"), ("GET", "/live/a"), ("GET", "/stream/a")]:
        _check_shape(web.as_key(token).simulate_request(method, path), 403, "forbidden")
    _check_shape(web.as_key(token).simulate_post("/drop", json={"route": "a", "payload": 1}), 403, "forbidden")
    writer, _ = web.keys.create(write=["*"])
    _check_shape(web.as_key(writer).simulate_post("/drop", json={"route": "_admin/x", "payload": 1}), 403, "forbidden")
    _check_shape(web.as_key(writer).simulate_post("/admin/backup"), 403, "forbidden")  # admin keys only


def test_body_limit_is_413(make_web):
    w = make_web(max_body_bytes=16)
    for path in ("/exec", "/sql", "/drop"):
        _check_shape(w.client.simulate_post(path, body="x" * 17, headers={"Content-Type": "text/plain"}), 413, "too_large")


def test_unexpected_failure_is_a_bare_500_and_the_server_keeps_serving(web, monkeypatch, caplog):
    def boom(*a, **k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(web.engine, "get", boom)
    resp = web.client.simulate_get("/entity/a/b")
    _check_shape(resp, 500, "internal")
    assert "secret" not in resp.text
    assert "RuntimeError" in caplog.text  # the traceback goes to the server log only
    monkeypatch.undo()
    assert web.client.simulate_get("/health").status_code == 200


def test_every_catalog_status_maps_through(web, monkeypatch):
    for cls in errors.catalog():
        monkeypatch.setattr(web.engine, "get", lambda *a, _c=cls, **k: (_ for _ in ()).throw(_c("m")))
        resp = web.client.simulate_get("/entity/a/b")
        _check_shape(resp, cls.status, cls.code)


@pytest.mark.parametrize("path", ["/health", "/metrics"])
def test_public_endpoints_need_no_key(web, path):
    assert web.anon.simulate_get(path).status_code == 200
