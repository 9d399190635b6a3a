"""``--fsync`` in Redis mode: what each policy asks of Redis, what Redis says it does, the wait for a replica.

Redis keeps the data, so its own persistence (AOF) and its replicas decide what survives;
ocean never reconfigures them. At start ocean reads each master's ``appendonly`` and
``appendfsync`` (``CONFIG GET``, which may be refused) and its connected replicas, says in
``/health`` (``redis.durability``) what it found, and warns when Redis is weaker than asked:

- ``no``: nothing per write, nothing expected;
- ``everysec``: nothing per write; every master should run ``appendonly yes`` with
  ``appendfsync everysec`` or ``always`` (else a restart loses the writes since the last RDB);
- ``always``: an acknowledged write is on a replica too. After each write ocean waits
  (``WAIT 1 replica_wait_ms``) until a replica of the master that took it has it; when none
  confirms in time the write stays applied on the master (Redis cannot take it back) and the
  answer is **503 ``not_replicated``**: it may be lost if that master fails now. Masters without
  any replica cannot confirm: when no master has one and every master fsyncs its own AOF on each
  write (``appendfsync always``: Redis answers after the fsync) that stands in for the wait
  (mode ``aof``); with neither, ``ocean serve`` refuses to start, saying so.

PERF: a wait is one more round trip per write (a tiny ``HSET`` and ``WAIT`` pipelined on one
connection to the master: ``WAIT`` counts the writes of its own connection, so the ``HSET``
puts the route's slot's replication offset at or past the write's) plus the replica's ack.
"""
from __future__ import annotations

from ..errors import NotReplicated
from . import layout

WAIT, AOF, NONE = "wait", "aof", "none"


def inspect(client, is_cluster: bool, url: str) -> list[dict]:
    """Each master's ``{address, appendonly, appendfsync, replicas}`` (None where Redis would not say)."""
    import redis
    out = []
    for node in client.get_primaries() if is_cluster else [None]:
        target = {"target_nodes": node} if node is not None else {}
        rec = {"address": f"{node.host}:{node.port}" if node is not None else url.partition("://")[2],
               "appendonly": None, "appendfsync": None, "replicas": None}
        try:
            conf = client.config_get("append*", **target)
            rec["appendonly"], rec["appendfsync"] = conf.get("appendonly"), conf.get("appendfsync")
        except redis.RedisError:
            pass  # CONFIG may be refused (ACL, renamed): reported as unknown
        try:
            rec["replicas"] = int(client.info("replication", **target).get("connected_slaves", 0))
        except redis.RedisError:
            pass
        out.append(rec)
    return out


def plan(policy: str, masters: list[dict]) -> dict:
    """``{fsync, mode, warnings, refusal}`` for ``policy`` over what ``inspect`` found.

    ``mode`` is ``wait`` (WAIT for a replica after each write), ``aof`` (``always`` stood in for by
    every master's ``appendfsync always``) or ``none``; ``refusal`` says why ``ocean serve`` must
    not start (``always`` that nothing can honour), else None.
    """
    warnings, refusal, mode = [], None, NONE
    if policy != "no":
        for m in masters:
            if m["appendonly"] is None:
                warnings.append(f"Redis at {m['address']} would not say its persistence settings (CONFIG GET was "
                                f"refused); --fsync {policy} expects appendonly yes")
            elif m["appendonly"] != "yes" or m["appendfsync"] == "no":
                warnings.append(f"Redis at {m['address']} runs appendonly {m['appendonly']}, appendfsync "
                                f"{m['appendfsync']}: weaker than --fsync {policy} (a restart of it loses the writes "
                                f"since its last save); set appendonly yes, appendfsync everysec or always")
    if policy == "always":
        with_replicas = [m for m in masters if m["replicas"]]
        if with_replicas:
            mode = WAIT
            for m in masters:
                if not m["replicas"]:
                    warnings.append(f"Redis at {m['address']} has no replica online: with --fsync always its writes "
                                    f"answer 503 not_replicated until one is")
        elif masters and all(m["appendonly"] == "yes" and m["appendfsync"] == "always" for m in masters):
            mode = AOF
        else:
            refusal = ("--fsync always needs every Redis master to have a replica (ocean waits for one: WAIT) or to "
                       "fsync its AOF on every write (appendonly yes, appendfsync always); no master of "
                       + ", ".join(m["address"] for m in masters) + " has a replica online, and not every one "
                       "fsyncs each write: add a replica, set appendfsync always, or use --fsync everysec")
    return {"fsync": policy, "mode": mode, "warnings": warnings, "refusal": refusal}


def unconfirmed(engine, routes, timeout_ms: int) -> tuple[set, str]:
    """Wait until a replica of each master that holds one of ``routes`` has every write made to it
    so far; returns the routes whose master got no confirmation within ``timeout_ms`` (and why)."""
    by_node = {}
    for route in routes:  # one wait per master: every write before it on that master is covered
        meta = layout.meta(route)
        node = engine.client.get_node_from_key(meta) if engine.is_cluster else None
        by_node.setdefault(None if node is None else node.name, (node, meta, []))[2].append(route)
    missing, why = set(), ""
    for name, (node, meta, held) in by_node.items():
        conn = engine.client if node is None else engine.client.get_redis_connection(node)
        pipe = conn.pipeline(transaction=False)
        pipe.hset(meta, "w", "1")  # on WAIT's own connection: its offset is now past the writes
        pipe.execute_command("WAIT", 1, timeout_ms)
        if int(engine._redis(pipe.execute)[1]) < 1:
            missing.update(held)
            why = (f"the write was applied by the Redis master {name or engine.url}, but no replica confirmed it "
                   f"within {timeout_ms} ms (--fsync always): it may be lost if that master fails now")
    return missing, why


def wait_for_replica(engine, route: str, timeout_ms: int) -> None:
    """``unconfirmed`` for one write: NotReplicated (503) when its master's replicas did not confirm it."""
    missing, why = unconfirmed(engine, (route,), timeout_ms)
    if missing:
        raise NotReplicated(why)
