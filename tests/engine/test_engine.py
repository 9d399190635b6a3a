"""Engine operations: entities, counters, events, history, validation, atomicity."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocean import errors
from ocean.engine import ops


def test_incr_creates_entity_and_merges_counters(engine):
    assert engine.incr("analytics/daily", "2026-02-10", {"page_views": 1}) == {"page_views": 1}
    assert engine.incr("analytics/daily", "2026-02-10", {"page_views": 1, "requests": 5}) == {"page_views": 2, "requests": 5}
    rec = engine.get("analytics/daily", "2026-02-10")
    assert rec["payload"] == {"page_views": 2, "requests": 5}
    assert rec["route"] == "analytics/daily" and rec["key"] == "2026-02-10"
    assert rec["created_at"].endswith("Z") and len(rec["created_at"]) == 24


def test_save_event_and_entity(engine):
    ev = engine.save("analytics/events", {"method": "POST", "status": 200})
    assert ev["key"] is None and ev["seq"] == 1 and len(ev["drop_id"]) == 36
    ent = engine.save("users", {"name": "Alice", "age": 30}, key="u1")
    assert ent["seq"] == 2
    assert engine.get("users", "u1")["payload"] == {"name": "Alice", "age": 30}
    assert [e["payload"]["method"] for e in engine.events("analytics/events")] == ["POST"]


def test_save_replaces_plain_fields_but_keeps_counters(engine):
    engine.save("users", {"name": "A", "city": "X", "+visits": 2}, key="u")
    engine.save("users", {"name": "B"}, key="u")
    assert engine.get("users", "u")["payload"] == {"name": "B", "visits": 2}


def test_save_sets_counter_with_number_and_refuses_non_number(engine):
    engine.incr("c", "k", {"n": 5})
    engine.save("c", {"n": 2}, key="k")
    assert engine.get("c", "k")["payload"] == {"n": 2}
    with pytest.raises(errors.NotACounter):
        engine.save("c", {"n": "two", "other": 1}, key="k")
    assert engine.get("c", "k")["payload"] == {"n": 2}  # nothing partly applied


def test_update_merges_and_increments(engine):
    engine.save("users", {"name": "A", "age": 1}, key="u")
    rec = engine.update("users", "u", {"age": 2, "+logins": 3})
    assert rec["payload"] == {"name": "A", "age": 2, "logins": 3}
    assert rec["version"] == 2


def test_incr_of_plain_number_field_promotes_it(engine):
    engine.save("users", {"age": 30}, key="u")
    assert engine.incr("users", "u", {"age": 1}) == {"age": 31}
    assert engine.get("users", "u")["payload"] == {"age": 31}


def test_incr_of_string_field_fails_and_changes_nothing(engine):
    engine.save("users", {"name": "A"}, key="u")
    engine.incr("users", "u", {"n": 1})
    with pytest.raises(errors.NotACounter):
        engine.incr("users", "u", {"n": 1, "name": 1})
    assert engine.get("users", "u")["payload"] == {"name": "A", "n": 1}


def test_overflow_raises_and_leaves_value(engine):
    engine.incr("c", "k", {"n": 2 ** 63 - 2, "m": 1})
    with pytest.raises(errors.CounterOverflow):
        engine.incr("c", "k", {"m": 1, "n": 5})
    assert engine.get("c", "k")["payload"] == {"n": 2 ** 63 - 2, "m": 1}
    assert engine.incr("c", "k", {"n": 1}) == {"n": 2 ** 63 - 1}


@pytest.mark.parametrize("base, amount", [(1e308, 1e308), (2 ** 63 - 1, 1)])
def test_a_plain_number_that_would_overflow_as_a_counter_changes_nothing(engine, base, amount):
    """The field is a plain number until the increment promotes it; the overflow is found before
    the write's other increment is applied (the float case once left ``y`` incremented)."""
    engine.save("c", {"x": base}, key="k")
    with pytest.raises(errors.CounterOverflow):
        engine.update("c", "k", {"+y": 1, "+x": amount})
    assert engine.get("c", "k")["payload"] == {"x": base}
    assert engine.get("c", "k")["version"] == 1


