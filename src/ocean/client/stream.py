"""A live SSE stream that resumes by itself: typed messages, ``Last-Event-ID``, bounded retries.

``Stream`` reads ``GET /live/{prefix}`` on a connection of its own and yields
``Message`` for each drop and ``Gap`` / ``Overflow`` / ``End`` for the
server's named events. When the connection drops -- the server restarted,
an ``overflow`` or ``end`` closed it, nothing (not even a heartbeat) came for
``idle_timeout`` seconds -- it reconnects with ``Last-Event-ID`` set to the
last message's id, so the server replays what was missed from its replay
history, and ``Gap`` says when that history no longer reached back far enough.

Reconnecting is bounded: after ``retries`` failed attempts in a row (refused,
5xx, 429, or a stream that closed at once) the last error is raised. 401, 403
and 400 are raised at once: waiting does not mend a key.
"""
from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
import urllib.parse

from ..errors import ClientTimeout, OceanError, Unreachable, from_wire
from .transport import Reply, open_connection


class Event:
    """One thing a stream delivers: ``type``, ``id`` (the SSE id, for drops) and ``data``."""

    type = "event"
    __slots__ = ("id", "data")

    def __init__(self, id: str | None, data: dict):
        self.id = id
        self.data = data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, data={self.data!r})"

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and (other.id, other.data) == (self.id, self.data)


class Message(Event):
    """A drop as it was written: its fields plus ``_route``, ``_key``, ``_id``, ``_at``, ``_op``."""

    type = "message"
    __slots__ = ()

    @property
    def route(self) -> str | None:
        return self.data.get("_route")

    @property
    def key(self) -> str | None:
        return self.data.get("_key")

    @property
    def seq(self) -> int | None:
        return int(self.id) if self.id and self.id.isdigit() else None


class Gap(Event):
    """The resume point was older than the server's replay history: some drops were missed."""

    type = "gap"
    __slots__ = ()


class Overflow(Event):
    """The server disconnected this client for falling behind; the stream resumes after it."""

    type = "overflow"
    __slots__ = ()


class End(Event):
    """The server ended the stream (draining, or the key was revoked: ``code`` says)."""

    type = "end"
    __slots__ = ()

    @property
    def code(self) -> str | None:
        return self.data.get("code")


_NAMED = {"gap": Gap, "overflow": Overflow, "end": End}
_MAX_LINE = 8 << 20  # a drop's payload is at most 1 MiB encoded (setting max_payload_bytes); lines stay far below


def _retryable(err: OceanError) -> bool:
    """Worth another attempt later: the server is away, draining, overloaded (not a key or input problem)."""
    return err.status >= 500 or err.status == 429


