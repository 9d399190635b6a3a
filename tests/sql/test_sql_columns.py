"""The column store: built once per route, then patched from listener notes (never rebuilt per query)."""
import threading

import numpy as np

from ocean.sql import query
from ocean.sql.columns import store_for
from sqlcases import FixtureEngine

TUTORIAL = 'SELECT key AS date, page_views, requests FROM "analytics/daily" ORDER BY key DESC LIMIT 7'


def test_real_engine_counters_and_events(engine):
    for day in range(1, 11):
        engine.incr("analytics/daily", f"2026-02-{day:02d}", {"page_views": day * 10, "requests": day})
    out = query(engine, TUTORIAL)
    assert out["columns"] == ["date", "page_views", "requests"]
    assert out["rows"][0] == {"date": "2026-02-10", "page_views": 100, "requests": 10}
    assert len(out["rows"]) == 7
    table = store_for(engine).tables["analytics/daily"]
    assert table.builds == 1

    engine.incr("analytics/daily", "2026-02-10", {"page_views": 5})
    engine.save("analytics/daily", {"+page_views": 1, "note": "new day"}, key="2026-02-11")
    out = query(engine, TUTORIAL)
    assert out["rows"][0] == {"date": "2026-02-11", "page_views": 1, "requests": None}
    assert out["rows"][1]["page_views"] == 105
    assert table.builds == 1, "the table was patched, not rebuilt"

    engine.remove("analytics/daily", "2026-02-11")
    assert query(engine, TUTORIAL)["rows"][0]["date"] == "2026-02-10"
    assert query(engine, 'SELECT COUNT(*) AS n, COUNT(note) AS notes FROM "analytics/daily"')["rows"] == \
        [{"n": 10, "notes": 0}]

    engine.save("analytics/events", {"method": "POST", "path": "/drop", "status": 200})
    engine.save("analytics/events", {"method": "GET", "path": "/entity/users/123", "status": 200})
    rows = query(engine, 'SELECT key, method, status FROM "analytics/events" ORDER BY method')["rows"]
    assert rows == [{"key": None, "method": "GET", "status": 200}, {"key": None, "method": "POST", "status": 200}]
    engine.save("analytics/events", {"method": "GET", "path": "/x", "status": 404})
    rows = query(engine, 'SELECT status, COUNT(*) AS n FROM "analytics/events" GROUP BY status')["rows"]
    assert rows == [{"status": 200, "n": 2}, {"status": 404, "n": 1}]
    created = query(engine, 'SELECT created_at FROM "analytics/events" LIMIT 1')["rows"][0]["created_at"]
    assert len(created) == 24 and created.endswith("Z")


def test_prefix_over_real_engine_and_quoted_fields(engine):
    engine.incr("analytics/endpoints", "2026-02-10", {"POST /drop": 3, "GET /entity/*": 2})
    engine.incr("analytics/daily", "2026-02-10", {"page_views": 1})
    rows = query(engine, 'SELECT route, key, "POST /drop" FROM "analytics/*" ORDER BY route')["rows"]
    assert rows == [{"route": "analytics/daily", "key": "2026-02-10", "POST /drop": None},
                    {"route": "analytics/endpoints", "key": "2026-02-10", "POST /drop": 3}]


def test_only_dirty_rows_are_patched():
    eng = FixtureEngine()
    query(eng, 'SELECT COUNT(*) FROM "shop/orders"')
    table = store_for(eng).tables["shop/orders"]
    before = table.patched_rows
    for i in range(1000):
        eng.add_event("shop/orders", {"customer": "c99", "amount": 1.0, "qty": 1, "status": "paid"})
    rows = query(eng, 'SELECT COUNT(*) AS n, SUM(qty) AS q FROM "shop/orders" WHERE customer = \'c99\'')["rows"]
    assert rows == [{"n": 1000, "q": 1000}]
    assert table.builds == 1
    assert table.patched_rows - before == 1000


def test_listener_notes_are_cheap_for_unread_routes():
    eng = FixtureEngine()
    store = store_for(eng)
    assert store_for(eng) is store and eng.listeners == [store]
    eng.add_event("never/read", {"x": 1})
    assert "never/read" not in store.tables


def test_entity_changes_widen_column_kinds():
    eng = FixtureEngine()
    eng.put("t/x", "a", {"v": 1})
    eng.put("t/x", "b", {"v": 2})
    assert query(eng, 'SELECT SUM(v) AS s FROM "t/x"')["rows"] == [{"s": 3}]
    eng.put("t/x", "b", {"v": 2.5})
    assert query(eng, 'SELECT SUM(v) AS s FROM "t/x"')["rows"] == [{"s": 3.5}]
    eng.put("t/x", "c", {"v": "text", "w": True})
    rows = query(eng, 'SELECT key, v, w FROM "t/x" ORDER BY v')["rows"]
    assert rows == [{"key": "a", "v": 1, "w": None}, {"key": "b", "v": 2.5, "w": None},
                    {"key": "c", "v": "text", "w": True}]
    eng.put("t/x", "c", {"v": [1, 2]})
    assert query(eng, 'SELECT v FROM "t/x" WHERE key = \'c\'')["rows"] == [{"v": [1, 2]}]
    eng.put("t/x", "d", "a plain value")
    assert query(eng, 'SELECT value FROM "t/x" WHERE key = \'d\'')["rows"] == [{"value": "a plain value"}]
    eng.delete("t/x", "a")
    assert [r["key"] for r in query(eng, 'SELECT key FROM "t/x" ORDER BY key')["rows"]] == ["b", "c", "d"]