def test_float_amount_makes_float(engine):
    engine.incr("c", "k", {"n": 1})
    assert engine.incr("c", "k", {"n": 0.5}) == {"n": 1.5}


@pytest.mark.parametrize("amount", [float("nan"), float("inf"), "1", True, None, 2 ** 64])
def test_bad_amounts(engine, amount):
    with pytest.raises(errors.InvalidAmount):
        engine.incr("c", "k", {"n": amount})
    assert engine.entity("c", "k") is None


@pytest.mark.parametrize("route", ["", "/a", "a/", "a//b", "a b", "/".join("x" * 11), "a/" * 300 + "b", "a/../b"])
def test_invalid_routes(engine, route):
    with pytest.raises(errors.InvalidRoute):
        engine.save(route, {"a": 1})


@pytest.mark.parametrize("key", ["", "a b", "x" * 257, "ü", "a/b"])
def test_invalid_keys(engine, key):
    with pytest.raises(errors.InvalidKey):
        engine.save("r", {"a": 1}, key=key)


def test_payload_limit(engine):
    with pytest.raises(errors.PayloadTooLarge):
        engine.save("r", {"blob": "x" * (1 << 20)})
    engine.save("r", {"blob": "x" * ((1 << 20) - 100)})
    assert engine.seq == 1


def test_non_json_payload_refused(engine):
    with pytest.raises(errors.InvalidPayload):
        engine.save("r", {"a": float("nan")})
    with pytest.raises(errors.InvalidPayload):
        engine.save("r", {"a": object()}, key="k")
    with pytest.raises(errors.InvalidPayload):
        engine.save("r", {"+a": 1})  # increments need a key
    assert engine.seq == 0 and engine.routes() == []


def test_remove(engine):
    engine.save("users", {"a": 1, "+n": 1}, key="u")
    assert engine.remove("users", "u") == {"removed": True}
    with pytest.raises(errors.NotFound):
        engine.get("users", "u")
    with pytest.raises(errors.NotFound):
        engine.remove("users", "u")
    assert engine.incr("users", "u", {"n": 1}) == {"n": 1}  # counters went with it


def test_history_newest_first(engine):
    engine.save("users", {"v": 1}, key="u")
    engine.update("users", "u", {"v": 2})
    engine.remove("users", "u")
    hist = engine.history("users", "u")
    assert [h["op"] for h in hist] == ["remove", "update", "save"]
    assert hist[1]["payload"] == {"v": 2}
    assert len(engine.history("users", "u", limit=1)) == 1


def test_list_sorted_and_paged(engine):
    for k in ["b", "a", "c", "d"]:
        engine.save("r", {"k": k}, key=k)
    assert [e["key"] for e in engine.list("r")] == ["a", "b", "c", "d"]
    assert [e["key"] for e in engine.list("r", limit=2, after="b")] == ["c", "d"]


def test_events_newest_first_paged(engine):
    for i in range(10):
        engine.save("ev", {"i": i})
    page = engine.events("ev", limit=3)
    assert [e["payload"]["i"] for e in page] == [9, 8, 7]
    nxt = engine.events("ev", limit=3, before=page[-1]["seq"])
    assert [e["payload"]["i"] for e in nxt] == [6, 5, 4]


def test_event_retention(make_engine):
    from ocean.settings import Settings
    eng = make_engine(settings=Settings.load(event_retention=10))
    for i in range(100):
        eng.save("ev", {"i": i})
    kept = [e["payload"]["i"] for e in eng.route_events("ev")]
    assert kept[-1] == 99 and 10 <= len(kept) <= 10 + 16  # trimmed in batches of max(16, 10%)