class Stream:
    """An iterator of ``Message`` / ``Gap`` / ``Overflow`` / ``End`` that reconnects and resumes.

    It is open when made (refusals raise then: 401, 403, 400; the server away: after
    the retries). Use it as an iterator (``for msg in stream``), ideally in a ``with`` block;
    ``close()`` (also from another thread) ends the iteration. ``last_event_id``
    is the id of the last ``Message`` yielded: pass it to a later
    ``Client.stream`` to carry on where this one stopped.
    """

    def __init__(self, url: str, headers: dict, prefix: str, last_event_id: str | None = None,
                 last: int | None = None, retries: int = 10, backoff: float = 0.25, max_backoff: float = 5.0,
                 idle_timeout: float = 45.0, timeout: float = 10.0):
        self.url = url
        self.prefix = prefix
        self.last_event_id = None if last_event_id is None else str(last_event_id)
        self.last = last
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.idle_timeout = idle_timeout
        self.timeout = timeout
        self.reconnects = 0  # connections opened after the first
        self._headers = headers
        self._sock: socket.socket | None = None
        self._closed = threading.Event()
        # Open now: a drop written after ``Client.stream`` returns is never missed, and a
        # refused key or prefix raises here.
        self._first = self._connect()
        self._gen = self._run()

    def __iter__(self):
        return self

    def __next__(self) -> Event:
        return next(self._gen)

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """End the stream; an iteration blocked in another thread returns."""
        self._closed.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in recv
            except OSError:
                pass

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # -- connecting ----------------------------------------------------------------

    def _path(self) -> str:
        query = {}
        if self.last_event_id is None and self.last:
            query["last"] = str(self.last)
        path = "/live/" + urllib.parse.quote(self.prefix, safe="/*")
        return path + ("?" + urllib.parse.urlencode(query) if query else "")

    def _open(self) -> http.client.HTTPResponse:
        """One connection with the stream's answer status 200; typed errors otherwise."""
        conn, base = open_connection(self.url, self.timeout)
        headers = dict(self._headers, Accept="text/event-stream")
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        try:
            conn.request("GET", base + self._path(), headers=headers)
            # NOTE: the socket itself, not ``conn.sock``: a response without a length or chunks
            # takes it over and ``conn.sock`` becomes None.
            self._sock = sock = conn.sock
            resp = conn.getresponse()
            if resp.status != 200:
                reply = Reply(resp.status, resp.read(), resp.headers)
                conn.close()
                raise reply.error() or from_wire({"code": f"http_{resp.status}"}, resp.status)
            sock.settimeout(self.idle_timeout)
            return resp
        except (socket.timeout, TimeoutError):
            conn.close()
            raise ClientTimeout(f"{self.url} did not open the stream within {self.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise Unreachable(f"cannot reach {self.url}: {exc or type(exc).__name__}") from None

    def _wait(self, failures: int) -> None:
        delay = min(self.max_backoff, self.backoff * 2 ** (failures - 1))
        self._closed.wait(delay * random.uniform(0.8, 1.2))

    def _connect(self, failures: int = 0) -> http.client.HTTPResponse | None:
        """Open the stream, retrying what may pass (bounded); None once closed."""
        while not self._closed.is_set():
            try:
                return self._open()
            except OceanError as err:
                failures += 1
                if self._closed.is_set():
                    return None
                if not _retryable(err) or failures > self.retries:
                    raise
                self._wait(failures)
        return None

    def _run(self):
        resp, failures = self._first, 0
        self._first = None
        while resp is not None:
            opened = time.monotonic()
            delivered = False
            try:
                for event in _events(resp):
                    if isinstance(event, Message):
                        if event.id is not None:
                            self.last_event_id = event.id
                        delivered = True
                    yield event
            except (OSError, http.client.HTTPException, ValueError):
                pass  # dropped, idle for too long, or closed: resume below
            finally:
                self._sock = None
                resp.close()
            if self._closed.is_set():
                return
            # A stream that ended at once and gave nothing counts as a failed attempt (bounded loop).
            if delivered or time.monotonic() - opened >= 1.0:
                failures = 0
            else:
                failures += 1
                if failures > self.retries:
                    raise Unreachable(f"{self.url} kept closing the stream on {self.prefix} "
                                      f"({failures} times in a row)")
                self._wait(failures)
            self.reconnects += 1
            resp = self._connect(failures)

def _events(resp):
    """Parse SSE from ``resp`` into events (comments and ``retry:`` skipped) until the stream ends."""
    data: list[str] = []
    name = ""
    ident = None
    while True:
        raw = resp.readline(_MAX_LINE)
        if not raw:
            return
        line = raw.decode("utf-8").rstrip("\r\n") if raw.endswith(b"\n") else None
        if line is None:
            return  # a torn last line: the connection broke mid-message
        if line == "":
            if data:
                text = "\n".join(data)
                try:
                    doc = json.loads(text)
                except ValueError:
                    doc = {"_value": text}
                if not isinstance(doc, dict):
                    doc = {"_value": doc}
                cls = _NAMED.get(name)
                if cls is not None:
                    yield cls(ident, doc)
                elif not name or name == "message":
                    yield Message(ident, doc)
            data, name, ident = [], "", None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
        elif field == "id":
            ident = value
