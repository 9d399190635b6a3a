"""A real local Redis Cluster (and a single server) on loopback, for the Redis store's tests.

Debian's ``redis-server`` processes run in a temporary directory, each on a free
127.0.0.1 port with its cluster bus on another free port (``port + 10000`` may be taken,
or past 65535 for a high ephemeral port). ``LocalCluster`` creates 3 masters + 3 replicas
with ``redis-cli --cluster create``, then waits, bounded, until every node reports
``cluster_state:ok``, agrees on all 16384 slots and every replica is online: a test that
starts right after ``start()`` never sees a half-made cluster. ``stop()`` ends each
process by its own pid (never by name: other people's redis-servers run on this machine).

``repl-diskless-sync-delay 0`` makes replicas sync at once, and a short
``cluster-node-timeout`` lets a later failover test promote a replica in seconds.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
NODE_TIMEOUT_MS = 2000


class ClusterError(RuntimeError):
    """The local cluster did not come up (or down) in time; the message says which node and why."""


def available() -> bool:
    """Both ``redis-server`` and ``redis-cli`` are installed."""
    return os.path.exists(REDIS_SERVER) and os.path.exists(REDIS_CLI)


def require(redis_py: bool = True) -> None:
    """In a pytest fixture: skip without ``redis-server``/``redis-cli`` (or redis-py), or fail where
    the tools are required (``OCEAN_REQUIRE_SYSTEM_TOOLS=1``: CI)."""
    import pytest

    def missing(what: str):
        if os.environ.get("OCEAN_REQUIRE_SYSTEM_TOOLS") == "1":
            pytest.fail(f"{what} is required here (OCEAN_REQUIRE_SYSTEM_TOOLS=1)")
        pytest.skip(f"{what} is not available")

    if not available():
        missing("redis-server and redis-cli")
    if redis_py:
        try:
            import redis  # noqa: F401
        except ImportError:
            missing("redis-py (pip install 'redis[hiredis]')")


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 now (held open together, so never the same one twice)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _client(port: int):
    import redis
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, socket_connect_timeout=2,
                       decode_responses=True)


class Node:
    """One ``redis-server`` process: its port, directory and pid."""

    def __init__(self, root: str, port: int, extra: list[str]):
        self.port = port
        self.dir = os.path.join(root, str(port))
        os.makedirs(self.dir)
        self.log = os.path.join(self.dir, "redis.log")
        args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--logfile", self.log, "--daemonize", "no", "--save", "", "--appendonly", "yes",
                "--repl-diskless-sync-delay", "0", *extra]
        self.args = args
        self.start()

    def start(self) -> None:
        """Start (or restart, after a kill: same port, directory and nodes.conf) this node's process."""
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self):
        """A redis-py connection to this node alone (no cluster routing)."""
        return _client(self.port)

    def log_tail(self, lines: int = 15) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_ping(self, deadline: float) -> None:
        c = self.client()
        try:
            while True:
                if self.proc.poll() is not None:
                    raise ClusterError(f"redis-server on {self.address} exited with {self.proc.returncode}:\n"
                                       f"{self.log_tail()}")
                try:
                    if c.ping():
                        return
                except Exception:
                    pass
                if time.monotonic() > deadline:
                    raise ClusterError(f"redis-server on {self.address} did not answer PING in time:\n"
                                       f"{self.log_tail()}")
                time.sleep(0.05)
        finally:
            c.close()

    def kill(self, sig=signal.SIGKILL) -> None:
        """Signal this node's own pid (a failover test's kill -9)."""
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM by pid, wait bounded, then SIGKILL by pid."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout)
            except ProcessLookupError:
                pass


