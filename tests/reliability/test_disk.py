"""Disk trouble: a full disk and a failing fsync refuse writes with 503, keep reads, and heal by themselves.

The full disk is real: the data directory is a 4 MiB tmpfs (mounted here as
root; skipped where mounting is not permitted) filled up with a filler file.
The fsync failure is injected in-process at the log's one fsync call
(``WriteAheadLog._fsync``) under a falcon test client.
"""
import errno
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from probes import Client

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs at ``tmp_path/data``; unmounted afterwards."""
    mnt = tmp_path / "data"
    mnt.mkdir()
    if not shutil.which("mount"):  # e.g. wheels/check's PATH of plain tools
        pytest.skip("no mount command on PATH")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip() or res.returncode}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path) -> str:
    """Fill the file system of ``path`` to the last byte; returns the filler's path."""
    filler = os.path.join(path, "filler")
    with open(filler, "wb", buffering=0) as f:
        block = b"\0" * 65536
        while True:
            try:
                f.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        for size in (4096, 512, 1):  # the last partial blocks too
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return filler


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("fsync", ["always", "everysec"])
def test_full_disk_refuses_writes_keeps_reads_and_heals(make_server, small_disk, fsync):
    srv = make_server(data=small_disk, fsync=fsync, heartbeat_s=1)
    c = Client(srv.port, srv.key)
    acked = []
    for i in range(20):
        status, doc = c.json("POST", "/drop", {"route": "disk/events", "payload": {"i": i}})
        assert status == 200
        acked.append(doc["seq"])
    assert c.json("POST", "/drop", {"route": "disk/c", "key": "k", "payload": {"+n": 5}})[0] == 200

    filler = _fill(small_disk)
    n = 5
    try:
        # the log's last page may still have room for a few records: those are fine and acknowledged
        for _ in range(400):
            status, doc = c.json("POST", "/drop", {"route": "disk/c", "key": "k", "payload": {"+n": 1}})
            if status != 200:
                break
            n += 1
        assert status == 503, "a full disk never refused a write"
        for attempt in range(5):  # from then on every write is refused with the catalog's 503
            status, headers, body = c.call("POST", "/drop", {"route": "disk/c", "key": "k", "payload": {"+n": 1}})
            doc = json.loads(body)
            assert status == 503, doc
            assert doc["code"] == "storage_unavailable" and "Traceback" not in doc["error"]
            assert headers["content-type"].startswith("application/json")
            status, doc = c.json("POST", "/drop", {"route": "disk/events", "payload": {"big": "x" * 20000}})
            assert status == 503 and doc["code"] == "storage_unavailable"
        status, doc = c.json("POST", "/exec", "incr disk/c @k .n\nget disk/c @k")
        assert status == 200 and doc[1]["ok"]
        if "code" in doc[0]:
            assert doc[0]["code"] == "storage_unavailable"
        else:  # a binary incr record, smaller than /drop's JSON ones, may still fit the room reserved before
            n += 1
        # reads keep working, and the refused writes changed nothing
        status, doc = c.json("GET", "/entity/disk/c/k")
        assert status == 200 and doc["payload"]["n"] == n
        assert c.json("POST", "/sql", {"query": 'SELECT count(*) AS n FROM "disk/events"'})[1]["rows"] == [{"n": 20}]
        assert c.json("GET", "/health")[0] == 200
    finally:
        os.unlink(filler)
    # the fault clears: writes succeed again without a restart
    status, doc = c.json("POST", "/drop", {"route": "disk/c", "key": "k", "payload": {"+n": 1}})
    assert status == 200, doc
    assert c.json("GET", "/entity/disk/c/k")[1]["payload"]["n"] == n + 1
    c.close()
    srv.stop()
    again = make_server(data=small_disk, fsync=fsync)
    c = Client(again.port, again.key)
    assert c.json("GET", "/entity/disk/c/k")[1]["payload"]["n"] == n + 1  # nothing acknowledged was lost
    rows = c.json("POST", "/sql", {"query": 'SELECT i FROM "disk/events" ORDER BY i'})[1]["rows"]
    assert [r["i"] for r in rows] == list(range(20))
    assert "damaged" not in again.log()
    c.close()


def test_fsync_failure_is_503_and_heals(tmp_path, monkeypatch):
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "web"))
    from webapp import Web

    from ocean.engine import wal

    w = Web(tmp_path / "data", fsync="always")
    try:
        ok = w.client.simulate_post("/drop", json={"route": "f/c", "key": "k", "payload": {"+n": 1}})
        assert ok.status_code == 200
        real = wal.WriteAheadLog._fsync

        def failing(self, fd):
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(wal.WriteAheadLog, "_fsync", failing)
        bad = w.client.simulate_post("/drop", json={"route": "f/c", "key": "k", "payload": {"+n": 1}})
        assert bad.status_code == 503, bad.text
        assert bad.json["code"] == "storage_unavailable" and "fsync" in bad.json["error"]
        res = w.client.simulate_post("/exec", body="incr f/c @k .n", headers={"Content-Type": "text/plain"}).json
        assert res[0]["ok"] is False and res[0]["code"] == "storage_unavailable"
        assert w.client.simulate_get("/entity/f/c/k").status_code == 200  # reads keep working
        assert w.client.simulate_get("/health").status_code == 200
        monkeypatch.setattr(wal.WriteAheadLog, "_fsync", real)
        good = w.client.simulate_post("/drop", json={"route": "f/c", "key": "k", "payload": {"+n": 1}})
        assert good.status_code == 200, good.text
        assert w.engine.store.wal.synced == w.engine.store.wal.appended
    finally:
        w.close()


