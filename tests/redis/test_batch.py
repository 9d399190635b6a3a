"""``POST /drop`` batches in Redis mode: one ``ocean_write_many`` call per route page, not one call
per drop. Each drop still gets the embedded engine's answer (a refused one changes nothing, the
others apply), a route's drops keep their order and seqs, and a batched call leaves in Redis
exactly what one ``ocean_write`` per drop leaves: entities, counters, sketches, keep, history,
events, change stream entries and the live messages SSE sends.
"""
from __future__ import annotations

import json
import time

import pytest

from ocean import errors
from ocean.redisstore import RedisEngine, engine as redis_engine, layout
from ocean.settings import Settings
from test_redis_engine import both
from test_sketches import same_sketches


def _mixed(route_a: str, route_b: str, route_c: str) -> list:
    """Good and bad drops of three routes, interleaved: every kind a drop can be, refusals that only
    the stored state can tell (Lua's) and ones the worker tells (Python's) among them."""
    return [
        {"route": route_a, "key": "k", "payload": {"name": "n", "+a": 1}},
        {"route": route_b, "payload": {"event": 1}},
        {"route": route_a, "key": "k", "payload": {"+name": 1}},  # not a counter: refused in Redis
        {"route": route_c, "key": "s", "payload": {"~u": ["x", "y"], "%d": [1.5, 2, 3]}},
        {"route": route_a, "key": "k", "payload": {"+a": 9223372036854775807}},  # overflow: refused in Redis
        {"route": route_a, "key": "k", "payload": {"+a": "x"}},  # refused by the worker
        {"route": route_b, "key": "v", "payload": 42},  # a plain value
        {"route": route_b, "key": "v", "payload": {"+n": 1}},  # incr of a plain value: refused in Redis
        {"route": route_c, "key": "s", "payload": {"~u": ["z"], "%d": [0, -4]}},
        {"route": route_c, "key": "s", "payload": {"d": 1}},  # sets a dist field: refused in Redis
        {"route": route_c, "key": "s", "payload": {"%u": [1]}},  # another kind: refused in Redis
        {"route": route_a, "key": "k", "payload": {"+a": 2, "b": "t"}},
        {"route": route_a, "key": "gone", "payload": {"x": 1}, "keep": 0.05},
        {"route": route_b, "payload": {"event": 2}, "keep": 60},
        {"route": route_a, "key": "k", "payload": {"+a": 1.5}},
        {"route": route_a, "key": "k", "payload": {"+a": 2}},  # an integer added to a float counter
        "not a drop",
        {"route": route_b, "key": "f", "payload": {"+c": 1.0e308}},
        {"route": route_b, "key": "f", "payload": {"+c": 1.0e308}},  # float overflow: refused in Redis
        {"route": route_a, "key": "k", "payload": {}},
    ]


def test_mixed_good_and_bad_drops_of_several_routes_answer_as_embedded(pair):
    out = both(pair, "drop_many", _mixed("ba/a", "ba/b", "ba/c"))[1]
    refused = [i for i, r in enumerate(out) if isinstance(r, tuple)]
    assert refused == [2, 4, 5, 7, 9, 10, 16, 18], out  # the others applied
    both(pair, "get", "ba/a", "k")  # a refused drop changed nothing: the counters are the good drops' sums
    both(pair, "get", "ba/b", "v")
    both(pair, "get", "ba/b", "f")
    both(pair, "get", "ba/c", "s")
    same_sketches(pair, "ba/c", "s")
    both(pair, "history", "ba/a", "k", 10)
    both(pair, "events", "ba/b")
    time.sleep(0.1)  # the keep of ba/a@gone runs out
    both(pair, "entity", "ba/a", "gone")
    both(pair, "list", "ba/a")


