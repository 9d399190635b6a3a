"""Backups of an open engine and their restore: round trip, checksums, unfinished work, bad targets."""
import os
import shutil
import subprocess
import sys
import textwrap
import threading

import pytest

from ocean import Engine, errors
from ocean.engine import backup
from ocean.keys import KeyStore
from ocean.settings import Settings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from statecheck import dump  # noqa: E402

SETTINGS = Settings.load(environ={}, event_retention=5, history_limit=3)


def _open(path, settings=None, **kw):
    kw.setdefault("maintenance", False)
    return Engine(str(path), settings=settings or SETTINGS, **kw)


def _fill(eng):
    """Every kind of data: entities, removed ones, int/float counters, events with keep and retention, history."""
    for i in range(30):
        eng.save("users", {"name": f"u{i}", "age": i}, key=f"u{i:02d}")
    for i in range(0, 30, 3):
        eng.update("users", f"u{i:02d}", {"age": 100 + i, "+logins": 2})
    eng.remove("users", "u05")
    eng.save("users", {"name": "again"}, key="u05")
    for i in range(200):
        eng.incr("analytics/daily", f"2026-02-{i % 9 + 10}", {"page_views": 1, "ms_total": 0.25})
    eng.incr("big", "k", {"n": 2 ** 62})
    for i in range(40):  # retention 5 (trimmed with some slack): the oldest go
        eng.save("logs/app", {"i": i})
    eng.save("logs/keep", {"short": True}, keep=3600)
    eng.save("logs/keep", {"long": True})
    eng.save("docs", "<html>plain value</html>", key="home", keep=7200)


def test_round_trip_holds_everything_and_serves_as_is(tmp_path):
    eng = _open(tmp_path / "data")
    keys = KeyStore(str(tmp_path / "data"), environ={})
    token, _ = keys.create(name="reader", read=["analytics/*"])
    _fill(eng)
    before, seq = dump(eng), eng.seq
    info = eng.backup(str(tmp_path / "bk"))
    assert info["seq"] == seq and info["path"] == str(tmp_path / "bk") and info["bytes"] > 0
    assert sorted(os.listdir(tmp_path / "bk")) == ["backup.json", "keys.json", "meta.json",
                                                  f"snapshot-{seq:020d}.snap"]
    eng.save("users", {"name": "after the backup"}, key="late")  # not in the backup
    eng.close()

    doc = backup.restore(str(tmp_path / "bk"), str(tmp_path / "restored"))
    assert doc["seq"] == seq
    back = _open(tmp_path / "restored")
    assert dump(back) == before
    assert back.seq == seq and back.entity("users", "late") is None
    assert back.get("analytics/daily", "2026-02-10")["payload"] == {"page_views": 23, "ms_total": 5.75}
    assert back.get("big", "k")["payload"]["n"] == 2 ** 62
    kept = [e["payload"]["i"] for e in back.events("logs/app", 100)]
    assert kept == list(range(39, 39 - len(kept), -1)) and len(kept) < 40
    assert len(back.history("users", "u03")) == 2
    assert back.drop_id(1) == eng.drop_id(1)  # same instance: drop ids survive a restore
    assert back.save("more", {"x": 1})["seq"] == seq + 1
    assert KeyStore(str(tmp_path / "restored"), environ={}).resolve(token).read == ("analytics/*",)
    back.close()
    # ... and the backup directory is itself a data directory (`ocean serve --data DEST`)
    shutil.copytree(tmp_path / "bk", tmp_path / "served")
    served = _open(tmp_path / "served")
    assert dump(served) == before
    served.close()


def test_backup_taken_during_writes_is_a_prefix(tmp_path):
    eng = _open(tmp_path / "data")
    stop, acked = threading.Event(), []

    def writer():
        n = 0
        while not stop.is_set() and n < 200000:
            n += 1
            if n % 500:  # the compiled increment path (it changes records of the current segment in place)
                eng.incr("w/c", "k", {"n": 1})
                seq = eng.seq  # this thread is the only writer
            else:
                seq = eng.drop("w/c", {"+n": 1, "last": n}, key="k")["seq"]
            acked.append((seq, n))

    t = threading.Thread(target=writer)
    t.start()
    while len(acked) < 2000:
        threading.Event().wait(0.001)
    before = acked[-1][0]
    info = eng.backup(str(tmp_path / "bk"))
    stop.set()
    t.join()
    assert info["seq"] >= before
    in_backup = [n for seq, n in acked if seq <= info["seq"]]
    eng.close()
    backup.restore(info["path"], str(tmp_path / "r"))
    back = _open(tmp_path / "r")
    rec = back.get("w/c", "k")
    assert rec["payload"]["n"] == len(in_backup) == in_backup[-1]
    assert rec["version"] == len(in_backup)  # the record too is the one of that seq, not a later one
    back.close()


