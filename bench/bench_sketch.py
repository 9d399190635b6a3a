"""Sketch kernels beside their baselines: the pure twin and a real ``redis-server``.

* ``hll-add``: 10,000 distinct values per round as 10 ``Hll.add`` calls of 1000 (and as
  10,000 calls of one value, a ``uniq`` per write), beside Redis taking the same values as
  10 ``PFADD`` of 1000 (one pipeline) and as 10,000 one-value ``PFADD`` (one pipeline),
  both pre-encoded RESP on one raw loopback socket, so no client library is timed. Every Redis run is checked against ocean's count: the
  kernels copy Redis's hash and estimator, so ``PFCOUNT`` equals ``Hll.count()`` exactly.
* ``hll-merge``: the union of 100 dense sketches (3000 values each, a uniq_merge over 100
  daily rows), beside the twin and Redis's ``PFMERGE`` of 100 keys; the counts are equal.
* ``hll-memory``: bytes per sketch of 10 and 100k values: ocean's (tracemalloc, object
  and registers) beside Redis's ``MEMORY USAGE`` of a PFADD key.
* ``dist-add``: 1000 ``Dist.add`` calls per round, compiled beside the twin.
* ``uniq-writes``: 10,000 ``"~visitors"`` drops through ``Engine.drop_many`` (a durable,
  published write per value) beside Redis taking 10,000 one-value ``PFADD`` in one pipeline.
  PERF: 206 ms against 4.8 ms (43x) on this box: the kernel is not the cost (52 ns a value);
  the Python write path was (~20 us a drop: validation, op, JSON log record, apply, message).
  With the compiled sketch path (``Writer._sketch_write``, _writer.pxi), one run of the old tree
  then the new: 96.0 ms (25.6x Redis's 3.75 ms) -> 9.5 ms (2.4x Redis's 3.98 ms), ~1 us a drop.

Run: ``PYTHONPATH=src python -m pytest bench/bench_sketch.py --benchmark-only -s``
"""
from __future__ import annotations

import gc
import os
import socket
import sys
import tempfile
import tracemalloc

import pytest
from benchutil import Counted, rate

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "redis"))
import cluster  # noqa: E402  (tests/redis/cluster.py: the throwaway Redis servers)

import ocean._core as compiled
import ocean._reference as pure

if not hasattr(compiled, "Hll"):  # an installed ocean older than this tree, run without PYTHONPATH=src
    pytest.skip(f"the ocean imported ({compiled.__file__}) predates the sketches: run with PYTHONPATH=src "
                "or after `pip install .`", allow_module_level=True)

CALLS = 10          # Hll.add calls of BATCH values per round
BATCH = 1000
ROUNDS = 20
BATCHES = [[f"visitor:{c}:{i}" for i in range(BATCH)] for c in range(CALLS)]
ALL = [v for b in BATCHES for v in b]


def _expected_count() -> int:
    h = compiled.Hll()
    h.add(ALL)
    return h.count()


# ---- a real redis-server -----------------------------------------------------------


@pytest.fixture(scope="module")
def redis_port():
    """A redis-server on a free loopback port (``cluster.SingleServer``), persistence off (sketches
    live in memory here)."""
    cluster.require()
    with cluster.SingleServer(extra=["--appendonly", "no", "--protected-mode", "no"]) as server:
        yield server.port


def resp(*args: str | bytes) -> bytes:
    """One command as a RESP array of bulk strings (as bench/load/respload.py)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Resp:
    """One raw connection: send a pre-encoded pipeline, read its one-line replies."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def pipeline(self, data: bytes, replies: int) -> list[bytes]:
        """Send ``data`` and return its ``replies`` one-line replies (integers, status)."""
        self.sock.sendall(data)
        buf = self.buf
        while buf.count(b"\r\n") < replies:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise OSError("redis closed the connection")
            buf += chunk
        lines = bytes(buf).split(b"\r\n")
        del buf[:]
        return lines[:replies]

    def call(self, *args) -> bytes:
        return self.pipeline(resp(*args), 1)[0]


# ---- Hll.add -----------------------------------------------------------------------