def test_each_routes_drops_keep_their_order_and_seqs_across_pages(pair):
    """A batch larger than a page: three routes interleaved, refusals among them. Each route's good
    drops take the seqs 1, 2, 3... in request order; the answers are in request order."""
    emb, red = pair
    per_route = 3 * redis_engine.ROUTE_PAGE_COST + 7
    drops = []
    for i in range(per_route):
        for r in ("pg/a", "pg/b", "pg/c"):
            bad = i % 50 == 17 and r == "pg/b"
            drops.append({"route": r, "key": f"k{i % 7}", "payload": {"+n": 1, "+m": "x" if bad else i}})
    drops.append({"route": "pg/a", "key": "k0", "payload": {"+n": 9223372036854775807}})  # overflow
    out = both(pair, "drop_many", drops)[1]
    for r in ("pg/a", "pg/b", "pg/c"):
        both(pair, "list", r)
    assert red.drop_many([]) == []
    seqs = {}
    answers = red.drop_many(drops)  # once more: the seqs go on from where the first batch left them
    assert [i for i, a in enumerate(answers) if not isinstance(a, dict)] == \
        [i for i, o in enumerate(out) if not isinstance(o, dict)]
    for d, a in zip(drops, answers):
        if isinstance(a, dict):
            seqs.setdefault(d["route"], []).append(a["seq"])
            assert a["route"] == d["route"] and a["key"] == d["key"]
    good = {r: sum(1 for d, o in zip(drops, out) if d["route"] == r and isinstance(o, dict))
            for r in ("pg/a", "pg/b", "pg/c")}
    assert good == {"pg/a": per_route, "pg/b": per_route - len(range(17, per_route, 50)), "pg/c": per_route}
    for r, got in seqs.items():
        assert got == list(range(good[r] + 1, 2 * good[r] + 1)), r
        assert [m["seq"] for m in red.changes(r, None, limit=10 * per_route)[1]] == list(range(1, 2 * good[r] + 1))


def _stored(red: RedisEngine, route: str) -> dict:
    """What a route holds in Redis, with its times taken out: every key's entries."""
    c = red.client
    out = {"changes": [(sid.split("-")[0], {k: v for k, v in f.items() if k != "e"})
                       for sid, f in c.xrange(layout.changes(route), "-", "+")],
           "events": [(sid.split("-")[0], {k: v for k, v in f.items() if k != "x"})
                      for sid, f in c.xrange(layout.events(route), "-", "+")],
           "meta": {k: v for k, v in c.hgetall(layout.meta(route)).items() if k not in ("ms", "w")}}
    for key in c.zrange(layout.keys(route), 0, -1):
        ent = c.hgetall(f"o:{{{route}}}:e:{key}")
        out[key] = {"n": ent["n"], "v": ent.get("v"), "kept": ent["x"] != "0",
                    "f": c.hgetall(f"o:{{{route}}}:f:{key}"), "c": c.hgetall(f"o:{{{route}}}:c:{key}"),
                    "t": c.hgetall(f"o:{{{route}}}:t:{key}"), "s": c.hgetall(f"o:{{{route}}}:s:{key}"),
                    "h": [_no_time(json.loads(h)) for h in c.lrange(f"o:{{{route}}}:h:{key}", 0, -1)],
                    "ttl": c.pttl(f"o:{{{route}}}:e:{key}") > 0}
    return out


def _no_time(entry: list) -> list:  # a history entry [version, seq, ms, op, payload] without its ms
    return entry[:2] + entry[3:]


def _renamed(drops: list, route: str) -> list:
    return [dict(d, route=route) if isinstance(d, dict) else d for d in drops]


def test_a_batched_call_leaves_what_one_call_per_drop_leaves(redis_cluster, monkeypatch):
    """The same drops through ``ocean_write_many`` (one call a page) and through ``ocean_write``
    (one call a drop, as before batching): the same answers, and the same entries in every key."""
    drops = [d for d in _mixed("eq/x", "eq/x", "eq/x") if not (isinstance(d, dict) and d.get("keep") == 0.05)]
    drops += [{"route": "eq/x", "key": f"k{i % 5}", "payload": {"+n": i, "s": "a" * i}, "keep": 3600 if i % 3 else None}
              for i in range(40)]
    red = RedisEngine(redis_cluster.url, settings=Settings.load(history_limit=3, replay_history=30))
    try:
        batched = red.drop_many(_renamed(drops, "eq/batched"))
        monkeypatch.setattr(redis_engine, "ROUTE_PAGE_COST", 1)  # every call one drop: ocean_write
        single = red.drop_many(_renamed(drops, "eq/single"))
        assert len(batched) == len(single) == len(drops)
        for b, s in zip(batched, single):
            if isinstance(b, dict):
                assert {**b, "route": "", "drop_id": "", "created_at": ""} == {**s, "route": "", "drop_id": "",
                                                                               "created_at": ""}
            else:
                assert (type(b), b.message.replace("eq/batched", "")) == (type(s), s.message.replace("eq/single", ""))
        assert _stored(red, "eq/batched") == _stored(red, "eq/single")
    finally:
        red.close()


