"""The chunked event store (engine/chunks.py, chunkio.py, events.py): exact round trips, seal
boundaries, retention across chunks, keep expiry, snapshots, and format-1 data directories."""
from __future__ import annotations

import json
import os
import shutil

import pytest
from hypothesis import given, settings, strategies as st

from ocean.engine import events as events_mod
from ocean.engine.chunkio import from_parts, to_parts
from ocean.engine.chunks import Chunk
from ocean.engine.events import EventLog

DATA = os.path.join(os.path.dirname(__file__), "data")

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2 ** 63), 2 ** 63 - 1), st.integers(-(2 ** 80), 2 ** 80),
    st.floats(allow_nan=False), st.just(1.0), st.just(-0.0), st.just(0), st.text(max_size=8),
    st.sampled_from(["", "a", "\u2603", "\U0001F600", "null"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)), max_leaves=6)
names = st.sampled_from(["a", "b", "path", "status", "ms", "", "\u00e9", "x y"])
numbers = st.one_of(st.integers(-300, 300), st.floats(allow_nan=False), st.integers(2 ** 53 - 1, 2 ** 53 + 1),
                    st.just(-0.0))
payloads = st.one_of(st.dictionaries(names, values, max_size=5), st.dictionaries(names, scalars, max_size=5),
                     st.dictionaries(names, numbers, max_size=5), values)
rows_of = st.lists(st.tuples(payloads, st.sampled_from([0, 0, 0, 5_000, 50_000]), st.sampled_from([None, "api", "x"])),
                   max_size=60)


def _rows(specs, first=1):
    return [(first + 3 * i, 1_000 + i, p, exp, src) for i, (p, exp, src) in enumerate(specs)]


def exact(value):
    """A value with every type spelled out: ``1``, ``1.0`` and ``True`` differ, and so does key order."""
    if isinstance(value, dict):
        return ["d", [[k, exact(v)] for k, v in value.items()]]
    if isinstance(value, (list, tuple)):
        return ["l", [exact(v) for v in value]]
    return [type(value).__name__, repr(value)]


