"""The compiled write path (``Writer.incr``, ``Writer.drop_many``, compiled replay) gives
exactly what the engine's Python path gives: state, receipts, published drops, and the
state rebuilt from the log."""
from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocean import Engine, errors


def _python_only(eng: Engine) -> Engine:
    """The same engine, writing through the Python path only (the reference semantics)."""
    eng.incr = eng._incr_python
    eng._sketch_adds = lambda *args: None  # uniq/observe: the Python path
    eng.drop_many = lambda drops, source=None: _python_drop_many(eng, drops, source)
    return eng


def _python_drop_many(eng, drops, source):
    results, i = [None] * len(drops), 0
    while i < len(drops):
        i, ticket = eng._drop_run(drops, i, results, source)
        eng.store.sync(ticket)
    return results


def _state(eng: Engine) -> dict:
    out = {}
    for route in eng.routes():
        for rec in eng.list(route, limit=10 ** 6):
            out[(route, rec["key"])] = (rec["payload"], rec["version"])
        out[route] = [(e["seq"], e["payload"]) for e in eng.events(route, limit=10 ** 6)]
    return out


def _logged(eng: Engine) -> list:
    """Every record body of the engine's log, its op's clock time zeroed."""
    import glob
    import os
    from ocean.engine import ops
    from ocean.kernels import kernel
    scan = kernel("scan_records")
    out = []
    for name in sorted(glob.glob(os.path.join(eng.path, "wal-*.log"))):
        with open(name, "rb") as f:
            for body in scan(f.read())[0]:
                op = ops.decode(body)
                if op[0] == ops.LEASE:
                    continue
                out.append((body[:1], op[:2] + [0] + op[3:]))
    return out


def _published(eng: Engine) -> list:
    return [(m.seq, m.route, m.key, m.op, m.fields) for m in eng.recent("*", 10 ** 6)]


ops_strategy = st.lists(st.tuples(
    st.sampled_from(["incr", "incr", "incr", "save", "update", "remove", "event", "drops", "sketch",
                     "uniq", "observe", "visits", "visits"]),
    st.sampled_from(["a", "b", "_sys"]),
    st.sampled_from(["k1", "k2", "k3"]),
    st.dictionaries(st.sampled_from(["n", "m", "label"]),
                    st.one_of(st.integers(-5, 5), st.floats(-2, 2, allow_nan=False), st.just(2 ** 63 - 3)),
                    min_size=1, max_size=3),
), max_size=40)


def _run(eng: Engine, script) -> list:
    out = []
    for kind, route, key, fields in script:
        try:
            if kind == "incr":
                out.append(eng.incr(route, key, fields, source="src-1"))
            elif kind == "save":
                out.append(eng.save(route, fields, key=key)["seq"])
            elif kind == "update":
                out.append(eng.update(route, key, {("+" + k if type(v) is int else k): v for k, v in fields.items()}))
            elif kind == "remove":
                out.append(eng.remove(route, key))
            elif kind == "event":
                out.append(eng.save(route, fields)["seq"])
            elif kind == "sketch":  # uniq/dist adds beside an increment: the Python path, both engines
                adds = {("~" if i % 2 else "%") + k: v for i, (k, v) in enumerate(fields.items())}
                out.append(eng.drop_many([{"route": route, "key": key, "payload": {"+hits": 1, **adds}},
                                          {"route": route, "key": key, "payload": {"+hits": 1}}]))
                out[-1] = [r if isinstance(r, dict) else type(r).__name__ for r in out[-1]]
            elif kind == "uniq":  # Engine.uniq: strings and integers, one or a list
                out.append(eng.uniq(route, key, {k: (f"u{v}" if type(v) is float else v) for k, v in fields.items()},
                                    source="src-1"))
            elif kind == "observe":
                out.append(eng.observe(route, key, {k: [v, -v] for k, v in fields.items()}))
            elif kind == "visits":  # the common sketch drop: a visitor, a latency, a page view
                n = len(fields)
                batch = [{"route": route, "key": key, "payload": {"+views": 1, "~visitors": f"v{n}", "%ms": 0.5 * n}},
                         {"route": route, "key": key, "payload": {"~visitors": ["a", n, "b"], "+views": 2}},
                         {"route": route, "key": key, "payload": {"%ms": [1, 2.5, n]}},
                         {"route": route, "key": key, "payload": {"%ms": [[2.0, 3]]}},       # a pair: Python
                         {"route": route, "key": key, "payload": {"~ms": "x"}},              # a kind mismatch
                         {"route": route, "key": key, "payload": {"~visitors": [], "+n": 1}},  # no values
                         {"route": route, "key": key, "payload": {"~views": "x"}}]           # a counter
                out.append([r if isinstance(r, dict) else type(r).__name__ for r in eng.drop_many(batch)])
            else:
                batch = [{"route": route, "key": key, "payload": {"+" + k: v for k, v in fields.items()}},
                         {"route": route, "payload": fields},
                         {"route": route, "key": key + "x", "payload": {"+" + k: v for k, v in fields.items()}},
                         {"route": route, "key": key, "payload": {"+" + k: v for k, v in fields.items()}}]
                out.append([r if isinstance(r, dict) else type(r).__name__ for r in eng.drop_many(batch)])
        except errors.OceanError as exc:
            out.append(type(exc).__name__)
    return out


