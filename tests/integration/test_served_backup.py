"""Backups of a real ``ocean serve`` while it serves: under write load, killed mid-way, fsync always, access."""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

from ocean import Engine, errors
from ocean.engine import backup
from ocean.keys import KeyStore
from ocean.settings import Settings
from serverproc import SRC, Server

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from statecheck import dump, log_prefix  # noqa: E402

pytestmark = pytest.mark.integration


class Conn:
    """One keep-alive HTTP connection to a server."""

    def __init__(self, srv, key=None):
        self.c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
        self.key = key or srv.key

    def call(self, method, path, doc=None, key=None):
        body = json.dumps(doc).encode() if doc is not None else None
        headers = {"X-Ocean-Key": key or self.key}
        if body is not None:
            headers["Content-Type"] = "application/json"
        self.c.request(method, path, body=body, headers=headers)
        resp = self.c.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()

    def close(self):
        self.c.close()


def _load(srv, route, n, batch=10000):
    conn = Conn(srv)
    for start in range(0, n, batch):
        drops = [{"route": route, "payload": {"i": i, "path": f"/page/{i % 97}", "ms": i % 13}}
                 for i in range(start, min(n, start + batch))]
        status, out = conn.call("POST", "/drop", drops)
        assert status == 200, out
    conn.close()


def _engine(path):
    return Engine(str(path), settings=Settings.load(environ={}), maintenance=False)


def test_backup_under_write_load_holds_a_prefix_of_the_log(tmp_path):
    srv = Server(str(tmp_path / "data"), snapshot_every=0).start()  # the whole log stays: the oracle
    try:
        _load(srv, "load/bulk", 60000)  # enough that writing the backup takes a while
        stop, acks, errors_seen = threading.Event(), [], []

        def writer(w):
            conn = Conn(srv)
            i = 0
            while not stop.is_set() and i < 100000:
                i += 1
                kind = i % 4
                if kind == 0:
                    doc = {"route": "load/c", "key": f"w{w}", "payload": {"+n": 1, "+f": 0.5}}
                elif kind == 1:
                    doc = {"route": "load/e", "payload": {"w": w, "i": i}}
                elif kind == 2:
                    doc = {"route": "load/s", "key": f"w{w}-{i % 10}", "payload": {"i": i, "a": i, "b": i}}
                else:  # plain fields and an increment in one op: all of it or none
                    doc = {"route": "load/s", "key": f"w{w}-{i % 10}", "payload": {"a": -i, "b": -i, "+v": 1}}
                sent = time.monotonic()
                status, out = conn.call("POST", "/drop", doc)
                if status != 200:
                    errors_seen.append(out)
                    break
                acks.append((sent, time.monotonic(), out["seq"]))
            conn.close()

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acks) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        began = time.monotonic()
        conn = Conn(srv)
        status, info = conn.call("POST", "/admin/backup", {"dest": str(tmp_path / "bk")})
        conn.close()
        ended = time.monotonic()
        time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(60)
        assert status == 200 and errors_seen == [], (info, errors_seen)
        seq = info["seq"]
        before = [s for sent, acked, s in acks if acked < began]
        during = [s for sent, acked, s in acks if sent > began and acked < ended]
        assert before and max(before) <= seq          # every write acknowledged before it began is in it
        assert any(s > seq for _, _, s in acks)       # and writes went on past it
        assert during, "no write was answered while the backup was written"
        health = srv.get_json("/health")
        assert health["last_backup"]["seq"] == seq and "path" not in health["last_backup"]
    finally:
        srv.stop()
    assert backup.restore(str(tmp_path / "bk"), str(tmp_path / "restored"))["seq"] == seq
    kept = log_prefix(str(tmp_path / "data"), seq, str(tmp_path / "prefix"))
    assert kept >= len(before)
    restored, oracle = _engine(tmp_path / "restored"), _engine(tmp_path / "prefix")
    try:
        got, want = dump(restored), dump(oracle)
        assert got.keys() == want.keys()
        for k in want:
            assert got[k] == want[k], k
        for key, rec in ((r["key"], r) for r in got[("entities", "load/s")]):
            assert rec["payload"]["a"] == rec["payload"]["b"], key  # nothing half-written
    finally:
        restored.close()
        oracle.close()


def test_a_server_killed_mid_backup_leaves_no_backup_behind(tmp_path):
    data = tmp_path / "data"
    srv = Server(str(data)).start()
    _load(srv, "load/bulk", 200000)
    dest = str(tmp_path / "backups" / "nightly")
    outcome = []

    def ask():
        try:
            outcome.append(Conn(srv).call("POST", "/admin/backup?dest=" + urllib.parse.quote(dest, safe="")))
        except OSError as exc:  # the server died under the request
            outcome.append(exc)

    t = threading.Thread(target=ask)
    t.start()
    partial = dest + backup.PARTIAL
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(partial, backup.MARKER)) and time.monotonic() < deadline:
        time.sleep(0.002)
    srv.kill()  # SIGKILL, master and worker
    t.join(30)
    assert isinstance(outcome[0], OSError), outcome  # killed before it answered
    assert os.path.isdir(partial) and not os.path.exists(dest)
    with pytest.raises(errors.DamagedBackup, match="never finished"):
        backup.restore(partial, str(tmp_path / "r"))
    with pytest.raises(errors.IncompleteDataDir):
        _engine(partial)
    # the server comes back on its data, and the next backup to the same place clears the debris
    srv = Server(str(data)).start()
    try:
        conn = Conn(srv)
        status, info = conn.call("POST", "/admin/backup", {"dest": dest})
        conn.close()
        assert status == 200, info
    finally:
        srv.stop()
    assert os.listdir(tmp_path / "backups") == ["nightly"]
    assert backup.verify(dest)["seq"] == info["seq"] >= 200000


