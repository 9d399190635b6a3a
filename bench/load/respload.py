"""Pipelined Redis commands from pre-encoded RESP over raw sockets: the Redis twin of
``httpload.hammer``, so a comparison pays no client-library cost on either side.

N connections, one pipeline in flight on each: send the whole batch, read its replies
(integer replies, one ``\\r\\n`` each), send again.
"""
from __future__ import annotations

import selectors
import socket
import time


def resp(*args: str | bytes) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def pipeline_hammer(port: int, batch: bytes, replies: int, total: int, conns: int = 4, timeout: float = 120.0):
    """Send ``batch`` (``replies`` commands answering with integers) ``total`` times over ``conns``
    connections; returns ``(seconds, last reply values of the final batch on one connection)``."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(min(conns, total)):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
    sent = done = 0
    bufs = {s: bytearray() for s in socks}
    last: list[int] = []
    t0 = time.perf_counter()
    for s in socks:
        s.setblocking(True)
        s.sendall(batch)
        s.setblocking(False)
        sent += 1
        sel.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while done < total:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{done}/{total} pipelines answered after {timeout}s")
        for sk, _ in sel.select(1.0):
            s = sk.fileobj
            data = s.recv(262144)
            if not data:
                raise ConnectionError("redis closed a connection")
            buf = bufs[s]
            buf += data
            if buf.count(b"\r\n") < replies:
                continue
            lines = bytes(buf).split(b"\r\n")[:replies]
            if any(line[:1] != b":" for line in lines):
                raise AssertionError(f"redis answered {next(x for x in lines if x[:1] != b':')!r}")
            last = [int(line[1:]) for line in lines]
            buf.clear()
            done += 1
            if sent < total:
                s.setblocking(True)
                s.sendall(batch)
                s.setblocking(False)
                sent += 1
    seconds = time.perf_counter() - t0
    for s in socks:
        sel.unregister(s)
        s.close()
    sel.close()
    return seconds, last
