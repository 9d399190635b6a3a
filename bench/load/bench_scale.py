"""ocean at scale (issue 14): every row of the issue's table, ocean beside a real ``redis-server``.

The data: N events ``{"path": "/p/<i % 1000>", "status": 200|404, "ms": 12.5}`` on one route,
then N/10 entities x 5 counters (one ``"+c<j>": 1`` per drop, so a drop is one increment, as a
HINCRBY is), all through ``POST /drop`` arrays of 1000. The rows:

* memory per event and per entity: the worker's RSS growth over the load; Redis: ``used_memory``
  growth for the same data (one stream of XADD entries; one hash per entity);
* RSS after a restart on the same data against RSS before it;
* event and counter ingest (drops/s, default snapshot setting) against
  ``redis-benchmark -P 1000 -c 1`` XADD / HINCRBY (AOF everysec);
* ``GET /health`` p50/p99/max (one client, back to back) while a background snapshot runs
  (the server restarted with ``snapshot_every=1``, so one starts at its first maintenance tick;
  the window is while ``snapshot-*.snap.tmp`` exists);
* the first SQL query on the route (its columns are built) and the worst ``/health`` wait
  that overlapped it;
* restart to the first ``/health`` 200.

N is ``OCEAN_BENCH_SCALE_EVENTS`` (default 1,000,000; 10,000,000 by hand); under
``--benchmark-disable`` (CI's short mode) it is 20,000. Answers are asserted either way
(row counts, counter totals, Redis lengths). The table is printed at the end (``-s``).

Run: ``PYTHONPATH=src python -m pytest bench/load/bench_scale.py --benchmark-only -s``
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time

import pytest

from respload import resp
from serverproc import Server

BATCH = 1000
ROUTE = "bench/scale"
ENT_ROUTE = "bench/ents"
COUNTERS = 5
results: dict[str, object] = {}


@pytest.fixture(scope="module")
def n_events(request):
    fixed = os.environ.get("OCEAN_BENCH_SCALE_EVENTS")
    if fixed:
        return int(fixed)
    return 20_000 if request.config.getoption("benchmark_disable", False) else 1_000_000


def _event(i: int) -> dict:
    return {"path": f"/p/{i % 1000}", "status": 200 if i % 4 else 404, "ms": 12.5}


# -- measuring a process -------------------------------------------------------------------
def _worker_pid(master: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{master}/task/{master}/children") as f:
                kids = [int(p) for p in f.read().split()]
        except OSError:
            kids = []
        if kids:
            return kids[0]
        time.sleep(0.05)
    raise AssertionError("the server has no worker process")


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _settled_rss(srv: Server, seconds: float = 1.5) -> int:
    """The worker's RSS once no snapshot is being written (none running, then a short settle)."""
    _wait_no_snapshot(srv.data)
    time.sleep(seconds)
    return _rss(_worker_pid(srv.pid))


def _snapshot_running(data: str) -> bool:
    try:
        return any(n.endswith(".snap.tmp") for n in os.listdir(data))
    except FileNotFoundError:
        return False


