"""``ocean serve --store redis://`` on a real local Redis Cluster, each figure beside its baseline (issue 15).

One cluster for the module (``tests/redis/cluster.py``: 3 masters + 3 replicas, AOF on, on
this machine), and real servers beside it:

* ``redis-exec-incr``: ``incr`` through ``POST /exec`` on the embedded store (the baseline: one
  worker, the most it runs) and in Redis mode with 1 and 2 workers. Read requests/s and the
  workers' CPU per request (user+system of every worker pid, from ``/proc``), and their ratio
  to embedded (target <= 1.5x, so N cores give close to N x one worker). On a 2-core box that
  also runs the client and six Redis processes, 2 workers cannot show the scaling (docs/scale-out.md);
  the CPU per request is the figure that carries over.
* ``redis-drop-1000``: ``POST /drop`` arrays of 1000 increments in Redis mode (and embedded) beside
  ``redis-benchmark --cluster -P 1000 -c 1`` taking ``HINCRBY`` on the same cluster (one key,
  as the drops are one route: one slot, one master). Target ratio >= 0.5.
* ``redis-sse-fanout``: 2,000 SSE subscribers spread over 2 Redis-mode nodes, the writes sent
  to one of them, beside 2,000 on one embedded server: p50/p99 delivery and worker memory
  per stream (bench_sse.py's figures).

Every benchmark asserts its answers (statuses, counters that add up, every message delivered).
Run: ``PYTHONPATH=src python -m pytest bench/load/bench_redis.py --benchmark-only -s``
(``--benchmark-disable``: CI's short mode, each once).
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import pytest

import cluster
from conftest import LONG
from httpload import hammer, request
from serverproc import Server
from sseload import Fleet, cpu_seconds, rss_kb

REQUESTS = 20000 if LONG else 3000
CONNS = 8  # enough for 2 workers to both have work; one client process drives them all
ROUNDS = 5 if LONG else 3
DROP_BATCHES = 50 if LONG else 10
BATCH = 1000
SUBSCRIBERS = 2000
MESSAGES = 30 if LONG else 10
GAP_S = 0.25
SSE = dict(max_sse_per_key=20000, max_sse_clients=20000, max_sse_per_ip=0, worker_connections=20000,
           heartbeat_s=15)
results: dict = {}


def worker_pids(master: int) -> list[int]:
    """Every gunicorn worker of ``master`` (its children)."""
    with open(f"/proc/{master}/task/{master}/children") as f:
        return [int(p) for p in f.read().split()]


@pytest.fixture(scope="module")
def redis_cluster():
    cluster.require()
    with cluster.LocalCluster() as c:
        yield c


@pytest.fixture(scope="module")
def servers(redis_cluster):
    """``embedded`` (1 worker), ``redis-1`` and ``redis-2`` (workers), ``redis-b`` (a second node)."""
    tmp = tempfile.mkdtemp(prefix="ocean-redis-bench-")
    started = {}
    try:
        started["embedded"] = Server(os.path.join(tmp, "embedded", "data"), **SSE).start()
        for name, workers in (("redis-1", 1), ("redis-2", 2), ("redis-b", 1)):
            started[name] = Server(os.path.join(tmp, name, "data"), store=redis_cluster.url, workers=workers,
                                   **SSE).start(timeout=40)
        yield started
    finally:
        for srv in started.values():
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _workers_cpu(pids) -> float:
    return sum(cpu_seconds(p) for p in pids)


@pytest.mark.benchmark(group="redis-exec-incr")
@pytest.mark.parametrize("name", ["embedded", "redis-1", "redis-2"])
def test_exec_incr(benchmark, servers, name):
    srv = servers[name]
    pids = worker_pids(srv.pid)
    assert len(pids) == (2 if name == "redis-2" else 1)
    route = f"bench/rincr-{name}"
    req = request("POST", "/exec", srv.key, f"incr {route} @k .n".encode())
    warm = hammer(srv.port, req, 200, CONNS)[1]  # every worker's connections to Redis made
    assert warm == {200: 200}
    rates, cpus = [], []

    def once():
        cpu0 = _workers_cpu(pids)
        seconds, statuses, bodies = hammer(srv.port, req, REQUESTS, CONNS, keep_bodies=True)
        cpu = _workers_cpu(pids) - cpu0
        assert statuses == {200: REQUESTS}
        assert all(json.loads(b)[0]["ok"] for b in bodies[:10])
        rates.append(REQUESTS / seconds)
        cpus.append(cpu / REQUESTS * 1e6)

    benchmark.pedantic(once, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    total = srv.get_json(f"/entity/{route}/k")["payload"]["n"]
    assert total == 200 + len(rates) * REQUESTS  # none lost, none twice
    rate, cpu = statistics.median(rates), statistics.median(cpus)
    results[name] = (rate, cpu)
    benchmark.extra_info.update({"req_per_s": round(rate), "worker_cpu_us_per_req": round(cpu, 1)})
    line = f"\nPOST /exec incr [{name}]: {rate:,.0f} req/s, worker CPU {cpu:.1f} us/request"
    if name != "embedded" and "embedded" in results and results["embedded"][1] > 0:
        ratio = cpu / results["embedded"][1]
        benchmark.extra_info["cpu_vs_embedded"] = round(ratio, 2)
        line += f" ({ratio:.2f}x embedded's {results['embedded'][1]:.1f} us; target <= 1.5x)"
    print(line)


@pytest.mark.benchmark(group="redis-drop-1000")
@pytest.mark.parametrize("name", ["embedded", "redis-1"])
def test_drop_1000(benchmark, servers, redis_cluster, name):
    """Sequential ``POST /drop`` batches (one connection, as ``-c 1``); the embedded store for reference.
    Besides increments/s: the worker's CPU per increment, and in Redis mode the masters' (``INFO cpu``:
    what each ``ocean_write`` costs Redis, replication and AOF included)."""
    srv = servers[name]
    pids = worker_pids(srv.pid)
    masters = [node.client() for node in redis_cluster.masters()] if name != "embedded" else []

    def redis_cpu() -> float:
        return sum(c.info("cpu")["used_cpu_user"] + c.info("cpu")["used_cpu_sys"] for c in masters)

    body = json.dumps([{"route": "bench/rdrop", "key": f"k{i % 10}", "payload": {"+n": 1}}
                       for i in range(BATCH)]).encode()
    req = request("POST", "/drop", srv.key, body, "application/json")
    rates, cpus, redis_cpus = [], [], []

    def once():
        cpu0, redis0 = _workers_cpu(pids), redis_cpu()
        seconds, statuses, bodies = hammer(srv.port, req, DROP_BATCHES, 1, keep_bodies=True)
        cpus.append((_workers_cpu(pids) - cpu0) / (DROP_BATCHES * BATCH) * 1e6)
        redis_cpus.append((redis_cpu() - redis0) / (DROP_BATCHES * BATCH) * 1e6)
        assert statuses == {200: DROP_BATCHES}
        assert [r["ok"] for r in json.loads(bodies[-1])] == [True] * BATCH
        rates.append(DROP_BATCHES * BATCH / seconds)

    try:
        benchmark.pedantic(once, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    finally:
        for c in masters:
            c.close()
    total = sum(srv.get_json(f"/entity/bench/rdrop/k{i}")["payload"]["n"] for i in range(10))
    assert total == len(rates) * DROP_BATCHES * BATCH
    rate, cpu, rcpu = statistics.median(rates), statistics.median(cpus), statistics.median(redis_cpus)
    results[("drop", name)] = rate
    benchmark.extra_info.update({"increments_per_s": round(rate), "worker_cpu_us_per_increment": round(cpu, 1)})
    line = f"\nPOST /drop x1000 [{name}, 1 worker]: {rate:,.0f} increments/s, worker CPU {cpu:.1f} us/increment"
    if masters:
        benchmark.extra_info["redis_cpu_us_per_increment"] = round(rcpu, 1)
        line += f", Redis masters' CPU {rcpu:.1f} us/increment"
    print(line)


@pytest.mark.benchmark(group="redis-drop-1000")
def test_redis_benchmark_hincrby(benchmark, redis_cluster):
    """The baseline: ``redis-benchmark --cluster -P 1000 -c 1 HINCRBY`` on one key of the same cluster."""
    exe = shutil.which("redis-benchmark")
    if exe is None:
        cluster.require()  # the redis-tools package ships it beside redis-cli
        pytest.skip("redis-benchmark is not installed")
    # ``{tag}`` is redis-benchmark's own placeholder: it becomes a hash tag of the node its client is on
    # long enough for redis-benchmark's own rate to be steady (10,000 commands read ~5x low): compare
    # the groups' rates (extra_info increments_per_s), not their times
    key, n = "bench:{tag}:h", 100 * BATCH
    masters = [node.client() for node in redis_cluster.masters()]

    def landed() -> int:
        return sum(int(c.hget(k, "n")) for c in masters for k in c.scan_iter("bench:{*}:h", count=1000))

    for c in masters:
        for k in c.keys("bench:{*}:h"):
            c.delete(k)
    rates, redis_cpus = [], []

    def redis_cpu() -> float:
        return sum(c.info("cpu")["used_cpu_user"] + c.info("cpu")["used_cpu_sys"] for c in masters)

    def once():
        redis0 = redis_cpu()
        out = subprocess.run([exe, "-h", "127.0.0.1", "-p", str(redis_cluster.nodes[0].port), "--cluster",
                              "-P", str(BATCH), "-c", "1", "-n", str(n), "--csv", "HINCRBY", key, "n", "1"],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
        assert out.returncode == 0, out.stderr[-1000:]
        row = [line for line in out.stdout.splitlines() if line.startswith('"HINCRBY')]
        assert row, out.stdout[-1000:]
        rates.append(float(row[0].split(",")[1].strip('"')))
        redis_cpus.append((redis_cpu() - redis0) / n * 1e6)

    try:
        benchmark.pedantic(once, rounds=ROUNDS, iterations=1, warmup_rounds=0)
        assert landed() == len(rates) * n  # redis-benchmark's every command landed
    finally:
        for c in masters:
            c.close()
    rate, rcpu = statistics.median(rates), statistics.median(redis_cpus)
    benchmark.extra_info.update({"increments_per_s": round(rate), "redis_cpu_us_per_increment": round(rcpu, 1)})
    line = (f"\nredis-benchmark --cluster -P {BATCH} -c 1 HINCRBY: {rate:,.0f} increments/s, "
            f"Redis masters' CPU {rcpu:.1f} us/increment")
    if ("drop", "redis-1") in results:
        ratio = results[("drop", "redis-1")] / rate
        benchmark.extra_info["ratio_vs_redis_benchmark"] = round(ratio, 2)
        line += f"; ocean /drop x1000 in Redis mode is {ratio:.2f}x of it (target >= 0.5)"
    print(line)


def _pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


@pytest.mark.benchmark(group="redis-sse-fanout")
@pytest.mark.parametrize("mode", ["embedded", "redis-2-nodes"])
def test_sse_fanout(benchmark, servers, mode):
    """``SUBSCRIBERS`` streams (half on each node in Redis mode); one writer on the first node."""
    nodes = [servers["embedded"]] if mode == "embedded" else [servers["redis-1"], servers["redis-b"]]
    writer = nodes[0]
    route = f"fan/r-{mode}"
    pids = [p for srv in nodes for p in worker_pids(srv.pid)]
    before = sum(rss_kb(p) for p in pids)
    # The route exists before the streams open (the common case): a route's very first write is
    # found by the other node's live reader at its next discovery, about half a second later.
    writer.post_json("/drop", {"route": route, "payload": {"i": -1, "warm": True}})
    fleet = Fleet([srv.port for srv in nodes], f"/live/{route}", writer.key, SUBSCRIBERS)
    try:
        fleet.wait_open()
        time.sleep(0.5)
        per_conn_kb = (sum(rss_kb(p) for p in pids) - before) / SUBSCRIBERS

        def run():
            start = fleet.received
            t0 = time.perf_counter()
            for i in range(MESSAGES):
                writer.post_json("/drop", {"route": route, "payload": {"i": i, "t": time.time()}})
                fleet.pump(lambda: fleet.received >= start + (i + 1) * SUBSCRIBERS, 60)
                time.sleep(GAP_S if i < MESSAGES - 1 else 0)
            return time.perf_counter() - t0

        cpu0 = _workers_cpu(pids)
        benchmark.pedantic(run, rounds=1, iterations=1)
        cpu_us = (_workers_cpu(pids) - cpu0) / (MESSAGES * SUBSCRIBERS) * 1e6
        assert fleet.received == MESSAGES * SUBSCRIBERS  # every client got every message
        lat = fleet.latencies
        p50, p99 = _pct(lat, 0.50) * 1000, _pct(lat, 0.99) * 1000
        assert 0 < p50 <= p99
        benchmark.extra_info.update({"subscribers": SUBSCRIBERS, "nodes": len(nodes), "p50_ms": round(p50, 1),
                                     "p99_ms": round(p99, 1), "rss_kb_per_stream": round(per_conn_kb, 1),
                                     "worker_cpu_us_per_delivery": round(cpu_us, 1)})
        print(f"\nSSE fan-out to {SUBSCRIBERS} over {len(nodes)} node(s) [{mode}]: p50 {p50:.1f} ms, "
              f"p99 {p99:.1f} ms, worker RSS {per_conn_kb:.1f} KB per stream, "
              f"worker CPU {cpu_us:.1f} us per delivery")
    finally:
        fleet.close()
