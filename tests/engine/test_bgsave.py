"""Snapshots written by a forked child (``bgsave.py``): same file, same state at one seq, same recovery."""
import os
import threading
import time

import pytest

from ocean.engine import bgsave, snapshot


def _files(path):
    return sorted(os.listdir(path))


def test_a_forked_snapshot_holds_the_state_of_its_seq_and_compacts_the_log(make_engine, tmp_path):
    eng = make_engine(fork_snapshots=True)
    for i in range(300):
        eng.incr("c", "k", {"n": 1})
        eng.save("h", {"v": i}, key="x")
        eng.save("ev", {"i": i})
    stop, errs = threading.Event(), []

    def writer():  # writes go on while the child writes
        try:
            while not stop.is_set():
                eng.incr("c", "k", {"n": 1})
                eng.save("ev", {"late": True})
        except Exception as exc:  # pragma: no cover
            errs.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    try:
        name = eng.snapshot()
    finally:
        stop.set()
        t.join(10)
    assert not errs and name and name.endswith(".snap")
    data = str(tmp_path / "data")
    assert not [n for n in _files(data) if n.endswith(".tmp")]
    assert eng.store.snapshots == 1 and eng.store.snapshot_bytes == os.path.getsize(os.path.join(data, name))
    total, events = eng.get("c", "k")["payload"]["n"], len(list(eng.route_events("ev")))
    history = eng.history("h", "x")
    eng.close()
    again = make_engine()
    assert again.get("c", "k")["payload"]["n"] == total
    assert len(list(again.route_events("ev"))) == events
    assert again.history("h", "x") == history


def test_a_forked_snapshot_file_loads_like_an_in_process_one(make_engine, tmp_path):
    """Same format: the child's file, read back, equals the file the in-process writer makes."""
    eng = make_engine()
    for i in range(50):
        eng.drop_many([{"route": "r", "payload": {"i": i}}, {"route": "e", "key": f"k{i % 7}", "payload": {"+n": i}}])
    eng.save("e", {"a": [1, {"b": None}]}, key="plain")
    data = str(tmp_path / "data")
    eng.store.fork = False
    inline = open(os.path.join(data, eng.snapshot()), "rb").read()
    eng.store.fork = True
    forked = open(os.path.join(data, eng.snapshot()), "rb").read()
    assert forked.split(b"\n")[1:] == inline.split(b"\n")[1:]  # the header names its seq; the rest is the same


def test_a_failing_child_reports_its_error_and_leaves_no_half_file(make_engine, tmp_path, monkeypatch):
    import errno

    eng = make_engine(fork_snapshots=True)
    for i in range(50):
        eng.save("s/e", {"i": i})
    real, lines = snapshot._dumps, [0]

    def full_disk(obj):  # runs in the child (the fork copies the patched module)
        lines[0] += 1
        if lines[0] > 10:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj)

    monkeypatch.setattr(snapshot, "_dumps", full_disk)
    with pytest.raises(OSError) as info:
        eng.snapshot()
    assert info.value.errno == errno.ENOSPC and "No space left" in str(info.value)
    assert not [n for n in _files(str(tmp_path / "data")) if n.endswith(".tmp")]
    monkeypatch.setattr(snapshot, "_dumps", real)
    assert eng.snapshot()
    eng.save("s/e", {"i": 50})
    eng.close()
    assert len(list(make_engine().route_events("s/e"))) == 51


def test_closing_ends_a_running_child_and_keeps_every_write(make_engine, tmp_path, monkeypatch):
    eng = make_engine(fork_snapshots=True)
    for i in range(20):
        eng.save("s/e", {"i": i})
    real = snapshot.write

    def slow_write(path, view):  # the child hangs until killed
        time.sleep(60)
        return real(path, view)

    monkeypatch.setattr(snapshot, "write", slow_write)
    done = []
    t = threading.Thread(target=lambda: done.append(eng.snapshot()))
    t.start()
    deadline = time.monotonic() + 10
    while eng.store._child is None and time.monotonic() < deadline:
        time.sleep(0.01)
    pid = eng.store._child.pid
    t0 = time.monotonic()
    eng.close()
    t.join(10)
    assert not t.is_alive() and done == [None] and time.monotonic() - t0 < 5
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped
    monkeypatch.setattr(snapshot, "write", real)
    assert len(list(make_engine().route_events("s/e"))) == 20


def test_the_child_is_reaped_even_when_a_sigchld_handler_took_it(tmp_path):
    """A child reaped by someone else (gevent's SIGCHLD watcher) still reports through its pipe."""
    from ocean import Engine

    eng = Engine(str(tmp_path / "d"), maintenance=False)
    try:
        eng.save("s/e", {"i": 1})
        with eng._lock:
            child = bgsave.fork(eng.store.path, eng.state, eng.seq, {})
        deadline = time.monotonic() + 30
        while True:  # reap it behind the Child's back
            pid, _ = os.waitpid(child.pid, os.WNOHANG)
            if pid:
                break
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert child.poll() and child.result() == snapshot.snapshot_name(eng.seq)
    finally:
        eng.close()


def test_a_forked_backup_is_whole_and_holds_its_seq(make_engine, tmp_path, monkeypatch):
    from ocean import errors
    from ocean.engine import backup

    eng = make_engine(fork_snapshots=True)
    for i in range(30):
        eng.save("b/e", {"i": i})
        eng.incr("b/c", "k", {"n": 1})
    info = eng.backup(str(tmp_path / "one"))
    assert info["seq"] == eng.seq and info["bytes"] > 0
    assert backup.verify(str(tmp_path / "one"))["seq"] == eng.seq

    def refuse(*args):  # runs in the child; its ocean error comes back as itself
        raise errors.BackupFailed("no room for it")

    monkeypatch.setattr(backup, "write", refuse)
    with pytest.raises(errors.BackupFailed, match="no room for it"):
        eng.backup(str(tmp_path / "two"))
    assert not (tmp_path / "two").exists()