def _strip_times(results):
    if isinstance(results, list):
        return [_strip_times(r) for r in results]
    if isinstance(results, dict):
        return {k: v for k, v in results.items() if k not in ("created_at", "updated_at")}
    return results


@given(ops_strategy)
@settings(max_examples=60, deadline=None)
def test_compiled_and_python_paths_agree_live_and_after_replay(tmp_path_factory, script):
    base = tmp_path_factory.mktemp("agree")
    fast = Engine(str(base / "fast"), fsync="no", maintenance=False)
    slow = _python_only(Engine(str(base / "slow"), fsync="no", maintenance=False))
    slow.instance = slow._writer.instance = fast.instance  # same drop ids
    try:
        assert _strip_times(_run(fast, script)) == _strip_times(_run(slow, script))
        assert _state(fast) == _state(slow)
        assert _published(fast) == _published(slow)
        assert fast.seq == slow.seq
        assert _logged(fast) == _logged(slow)  # the same records (times aside), binary where one is
        live = _state(fast)
    finally:
        fast.close()
        slow.close()
    again = Engine(str(base / "fast"), maintenance=False)
    try:
        assert _state(again) == live  # the binary records replay to the same state
    finally:
        again.close()


def test_a_batch_keeps_its_order_across_both_paths(engine):
    engine.incr("c", "k", {"n": 5})
    out = engine.drop_many([
        {"route": "c", "key": "k", "payload": {"+n": 1}},        # compiled
        {"route": "c", "key": "k", "payload": {"n": 0}},         # a save: Python
        {"route": "c", "key": "k", "payload": {"+n": 1}},        # compiled again
        {"route": "c", "key": "new", "payload": {"+n": 1}},      # a new entity: Python
        {"route": "c", "key": "k", "payload": {"+n": "x"}},      # an error, in its place
        {"route": "c", "key": "k", "payload": {"+n": 1}},
    ])
    assert [r["seq"] for r in out if isinstance(r, dict)] == sorted(r["seq"] for r in out if isinstance(r, dict))
    assert isinstance(out[4], errors.InvalidAmount)
    assert engine.get("c", "k")["payload"]["n"] == 2 and engine.get("c", "new")["payload"] == {"n": 1}
    assert out[0]["drop_id"] == engine.drop_id(out[0]["seq"])


def test_an_overflow_on_the_compiled_path_spends_its_seq_and_replays_the_same(make_engine):
    eng = make_engine()
    eng.incr("c", "k", {"n": 2 ** 63 - 2})
    seq = eng.seq
    with pytest.raises(errors.CounterOverflow):
        eng.incr("c", "k", {"n": 5, "m": 1})
    assert eng.seq == seq + 1 and eng.get("c", "k")["payload"] == {"n": 2 ** 63 - 2}
    out = eng.drop_many([{"route": "c", "key": "k", "payload": {"+n": 9}}, {"route": "c", "key": "k", "payload": {"+m": 1}}])
    assert isinstance(out[0], errors.CounterOverflow) and out[1]["seq"] == seq + 3
    eng.close()
    again = make_engine()
    assert again.get("c", "k")["payload"] == {"n": 2 ** 63 - 2, "m": 1} and again.seq == seq + 3


