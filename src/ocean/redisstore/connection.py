"""Connecting to Redis (a cluster or one server), loading ocean's functions, and mapping Redis errors.

A store URL is ``redis://host:port``: a seed node of a cluster, or a single server (which
one is asked, not configured: ``INFO cluster``). Every failure to reach Redis, or a cluster
that is down, becomes ``ocean.errors.StorageError`` (503 ``storage_unavailable``) with the
address and what happened: the web layer never shows a Redis traceback as a 500.

The functions in ``ocean.lua`` are versioned (``ocean_version``): a connect loads them with
``FUNCTION LOAD REPLACE`` when Redis has none or an older version, and refuses a newer one
(an older ocean node must not replace the functions a newer one relies on).
"""
from __future__ import annotations

import os
import re
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


def parse_url(url: str) -> tuple[str, int]:
    """``redis://host:port`` -> ``(host, port)``; anything else is a StorageError saying the form."""
    parts = urlsplit(url or "")
    if parts.scheme != "redis" or not parts.hostname:
        raise StorageError(f"the store must be redis://host:port, got {url!r}")
    return parts.hostname, parts.port or 6379


def connect(url: str, retries: int = 3):
    """A redis-py client for ``url``: ``RedisCluster`` for a cluster seed, ``Redis`` for one server.

    Returns ``(client, is_cluster)``; raises StorageError when Redis cannot be reached.
    ``retries`` bounds how long a call waits for Redis to come back (backoff 50 ms doubling, at
    most 0.5 s each: about 1 s for 3) before it answers 503: redis-py's default waits seconds.
    """
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.cluster import RedisCluster
    from redis.retry import Retry

    host, port = parse_url(url)
    where = f"{host}:{port}"
    probe = redis.Redis(host=host, port=port, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
    try:
        enabled = probe.info("cluster").get("cluster_enabled") == 1
    except redis.RedisError as exc:
        raise StorageError(f"Redis at {where} cannot be reached: {exc}") from None
    finally:
        probe.close()
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries)
    try:
        if enabled:
            client = RedisCluster(host=host, port=port, decode_responses=True, socket_timeout=TIMEOUT_S,
                                  socket_connect_timeout=TIMEOUT_S, retry=retry)
        else:
            client = redis.Redis(host=host, port=port, decode_responses=True, socket_timeout=TIMEOUT_S,
                                 socket_connect_timeout=TIMEOUT_S, health_check_interval=30, retry=retry)
    except redis.RedisError as exc:
        raise StorageError(f"the Redis cluster at {where} is not usable: {exc}") from None
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