def test_last_backup_is_remembered_across_opens(tmp_path):
    eng = _open(tmp_path / "data")
    eng.save("a", {"x": 1})
    info = eng.backup()
    assert info["path"].startswith(str(tmp_path / "data-backups") + os.sep)  # beside the data, not in it
    stats = eng.stats()
    assert stats["backup_last_seq"] == 1 and stats["backup_last_bytes"] == info["bytes"]
    eng.close()
    again = _open(tmp_path / "data")
    assert again.last_backup == info
    again.close()


def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x20]))


def _big_backup(tmp_path):
    eng = _open(tmp_path / "data", settings=Settings.load(environ={}))
    for i in range(3000):
        eng.save("users", {"name": f"user number {i}", "bio": "x" * 40}, key=f"u{i}")
    info = eng.backup(str(tmp_path / "bk"))
    eng.close()
    snap = [n for n in os.listdir(info["path"]) if n.endswith(".snap")][0]
    assert os.path.getsize(os.path.join(info["path"], snap)) > 3 * backup.BLOCK
    return info["path"], snap


def test_a_flipped_byte_is_refused_with_file_and_offset(tmp_path):
    src, snap = _big_backup(tmp_path)
    at = 2 * backup.BLOCK + 1234
    _flip(os.path.join(src, snap), at)
    with pytest.raises(errors.DamagedBackup) as exc:
        backup.restore(src, str(tmp_path / "r"))
    assert snap in exc.value.message and f"byte offset {2 * backup.BLOCK}" in exc.value.message
    assert exc.value.code == "damaged_backup"
    assert not os.path.exists(tmp_path / "r")  # checked before anything was written
    _flip(os.path.join(src, snap), at)  # put it back: whole again
    backup.restore(src, str(tmp_path / "r"))


@pytest.mark.parametrize("damage", ["manifest", "truncated", "missing", "meta"])
def test_other_damage_is_refused_before_writing(tmp_path, damage):
    src, snap = _big_backup(tmp_path)
    if damage == "manifest":
        _flip(os.path.join(src, "backup.json"), 40)
        where = "backup.json"
    elif damage == "truncated":
        with open(os.path.join(src, snap), "r+b") as f:
            f.truncate(backup.BLOCK + 7)
        where = f"from byte {backup.BLOCK + 7}"
    elif damage == "missing":
        os.unlink(os.path.join(src, snap))
        where = snap
    else:
        _flip(os.path.join(src, "meta.json"), 3)
        where = "meta.json fails its checksum at byte offset 0"
    os.makedirs(tmp_path / "r")
    with pytest.raises(errors.DamagedBackup) as exc:
        backup.restore(src, str(tmp_path / "r"))
    assert where in exc.value.message
    assert os.listdir(tmp_path / "r") == []


def test_restore_refuses_a_non_empty_or_locked_target(tmp_path):
    eng = _open(tmp_path / "data")
    eng.save("a", {"x": 1}, key="k")
    bk = eng.backup(str(tmp_path / "bk"))["path"]
    other = _open(tmp_path / "other")
    other.save("b", {"y": 2}, key="k")
    with pytest.raises(errors.DataDirLocked):  # a running engine's directory, even with force
        backup.restore(bk, str(tmp_path / "other"), force=True)
    other.close()
    with pytest.raises(errors.InvalidBackupDest) as exc:
        backup.restore(bk, str(tmp_path / "other"))
    assert "--force" in exc.value.message
    backup.restore(bk, str(tmp_path / "other"), force=True)
    back = _open(tmp_path / "other")
    assert back.entity("b", "k") is None and back.get("a", "k")["payload"] == {"x": 1}
    back.close()
    eng.close()