def test_keep_expires_entities_and_events(engine, monkeypatch):
    import time as _time
    base = _time.time_ns()
    monkeypatch.setattr(_time, "time_ns", lambda: base)
    engine.save("s", {"a": 1}, key="k", keep=10)
    engine.save("s", {"e": 1}, keep=10)
    assert engine.get("s", "k")["payload"] == {"a": 1}
    monkeypatch.setattr(_time, "time_ns", lambda: base + 11 * 10 ** 9)
    assert engine.entity("s", "k") is None
    assert engine.events("s") == []
    engine.sweep()
    assert engine.stats()["entities"] == 0


def test_keep_must_be_positive(engine):
    for bad in (0, -1, "5", float("nan")):
        with pytest.raises(errors.InvalidPayload):
            engine.save("s", {"a": 1}, key="k", keep=bad)


def test_failed_write_does_not_stop_the_engine(engine):
    with pytest.raises(errors.InvalidRoute):
        engine.incr("bad route", "k", {"n": 1})
    assert engine.incr("good", "k", {"n": 1}) == {"n": 1}


def test_second_engine_on_same_directory_refused(make_engine):
    make_engine()
    with pytest.raises(errors.DataDirLocked) as info:
        make_engine()
    assert "in use" in info.value.message


def test_plain_value_entity(engine):
    engine.save("pages", "<html>hi</html>", key="home")
    assert engine.get("pages", "home")["payload"] == "<html>hi</html>"
    with pytest.raises(errors.NotACounter):
        engine.incr("pages", "home", {"n": 1})


def test_drop_kinds(engine):
    ev = engine.drop("analytics/events", {"method": "GET"})
    assert ev["key"] is None and engine.events("analytics/events")[0]["payload"] == {"method": "GET"}
    engine.drop("users", {"name": "A", "city": "X"}, key="u")
    engine.drop("users", {"+visits": 2, "city": "Y"}, key="u")  # increments merge plain entries
    assert engine.get("users", "u")["payload"] == {"name": "A", "city": "Y", "visits": 2}
    engine.drop("users", {"name": "B"}, key="u")  # a plain keyed drop is a save
    assert engine.get("users", "u")["payload"] == {"name": "B", "visits": 2}
    with pytest.raises(errors.InvalidPayload):
        engine.drop("users", {"+n": 1})


def test_drop_many_one_write_per_batch_with_per_drop_results(engine):
    sub = engine.subscribe("*")
    appended = engine.store.wal.appended
    items = [{"route": "c", "key": "k", "payload": {"+n": 1}} for _ in range(999)]
    items.insert(500, {"route": "bad route", "payload": {}})
    items.append({"route": "c", "key": "k", "payload": {"n": "text"}})  # refused by apply: n is a counter
    out = engine.drop_many(items)
    assert isinstance(out[500], errors.InvalidRoute) and isinstance(out[-1], errors.NotACounter)
    receipts = [r for r in out if isinstance(r, dict)]
    assert len(receipts) == 999 and [r["seq"] for r in receipts] == list(range(1, 1000))
    assert engine.get("c", "k")["payload"] == {"n": 999}
    assert engine.store.wal.appended == appended + 1000  # 999 + the refused-by-apply one, logged
    assert sub.pending() == 999 and sub.get(timeout=1).data["n"] == 1
    assert engine.seq == 1000


