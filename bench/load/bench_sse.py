"""SSE fan-out from one server to 1,000 and 5,000 clients: delivery p50/p99, messages/s, RSS per stream.

The 5,000-client case also runs on gunicorn's stock gevent worker (``worker_class=gevent``).

Targets: p99 <= 500 ms at 5,000 clients; <= 25 KB of worker memory per open stream.
The reader of all the streams is one Python process on the same machine, so latency
includes its own delay; the worker's CPU time per delivery is reported beside it (a
figure that a busy shared machine disturbs less than wall time), and the reader's, which
shares the two cores with the worker, and how long the worker sat runnable without a CPU
(a run whose latencies stand out with a large wait was crowded out, not slow).
Run: ``PYTHONPATH=src python -m pytest bench/load/bench_sse.py --benchmark-only -s``
(``OCEAN_BENCH_LONG=1`` sends more messages).
"""
import gc
import time

import pytest

from conftest import LONG
from sseload import Fleet, cpu_seconds, cpu_wait_seconds, rss_kb, worker_pid

MESSAGES = 50 if LONG else 10
GAP_S = 0.25  # between writes: each message fans out fully before the next


def _pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


@pytest.mark.benchmark(group="sse-fanout")
@pytest.mark.parametrize("clients, wc", [(1000, "ocean"), (5000, "ocean"), (5000, "gevent")],
                         ids=["1000", "5000", "5000-stock-worker"])
def test_sse_fanout(benchmark, request, clients, wc):
    """``wc``: ocean's worker (the default), or gunicorn's stock gevent worker beside it."""
    srv = request.getfixturevalue("ocean_server" if wc == "ocean" else "stock_server")
    route = f"fan/c{clients}"
    worker = worker_pid(srv.pid)
    before = rss_kb(worker)
    fleet = Fleet(srv.port, f"/live/{route}", srv.key, clients)
    try:
        fleet.wait_open()
        time.sleep(0.5)
        per_conn_kb = (rss_kb(worker) - before) / clients
        assert srv.get_json("/health")["sse_clients"] >= clients

        def run():
            start_count = fleet.received
            t0 = time.perf_counter()
            for i in range(MESSAGES):
                srv.post_json("/drop", {"route": route, "payload": {"i": i, "t": time.time()}})
                fleet.pump(lambda: False if fleet.received < start_count + (i + 1) * clients else True, 60)
                time.sleep(GAP_S if i < MESSAGES - 1 else 0)
            return time.perf_counter() - t0

        gc.disable()
        cpu0, wait0, reader0 = cpu_seconds(worker), cpu_wait_seconds(worker), time.process_time()
        try:
            seconds = benchmark.pedantic(run, rounds=1, iterations=1)
        finally:
            gc.enable()
        cpu_us = (cpu_seconds(worker) - cpu0) / (MESSAGES * clients) * 1e6
        reader_us = (time.process_time() - reader0) / (MESSAGES * clients) * 1e6
        wait_ms = (cpu_wait_seconds(worker) - wait0) * 1000 / MESSAGES
        assert fleet.received == MESSAGES * clients  # every client got every message
        lat = fleet.latencies
        p50, p99 = _pct(lat, 0.50) * 1000, _pct(lat, 0.99) * 1000
        busy = seconds - GAP_S * (MESSAGES - 1)
        rate = MESSAGES * clients / busy
        benchmark.extra_info.update({"clients": clients, "p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
                                     "deliveries_per_s": round(rate), "rss_kb_per_stream": round(per_conn_kb, 1),
                                     "worker_cpu_us_per_delivery": round(cpu_us, 1),
                                     "reader_cpu_us_per_delivery": round(reader_us, 1),
                                     "worker_cpu_wait_ms_per_message": round(wait_ms, 1)})
        print(f"\nSSE fan-out to {clients} [{wc} worker]: p50 {p50:.1f} ms, p99 {p99:.1f} ms, {rate:,.0f} deliveries/s, "
              f"worker RSS {per_conn_kb:.1f} KB per stream, worker CPU {cpu_us:.1f} us per delivery "
              f"(reader {reader_us:.1f} us), worker waited {wait_ms:.0f} ms per message for a CPU")
    finally:
        fleet.close()
    # The server notices closed sockets when it next writes to them (a drop or a heartbeat).
    deadline = time.monotonic() + 30
    while srv.get_json("/health")["sse_clients"] and time.monotonic() < deadline:
        srv.post_json("/drop", {"route": route, "payload": {"bye": True}})
        time.sleep(0.3)
    assert srv.get_json("/health")["sse_clients"] == 0
