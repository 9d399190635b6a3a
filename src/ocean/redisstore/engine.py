"""``RedisEngine``: the data operations of ``ocean.engine.Engine``, kept in Redis.

The same methods, the same answers and the same ``ocean.errors`` types, so the web layer,
Drops and SQL can sit on either. Validation is the embedded engine's own (imported, not
copied); each write is then ONE ``FCALL ocean_write`` on the route's slot (a ``/drop``
batch: one ``ocean_write_many`` per page of a route's drops, each drop one such step), which
checks what only the stored state can tell (counter or not, overflow), applies, and publishes
the live message in the same atomic step (``ocean.lua``). Where this mode differs:

- ``seq`` is per route (SPEC section 8) and ``drop_id`` is derived from route + stream id;
- the live message's id is the stream id ``<seq>-<ms>``, an opaque string for SSE;
- a refused write takes no seq (the embedded engine may spend one).
"""
from __future__ import annotations

import heapq
import json
import time

from .. import timekeys
from ..engine import ops
from ..engine.engine import prepare_drop, prepare_save, prepare_update
from ..errors import (EngineClosed, InvalidAmount, InvalidParameter, InvalidPayload, NotFound, NotReplicated,
                      NotSupported, OceanError, PayloadTooLarge)
from ..model import check_field, check_increments, check_key, check_route, check_sketch_values, iso_ms, now_ms
from ..settings import Settings
from . import durability, layout, replies, sketches
from .connection import connect, load_functions, refresh_topology, translate
from .direct import Direct

_dumps = ops._dumps  # the embedded log's JSON encoder: the same refusals (NaN, sets) and messages
PAGE = 1000
# One ocean_write_many call holds its master for its whole run: a call takes drops of one route
# up to ROUTE_PAGE_COST, a drop counting 1 and each sketch field it adds to SKETCH_COST more.
# Measured in Redis 7.0 here: ~20 us a counter or event drop, ~40 us an update, ~180 us a drop
# adding a uniq and a dist field: a call of 100 counter drops holds a master ~2 ms.
ROUTE_PAGE_COST = 100
SKETCH_COST = 5


def _pages(drops: list):
    """``drops`` (of one route, in order) cut into calls of at most ``ROUTE_PAGE_COST`` (one drop
    costing more goes alone)."""
    page, cost = [], 0
    for drop in drops:
        if page and cost + drop[5] > ROUTE_PAGE_COST:
            yield page
            page, cost = [], 0
        page.append(drop)
        cost += drop[5]
    if page:
        yield page


def _write_command(route: str, drops: list) -> tuple:
    """The ``(key, command)`` that writes ``drops`` (of ``route``): ``ocean_write`` for one drop,
    ``ocean_write_many`` for more (its arguments: each drop's count, then its ``ocean_write`` ones)."""
    meta = layout.meta(route)
    if len(drops) == 1:
        return meta, ("FCALL", "ocean_write", 1, meta, *drops[0][4])
    args = ["FCALL", "ocean_write_many", 1, meta, route]
    for drop in drops:
        args.append(len(drop[4]))
        args += drop[4]
    return meta, tuple(args)