def _wait_no_snapshot(data: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while _snapshot_running(data):
        assert time.monotonic() < deadline, "a snapshot never finished"
        time.sleep(0.05)


class HealthProbe:
    """One client sending ``GET /health`` back to back on a thread; records (start, seconds) of each."""

    def __init__(self, port: int, data: str | None = None):
        self.port, self.data = port, data
        self.samples: list[tuple[float, float, bool]] = []  # (start, seconds, snapshot running)
        self.error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive() and self.error is None, self.error

    def _run(self):
        try:
            self._probe()
        except Exception as exc:  # reported by __exit__
            self.error = exc

    def _probe(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self._stop.is_set():
            snap = self.data is not None and _snapshot_running(self.data)
            t0 = time.perf_counter()
            conn.request("GET", "/health")
            answer = conn.getresponse()
            answer.read()
            assert answer.status == 200
            self.samples.append((t0, time.perf_counter() - t0, snap))
            time.sleep(0.001)  # not a flood: about what a monitor plus a few users send
        conn.close()


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# -- loading -------------------------------------------------------------------------------
def _post_batches(srv: Server, bodies) -> float:
    """POST each body to /drop on one keep-alive connection; returns seconds; asserts every drop ok."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=300)
    headers = {"X-Ocean-Key": srv.key, "Content-Type": "application/json"}
    took = 0.0
    for body in bodies:
        t0 = time.perf_counter()
        conn.request("POST", "/drop", body, headers)
        answer = conn.getresponse()
        data = answer.read()
        took += time.perf_counter() - t0
        assert answer.status == 200, data[:300]
        assert data.count(b'"ok":true') == BATCH, data[:300]
    conn.close()
    return took


def _event_bodies(n: int):
    for start in range(0, n, BATCH):
        yield json.dumps([{"route": ROUTE, "payload": _event(i)} for i in range(start, min(n, start + BATCH))])


def _counter_bodies(entities: int):
    total = entities * COUNTERS
    for start in range(0, total, BATCH):
        yield json.dumps([{"route": ENT_ROUTE, "key": f"e{i % entities}", "payload": {f"+c{i // entities}": 1}}
                          for i in range(start, min(total, start + BATCH))])


def _sql(srv: Server, text: str, timeout: float = 600):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    conn.request("POST", "/sql", text, {"X-Ocean-Key": srv.key, "Content-Type": "text/plain"})
    answer = conn.getresponse()
    doc = json.loads(answer.read())
    conn.close()
    assert answer.status == 200, doc
    return doc["rows"]


def _check_answers(srv: Server, n: int, entities: int) -> None:
    rows = _sql(srv, f'SELECT status, COUNT(*) AS n FROM "{ROUTE}" GROUP BY status ORDER BY status')
    assert rows == [{"status": 200, "n": n - (n + 3) // 4}, {"status": 404, "n": (n + 3) // 4}], rows
    sums = ", ".join(f"SUM(c{j}) AS s{j}" for j in range(COUNTERS))
    rows = _sql(srv, f'SELECT COUNT(*) AS n, {sums} FROM "{ENT_ROUTE}"')
    assert rows == [{"n": entities, **{f"s{j}": entities for j in range(COUNTERS)}}], rows
    one = srv.get_json(f"/entity/{ENT_ROUTE}/e{entities - 1}")["payload"]
    assert one == {f"c{j}": 1 for j in range(COUNTERS)}, one


# -- Redis ---------------------------------------------------------------------------------
def _redis_benchmark(port: int, n: int, *command: str, keyspace: int) -> float:
    out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-P", "1000", "-c", "1",
                          "-n", str(n), "-r", str(keyspace), "--csv", *command],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    line = [ln for ln in out.splitlines() if ln and not ln.startswith('"test"')][-1]
    return float(line.split(",")[1].strip('"'))


def _raw_pipeline(port: int, commands) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=300) as sock:
        for chunk in commands:
            sock.sendall(b"".join(chunk))
            buf, want = bytearray(), len(chunk)
            while buf.count(b"\r\n") < want:
                data = sock.recv(1 << 16)
                assert data, "redis closed the connection"
                buf += data
            assert b"-ERR" not in buf, bytes(buf[:200])


@pytest.mark.benchmark(group="scale-vs-redis")
def test_redis_baseline(benchmark, redis_server, n_events):
    """Redis on the same data: used_memory per event (one stream) and per entity (one hash of 5), and
    redis-benchmark -P 1000 -c 1 XADD / HINCRBY rates."""
    if shutil.which("redis-benchmark") is None:
        pytest.skip("redis-benchmark is not installed")
    r = redis_server
    port = r.connection_pool.connection_kwargs["port"]
    entities = n_events // 10
    r.flushall()
    base = r.info("memory")["used_memory"]

    def xadd_run():
        return _redis_benchmark(port, n_events, "XADD", "bench:scale", "*", "path", "/p/__rand_int__",
                                "status", "200", "ms", "12.5", keyspace=1000)

    rates = []
    benchmark.pedantic(lambda: rates.append(xadd_run()), rounds=1, iterations=1)
    assert r.xlen("bench:scale") == n_events
    results["redis event B"] = (r.info("memory")["used_memory"] - base) / n_events
    results["redis XADD/s"] = rates[0]
    r.flushall()
    base = r.info("memory")["used_memory"]

    def hincr():
        for start in range(0, entities * COUNTERS, BATCH):
            yield [resp("HINCRBY", f"ent:{i % entities}", f"c{i // entities}", "1")
                   for i in range(start, min(entities * COUNTERS, start + BATCH))]

    _raw_pipeline(port, hincr())
    assert r.dbsize() == entities and r.hgetall(f"ent:{entities - 1}") == {f"c{j}".encode(): b"1" for j in range(5)}
    results["redis entity B"] = (r.info("memory")["used_memory"] - base) / entities
    r.flushall()
    results["redis HINCRBY/s"] = _redis_benchmark(port, entities * COUNTERS, "HINCRBY", "ent:__rand_int__", "c", "1",
                                                  keyspace=entities)
    assert r.dbsize() > 0
    r.flushall()


@pytest.mark.benchmark(group="scale-vs-redis")
def test_ocean_scale(benchmark, n_events):
    entities = n_events // 10
    tmp = tempfile.mkdtemp(prefix="ocean-scale-")
    data = os.path.join(tmp, "data")
    srv = Server(data, event_retention=0).start(timeout=60)  # 10M events: beyond the default retention
    try:
        rss0 = _settled_rss(srv, 0.5)
        took = []
        benchmark.pedantic(lambda: took.append(_post_batches(srv, _event_bodies(n_events))), rounds=1, iterations=1)
        results["ocean events/s"] = n_events / took[0]
        rss1 = _settled_rss(srv)
        results["ocean event B"] = (rss1 - rss0) / n_events
        t = _post_batches(srv, _counter_bodies(entities))
        results["ocean counters/s"] = entities * COUNTERS / t
        rss2 = _settled_rss(srv)
        results["ocean entity B"] = (rss2 - rss1) / entities
        results["rss before"] = rss2
        srv.stop()

        # restart on the same data: time to the first /health 200, RSS, then the first SQL query
        srv = Server(data, port=srv.port, event_retention=0)
        t0 = time.perf_counter()
        srv.start(timeout=600)
        results["restart s"] = time.perf_counter() - t0
        results["rss after"] = _settled_rss(srv)
        with HealthProbe(srv.port) as probe:
            time.sleep(0.3)
            q0 = time.perf_counter()
            rows = _sql(srv, f'SELECT COUNT(*) AS n FROM "{ROUTE}"')
            q1 = time.perf_counter()
            time.sleep(0.3)
        assert rows == [{"n": n_events}], rows
        results["sql first s"] = q1 - q0
        overlapping = [s for t, s, _ in probe.samples if t + s >= q0 and t <= q1]
        results["sql worst health s"] = max(overlapping) if overlapping else q1 - q0
        results["sql p99 health s"] = _pct(overlapping, 0.99) if overlapping else q1 - q0
        _check_answers(srv, n_events, entities)
        srv.stop()

        # restart with snapshot_every=1: a snapshot starts at the first maintenance tick
        srv = Server(data, port=srv.port, event_retention=0, snapshot_every=1).start(timeout=600)
        with HealthProbe(srv.port, data) as probe:
            deadline = time.monotonic() + 30
            while not any(s for *_, s in probe.samples) and time.monotonic() < deadline:
                time.sleep(0.01)
            _wait_no_snapshot(data)
        during = [s for _, s, snap in probe.samples if snap]
        assert during, "no /health answer while a snapshot ran"
        window = [t for t, _, snap in probe.samples if snap]
        results["snap health"] = (statistics.median(during), _pct(during, 0.99), max(during),
                                  len(during) / max(1e-3, window[-1] - window[0] + during[-1]))
        snap = srv.get_json("/health").get("snapshot") or {}  # absent before /health reported it
        deadline = time.monotonic() + 10
        while snap and not snap.get("bytes") and time.monotonic() < deadline:  # the parent notes it after the rename
            time.sleep(0.05)
            snap = srv.get_json("/health")["snapshot"]
        results["snap figures"] = (snap.get("seconds"), snap.get("bytes"), snap.get("pause_ms"))
        _check_answers(srv, n_events, entities)
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    benchmark.extra_info.update({k: v for k, v in results.items() if not isinstance(v, tuple)})
    _print_table(n_events, entities)


def _print_table(n: int, entities: int) -> None:
    g = results.get
    mb = 1 << 20

    def ratio(a, b):
        return f"{g(a) / g(b):.2f}x" if g(a) and g(b) else "-"

    p50, p99, worst, rate = g("snap health")
    rows = [
        ("memory per event", f"{g('ocean event B'):,.0f} B", f"{g('redis event B', 0):,.0f} B"),
        ("memory per entity of 5 counters", f"{g('ocean entity B'):,.0f} B", f"{g('redis entity B', 0):,.0f} B"),
        ("RSS after restart vs before", f"{g('rss after') / mb:,.0f} MB vs {g('rss before') / mb:,.0f} MB "
                                        f"({g('rss after') / g('rss before'):.2f}x)", "-"),
        ("event ingest (POST /drop x1000)", f"{g('ocean events/s'):,.0f}/s ({ratio('ocean events/s', 'redis XADD/s')})",
         f"{g('redis XADD/s', 0):,.0f}/s XADD"),
        ("counter ingest (POST /drop x1000)",
         f"{g('ocean counters/s'):,.0f}/s ({ratio('ocean counters/s', 'redis HINCRBY/s')})",
         f"{g('redis HINCRBY/s', 0):,.0f}/s HINCRBY"),
        ("/health during a snapshot", f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {worst * 1000:.1f} ms, "
                                      f"{rate:.0f}/s", "-"),
        ("last snapshot (seconds, bytes, pause ms)", "{} s, {} B, {} ms".format(*g("snap figures")), "-"),
        ("first SQL query", f"{g('sql first s'):.2f} s, /health meanwhile: p99 {g('sql p99 health s') * 1000:.0f} ms, "
                            f"worst {g('sql worst health s') * 1000:.0f} ms", "-"),
        ("restart to first /health 200", f"{g('restart s'):.2f} s", "-"),
    ]
    print(f"\n\nocean at {n:,} events + {entities:,} entities x {COUNTERS} counters")
    width = max(len(r[0]) for r in rows)
    for name, ours, theirs in rows:
        print(f"  {name:<{width}}  {ours:<60}  {theirs}")
