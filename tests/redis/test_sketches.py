"""Sketch fields (uniq, dist) in the Redis store against the embedded engine: the same answers,
errors, live messages, bytes (export, SQL merges) and the same refusals with nothing changed.

``pair``/``both`` (test_redis_engine.py) run each call on both stores and compare the answers
with the fields this mode may differ in by design taken out (seq, drop_id, times).
"""
from __future__ import annotations

import base64
import re
import threading
import time

import pytest

from ocean._reference import sketch as ref
from ocean.engine.sketches import encode
from ocean.kernels import core
from ocean.redisstore import RedisEngine
from ocean.redisstore import sketches as rsk
from ocean.redisstore.connection import LUA_PATH
from ocean.sql import query
from test_redis_engine import both, strip

R = "an/daily"
_HUGE = core().Dist()
_HUGE.add(1.0, 1 << 62)
HUGE = encode(_HUGE)  # two of these pass a dist's 2**63 - 1 values


def same_sketches(pair, route, key):
    """Both stores hold the same sketches, byte for byte (what an export and SQL merges use)."""
    emb, red = pair
    a = {name: s.to_bytes() for name, s in emb.entity_sketches(route, key).items()}
    b = {name: s.to_bytes() for name, s in red.entity_sketches(route, key).items()}
    assert a == b, f"{route} @{key}:\n embedded {a}\n redis    {b}"
    return b


def messages(engine, prefix, n=100):
    """The data of the last ``n`` live messages under ``prefix``, without ids and times."""
    return [{k: v for k, v in m.data.items() if k not in ("_id", "_at")} for m in engine.recent(prefix, n)]


def test_sketch_writes_give_the_same_answers(pair):
    calls = [
        ("uniq", R, "d1", {"visitors": ["u1", "u2", 5, "5", ""]}),
        ("observe", R, "d1", {"ms": [12.5, 3, [7.25, 4], 0, -0.0, -2.5]}),
        ("drop", R, {"+page_views": 1, "~visitors": ["u3", "u1"], "%ms": 40}, "d1"),
        ("drop", R, {"title": "Mon", "+page_views": 2, "~visitors": "u9", "%ms": [[1.5, 3]]}, "d2"),
        ("update", R, "d1", {"note": "x", "+page_views": 1, "~other": ["q"]}),
        ("save", R, {"title": "replaced"}, "d1"),  # a save keeps the sketches, as it keeps counters
        ("get", R, "d1"),
        ("history", R, "d1"),
        ("incr", R, "d1", {"page_views": 5}),
        ("observe", R, "d3", {"ms": []}),  # an empty add makes an empty sketch
        ("uniq", R, "d3", {"u": []}),
        ("get", R, "d3"),
        ("observe", R, "d4", {"ms": [1e308, 1e308, -1e308]}),  # the sum leaves the float range: null
        ("get", R, "d4"),
        ("observe", R, "d5", {"ms": [10.0 ** (i / 40) for i in range(-1200, 1200, 7)] + [5e-324, 1e-300]}),
        ("uniq", R, "d6", {"u": [f"visitor-{i}" for i in range(2000)]}),  # dense: more than 768 registers
        ("list", R),
        ("route_entities", R),
        ("drop_many", [{"route": R, "key": "d7", "payload": {"~u": ["a", "b"], "%ms": [1, 2, 3]}},
                       {"route": R, "key": "d7", "payload": {"~u": "c", "+n": 1}},
                       {"route": R, "key": "d7", "payload": {"%u": 1}},
                       {"route": R, "key": "d7", "payload": {"~u": "d", "%ms": 4}}]),
        ("remove", R, "d7"),
        ("get", R, "d7"),
        ("observe", R, "d7", {"ms": 9}),  # a new entity: no trace of the removed sketches
    ]
    for method, *args in calls:
        if method in ("list", "route_entities"):
            emb, red = pair
            assert strip(list(getattr(emb, method)(*args))) == strip(list(getattr(red, method)(*args)))
            continue
        both(pair, method, *args)
    for key in ("d1", "d2", "d3", "d4", "d5", "d6", "d7"):
        same_sketches(pair, R, key)
    assert messages(pair[0], "an/*") == messages(pair[1], "an/*")
    assert pair[1].route_has_sketches(R) and not pair[1].route_has_sketches("an/none")


