"""RedisEngine against the embedded Engine: the same operations give the same answers.

Both run the same sequence on the real local cluster (and a single server); answers are
compared after removing what this mode may differ in, by design (SPEC section 8):

- ``seq``: per route here, server-wide there. Checked on its own: a route's seqs here are
  1, 2, 3... in the order of its successful writes.
- ``drop_id``: derived from route + stream id here. Checked unique on its own.
- ``created_at``/``updated_at``: each store's own clock; checked to be ISO-8601 ms UTC.
Errors must have the same type and message.
"""
from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import threading
import time

import pytest

from ocean import errors
from ocean.redisstore import RedisEngine
from ocean.settings import Settings

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
VOLATILE = ("seq", "drop_id", "created_at", "updated_at")


def strip(value):
    """An answer with the fields this mode may differ in taken out (times checked for shape)."""
    if isinstance(value, errors.OceanError):  # drop_many's refused items
        return ("error", type(value).__name__, value.message)
    if isinstance(value, list):
        return [strip(v) for v in value]
    if isinstance(value, tuple):
        return tuple(strip(v) for v in value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in ("created_at", "updated_at"):
                assert ISO.match(v), v
            if k not in VOLATILE:
                out[k] = strip(v) if k != "payload" else (v, _order(v))
        return out
    return value


def _order(payload):
    """Field order too: both stores list plain fields, then counters, each in the order they came."""
    return list(payload) if isinstance(payload, dict) else None


def outcome(call):
    try:
        return ("ok", strip(call()))
    except errors.OceanError as exc:
        return ("error", type(exc).__name__, exc.message)


def both(pair, method, *args, **kw):
    emb, red = pair
    a = outcome(lambda: getattr(emb, method)(*args, **kw))
    b = outcome(lambda: getattr(red, method)(*args, **kw))
    assert a == b, f"{method}{args}{kw}:\n embedded {a}\n redis    {b}"
    return b


def state(engine) -> dict:
    """Everything the read methods show."""
    out = {"routes": engine.routes()}
    for route in out["routes"]:
        out[route] = {"list": strip(engine.list(route, limit=1000)),
                      "entities": strip(list(engine.route_entities(route))),
                      "events": strip(engine.events(route, limit=1000)),
                      "route_events": strip(list(engine.route_events(route)))}
        for key, _ in engine.route_entities(route):
            out[route]["history", key] = strip(engine.history(route, key))
    return out


# -- scripted cases ------------------------------------------------------------------------

SCRIPT = [
    ("incr", ("analytics/daily", "2026-02-10", {"page_views": 1})),
    ("incr", ("analytics/daily", "2026-02-10", {"page_views": 1, "requests": 5})),
    ("get", ("analytics/daily", "2026-02-10")),
    ("save", ("users", {"name": "Alice", "age": 30}), {"key": "u1"}),
    ("save", ("users", {"name": "B", "city": "X", "+visits": 2}), {"key": "u2"}),
    ("save", ("users", {"name": "C"}), {"key": "u2"}),
    ("save", ("users", {"visits": 7}), {"key": "u2"}),
    ("save", ("users", {"visits": "seven", "x": 1}), {"key": "u2"}),
    ("save", ("users", {"visits": 2 ** 70}), {"key": "u2"}),
    ("update", ("users", "u1", {"age": 31, "+logins": 3})),
    ("incr", ("users", "u1", {"age": 1})),
    ("incr", ("users", "u1", {"name": 1, "logins": 1})),
    ("update", ("users", "u1", {"+name": 1})),
    ("update", ("users", "u1", {"logins": 1, "+logins": 1})),
    ("update", ("users", "u1", {"zz": 1, "+zz": 1})),
    ("update", ("users", "u1", {})),
    ("incr", ("c", "k", {"n": 2 ** 63 - 2, "m": 1})),
    ("incr", ("c", "k", {"m": 1, "n": 5})),
    ("incr", ("c", "k", {"n": 1})),
    ("incr", ("c", "k", {"n": 1})),
    ("incr", ("c", "k", {"m": -(2 ** 63)})),
    ("incr", ("c", "k", {"m": -2})),
    ("incr", ("c", "f", {"x": 1})),
    ("incr", ("c", "f", {"x": 0.5})),
    ("incr", ("c", "f", {"x": 1, "y": 0.1})),
    ("incr", ("c", "f", {"y": 0.2})),
    ("incr", ("c", "f", {"y": 1e308})),
    ("incr", ("c", "f", {"y": 1e308})),
    ("incr", ("c", "f", {"z": float("nan")})),
    ("incr", ("c", "f", {"z": True})),
    ("incr", ("c", "f", {"z": "1"})),
    ("incr", ("c", "f", {"z": 2 ** 64})),
    ("incr", ("c", "f", {})),
    ("incr", ("c", "f", {"": 1})),
    ("save", ("c", "plain text"), {"key": "v"}),
    ("incr", ("c", "v", {"n": 1})),
    ("update", ("c", "v", {"n": 1})),
    ("save", ("c", {"n": 1}), {"key": "v"}),
    ("save", ("c", [1, {"a": None}]), {"key": "v2"}),
    ("save", ("ev", {"method": "POST", "status": 200})),
    ("save", ("ev", [1, 2, 3]), {"keep": 100}),
    ("save", ("ev", {"+a": 1})),
    ("save", ("ev", {"a": float("nan")})),
    ("save", ("ev", {"a": {1, 2}}), {"key": "k"}),
    ("save", ("ev", {"a": 1}), {"keep": -1}),
    ("save", ("ev", {"blob": "x" * (1 << 20)})),
    ("save", ("", {"a": 1})),
    ("save", ("a//b", {"a": 1})),
    ("save", ("r", {"a": 1}), {"key": "a b"}),
    ("remove", ("users", "u2")),
    ("remove", ("users", "u2")),
    ("get", ("users", "u2")),
    ("entity", ("users", "u2")),
    ("incr", ("users", "u2", {"visits": 1})),
    ("history", ("users", "u2")),
    ("history", ("users", "u1"), {"limit": 1}),
    ("history", ("users", "u1"), {"limit": 0}),
    ("drop", ("d", {"+a": 1, "+b": 2.5}), {"key": "k"}),
    ("drop", ("d", {"+a": 1, "name": "n"}), {"key": "k"}),
    ("drop", ("d", {"+a": 1}), {"key": "k", "keep": 5}),
    ("drop", ("d", {"name": "m"}), {"key": "k2", "keep": 500}),
    ("drop", ("d", {"x": 1})),
    ("drop_many", ([{"route": "d", "key": "k", "payload": {"+a": 1}}, {"route": "d", "payload": 1},
                    {"route": "d", "key": "k", "payload": {"+a": "x"}}, {"route": "d", "bogus": 1},
                    "not an object", {"route": "d", "key": "k3", "payload": {"a": [1]}},
                    {"route": "d", "key": "k", "payload": {"+name": 1}},  # refused by the function
                    {"route": "d", "key": "k", "payload": {"+a": 2 ** 63 - 1}},
                    {"route": "d2", "key": "k", "payload": {"+a": 1}}],)),
    ("drop_many", ([{"route": "imp", "payload": {"i": 1}}, {"route": "imp", "payload": {"i": 2}},
                    {"route": "imp", "key": "k", "payload": {"+n": 1}}],), {"times": [1_700_000_000_123, None, 5]}),
    ("route_events", ("imp",)),
    ("incr", ("t", "{day}", {"n": 1})),
    ("get", ("t", "{day}")),
    ("save", ("t", {"a": 1}), {"key": "x-{hour}"}),
    ("save", ("t", {"a": 1}), {"key": "{nope}"}),
    ("list", ("users",)),
    ("list", ("d",), {"limit": 1, "after": "k"}),
    ("events", ("ev",), {"limit": 1}),
    ("routes", ()),
]


def test_scripted_sequence_gives_the_same_answers(pair):
    emb, red = pair
    for step in SCRIPT:
        method, args, kw = step[0], step[1], (step[2] if len(step) > 2 else {})
        if method == "route_events":
            emb_, red_ = pair
            assert strip(list(emb_.route_events(*args))) == strip(list(red_.route_events(*args)))
            continue
        both(pair, method, *args, **kw)
    assert state(emb) == state(red)


BAD_ROUTES = ["", "/a", "a/", "a//b", "a b", "/".join("x" * 11), "a/" * 300 + "b", "a/../b", None, 5]
BAD_KEYS = ["", "a b", "x" * 257, "ü", "a/b", None, 7]
BAD_AMOUNTS = [float("nan"), float("inf"), "1", True, None, 2 ** 64, [1]]


@pytest.mark.parametrize("route", BAD_ROUTES)
def test_bad_routes_give_the_same_errors(pair, route):
    both(pair, "save", route, {"a": 1})
    both(pair, "save", route, {"a": 1}, key="k")
    both(pair, "incr", route, "k", {"n": 1})
    both(pair, "incr", route, "a b", {"n": "x"})  # several things wrong: the same one is reported
    both(pair, "update", route, "k", {"a": 1})
    both(pair, "remove", route, "k")
    both(pair, "get", route, "k")
    both(pair, "drop", route, {"+n": 1}, key="k")


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_give_the_same_errors(pair, key):
    if key is not None:  # no key: an event, which is fine
        both(pair, "save", "r", {"a": 1}, key=key)
    both(pair, "incr", "r", key, {"n": 1})
    both(pair, "incr", "r", key, {"n": None})
    both(pair, "update", "r", key, {"a": 1})
    both(pair, "remove", "r", key)
    both(pair, "get", "r", key)
    both(pair, "history", "r", key)
    both(pair, "drop_many", [{"route": "r", "key": key, "payload": {"+n": 1}}])


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_bad_amounts_give_the_same_errors(pair, amount):
    both(pair, "incr", "r", "k", {"n": 1})
    both(pair, "incr", "r", "k", {"m": 1, "n": amount})
    both(pair, "update", "r", "k", {"+n": amount})
    both(pair, "drop", "r", {"+n": amount}, key="k")
    both(pair, "save", "r", {"n": amount}, key="k")  # n is a counter: set to a non-number
    both(pair, "get", "r", "k")


@pytest.mark.parametrize("seed", [15, 16, 17])
def test_random_sequence_gives_the_same_answers(pair, seed):
    """A seeded mix of every write on few routes/keys/fields, so the same entity sees every kind of
    change; answers compared after each step, the whole state at the end."""
    rnd = random.Random(seed)
    seen = []
    values = [0, 1, -7, 2 ** 62, 2 ** 63 - 1, 2 ** 70, 0.1, -2.5, 1e300, "s", "", True, None, [1, "a"], {"n": {"m": 1}}]
    amounts = [1, -1, 5, 0.25, 2 ** 62, -(2 ** 62), 2 ** 63 - 1, 1e308, 3.0]
    fields = ["a", "b", "c", "d/e", "ü"]

    def payload(increments: bool):
        out = {}
        for name in rnd.sample(fields, rnd.randint(1, 3)):
            if increments and rnd.random() < 0.4:
                out["+" + name] = rnd.choice(amounts)
            else:
                out[name] = rnd.choice(values)
        return out

    for _ in range(250):
        route, key = rnd.choice(["r1", "r/2"]), rnd.choice(["k1", "k2", "k3"])
        op = rnd.random()
        both = lambda *a, **kw: seen.append(globals()["both"](*a, **kw))  # noqa: E731
        if op < 0.3:
            both(pair, "incr", route, key, {rnd.choice(fields): rnd.choice(amounts) for _ in range(rnd.randint(1, 2))})
        elif op < 0.45:
            both(pair, "save", route, payload(True), key=key, keep=rnd.choice([None, None, 100]))
        elif op < 0.5:
            both(pair, "save", route, rnd.choice(values), key=key)
        elif op < 0.65:
            both(pair, "update", route, key, payload(True))
        elif op < 0.72:
            both(pair, "remove", route, key)
        elif op < 0.82:
            both(pair, "drop", route, payload(True), key=key)
        elif op < 0.9:
            both(pair, "save", route, payload(False))  # an event
        elif op < 0.95:
            both(pair, "get", route, key)
        else:
            both(pair, "history", route, key, limit=rnd.choice([1, 3, 100]))
    emb, red = pair
    assert state(emb) == state(red)
    kinds = {o[1] if o[0] == "error" else "ok" for o in seen}
    assert {"ok", "NotACounter", "CounterOverflow", "NotFound"} <= kinds, kinds  # the rest: the bad input tests


def test_retention_trims_events_as_the_embedded_engine_does(pair):
    emb, red = pair
    for i in range(100):
        both(pair, "save", "ev", {"i": i})
        assert len(emb.events("ev", limit=1000)) == len(red.events("ev", limit=1000))
    page = both(pair, "events", "ev", limit=5)
    assert [e["payload"][0]["i"] for e in page[1]] == [99, 98, 97, 96, 95]


def test_seq_is_per_route_and_pages_events(pair):
    _, red = pair
    seqs = {"a": [], "b": []}
    for i in range(12):
        route = "a" if i % 3 else "b"
        seqs[route].append(red.save(route, {"i": i})["seq"])
    assert seqs == {"a": list(range(1, 9)), "b": list(range(1, 5))}
    assert red.incr("a", "k", {"n": 1}) == {"n": 1}
    assert red.save("a", {"x": 1}, key="k")["seq"] == 10  # entity writes take the route's seqs too
    page = red.events("a", limit=3, before=7)
    assert [e["seq"] for e in page] == [6, 5, 4]
    ids = [e["drop_id"] for r in ("a", "b") for e in red.events(r, limit=100)]
    assert len(set(ids)) == len(ids) == 12


def test_keep_expires_entities_and_events(pair):
    emb, red = pair
    for eng in pair:
        eng.save("t", {"a": 1, "+n": 1}, key="gone", keep=0.2)
        eng.save("t", {"a": 2}, key="stays")
        eng.save("t", {"e": 1}, keep=0.2)
        eng.save("t", {"e": 2})
    time.sleep(0.35)
    both(pair, "get", "t", "gone")
    both(pair, "list", "t")
    both(pair, "events", "t")
    both(pair, "incr", "t", "gone", {"n": 5})  # a fresh entity: the old counters expired with it
    assert state(emb) == state(red)


def test_live_message_is_in_the_change_stream_with_the_write(redis_cluster):
    """Every write appends its message to the route's change stream in the same step."""
    red = RedisEngine(redis_cluster.url)
    try:
        red.incr("live/a", "k", {"n": 2})
        red.save("live/a", {"m": 1})
        red.remove("live/a", "k")
        entries = red.client.xrange("o:{live/a}:x")
        assert [(i.split("-")[0], f["o"], f.get("k"), f["d"]) for i, f in entries] == [
            ("1", "incr", "k", '{"n":2}'), ("2", "event", None, '{"m":1}'), ("3", "remove", "k", "{}")]
    finally:
        red.close()


# -- concurrency ----------------------------------------------------------------------------

def test_threads_incrementing_one_counter_lose_nothing(redis_cluster):
    engines = [RedisEngine(redis_cluster.url) for _ in range(4)]
    try:
        def work(eng):
            for _ in range(250):
                eng.incr("conc", "k", {"n": 1, "f": 0.5})

        threads = [threading.Thread(target=work, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        rec = engines[0].get("conc", "k")
        assert rec["payload"] == {"n": 1000, "f": 500.0} and rec["version"] == 1000
        assert len(engines[0].client.xrange("o:{conc}:x")) == 1000  # one live message per increment
    finally:
        for e in engines:
            e.close()


WORKER = """
import sys
from ocean.redisstore import RedisEngine
eng = RedisEngine(sys.argv[1])
for _ in range(int(sys.argv[2])):
    eng.incr("conc", "p", {"n": 1})
eng.close()
"""


def test_concurrent_mixed_writes_keep_versions_history_and_seqs_whole(redis_cluster):
    """Threads saving, updating and incrementing one entity: every write is one version, one seq,
    one message; the counters lose nothing; history holds the newest ``history_limit`` in order."""
    settings = Settings.load(history_limit=50)
    engines = [RedisEngine(redis_cluster.url, settings=settings) for _ in range(3)]
    try:
        def work(eng, t):
            for i in range(100):
                if i % 3 == 0:
                    eng.save("mix", {"by": t, "+n": 1}, key="k")
                elif i % 3 == 1:
                    eng.update("mix", "k", {"last": i, "+n": 1})
                else:
                    eng.incr("mix", "k", {"n": 1})

        threads = [threading.Thread(target=work, args=(e, t)) for t, e in enumerate(engines)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        red = engines[0]
        rec = red.get("mix", "k")
        assert rec["payload"]["n"] == 300 and rec["version"] == 300
        seqs = [m["seq"] for m in red.changes("mix", None, limit=1000)[1]]
        assert seqs == list(range(1, 301))
        hist = red.history("mix", "k", limit=100)
        assert len(hist) == 50 and [h["version"] for h in hist] == sorted((h["version"] for h in hist), reverse=True)
    finally:
        for e in engines:
            e.close()


def test_processes_incrementing_one_counter_lose_nothing(redis_cluster):
    src = os.path.dirname(os.path.dirname(os.path.abspath(errors.__file__)))
    env = dict(os.environ, PYTHONPATH=src)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, redis_cluster.url, "300"], env=env)
             for _ in range(3)]
    try:
        for p in procs:
            assert p.wait(120) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    red = RedisEngine(redis_cluster.url)
    try:
        assert red.get("conc", "p")["payload"] == {"n": 900}
    finally:
        red.close()


GEVENT_WORKER = """
from gevent import monkey; monkey.patch_all()
import sys, gevent
from ocean.redisstore import RedisEngine
eng = RedisEngine(sys.argv[1])
gevent.joinall([gevent.spawn(lambda: [eng.incr("conc", "g", {"n": 1}) for _ in range(100)]) for _ in range(20)],
               timeout=60, raise_error=True)
print(eng.get("conc", "g")["payload"]["n"])
eng.close()
"""


def test_greenlets_share_one_engine_under_gevent(redis_cluster):
    """How ``ocean serve`` will use it: one engine per worker, many greenlets (monkey-patched sockets)."""
    src = os.path.dirname(os.path.dirname(os.path.abspath(errors.__file__)))
    out = subprocess.run([sys.executable, "-c", GEVENT_WORKER, redis_cluster.url], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, PYTHONPATH=src))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "2000"


