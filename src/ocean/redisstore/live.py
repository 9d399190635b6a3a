"""Live messages across nodes: one reader per worker (``Hub``), one queue per SSE stream.

Why this shape: a write on any node is appended to its route's change stream and SPUBLISHed
on the route's shard channel in one step (``ocean.lua``). The stream is the truth, the
channel only a doorbell: the hub SSUBSCRIBEs every route in the registry (``o:routes``,
re-read each ``DISCOVER_S`` so routes first written on another node are found) that a stream of
this worker watches, and on a ring
reads the route's stream after the last entry it handed on (``XRANGE (pos +``). So a message
lost by pub/sub (a reconnect, a failover) is still delivered, in order, by the next ring or
the periodic ``POLL_S`` look at the watched routes' tails. The hub feeds both the SSE
subscriptions of this worker and the engine's listeners (the SQL column store).

An SSE id in this mode names a position per route (``Cursor``): the stream's last seq and
epoch of every route its prefix covers, so a resume on any node reads each route's change
stream after exactly that point (``RedisEngine.changes``: exact, or a gap). A route the id
does not name appeared after the stream opened: all of it is new to the client.
"""
from __future__ import annotations

import base64
import heapq
import json
import logging
import threading
import time

from ..engine.bus import Subscription as BusSubscription
from ..errors import BadRequest
from ..model import iso_ms, prefix_matches
from . import layout, replies

log = logging.getLogger("ocean.redisstore")
DISCOVER_S = 1.0  # how often the route registry is re-read (a new route's first messages wait at most this)
POLL_S = 2.0  # how often watched routes' tails are compared, in case a doorbell was lost
ID_PREFIX = "r1."
PAGE = 1000  # entries read per route per look
KEYS_CHANNEL = "o:keys"  # keystore.CHANNEL: an edit of the keys, broadcast to every node


class LiveMessage:
    """One change stream entry as the web layer sends it (the embedded ``Message``'s ``data``/``sse``)."""

    __slots__ = ("route", "seq", "key", "op", "fields", "ms", "epoch", "stream_id", "_json")

    def __init__(self, route: str, m: dict):
        self.route, self.seq, self.key, self.op = route, m["seq"], m["key"], m["op"]
        self.fields, self.ms, self.epoch = m["data"], m["at"], m["epoch"]
        self.stream_id = m["id"].partition(".")[0]
        self._json = None

    @property
    def data(self) -> dict:
        out = dict(self.fields) if isinstance(self.fields, dict) else {"_value": self.fields}
        out["_route"] = self.route
        if self.key:
            out["_key"] = self.key
        out["_id"] = layout.drop_id(self.route, self.stream_id)
        out["_at"] = iso_ms(self.ms)
        out["_op"] = self.op
        return out

    def json(self) -> str:
        if self._json is None:
            self._json = json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)
        return self._json

    @property
    def position(self) -> str:
        return f"{self.stream_id}.{self.epoch}"


class _Out:
    """A message as one subscription sends it: the SSE bytes carry that stream's own cursor."""

    __slots__ = ("msg", "_sse")

    def __init__(self, msg: LiveMessage | None, cursor: str, raw: bytes | None = None):
        self.msg = msg
        self._sse = raw if msg is None else f"id: {cursor}\ndata: {msg.json()}\n\n".encode("utf-8")

    def sse(self) -> bytes:
        return self._sse


def encode_cursor(positions: dict) -> str:
    raw = json.dumps(positions, separators=(",", ":"), sort_keys=True).encode()
    return ID_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> dict:
    """An SSE id of this mode -> ``{route: "<seq>-<ms>.<epoch>"}``; BadRequest when it is not one."""
    try:
        if not text.startswith(ID_PREFIX):
            raise ValueError
        body = text[len(ID_PREFIX):]
        out = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if not isinstance(out, dict):
            raise ValueError
        for pos in out.values():
            layout.split_live_id(pos)
        return out
    except (ValueError, TypeError):
        raise BadRequest(f"Last-Event-ID {text[:60]!r} is not an id this server gave (Redis mode ids are "
                         f"opaque strings: echo back the last one received)") from None


