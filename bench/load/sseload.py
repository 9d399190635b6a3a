"""Many SSE clients in one process: raw non-blocking sockets and one ``selectors`` loop.

Each message's payload carries the writer's ``time.time()`` as ``t``; a client
records ``receive time - t`` for every message it gets (same machine, same
clock), so the latency includes the fan-out and this reader's own delay.
"""
from __future__ import annotations

import os
import selectors
import socket
import time


class Fleet:
    """``n`` clients on ``GET path``; ``wait_open()``, ``pump()``, ``close()``."""

    def __init__(self, port: int, path: str, key: str, n: int):
        self.sel = selectors.DefaultSelector()
        self.socks, self.bufs, self.opened = [], {}, set()
        self.latencies: list[float] = []
        self.received = 0
        req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Ocean-Key: {key}\r\nAccept: text/event-stream\r\n\r\n".encode()
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(req)
            s.setblocking(False)
            self.socks.append(s)
            self.bufs[s] = b""
            self.sel.register(s, selectors.EVENT_READ)

    def _read(self, s) -> None:
        try:
            data = s.recv(65536)
        except BlockingIOError:
            return
        if not data:
            raise ConnectionError("the server closed a stream")
        now = time.time()
        buf = self.bufs[s] + data
        if s not in self.opened and b"ocean stream open" in buf:
            self.opened.add(s)
        # PERF: the reader's own cost is part of the measured latency, so the writer's
        # time is cut out of each data line without a JSON parse.
        start = 0
        while True:
            i = buf.find(b'"t":', start)
            if i < 0:
                break
            j = buf.find(b"\n", i)
            if j < 0:
                break
            k = i + 4
            end = k
            while buf[end] in b"0123456789.eE+-":
                end += 1
            self.latencies.append(now - float(buf[k:end]))
            self.received += 1
            start = j + 1
        self.bufs[s] = buf[start:][-8192:]

    def pump(self, until, timeout: float) -> None:
        """Read until ``until()`` is true (or fail after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError(f"opened {len(self.opened)}/{len(self.socks)}, received {self.received}")
            for key, _ in self.sel.select(0.2):
                self._read(key.fileobj)

    def wait_open(self, timeout: float = 60.0) -> None:
        self.pump(lambda: len(self.opened) == len(self.socks), timeout)

    def close(self) -> None:
        for s in self.socks:
            self.sel.unregister(s)
            s.close()
        self.sel.close()


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