class _EntityListener:
    """Records the (route, key) of every entity change it hears; the rest it ignores."""

    def __init__(self, heard: list):
        self.heard = heard

    def entity_changed(self, route, key):
        self.heard.append((route, key))

    def entity_removed(self, route, key):
        pass

    def event_added(self, route, record):
        pass

    def events_removed(self, route, seqs):
        pass


def test_listeners_hear_of_compiled_writes(engine):
    heard = []

    engine.incr("c", "k", {"n": 1})
    engine.add_listener(_EntityListener(heard))
    engine.incr("c", "k", {"n": 1})
    assert heard == [("c", "k")]
    engine.drop_many([{"route": "c", "key": "k", "payload": {"+n": 1}}] * 3)
    # the compiled path tells each entity of a batch once; the Python path once per drop
    assert set(heard) == {("c", "k")} and len(heard) == (2 if engine.stats()["implementation"] == "compiled" else 4)


def test_subscribers_get_compiled_writes_in_seq_order(engine):
    engine.incr("c", "k", {"n": 1})
    sub = engine.subscribe("c")
    rnd = random.Random(7)
    for _ in range(50):
        if rnd.random() < 0.5:
            engine.incr("c", "k", {"n": 1})
        else:
            engine.drop_many([{"route": "c", "key": "k", "payload": {"+n": 1}}, {"route": "c", "payload": {"e": 1}}])
    got = []
    while sub.pending():
        got.append(sub.get(0))
    assert [m.seq for m in got] == sorted(m.seq for m in got) and len({m.seq for m in got}) == len(got)
    assert got[-1].seq == engine.seq


def test_the_write_lock_waits_cooperatively_under_gevent(tmp_path):
    """A greenlet parked on I/O while holding the engine's lock (an fsync at rotation) must not
    stall the worker: other greenlets wait by yielding, and all finish."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    import ocean

    code = textwrap.dedent(f"""
        from gevent import monkey; monkey.patch_all()
        import gevent
        from gevent.threadpool import ThreadPool
        from ocean import Engine
        pool = ThreadPool(2)
        eng = Engine({str(tmp_path / "data")!r}, fsync="always", offload=lambda fn, *a: pool.apply(fn, a),
                     maintenance=False)
        eng.incr("c", "k", {{"n": 1}})
        order = []
        def holder():
            with eng._lock:
                order.append("held")
                pool.apply(__import__("time").sleep, (0.05,))  # parked on the threadpool, lock held
                order.append("released")
        def writer(i):
            eng.incr("c", "k", {{"n": 1}})
            order.append(i)
        jobs = [gevent.spawn(holder)] + [gevent.spawn(writer, i) for i in range(5)]
        gevent.joinall(jobs, timeout=20)
        assert all(j.dead for j in jobs), order
        assert order[:2] == ["held", "released"] and sorted(order[2:]) == list(range(5)), order
        assert eng.get("c", "k")["payload"]["n"] == 6 and getattr(eng._lock, "contended", 1) > 0
        eng.close()
        print("ok")
    """)
    src = str(Path(ocean.__file__).resolve().parents[1])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**__import__("os").environ, "PYTHONPATH": src})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_a_snapshot_written_while_counting_holds_the_state_of_its_seq(make_engine, monkeypatch):
    """The compiled path updates entity records in place when no snapshot can hold them:
    increments landing between a snapshot's capture and its write must not leak into it."""
    from ocean.engine import snapshot

    eng = make_engine()
    for _ in range(3):
        eng.incr("c", "k", {"n": 1})
    real = snapshot.write

    def write_while_counting(path, view):
        for _ in range(5):  # live writes go on while the snapshot is written outside the lock
            eng.incr("c", "k", {"n": 1})
        return real(path, view)

    monkeypatch.setattr(snapshot, "write", write_while_counting)
    eng.snapshot()
    for _ in range(2):
        eng.incr("c", "k", {"n": 1})
    live = eng.get("c", "k")
    assert live["payload"] == {"n": 10} and live["version"] == 10
    eng.close()
    assert make_engine().get("c", "k") == live  # version and times too: snapshot + log replay agree