@pytest.mark.parametrize("write", [
    ("update", "k", {"visitors": 1}),  # a plain value on a uniq field
    ("save", {"visitors": "x"}, "k"),
    ("incr", "k", {"visitors": 1}),  # an increment of a sketch field
    ("update", "k", {"+ms": 1}),
    ("observe", "k", {"visitors": 1}),  # the other kind of sketch
    ("uniq", "k", {"ms": "a"}),
    ("observe", "k", {"n": 1}),  # a counter
    ("uniq", "k", {"name": "a"}),  # a plain field
    ("update", "k", {"name": "b", "~name": "a"}),  # set and added in one write
    ("update", "k", {"+n": 1, "%n": 2}),  # incremented and added
    ("drop", {"~both": "a", "%both": 1}, "k"),  # uniq and dist at once
    ("observe", "k", {"ms": [{"sketch": HUGE}, 3, {"sketch": HUGE}]}),  # the count would pass 2**63 - 1
    ("observe", "k", {"big": [[1e308, 2], [-1e308, 2]]}),  # +inf + -inf: NaN
    ("observe", "k", {"ms": "a"}),  # not numbers
    ("observe", "k", {"ms": float("inf")}),
    ("uniq", "k", {"visitors": 1.5}),
    ("uniq", "k", {"visitors": {"sketch": "bm90IGEgc2tldGNo"}}),
    ("observe", "k", {}),
    ("drop", {"+n": 1, "~visitors": ["fresh"], "%ms": [{"sketch": HUGE}] * 2}, "k"),  # refused whole
])
def test_refused_sketch_writes_give_the_same_errors_and_change_nothing(pair, write):
    for eng in pair:
        eng.drop(R, {"name": "a", "+n": 1, "~visitors": ["u1", "u2"], "%ms": [12.5, 40]}, key="k")
    before = [both(pair, "get", R, "k"), same_sketches(pair, R, "k")]
    method, *args = write
    out = both(pair, method, R, *args)
    assert out[0] == "error", out
    assert [both(pair, "get", R, "k"), same_sketches(pair, R, "k")] == before
    assert messages(pair[0], R) == messages(pair[1], R)


def test_whole_sketches_merge_in_as_an_import_writes_them(pair):
    """``{"sketch": base64}`` values (what an export writes) merge into both stores alike: into a
    new field, into an existing one, dense or sparse, with values beside them."""
    emb, _ = pair
    emb.uniq("src", "a", {"small": ["x", "y"], "big": [f"v{i}" for i in range(3000)]})
    emb.observe("src", "a", {"ms": [0.5, 3, 3, 900, -4, 0], "one": [7]})
    src = {name: encode(s) for name, s in emb.entity_sketches("src", "a").items()}
    for eng in pair:
        eng.uniq(R, "m", {"small": ["x", "z"]})
        eng.observe(R, "m", {"ms": [1, 2]})
    both(pair, "uniq", R, "m", {"small": [{"sketch": src["small"]}, "w"], "big": {"sketch": src["big"]}})
    both(pair, "observe", R, "m", {"ms": [{"sketch": src["ms"]}, 5], "fresh": {"sketch": src["one"]}})
    both(pair, "drop", R, {"~big": {"sketch": src["small"]}, "%fresh": {"sketch": src["ms"]}}, "m")
    both(pair, "get", R, "m")
    same_sketches(pair, R, "m")


def test_a_sketch_of_the_export_reads_back_the_same(pair):
    """Redis's HyperLogLog strings (sparse and dense) and ocean's Hll bytes convert both ways."""
    emb, red = pair
    for n in (0, 1, 5, 700, 769, 900, 20000):
        values = [f"n{n}-{i}" for i in range(n)]
        for eng in pair:
            eng.uniq("conv", f"k{n}", {"u": values})
        b = same_sketches(pair, "conv", f"k{n}")["u"]
        sketch = red.entity_sketches("conv", f"k{n}")["u"]
        assert rsk.hll_from_redis(rsk.hll_to_redis(sketch)).to_bytes() == b
        assert sketch.count() == emb.get("conv", f"k{n}")["payload"]["u"]


def test_redis_sketch_strings_are_redis_hyperloglogs(redis_single):
    """What ocean writes for a merge is a HyperLogLog Redis itself accepts and counts alike."""
    red = RedisEngine(redis_single.url)
    try:
        red.uniq("hll", "k", {"u": [f"x{i}" for i in range(300)]})
        for n in (10, 300, 5000):
            sketch = red.entity_sketches("hll", "k")["u"].__class__()
            sketch.add([f"y{i}" for i in range(n)])
            red.client.set("scratch-hll", rsk.hll_to_redis(sketch))
            assert red.client.pfcount("scratch-hll") == sketch.count()
            red.client.pfadd("scratch-hll", "extra")
            sketch.add(["extra"])
            assert red.client.pfcount("scratch-hll") == sketch.count()
    finally:
        red.close()


