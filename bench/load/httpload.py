"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections, one request in flight each.

Raw non-blocking sockets and one ``selectors`` loop (no threads, no gevent):
cheap enough per request that one client core keeps the one server worker
busy. Answers are checked for ``200`` and their bodies kept when asked.
"""
from __future__ import annotations

import selectors
import socket
import time


def request(method: str, path: str, key: str | None, body: bytes = b"", ctype: str = "text/plain") -> bytes:
    """The bytes of one keep-alive request."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if key:
        head += f"X-Ocean-Key: {key}\r\n"
    if body or method == "POST":
        head += f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def _response_end(buf: bytearray) -> int:
    """Index just past the first complete response in ``buf``, or -1 (Content-Length or chunked)."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return -1
    head = bytes(buf[:head_end]).lower()
    i = head.find(b"content-length:")
    if i >= 0:
        n = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None])
        end = head_end + 4 + n
        return end if len(buf) >= end else -1
    if b"transfer-encoding: chunked" in head:
        j = buf.find(b"\r\n0\r\n\r\n", head_end)
        return j + 7 if j >= 0 else -1
    return -1


def closed_loop(port: int, payload: bytes, total: int, conns: int, answer_end, on_answer,
                timeout: float = 120.0) -> float:
    """Send ``payload`` ``total`` times over ``conns`` connections, one in flight on each: the next
    goes once ``answer_end(buf)`` (index past one whole answer, or -1) finds the answer, which is
    handed to ``on_answer(bytes)``. Returns the seconds it took."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(min(conns, total)):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
    sent = done = 0
    bufs = {s: bytearray() for s in socks}
    t0 = time.perf_counter()
    for s in socks:
        s.sendall(payload)
        sent += 1
        sel.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while done < total:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{done}/{total} answers after {timeout}s")
        for sk, _ in sel.select(1.0):
            s = sk.fileobj
            data = s.recv(262144)
            if not data:
                raise ConnectionError("the server closed a keep-alive connection")
            buf = bufs[s]
            buf += data
            while True:
                end = answer_end(buf)
                if end < 0:
                    break
                on_answer(bytes(buf[:end]))
                del buf[:end]
                done += 1
                if sent < total:
                    s.sendall(payload)
                    sent += 1
    seconds = time.perf_counter() - t0
    for s in socks:
        sel.unregister(s)
        s.close()
    sel.close()
    return seconds


def hammer(port: int, req: bytes, total: int, conns: int = 32, keep_bodies: bool = False, timeout: float = 120.0):
    """Send ``req`` ``total`` times over ``conns`` connections; returns (seconds, statuses, bodies)."""
    statuses: dict[int, int] = {}
    bodies = []

    def tally(answer: bytes) -> None:
        code = int(answer[9:12])
        statuses[code] = statuses.get(code, 0) + 1
        if keep_bodies:
            bodies.append(answer[answer.find(b"\r\n\r\n") + 4:])

    seconds = closed_loop(port, req, total, conns, _response_end, tally, timeout)
    return seconds, statuses, bodies