def test_a_snapshot_after_compiled_writes_is_taken_at_the_newest_seq(make_engine):
    """Seqs handed out by the compiled path count for the snapshot: after a restart no seq is reused."""
    eng = make_engine()
    for _ in range(5):
        eng.incr("c", "k", {"n": 1})  # the first through Python, the rest compiled
    eng.drop_many([{"route": "c", "key": "k", "payload": {"+n": 1}}] * 3)
    newest = eng.seq
    eng.snapshot()
    eng.close()
    again = make_engine()
    assert again.seq == newest and again.get("c", "k")["payload"] == {"n": 8}
    assert again.save("c", {"e": 1})["seq"] == newest + 1


def test_logs_with_json_increments_still_replay(make_engine):
    """Logs written before increments were binary hold them as JSON ops; both replay alike."""
    import glob
    import json as json_
    import struct
    import zlib

    eng = make_engine()
    eng.incr("c", "k", {"n": 1})
    eng.close()
    [segment] = glob.glob(eng.path + "/wal-*.log")
    body = json_.dumps(["i", 2, 1767225600000, "c", "k", None, {"n": 5, "m": 1.5}, 0, None]).encode()
    with open(segment, "ab") as f:
        f.write(struct.pack("<II", len(body), zlib.crc32(body)) + body)
    again = make_engine()
    assert again.get("c", "k")["payload"] == {"n": 6, "m": 1.5} and again.seq == 2
    assert again.incr("c", "k", {"n": 1}) == {"n": 7}


def test_a_cached_counter_entity_that_left_its_table_is_not_written(engine):
    # The compiled path keeps the record's counter entity (PERF: no tuple, no look-up);
    # once that entity leaves the table the next increment must find or make the live one.
    assert engine.incr("c", "k", {"n": 1}) == {"n": 1}
    assert engine.incr("c", "k", {"n": 1}) == {"n": 2}  # the cached entity
    engine.state.counters.delete_entity("c", "k")  # the record stays; its counters go
    assert engine.incr("c", "k", {"n": 5}) == {"n": 5}
    assert engine.state.counters.get("c", "k", "n") == 5 and engine.get("c", "k")["payload"] == {"n": 5}
    engine.state.counters.delete_field("c", "k", "n")  # the last counter: the entity leaves too
    assert engine.incr("c", "k", {"n": 2, "m": 1}) == {"n": 2, "m": 1}
    assert engine.get("c", "k")["payload"] == {"n": 2, "m": 1}


def test_a_wide_increment_answers_and_publishes_every_total_in_the_callers_order(tmp_path):
    # 8+ fields: the compiled path builds the totals as a copy of the amounts dict (PERF)
    fast = Engine(str(tmp_path / "fast"), maintenance=False)
    ref = _python_only(Engine(str(tmp_path / "ref"), maintenance=False))
    try:
        fields = [f"f{i}" for i in range(20, 0, -1)]
        for eng in (fast, ref):
            eng.incr("w", "k", dict.fromkeys(fields, 1))
        subs = [eng.subscribe("w") for eng in (fast, ref)]
        amounts = {f: i - 7 for i, f in enumerate(fields)}
        got, want = fast.incr("w", "k", amounts), ref.incr("w", "k", amounts)
        assert got == want == {f: 1 + i - 7 for i, f in enumerate(fields)}
        assert list(got) == fields and got is not amounts and amounts == {f: i - 7 for i, f in enumerate(fields)}
        assert [sub.get(0).fields for sub in subs] == [want, want]
    finally:
        fast.close()
        ref.close()


# -- sketch adds on the compiled path (Writer._sketch_write) --------------------------

def _visit(i: int) -> dict:
    return {"route": "a/daily", "key": "d1", "payload": {"+views": 1, "~visitors": f"u{i}", "%ms": 0.5 + i}}


def test_the_common_sketch_write_takes_the_compiled_path(engine):
    engine.drop_many([_visit(0)])  # a new entity, new fields: the Python path
    python_runs = []
    run = engine._drop_run
    engine._drop_run = lambda drops, i, *rest: python_runs.append(i) or run(drops, i, *rest)
    out = engine.drop_many([_visit(i) for i in range(1, 6)])
    assert engine.uniq("a/daily", "d1", {"visitors": ["x", 7]}) == {"visitors": 8}
    assert engine.observe("a/daily", "d1", {"ms": 2})["ms"]["count"] == 7
    compiled = engine.stats()["implementation"] == "compiled"
    assert python_runs == ([] if compiled else [0, 1, 2, 3, 4])
    assert [r["seq"] for r in out] == list(range(out[0]["seq"], out[0]["seq"] + 5))
    payload = engine.get("a/daily", "d1")["payload"]
    assert payload["views"] == 6 and payload["visitors"] == 8 and payload["ms"]["count"] == 7
    assert engine.get("a/daily", "d1")["version"] == 8


