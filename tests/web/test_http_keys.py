"""The key store (SPEC section 4): hashed at rest, scopes, revocation, the admin key."""
import json
import os

import pytest

from ocean import errors
from ocean.keys import FILENAME, KeyStore, token_hash


def test_tokens_are_stored_only_as_hashes(tmp_path):
    ks = KeyStore(str(tmp_path), environ={})
    admin = ks.ensure_admin()
    token, rec = ks.create(name="dash", read=["analytics/*"])
    raw = (tmp_path / FILENAME).read_text()
    assert admin not in raw and token not in raw
    assert token_hash(token) in raw and token_hash(admin) in raw
    assert "hash" not in json.dumps(ks.list())
    assert oct(os.stat(tmp_path / FILENAME).st_mode & 0o777) == "0o600"
    assert not [p for p in os.listdir(tmp_path) if ".tmp." in p]  # the atomic write left no temp file


def test_admin_key_is_made_once(tmp_path):
    ks = KeyStore(str(tmp_path), environ={})
    token = ks.ensure_admin()
    assert token and ks.ensure_admin() is None
    assert KeyStore(str(tmp_path), environ={}).ensure_admin() is None
    access = ks.resolve(token)
    assert access.admin and access.can_write("_admin/daily")


def test_env_admin_key_replaces_the_generated_one(tmp_path):
    ks = KeyStore(str(tmp_path), environ={"OCEAN_ADMIN_KEY": "from-env"})
    assert ks.ensure_admin() is None and not (tmp_path / FILENAME).exists()
    assert ks.resolve("from-env").admin
    with pytest.raises(errors.Unauthorized):
        ks.resolve("from-env ")


def test_scopes_and_revocation(tmp_path):
    ks = KeyStore(str(tmp_path), environ={})
    token, rec = ks.create(name="dash", read=["analytics/*"], write=["analytics/events"])
    a = ks.resolve(token)
    assert a.can_read("analytics/daily") and not a.can_read("users")
    assert a.can_write("analytics/events") and not a.can_write("analytics/daily")
    other = KeyStore(str(tmp_path), environ={})  # another process: `ocean key revoke`
    other.revoke("dash")
    with pytest.raises(errors.Unauthorized):
        ks.resolve(token)  # at once: the file changed, the store re-reads it
    assert not ks.is_active(rec["id"])
    with pytest.raises(errors.NotFound):
        other.revoke(rec["id"])


def test_a_key_file_made_after_the_start_is_read_at_the_next_request(tmp_path):
    ks = KeyStore(str(tmp_path), environ={"OCEAN_ADMIN_KEY": "from-env-0123456789"})
    assert not (tmp_path / FILENAME).exists() and ks.resolve("from-env-0123456789").admin
    token, _ = KeyStore(str(tmp_path), environ={}).create(name="late", write=["a/*"])  # `ocean key create`
    assert ks.resolve(token).can_write("a/b")
    assert ks.resolve(token) is ks.resolve(token)  # one Access per key, built when the file is read


def test_an_unchanged_key_file_costs_no_stat_per_request(tmp_path, monkeypatch):
    ks = KeyStore(str(tmp_path), environ={})
    token, _ = ks.create(name="dash", read=["a/*"])
    ks.resolve(token)
    reads = []
    monkeypatch.setattr(ks, "_file_stamp", lambda real=ks._file_stamp: reads.append(1) or real())
    for _ in range(50):
        ks.resolve(token)
    assert reads == []  # the shared generation did not move, and RECHECK_S has not passed
    KeyStore(str(tmp_path), environ={}).create(name="other", read=["b/*"])  # another process writes
    ks.resolve(token)
    assert reads == [1]  # the bump is seen at the next request


