"""The log and snapshots: replay, torn tails, damage, group commit, disk faults, compaction."""
import logging
import os
import threading

import pytest

from ocean import errors
from ocean.engine.wal import WriteAheadLog, list_segments


def _segments(path):
    return [os.path.join(path, name) for _, name in list_segments(path)]


def test_reopen_replays_everything(make_engine, tmp_path):
    eng = make_engine()
    for i in range(200):
        eng.incr("c", f"k{i % 7}", {"n": 1, "m": 2})
        eng.save("ev", {"i": i})
    eng.save("u", {"a": 1}, key="x", keep=3600)
    eng.close()
    eng2 = make_engine()
    assert sum(eng2.get("c", f"k{i}")["payload"]["n"] for i in range(7)) == 200
    assert len(list(eng2.route_events("ev"))) == 200
    assert eng2.seq == 401
    assert eng2.get("u", "x")["payload"] == {"a": 1}


def test_torn_last_record_is_cut_with_warning(make_engine, tmp_path, caplog):
    eng = make_engine()
    for i in range(10):
        eng.incr("c", "k", {"n": 1})
    eng.close()
    seg = _segments(str(tmp_path / "data"))[-1]
    size = os.path.getsize(seg)
    with open(seg, "r+b") as f:
        f.truncate(size - 5)  # the last record loses its tail
    with caplog.at_level(logging.WARNING):
        eng2 = make_engine()
    assert eng2.get("c", "k")["payload"] == {"n": 9}
    assert "torn record" in caplog.text
    eng2.incr("c", "k", {"n": 1})  # the log is writable after the cut
    eng2.close()
    assert make_engine().get("c", "k")["payload"] == {"n": 10}


def test_flipped_byte_in_the_middle_refuses_to_open(make_engine, tmp_path):
    eng = make_engine()
    for i in range(20):
        eng.save("ev", {"i": i, "pad": "x" * 20})
    eng.close()
    seg = _segments(str(tmp_path / "data"))[-1]
    with open(seg, "r+b") as f:
        f.seek(os.path.getsize(seg) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x55]))
    with pytest.raises(errors.CorruptLog) as info:
        make_engine()
    msg = info.value.message
    assert seg in msg and "byte" in msg and "truncate" in msg


def test_damaged_snapshot_refuses_to_open(make_engine, tmp_path):
    eng = make_engine()
    eng.incr("c", "k", {"n": 1})
    name = eng.snapshot()
    eng.close()
    full = str(tmp_path / "data" / name)
    data = bytearray(open(full, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(full, "wb").write(bytes(data))
    with pytest.raises(errors.CorruptLog) as info:
        make_engine()
    assert name in info.value.message


def test_snapshot_compacts_log_and_keeps_writing(make_engine, tmp_path):
    eng = make_engine()
    for i in range(500):
        eng.incr("c", "k", {"n": 1})
        eng.save("h", {"v": i}, key="x")
    old_segments = _segments(str(tmp_path / "data"))
    stop, errs = threading.Event(), []

    def writer():
        try:
            while not stop.is_set():
                eng.incr("c", "k", {"n": 1})
        except Exception as exc:  # pragma: no cover
            errs.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    eng.snapshot()
    stop.set()
    t.join(5)
    assert not errs
    assert not any(os.path.exists(seg) for seg in old_segments)  # the snapshot covers them
    total = eng.get("c", "k")["payload"]["n"]
    hist = len(eng.history("h", "x"))
    eng.close()
    eng2 = make_engine()
    assert eng2.get("c", "k")["payload"]["n"] == total
    assert len(eng2.history("h", "x")) == hist
    assert len([n for n in os.listdir(tmp_path / "data") if n.endswith(".snap")]) == 1


def test_group_commit_shares_fsyncs(make_engine):
    eng = make_engine(fsync="always")
    n_threads, per = 8, 50
    threads = [threading.Thread(target=lambda: [eng.incr("c", "k", {"n": 1}) for _ in range(per)])
               for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    st = eng.stats()
    assert eng.get("c", "k")["payload"]["n"] == n_threads * per
    assert 0 < st["fsyncs"] <= n_threads * per
    assert eng.store.wal.synced == eng.store.wal.appended


def test_disk_failure_refuses_writes_then_recovers(make_engine, monkeypatch):
    eng = make_engine(fsync="always")
    eng.incr("c", "k", {"n": 1})

    def full_disk(self, fd, length):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(WriteAheadLog, "_reserve", full_disk)
    eng.store.wal.release_room()  # the room reserved ahead is used up: the next write asks the disk
    for write in (lambda: eng.incr("c", "k", {"n": 1}), lambda: eng.save("e", {"x": 1}),
                  lambda: eng.incr("c", "new", {"n": 1})):
        with pytest.raises(errors.StorageError) as info:
            write()
        assert info.value.status == 503 and "No space" in info.value.message
    assert eng.get("c", "k")["payload"] == {"n": 1}  # reads work, nothing applied
    assert eng.entity("c", "new") is None and eng.events("e") == []
    monkeypatch.undo()
    assert eng.incr("c", "k", {"n": 1}) == {"n": 2}
    eng.close()
    assert make_engine().get("c", "k")["payload"] == {"n": 2}


def test_a_nearly_full_disk_reserves_just_what_a_record_needs(make_engine, monkeypatch):
    eng = make_engine()
    eng.incr("c", "k", {"n": 1})
    asked = []
    real = WriteAheadLog._reserve

    def tight(self, fd, length):
        asked.append(length)
        if length > self.log.size + 8192:
            raise OSError(28, "No space left on device")
        real(self, fd, length)

    monkeypatch.setattr(WriteAheadLog, "_reserve", tight)
    eng.store.wal.release_room()
    assert eng.incr("c", "k", {"n": 1}) == {"n": 2}
    assert len(asked) == 2 and asked[1] < asked[0]  # the chunk was refused, the exact room taken
    eng.close()
    assert make_engine().get("c", "k")["payload"] == {"n": 2}


def test_fsync_failure_is_not_acknowledged(make_engine, monkeypatch):
    eng = make_engine(fsync="always")

    def bad_fsync(self, fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(WriteAheadLog, "_fsync", bad_fsync)
    with pytest.raises(errors.StorageError):
        eng.incr("c", "k", {"n": 1})
    monkeypatch.undo()
    eng.incr("c", "k", {"n": 1})


def test_failed_apply_is_skipped_on_replay(make_engine):
    eng = make_engine()
    eng.incr("c", "k", {"n": 2 ** 63 - 1})
    with pytest.raises(errors.CounterOverflow):
        eng.incr("c", "k", {"n": 1})
    eng.incr("c", "k", {"m": 1})
    seq = eng.seq
    eng.close()
    eng2 = make_engine()
    assert eng2.get("c", "k")["payload"] == {"n": 2 ** 63 - 1, "m": 1}
    assert eng2.seq == seq


def test_keep_survives_restart(make_engine, monkeypatch):
    import time as _time
    eng = make_engine()
    eng.save("s", {"a": 1}, key="k", keep=5)
    eng.close()
    base = _time.time_ns()
    eng2 = make_engine()
    assert eng2.entity("s", "k") is not None
    monkeypatch.setattr(_time, "time_ns", lambda: base + 6 * 10 ** 9)
    assert eng2.entity("s", "k") is None
