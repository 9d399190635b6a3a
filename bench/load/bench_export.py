"""Reading every event of a route out: ``GET /export`` against Redis holding the same events.

One group, ``export-vs-redis``, each run asserting its row count:

* ocean: ``GET /export/bench/events`` (NDJSON, streamed in pages) read by a Python
  ``http.client`` in 64 KiB reads, lines counted;
* Redis, as a Python user reads it: ``redis-cli --scan --pattern 'bench:*'`` finds the key, then
  redis-py reads the stream with pipelined ``XRANGE`` pages of 1000 (100 pages per pipeline;
  the events were added with ids ``1-0 .. N-0``, so every page's range is known up front);
* Redis, read by its own C client: the same key from ``redis-cli --scan``, then ``redis-cli``
  runs the ``XRANGE`` pages from a script on standard input (its output lines counted).

The events are the same on both sides: ``{path, status, ms}`` (a stream entry's three fields).
N is 1,000,000 when benchmarks run, 20,000 under ``--benchmark-disable`` (CI's short mode);
``OCEAN_BENCH_EXPORT_N`` sets it. Target: ocean >= 1.0x Redis (redis-py).

Run: ``PYTHONPATH=src python -m pytest bench/load/bench_export.py --benchmark-only -s``

Measured (1M events, a shared 2-core box, medians of 3 rounds; two runs): ocean 0.59-0.79 s
(1.5-1.7M rows/s best round), redis-cli 1.39-1.88 s (ocean 1.8-3.2x), redis-py 11.1-20.9 s
(ocean 14-35x). The worker's RSS stayed at its 430 MB through the export (125 MB of NDJSON).
"""
import http.client
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from respload import resp

PAGE = 1000
PAGES_PER_PIPELINE = 100
ROUTE = "bench/events"
STREAM = "bench:events"
results: dict[str, float] = {}


@pytest.fixture(scope="module")
def n_events(request):
    fixed = os.environ.get("OCEAN_BENCH_EXPORT_N")
    if fixed:
        return int(fixed)
    return 20_000 if request.config.getoption("benchmark_disable", False) else 1_000_000


def _event(i: int) -> dict:
    return {"path": f"/p/{i % 100}", "status": 200 + i % 3, "ms": i % 37}


@pytest.fixture(scope="module")
def ocean_events(ocean_server, n_events):
    """``n_events`` events on bench/events, written through POST /drop arrays of 10,000."""
    conn = http.client.HTTPConnection("127.0.0.1", ocean_server.port, timeout=120)
    for start in range(0, n_events, 10_000):
        body = json.dumps([{"route": ROUTE, "payload": _event(i)} for i in range(start, min(n_events, start + 10_000))])
        conn.request("POST", "/drop", body, {"X-Ocean-Key": ocean_server.key, "Content-Type": "application/json"})
        answer = conn.getresponse()
        assert answer.status == 200, answer.read()[:300]
        answer.read()
    conn.close()
    return ocean_server


@pytest.fixture(scope="module")
def redis_events(redis_server, n_events):
    """The same events in the stream ``bench:events`` with ids ``1-0 .. N-0`` (raw pipelined XADD)."""
    r = redis_server
    r.delete(STREAM)
    port = r.connection_pool.connection_kwargs["port"]
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        for start in range(0, n_events, 10_000):
            end = min(n_events, start + 10_000)
            batch = b"".join(resp("XADD", STREAM, f"{i + 1}-0", *[str(x) for kv in _event(i).items() for x in kv])
                             for i in range(start, end))
            sock.sendall(batch)
            buf, want = bytearray(), 2 * (end - start)  # each reply is "$<n>\r\n<id>\r\n"
            while buf.count(b"\r\n") < want:
                chunk = sock.recv(1 << 16)
                assert chunk, "redis closed the connection"
                buf += chunk
            assert not buf.startswith(b"-"), bytes(buf[:200])
    assert r.xlen(STREAM) == n_events
    return r