@pytest.mark.integration
@pytest.mark.slow
def test_full_disk_during_snapshots_leaves_no_debris(make_server, small_disk):
    """Snapshots that fail for want of space leave no half files behind, and later ones succeed."""
    srv = make_server(data=small_disk, fsync="everysec", snapshot_every=10, heartbeat_s=1)
    c = Client(srv.port, srv.key)
    for i in range(30):
        assert c.json("POST", "/drop", {"route": "snap/c", "key": "k", "payload": {"+n": 1, "pad": "y" * 3000}})[0] == 200
    filler = _fill(small_disk)
    try:
        refused = 0
        for i in range(60):
            status, _ = c.json("POST", "/drop", {"route": "snap/c", "key": "k", "payload": {"+n": 1, "pad": "y" * 3000}})
            refused += status == 503
        assert refused
        c.json("GET", "/health")
        time.sleep(2.5)  # the maintainer tries (and fails) to snapshot meanwhile
    finally:
        os.unlink(filler)
    n = c.json("GET", "/entity/snap/c/k")[1]["payload"]["n"]
    for i in range(30):
        assert c.json("POST", "/drop", {"route": "snap/c", "key": "k", "payload": {"+n": 1}})[0] == 200
    time.sleep(2.5)
    debris = [f for f in os.listdir(small_disk) if f.endswith(".tmp") or ".tmp." in f]
    assert not debris, debris
    c.close()
    srv.stop()
    again = make_server(data=small_disk)
    assert Client(again.port, again.key).json("GET", "/entity/snap/c/k")[1]["payload"]["n"] == n + 30


def test_failed_snapshot_write_leaves_no_half_file(tmp_path, monkeypatch):
    """Regression: a snapshot that failed mid-write (ENOSPC) used to leave its .snap.tmp forever."""
    from ocean import Engine
    from ocean.engine import snapshot

    eng = Engine(str(tmp_path / "d"), maintenance=False)
    try:
        for i in range(50):
            eng.save("s/e", {"i": i})
        real, lines = snapshot._dumps, [0]

        def full_disk(obj):
            lines[0] += 1
            if lines[0] > 10:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(obj)

        monkeypatch.setattr(snapshot, "_dumps", full_disk)
        with pytest.raises(OSError):
            eng.snapshot()
        assert not [n for n in os.listdir(tmp_path / "d") if n.endswith(".tmp")]
        monkeypatch.setattr(snapshot, "_dumps", real)
        eng.snapshot()
        eng.save("s/e", {"i": 50})
    finally:
        eng.close()
    # debris from a crash mid-snapshot is removed at the next open
    (tmp_path / "d" / "snapshot-00000000000000000999.snap.tmp").write_bytes(b'{"format": 1')
    eng = Engine(str(tmp_path / "d"), maintenance=False)
    try:
        assert len(list(eng.route_events("s/e"))) == 51
        assert not [n for n in os.listdir(tmp_path / "d") if n.endswith(".tmp")]
    finally:
        eng.close()


def test_log_write_failure_is_503_and_leaves_no_half_record(tmp_path, monkeypatch):
    """An I/O error when the log asks the disk for room acknowledges nothing and writes no byte."""
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "web"))
    from webapp import Web

    from ocean import Engine
    from ocean.engine import wal

    w = Web(tmp_path / "data", fsync="always")
    try:
        assert w.client.simulate_post("/drop", json={"route": "w/c", "key": "k", "payload": {"+n": 1}}).status_code == 200
        real = wal.WriteAheadLog._reserve

        def failing(self, fd, length):
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(wal.WriteAheadLog, "_reserve", failing)
        w.engine.store.wal.release_room()  # no room reserved ahead: every write must ask the disk
        for _ in range(3):
            bad = w.client.simulate_post("/drop", json={"route": "w/c", "key": "k", "payload": {"+n": 1}})
            assert bad.status_code == 503 and bad.json["code"] == "storage_unavailable", bad.text
        batch = w.client.simulate_post("/drop", json=[{"route": "w/e", "payload": 1}, {"route": "w/e", "payload": 2}])
        assert batch.status_code == 503 or all(r["code"] == "storage_unavailable" for r in batch.json), batch.text
        assert w.client.simulate_get("/entity/w/c/k").json["payload"]["n"] == 1  # reads work; nothing half-applied
        monkeypatch.setattr(wal.WriteAheadLog, "_reserve", real)
        assert w.client.simulate_post("/drop", json={"route": "w/c", "key": "k", "payload": {"+n": 1}}).status_code == 200
    finally:
        w.close()
    eng = Engine(str(tmp_path / "data"), maintenance=False)  # the log holds no torn record in the middle
    try:
        assert eng.get("w/c", "k")["payload"]["n"] == 2
        assert list(eng.route_events("w/e")) == []
    finally:
        eng.close()
