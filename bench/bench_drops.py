"""Drops beside its baselines: the compiled lexer vs its pure twin; scripts vs direct engine calls.

Run: ``PYTHONPATH=src python -m pytest bench/bench_drops.py --benchmark-only -q``
Each benchmark asserts its answer; ``extra_info`` carries MB/s or commands/s.

Groups:
- ``drops-lexer``: ``drops_lex`` on a ~1 MB script of tutorial-like lines, compiled and pure.
- ``drops-incr-script``: a 10,000-line ``incr`` script through ``ocean.drops.run`` on a real
  engine; beside it the same 10,000 increments as direct ``engine.incr`` calls (the engine's
  own cost, which bounds the script) and the script on a null engine (Drops' own cost:
  lexing, cached parsing, access checks, dispatch, results).
- ``drops-mixed-script``: a 1,000-line script of every command family on a real engine.
- ``drops-post-1000``: what ``POST /drop`` does with a body of 1000 drops (parse, write,
  answer) on a real engine, without the HTTP server: bench_scale's events, its counter drops
  creating their entities and incrementing existing ones; beside it the floor of any handler
  in Python (the body parsed, 1000 receipts answered, nothing written).
"""
from __future__ import annotations

import json
import random

import pytest
from benchutil import Counted, rate

import ocean._core as compiled
import ocean._reference as pure
from ocean import Engine
from ocean.drops import run
from ocean.settings import Settings

INCR_LINES = 10_000


def lexer_script() -> bytes:
    rng = random.Random(3)
    lines = []
    while sum(map(len, lines)) < 1_000_000:
        lines.append(rng.choice([
            b"incr analytics/daily @2026-02-%02d .page_views" % rng.randint(1, 28),
            b'incr analytics/endpoints @2026-02-10 ."POST /drop" 3',
            b'write analytics/events { method: "POST", path: "/drop", status: 200 }',
            b"-- a comment line about the dashboard",
            b"find analytics/daily where page_views > 100 sort page_views desc limit 7",
            b'sql `SELECT key AS date, page_views, requests FROM "analytics/daily" ORDER BY key DESC LIMIT 7`',
        ]))
    return b"\n".join(lines)


SCRIPT = lexer_script()
EXPECTED = pure.drops_lex(SCRIPT)


@pytest.mark.benchmark(group="drops-lexer")
@pytest.mark.parametrize("impl", [compiled, pure], ids=["compiled", "pure"])
def test_lexer_mb_per_s(benchmark, impl):
    rounds = 20 if impl is compiled else 3
    out = benchmark.pedantic(impl.drops_lex, args=(SCRIPT,), rounds=rounds, iterations=1, warmup_rounds=1)
    assert out == EXPECTED
    benchmark.extra_info["MB/s"] = rate(benchmark, len(SCRIPT) / 1e6, 1)


def incr_script() -> str:
    return "".join(f"incr analytics/daily @2026-02-{i % 28 + 1:02d} .page_views\n" for i in range(INCR_LINES))


@pytest.fixture
def fresh_engine(tmp_path):
    engines = []

    def make():
        eng = Engine(str(tmp_path / f"d{len(engines)}"), maintenance=False)
        engines.append(eng)
        return eng
    yield make
    for eng in engines:
        eng.close()


def _total(engine) -> int:
    return sum(rec["payload"]["page_views"] for _k, rec in engine.route_entities("analytics/daily"))


@pytest.mark.benchmark(group="drops-incr-script")
def test_incr_script_on_engine(benchmark, fresh_engine):
    script = incr_script()
    engines = []

    def setup():
        engines.append(fresh_engine())
        return (engines[-1], script), {}
    results = benchmark.pedantic(run, setup=setup, rounds=7, iterations=1)
    assert len(results) == INCR_LINES and all(r["ok"] for r in results)
    assert _total(engines[-1]) == INCR_LINES
    benchmark.extra_info["commands/s"] = rate(benchmark, INCR_LINES)


@pytest.mark.benchmark(group="drops-incr-script")
def test_incr_direct_engine_calls_baseline(benchmark, fresh_engine):
    engines = []
    days = [f"2026-02-{i % 28 + 1:02d}" for i in range(INCR_LINES)]

    def setup():
        engines.append(fresh_engine())
        return (engines[-1],), {}

    def direct(engine):
        incr = engine.incr
        return [incr("analytics/daily", day, {"page_views": 1}) for day in days]
    out = benchmark.pedantic(direct, setup=setup, rounds=7, iterations=1)
    assert len(out) == INCR_LINES and _total(engines[-1]) == INCR_LINES
    benchmark.extra_info["commands/s"] = rate(benchmark, INCR_LINES)


class NullEngine:
    """Takes each increment and does nothing else: isolates Drops' own cost."""

    settings = Settings.load()

    def __init__(self):
        self.calls = 0

    def incr(self, route, key, amounts, source=None):
        self.calls += 1
        return amounts


@pytest.mark.benchmark(group="drops-incr-script")
def test_incr_script_front_end_only(benchmark):
    script = incr_script()
    engine = NullEngine()
    counted = Counted(run)
    results = benchmark.pedantic(counted, args=(engine, script), rounds=20, iterations=1, warmup_rounds=1)
    assert results[-1] == {"ok": True, "data": {"page_views": 1}} and len(results) == INCR_LINES
    assert engine.calls == counted.calls * INCR_LINES
    benchmark.extra_info["commands/s"] = rate(benchmark, INCR_LINES)


