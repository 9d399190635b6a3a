"""What request accounting costs: ``incr`` through ``POST /exec`` with accounting on and off.

Two real ``ocean serve`` processes (gunicorn + gevent), the same build, one with
``--accounting true`` and one with ``--accounting false``, driven by the same
closed-loop client (``httpload.hammer``: keep-alive connections, one request in
flight each). Target: throughput with accounting >= 0.95x throughput without.

* ``test_accounting_incr[off|on]`` sit in one pytest-benchmark group, so the
  ratio is read from one run's table;
* ``test_accounting_overhead_ratio`` interleaves short rounds (off, on, on,
  off, ...) so drift on a shared machine hits both sides alike, and asserts the
  ratio of the best rates (as ``bench_http.py`` does); the median of the
  per-pair ratios is reported beside it.

PERF: in-process, the accounting middleware costs about 2.4 us per request
(4.8 us with accounting off vs 7.2 us on, ``publish`` included), against about
600 us for a whole ``POST /exec`` incr, so the expected ratio is about 0.99; on
a loaded 2-core box single runs scatter by +-8 %, which is why rounds interleave.

Run: ``PYTHONPATH=src python -m pytest bench/load/bench_accounting.py -s``
(short by default, as CI runs it; ``OCEAN_BENCH_LONG=1`` for the long run).
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time

import pytest

from conftest import LONG
from httpload import hammer, request
from serverproc import Server

REQUESTS = 20000 if LONG else 3000  # per round, per server
ROUNDS = 5 if LONG else 2            # pytest-benchmark rounds per server
PAIRS = 12 if LONG else 6            # interleaved rounds per server in the ratio test
PAIR_REQUESTS = 6000 if LONG else 1500
CONNS = 32
TARGET = 0.95
# Short rounds on a busy 2-core CI box scatter from 0.75 to 1.15 (measured), so the short run
# only catches a gross regression (say, a synchronous write per request); the long run holds the target.
SHORT_FLOOR = 0.6
SCRIPT = b"incr bench/accounting @k .n"


@pytest.fixture(scope="module")
def servers():
    """``{"off": Server, "on": Server}``."""
    made = {}
    try:
        for name, flag in (("off", "false"), ("on", "true")):
            data = os.path.join(tempfile.mkdtemp(prefix=f"ocean-acct-{name}-"), "data")
            made[name] = Server(data, accounting=flag).start()
        yield made
    finally:
        for srv in made.values():
            srv.stop()


def _counter(srv) -> int:
    try:
        return srv.get_json("/entity/bench/accounting/k")["payload"]["n"]
    except OSError:  # 404 before the first increment
        return 0


def _round(srv, n: int = REQUESTS) -> float:
    """``n`` increments over ``CONNS`` connections; the seconds they took (all must be 200)."""
    seconds, statuses, _ = hammer(srv.port, request("POST", "/exec", srv.key, SCRIPT), n, CONNS)
    assert statuses == {200: n}, statuses
    return seconds


@pytest.mark.benchmark(group="accounting-incr-exec")
@pytest.mark.parametrize("accounting", ["off", "on"])
def test_accounting_incr(benchmark, servers, accounting):
    srv = servers[accounting]
    start = _counter(srv)
    times = []
    benchmark.pedantic(lambda: times.append(_round(srv)), rounds=ROUNDS, iterations=1, warmup_rounds=0)
    assert _counter(srv) - start == len(times) * REQUESTS  # every increment counted, none lost
    benchmark.extra_info.update(accounting=accounting, requests_per_round=REQUESTS, conns=CONNS,
                                best_req_per_s=round(REQUESTS / min(times)))


def test_accounting_overhead_ratio(servers, record_property):
    """Interleaved rounds on both servers; best req/s with accounting / without >= 0.95."""
    for srv in servers.values():
        _round(srv, PAIR_REQUESTS)  # warm up both: connections, code paths, the Drops parse cache
    start = {name: _counter(srv) for name, srv in servers.items()}
    rates = {"off": [], "on": []}
    for i in range(PAIRS):
        for name in (("off", "on") if i % 2 == 0 else ("on", "off")):
            rates[name].append(PAIR_REQUESTS / _round(servers[name], PAIR_REQUESTS))
    for name, srv in servers.items():
        assert _counter(srv) - start[name] == PAIRS * PAIR_REQUESTS  # every increment counted, none lost
    # the accounting server really counted the requests (it writes _admin/* once a second)
    time.sleep(1.3)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert servers["on"].get_json(f"/entity/_admin/daily/{day}")["payload"]["requests"] >= (PAIRS + 1) * PAIR_REQUESTS

    off, on = max(rates["off"]), max(rates["on"])
    ratio = on / off
    paired = statistics.median(a / b for a, b in zip(rates["on"], rates["off"]))
    report = (f"incr via POST /exec, {CONNS} conns, {PAIRS} interleaved rounds of {PAIR_REQUESTS} per server: "
              f"best accounting off {off:,.0f} req/s, on {on:,.0f} req/s, ratio {ratio:.3f} "
              f"(median of paired ratios {paired:.3f}; target >= {TARGET})")
    print("\n" + report)
    record_property("accounting_ratio", round(ratio, 4))
    record_property("accounting_paired_ratio", round(paired, 4))
    assert ratio >= (TARGET if LONG else SHORT_FLOOR), report