@pytest.mark.parametrize("bad", ["inside", "exists", "file", "dotdot", "under_a_file"])
def test_bad_destinations_are_refused_clearly(tmp_path, bad):
    eng = _open(tmp_path / "data")
    eng.save("a", {"x": 1})
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    (tmp_path / "afile").write_text("mine")
    dest = {"inside": str(tmp_path / "data" / "bk"), "exists": str(tmp_path / "full"),
            "file": str(tmp_path / "afile"), "dotdot": "../escape",
            "under_a_file": str(tmp_path / "afile" / "bk")}[bad]
    with pytest.raises(errors.InvalidBackupDest) as exc:
        eng.backup(dest)
    assert exc.value.status == 400 and exc.value.code == "invalid_destination"
    assert (tmp_path / "full" / "x").read_text() == "mine" and (tmp_path / "afile").read_text() == "mine"
    assert not os.path.exists(tmp_path / "data" / "bk")
    eng.close()


def test_one_backup_at_a_time(tmp_path):
    started, go = threading.Event(), threading.Event()

    def offload(fn, *args):
        if fn is backup.write:
            started.set()
            go.wait(10)
        return fn(*args)

    eng = _open(tmp_path / "data", offload=offload)
    eng.save("a", {"x": 1})
    first = threading.Thread(target=eng.backup, args=(str(tmp_path / "one"),))
    first.start()
    assert started.wait(10)
    eng.save("a", {"x": 2})  # writes go on while the backup is written
    with pytest.raises(errors.BackupRunning):
        eng.backup(str(tmp_path / "two"))
    go.set()
    first.join(10)
    assert backup.verify(str(tmp_path / "one"))["seq"] == 1
    eng.close()


KILLER = textwrap.dedent("""
    import os, sys
    from ocean import Engine
    from ocean.engine import backup
    where = sys.argv[2]
    if where == "mid":      # killed while writing the files
        real = backup._write_file
        backup._write_file = lambda *a, **k: os._exit(9)
    else:                   # killed between the rename and dropping the marker
        real = os.rename
        def rename(a, b):
            real(a, b)
            os._exit(9)
        backup.os.rename = rename
    eng = Engine(sys.argv[1], maintenance=False)
    eng.backup(sys.argv[3])
""")


@pytest.mark.parametrize("where", ["mid", "after_rename"])
def test_a_killed_backup_leaves_nothing_mistaken_for_a_backup(tmp_path, where):
    eng = _open(tmp_path / "data")
    for i in range(50):
        eng.save("a", {"i": i}, key=f"k{i}")
    eng.close()
    dest = str(tmp_path / "backups" / "nightly")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path / "data"), where, dest], env=env,
                          capture_output=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    left = dest + backup.PARTIAL if where == "mid" else dest
    assert os.path.isdir(left) and backup.read_marker(left)["what"] == "backup"
    with pytest.raises(errors.DamagedBackup, match="never finished"):
        backup.restore(left, str(tmp_path / "r"))
    with pytest.raises(errors.IncompleteDataDir):
        Engine(left, maintenance=False)
    assert not os.path.exists(tmp_path / "r") or os.listdir(tmp_path / "r") in ([], ["ocean.lock"])
    # the next backup to the same place clears the debris and succeeds
    eng = _open(tmp_path / "data")
    info = eng.backup(dest)
    eng.close()
    assert sorted(os.listdir(tmp_path / "backups")) == ["nightly"]
    assert backup.verify(info["path"])["seq"] == 50


def test_a_killed_backup_in_backup_dir_is_swept_by_the_next(tmp_path):
    eng = _open(tmp_path / "data")
    eng.save("a", {"x": 1})
    home = str(tmp_path / "data-backups")
    os.makedirs(os.path.join(home, "ocean-old-seq1.partial"))
    backup._write_marker(os.path.join(home, "ocean-old-seq1.partial"), "backup")
    os.makedirs(os.path.join(home, "renamed"))
    with open(os.path.join(home, "renamed", backup.MARKER), "w") as f:
        f.write('{"what": "backup", "pid": 999999999, "host": "%s"}' % backup._HOST)  # a writer long gone
    os.makedirs(os.path.join(home, "kept"))  # not ours (no marker): never touched
    info = eng.backup()
    eng.close()
    assert sorted(os.listdir(home)) == sorted(["kept", os.path.basename(info["path"])])