def test_overflow_is_refused_with_nothing_changed(redis_cluster):
    red = RedisEngine(redis_cluster.url)
    try:
        red.incr("o", "k", {"a": 1, "n": 2 ** 63 - 1})
        red.save("o", {"p": 2 ** 63 - 1}, key="q")
        before = red.get("o", "k"), red.client.xlen("o:{o}:x")
        for amounts in ({"a": 1, "n": 1}, {"n": 1, "a": 1}):
            with pytest.raises(errors.CounterOverflow):
                red.incr("o", "k", amounts)
        with pytest.raises(errors.CounterOverflow):
            red.update("o", "q", {"+p": 1})  # a plain field becoming a counter
        assert (red.get("o", "k"), red.client.xlen("o:{o}:x")) == before  # no seq, no message either
        assert red.get("o", "q")["payload"] == {"p": 2 ** 63 - 1}
    finally:
        red.close()


# -- connection -----------------------------------------------------------------------------

def test_unreachable_redis_is_storage_unavailable(redis_tools):
    from cluster import free_ports
    with pytest.raises(errors.StorageError) as info:
        RedisEngine(f"redis://127.0.0.1:{free_ports(1)[0]}")
    assert info.value.code == "storage_unavailable" and info.value.status == 503
    assert "cannot be reached" in info.value.message
    for bad in ("http://127.0.0.1:1", "redis://", "redis://127.0.0.1:1,host:port"):
        with pytest.raises(errors.StorageError, match="redis://host:port"):
            RedisEngine(bad)