class RedisEngine:
    """The Redis store over ``url`` (``redis://host:port``: a cluster seed or a single server).

    Args:
        url: where Redis is; connecting fails with ``StorageError`` (503) when it is not there.
        settings: an ``ocean.settings.Settings`` (history_limit, event_retention, replay_history,
            list_limit, max_payload_bytes, timezone are used); defaults from the environment.
        retries: how many times a call retries while Redis is unreachable (``connection.connect``).
    """

    def __init__(self, url: str, settings: Settings | None = None, *, retries: int = 3):
        self.settings = settings or Settings.load()
        timekeys.check_timezone(self.settings.timezone)
        self.url = url
        self.client, self.is_cluster = connect(url, retries)
        self.direct = Direct(self.client, self.is_cluster, retries)  # the function calls' own path
        self.functions_version = self._redis(load_functions, self.client, self.is_cluster)
        # --fsync here (durability.py): what Redis was found to do, and whether writes wait for a replica
        self.durability = durability.plan(self.settings.fsync,
                                          self._redis(durability.inspect, self.client, self.is_cluster, url))
        self._replica_wait_ms = self.settings.replica_wait_ms if self.durability["mode"] == durability.WAIT else 0
        self.now_ms = now_ms
        self.started = time.time()
        self._registered: set[str] = set()
        self._sized = None  # (when, sizes) of _sizes
        self._closed = False
        self._hub = None  # the live reader (``live.Hub``), started by the first subscribe or listener
        self._published = 0  # messages ``publish`` handed to this worker's subscribers

    # -- writes ------------------------------------------------------------
    def save(self, route: str, payload, key: str | None = None, keep=None, source: str | None = None) -> dict:
        """Write a drop: an event (no key) or an entity's new plain fields (with a key)."""
        kind, key, body, incs, expires_in = prepare_save(route, payload, key, keep, self.expand_key)
        return self._receipt(route, key, self._write(kind, route, key, body, incs, expires_in, source))

    def update(self, route: str, key: str, fields: dict, source: str | None = None) -> dict:
        """Merge ``fields`` into an entity (created if missing); ``"+f": n`` entries increment."""
        key, plain, incs = prepare_update(route, key, fields, self.expand_key)
        self._write(ops.UPDATE, route, key, plain, incs, 0, source)
        return self.get(route, key)

    def incr(self, route: str, key: str, amounts: dict, source: str | None = None) -> dict:
        """Increment fields of one entity atomically; returns ``{field: new value}``."""
        key = self.expand_key(key)
        check_route(route)
        check_key(key)
        if not amounts:
            raise InvalidAmount("incr needs at least one field")
        incs = check_increments(amounts)
        return self._write(ops.INCR, route, key, None, incs, 0, source)[3]

    def uniq(self, route: str, key: str, values: dict, source: str | None = None) -> dict:
        """Add values to uniq fields atomically (``PFADD`` in the write's call); ``{field: estimate}``."""
        return self._add_to_sketches("~", route, key, values, source)

    def observe(self, route: str, key: str, values: dict, source: str | None = None) -> dict:
        """Add numbers to dist fields atomically; ``{field: summary}`` (``redisstore/sketches.py``)."""
        return self._add_to_sketches("%", route, key, values, source)

    def _add_to_sketches(self, prefix: str, route: str, key: str, values: dict, source) -> dict:
        check_route(route)  # the embedded Engine._add_to_sketches's checks, in its order
        key = check_key(self.expand_key(key))
        if type(values) is not dict or not values:
            raise InvalidAmount(f"{'uniq' if prefix == '~' else 'observe'} needs at least one field and its values")
        incs = {prefix + check_field(name): check_sketch_values(prefix, v, name) for name, v in values.items()}
        return self._write(ops.INCR, route, key, None, incs, 0, source)[3]

    def entity_sketches(self, route: str, key: str) -> dict:
        """``{field: Hll or Dist}`` of an entity's sketch fields, read from Redis (empty when none):
        the kernel's objects with the embedded store's bytes, for SQL's merges and Drops."""
        check_route(route)
        return sketches.from_reply(sketches.read(self, route, key))

    def route_has_sketches(self, route: str) -> bool:
        """True once some entity of ``route`` got a sketch field (a hint before a scan: it stays
        set after they are removed)."""
        return bool(self._redis(self.client.hexists, layout.meta(route), "sk"))

    def remove(self, route: str, key: str, source: str | None = None) -> dict:
        """Delete an entity with its counters; NotFound if absent."""
        check_route(route)
        key = check_key(self.expand_key(key))
        self._write(ops.REMOVE, route, key, None, None, 0, source)
        return {"removed": True}

    def drop(self, route: str, payload, key: str | None = None, keep=None, source: str | None = None) -> dict:
        """One drop as ``POST /drop`` takes it; returns ``{drop_id, seq, route, key, created_at}``."""
        out = self.drop_many([{"route": route, "key": key, "payload": payload, "keep": keep}], source)[0]
        if isinstance(out, OceanError):
            raise out
        return out

    def drop_many(self, drops: list, source: str | None = None, times: list | None = None,
                  parsed: bool = False) -> list:
        """Many drops, in order, each atomic on its own; one receipt or ``OceanError`` per drop.

        ``parsed`` (``Engine.drop_many``'s hint that the drops came from a JSON parser) changes nothing here.

        ``times`` (``POST /import``) gives an event its own time (epoch ms), as in ``Engine.drop_many``.
        The drops of one route go in pages (``ROUTE_PAGE_COST``), each ONE ``FCALL ocean_write_many``
        that applies them in order (a refused one changes nothing; the others apply); the pages of
        every route go out pipelined, one round trip per master and ``PAGE`` pages. Drops to one
        route keep their order, as their seqs show; the answers keep the request's. A Redis that
        fails in the middle of a batch raises StorageError: which items landed is then unknown, as
        for a lost answer.
        """
        results: list = [None] * len(drops)
        by_route: dict = {}
        for i, item in enumerate(drops):
            try:
                kind, route, key, body, incs, expires_in = prepare_drop(item, self.expand_key)
                at = times[i] if times is not None and kind == ops.EVENT and type(times[i]) is int else None
                args = self._args(kind, route, key, body, incs, expires_in, source, at)
                self._register(route)
                cost = 1 + (SKETCH_COST * sum(type(a) is list for a in incs.values()) if incs else 0)
                by_route.setdefault(route, []).append((i, key, body, at, args, cost))
            except OceanError as exc:
                results[i] = exc
        import redis
        calls = [(route, page) for route, group in by_route.items() for page in _pages(group)]
        for start in range(0, len(calls), PAGE):
            page = calls[start:start + PAGE]
            answers = self.direct.execute([_write_command(route, drops) for route, drops in page])
            lost = next((r for r in answers if isinstance(r, redis.RedisError)
                         and not isinstance(r, redis.ResponseError)), None)
            if lost is not None:  # a master lost midway: which of its drops landed is unknown
                raise translate(lost)
            for (route, group), answer in zip(page, answers):
                if isinstance(answer, Exception) and len(group) > 1:  # the whole call refused: none ran
                    for i, key, body, *_ in group:
                        results[i] = self._refused(answer, route, key, body)
                    continue
                for (i, key, body, at, *_), reply in zip(group, [answer] if len(group) == 1 else answer):
                    if type(reply) is str:  # ocean_write_many's refusal of one drop: its error's text
                        reply = redis.ResponseError(reply)
                    if isinstance(reply, Exception):
                        results[i] = self._refused(reply, route, key, body)
                    else:
                        results[i] = self._receipt(route, key, replies.written(reply, at))
        if self._replica_wait_ms and by_route:  # --fsync always: a replica has them, or they say it may not
            written = {route for route, group in by_route.items() if any(type(results[d[0]]) is dict for d in group)}
            missing, why = durability.unconfirmed(self, written, self._replica_wait_ms)
            for route in missing:
                for i, *_ in by_route[route]:
                    if type(results[i]) is dict:
                        results[i] = NotReplicated(why)
        return results

    def _receipt(self, route, key, written) -> dict:
        seq, ms, stream_id, _, at = written
        return {"drop_id": layout.drop_id(route, stream_id), "seq": seq, "route": route, "key": key,
                "created_at": iso_ms(at if at is not None else ms)}

    def _write(self, kind, route, key, body, incs, expires_in, source, at=None):
        """One ``ocean_write`` call; returns ``(seq, ms, stream id, totals, own time or None)``."""
        args = self._args(kind, route, key, body, incs, expires_in, source, at)
        self._register(route)
        out = replies.written(self._fcall("ocean_write", route, args, body=body, key=key), at)
        if self._replica_wait_ms:  # --fsync always (durability.py)
            durability.wait_for_replica(self, route, self._replica_wait_ms)
        return out

    def _args(self, kind, route, key, body, incs, expires_in, source, at) -> list:
        """``ocean_write``'s arguments (layout in ``ocean.lua``); the payload's JSON and size checks."""
        if self._closed:
            raise EngineClosed("the engine is closed")
        args = [kind, route, key or "", source or "", expires_in, self.settings.history_limit,
                self.settings.event_retention, self.settings.replay_history, "" if at is None else at]
        try:
            text = "null" if body is None else _dumps(body)  # an incr's (a /drop of increments: no JSON to make)
            if kind in (ops.SAVE, ops.UPDATE):
                args += [text, len(body)]
                for name, value in body.items():
                    args += [name, _dumps(value), replies.number_text(value)]
            else:
                args += [text, 0]
        except (TypeError, ValueError) as exc:
            raise InvalidPayload(f"payload is not JSON data: {exc}") from None
        except RecursionError:
            raise InvalidPayload("payload is nested too deeply") from None
        size = len(text.encode())
        adds = None
        if incs and ops.has_adds(incs):
            incs, adds = ops.split_adds(incs)
        if incs:
            for name, amount in incs.items():
                args += [name, layout.amount_text(amount)]
                size += len(name) + 24
        if adds:
            size += sketches.add_args(adds, args)
        if size > self.settings.max_payload_bytes:
            raise PayloadTooLarge(f"payload is over the {self.settings.max_payload_bytes}-byte limit "
                                  f"(setting max_payload_bytes)")
        return args

    def _register(self, route: str) -> None:
        """Add the route to the registry once per process, before its first write (see ``routes``);
        every node's live reader finds it there (``live.Hub``)."""
        if route not in self._registered:
            self._redis(self.client.sadd, layout.ROUTES, route)
            self._registered.add(route)

    # -- reads -------------------------------------------------------------
    def get(self, route: str, key: str) -> dict:
        """The entity record; NotFound when absent."""
        key = self.expand_key(key)
        rec = self.entity(route, key)
        if rec is None:
            raise NotFound(f"{route} @{key} not found")
        return rec

    def entity(self, route: str, key: str) -> dict | None:
        """The entity record ``{route, key, payload, created_at, updated_at, version}``, or None."""
        check_route(route)
        key = check_key(self.expand_key(key))
        reply = self._fcall("ocean_get", route, [route, key], read=True)
        return None if not reply else replies.record(route, reply)

    def list(self, route: str, limit: int | None = None, after: str | None = None) -> list[dict]:
        """A route's entities in key order, those with keys after ``after``, at most ``limit``."""
        check_route(route)
        limit = self.settings.list_limit if limit is None else max(0, int(limit))
        if limit == 0:
            return []
        out, cursor = [], after or ""
        while len(out) < limit:  # bounded: each call moves the cursor past the keys it looked at
            page, cursor = self._fcall("ocean_list", route, [route, cursor, limit - len(out)], read=True)
            out += [replies.record(route, r) for r in page]
            if not cursor:
                break
        return out

    def route_entities(self, route: str):
        """``(key, record)`` for every live entity of a route, in key order (read in pages)."""
        check_route(route)
        cursor = ""
        while True:
            page, more = self._fcall("ocean_list", route, [route, cursor, PAGE], read=True)
            for r in page:
                yield r[0], replies.record(route, r)
            if len(page) < PAGE and not more:
                return
            cursor = more or page[-1][0]

    def sweep(self) -> dict:
        """Delete expired entities and leading expired events of every route now; returns
        ``{route: [removed keys]}``. Reads and writes treat expired data as gone already: this frees it."""
        out = {}
        for route in sorted(self._redis(self.client.smembers, layout.ROUTES)):
            cursor = ""
            while True:
                removed, cursor = self._fcall("ocean_sweep", route, [route, cursor])
                if removed:
                    out.setdefault(route, []).extend(removed)
                if not cursor:
                    break
        return out

    def history(self, route: str, key: str, limit: int = 100) -> list[dict]:
        """Past versions of an entity, newest first (saves, updates and removal)."""
        check_route(route)
        key = check_key(self.expand_key(key))
        if not limit:
            return []
        n = max(0, int(limit))
        entries = self._redis(self.client.lrange, layout.history(route, key), 0, n - 1 if n else -1)
        out = []
        for text in entries:
            version, seq, ms, op, payload = json.loads(text)
            out.append({"version": version, "seq": seq, "op": op, "payload": payload, "updated_at": iso_ms(ms),
                        "drop_id": layout.drop_id(route, f"{seq}-{ms}")})
        return out

    def events(self, route: str, limit: int = 100, before: int | None = None) -> list[dict]:
        """A route's events, newest first; ``before`` is a seq (exclusive) for the next page."""
        check_route(route)
        limit, out, now = max(0, int(limit)), [], self._now()
        end = "+" if before is None else f"{int(before) - 1}"
        if limit == 0 or (before is not None and int(before) <= 1):
            return []
        for _ in range(10000):  # bounded: each page moves ``end`` back (expired events are skipped)
            page = self._redis(self.client.xrevrange, layout.events(route), end, "-", count=min(PAGE, limit + 16))
            for sid, fields in page:
                ev = replies.event(route, sid, fields, now)
                if ev is not None:
                    out.append(ev)
                    if len(out) >= limit:
                        return out
            if len(page) < min(PAGE, limit + 16):
                return out
            end = f"({page[-1][0]}"
        return out

    def route_events(self, route: str):
        """Every live event of a route, oldest first (read in pages)."""
        check_route(route)
        start, now = "-", self._now()
        while True:
            page = self._redis(self.client.xrange, layout.events(route), start, "+", count=PAGE)
            for sid, fields in page:
                ev = replies.event(route, sid, fields, now)
                if ev is not None:
                    yield ev
            if len(page) < PAGE:
                return
            start = f"({page[-1][0]}"

    def routes(self) -> list[str]:
        """Every route that holds entities or events now."""
        names = sorted(self._redis(self.client.smembers, layout.ROUTES))
        if not names:
            return []
        pipe = self.client.pipeline(transaction=False)
        for route in names:
            pipe.zcard(layout.keys(route))
            pipe.xlen(layout.events(route))
        sizes = self._redis(pipe.execute)
        return [r for i, r in enumerate(names) if sizes[2 * i] or sizes[2 * i + 1]]

    # -- figures (/health, /metrics, the SQL column cache's size hint) -------------
    def route_size(self, route: str) -> int:
        """Entities + events a route holds now: a size hint, as ``Engine.route_size``. A SQL table's
        build asks this first, so the live reader takes the route's position here (``Hub.note_table``)."""
        if self._hub is not None and self._hub.listeners:
            self._hub.note_table(route)
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(layout.keys(route))
        pipe.xlen(layout.events(route))
        return sum(self._redis(pipe.execute))

    def _sizes(self) -> list[tuple[str, int, int]]:
        """``(route, events, entities)`` of every route, counted at most once a second (one pipeline)."""
        now = time.monotonic()
        if self._sized is not None and self._sized[0] > now - 1.0:
            return self._sized[1]
        names = sorted(self._redis(self.client.smembers, layout.ROUTES))
        pipe = self.client.pipeline(transaction=False)
        for route in names:
            pipe.xlen(layout.events(route))
            pipe.zcard(layout.keys(route))
        counts = self._redis(pipe.execute) if names else []
        sizes = [(r, counts[2 * i], counts[2 * i + 1]) for i, r in enumerate(names)]
        self._sized = (now, sizes)
        return sizes

    def largest_routes(self, n: int = 10) -> list[tuple[str, int, int]]:
        """The ``n`` routes holding the most events + entities: ``(route, events, entities)``."""
        return heapq.nlargest(n, self._sizes(), key=lambda x: (x[1] + x[2], x[0]))

    def stats(self) -> dict:
        """Figures for /health and /metrics (the embedded engine's names where they mean the same)."""
        sizes = self._sizes()
        return {"entities": sum(s[2] for s in sizes), "events": sum(s[1] for s in sizes),
                "routes": sum(1 for s in sizes if s[1] or s[2]), "uptime_s": round(time.time() - self.started, 3),
                "store": "redis-cluster" if self.is_cluster else "redis", "functions_version": self.functions_version}

    def health(self) -> dict:
        """Whether every Redis master answers: ``{ok, masters: [{address, ok, error?}]}`` (for /health)."""
        import redis
        nodes = self.client.get_primaries() if self.is_cluster else [None]
        out = []
        for node in nodes:
            address = f"{node.host}:{node.port}" if node is not None else self.url
            try:
                if node is not None:
                    self.client.ping(target_nodes=node)
                else:
                    self.client.ping()
                out.append({"address": address, "ok": True})
            except redis.RedisError as exc:
                out.append({"address": address, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]})
        found = plan = None
        try:  # what each master does for --fsync now (docs/scale-out.md); the wait mode stays the start's
            found = durability.inspect(self.client, self.is_cluster, self.url)
            plan = durability.plan(self.settings.fsync, found)
        except redis.RedisError:
            pass
        dur = {"fsync": self.settings.fsync, "mode": self.durability["mode"],
               "replica_wait_ms": self._replica_wait_ms or None,
               "masters": found, "warnings": plan["warnings"] if plan else None}
        return {"ok": all(m["ok"] for m in out), "masters": out, "durability": dur}

    # -- live: the route's change stream ------------------------------------
    def changes(self, route: str, after: str | None = None, limit: int = 1000) -> tuple[bool, list[dict]]:
        """The messages of ``route`` after the live id ``after`` (what a resuming client missed).

        Returns ``(gap, messages)``, oldest first. ``gap`` is False when the entry ``after`` names is
        still in the stream, written in the same epoch: the messages are exactly the ones after it.
        Otherwise it is True -- the entry was trimmed (the client was away too long), or lost in a
        failover (its seq was handed out again, in a new epoch) -- and the messages are every one
        the client cannot have seen: walking back from the newest, all up to the last entry of the
        client's epoch at or below its seq (which it did see). With none of its epoch left, that is
        the whole stream: a few repeats, never a skip. ``after=None``: the newest ``limit``, no gap.
        """
        check_route(route)
        name, limit = layout.changes(route), max(0, int(limit))
        if after is None:
            newest = self._redis(self.client.xrevrange, name, count=limit)
            return False, [replies.message(route, i, f) for i, f in reversed(newest)]
        try:
            seq, ms, epoch = layout.split_live_id(after)
        except ValueError:
            raise InvalidParameter(f"{after[:80]!r} is not a live message id of this store") from None
        stream_id = f"{seq}-{ms}"
        found = self._redis(self.client.xrange, name, stream_id, stream_id, count=1)
        if found and found[0][1].get("e") == epoch:
            page = self._redis(self.client.xrange, name, f"({stream_id}", "+", count=limit)
            return False, [replies.message(route, i, f) for i, f in page]
        out, end = [], "+"
        for _ in range(100000):  # bounded: each page moves ``end`` back
            page = self._redis(self.client.xrevrange, name, end, "-", count=PAGE)
            for sid, fields in page:
                if fields.get("e") == epoch and layout.split_id(sid)[0] <= seq:
                    return True, out[::-1][:limit]
                out.append(replies.message(route, sid, fields))
            if len(page) < PAGE:
                break
            end = f"({page[-1][0]}"
        return True, out[::-1][:limit]

    def changes_from_start(self, route: str, limit: int = 1000) -> tuple[bool, list[dict]]:
        """The oldest ``limit`` messages of a route; a gap when its first writes were trimmed away."""
        page = self._redis(self.client.xrange, layout.changes(route), "-", "+", count=max(1, int(limit)))
        msgs = [replies.message(route, i, f) for i, f in page]
        return bool(msgs) and msgs[0]["seq"] != 1, msgs

    def newest(self, routes: list, n: int) -> list[list[dict]]:
        """The newest ``n`` messages of each route, oldest first: one pipelined round trip per master
        (an SSE connect to ``site/*`` reads every route under it)."""
        if not routes or n <= 0:
            return [[] for _ in routes]
        pipe = self.client.pipeline(transaction=False)
        for route in routes:
            pipe.xrevrange(layout.changes(route), count=n)
        pages = self._redis(pipe.execute)
        return [[replies.message(r, i, f) for i, f in reversed(page)] for r, page in zip(routes, pages)]

    def tail(self, route: str) -> str:
        """The live id of the route's newest change ("" when none)."""
        newest = self._redis(self.client.xrevrange, layout.changes(route), count=1)
        return replies.message(route, *newest[0])["id"] if newest else ""

    def all_routes(self) -> list[str]:
        """Every route in the registry (empty ones included): what the live reader watches."""
        return sorted(self._redis(self.client.smembers, layout.ROUTES))

    def _live(self):
        if self._hub is None:
            from .live import Hub
            self._hub = Hub(self)
        return self._hub

    def subscribe(self, prefix: str, after_seq=None, last: int | None = None, maxsize: int | None = None):
        """Watch ``prefix`` across every node (``live.Hub``). ``after_seq`` is an SSE id of this mode
        (opaque: a position per route); the subscription has the interface ``web/sse.py`` reads."""
        from ..model import check_prefix
        check_prefix(prefix)
        if self._closed:
            raise EngineClosed("the engine is closed")
        after = None if after_seq is None else str(after_seq)
        return self._live().subscribe(prefix, after, last, maxsize or self.settings.subscriber_queue)

    def recent(self, prefix: str, n: int) -> list:
        """The last ``n`` drops under ``prefix`` from the change streams, oldest first."""
        from ..model import check_prefix
        check_prefix(prefix)
        return self._live().recent(prefix, max(0, int(n)))

    def publish(self, route: str, data: dict):
        """A message for this worker's subscribers only, not stored (``_admin/events`` per request):
        shipping every request's event through Redis would cost a write per request."""
        hub = self._hub
        if hub is None or not hub.subs:
            return None
        from .live import LiveMessage
        self._published += 1  # a seq of this worker's own: its subscribers' positions keep moving
        n, ms = self._published, self.now_ms()
        msg = LiveMessage(route, {"seq": n, "key": None, "op": "event", "data": data, "at": ms,
                                  "epoch": "local", "id": f"{n}-{ms}.local"})
        from ..model import prefix_matches
        for sub in list(hub.subs):
            if prefix_matches(sub.prefix, route):
                sub.push(msg)
        return msg

    def add_listener(self, listener) -> None:
        """Be told of every change on any node (the SQL columns), fed by the live reader."""
        self._live().add_listener(listener)

    def catch_up(self) -> None:
        """Hand on what every node wrote up to now (before a SQL query: it reads its own writes)."""
        hub = self._hub
        if hub is not None and hub.listeners:
            hub.catch_up_all()

    # -- what only the embedded store has --------------------------------------
    per_route_seq = True  # /health shows no server-wide seq; SSE ids are opaque strings
    store = None  # no local store: /health's snapshot figures are empty
    last_backup = None
    backup_dir = None
    seq = (1 << 63) - 1  # no server-wide seq: an export's "up to now" is everything (per route seq)

    def backup(self, dest=None):
        raise NotSupported("backups of a Redis store are Redis's own: use its persistence (AOF/RDB, "
                         "BGSAVE on each master) and its replicas; ocean backup is for the embedded store")

    # -- bookkeeping ---------------------------------------------------------
    def expand_key(self, key):
        """``key`` with its placeholders expanded, as ``Engine.expand_key``."""
        if type(key) is str and ("{" in key or "}" in key):
            return timekeys.expand(key, self.now_ms(), self.settings.timezone)
        return key

    def _now(self) -> int:
        return time.time_ns() // 1_000_000

    def close(self) -> None:
        """Close the connections (the data stays in Redis)."""
        if not self._closed:
            self._closed = True
            if self._hub is not None:
                self._hub.stop()
                for sub in list(self._hub.subs):
                    sub.close()
            self.direct.close()
            self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- talking to Redis ------------------------------------------------------
    def _redis(self, call, *args, **kw):
        """Run one redis-py call; Redis being unreachable or down becomes StorageError (503)."""
        import redis
        try:
            return call(*args, **kw)
        except redis.RedisError as exc:
            refresh_topology(self.client, exc)
            raise translate(exc) from None

    def _fcall(self, name: str, route: str, args: list, *, read=False, body=None, key=None):
        import redis
        meta = layout.meta(route)
        try:
            return self.direct.call(meta, "FCALL_RO" if read else "FCALL", name, 1, meta, *args)
        except redis.RedisError as exc:  # the topology is refreshed already where it helps (``Direct``)
            raise self._refused(exc, route, key, body) from None

    @staticmethod
    def _refused(exc, route, key, body) -> OceanError:
        """The ocean error for a failed call: ocean's own ``OCEAN ...`` replies, or Redis's trouble."""
        text = str(exc)
        if text.startswith("OCEAN "):
            return replies.ocean_error(text, route, key, body)
        return translate(exc)