def test_a_key_file_edited_by_hand_is_read_within_the_recheck(tmp_path, monkeypatch):
    ks = KeyStore(str(tmp_path), environ={})
    token, _ = ks.create(name="dash", read=["a/*"])
    assert ks.resolve(token).can_read("a/x")
    doc = json.loads((tmp_path / FILENAME).read_text())
    doc["keys"][0]["revoked_at"] = "2026-01-01T00:00:00.000Z"
    (tmp_path / FILENAME).write_text(json.dumps(doc) + "\n")  # no KeyStore: no generation bump
    clock = [0.0]
    monkeypatch.setattr("ocean.keys.time.monotonic", lambda: clock[0])
    ks._recheck_at = 0.5
    ks.resolve(token)  # within RECHECK_S of the last read: still the old file
    clock[0] = 1.0
    with pytest.raises(errors.Unauthorized):
        ks.resolve(token)


def test_without_a_generation_file_every_request_checks_the_key_file(tmp_path, monkeypatch):
    monkeypatch.setattr("ocean.keys.Generation.open", classmethod(lambda cls, path: None))  # e.g. read-only
    ks = KeyStore(str(tmp_path), environ={})
    token, _ = ks.create(name="dash", read=["a/*"])
    ks.resolve(token)
    doc = json.loads((tmp_path / FILENAME).read_text())
    doc["keys"][0]["revoked_at"] = "2026-01-01T00:00:00.000Z"
    (tmp_path / (FILENAME + ".new")).write_text(json.dumps(doc))
    os.replace(tmp_path / (FILENAME + ".new"), tmp_path / FILENAME)
    with pytest.raises(errors.Unauthorized):
        ks.resolve(token)


@pytest.mark.parametrize("bad", [None, "", "nope"])
def test_missing_or_unknown_key_is_401(tmp_path, bad):
    with pytest.raises(errors.Unauthorized):
        KeyStore(str(tmp_path), environ={}).resolve(bad)


def test_create_validates_scopes(tmp_path):
    ks = KeyStore(str(tmp_path), environ={})
    with pytest.raises(errors.OceanError):
        ks.create(read=["bad route/*"])
    with pytest.raises(errors.OceanError):
        ks.create()


def test_http_scopes(web):
    token, _ = web.keys.create(read=["analytics/*"], write=["analytics/events"])
    c = web.as_key(token)
    web.engine.save("analytics/daily", {"n": 1}, key="d")
    web.engine.save("users", {"n": 1}, key="u")
    assert c.simulate_get("/entity/analytics/daily/d").status_code == 200
    assert c.simulate_get("/entity/users/u").status_code == 403
    assert c.simulate_post("/drop", json={"route": "analytics/events", "payload": {"a": 1}}).status_code == 200
    assert c.simulate_post("/drop", json={"route": "analytics/daily", "key": "d", "payload": {"+n": 1}}).status_code == 403
    assert c.simulate_delete("/entity/analytics/daily/d").status_code == 403
    assert c.simulate_get("/live/*").status_code == 403  # a scope never widens to everything
    assert web.engine.get("analytics/daily", "d")["payload"] == {"n": 1}


def test_the_401_hint_names_all_three_ways_to_send_a_key_and_each_works(web):
    """X-Ocean-Key, Authorization: Bearer and ?_key= are all accepted, so the hint names all three."""
    web.engine.save("a", {"n": 1}, key="k")
    r = web.anon.simulate_get("/entity/a/k")
    assert r.status_code == 401 and r.json["code"] == "unauthorized"
    for way in ("X-Ocean-Key", "Authorization: Bearer", "?_key="):
        assert way in r.json["error"], r.json["error"]
    token, _ = web.keys.create(read=["a"])
    assert web.anon.simulate_get("/entity/a/k", headers={"X-Ocean-Key": token}).status_code == 200
    assert web.anon.simulate_get("/entity/a/k", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert web.anon.simulate_get("/entity/a/k", params={"_key": token}).status_code == 200
    assert web.anon.simulate_post("/exec", body="get a @k", headers={"Content-Type": "text/plain"}).status_code == 401