def test_the_lua_constants_are_pythons_doubles():
    with open(LUA_PATH, encoding="utf-8") as f:
        code = f.read()
    gamma, one_plus_a, limit = re.search(r"local GAMMA, ONE_PLUS_A, BIN_LIMIT = ([0-9.e+-]+), ([0-9.e+-]+), (\d+)",
                                         code).groups()
    assert float(gamma) == ref.DIST_GAMMA and float(one_plus_a) == 1 + ref.DIST_RELATIVE_ACCURACY
    assert int(limit) == ref.DIST_BIN_LIMIT


def test_sql_merges_of_sketches_give_the_same_rows(pair):
    for eng in pair:
        for day in range(5):
            key = f"2026-02-{10 + day}"
            eng.uniq("an/sql", key, {"visitors": [f"u{(day * 37 + i) % 900}" for i in range(400)]})
            eng.observe("an/sql", key, {"ms": [((day + 1) * i) % 313 / 7 for i in range(300)]})
            eng.drop("an/sql", {"half": day % 2, "+page_views": 3}, key=key)
    sql = ('SELECT half, uniq_merge(visitors) AS u, quantile_merge(ms, 0.95) AS p95, quantile_merge(ms, 0.5) AS p50, '
           'SUM(page_views) AS pv FROM "an/sql" GROUP BY half ORDER BY half')
    emb, red = pair
    assert query(emb, sql)["rows"] == query(red, sql)["rows"]
    red.observe("an/sql", "2026-02-10", {"ms": [5000]})  # the columns follow the change
    emb.observe("an/sql", "2026-02-10", {"ms": [5000]})
    red.catch_up()  # as /sql does first: what the change streams hold up to now
    sql = 'SELECT quantile_merge(ms, 1) AS top FROM "an/sql"'
    assert query(emb, sql)["rows"] == query(red, sql)["rows"] == [{"top": 5000.0}]


def test_sketch_keys_go_with_their_entity(redis_single):
    """Remove, a plain value saved over the entity, and keep running out leave no sketch keys."""
    red = RedisEngine(redis_single.url)
    try:
        red.drop("gone", {"~u": "a", "%ms": 1}, key="r")
        red.remove("gone", "r")
        red.drop("gone", {"~u": "a", "%ms": 1}, key="v")
        red.save("gone", 42, key="v")
        red.drop("gone", {"x": 1}, key="e", keep=0.05)
        red.uniq("gone", "e", {"u": "a"})
        red.observe("gone", "e", {"ms": 1})
        assert red.client.pttl("o:{gone}:u:e:u") > 0 and red.client.pttl("o:{gone}:d:e:ms") > 0  # Redis frees them
        time.sleep(0.1)
        assert red.get("gone", "v")["payload"] == 42
        red.sweep()
        left = [k for k in red.client.keys("o:{gone}:*") if re.match(r"o:\{gone\}:[usd]:", k)]
        assert left == [], left
    finally:
        red.close()


def test_threads_adding_to_one_sketch_lose_nothing(redis_cluster):
    engines = [RedisEngine(redis_cluster.url) for _ in range(4)]
    try:
        def work(eng, t):
            for i in range(50):
                eng.observe("th/s", "k", {"ms": [float(i), [2.5, 2]]})
                eng.uniq("th/s", "k", {"u": [f"t{t}-{i}"]})
        threads = [threading.Thread(target=work, args=(eng, t)) for t, eng in enumerate(engines)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        payload = engines[0].get("th/s", "k")["payload"]
        assert payload["ms"]["count"] == 4 * 50 * 3 and payload["ms"]["max"] == 49.0
        kernel = engines[0].entity_sketches("th/s", "k")["u"].__class__()
        kernel.add([f"t{t}-{i}" for t in range(4) for i in range(50)])
        assert payload["u"] == kernel.count()
    finally:
        for eng in engines:
            eng.close()


def test_exported_sketch_bytes_decode_as_the_kernels(redis_single):
    red = RedisEngine(redis_single.url)
    try:
        red.observe("ex", "k", {"ms": [1, 2, 3]})
        got = red.entity_sketches("ex", "k")["ms"]
        assert base64.b64decode(encode(got)) == got.to_bytes() and got.count == 3
    finally:
        red.close()


@pytest.mark.parametrize("seed", range(2))
def test_random_sketch_sequences_give_the_same_answers(pair, seed):
    import random
    rng = random.Random(seed)
    for _ in range(60):
        key = f"k{rng.randrange(3)}"
        if rng.random() < 0.5:
            values = [f"v{rng.randrange(5000)}" for _ in range(rng.randrange(40))]
            both(pair, "uniq", R, key, {rng.choice("ab"): values})
        else:
            values = [rng.lognormvariate(0, 4) * rng.choice((1, -1, 0)) for _ in range(rng.randrange(40))]
            both(pair, "observe", R, key, {rng.choice("bc"): values})  # "b" may be a uniq field: refused alike
    for key in ("k0", "k1", "k2"):
        same_sketches(pair, R, key)
