"""What request accounting costs: ``incr`` through ``POST /exec`` with accounting on and off.

Two real ``ocean serve`` processes (gunicorn + gevent), the same build, one with
``--accounting true`` and one with ``--accounting false``, driven by the same
closed-loop client (``httpload.hammer``: keep-alive connections, one request in
flight each). Target: throughput with accounting >= 0.95x throughput without.

* ``test_accounting_incr[off|on]`` sit in one pytest-benchmark group, so the
  ratio is read from one run's table;
* ``test_accounting_overhead_ratio`` interleaves short rounds (off, on, on,
  off, ...) so drift hits both sides alike. It reports the wall-clock ratio
  (best rates, and the median of the per-pair ratios) and, on Linux, each
  server's CPU seconds per request (its process group, from ``/proc``). The
  asserted figure is requests per server CPU-second, on / off: what the one
  worker sustains when it is the bottleneck, which other processes taking the
  cores do not move (wall-clock rates on a shared 2-core box scatter by 10-20 %
  from run to run; measured). Without ``/proc`` the best-rate ratio is asserted.

PERF: measured in-process under gevent's patching, the middleware costs about
7 us per request with accounting on against 3 us off, most of it
``engine.publish`` of ``_admin/events`` (two gevent-patched locks and a
``Message``), against 140-300 us for a whole ``POST /exec`` incr.

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


def _cpu_seconds(srv) -> float | None:
    """CPU seconds (user + system) used so far by the server's process group (master and worker); Linux only."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total, found = 0, False
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == srv.pid:  # field 5, pgrp: the server runs in its own session
            total += int(fields[11]) + int(fields[12])  # utime, stime
            found = True
    return total / tick if found else None


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
    cpus = {"off": [], "on": []}  # server CPU seconds per request, per round
    for i in range(PAIRS):
        for name in (("off", "on") if i % 2 == 0 else ("on", "off")):
            c0 = _cpu_seconds(servers[name])
            rates[name].append(PAIR_REQUESTS / _round(servers[name], PAIR_REQUESTS))
            c1 = _cpu_seconds(servers[name])
            if c0 is not None and c1 is not None:
                cpus[name].append((c1 - c0) / PAIR_REQUESTS)
    for name, srv in servers.items():
        assert _counter(srv) - start[name] == PAIRS * PAIR_REQUESTS  # every increment counted, none lost
    # the accounting server really counted the requests (it writes _admin/* once a second)
    time.sleep(1.3)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert servers["on"].get_json(f"/entity/_admin/daily/{day}")["payload"]["requests"] >= (PAIRS + 1) * PAIR_REQUESTS

    best = max(rates["on"]) / max(rates["off"])
    paired = statistics.median(a / b for a, b in zip(rates["on"], rates["off"]))
    report = (f"incr via POST /exec, {CONNS} conns, {PAIRS} interleaved rounds of {PAIR_REQUESTS} per server: "
              f"accounting off {max(rates['off']):,.0f} req/s best, on {max(rates['on']):,.0f}; "
              f"ratio best {best:.3f}, median of pairs {paired:.3f}")
    ratio = best
    if cpus["on"] and cpus["off"]:
        # requests per server CPU-second: what one worker sustains when it is the bottleneck,
        # unmoved by other processes taking the cores (the wall-clock rates above are not)
        cpu_ratio = statistics.median(b / a for a, b in zip(cpus["on"], cpus["off"]))
        report += (f"; server CPU per request off {1e6 * statistics.median(cpus['off']):.0f} us, "
                   f"on {1e6 * statistics.median(cpus['on']):.0f} us, throughput per CPU-second ratio {cpu_ratio:.3f}")
        record_property("accounting_cpu_ratio", round(cpu_ratio, 4))
        ratio = cpu_ratio
    report += f" (asserted: {ratio:.3f} >= {TARGET if LONG else SHORT_FLOOR})"
    print("\n" + report)
    record_property("accounting_ratio", round(best, 4))
    record_property("accounting_paired_ratio", round(paired, 4))
    assert ratio >= (TARGET if LONG else SHORT_FLOOR), report
