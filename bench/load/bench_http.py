"""HTTP throughput against a real server, each beside its baseline in one group.

* ``incr`` through ``POST /exec`` beside ``GET /health`` on the same server
  (target ratio >= 0.85: a counter write costs about what the cheapest read does), read
  two ways: best round against best round, and the median of back-to-back pairs (a
  /health round runs just before each /exec round), which a drifting machine moves less;
* increments through ``POST /drop`` arrays of 1000 beside a real ``redis-server``
  (AOF everysec) taking pipelined ``HINCRBY`` in batches of 1000 (target ratio >= 1.0),
  twice: from redis-py (what a Python user runs), and as pre-encoded RESP over raw
  sockets like the /drop body (the server's own capacity, the stronger baseline).

Run: ``PYTHONPATH=src python -m pytest bench/load/bench_http.py --benchmark-only -s``
(``OCEAN_BENCH_LONG=1`` for the long run).
"""
import json
import statistics

import pytest

from conftest import LONG
from httpload import hammer, request
from respload import pipeline_hammer, resp

REQUESTS = 30000 if LONG else 3000
BATCHES = 60 if LONG else 8
BATCH = 1000
ROUNDS = 5 if LONG else 2
CONNS = 32
results: dict[str, float] = {}


def _run(benchmark, name, fn, work: int, setup=None):
    """Benchmark ``fn`` (which does ``work`` operations); keeps the best operations/s.

    ``setup`` (untimed) runs before each round: a baseline interleaved with the rounds.
    """
    times = []

    def once():
        out = fn()
        times.append(out)
        return out

    benchmark.pedantic(once, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    results[name + " rounds"] = [work / t for t in times]
    best = work / min(times)
    results[name] = best
    benchmark.extra_info["ops_per_s"] = round(best)
    print(f"\n{name}: {best:,.0f}/s")
    return len(times)


def _ratio(benchmark, ours: str, theirs: str, key: str, label: str) -> None:
    """Record and print ``ours / theirs`` when both ran in this session (a group's ratio)."""
    if ours in results and theirs in results:
        ratio = results[ours] / results[theirs]
        benchmark.extra_info[key] = round(ratio, 3)
        print(f"{label} ratio: {ratio:.2f}")


@pytest.mark.benchmark(group="http-incr-vs-health")
def test_health(benchmark, ocean_server):
    req = request("GET", "/health", None)

    def run():
        seconds, statuses, _ = hammer(ocean_server.port, req, REQUESTS, CONNS)
        assert statuses == {200: REQUESTS}
        return seconds

    _run(benchmark, "GET /health req", run, REQUESTS)


@pytest.mark.benchmark(group="http-incr-vs-health")
def test_exec_incr(benchmark, ocean_server):
    req = request("POST", "/exec", ocean_server.key, b"incr bench/daily @2026-02-10 .page_views")
    health = request("GET", "/health", None)
    health_rates = []

    def health_round():
        # a GET /health round just before each /exec round (untimed here): the pairs see the
        # same machine, so their ratios hold when a shared box speeds up or slows down between
        # the two tests of the group
        seconds, statuses, _ = hammer(ocean_server.port, health, REQUESTS, CONNS)
        assert statuses == {200: REQUESTS}
        health_rates.append(REQUESTS / seconds)

    def run():
        seconds, statuses, _ = hammer(ocean_server.port, req, REQUESTS, CONNS)
        assert statuses == {200: REQUESTS}
        return seconds

    rounds = _run(benchmark, "POST /exec incr req", run, REQUESTS, setup=health_round)
    value = ocean_server.get_json("/entity/bench/daily/2026-02-10")["payload"]["page_views"]
    assert value == rounds * REQUESTS  # none lost
    _ratio(benchmark, "POST /exec incr req", "GET /health req", "ratio_vs_health", "incr/health, best rounds")
    paired = statistics.median(e / h for e, h in zip(results["POST /exec incr req rounds"], health_rates))
    benchmark.extra_info["ratio_vs_health_paired"] = round(paired, 3)
    print(f"incr/health, median of {len(health_rates)} back-to-back pairs (target >= 0.85): {paired:.2f}")


@pytest.mark.benchmark(group="batched-increments-vs-redis")
def test_drop_batches(benchmark, ocean_server):
    body = json.dumps([{"route": "bench/drop", "key": f"k{i % 10}", "payload": {"+n": 1}}
                       for i in range(BATCH)]).encode()
    req = request("POST", "/drop", ocean_server.key, body, "application/json")

    def run():
        seconds, statuses, bodies = hammer(ocean_server.port, req, BATCHES, conns=4, keep_bodies=True)
        assert statuses == {200: BATCHES}
        assert all([r.get("ok") for r in json.loads(b)] == [True] * BATCH for b in bodies[:2])
        return seconds

    rounds = _run(benchmark, "POST /drop x1000 incr", run, BATCHES * BATCH)
    total = sum(ocean_server.get_json(f"/entity/bench/drop/k{i}")["payload"]["n"] for i in range(10))
    assert total == rounds * BATCHES * BATCH


@pytest.mark.benchmark(group="batched-increments-vs-redis")
def test_redis_hincrby_pipelined(benchmark, redis_server):
    r = redis_server
    r.delete("bench:drop")

    def run():
        import time

        t0 = time.perf_counter()
        for _ in range(BATCHES):
            pipe = r.pipeline(transaction=False)
            for i in range(BATCH):
                pipe.hincrby("bench:drop", f"k{i % 10}", 1)
            pipe.execute()
        return time.perf_counter() - t0

    rounds = _run(benchmark, "redis HINCRBY x1000 pipelined incr", run, BATCHES * BATCH)
    assert sum(int(v) for v in r.hvals("bench:drop")) == rounds * BATCHES * BATCH
    _ratio(benchmark, "POST /drop x1000 incr", "redis HINCRBY x1000 pipelined incr", "ratio_vs_redis",
           "ocean/redis, redis-py pipeline (target >= 1.0)")


@pytest.mark.benchmark(group="batched-increments-vs-redis")
def test_redis_hincrby_raw_resp(benchmark, redis_server):
    """The strongest Redis baseline: the same 1000 HINCRBY encoded once as RESP and sent raw over
    4 connections, as the /drop body is -- no client-library cost on either side."""
    r = redis_server
    r.delete("bench:raw")
    port = r.connection_pool.connection_kwargs["port"]
    batch = b"".join(resp("HINCRBY", "bench:raw", f"k{i % 10}", "1") for i in range(BATCH))

    def run():
        seconds, last = pipeline_hammer(port, batch, BATCH, BATCHES, conns=4)
        assert len(last) == BATCH and all(v > 0 for v in last)
        return seconds

    rounds = _run(benchmark, "redis HINCRBY x1000 raw RESP incr", run, BATCHES * BATCH)
    assert sum(int(v) for v in r.hvals("bench:raw")) == rounds * BATCHES * BATCH
    _ratio(benchmark, "POST /drop x1000 incr", "redis HINCRBY x1000 raw RESP incr", "ratio_vs_redis_raw",
           "ocean/redis, raw RESP")