def test_a_log_with_a_hole_is_refused_not_replayed(tmp_path):
    """What a copy of a live directory can catch: an old snapshot and a segment a later snapshot began."""
    data = tmp_path / "data"
    eng = _open(data)
    for i in range(10):
        eng.save("a", {"i": i}, key=f"k{i}")
    eng.snapshot()  # snapshot-10, log from 11
    old = {n: (data / n).read_bytes() for n in os.listdir(data) if n.endswith(".snap")}
    for i in range(10):
        eng.incr("c", "k", {"n": 1})
    eng.snapshot()  # snapshot-20, log from 21; the earlier files are gone
    eng.save("a", {"late": True}, key="late")
    eng.close()
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(data / "meta.json", copy)
    for name, raw in old.items():
        (copy / name).write_bytes(raw)
    for name in os.listdir(data):
        if name.startswith("wal-"):
            shutil.copy(data / name, copy)
    with pytest.raises(errors.CorruptLog, match="missing seqs 11..20"):
        Engine(str(copy), maintenance=False)
    with pytest.raises(errors.CorruptLog):  # the refusal released the directory: the same answer again
        Engine(str(copy), maintenance=False)


def test_a_marker_whose_writer_is_a_zombie_or_alive_is_judged_right(tmp_path):
    """A killed server's worker may stay a zombie for a while (nobody reaped it yet): it wrote nothing more."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        for _ in range(500):  # bounded: exited (a zombie until waited for)
            with open(f"/proc/{proc.pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    break
            threading.Event().wait(0.01)
        for name, pid in (("zombie", proc.pid), ("alive", 1)):
            d = tmp_path / (name + backup.PARTIAL)
            d.mkdir()
            (d / backup.MARKER).write_text('{"what": "backup", "pid": %d, "host": "%s", "pid_start": %s}'
                                           % (pid, backup._HOST, backup._process_start(pid)))
        assert backup._is_debris(str(tmp_path / ("zombie" + backup.PARTIAL)))
        assert not backup._is_debris(str(tmp_path / ("alive" + backup.PARTIAL)))
    finally:
        proc.wait(10)


def test_a_copy_that_caught_a_segment_before_its_end_is_refused(tmp_path):
    """`cp -r` of a live directory: an older segment copied mid-run, the next one copied after a rotation."""
    data = tmp_path / "data"
    eng = _open(data)
    for i in range(5):
        eng.save("a", {"i": i}, key=f"k{i}")
    eng.publish("_admin/events", {"path": "/x"})  # bus-only: the lease runs 4096 seqs ahead, so the names
    # of the segments alone cannot show the hole
    early = {n: (data / n).read_bytes() for n in os.listdir(data) if n.startswith("wal-")}  # records + zeroed room
    for i in range(5, 10):
        eng.save("a", {"i": i}, key=f"k{i}")
    eng.backup(str(tmp_path / "bk"))  # a backup starts a new segment, as a snapshot does
    eng.save("a", {"i": 10}, key="k10")
    eng.close()
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(data / "meta.json", copy)
    for name in os.listdir(data):
        if name.startswith("wal-"):
            (copy / name).write_bytes(early.get(name) or (data / name).read_bytes())
    assert len(early) == 1 and len([n for n in os.listdir(copy) if n.startswith("wal-")]) == 2
    with pytest.raises(errors.CorruptLog, match="ends at byte"):
        Engine(str(copy), maintenance=False)
    shutil.copy(data / next(iter(early)), copy)  # the whole segment: it opens, with every write
    back = Engine(str(copy), maintenance=False)
    assert back.get("a", "k10")["payload"] == {"i": 10} and back.get("a", "k7")["payload"] == {"i": 7}
    back.close()


def test_an_empty_destination_is_used_and_a_backup_is_never_restored_onto_itself(tmp_path):
    eng = _open(tmp_path / "data")
    eng.save("a", {"x": 1}, key="k")
    (tmp_path / "empty").mkdir()
    info = eng.backup(str(tmp_path / "empty"))
    eng.close()
    assert backup.verify(info["path"])["seq"] == 1
    with pytest.raises(errors.InvalidBackupDest, match="into itself"):
        backup.restore(info["path"], info["path"], force=True)
    assert backup.verify(info["path"])["seq"] == 1
