"""One keep-alive HTTP connection to an ocean server, and the raw answer (``Reply``).

``Connection.request`` sends one request on the connection it keeps open and
reads the whole answer. It reopens the connection when the server has closed
it while idle (gunicorn holds an idle keep-alive connection ``keepalive`` = 2 s):
a readable idle socket is reopened before sending, and a request that meets
a connection reset before any byte of an answer came back is sent once more
on a new connection. It raises only ``Unreachable`` and ``ClientTimeout``:
every HTTP status, 4xx and 5xx included, is a ``Reply``.

NOTE: that one resend happens only on a *reused* connection that failed before
the status line: the server closed it idle, so it never read the request.
A fresh connection that fails is never resent (the call may have run).
"""
from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import urllib.parse

from ..errors import ClientTimeout, OceanError, Unreachable, from_wire

# Failures that mean "the server closed this connection" when they come before the answer.
_DROPPED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class Reply:
    """One HTTP answer: ``status``, ``body`` (the raw bytes), ``headers``; ``json()`` decodes."""

    __slots__ = ("status", "body", "headers", "_doc")

    def __init__(self, status: int, body: bytes, headers):
        self.status = status
        self.body = body
        self.headers = headers
        self._doc = None

    @property
    def ok(self) -> bool:
        return self.status < 400

    def json(self):
        """The decoded body; a body that is not JSON (a proxy's HTML page) as an error dict.

        The error dict has the wire shape: ``{"ok": false, "error": <text>, "code": "http_<status>"}``.
        """
        if self._doc is None:
            try:
                self._doc = json.loads(self.body)
            except ValueError:
                text = self.body.decode("utf-8", "replace").strip()[:200]
                self._doc = {"ok": False, "error": text or f"HTTP {self.status} with no JSON body",
                             "code": f"http_{self.status}"}
        return self._doc

    def error(self) -> OceanError | None:
        """The typed error this answer carries (status 400 and up), else None."""
        return from_wire(self.json(), self.status) if self.status >= 400 else None

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:60]!r})"


def split_url(url: str) -> tuple[str, str, int, str]:
    """``(scheme, host, port, base path)`` of a server URL like ``http://127.0.0.1:8080``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"an ocean server URL looks like http://127.0.0.1:8080, got {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)  # ValueError for a port out of range
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")


def open_connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    """A new (not yet connected) connection to ``url``'s server and the base path to prefix."""
    scheme, host, port, base = split_url(url)
    cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    return cls(host, port, timeout=timeout), base


def _idle_closed(sock) -> bool:
    """True when an idle keep-alive socket is readable: the server closed it (or sent junk)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class Connection:
    """The one persistent connection of a ``Client`` (calls are serialized on it)."""

    def __init__(self, url: str, timeout: float):
        self.url = url
        self.timeout = timeout
        self.opened = 0  # connections opened so far (1 for any number of calls on a kept-alive one)
        self._conn: http.client.HTTPConnection | None = None
        self._base = ""
        self._lock = threading.Lock()

    def request(self, method: str, path: str, body: bytes | None, headers: dict,
                timeout: float | None = None) -> Reply:
        """Send one request and read its whole answer; Unreachable / ClientTimeout if none came."""
        with self._lock:
            for attempt in (1, 2):
                reused = self._conn is not None and self._conn.sock is not None
                if reused and _idle_closed(self._conn.sock):
                    self.close()
                    reused = False
                if self._conn is None:
                    self._conn, self._base = open_connection(self.url, self.timeout)
                conn = self._conn
                answered = False
                try:
                    if conn.sock is None:
                        conn.connect()
                        self.opened += 1
                    conn.sock.settimeout(self.timeout if timeout is None else timeout)
                    conn.request(method, self._base + path, body=body, headers=headers)
                    resp = conn.getresponse()
                    answered = True
                    data = resp.read()
                except (socket.timeout, TimeoutError):
                    self.close()
                    raise ClientTimeout(f"{self.url} did not answer {method} {path} within "
                                        f"{self.timeout if timeout is None else timeout:g} s") from None
                except _DROPPED as exc:
                    self.close()
                    if reused and not answered and attempt == 1:
                        continue  # the server closed the idle connection: it never read this request
                    raise Unreachable(f"{self.url} dropped the connection during {method} {path}: "
                                      f"{_reason(exc)}") from None
                except (OSError, http.client.HTTPException) as exc:
                    self.close()
                    raise Unreachable(f"cannot reach {self.url}: {_reason(exc)}") from None
                if resp.will_close:
                    self.close()
                return Reply(resp.status, data, resp.headers)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def local_address(self):
        """The local (host, port) of the open connection, or None (to tell connections apart)."""
        sock = self._conn.sock if self._conn is not None else None
        return sock.getsockname() if sock is not None else None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
