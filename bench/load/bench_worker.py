"""ocean's worker beside gunicorn's stock gevent worker: requests/s and worker CPU per request.

Two servers run side by side (``worker_class=ocean`` and ``gevent``, same settings);
each group holds one measure for both, and the rounds alternate between them
(each test runs one round on the other server just before each of its own), so a
shared machine that speeds up or slows down moves both alike. Read two figures:

* requests/s from the closed-loop driver (``httpload``: one Python client process,
  32 connections; on 2 cores the client is a large part of the load, so this
  understates the server's gain -- ``wrk`` figures are in docs/http.md);
* worker CPU per request: user+system time of the worker process (``/proc/<pid>/stat``)
  over the requests it served; the figure the client does not blur.

Measures: ``GET /health``, ``POST /exec`` incr, ``POST /drop`` with 1000 increments.
Each asserts its answers (statuses, and the counters add up). The SSE fan-out at
5,000 clients runs under both workers in ``bench_sse.py``.
Run: ``PYTHONPATH=src python -m pytest bench/load/bench_worker.py --benchmark-only -s``
"""
import json
import os
import shutil
import statistics
import tempfile

import pytest

from conftest import LONG
from httpload import hammer, request
from serverproc import Server
from sseload import cpu_seconds, worker_pid

WORKERS = ("ocean", "gevent")
REQUESTS = 20000 if LONG else 2000
DROP_BATCHES = 100 if LONG else 20
ROUNDS = 5 if LONG else 2
CONNS = 32
results: dict = {}


@pytest.fixture(scope="module")
def pair():
    tmp = tempfile.mkdtemp(prefix="ocean-worker-bench-")
    servers = {}
    try:
        for wc in WORKERS:
            servers[wc] = Server(os.path.join(tmp, wc, "data"), worker_class=wc).start()
        yield servers
    finally:
        for srv in servers.values():
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _measure(benchmark, pair, wc: str, name: str, req: bytes, total: int, conns: int, check):
    """Rounds of ``total`` requests on ``wc``'s server, each just after one on the other server."""
    srv, other = pair[wc], pair[WORKERS[1 - WORKERS.index(wc)]]
    worker = worker_pid(srv.pid)
    rates, cpus = [], []

    def other_round():
        _, statuses, _ = hammer(other.port, req, total, conns)
        assert statuses == {200: total}

    def once():
        cpu0 = cpu_seconds(worker)
        seconds, statuses, bodies = hammer(srv.port, req, total, conns, keep_bodies=True)
        cpu = cpu_seconds(worker) - cpu0
        assert statuses == {200: total}
        check(bodies)
        rates.append(total / seconds)
        cpus.append(cpu / total * 1e6)

    benchmark.pedantic(once, setup=other_round, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    rate, cpu = statistics.median(rates), statistics.median(cpus)
    results[(name, wc)] = (rate, cpu)
    benchmark.extra_info.update({"req_per_s": round(rate), "worker_cpu_us_per_req": round(cpu, 1)})
    print(f"\n{name} [{wc}]: {rate:,.0f} req/s (median of {len(rates)}), worker CPU {cpu:.1f} us/request")
    if (name, "ocean") in results and (name, "gevent") in results:
        (r1, c1), (r2, c2) = results[(name, "ocean")], results[(name, "gevent")]
        if c1 > 0:  # a short run can use less than one clock tick of CPU
            benchmark.extra_info.update({"ratio_req_per_s": round(r1 / r2, 2), "ratio_cpu": round(c2 / c1, 2)})
            print(f"{name}: ocean/stock {r1 / r2:.2f}x req/s, stock/ocean {c2 / c1:.2f}x worker CPU per request")


@pytest.mark.benchmark(group="worker-health")
@pytest.mark.parametrize("wc", WORKERS)
def test_health(benchmark, pair, wc):
    def check(bodies):
        assert json.loads(bodies[-1])["ok"] is True

    _measure(benchmark, pair, wc, "GET /health", request("GET", "/health", None), REQUESTS, CONNS, check)


@pytest.mark.benchmark(group="worker-exec-incr")
@pytest.mark.parametrize("wc", WORKERS)
def test_exec_incr(benchmark, pair, wc):
    srv = pair[wc]
    req = request("POST", "/exec", srv.key, b"incr bench/worker @2026-02-10 .views")

    def check(bodies):
        assert all(json.loads(b)[0]["ok"] for b in bodies[:10])

    _measure(benchmark, pair, wc, "POST /exec incr", req, REQUESTS, CONNS, check)
    # every round on this server (its own, and the other test's interleaved ones) added REQUESTS: none lost
    views = srv.get_json("/entity/bench/worker/2026-02-10")["payload"]["views"]
    assert views % REQUESTS == 0 and views >= REQUESTS


@pytest.mark.benchmark(group="worker-drop-1000")
@pytest.mark.parametrize("wc", WORKERS)
def test_drop_1000(benchmark, pair, wc):
    srv = pair[wc]
    body = json.dumps([{"route": "bench/wdrop", "key": f"k{i % 10}", "payload": {"+n": 1}}
                       for i in range(1000)]).encode()
    req = request("POST", "/drop", srv.key, body, "application/json")

    def check(bodies):
        assert [r["ok"] for r in json.loads(bodies[0])] == [True] * 1000

    _measure(benchmark, pair, wc, "POST /drop x1000", req, DROP_BATCHES, 4, check)
    total = sum(srv.get_json(f"/entity/bench/wdrop/k{i}")["payload"]["n"] for i in range(10))
    assert total % (DROP_BATCHES * 1000) == 0 and total > 0  # whole rounds only: none lost
