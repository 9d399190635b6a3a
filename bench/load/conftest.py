"""Load benchmarks against a real ``ocean serve`` (gunicorn + gevent) on 127.0.0.1.

Short mode (default, CI) runs a few seconds per benchmark; ``OCEAN_BENCH_LONG=1``
runs longer and bigger. Each benchmark asserts its answer.
"""
import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests")
sys.path.insert(0, HERE)
sys.path.insert(0, TESTS)
sys.path.insert(0, os.path.join(TESTS, "redis"))

import cluster  # noqa: E402  (tests/redis/cluster.py: the throwaway Redis servers)
from serverproc import Server  # noqa: E402

LONG = os.environ.get("OCEAN_BENCH_LONG") == "1"


@pytest.fixture(scope="module")
def ocean_server():
    """One server for a module: room for 5,000+ streams on one key, all from 127.0.0.1.

    ``max_sse_per_ip=0``: every load client shares one address, which the per-address cap
    (the default defence against one client opening thousands of streams) would refuse.
    """
    tmp = tempfile.mkdtemp(prefix="ocean-load-")
    srv = Server(os.path.join(tmp, "data"), max_sse_per_key=20000, max_sse_clients=20000,
                 max_sse_per_ip=0, worker_connections=20000, heartbeat_s=15).start()
    yield srv
    srv.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def stock_server():
    """``ocean_server``'s twin on gunicorn's stock gevent worker (``worker_class=gevent``)."""
    tmp = tempfile.mkdtemp(prefix="ocean-load-stock-")
    srv = Server(os.path.join(tmp, "data"), max_sse_per_key=20000, max_sse_clients=20000,
                 max_sse_per_ip=0, worker_connections=20000, heartbeat_s=15, worker_class="gevent").start()
    yield srv
    srv.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_server():
    """A real redis-server (``cluster.SingleServer``: AOF everysec, the durability ocean's default
    matches) as a redis-py client; stopped by pid."""
    cluster.require()
    import redis
    with cluster.SingleServer(extra=["--protected-mode", "no"]) as server:
        client = redis.Redis(host="127.0.0.1", port=server.port)
        yield client
        client.close()