def test_fsync_always_backup_is_served_as_is(tmp_path):
    srv = Server(str(tmp_path / "data"), fsync="always").start()
    try:
        conn = Conn(srv)
        stop = threading.Event()

        def writer():
            c = Conn(srv)
            while not stop.is_set():
                c.call("POST", "/drop", {"route": "a/c", "key": "bg", "payload": {"+n": 1}})
            c.close()

        t = threading.Thread(target=writer)
        t.start()
        for i in range(50):
            assert conn.call("POST", "/drop", {"route": "a/s", "key": f"k{i}", "payload": {"i": i}})[0] == 200
        assert conn.call("POST", "/exec", {"query": "incr a/c @k .n 5 .f 0.25"})[0] == 200
        status, info = conn.call("POST", "/admin/backup")  # into the default backup_dir
        stop.set()
        t.join(30)
        assert status == 200, info
        assert os.path.dirname(info["path"]) == str(tmp_path / "data") + "-backups"
        status, last = conn.call("GET", "/admin/backup")
        assert last["last_backup"]["path"] == info["path"] and last["backup_dir"] == str(tmp_path / "data-backups")
        metrics = conn.call("GET", "/metrics")[1]
        assert f"ocean_engine_backup_last_seq {info['seq']}" in metrics
        conn.close()
    finally:
        srv.stop()
    served = Server(info["path"], fsync="always").start()  # the backup directory opens as is
    try:
        c = Conn(served)
        assert c.call("GET", "/entity/a/c/k")[1]["payload"] == {"n": 5, "f": 0.25}
        assert c.call("GET", "/entity/a/s/k49")[1]["payload"] == {"i": 49}
        assert served.get_json("/health")["seq"] >= info["seq"]
        c.close()
    finally:
        served.stop()


def test_backups_need_an_admin_key_and_a_usable_destination(tmp_path):
    srv = Server(str(tmp_path / "data")).start()
    try:
        token, _ = KeyStore(srv.data, environ={}).create(name="writer", read=["*"], write=["*"])
        conn = Conn(srv)
        assert conn.call("POST", "/admin/backup", key=token)[0] == 403
        assert conn.call("GET", "/admin/backup", key=token)[0] == 403
        status, out = conn.call("POST", "/admin/backup", key="nope")
        assert status == 401 and out["code"] == "unauthorized"
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "x").write_text("keep me")
        (tmp_path / "afile").write_text("keep me")
        cases = [({"dest": str(tmp_path / "data" / "inside")}, 400, "invalid_destination"),
                 ({"dest": str(tmp_path / "full")}, 400, "invalid_destination"),
                 ({"dest": str(tmp_path / "afile")}, 400, "invalid_destination"),
                 ({"dest": str(tmp_path / "afile" / "under")}, 400, "invalid_destination"),
                 ({"dest": "../../escape"}, 400, "invalid_destination"),
                 ({"dest": 5}, 400, "bad_request"),
                 ({"where": "x"}, 400, "bad_request")]
        for doc, want, code in cases:
            status, out = conn.call("POST", "/admin/backup", doc)
            assert (status, out["ok"], out["code"]) == (want, False, code), (doc, out)
            assert out["error"]
        assert (tmp_path / "full" / "x").read_text() == "keep me" and (tmp_path / "afile").read_text() == "keep me"
        status, out = conn.call("POST", "/admin/backup?dest=named")  # a relative name: inside backup_dir
        assert status == 200 and out["path"] == str(tmp_path / "data-backups" / "named")
        conn.close()

        # the CLI: through the server, and refused on the live directory itself
        env = dict(os.environ, PYTHONPATH=SRC, OCEAN_KEY=srv.key)
        run = lambda *a: subprocess.run([sys.executable, "-m", "ocean", *a], env=env, capture_output=True,  # noqa: E731
                                        text=True, timeout=120)
        cli = run("backup", str(tmp_path / "by-cli"), "--url", srv.url)
        assert cli.returncode == 0 and str(tmp_path / "by-cli") in cli.stdout, cli.stderr
        cli = run("backup", str(tmp_path / "offline"), "--data", srv.data)
        assert cli.returncode == 1 and "in use" in cli.stderr and "--url" in cli.stderr
        cli = run("restore", str(tmp_path / "by-cli"), "--data", srv.data)
        assert cli.returncode == 1 and "in use" in cli.stderr
    finally:
        srv.stop()
    run = lambda *a: subprocess.run([sys.executable, "-m", "ocean", *a], env=dict(os.environ, PYTHONPATH=SRC),  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    cli = run("backup", str(tmp_path / "offline"), "--data", str(tmp_path / "data"))  # stopped: it opens it itself
    assert cli.returncode == 0, cli.stderr
    cli = run("restore", str(tmp_path / "offline"), "--data", str(tmp_path / "data"))
    assert cli.returncode == 1 and "--force" in cli.stderr
    cli = run("restore", str(tmp_path / "offline"), "--data", str(tmp_path / "fresh"))
    assert cli.returncode == 0 and "every checksum good" in cli.stdout, cli.stderr