def test_a_capture_keeps_its_sketches_while_the_compiled_path_writes(engine):
    engine.drop_many([_visit(0)])
    with engine._lock:
        captured = {name: s for _, _, name, _, s in engine.state.sketches.capture()}
    before = {name: s.to_bytes() for name, s in captured.items()}
    engine.drop_many([_visit(i) for i in range(1, 50)])
    assert {name: s.to_bytes() for name, s in captured.items()} == before  # copied before the first add
    assert engine.get("a/daily", "d1")["payload"]["visitors"] == 50


def test_a_counter_overflow_beside_sketch_adds_spends_its_seq_and_changes_nothing(make_engine):
    eng = make_engine()
    eng.drop("a/daily", {"+n": 2 ** 63 - 2, "~visitors": "u0", "%ms": 1}, key="d1")
    seq, before = eng.seq, eng.get("a/daily", "d1")["payload"]
    out = eng.drop_many([{"route": "a/daily", "key": "d1", "payload": {"~visitors": "u1", "+n": 5, "%ms": 2}},
                         {"route": "a/daily", "key": "d1", "payload": {"~visitors": "u2"}}])
    assert isinstance(out[0], errors.CounterOverflow) and out[1]["seq"] == seq + 2
    with pytest.raises(errors.CounterOverflow):
        eng.drop("a/daily", {"+n": 2, "%ms": 3}, key="d1")
    after = eng.get("a/daily", "d1")["payload"]
    assert after["n"] == before["n"] and after["ms"] == before["ms"] and after["visitors"] == 2
    eng.close()
    again = make_engine()
    assert again.get("a/daily", "d1")["payload"] == after and again.seq == seq + 3


def test_listeners_and_subscribers_hear_compiled_sketch_writes(engine):
    heard = []

    engine.drop_many([_visit(0)])
    engine.add_listener(_EntityListener(heard))
    sub = engine.subscribe("a/daily")
    assert engine.uniq("a/daily", "d1", {"visitors": "z"}) == {"visitors": 2}
    engine.drop_many([_visit(1), _visit(2)])
    # the compiled path tells each entity of a batch once; the Python path once per drop
    assert set(heard) == {("a/daily", "d1")}
    assert len(heard) == (2 if engine.stats()["implementation"] == "compiled" else 3)
    got = [sub.get(0) for _ in range(3)]
    assert [m.fields["visitors"] for m in got] == [2, 3, 4] and got[-1].seq == engine.seq
    assert got[1].fields["views"] == 2 and got[1].fields["ms"]["count"] == 2


