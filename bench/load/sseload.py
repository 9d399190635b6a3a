"""Many SSE clients in one process: raw non-blocking sockets and one ``epoll`` loop.

Each message's payload carries the writer's ``time.time()`` as ``t``; a client
records ``receive time - t`` for every message it gets (same machine, same
clock), so the latency includes the fan-out and this reader's own delay.

PERF: the reader shares the machine's cores with the server it measures, so it
does little Python per read: ``epoll`` on file descriptors (no selector keys),
and one regex pass over the complete lines of a read for every ``t`` in them
(no JSON parse). Every event is still counted and timed; a line split across
two reads is carried over and timed when its end arrives. When a poll finds
few streams ready the reader naps ``PACE_S`` first, so it wakes once per batch
of reads instead of once per message (a wake-up per read doubled its CPU time
and made the server's every send wake it); a message that waits for the nap is
timed after it, so the nap can only add to the latency measured, never hide any.
"""
from __future__ import annotations

import os
import re
import select
import socket
import time

# the writer's time in a complete data line (the payload is {"i": ..., "t": <time.time()>})
_T = re.compile(rb'"t":([0-9.eE+-]+)')
OPEN = b"ocean stream open"
BATCH, PACE_S = 64, 0.001


class Fleet:
    """``n`` clients on ``GET path``; ``wait_open()``, ``pump()``, ``close()``. ``port`` may be a list:
    the clients are spread over those servers in turn (one node each of a Redis-mode fleet)."""

    def __init__(self, port: int | list[int], path: str, key: str, n: int):
        self.poll = select.epoll()
        self.socks: dict[int, socket.socket] = {}
        self.carry: dict[int, bytes] = {}  # fd -> the unfinished line of its last read
        self.opened: set[int] = set()
        self.latencies: list[float] = []
        self.received = 0
        req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Ocean-Key: {key}\r\nAccept: text/event-stream\r\n\r\n".encode()
        ports = port if isinstance(port, list) else [port]
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", ports[i % len(ports)]), timeout=30)
            s.sendall(req)
            s.setblocking(False)
            self.socks[s.fileno()] = s
            self.poll.register(s.fileno(), select.EPOLLIN)

    def _read_all(self, events) -> None:
        read, clock, carry, opened, lat, find_t = os.read, time.time, self.carry, self.opened, self.latencies, _T.findall
        for fd, _ in events:
            try:
                data = read(fd, 65536)
            except BlockingIOError:
                continue
            now = clock()
            if not data:
                raise ConnectionError("the server closed a stream")
            rest = carry.pop(fd, None)
            if rest is not None:
                data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut < len(data):
                carry[fd] = data[cut:][-8192:]
                data = data[:cut]
            if fd not in opened and OPEN in data:
                opened.add(fd)
            ts = find_t(data)
            if ts:
                lat.extend([now - float(t) for t in ts])
                self.received += len(ts)

    def pump(self, until, timeout: float) -> None:
        """Read until ``until()`` is true (or fail after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError(f"opened {len(self.opened)}/{len(self.socks)}, received {self.received}")
            events = self.poll.poll(0.2)
            self._read_all(events)
            if len(events) < BATCH and not until():
                time.sleep(PACE_S)  # let more arrive: one wake-up per batch of reads, not per read

    def wait_open(self, timeout: float = 60.0) -> None:
        self.pump(lambda: len(self.opened) == len(self.socks), timeout)

    def close(self) -> None:
        for fd, s in self.socks.items():
            self.poll.unregister(fd)
            s.close()
        self.poll.close()


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (from /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def worker_pid(master: int) -> int:
    """The gunicorn worker: the master's only child."""
    with open(f"/proc/{master}/task/{master}/children") as f:
        kids = f.read().split()
    assert len(kids) == 1, kids
    return int(kids[0])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by ``pid`` (from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_wait_seconds(pid: int) -> float:
    """Time ``pid``'s main thread spent runnable but waiting for a CPU (from /proc; nan without schedstats)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except OSError:
        return float("nan")
