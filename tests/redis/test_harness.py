"""The local cluster harness itself: it is a real cluster, it flushes, and it stops what it started."""
import os

from cluster import SingleServer


def test_cluster_has_three_masters_each_with_an_online_replica(redis_cluster):
    masters = redis_cluster.masters()
    assert len(masters) == 3
    for node in masters:
        c = node.client()
        try:
            repl = c.info("replication")
            assert repl["connected_slaves"] == 1 and repl["slave0"]["state"] == "online"
        finally:
            c.close()


def test_keys_spread_over_slots_and_flush_empties_every_master(redis_cluster):
    from redis.cluster import ClusterNode, RedisCluster
    rc = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in redis_cluster.seeds])
    try:
        for i in range(50):
            rc.set(f"k{i}", i)
        assert sum(n.client().dbsize() for n in redis_cluster.masters()) == 50
        redis_cluster.flush()
        assert rc.get("k1") is None
    finally:
        rc.close()


def test_single_server_stops_by_pid(redis_tools):
    with SingleServer() as s:
        pid = s.node.pid
        assert s.client().ping()
    assert s.node.proc.poll() is not None
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