class Subscription(BusSubscription):
    """One SSE client's queue: the embedded bus's (get, pending, wake, close, its shared bells), fed by
    the hub, which hands it each route's entries with the client's position per route (``positions``)."""

    def __init__(self, hub: "Hub", prefix: str, positions: dict, maxsize: int):
        super().__init__(hub, prefix, maxsize)
        self.hub = hub
        self.positions = positions  # route -> "<seq>-<ms>.<epoch>" of the last message this client got

    def _leave(self) -> None:
        self.hub.remove(self)

    def _take(self, msg: LiveMessage):
        """The ``_Out`` for ``msg``, or None when this client has it already (its position covers it)."""
        pos = self.positions.get(msg.route)
        if pos is not None:
            seq, _, epoch = layout.split_live_id(pos)
            if epoch == msg.epoch and msg.seq <= seq:
                return None
        self.positions[msg.route] = msg.position
        return _Out(msg, encode_cursor(self.positions))

    def push(self, msg: LiveMessage) -> None:
        out = self._take(msg)
        if out is not None:
            super().push(out)

    def push_gap(self, route: str) -> None:
        """This worker's reader missed entries of ``route`` (trimmed, or a failover's new epoch): say so."""
        reason = f"some drops of {route} were lost or trimmed before this node read them"
        raw = f"event: gap\ndata: {json.dumps({'reason': reason, 'route': route})}\n\n".encode()
        self._queue.append(_Out(None, "", raw))  # past the bound: a gap is never dropped
        if self._waiting:
            self._bell.ring()