@pytest.mark.benchmark(group="hll-add")
@pytest.mark.parametrize("name", ["compiled", "pure"])
def test_hll_add(benchmark, name):
    impl = compiled if name == "compiled" else pure
    h = impl.Hll()

    @Counted
    def run():
        for batch in BATCHES:
            h.add(batch)

    benchmark.pedantic(run, rounds=ROUNDS if name == "compiled" else 5, iterations=1, warmup_rounds=1)
    assert h.count() == _expected_count()
    benchmark.extra_info["values_per_s"] = rate(benchmark, CALLS * BATCH)


ONES = [[v] for v in ALL]


@pytest.mark.benchmark(group="hll-add")
def test_hll_add_one_value_per_call(benchmark):
    """The same 10,000 values, one ``Hll.add`` call each: the per-call cost a write pays."""
    h = compiled.Hll()
    add = h.add

    @Counted
    def run():
        for one in ONES:
            add(one)

    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert h.count() == _expected_count()
    benchmark.extra_info["values_per_s"] = rate(benchmark, CALLS * BATCH)


@pytest.mark.benchmark(group="hll-add")
@pytest.mark.parametrize("per_command", [BATCH, 1], ids=["redis-pfadd-1000-values", "redis-pfadd-1-value"])
def test_hll_add_redis(benchmark, redis_port, per_command):
    """The same values as PFADD commands of ``per_command`` values each, one pipeline a round."""
    key = f"bench:hll:{per_command}"
    commands = [resp("PFADD", key, *ALL[i:i + per_command]) for i in range(0, len(ALL), per_command)]
    data = b"".join(commands)
    with Resp(redis_port) as r:
        r.call("DEL", key)

        @Counted
        def run():
            return r.pipeline(data, len(commands))

        replies = benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
        assert len(replies) == len(commands) and all(line in (b":0", b":1") for line in replies)
        assert r.call("PFCOUNT", key) == b":%d" % _expected_count()  # Redis's estimate is ocean's
    benchmark.extra_info["values_per_s"] = rate(benchmark, CALLS * BATCH)


# ---- Hll.merge ---------------------------------------------------------------------

PARTS = [[f"day{d}:user{i}" for i in range(3000)] for d in range(100)]


def _union_count() -> int:
    h = compiled.Hll()
    h.add([v for part in PARTS for v in part])
    return h.count()


@pytest.mark.benchmark(group="hll-merge")
@pytest.mark.parametrize("name", ["compiled", "pure"])
def test_hll_merge(benchmark, name):
    impl = compiled if name == "compiled" else pure
    parts = []
    for part in PARTS:
        h = impl.Hll()
        h.add(part)
        parts.append(h)

    def run():
        union = impl.Hll()
        for h in parts:
            union.merge(h)
        return union

    union = benchmark.pedantic(run, rounds=ROUNDS if name == "compiled" else 3, iterations=1, warmup_rounds=1)
    assert union.count() == _union_count()
    benchmark.extra_info["merges_per_s"] = rate(benchmark, len(PARTS))


@pytest.mark.benchmark(group="hll-merge")
def test_hll_merge_redis(benchmark, redis_port):
    keys = [f"bench:day:{d}" for d in range(len(PARTS))]
    with Resp(redis_port) as r:
        r.pipeline(b"".join(resp("DEL", k) for k in keys) + resp("DEL", "bench:union"), len(keys) + 1)
        r.pipeline(b"".join(resp("PFADD", k, *part) for k, part in zip(keys, PARTS)), len(keys))
        merge = resp("PFMERGE", "bench:union", *keys)

        def run():
            return r.pipeline(resp("DEL", "bench:union") + merge, 2)

        replies = benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
        assert replies[1] == b"+OK"
        assert r.call("PFCOUNT", "bench:union") == b":%d" % _union_count()
    benchmark.extra_info["merges_per_s"] = rate(benchmark, len(PARTS))


# ---- memory per sketch -------------------------------------------------------------


def _traced_bytes_per_sketch(impl, values: list[str], sketches: int) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = []
        for _ in range(sketches):
            h = impl.Hll()
            h.add(values)
            kept.append(h)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return (used - 8 * sketches) / sketches  # the list's pointer to each sketch is not the sketch's