def test_seeds_may_be_listed_and_some_may_be_down(redis_cluster):
    from cluster import free_ports
    down = free_ports(1)[0]
    seeds = ",".join(f"127.0.0.1:{p}" for _, p in redis_cluster.seeds[1:3])
    red = RedisEngine(f"redis://127.0.0.1:{down},{seeds}")
    try:
        assert red.is_cluster and red.incr("seeds", "k", {"n": 1}) == {"n": 1}
    finally:
        red.close()


def test_functions_are_versioned(redis_single):
    red = RedisEngine(redis_single.url)
    try:
        red.client.function_delete("ocean")
        RedisEngine(redis_single.url).close()  # missing: loaded again
        assert red.incr("v", "k", {"n": 1}) == {"n": 1}
        lib = red.client.function_list("ocean", withcode=True)[0]
        lib = dict(zip(lib[::2], lib[1::2])) if isinstance(lib, list) else lib
        newer = lib["library_code"].replace(
            f"local VERSION = {red.functions_version}", "local VERSION = 99999")
        red.client.function_load(newer, replace=True)
        with pytest.raises(errors.StorageError, match="newer"):
            RedisEngine(redis_single.url)
    finally:
        red.client.function_delete("ocean")
        red.close()


def test_a_plain_field_summed_past_float64_refuses_the_whole_write(redis_single):
    """Here the write is refused whole. The embedded store differs today (reported as a bug in
    engine/state.py: it adds ``y``, then refuses ``x`` with InvalidAmount), so this is not differential."""
    red = RedisEngine(redis_single.url)
    try:
        red.save("r", {"x": 1e308}, key="k")
        with pytest.raises(errors.CounterOverflow, match="float64 range"):
            red.update("r", "k", {"+y": 1, "+x": 1e308})
        assert red.get("r", "k")["payload"] == {"x": 1e308}
    finally:
        red.close()


