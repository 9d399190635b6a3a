"""Reading a route out in pages (engine/export.py) and events that keep an imported time."""
import pytest

from ocean import errors
from ocean.engine.export import Since, event_pages, pages, parse_since, parse_time
from ocean.model import iso_ms

T0 = parse_time("2025-01-02T03:04:05.678Z")


def _all(engine, target, since=None, page=3, upto=None):
    return [rec for recs in pages(engine, target, since, page, upto) for rec in recs]


def test_entities_carry_their_counters_apart(engine):
    engine.incr("a/daily", "k1", {"views": 3})
    engine.save("a/daily", {"name": "x", "+clicks": 2}, key="k2")
    engine.save("a/daily", "just text", key="k3")
    engine.save("a/daily", {"plain": 1.5}, key="k4")
    recs = _all(engine, "a/daily")
    assert [r["key"] for r in recs] == ["k1", "k2", "k3", "k4"]
    assert recs[0]["payload"] == {"views": 3} and recs[0]["counters"] == ["views"]
    assert recs[1]["payload"] == {"name": "x", "clicks": 2} and recs[1]["counters"] == ["clicks"]
    assert recs[2]["payload"] == "just text" and "counters" not in recs[2]
    assert recs[3] == {"route": "a/daily", "key": "k4", "payload": {"plain": 1.5}, "created_at": recs[3]["created_at"],
                       "updated_at": recs[3]["updated_at"], "version": 1}
    assert recs[1]["payload"] == engine.get("a/daily", "k2")["payload"]  # what GET /entity shows


def test_events_in_seq_order_across_pages_and_prefixes(engine):
    for i in range(10):
        engine.save("a/ev", {"i": i})
    engine.save("a/ev/deeper", {"i": 99})
    engine.save("b/ev", {"i": -1})
    engine.incr("a/ev", "k", {"n": 1})  # a route may hold entities beside its events: entities come first
    recs = _all(engine, "a/*")
    assert [r["route"] for r in recs] == ["a/ev"] * 11 + ["a/ev/deeper"]
    assert recs[0]["key"] == "k" and [r["payload"]["i"] for r in recs[1:11]] == list(range(10))
    assert all(r["seq"] < s["seq"] for r, s in zip(recs[1:10], recs[2:11]))
    assert {r["route"] for r in _all(engine, "*")} == {"a/ev", "a/ev/deeper", "b/ev"}
    assert _all(engine, "nothing/here") == []


def test_an_export_ends_at_the_seq_it_started_at(engine):
    for i in range(7):
        engine.save("ev", {"i": i})
    seen = []
    for recs in pages(engine, "ev", page=2):
        seen += recs
        engine.save("ev", {"i": 100 + len(seen)})  # writes during the export are not part of it
    assert [r["payload"]["i"] for r in seen] == list(range(7))


def test_retention_trimming_mid_export_neither_repeats_nor_breaks(make_engine):
    from ocean.settings import Settings

    engine = make_engine(settings=Settings.load(environ={}, event_retention=20))
    for i in range(20):
        engine.save("ev", {"i": i})
    got = []
    for recs in event_pages(engine, "ev", page=5, upto=engine.seq):
        got += [r["payload"]["i"] for r in recs]
        for j in range(5):  # pushes the oldest out: the log's list is replaced under the export
            engine.save("ev", {"i": 1000 + j})
    assert got == sorted(set(got)) and got[:5] == [0, 1, 2, 3, 4]


def test_since_a_seq_keeps_later_events_and_no_entities(engine):
    engine.incr("r", "k", {"n": 1})
    first = engine.save("r", {"i": 0})["seq"]
    engine.save("r", {"i": 1})
    recs = _all(engine, "r", parse_since(str(first)))
    assert [r["payload"] for r in recs] == [{"i": 1}]


def test_since_a_time_keeps_entities_updated_and_events_created_then(engine):
    engine.drop_many([{"route": "r", "payload": {"old": True}}], times=[T0])
    engine.save("r", {"new": True})
    engine.incr("r", "k", {"n": 1})
    recs = _all(engine, "r", parse_since("2025-06-01"))
    assert [r["payload"] for r in recs] == [{"n": 1}, {"new": True}]
    assert _all(engine, "r", parse_since("2999-01-01T00:00:00Z")) == []


@pytest.mark.parametrize("text", ["yesterday", "-5", "2026-13-01", "1" * 25, "2026-02-10T25:00:00Z"])
def test_since_refuses_what_it_cannot_read(text):
    with pytest.raises(errors.InvalidParameter):
        parse_since(text)


def test_parse_time_forms():
    assert parse_time("1970-01-01") == 0
    assert parse_time("2025-01-02T03:04:05.678Z") == parse_time("2025-01-02T04:04:05.678+01:00")
    assert iso_ms(parse_time("2025-01-02T03:04:05.678Z")) == "2025-01-02T03:04:05.678Z"
    assert parse_since(None).seq is None and parse_since("").ms is None
    assert parse_since("42").seq == 42 and parse_since("2025-01-02").ms == parse_time("2025-01-02")
    assert isinstance(Since(), Since)


def test_expired_records_are_not_exported(engine):
    engine.save("r", {"a": 1}, key="gone", keep=0.001)
    engine.save("r", {"e": 1}, keep=0.001)
    engine.save("r", {"a": 2}, key="stays", keep=3600)
    import time
    time.sleep(0.01)
    recs = _all(engine, "r")
    assert [r.get("key") for r in recs] == ["stays"] and recs[0]["expires_at"].endswith("Z")


def test_an_imported_event_keeps_its_time_through_restart_and_snapshot(make_engine, tmp_path):
    engine = make_engine()
    out = engine.drop_many([{"route": "ev", "payload": {"i": 0}}, {"route": "ev", "key": "k", "payload": {"x": 1}},
                            {"route": "ev", "payload": {"i": 1}}], times=[T0, T0, None])
    assert out[0]["created_at"] == "2025-01-02T03:04:05.678Z"
    assert out[1]["created_at"] != out[0]["created_at"]  # an entity write takes the clock's time
    assert out[2]["created_at"] != out[0]["created_at"]
    assert [e["created_at"] for e in engine.route_events("ev")] == [out[0]["created_at"], out[2]["created_at"]]
    engine.close()
    engine = make_engine()  # replayed from the log
    assert [e["created_at"] for e in engine.route_events("ev")][0] == "2025-01-02T03:04:05.678Z"
    engine.snapshot()
    engine.close()
    engine = make_engine()  # loaded from the snapshot
    assert [e["created_at"] for e in engine.route_events("ev")][0] == "2025-01-02T03:04:05.678Z"


def test_an_imported_events_time_reaches_listeners_and_the_bus(engine):
    seen = []

    class Listener:
        def event_added(self, route, record):
            seen.append(record["created_at"])

        def entity_changed(self, route, key):
            pass

    engine.add_listener(Listener())
    engine.drop_many([{"route": "ev", "payload": 1}], times=[T0])
    assert seen == ["2025-01-02T03:04:05.678Z"]
    assert engine.recent("ev", 1)[0].data["_at"] == "2025-01-02T03:04:05.678Z"


def test_an_old_imported_events_keep_counts_from_its_import(engine):
    engine.drop_many([{"route": "ev", "payload": i, "keep": 3600} for i in range(10)], times=[T0] * 10)
    engine.sweep()  # T0 + 3600 s is long past; the write's clock time + 3600 s is not
    live = list(engine.route_events("ev"))
    assert len(live) == 10 and all(e["created_at"] == "2025-01-02T03:04:05.678Z" for e in live)