def test_one_doorbell_per_call_and_every_message_reaches_a_subscriber(redis_cluster):
    """The shard channel rings once per call (not per drop); the live reader still hands every
    message on, in order, since it reads the change stream after its position."""
    red = RedisEngine(redis_cluster.url, settings=Settings.load(replay_history=1000))
    route = "bell/r"
    red.save(route, {"i": -1}, key="k")  # registered, so the subscription follows it
    sub = red.subscribe("bell/*")
    pubsub = red.client.pubsub()
    try:
        pubsub.ssubscribe(layout.channel(route))
        deadline = time.monotonic() + 5
        while pubsub.get_sharded_message(timeout=0.1) is None and time.monotonic() < deadline:
            pass  # the subscribe confirmation
        n = redis_engine.ROUTE_PAGE_COST + 20  # two calls
        out = red.drop_many([{"route": route, "key": "k", "payload": {"+n": 1, "i": i}} for i in range(n)])
        assert all(isinstance(r, dict) for r in out)
        rings = []
        for _ in range(20):  # bounded: the two rings come, then nothing more
            msg = pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=0.2)
            if msg is not None:
                rings.append(msg["data"])
            elif len(rings) >= 2:
                break
        assert len(rings) == 2, rings
        assert rings[-1].endswith(f',"update","k",{{"i":{n - 1},"n":{n}}}]')  # the call's last message
        got = []
        deadline = time.monotonic() + 10
        while len(got) < n and time.monotonic() < deadline:
            sent = sub.get(timeout=0.2)
            msg = sent.msg if sent is not None else None
            if msg is not None and msg.route == route and msg.seq > 1:
                got.append(msg)
        assert [m.seq for m in got] == [r["seq"] for r in out]
        assert [m.fields["i"] for m in got] == list(range(n))
    finally:
        pubsub.close()
        sub.close()
        red.close()


@pytest.mark.parametrize("kind", ["uniq", "dist"])
def test_sketch_adds_in_a_batch_answer_and_summarise_as_embedded(pair, kind):
    prefix = "~" if kind == "uniq" else "%"
    drops = [{"route": "sk/b", "key": f"e{i % 3}", "payload": {f"{prefix}f": [i, i * 2.5], "+n": 1}} for i in range(60)]
    drops.insert(30, {"route": "sk/b", "key": "e0", "payload": {"f": 1}})  # refused: f is a sketch
    both(pair, "drop_many", drops)
    for i in range(3):
        both(pair, "get", "sk/b", f"e{i}")
        same_sketches(pair, "sk/b", f"e{i}")


def test_pages_of_a_route_whose_slot_is_moving_land_once_in_order(redis_cluster):
    """Mid-migration (the route's keys already on the target: ASK) and after it (MOVED), a batch
    spanning pages of that route and drops of another lands every drop exactly once, in order: a
    call is one route's, on one slot, so it runs whole on one node or is redirected whole."""
    from test_redirects import _give_slot, _node_id
    route, other = "slot/batch", "slot/still"
    meta = layout.meta(route)
    source = redis_cluster.master_of(meta)
    target = next(n for n in redis_cluster.masters() if n is not source)
    src, dst = source.client(), target.client()
    slot = src.execute_command("CLUSTER", "KEYSLOT", meta)
    red = RedisEngine(redis_cluster.url)
    n = 2 * redis_engine.ROUTE_PAGE_COST + 30
    batch = [{"route": r, "key": f"k{i % 3}", "payload": {"+n": 1, "i": i}} for i in range(n) for r in (route, other)]
    try:
        assert all(isinstance(r, dict) for r in red.drop_many(batch))
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", _node_id(target))
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", _node_id(source))
        keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        asked = red.drop_many(batch)
        _give_slot(redis_cluster, slot, target, source)
        moved = red.drop_many(batch)
        for out in (asked, moved):
            assert all(isinstance(r, dict) for r in out), out
            seqs = [r["seq"] for r in out if r["route"] == route]
            assert seqs == list(range(seqs[0], seqs[0] + n))
        assert sum(red.get(route, f"k{j}")["payload"]["n"] for j in range(3)) == 3 * n  # none lost, none twice
        assert sum(red.get(other, f"k{j}")["payload"]["n"] for j in range(3)) == 3 * n
        assert [m["seq"] for m in red.changes(route, None, limit=10 * n)[1]] == list(range(1, 3 * n + 1))
    finally:
        red.close()
        src.close()
        dst.close()
        _give_slot(redis_cluster, slot, source, target)
        redis_cluster.wait_ok(30)