@settings(max_examples=300, deadline=None)
@given(rows_of)
def test_a_chunk_gives_back_exactly_what_it_sealed(specs):
    rows = _rows(specs)
    chunk = Chunk.seal(rows, {})
    assert exact(chunk.rows(0, chunk.n)) == exact(rows)
    for lo, hi in ((0, 1), (1, 7), (len(rows) // 2, len(rows))):
        assert exact(chunk.rows(lo, hi)) == exact(rows[lo:hi])
    header, bufs = to_parts(chunk)  # and so does its snapshot form (the header goes through JSON)
    loaded = from_parts(json.loads(json.dumps(header)), b"".join(bytes(b) for b in bufs))
    assert exact(loaded.rows(0, loaded.n)) == exact(rows)
    if rows:
        assert exact(chunk.cut(len(rows) // 2).rows(0, len(rows) - len(rows) // 2)) == exact(rows[len(rows) // 2:])


def test_typed_columns_for_typed_fields():
    rows = _rows([({"path": f"/p/{i % 3}", "status": 200 if i % 4 else 404, "ms": 12.5, "ok": i % 2 == 0}, 0, "api")
                  for i in range(100)])
    chunk = Chunk.seal(rows, {})
    assert {k: c.kind for k, c in chunk.fields.items()} == {"path": "s", "status": "i", "ms": "f", "ok": "b"}
    mixed = Chunk.seal(_rows([({"ms": 12 if i % 2 else 12.5}, 0, None) for i in range(10)]), {})
    assert mixed.fields["ms"].kind == "n" and exact([p["ms"] for p in mixed.payloads(0, 10)]) == exact([12.5, 12] * 5)
    assert chunk.fields["status"].data.itemsize == 1 and chunk.seq.data.itemsize == 2
    assert chunk.nbytes() < 100 * 24


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(events_mod, "ROWS", 8)


def _log(rows):
    log = EventLog()
    for r in rows:
        log.append(r)
    return log


def test_seal_boundaries_and_paging(small_chunks):
    rows = _rows([({"i": i}, 0, None) for i in range(30)])
    log = _log(rows)
    assert len(log.chunks) == 3 and len(log.tail) == 6 and len(log) == 30
    assert list(log.live(0)) == rows
    for before in (None, rows[0][0], rows[7][0], rows[8][0], rows[9][0], rows[24][0], rows[-1][0] + 1):
        for limit in (1, 5, 8, 9, 100):
            want = [r for r in reversed(rows) if before is None or r[0] < before][:limit]
            assert log.newest(limit, before, 0) == want, (before, limit)
    for after in (0, rows[6][0], rows[7][0], rows[23][0], rows[-1][0]):
        for limit in (1, 3, 8, 100):
            assert log.after(after, limit) == [r for r in rows if r[0] > after][:limit]


def test_retention_across_chunks(small_chunks):
    rows = _rows([({"i": i}, 0, None) for i in range(30)])
    log = _log(rows)
    view = log.view()
    assert log.trim(11, 0) == [r[0] for r in rows[:19]]
    assert list(log.live(0)) == rows[19:] and len(log) == 11
    assert list(view.rows()) == rows  # a view taken before keeps its events
    assert log.trim(3, 0) == [r[0] for r in rows[19:27]] and list(log.live(0)) == rows[27:]
    assert log.trim(3, 0) == []


def test_keep_expiry_in_chunks_and_tail(small_chunks):
    rows = _rows([({"i": i}, 5_000 if i % 3 == 0 else 0, None) for i in range(30)])
    log = _log(rows)
    assert log.expiring == 10
    assert [r[0] for r in log.newest(100, None, 5_000)] == [r[0] for r in reversed(rows) if not r[3]]
    view = log.view()
    dropped = log.trim(0, 4_999)
    assert dropped == [] and len(log) == 30
    dropped = log.trim(0, 5_000)
    assert dropped == [r[0] for r in rows if r[3]] and log.expiring == 0 and len(log) == 20
    live = [r for r in rows if not r[3]]
    assert list(log.live(0)) == live and log.after(0, 100) == live
    assert log.newest(4, None, 0) == live[::-1][:4]
    assert list(view.rows()) == rows
    assert log.trim(5, 0) == [r[0] for r in live[:15]] and list(log.live(0)) == live[15:]


def test_engine_events_survive_a_snapshot_and_a_restart(make_engine, monkeypatch):
    monkeypatch.setattr(events_mod, "ROWS", 16)
    eng = make_engine()
    odd = [{"a": 1}, {"a": 1.0}, {"a": True}, {"a": None}, {}, {"b": 2, "a": 1}, "bare", [1, {"x": 2 ** 70}], 3.5]
    for i in range(100):
        eng.drop("r/odd", odd[i % len(odd)], source="s" if i % 2 else None)
    eng.drop("r/kept", {"k": 1}, keep=10 ** 6)
    before = {r: eng.events(r, 1000) for r in ("r/odd", "r/kept")}
    eng.snapshot()
    eng.drop("r/odd", {"after": "snapshot"})
    before["r/odd"].insert(0, eng.events("r/odd", 1)[0])
    eng.close()
    eng = make_engine()
    after = {r: eng.events(r, 1000) for r in ("r/odd", "r/kept")}
    assert exact(after) == exact(before)
    assert len(eng.state.events["r/odd"].chunks) == 6
    assert eng.event_bytes() == sum(c.nbytes() for c in eng.state.events["r/odd"].chunks) > 0


def test_a_format_1_data_directory_opens(make_engine, tmp_path):
    """``data/format1`` was written by ocean before chunks (make_format1.py); it opens, answers alike,
    and its next snapshot is format 2."""
    shutil.copytree(os.path.join(DATA, "format1"), tmp_path / "data", dirs_exist_ok=True)
    with open(os.path.join(DATA, "format1_expected.json")) as f:
        expected = json.load(f)
    eng = make_engine()
    for route, events in expected.items():
        assert exact(eng.events(route, 10000)) == exact(events)
    eng.drop("web/other", {"new": 1})  # something to snapshot
    name = eng.snapshot()
    eng.close()
    with open(tmp_path / "data" / name, "rb") as f:
        assert json.loads(f.readline())["snapshot"] == 2
    eng = make_engine()
    for route, events in expected.items():
        assert exact(eng.events(route, 10000)) == exact(events)


ops = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(1, 20), st.sampled_from([0, 0, 100, 200])),
    st.tuples(st.just("trim"), st.integers(0, 40), st.integers(0, 250))), max_size=25)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_a_log_behaves_as_a_list_of_rows(script):
    """Appends, retention and expiry against the plain list of rows the log used to be."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(events_mod, "ROWS", 6)
        _run(script)


def _run(script):
    log, model, seq, views = EventLog(), [], 0, []
    for op in script:
        if op[0] == "append":
            for _ in range(op[1]):
                seq += 1
                payload = {"i": seq, "s": f"v{seq % 3}"} if seq % 5 else [seq]
                row = (seq, seq * 10, payload, op[2], "x" if seq % 2 else None)
                log.append(row)
                model.append(row)
        else:
            retention, now = op[1], op[2]
            kept = [r for r in model if not r[3] or r[3] > now]
            if retention and len(kept) > retention:
                kept = kept[len(kept) - retention:]
            gone = sorted({r[0] for r in model} - {r[0] for r in kept})
            assert log.trim(retention, now) == gone
            model = kept
        views.append((log.view(), list(model)))
        assert len(log) == len(model) and log.expiring == sum(1 for r in model if r[3])
        assert list(log.live(0)) == model
        assert log.newest(7, None, 150) == [r for r in reversed(model) if not r[3] or r[3] > 150][:7]
        assert log.after(seq // 2, 9) == [r for r in model if r[0] > seq // 2][:9]
    for view, rows in views:  # every view still reads as the log was when it was taken
        assert list(view.rows()) == rows


@pytest.mark.parametrize("damage", ["flip a column byte", "cut in a chunk"])
def test_a_damaged_chunk_refuses_to_open(make_engine, monkeypatch, tmp_path, damage):
    from ocean import errors

    monkeypatch.setattr(events_mod, "ROWS", 16)
    eng = make_engine()
    for i in range(40):
        eng.drop("r/e", {"i": i, "s": f"v{i % 3}"})
    name = eng.snapshot()
    eng.close()
    path = tmp_path / "data" / name
    raw = path.read_bytes()
    at = raw.index(b'["K",')
    at = raw.index(b"\n", at) + 5  # inside the first chunk's column bytes
    path.write_bytes(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1:] if damage.startswith("flip") else raw[:at])
    with pytest.raises(errors.CorruptLog, match="snapshot .* is damaged"):
        make_engine()