class _Servers:
    """Processes under one temporary directory, all stopped by pid (also when starting fails)."""

    def __init__(self, prefix: str):
        self.root = tempfile.mkdtemp(prefix=prefix)
        self.nodes: list[Node] = []

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class SingleServer(_Servers):
    """One plain (non-cluster) ``redis-server``: ``port``, ``url``, ``client()``, ``flush()``, ``stop()``.

    AOF on (``appendfsync everysec``, Redis's default: the durability ocean's default matches);
    ``extra`` arguments come last, so they override (``["--appendonly", "no"]``). The one throwaway
    server of every suite and benchmark (``tests/unit/test_sketch.py``, ``bench/bench_sketch.py``,
    ``bench/load/conftest.py`` use it too).
    """

    def __init__(self, timeout: float = 15, extra: list[str] | tuple = ()):
        super().__init__("ocean-redis-single-")
        try:
            self.node = Node(self.root, free_ports(1)[0], list(extra))
            self.nodes.append(self.node)
            self.node.wait_ping(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        self.port = self.node.port
        self.url = f"redis://127.0.0.1:{self.port}"

    def client(self):
        return self.node.client()

    def flush(self) -> None:
        """Empty the data (loaded functions stay: FLUSHALL keeps them)."""
        c = self.client()
        try:
            c.flushall()
        finally:
            c.close()


class LocalCluster(_Servers):
    """``masters`` masters with ``replicas`` replicas each, created and checked as described above.

    ``seeds`` lists ``(host, port)`` of every node; ``url`` is one seed as ``redis://``.
    """

    def __init__(self, masters: int = 3, replicas: int = 1, timeout: float = 60):
        super().__init__("ocean-redis-cluster-")
        started = time.monotonic()
        deadline = started + timeout
        self.replicas = replicas
        try:
            n = masters * (1 + replicas)
            ports = free_ports(2 * n)
            for port, bus in zip(ports[:n], ports[n:]):
                self.nodes.append(Node(self.root, port, [
                    "--cluster-enabled", "yes", "--cluster-port", str(bus),
                    "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(NODE_TIMEOUT_MS)]))
            for node in self.nodes:
                node.wait_ping(deadline)
            self._create(replicas, deadline)
            self.wait_ok(deadline - time.monotonic())
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        self.seeds = [("127.0.0.1", node.port) for node in self.nodes]
        self.url = f"redis://127.0.0.1:{self.nodes[0].port}"

    def _create(self, replicas: int, deadline: float) -> None:
        args = [REDIS_CLI, "--cluster", "create", *(n.address for n in self.nodes),
                "--cluster-replicas", str(replicas), "--cluster-yes"]
        try:
            out = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                 timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"redis-cli --cluster create did not finish in time:\n{exc.stdout or ''}") from None
        if out.returncode != 0 or "[OK] All 16384 slots covered" not in out.stdout:
            raise ClusterError(f"redis-cli --cluster create failed ({out.returncode}):\n"
                               f"{out.stdout[-2000:]}\n{out.stderr[-2000:]}")

    def _problem(self) -> str | None:
        """What keeps the cluster from being ready now, or None when it is."""
        masters = 0
        for node in self.nodes:
            if node.proc.poll() is not None:
                return f"{node.address} exited ({node.proc.returncode}):\n{node.log_tail()}"
            c = node.client()
            try:
                info = c.execute_command("CLUSTER", "INFO")
                info = info if isinstance(info, str) else info.decode()
                fields = dict(line.split(":", 1) for line in info.split("\r\n") if ":" in line)
                if fields.get("cluster_state") != "ok":
                    return f"{node.address}: cluster_state:{fields.get('cluster_state')}"
                if fields.get("cluster_slots_ok") != "16384":
                    return f"{node.address}: cluster_slots_ok:{fields.get('cluster_slots_ok')}"
                repl = c.info("replication")
                if repl.get("role") == "master":
                    masters += 1
                    slaves = [v for k, v in repl.items() if k.startswith("slave") and isinstance(v, dict)]
                    if len(slaves) < self.replicas or any(s.get("state") != "online" for s in slaves):
                        return f"{node.address}: a replica is not online yet ({slaves})"
                elif repl.get("master_link_status") != "up":
                    return f"{node.address}: replica link {repl.get('master_link_status')}"
            except Exception as exc:  # a node still loading, or busy: try again until the deadline
                return f"{node.address}: {type(exc).__name__}: {exc}"
            finally:
                c.close()
        if masters == 0:
            return "no master"
        return None

    def wait_ok(self, timeout: float = 30) -> None:
        """Wait (bounded) for cluster_state:ok on every live node and every replica online."""
        deadline = time.monotonic() + timeout
        while True:
            problem = self._problem()
            if problem is None:
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"the local cluster is not ready after {timeout:.0f} s: {problem}")
            time.sleep(0.1)

    def masters(self) -> list[Node]:
        """The nodes that are masters now (a failover changes which)."""
        out = []
        for node in self.nodes:
            if node.proc.poll() is not None:
                continue
            c = node.client()
            try:
                if c.info("replication").get("role") == "master":
                    out.append(node)
            finally:
                c.close()
        return out

    def master_of(self, key: str) -> Node:
        """The node that is master of ``key``'s slot now."""
        for node in self.masters():
            c = node.client()
            try:
                slot = c.execute_command("CLUSTER", "KEYSLOT", key)
                for start, end, master, *_ in c.execute_command("CLUSTER", "SLOTS"):
                    if start <= slot <= end and int(master[1]) == node.port:
                        return node
            finally:
                c.close()
        raise ClusterError(f"no live master holds the slot of {key!r}")

    def wait_promoted(self, dead: Node, key: str, timeout: float = 30) -> Node:
        """After ``dead`` (a master) was killed: wait (bounded) until another node is master of ``key``'s slot."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                node = self.master_of(key)
                if node is not dead:
                    return node
            except (ClusterError, Exception):
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"no replica took over from {dead.address} in {timeout:.0f} s")
            time.sleep(0.1)

    def flush(self) -> None:
        """Empty every master and wait (bounded) until its replicas have the empty data too."""
        for node in self.masters():
            c = node.client()
            try:
                c.flushall()
                c.execute_command("WAIT", 1, 2000)
            finally:
                c.close()