@pytest.mark.benchmark(group="hll-memory")
def test_hll_memory_per_sketch(benchmark, redis_port):
    """Bytes per sketch of 10 and of 100k distinct values: ocean (traced) beside Redis's MEMORY USAGE."""
    sizes = {}
    for n, sketches in ((10, 1000), (100_000, 20)):
        values = [f"user-{i}" for i in range(n)]
        sizes[f"compiled {n}"] = _traced_bytes_per_sketch(compiled, values, sketches)
        sizes[f"pure {n}"] = _traced_bytes_per_sketch(pure, values, sketches if n == 10 else 2)
        with Resp(redis_port) as r:
            key = f"bench:mem:{n}"
            r.call("DEL", key)
            for i in range(0, n, BATCH):
                r.call("PFADD", key, *values[i:i + BATCH])
            sizes[f"redis {n}"] = int(r.call("MEMORY", "USAGE", key)[1:])
        h = compiled.Hll()
        h.add(values)
        sizes[f"compiled nbytes {n}"] = h.nbytes
        sizes[f"to_bytes {n}"] = len(h.to_bytes())
    print("\nbytes per Hll: " + ", ".join(f"{k} {v:,.0f}" for k, v in sizes.items()))
    benchmark.extra_info.update({k.replace(" ", "_"): round(v) for k, v in sizes.items()})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert sizes["compiled 10"] < sizes["redis 10"], sizes           # sparse: smaller than Redis's
    assert sizes["compiled 100000"] < 1.05 * sizes["redis 100000"], sizes   # dense: 12 KB as Redis
    assert sizes["compiled nbytes 100000"] == 12288 and sizes["compiled nbytes 10"] == 40


# ---- Dist.add ----------------------------------------------------------------------

LATENCIES = [0.5 + (i * 7919 % 1000) * 0.37 for i in range(1000)]


@pytest.mark.benchmark(group="dist-add")
@pytest.mark.parametrize("name", ["compiled", "pure"])
def test_dist_add(benchmark, name):
    impl = compiled if name == "compiled" else pure
    d = impl.Dist()
    add = d.add

    @Counted
    def run():
        for v in LATENCIES:
            add(v)

    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert d.count == run.calls * len(LATENCIES)
    assert d.min == min(LATENCIES) and d.max == max(LATENCIES)
    assert abs(d.quantile(0.5) - sorted(LATENCIES)[499]) <= 0.01 * sorted(LATENCIES)[499]
    benchmark.extra_info["adds_per_s"] = rate(benchmark, len(LATENCIES))


# ---- uniq writes: a durable write per value, through the engine ---------------------

@pytest.fixture
def uniq_engine():
    from ocean.engine.engine import Engine
    from ocean.settings import Settings
    with tempfile.TemporaryDirectory() as path:
        eng = Engine(path, settings=Settings.load(), maintenance=False)
        try:
            yield eng
        finally:
            eng.close()


@pytest.mark.benchmark(group="uniq-writes")
def test_uniq_writes_engine(benchmark, uniq_engine):
    """10,000 ``"~visitors"`` drops a round, as 10 ``drop_many`` batches of 1000 (``POST /drop``'s
    path without HTTP): each drop validated, logged, added to the sketch and published."""
    batches = [[{"route": "a/daily", "key": "d", "payload": {"~visitors": v}} for v in b] for b in BATCHES]

    @Counted
    def run():
        for batch in batches:
            uniq_engine.drop_many(batch)

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    assert uniq_engine.get("a/daily", "d")["payload"]["visitors"] == _expected_count()
    benchmark.extra_info["values_per_s"] = rate(benchmark, CALLS * BATCH)


@pytest.mark.benchmark(group="uniq-writes")
def test_uniq_writes_redis(benchmark, redis_port):
    """The baseline: the same 10,000 values as one-value ``PFADD`` commands in one pipeline (Redis
    here keeps no AOF: the engine logs every drop, so this favours Redis)."""
    key = "bench:uniq-writes"
    data = b"".join(resp("PFADD", key, v) for v in ALL)
    with Resp(redis_port) as r:
        r.call("DEL", key)

        @Counted
        def run():
            return r.pipeline(data, len(ALL))

        replies = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
        assert len(replies) == len(ALL)
        assert r.call("PFCOUNT", key) == b":%d" % _expected_count()
    benchmark.extra_info["values_per_s"] = rate(benchmark, CALLS * BATCH)