def test_a_batch_creating_counter_entities_is_one_run(engine, monkeypatch):
    engine.drop_many([{"route": "c", "key": "old", "payload": {"+n": 1}}])
    runs = []
    real = engine.store.write_many
    monkeypatch.setattr(engine.store, "write_many", lambda batch, *a: runs.append(len(batch)) or real(batch, *a))
    items = [{"route": "c", "key": f"k{i}", "payload": {"+n": i}} for i in range(300)]
    items[100:100] = [{"route": "c", "key": "old", "payload": {"+n": 1}}] * 5  # the compiled path's
    items.append({"route": "c", "key": "k7", "payload": {"+n": 1}})  # created by this batch: compiled
    items.append({"route": "c", "key": "k0", "payload": {"+n": 1, "s": "x"}})  # an update: Python
    out = engine.drop_many(items)
    if engine._writer.makes_entities:  # the compiled path takes every increment; the update is Python's
        assert runs == [1]
    else:  # new entities in two runs around the existing one's increments (the twin's Writer leaves
        # these to _drop_run too, a run each), not one run a drop
        assert runs[0] == 100 and sorted(runs)[-2:] in ([100, 200], [100, 201]) and len(runs) <= 9
    assert [r["seq"] for r in out] == list(range(2, 2 + len(items)))
    assert engine.get("c", "old")["payload"] == {"n": 6}
    assert engine.get("c", "k7")["payload"] == {"n": 8}
    assert engine.get("c", "k0")["payload"] == {"n": 1, "s": "x"}
    assert sum(engine.get("c", f"k{i}")["payload"]["n"] for i in range(300)) == sum(range(300)) + 2


def test_parsed_drops_refuse_what_the_json_encoder_refuses(make_engine):
    eng = make_engine()
    items = [{"route": "e", "payload": {"a": float("nan")}}, {"route": "e", "payload": {"big": 2 ** 70, "s": "null"}},
             {"route": "e", "payload": {"x": None, "inf": [float("inf")]}}, {"route": "e", "payload": {"x": None}},
             {"route": "d", "key": "k", "payload": {"deep": [[[[[[1]]]]]] * 3, "no": None}}]
    out = eng.drop_many(items, parsed=True)
    assert [type(r).__name__ for r in out] == ["InvalidPayload", "dict", "InvalidPayload", "dict", "dict"]
    kept = [e["payload"] for e in eng.events("e")][::-1]
    eng.close()
    eng = make_engine()
    assert [e["payload"] for e in eng.events("e")][::-1] == kept == [{"big": 2 ** 70, "s": "null"}, {"x": None}]
    assert eng.get("d", "k")["payload"] == {"deep": [[[[[[1]]]]]] * 3, "no": None}


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20)


@given(payload=_json_values, key=st.none() | st.just("k"), source=st.none() | st.just("src"))
@settings(max_examples=300, deadline=None)
def test_parsed_ops_log_what_the_json_encoder_logs(payload, key, source):
    kind = ops.EVENT if key is None else ops.SAVE
    op = [kind, 7, 1700000000000, "r/x", key, payload, None, 0, source]
    try:
        want = ops.decode(ops.encode(op))
    except ValueError:  # NaN or infinity: refused the same way
        with pytest.raises(ValueError):
            ops.encode_parsed(op)
        return
    assert repr(ops.decode(ops.encode_parsed(op))) == repr(want)  # repr: 1 and 1.0, -0.0 and 0.0 differ


def test_drop_many_replays(make_engine):
    eng = make_engine()
    eng.drop_many([{"route": "c", "key": f"k{i % 3}", "payload": {"+n": i}} for i in range(30)])
    eng.drop_many([{"route": "e", "payload": {"i": i}} for i in range(5)])
    eng.close()
    eng2 = make_engine()
    assert sum(eng2.get("c", f"k{i}")["payload"]["n"] for i in range(3)) == sum(range(30))
    assert len(eng2.events("e")) == 5 and eng2.seq == 35


def test_retention_trims_are_told_to_listeners(make_engine):
    from ocean.settings import Settings

    class Recorder:
        def __init__(self):
            self.removed = []

        def entity_changed(self, route, key): pass
        def entity_removed(self, route, key): pass
        def event_added(self, route, event): pass

        def events_removed(self, route, seqs):
            self.removed.extend(seqs)

    eng = make_engine(settings=Settings.load(event_retention=10))
    rec = Recorder()
    eng.add_listener(rec)
    for i in range(60):
        eng.save("ev", {"i": i})
    eng.drop_many([{"route": "ev", "payload": {"i": i}} for i in range(60, 100)])
    kept = {e["seq"] for e in eng.route_events("ev")}
    assert rec.removed and kept.isdisjoint(rec.removed)
    assert len(kept) + len(rec.removed) == 100