class Hub:
    """The worker's one Redis reader: doorbells in, stream entries out to subscriptions and listeners."""

    def __init__(self, engine):
        self.engine = engine
        self.subs: list[Subscription] = []
        self.listeners: list = []
        self.pos: dict[str, str] = {}  # route -> position handed on (routes followed, or with a SQL table)
        self.lock = threading.RLock()
        self._thread = None
        self._stop = threading.Event()
        self.errors = 0
        self._rediscover = False  # a new stream: follow its routes now, not at the next tick
        self.on_keys: list = []  # callables run when the keys broadcast (``keystore.CHANNEL``) arrives

    # -- subscriptions -------------------------------------------------------
    def subscribe(self, prefix: str, after: str | None, last: int | None, maxsize: int) -> Subscription:
        """The backlog is read holding the hub's lock, so no live message of these routes is handed
        on meanwhile; what the reader hands on afterwards is deduplicated by the client's positions."""
        self.start()
        sub = Subscription(self, prefix, {}, maxsize)
        backlog, cap = [], self.engine.settings.replay_history
        with self.lock:
            routes = [r for r in self.engine.all_routes() if prefix_matches(prefix, r)]
            if after is not None:
                given = decode_cursor(after)
                for route in routes:
                    if route in given:
                        gap, msgs = self.engine.changes(route, given[route], limit=cap)
                        sub.positions[route] = given[route]
                    else:  # written first after the client's stream opened: all of it is new to it
                        gap, msgs = self.engine.changes_from_start(route, cap)
                    sub.gap = sub.gap or gap
                    backlog.append([LiveMessage(route, m) for m in msgs])
                merged = list(heapq.merge(*backlog, key=lambda m: (m.ms, m.route, m.seq)))
            else:
                tails = {}
                for route, msgs in zip(routes, self.engine.newest(routes, max(1, last or 0))):
                    if msgs:
                        tails[route] = msgs[-1]["id"]
                        if last:
                            backlog.append([LiveMessage(route, m) for m in msgs])
                merged = list(heapq.merge(*backlog, key=lambda m: (m.ms, m.route, m.seq)))[-last:] if last else []
                replayed = {m.route for m in merged}
                sub.positions.update({r: p for r, p in tails.items() if r not in replayed})
            sub.backlog = [o for o in (sub._take(m) for m in merged) if o is not None]
            fresh = [r for r in routes if r not in self.pos]
            for route, newest in zip(fresh, self.engine.newest(fresh, 1)):
                self.pos[route] = newest[-1]["id"] if newest else ""  # the reader hands on what follows
            self.subs.append(sub)
            self._rediscover = True
        return sub

    def recent(self, prefix: str, n: int) -> list:
        """The last ``n`` messages under ``prefix``, oldest first (``GET /stream`` as JSON)."""
        routes = [r for r in self.engine.all_routes() if prefix_matches(prefix, r)]
        lists = [[LiveMessage(r, m) for m in msgs] for r, msgs in zip(routes, self.engine.newest(routes, n))]
        return list(heapq.merge(*lists, key=lambda m: (m.ms, m.route, m.seq)))[-n:] if n else []

    def remove(self, sub: Subscription) -> None:
        with self.lock:
            if sub in self.subs:
                self.subs.remove(sub)

    def add_listener(self, listener) -> None:
        self.start()
        with self.lock:
            self.listeners.append(listener)

    # -- the reader ------------------------------------------------------------
    def start(self) -> None:
        with self.lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ocean-redis-live", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _wanted(self, route: str) -> bool:
        return any(prefix_matches(sub.prefix, route) for sub in list(self.subs))

    def _tables(self) -> set:
        out = set()
        for listener in self.listeners:
            out.update(getattr(listener, "tables", ()))
        return out

    def note_table(self, route: str) -> None:
        """A SQL table of ``route`` is about to be built from Redis: what is written from here on
        is handed to it (``RedisEngine.route_size``, which the build calls first, says so)."""
        with self.lock:
            if route not in self.pos:
                self.pos[route] = self.engine.tail(route)

    def _run(self) -> None:
        """Follow (SSUBSCRIBE) only the routes some stream of this worker watches.

        PERF: following every route cost every worker a doorbell and a stream read per write
        anywhere (worker CPU per served ``incr`` through /exec: 480 us with it, 360 us without;
        embedded 80 us); the SQL columns need no doorbell: a query catches up first (``catch_up_all``)."""
        pubsub, followed, discover, poll = None, set(), 0.0, time.monotonic() + POLL_S
        while not self._stop.is_set():  # bounded by stop(): the worker's life
            try:
                if pubsub is None:
                    pubsub, followed = self.engine.client.pubsub(), set()
                    pubsub.subscribe(KEYS_CHANNEL)
                now = time.monotonic()
                if now >= discover or self._rediscover:
                    discover, self._rediscover = now + DISCOVER_S, False
                    self._follow(pubsub, followed)
                self._dispatch(pubsub.get_message(ignore_subscribe_messages=True, timeout=0 if followed else 0.2),
                               followed)
                if followed:
                    self._dispatch(pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=0.2), followed)
                if time.monotonic() >= poll:
                    poll = time.monotonic() + POLL_S
                    self.catch_up(sorted(followed))
            except Exception as exc:  # Redis away: keep trying, bounded by stop()
                self.errors += 1
                log.warning("ocean: live reader: %s: %s", type(exc).__name__, exc)
                try:
                    if pubsub is not None:
                        pubsub.close()
                except Exception:
                    pass
                pubsub = None
                discover = 0.0
                self._stop.wait(0.5)

    def _follow(self, pubsub, followed: set) -> None:
        """SSUBSCRIBE the routes streams now watch (found in the registry), SUNSUBSCRIBE the rest."""
        wanted = {r for r in self.engine.all_routes() if self._wanted(r)} if self.subs else set()
        new, gone = wanted - followed, followed - wanted
        if gone:
            pubsub.sunsubscribe(*[layout.channel(r) for r in gone])
            followed -= gone
            tables = self._tables()
            with self.lock:
                for route in gone:
                    if route not in tables:
                        self.pos.pop(route, None)
        if new:
            pubsub.ssubscribe(*[layout.channel(r) for r in new])
            followed |= new
            with self.lock:
                for route in new:
                    self.pos.setdefault(route, "")  # set by subscribe() when it existed; else all of it is new
            self.catch_up(sorted(new))  # what was written before the SSUBSCRIBE took

    def _dispatch(self, msg, followed: set) -> None:
        """A doorbell (a route's shard channel) or the keys broadcast."""
        if not isinstance(msg, dict) or msg.get("type") not in ("smessage", "message"):
            return
        channel = msg["channel"]
        if channel == KEYS_CHANNEL:
            for hook in list(self.on_keys):
                try:
                    hook()
                except Exception:
                    log.exception("ocean: keys hook failed")
        elif channel.startswith("o:{") and channel[3:-1] in followed:
            self.catch_up([channel[3:-1]])

    def catch_up_all(self) -> None:
        """Every route this worker follows, and every route a listener holds a table of: a route
        created after the last discovery may have a table already (its first query built it)."""
        with self.lock:
            self.catch_up(sorted(self._tables()))

    def catch_up(self, routes) -> None:
        """Hand on every entry of ``routes`` after the position handed on (the stream is the truth).

        PERF: one pipelined ``XRANGE`` per page for all routes (one round trip per master), not one
        call per route: a SQL query and the periodic poll both come here. A route whose next entry
        is of another epoch (a failover) goes through ``RedisEngine.changes``, which knows gaps."""
        engine = self.engine
        with self.lock:
            known = [r for r in routes if self.pos.get(r)]
            if known:
                pipe = engine.client.pipeline(transaction=False)
                for route in known:
                    pipe.xrange(layout.changes(route), "(" + self.pos[route].partition(".")[0], "+", count=PAGE)
                pages = engine._redis(pipe.execute)
            else:
                pages = []
            for route, page in zip(known, pages):
                epoch = self.pos[route].partition(".")[2]
                if any(f.get("e") != epoch for _, f in page) or len(page) >= PAGE:
                    gap, msgs = engine.changes(route, self.pos[route], limit=100000)
                else:
                    gap, msgs = False, [replies.message(route, i, f) for i, f in page]
                self._hand_on(route, gap, msgs)
            for route in routes:
                if not self.pos.get(route):  # new to this worker (not to its clients: theirs are checked apart)
                    self._hand_on(route, False, engine.changes_from_start(route, 100000)[1])

    def _hand_on(self, route: str, gap: bool, msgs: list) -> None:
        if gap:
            self._reset_tables(route)
            for sub in list(self.subs):
                if prefix_matches(sub.prefix, route):
                    sub.push_gap(route)
        for m in msgs:
            self._deliver(LiveMessage(route, m), m)
        if msgs:
            self.pos[route] = msgs[-1]["id"]

    def _deliver(self, msg: LiveMessage, m: dict) -> None:
        for sub in list(self.subs):
            if prefix_matches(sub.prefix, msg.route):
                sub.push(msg)
        for listener in self.listeners:
            try:
                if msg.op == "event":
                    listener.event_added(msg.route, {
                        "drop_id": layout.drop_id(msg.route, msg.stream_id), "seq": msg.seq, "route": msg.route,
                        "payload": msg.fields, "created_at": iso_ms(msg.ms), "source": None})
                elif msg.op == "remove":
                    listener.entity_removed(msg.route, msg.key)
                else:
                    listener.entity_changed(msg.route, msg.key)
            except Exception:
                log.exception("ocean: listener %r failed", listener)

    def _reset_tables(self, route: str) -> None:
        """A gap for this worker: a column table of the route may miss changes, so it is built afresh."""
        for listener in self.listeners:
            tables = getattr(listener, "tables", None)
            if isinstance(tables, dict):
                tables.pop(route, None)


__all__ = ["Hub", "Subscription", "LiveMessage", "encode_cursor", "decode_cursor"]
