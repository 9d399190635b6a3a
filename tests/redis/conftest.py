"""Fixtures for the Redis store: one real local cluster per session, one single server, flushed per test.

Without ``redis-server``/``redis-cli`` (or redis-py) the tests skip, unless
``OCEAN_REQUIRE_SYSTEM_TOOLS=1`` (CI), where a missing tool is a failure.
"""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as harness  # noqa: E402


_require = harness.require


@pytest.fixture
def redis_tools():
    """For a test that starts its own servers: skip (or fail, in CI) without the tools."""
    _require()


@pytest.fixture(scope="session")
def redis_cluster_session():
    """3 masters + 3 replicas for the whole session (about 2 s to start); every process stopped by pid."""
    _require()
    with harness.LocalCluster() as c:
        yield c


@pytest.fixture
def redis_cluster(redis_cluster_session):
    """The session's cluster, emptied before the test (functions stay loaded)."""
    redis_cluster_session.wait_ok(30)  # a test that killed a node must not leave the next one a broken cluster
    redis_cluster_session.flush()
    return redis_cluster_session


@pytest.fixture(scope="session")
def redis_single_session():
    """One plain redis-server for the session."""
    _require()
    with harness.SingleServer() as s:
        yield s


@pytest.fixture
def redis_single(redis_single_session):
    """The session's single server, emptied before the test."""
    redis_single_session.flush()
    return redis_single_session


@pytest.fixture(params=["cluster", "single"])
def pair(request, tmp_path):
    """``(embedded Engine, RedisEngine)`` with the same settings, on an empty cluster or single server:
    the differential tests run each call on both and compare (test_redis_engine.py, test_sketches.py)."""
    from ocean import Engine
    from ocean.redisstore import RedisEngine
    from ocean.settings import Settings
    server = request.getfixturevalue("redis_cluster" if request.param == "cluster" else "redis_single")
    settings = Settings.load(history_limit=5, event_retention=30)
    emb = Engine(str(tmp_path / "data"), settings=settings, maintenance=False)
    red = RedisEngine(server.url, settings=settings)
    yield emb, red
    emb.close()
    red.close()
