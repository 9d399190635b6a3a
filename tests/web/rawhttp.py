"""Raw HTTP/1.1 over a socket to 127.0.0.1, for tests aimed at the server's parser.

Every read is bounded by a deadline; answers are parsed by hand (Content-Length,
chunked, or read to the close) so malformed exchanges can be inspected.
"""
from __future__ import annotations

import socket
import time


class Closed(Exception):
    """The server closed the connection before a whole answer."""


class Conn:
    """One raw connection with a receive buffer."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.timeout = timeout

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _more(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer in time")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        except socket.timeout:
            raise TimeoutError("no answer in time") from None
        if not chunk:
            raise Closed(self.buf)
        self.buf += chunk

    def _line(self, deadline: float) -> bytes:
        while b"\r\n" not in self.buf:
            self._more(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            self._more(deadline)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self, timeout: float | None = None, head_only: bool = False):
        """The next answer: ``(status, {lowercased name: value}, body)``; 1xx answers come back alone."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n\r\n" not in self.buf:
            self._more(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status < 200 or head_only:
            return status, headers, b""
        if "content-length" in headers:
            return status, headers, self._exactly(int(headers["content-length"]), deadline)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self._line(deadline).split(b";")[0], 16)
                if size == 0:
                    self._line(deadline)
                    return status, headers, body
                body += self._exactly(size, deadline)
                self._line(deadline)
        try:
            while True:
                self._more(deadline)
        except Closed:
            body, self.buf = self.buf, b""
            return status, headers, body

    def chunk(self, timeout: float | None = None) -> bytes:
        """One chunk of a chunked stream (b"" at its end)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        size = int(self._line(deadline).split(b";")[0], 16)
        data = self._exactly(size, deadline) if size else b""
        self._line(deadline)
        return data

    def closed(self, timeout: float) -> bool:
        """True when the server closes the connection within ``timeout`` (having sent nothing more)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._more(deadline)
        except Closed:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def exchange(port: int, raw: bytes, timeout: float = 5.0) -> list:
    """Send ``raw``, end the sending side, and read every answer until the server closes."""
    answers = []
    with Conn(port, timeout) as c:
        try:
            c.send(raw)
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server closed first (refused mid-request)
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                answers.append(c.response(timeout=max(0.1, deadline - time.monotonic())))
            except (Closed, ConnectionResetError):
                break
    return answers


def request(method: str, path: str, key: str | None = None, body: bytes | None = None,
            headers: dict | None = None, ctype: str = "text/plain") -> bytes:
    """The bytes of one request (Content-Length framed when there is a body)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if key:
        head += f"X-Ocean-Key: {key}\r\n"
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    if body is not None:
        head += f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + (body or b"")