def _run(benchmark, name: str, fn, rows: int) -> None:
    times = []

    def once():
        t0 = time.perf_counter()
        assert fn() == rows
        times.append(time.perf_counter() - t0)

    benchmark.pedantic(once, rounds=3, iterations=1, warmup_rounds=0)
    best = rows / min(times)
    results[name] = best
    benchmark.extra_info["rows_per_s"] = round(best)
    print(f"\n{name}: {best:,.0f} rows/s (best of {len(times)}; {rows:,} rows)")


def _ratio(benchmark, theirs: str, key: str) -> None:
    ours = "ocean GET /export ndjson"
    if ours in results and theirs in results:
        ratio = results[ours] / results[theirs]
        benchmark.extra_info[key] = round(ratio, 3)
        print(f"ocean/{theirs}: {ratio:.2f}")


def _scan(port: int) -> list[str]:
    out = subprocess.run(["redis-cli", "-p", str(port), "--scan", "--pattern", "bench:*"],
                         capture_output=True, text=True, timeout=120, check=True).stdout.split()
    assert STREAM in out, out
    return [STREAM]


def _pages(n: int):
    for start in range(1, n + 1, PAGE):
        yield f"{start}-0", f"{min(n, start + PAGE - 1)}-0"


@pytest.mark.benchmark(group="export-vs-redis")
def test_ocean_export(benchmark, ocean_events, n_events):
    port, key = ocean_events.port, ocean_events.key

    def export() -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.request("GET", f"/export/{ROUTE}", headers={"X-Ocean-Key": key})
        answer = conn.getresponse()
        assert answer.status == 200
        rows = 0
        for chunk in iter(lambda: answer.read(1 << 16), b""):
            rows += chunk.count(b"\n")
        conn.close()
        return rows

    _run(benchmark, "ocean GET /export ndjson", export, n_events)
    _ratio(benchmark, "redis-py XRANGE pipelined", "ratio_vs_redis_py")
    _ratio(benchmark, "redis-cli XRANGE", "ratio_vs_redis_cli")


@pytest.mark.benchmark(group="export-vs-redis")
def test_redis_scan_xrange_pipelined(benchmark, redis_events, n_events):
    r = redis_events
    port = r.connection_pool.connection_kwargs["port"]

    def read() -> int:
        rows = 0
        for key in _scan(port):
            pages = list(_pages(n_events))
            for i in range(0, len(pages), PAGES_PER_PIPELINE):
                pipe = r.pipeline(transaction=False)
                for lo, hi in pages[i:i + PAGES_PER_PIPELINE]:
                    pipe.xrange(key, lo, hi)
                for entries in pipe.execute():
                    rows += len(entries)
        return rows

    _run(benchmark, "redis-py XRANGE pipelined", read, n_events)
    _ratio(benchmark, "redis-py XRANGE pipelined", "ratio_vs_redis_py")


@pytest.mark.benchmark(group="export-vs-redis")
def test_redis_cli_scan_xrange(benchmark, redis_events, n_events, tmp_path):
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is not installed")
    port = redis_events.connection_pool.connection_kwargs["port"]
    script = tmp_path / "xrange.txt"
    script.write_text("".join(f"XRANGE {STREAM} {lo} {hi}\n" for lo, hi in _pages(n_events)))

    def read() -> int:
        rows = 0
        for key in _scan(port):
            assert key == STREAM
            with open(script, "rb") as commands:
                out = subprocess.run(["redis-cli", "-p", str(port)], stdin=commands, capture_output=True,
                                     timeout=300, check=True).stdout
            rows += out.count(b"\n") // 7  # an entry prints as its id and three field/value pairs
        return rows

    _run(benchmark, "redis-cli XRANGE", read, n_events)
    _ratio(benchmark, "redis-cli XRANGE", "ratio_vs_redis_cli")