def test_figures_match_the_embedded_engine(pair):
    for eng in pair:
        for i in range(5):
            eng.save("fig/a", {"i": i})
        eng.incr("fig/b", "k1", {"n": 1})
        eng.save("fig/b", {"x": 1}, key="k2")
        eng.save("fig/c", {"x": 1})
    emb, red = pair
    assert red.largest_routes(2) == emb.largest_routes(2) == [("fig/a", 5, 0), ("fig/b", 0, 2)]
    assert red.route_size("fig/b") == emb.route_size("fig/b") == 2
    st = red.stats()
    assert (st["entities"], st["events"], st["routes"]) == (2, 6, 3)
    assert red.health()["ok"] and red.health()["masters"][0]["ok"]


def test_listing_past_many_expired_entities_and_sweeping_them(redis_single):
    """A listing looks at 2000 keys a call at most (Redis is never held long) and goes on from
    where it stopped; ``sweep`` frees what expired."""
    red = RedisEngine(redis_single.url)
    try:
        red.drop_many([{"route": "exp", "key": f"a{i:05d}", "payload": {"i": i}, "keep": 0.05} for i in range(2500)])
        red.drop_many([{"route": "exp", "key": f"b{i}", "payload": {"i": i}} for i in range(3)])
        red.drop_many([{"route": "exp", "payload": {"e": i}, "keep": 0.05} for i in range(5)] +
                      [{"route": "exp", "payload": {"e": "stays"}}])
        time.sleep(0.1)
        assert [r["key"] for r in red.list("exp")] == ["b0", "b1", "b2"]
        assert [k for k, _ in red.route_entities("exp")] == ["b0", "b1", "b2"]
        assert red.route_size("exp") == 2503 + 6
        removed = red.sweep()
        assert len(removed["exp"]) == 2500
        assert red.route_size("exp") == 3 + 1
        assert [e["payload"] for e in red.events("exp")] == [{"e": "stays"}]
    finally:
        red.close()
