"""Connecting to Redis (a cluster or one server), loading ocean's functions, and mapping Redis errors.

A store URL is ``redis://host:port``: a seed node of a cluster, or a single server (which
one is asked, not configured: ``INFO cluster``); more seeds may follow, comma-separated. Every failure to reach Redis, or a cluster
that is down, becomes ``ocean.errors.StorageError`` (503 ``storage_unavailable``) with the
address and what happened: the web layer never shows a Redis traceback as a 500.

The functions in ``ocean.lua`` are versioned (``ocean_version``): a connect loads them with
``FUNCTION LOAD REPLACE`` when Redis has none or an older version, and refuses a newer one
(an older ocean node must not replace the functions a newer one relies on).
"""
from __future__ import annotations

import os
import re
import time
from urllib.parse import urlsplit

from ..errors import InternalError, OceanError, StorageError

LUA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ocean.lua")
_VERSION = re.compile(r"^local VERSION = (\d+)$", re.M)
TIMEOUT_S = 5.0
_UNAVAILABLE_REPLIES = ("CLUSTERDOWN", "TRYAGAIN", "LOADING", "READONLY", "MASTERDOWN", "NOREPLICAS",
                        "BUSY", "MOVED", "ASK", "NOSCRIPT")


def library() -> tuple[str, int]:
    """The Lua library's code and its version."""
    with open(LUA_PATH, encoding="utf-8") as f:
        code = f.read()
    return code, int(_VERSION.search(code).group(1))


def parse_url(url: str) -> list[tuple[str, int]]:
    """``redis://host:port[,host:port...]`` (seed nodes of one cluster) -> ``[(host, port), ...]``;
    anything else is a StorageError saying the form."""
    head, _, more = (url or "").partition(",")
    parts = urlsplit(head)
    if parts.scheme != "redis" or not parts.hostname:
        raise StorageError(f"the store must be redis://host:port[,host:port...], got {url!r}")
    try:
        seeds = [(parts.hostname, parts.port or 6379)]
        for extra in filter(None, more.split(",")):
            host, _, port = extra.strip().rpartition(":")
            seeds.append((host or extra.strip(), int(port) if host else 6379))
    except ValueError:
        raise StorageError(f"the store must be redis://host:port[,host:port...], got {url!r}") from None
    return seeds


def connect(url: str, retries: int = 3):
    """A redis-py client for ``url``: ``RedisCluster`` for cluster seeds, ``Redis`` for one server.

    The first seed that answers says which it is (``INFO cluster``); a cluster client is given
    every seed, so it starts while some are down. Returns ``(client, is_cluster)``; raises
    StorageError when no seed can be reached.
    ``retries`` bounds how long a call waits for Redis to come back (backoff 50 ms doubling, at
    most 0.5 s each: about 1 s for 3) before it answers 503: redis-py's default waits seconds.
    """
    import redis
    from redis.backoff import ExponentialBackoff, NoBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.retry import Retry

    seeds = parse_url(url)
    problems, enabled, host, port = [], None, None, None
    for host, port in seeds:
        probe = redis.Redis(host=host, port=port, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S,
                            retry=Retry(NoBackoff(), 0))  # one try per seed: the next seed is the retry
        try:
            enabled = probe.info("cluster").get("cluster_enabled") == 1
            break
        except redis.RedisError as exc:
            problems.append(f"{host}:{port}: {exc}")
        finally:
            probe.close()
    if enabled is None:
        raise StorageError(f"Redis cannot be reached at {'; '.join(problems)}")
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries)
    try:
        if enabled:
            first = [(host, port)] + [s for s in seeds if s != (host, port)]  # the one that answered first
            client = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in first], decode_responses=True,
                                  socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S, retry=retry)
        else:
            client = redis.Redis(host=host, port=port, decode_responses=True, socket_timeout=TIMEOUT_S,
                                 socket_connect_timeout=TIMEOUT_S, health_check_interval=30, retry=retry)
    except redis.RedisError as exc:
        raise StorageError(f"the Redis cluster at {url} is not usable: {exc}") from None
    return client, enabled


def load_functions(client, is_cluster: bool) -> int:
    """Load ``ocean.lua`` where it is missing or older (every master of a cluster); returns its version."""
    import redis

    code, version = library()
    nodes = client.get_primaries() if is_cluster else [None]
    for node in nodes:
        target = {"target_nodes": node} if node is not None else {}
        try:
            if node is not None:
                loaded = client.execute_command("FCALL_RO", "ocean_version", 0, target_nodes=node)
            else:
                loaded = client.fcall_ro("ocean_version", 0)
        except redis.ResponseError:  # no such function: nothing of ours is loaded yet
            loaded = 0
        except redis.RedisError as exc:
            raise unavailable(exc) from None
        loaded = int(loaded)
        if loaded > version:
            raise StorageError(f"Redis holds ocean functions version {loaded}, newer than this ocean's "
                               f"{version}: upgrade this ocean node")
        if loaded < version:
            try:
                client.execute_command("FUNCTION", "LOAD", "REPLACE", code, **target)
            except redis.RedisError as exc:
                raise unavailable(exc) from None
    return version


REFRESH_EVERY_S = 0.5  # at most one forced topology refresh per client this often


def refresh_topology(client, exc) -> None:
    """After a connection error or a cluster-down reply, ask the cluster again who serves what.

    redis-py refreshes on its own after such errors, but not every release recovers: with
    redis-py 8.1 a client whose seed was the master that died kept sending to it (connection
    refused) long after its replica was promoted, while 8.2 recovered in seconds. So ocean asks
    for the refresh itself, throttled: a write during a failover costs one CLUSTER SLOTS per
    half second, and the first write after the promotion lands.
    """
    import redis
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError)):
        refresh(client)


def refresh(client) -> None:
    """Ask the cluster who serves what now (``CLUSTER SLOTS``), at most once per ``REFRESH_EVERY_S``;
    a single server's client has no topology to refresh."""
    import redis
    nodes = getattr(client, "nodes_manager", None)
    if nodes is None:
        return
    now = time.monotonic()
    if now - getattr(client, "_ocean_refreshed", 0.0) < REFRESH_EVERY_S:
        return
    client._ocean_refreshed = now
    try:
        nodes.initialize()
    except (redis.RedisError, redis.exceptions.RedisClusterException):
        pass  # no node answers yet: the next failed call asks again


def unavailable(exc) -> StorageError:
    return StorageError(f"Redis is unavailable: {type(exc).__name__}: {exc}")


def translate(exc) -> OceanError:
    """The ocean error for a redis-py exception that is not one of ocean's own ``OCEAN`` replies."""
    import redis
    if isinstance(exc, redis.ResponseError) and not isinstance(exc, redis.exceptions.ClusterError):
        text = str(exc)
        if not text.startswith(_UNAVAILABLE_REPLIES):
            return InternalError(f"Redis refused a command: {text[:200]}")
    return unavailable(exc)