def test_new_counter_entities_made_by_the_compiled_path_are_the_python_paths(tmp_path):
    """An increment making its entity (on a route that has entities) takes the compiled path: the same
    receipts, records, messages, log, times, list order and counts as the Python path, and after replay."""
    fast = Engine(str(tmp_path / "fast"), fsync="no", maintenance=False)
    slow = _python_only(Engine(str(tmp_path / "slow"), fsync="no", maintenance=False))
    slow.instance = slow._writer.instance = fast.instance
    ahead = time.time_ns() // 1_000_000 + 10 ** 9
    for eng in (fast, slow):
        eng._writer.last_ms = ahead  # one clock for both: the clock never goes back, so every write is at this time
    batch = [{"route": "c", "key": "a", "payload": {"+n": 2, "+m": 1.5}},
             {"route": "c", "key": "a", "payload": {"+n": 1}},
             {"route": "c", "key": "b-{day}", "payload": {"+n": 1}},     # a placeholder: Python expands it
             {"route": "c", "key": "bad key", "payload": {"+n": 1}},     # refused: InvalidKey
             {"route": "c", "key": "x" * 257, "payload": {"+n": 1}},     # refused: too long
             {"route": "c", "key": "z", "payload": {"+n": True}},        # refused: InvalidAmount
             {"route": "c", "key": "v", "payload": {"+n\x01": 1}},      # refused: a control character
             {"route": "c", "key": "w", "payload": {"+n": 1}},
             {"route": "c", "key": "kept", "payload": {"+n": 1}, "keep": "1d"},  # refused: keep on increments
             {"route": "c", "key": "A.b_9", "payload": {"+n": 2 ** 63 - 1}},
             {"route": "_sys", "key": "k", "payload": {"+n": 1}}]
    try:
        for eng in (fast, slow):
            eng.drop_many([{"route": "c", "key": "old", "payload": {"+n": 1}}])  # a new route: Python
            eng.list("c", limit=10)  # a cached sorted key list the new keys must reach
        sub_fast, sub_slow = fast.subscribe("*"), slow.subscribe("*")
        by_python, real = [], fast.store.write_many
        fast.store.write_many = lambda ops_, *a: by_python.extend(op[4] for op in ops_) or real(ops_, *a)
        out_fast, out_slow = fast.drop_many(batch), slow.drop_many(batch)
        if fast._writer.makes_entities:  # else the pure twin: everything is the Python path's
            assert "k" in by_python and not {"a", "w", "A.b_9"} & set(by_python)  # _sys's first: Python
        shown = lambda out: [r if isinstance(r, dict) else (type(r).__name__, str(r)) for r in out]
        assert shown(out_fast) == shown(out_slow)
        assert [type(r).__name__ for r in out_fast[3:9]] == ["InvalidKey", "InvalidKey", "InvalidAmount",
                                                             "InvalidField", "dict", "InvalidPayload"]
        assert fast.incr("c", "q", {"n": 3}) == slow.incr("c", "q", {"n": 3}) == {"n": 3}  # Engine.incr too
        for eng in (fast, slow):
            eng.drop_many([{"route": "c", "key": "w", "payload": {"+n": 1}}])
        recs = [[fast.get("c", k), slow.get("c", k)] for k in ("a", "w", "q", "A.b_9")]
        for rec_fast, rec_slow in recs:
            assert rec_fast == rec_slow and rec_fast["created_at"] == out_fast[1]["created_at"]
        assert recs[0][0]["version"] == 2 and recs[1][0]["version"] == 2 and recs[2][0]["version"] == 1
        assert [r["key"] for r in fast.list("c", limit=20)] == [r["key"] for r in slow.list("c", limit=20)]
        assert fast.stats()["entities"] == slow.stats()["entities"] == 7
        assert _drain(sub_fast) == _drain(sub_slow)
        assert _published(fast) == _published(slow) and _logged(fast) == _logged(slow)
        live = {k: fast.get("c", k) for k in ("a", "w", "q", "A.b_9", "old")}
    finally:
        fast.close()
        slow.close()
    again = Engine(str(tmp_path / "fast"), maintenance=False)
    try:
        assert {k: again.get("c", k) for k in live} == live  # times and versions too
    finally:
        again.close()


def _drain(sub) -> list:
    out = []
    while sub.pending():
        m = sub.get(0)
        out.append((m.seq, m.route, m.key, m.op, m.fields, m.ms))
    return out


def test_a_snapshot_while_counting_holds_entities_the_compiled_path_made(make_engine, monkeypatch):
    """A record the compiled path made is changed in place only until a snapshot's capture."""
    from ocean.engine import snapshot

    eng = make_engine()
    eng.incr("c", "first", {"n": 1})  # the route's first entity: the Python path
    eng.drop_many([{"route": "c", "key": "k", "payload": {"+n": 1}}])  # made compiled
    eng.incr("c", "k", {"n": 1})  # changed in place
    real = snapshot.write

    def write_while_counting(path, view):
        eng.incr("c", "k", {"n": 1})
        eng.drop_many([{"route": "c", "key": "k2", "payload": {"+n": 1}},
                       {"route": "c", "key": "k", "payload": {"+n": 1}}])
        return real(path, view)

    monkeypatch.setattr(snapshot, "write", write_while_counting)
    eng.snapshot()
    live = {k: eng.get("c", k) for k in ("k", "k2")}
    assert live["k"]["payload"] == {"n": 4} and live["k"]["version"] == 4 and live["k2"]["version"] == 1
    eng.close()
    again = make_engine()
    assert {k: again.get("c", k) for k in ("k", "k2")} == live