def mixed_script(n: int = 1000) -> str:
    rng = random.Random(5)
    lines = []
    for i in range(n):
        day = f"2026-02-{rng.randint(1, 28):02d}"
        lines.append(rng.choice([
            f"incr analytics/daily @{day} .page_views .requests 3",
            f'incr analytics/endpoints @{day} ."POST /drop"',
            f'write analytics/events {{ method: "GET", path: "/entity/{i}", status: {rng.choice([200, 404])} }}',
            f'save users @u{i % 50} name: "user {i}" age: {rng.randint(18, 90)}',
            f"update users @u{i % 50} city: \"Paris\" \"+logins\": 1",
            f"read analytics/daily @{day}",
            "find users where age > 40 sort age desc limit 5 then pick key, age",
            "count analytics/events where status = 404",
            "find analytics/events group status count",
            "-- a comment",
        ]))
    return "\n".join(["incr analytics/daily @2026-02-01 .page_views"] + [
        f"incr analytics/daily @2026-02-{d:02d} .page_views" for d in range(1, 29)] + lines)


@pytest.mark.benchmark(group="drops-mixed-script")
def test_mixed_script_on_engine(benchmark, fresh_engine):
    script = mixed_script()
    commands = sum(1 for line in script.splitlines() if not line.startswith("--"))
    engines = []

    def setup():
        engines.append(fresh_engine())
        return (engines[-1], script), {}
    results = benchmark.pedantic(run, setup=setup, rounds=7, iterations=1)
    assert len(results) == commands
    assert all(r["ok"] for r in results), next(r for r in results if not r["ok"])
    benchmark.extra_info["commands/s"] = rate(benchmark, commands)


# -- POST /drop batches (issue 14): the handler's work in process, without the HTTP server -------
BATCH = 1000


class _Writer:
    source = "bench"

    def check_write(self, route):
        return route


def _post(engine, text: str) -> bytes:
    """What ``Drop.on_post`` does with a batch body: parse, write, answer."""
    from ocean.web import body
    from ocean.web.resources import drop
    results = drop.write(engine, _Writer(), body.parse_json(text), parsed=True)
    return body.dumps([{"ok": True, **out} if type(out) is dict else out.to_dict() for out in results])


def _event_batches(n: int) -> list[str]:
    return [json.dumps([{"route": "bench/scale", "payload": {"path": f"/p/{i % 1000}", "status": 200 if i % 4 else 404,
                                                            "ms": 12.5}} for i in range(s, s + BATCH)])
            for s in range(0, n, BATCH)]


def _counter_batch(first: int, field: str) -> str:
    return json.dumps([{"route": "bench/ents", "key": f"e{i}", "payload": {field: 1}} for i in range(first, first + BATCH)])


@pytest.mark.benchmark(group="drops-post-1000")
def test_post_1000_events(benchmark, fresh_engine):
    """bench_scale's event batches: 1000 events a body."""
    engine, batches = fresh_engine(), iter(_event_batches(BATCH * 40))
    calls = []  # rounds + warm-up under timing; one call under --benchmark-disable (CI's short mode)
    out = benchmark.pedantic(lambda: calls.append(1) or _post(engine, next(batches)), rounds=30, iterations=1,
                             warmup_rounds=2)
    assert out.count(b'"ok":true') == BATCH
    assert engine.route_size("bench/scale") == BATCH * len(calls) and engine.events("bench/scale", 1)[0]["payload"]["ms"] == 12.5
    benchmark.extra_info["drops/s"] = rate(benchmark, BATCH)


@pytest.mark.benchmark(group="drops-post-1000")
def test_post_1000_new_counter_entities(benchmark, fresh_engine):
    """bench_scale's counter batches, first pass: each drop creates its entity (the compiled path, but
    for the first batch, which makes the route)."""
    engine, batches = fresh_engine(), iter([_counter_batch(first, "+c0") for first in range(0, BATCH * 40, BATCH)])
    calls = []
    out = benchmark.pedantic(lambda: calls.append(1) or _post(engine, next(batches)), rounds=30, iterations=1,
                             warmup_rounds=2)
    assert out.count(b'"ok":true') == BATCH and engine.route_size("bench/ents") == BATCH * len(calls)
    benchmark.extra_info["drops/s"] = rate(benchmark, BATCH)


@pytest.mark.benchmark(group="drops-post-1000")
def test_post_1000_increments_to_existing_entities(benchmark, fresh_engine):
    """bench_scale's counter batches after the first pass: the compiled path."""
    engine = fresh_engine()
    _post(engine, _counter_batch(0, "+c0"))
    body = _counter_batch(0, "+c1")
    calls = []
    out = benchmark.pedantic(lambda: calls.append(1) or _post(engine, body), rounds=30, iterations=1, warmup_rounds=2)
    assert out.count(b'"ok":true') == BATCH
    assert engine.get("bench/ents", "e7")["payload"] == {"c0": 1, "c1": len(calls)}
    benchmark.extra_info["drops/s"] = rate(benchmark, BATCH)


@pytest.mark.benchmark(group="drops-post-1000")
def test_post_1000_parse_and_answer_floor(benchmark):
    """The baseline: the same event body parsed and 1000 receipts answered, nothing written."""
    from ocean.web import body
    text = _event_batches(BATCH)[0]
    receipt = {"drop_id": "0123abcd-0123-4567-0000-000000000001", "seq": 1, "route": "bench/scale", "key": None,
               "created_at": "2026-12-06T21:00:00.000Z"}

    def floor():
        doc = body.parse_json(text)
        return body.dumps([{"ok": True, **receipt} for _ in doc])
    out = benchmark.pedantic(floor, rounds=30, iterations=1, warmup_rounds=2)
    assert out.count(b'"ok":true') == BATCH
    benchmark.extra_info["drops/s"] = rate(benchmark, BATCH)
