"""Server-sent event streams: one generator (one greenlet) per client, over a bus subscription.

Each message goes out as the engine's cached ``Message.sse()`` bytes
(``id: <seq>`` + ``data: <json>``), encoded once however many clients get it.
``Streams`` counts open streams against the caps (per server, per client
address, and per key when ``max_sse_per_key`` is set), sends the heartbeats, ends
the streams of a revoked key within a second (one ticker for all streams does
both), and ends every stream when the server drains.

PERF: a stream waits with no timer of its own: one ticker wakes every stream
each ``heartbeat_s`` for its heartbeat, so a delivery no longer arms and
cancels a heartbeat timeout (a timer and a Timeout object per message per
client under gevent).
"""
from __future__ import annotations

import json
import logging
import threading
import time

from ..engine.bus import Subscription
from ..errors import EngineClosed, TooManyConnections

log = logging.getLogger("ocean.web.sse")

HELLO = b"retry: 3000\n: ocean stream open\n\n"
HEARTBEAT = b": heartbeat\n\n"
BATCH = 256  # messages joined into one write when a client is behind ...
CHUNK_BYTES = 256 << 10  # ... up to this many bytes: a stuck client pins at most one chunk, not 256 big drops


def event(name: str, data: dict) -> bytes:
    """A named SSE event (``event: gap`` / ``overflow`` / ``end``)."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Streams:
    """The open streams of this worker: caps, heartbeats, revocation and drain."""

    def __init__(self, keys, settings, check_every: float = 1.0):
        self.keys = keys
        self.settings = settings
        self.check_every = check_every
        self.open: dict[int, tuple] = {}  # id(subscription) -> (subscription, key id, client address)
        self.per_key: dict[str, int] = {}
        self.per_ip: dict[str, int] = {}
        self.revoked: set = set()  # ids of subscriptions closed because their key was revoked
        self.draining = False
        self._lock = threading.Lock()
        self._ticker = None
        self._stop = threading.Event()

    def __len__(self) -> int:
        return len(self.open)

    def admit(self, access, ip: str | None = None) -> None:
        """Raise if one more stream for ``access`` from address ``ip`` would pass a cap (429) or the server drains (503).

        NOTE: a page embeds one public read key and every viewer streams with it, so the
        defence against one client taking every stream is the per-address cap, not a
        per-key one (``max_sse_per_key`` is 0, no cap, unless set).
        """
        if self.draining:
            raise EngineClosed("the server is shutting down; reconnect shortly")
        settings = self.settings
        if len(self.open) >= settings.max_sse_clients:
            raise TooManyConnections(f"the server holds its maximum of {settings.max_sse_clients} streams "
                                     f"(setting max_sse_clients); retry later")
        if ip and settings.max_sse_per_ip and self.per_ip.get(ip, 0) >= settings.max_sse_per_ip:
            raise TooManyConnections(f"this client address holds its maximum of {settings.max_sse_per_ip} streams "
                                     f"(setting max_sse_per_ip); close one first")
        if settings.max_sse_per_key and self.per_key.get(access.source, 0) >= settings.max_sse_per_key:
            raise TooManyConnections(f"this key holds its maximum of {settings.max_sse_per_key} streams "
                                     f"(setting max_sse_per_key); close one first")

    def add(self, sub, access, ip: str | None = None) -> None:
        with self._lock:
            self.open[id(sub)] = (sub, access.source, ip)
            self.per_key[access.source] = self.per_key.get(access.source, 0) + 1
            if ip:
                self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="ocean-sse-ticker", daemon=True)
            self._ticker.start()

    def remove(self, sub) -> None:
        with self._lock:
            _, key_id, ip = self.open.pop(id(sub), (None, None, None))
            self.revoked.discard(id(sub))
            if key_id is not None:
                _release(self.per_key, key_id)
            if ip:
                _release(self.per_ip, ip)

    def _tick(self) -> None:
        """Wake every stream once each ``heartbeat_s`` for its heartbeat; every ``check_every``, revocations.

        PERF: the streams are woken in slices spread over the interval, not all at once:
        5,000 heartbeat writes in one burst hold the worker ~100 ms, and a fan-out that
        meets the burst waits that long. A slice is some of the subscriptions' wake-up
        groups (``Subscription.group``), so waking it disturbs no other stream.
        """
        every = self.settings.heartbeat_s
        slices = Subscription.GROUPS  # a power of two: each slice is the same number of groups ...
        while slices > 1 and every / slices < 0.25:  # ... and at least 0.25 s from the next
            slices //= 2
        step, turn = every / slices, 0
        beat = check = time.monotonic()
        beat += step
        check += self.check_every
        while True:
            due = beat if self.keys is None else min(beat, check)
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            now = time.monotonic()
            if now >= beat:
                beat += step
                if beat <= now:  # the worker stalled: carry on from now, no burst of beats
                    beat = now + step
                for sub, _, _ in list(self.open.values()):
                    if sub.group % slices == turn:
                        sub.wake()
                turn = (turn + 1) % slices
            if self.keys is not None and now >= check:
                check = now + self.check_every
                self._revoke()

    def _revoke(self) -> None:
        """Close the streams of keys revoked since the last look (one check per key id)."""
        try:
            revoked = {k for k in list(self.per_key) if not self.keys.is_active(k)}
            if not revoked:
                return
            for sub, key_id, _ in list(self.open.values()):
                if key_id in revoked:
                    self.revoked.add(id(sub))
                    sub.close()
        except Exception:  # a bad key file must not kill the ticker
            log.exception("revocation check failed")

    def drain(self) -> None:
        """End every stream (SIGTERM): clients see ``event: end`` and may reconnect elsewhere."""
        self.draining = True
        self._stop.set()
        for sub, _, _ in list(self.open.values()):
            sub.close()


def _release(counts: dict, name) -> None:
    """One stream fewer for ``name`` (a key id or an address); the entry goes at zero."""
    left = counts[name] - 1
    if left:
        counts[name] = left
    else:
        del counts[name]


class Body:
    """The WSGI body of one stream; ``close()`` frees the subscription even if never iterated."""

    def __init__(self, sub, streams: Streams):
        self.sub, self.streams = sub, streams
        self._gen = _messages(sub, streams)

    def __iter__(self):
        return self._gen

    def close(self) -> None:
        self._gen.close()
        self.sub.close()
        self.streams.remove(self.sub)


def _messages(sub, streams: Streams):
    """Replay, then live messages and heartbeats, until overflow, revocation, drain or disconnect."""
    try:
        yield HELLO
        if sub.gap:
            yield event("gap", {"reason": "the resume point is older than the replay history; some drops were missed"})
        yield from _chunks(sub.backlog)
        while True:
            if sub.overflowed:
                yield event("overflow", {"reason": "this client fell too far behind; reconnect with Last-Event-ID"})
                return
            msg = sub.get()
            if msg is None:  # woken by the ticker (heartbeat), or the subscription ended
                if sub.overflowed:
                    continue
                if id(sub) in streams.revoked:
                    yield event("end", {"ok": False, "code": "unauthorized", "error": "the key was revoked"})
                    return
                if sub.closed or streams.draining:
                    yield event("end", {"reason": "server shutting down"})
                    return
                yield HEARTBEAT
                continue
            if not sub.pending():
                yield msg.sse()  # the common case: caught up, one message, no copy
                continue
            chunk = [msg.sse()]
            size = len(chunk[0])
            while len(chunk) < BATCH and size < CHUNK_BYTES and sub.pending():
                more = sub.get(0)
                if more is None:
                    break
                chunk.append(more.sse())
                size += len(chunk[-1])
            yield b"".join(chunk)
    finally:
        sub.close()
        streams.remove(sub)


def _chunks(messages):
    """The SSE bytes of ``messages`` joined into writes of at most BATCH messages / CHUNK_BYTES."""
    chunk, size = [], 0
    for m in messages:
        data = m.sse()
        if chunk and (len(chunk) >= BATCH or size + len(data) > CHUNK_BYTES):
            yield b"".join(chunk)
            chunk, size = [], 0
        chunk.append(data)
        size += len(data)
    if chunk:
        yield b"".join(chunk)


def open_stream(engine, streams: Streams, access, prefix: str, after_seq=None, last=None, ip=None):
    """Admit, subscribe and register one client (``ip``: its address); returns the body iterator."""
    streams.admit(access, ip)
    sub = engine.subscribe(prefix, after_seq=after_seq, last=last)
    streams.add(sub, access, ip)
    return Body(sub, streams)
