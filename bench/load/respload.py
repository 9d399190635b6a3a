"""Pipelined Redis commands from pre-encoded RESP over raw sockets: the Redis twin of
``httpload.hammer``, so a comparison pays no client-library cost on either side.

N connections, one pipeline in flight on each (``httpload.closed_loop``): send the whole
batch, read its replies (integer replies, one ``\\r\\n`` each), send again.
"""
from __future__ import annotations

from httpload import closed_loop


def resp(*args: str | bytes) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def pipeline_hammer(port: int, batch: bytes, replies: int, total: int, conns: int = 4, timeout: float = 120.0):
    """Send ``batch`` (``replies`` commands answering with integers) ``total`` times over ``conns``
    connections; returns ``(seconds, the reply values of the last batch answered)``."""
    last: list[int] = []

    def batch_end(buf: bytearray) -> int:
        # integer replies are ``:<n>\r\n``: the batch is whole at its ``replies``-th CRLF
        if buf.count(b"\r\n") < replies:
            return -1
        end = -2
        for _ in range(replies):
            end = buf.index(b"\r\n", end + 2)
        return end + 2

    def check(answer: bytes) -> None:
        lines = answer.split(b"\r\n")[:replies]
        bad = [line for line in lines if line[:1] != b":"]
        if bad:
            raise AssertionError(f"redis answered {bad[0]!r}")
        last[:] = [int(line[1:]) for line in lines]

    seconds = closed_loop(port, batch, total, conns, batch_end, check, timeout)
    return seconds, last
