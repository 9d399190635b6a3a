"""Load benchmarks against a real ``ocean serve`` (gunicorn + gevent) on 127.0.0.1.

Short mode (default, CI) runs a few seconds per benchmark; ``OCEAN_BENCH_LONG=1``
runs longer and bigger. Each benchmark asserts its answer.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests"))

from serverproc import Server, free_port  # noqa: E402

LONG = os.environ.get("OCEAN_BENCH_LONG") == "1"


@pytest.fixture(scope="module")
def ocean_server():
    """One server for a module: room for 5,000+ streams on one key."""
    tmp = tempfile.mkdtemp(prefix="ocean-load-")
    srv = Server(os.path.join(tmp, "data"), max_sse_per_key=20000, max_sse_clients=20000,
                 worker_connections=20000, heartbeat_s=15).start()
    yield srv
    srv.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def stock_server():
    """``ocean_server``'s twin on gunicorn's stock gevent worker (``worker_class=gevent``)."""
    tmp = tempfile.mkdtemp(prefix="ocean-load-stock-")
    srv = Server(os.path.join(tmp, "data"), max_sse_per_key=20000, max_sse_clients=20000,
                 worker_connections=20000, heartbeat_s=15, worker_class="gevent").start()
    yield srv
    srv.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_server():
    """A real redis-server with AOF everysec (the durability ocean's default matches)."""
    exe = shutil.which("redis-server")
    if exe is None:
        if os.environ.get("OCEAN_REQUIRE_SYSTEM_TOOLS") == "1":
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    redis = pytest.importorskip("redis")
    tmp = tempfile.mkdtemp(prefix="ocean-redis-")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp, "--appendonly", "yes",
                             "--appendfsync", "everysec", "--save", "", "--protected-mode", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield client
    client.close()
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(tmp, ignore_errors=True)