def test_timestamp_text_column_demotes_to_text():
    eng = FixtureEngine()
    eng.add_event("t/ts", {"at": "2026-02-10T12:00:00.000Z"})
    assert query(eng, 'SELECT date_trunc(\'day\', at) AS d FROM "t/ts"')["rows"] == [{"d": "2026-02-10T00:00:00.000Z"}]
    eng.add_event("t/ts", {"at": "yesterday"})
    rows = query(eng, 'SELECT at FROM "t/ts" ORDER BY at')["rows"]
    assert rows == [{"at": "2026-02-10T12:00:00.000Z"}, {"at": "yesterday"}]


def test_removed_events_and_compaction():
    eng = FixtureEngine()
    seqs = [eng.add_event("t/ev", {"i": i}) for i in range(3000)]
    assert query(eng, 'SELECT COUNT(*) AS n FROM "t/ev"')["rows"] == [{"n": 3000}]
    eng.expire_events("t/ev", set(seqs[:2500]))
    assert query(eng, 'SELECT COUNT(*) AS n, MIN(i) AS lo FROM "t/ev"')["rows"] == [{"n": 500, "lo": 2500}]
    table = store_for(eng).tables["t/ev"]
    assert table.n == 500 and table.dead == 0, "more than half removed: the table compacted"
    eng.add_event("t/ev", {"i": -1})
    assert query(eng, 'SELECT COUNT(*) AS n, MIN(i) AS lo FROM "t/ev"')["rows"] == [{"n": 501, "lo": -1}]


def test_entities_compact_and_keep_their_rows():
    eng = FixtureEngine()
    for i in range(3000):
        eng.put("t/e", f"k{i:05d}", {"i": i})
    query(eng, 'SELECT COUNT(*) FROM "t/e"')
    for i in range(2900):
        eng.delete("t/e", f"k{i:05d}")
    eng.put("t/e", "k02999", {"i": -5})
    rows = query(eng, 'SELECT key, i FROM "t/e" ORDER BY i LIMIT 2')["rows"]
    assert rows == [{"key": "k02999", "i": -5}, {"key": "k02900", "i": 2900}]
    assert query(eng, 'SELECT COUNT(*) AS n FROM "t/e"')["rows"] == [{"n": 100}]


def test_writes_while_querying(engine):
    engine.incr("c/x", "k", {"n": 1})
    query(engine, 'SELECT n FROM "c/x"')
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set() and i < 2000:
            engine.incr("c/x", f"k{i % 50}", {"n": 1})
            engine.save("c/x", {"v": i})
            i += 1

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(30):
        out = query(engine, 'SELECT COUNT(*) AS n, SUM(n) AS s FROM "c/x"')
        assert out["rows"][0]["n"] >= 1
    for t in threads:
        t.join()
    stop.set()
    final = query(engine, 'SELECT SUM(n) AS s, COUNT(v) AS events FROM "c/x"')["rows"][0]
    assert final == {"s": 1 + 2 * 2000, "events": 2 * 2000}


def test_views_share_buffers_not_copies():
    eng = FixtureEngine()
    query(eng, 'SELECT COUNT(*) FROM "shop/orders"')
    table = store_for(eng).tables["shop/orders"]
    v = table.fields["amount"].vec()
    assert np.shares_memory(v.data, table.fields["amount"].data)


def test_event_notes_out_of_seq_order_are_not_lost():
    eng = FixtureEngine({"t/o": {"entities": {}, "events": [
        {"seq": 1, "created_at": "2026-02-10T00:00:00.000Z", "payload": {"i": 1}}]}})
    store = store_for(eng)
    assert query(eng, 'SELECT COUNT(*) AS n FROM "t/o"')["rows"] == [{"n": 1}]
    rec = lambda seq: {"seq": seq, "created_at": "2026-02-10T00:00:00.000Z", "payload": {"i": seq}}  # noqa: E731
    store.event_added("t/o", rec(1))  # a late note of an event the build already read: a duplicate
    store.event_added("t/o", rec(3))  # writer of seq 3 told listeners first ...
    assert query(eng, 'SELECT COUNT(*) AS n FROM "t/o"')["rows"] == [{"n": 2}]
    store.event_added("t/o", rec(2))  # ... the writer of seq 2 after a query ran
    assert query(eng, 'SELECT SUM(i) AS s, COUNT(*) AS n FROM "t/o"')["rows"] == [{"s": 6, "n": 3}]
