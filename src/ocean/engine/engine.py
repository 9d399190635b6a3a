"""``Engine``: entities, counters, events and live drops -- the embedded engine, no HTTP.

Every write goes the same way: validate (pure, before any lock) -> under the
write lock take the next ``seq`` and the clock, let the store log and apply
the op, publish it on the bus -> outside the lock wait for fsync when the
policy is ``always`` (group commit), then tell listeners (the SQL columns).
Reads take no engine lock: they read immutable records and the counter
table's own shard locks.
"""
from __future__ import annotations

import bisect
import heapq
import logging
import threading
import time

from ..errors import EngineClosed, InvalidAmount, InvalidPayload, NotFound, OceanError
from ..kernels import core
from ..model import (check_field, check_increments, check_key, check_prefix, check_route, check_sketch_values, drop_id,
                     iso_ms, now_ms, split_increments)
from .. import timekeys
from ..settings import Settings
from . import ops
from .backup import default_dir as default_backup_dir
from .bus import Bus, Message
from .store import LocalStore

log = logging.getLogger("ocean.engine")


class Engine:
    """The embedded engine over one data directory (see the module docstring).

    Args:
        path: the data directory (created if missing; one engine owns it).
        fsync: ``"always"``, ``"everysec"`` (default) or ``"no"``; overrides ``settings.fsync``.
        settings: an ``ocean.settings.Settings``; defaults from the environment.
        offload: runs a blocking call (fsync, snapshot writing) off the event loop;
            the gevent server passes its threadpool's ``apply``. Default: call inline.
        maintenance: run the once-a-second flusher/snapshot/expiry thread (default True).
        fork_snapshots: write snapshots and backups from a forked child (``bgsave.py``)
            instead of in this process; the server turns it on (its event loop never waits).
    """

    def __init__(self, path: str, fsync: str | None = None, settings: Settings | None = None,
                 *, offload=None, maintenance: bool = True, fork_snapshots: bool = False):
        core()  # fail now, with the build hint, if the compiled core is missing
        self.settings = (settings or Settings.load()).with_(**({"fsync": fsync} if fsync else {}))
        timekeys.check_timezone(self.settings.timezone)  # also when Settings(...) was built directly
        self.path = path
        self.store = LocalStore(path, self.settings, offload=offload, fork=fork_snapshots)
        self.state = self.store.state
        self._lock = core().WriteLock()  # held briefly; see _writer.pxi for how it waits
        self._listeners: list = []
        self._largest = None  # (when, n, routes) of largest_routes
        self.started = time.time()
        # The wall clock of key placeholders ({day}...) and SQL now(): epoch ms; tests may fix it.
        self.now_ms = now_ms
        seq = self.store.open()
        self.instance = self.store.meta["instance"]
        self.bus = Bus(self.settings.replay_history, self.settings.subscriber_queue, start_seq=seq,
                       ring_bytes=self.settings.replay_history_bytes, user_seq=self.store.user_seq)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._snapshot_every = self.settings.snapshot_every or float("inf")
        # The seq, the clock and the compiled increment path (see _writer.pxi).
        self._writer = w = core().Writer(seq, self.instance)
        user_ring = self.bus.user
        self.store.follow_seq(lambda: w.seq, lambda: user_ring.last)
        w.max_bytes = self.settings.max_payload_bytes
        w.snapshot_every = self.settings.snapshot_every or 1 << 62
        w.sync_always = self.settings.fsync == "always"
        w.lease, w.extend_lease = self.store.lease, self.store.extend_lease
        w.attach(self.state.counters, self.state.entities, self.store.wal.log, self.bus.user,
                 self.bus.system, self.bus, self.bus._by_prefix, self._lock, self._incr_python,
                 self._after_incr, self._listeners)
        # PERF: callers reach the compiled method directly, without a Python frame in between
        # (~0.1 us of a ~0.5 us call). ``Engine.incr`` below documents it.
        w.attach_sketches(self.state.sketches)
        self.incr = w.incr
        self._sketch_adds = w.adds  # uniq/observe's compiled common case (tests swap it out)
        self.publish = w.publish
        self._maintainer = None
        if maintenance:
            self._maintainer = threading.Thread(target=self._maintain_loop, name="ocean-maintenance", daemon=True)
            self._maintainer.start()

    # -- writes ------------------------------------------------------------
    def save(self, route: str, payload, key: str | None = None, keep=None, source: str | None = None) -> dict:
        """Write a drop: an event (no key) or an entity's new plain fields (with a key)."""
        kind, key, body, incs, expires_in = prepare_save(route, payload, key, keep, self.expand_key)
        seq, ms, _ = self._write(kind, route, key, body, incs, expires_in, source)
        return {"drop_id": self.drop_id(seq), "seq": seq, "route": route, "key": key, "created_at": iso_ms(ms)}

    def update(self, route: str, key: str, fields: dict, source: str | None = None) -> dict:
        """Merge ``fields`` into an entity (created if missing); ``"+f": n`` entries increment."""
        key, plain, incs = prepare_update(route, key, fields, self.expand_key)
        self._write(ops.UPDATE, route, key, plain, incs, 0, source)
        return self.get(route, key)

    def incr(self, route: str, key: str, amounts: dict, source: str | None = None) -> dict:
        """Increment fields of one entity atomically; returns ``{field: new value}``.

        Each engine replaces this with its compiled ``Writer.incr``, which takes the
        common case (an entity of counters, existing or new on a route that has entities)
        itself and everything else here.
        """
        return self._writer.incr(route, key, amounts, source)

    def _incr_python(self, route: str, key: str, amounts: dict, source: str | None = None) -> dict:
        """``incr`` in Python: a route's first entity, placeholder keys, fields becoming counters, every error."""
        if timekeys.has_placeholder(key):  # never an entity's key, so never the compiled path's
            return self._writer.incr(route, self.expand_key(key), amounts, source)
        check_route(route)
        check_key(key)
        if not amounts:
            raise InvalidAmount("incr needs at least one field")
        incs = check_increments(amounts)
        return self._write(ops.INCR, route, key, None, incs, 0, source)[2]

    def uniq(self, route: str, key: str, values: dict, source: str | None = None) -> dict:
        """Add values to uniq (distinct-count) fields atomically: ``{field: value or [values]}``;
        returns ``{field: new estimate}``. A payload's ``"~field"`` entries do the same."""
        out = self._sketch_adds("~", route, key, values, source)  # the compiled path's common case
        return out if out is not None else self._add_to_sketches("~", route, key, values, source)

    def observe(self, route: str, key: str, values: dict, source: str | None = None) -> dict:
        """Add numbers to dist (distribution) fields atomically: ``{field: number or [numbers]}``;
        returns ``{field: new summary}``. A payload's ``"%field"`` entries do the same."""
        out = self._sketch_adds("%", route, key, values, source)
        return out if out is not None else self._add_to_sketches("%", route, key, values, source)

    def _add_to_sketches(self, prefix: str, route: str, key: str, values: dict, source) -> dict:
        check_route(route)
        key = check_key(self.expand_key(key))
        if type(values) is not dict or not values:
            raise InvalidAmount(f"{'uniq' if prefix == '~' else 'observe'} needs at least one field and its values")
        incs = {prefix + check_field(name): check_sketch_values(prefix, v, name) for name, v in values.items()}
        return self._write(ops.INCR, route, key, None, incs, 0, source)[2]

    def remove(self, route: str, key: str, source: str | None = None) -> dict:
        """Delete an entity with its counters; NotFound if absent."""
        check_route(route)
        key = check_key(self.expand_key(key))
        if self.state.live_entity(route, key, self._now()) is None:
            raise NotFound(f"{route} @{key} does not exist")
        self._write(ops.REMOVE, route, key, None, None, 0, source)
        return {"removed": True}

    def drop(self, route: str, payload, key: str | None = None, keep=None, source: str | None = None) -> dict:
        """One drop as ``POST /drop`` takes it; returns ``{drop_id, seq, route, key, created_at}``.

        No key: an event. With a key: a payload holding ``"+f": n`` entries increments
        those counters, ``"~f"``/``"%f"`` entries add to uniq/dist fields, and its plain
        entries are merged, all in one atomic write; otherwise it is a ``save``.
        """
        out = self.drop_many([{"route": route, "key": key, "payload": payload, "keep": keep}], source)[0]
        if isinstance(out, OceanError):
            raise out
        return out

    def drop_many(self, drops: list, source: str | None = None, times: list | None = None,
                  parsed: bool = False) -> list:
        """Many drops, in order, each atomic on its own; the batch is not a transaction.

        ``parsed``: the drops came from a JSON parser (``POST /drop``), so their payloads hold
        only JSON's types and are logged by the faster encoder (``ops.encode_parsed``).

        ``times`` (``POST /import``), beside ``drops``, gives an event its own time (epoch ms,
        its ``created_at``) instead of the clock's; ``None`` entries, and keyed drops, take the
        clock's. The clock still decides expiry and retention (see ``ops.event_ms``).

        Returns one receipt (as ``drop``) or one ``OceanError`` per drop, in order. Runs of
        increments to counter entities (existing ones, and new ones on a route that has entities)
        go through the compiled path under one lock;
        the drops between them go through ``_drop_run`` (one lock, one log write). Under
        ``always`` the batch waits for one fsync at the end.
        PERF: bench/bench_engine.py::test_drop_many_1000.
        """
        drops = drops if type(drops) is list else list(drops)
        results: list = [None] * len(drops)
        i, total, ticket, fast = 0, len(drops), 0, []
        while i < total:
            start = i
            i, t, taken = self._writer.drop_many(drops, i, results, source)
            if taken:
                ticket = max(ticket, t)
                fast.append((start, i))
            if i < total:
                i, t = self._drop_run(drops, i, results, source, times, parsed)
                ticket = max(ticket, t)
        self.store.sync(ticket)
        self._wake_if_due()
        if fast and self._listeners:  # the compiled path's writes, told once per entity
            changed = {(r["route"], r["key"]) for start, end in fast for r in results[start:end] if type(r) is dict}
            for route, key in changed:
                self._notify(ops.INCR, route, key, 0, 0, None, 0, None)
        return results

    def _drop_run(self, drops: list, start: int, results: list, source, times=None,
                  parsed: bool = False) -> tuple[int, int]:
        """Write ``drops[start]`` and the drops after it that the compiled path would not take
        (``_run_end``), under one lock and one log write; returns ``(next index, ticket)``.

        PERF: receipts and messages are made by the compiled ``Writer.publish_run``; the
        figures are bench_drops's ``drops-post-1000`` group.
        """
        end = self._run_end(drops, start)
        expand = self.expand_key
        prepared = []
        for item in drops[start:end]:
            try:
                prepared.append(prepare_drop(item, expand))
            except OceanError as exc:
                prepared.append(exc)
        written = []
        with self._lock:
            self._check_open()
            batch, where = [], []
            ms = self._clock()  # one time for the run: its drops are written together
            created_at = iso_ms(ms)
            for i, p in enumerate(prepared, start):
                if type(p) is not tuple:
                    results[i] = p
                    continue
                kind, route, key, body, incs, expires_in = p
                if times is not None and kind == ops.EVENT and type(times[i]) is int:
                    incs = times[i]  # an event's own time rides in its unused incs slot (ops.py)
                batch.append([kind, 0, ms, route, key, body, incs, ms + expires_in if expires_in else 0, source])
                where.append(i)
            first = self._writer.seq + 1
            outcomes, ticket = self.store.write_many(batch, self.settings.max_payload_bytes, first, parsed)
            self._writer.publish_run(where, batch, outcomes, results, ms, created_at, ops.NAMES, written)
            for op in reversed(batch):  # the last logged op (refused ones hold seq 0) holds the newest seq
                if op[1]:
                    self._writer.seq = max(self._writer.seq, op[1])
                    break
            trimmed = self._take_trimmed()
        self._after_write(None, written, trimmed)
        return end, ticket

    def _run_end(self, drops: list, start: int) -> int:
        """Where the run that ``_drop_run`` writes from ``start`` ends: at the next drop the compiled
        path takes -- an increment to an entity that exists, or ``"+f"`` increments making a new
        entity on a route that has entities (``Writer._creatable``) -- or the batch's end.

        PERF: a drop the compiled path then refuses (a bad amount, say) makes a run of one
        (a run costs a lock, a clock read and a log write), so the test is close to its.
        """
        end, total, routes = start + 1, len(drops), self.state.entities.routes
        makes = self._writer.makes_entities  # the pure twin's writer takes no drop at all
        while end < total:
            item = drops[end]
            if type(item) is dict and len(item) == 3 and _looks_like_increment(item):  # PERF: an event has 2
                route, key = item.get("route"), item["key"]
                table = routes.get(route) if type(route) is str else None
                if table is not None and type(key) is str and (
                        key in table or (makes and _makes_counters(key, item["payload"]))):
                    break
            end += 1
        return end

    def publish(self, route: str, data: dict) -> Message:
        """Put a message on the bus only (not stored), e.g. ``_admin/events``.

        Each engine replaces this with its compiled ``Writer.publish`` (as ``incr``).
        """
        return self._writer.publish(route, data)

    def _write(self, kind, route, key, body, incs, expires_in, source):
        with self._lock:
            self._check_open()
            seq = self._writer.seq + 1
            ms = self._clock()
            op = [kind, seq, ms, route, key, body, incs, ms + expires_in if expires_in else 0, source]
            try:
                out, published, ticket, size = self.store.write(op, self.settings.max_payload_bytes)
            except OceanError as exc:
                if getattr(exc, "logged", False):
                    self._writer.seq = seq  # logged, then refused by apply: seq spent
                raise
            self._writer.seq = seq
            self.bus.publish(Message(seq, route, key, ops.NAMES[kind], published, ms, self.instance, size))
            trimmed = self._take_trimmed()
        self._after_write(ticket, (op,), trimmed)
        return seq, ms, out

    def _wake_if_due(self) -> None:
        """Wake the maintainer when a snapshot is due (now, not at its next tick)."""
        if self.store.since_snapshot >= self._snapshot_every and not self._wake.is_set():
            self._wake.set()

    def _after_incr(self, route, key, ticket) -> None:
        """``_after_write`` for the compiled increment path."""
        self.store.sync(ticket)
        self._wake_if_due()
        if self._listeners:
            self._notify(ops.INCR, route, key, 0, 0, None, 0, None)

    def _after_write(self, ticket, written, trimmed) -> None:
        """Outside the lock: wait for fsync (policy ``always``; ``None``: the caller waits), wake a
        due snapshot, tell listeners."""
        if ticket is not None:
            self.store.sync(ticket)
        self._wake_if_due()
        if self._listeners:
            for op in written:
                self._notify(op[0], op[3], op[4], op[1], ops.event_ms(op) if op[0] == ops.EVENT else op[2],
                             op[5], op[7], op[8])
            self._notify_trimmed(trimmed)

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
        ent = self.state.live_entity(route, key, self._now())
        return None if ent is None else self._record(route, key, ent)

    def _record(self, route, key, ent) -> dict:
        return {"route": route, "key": key, "payload": self.state.payload(ent, route, key),
                "created_at": iso_ms(ent.created_ms), "updated_at": iso_ms(ent.updated_ms),
                "version": ent.version}

    def list(self, route: str, limit: int | None = None, after: str | None = None) -> list[dict]:
        """A route's entities in key order, those with keys after ``after``, at most ``limit``."""
        check_route(route)
        limit = self.settings.list_limit if limit is None else max(0, int(limit))
        keys = self.state.entities.sorted_keys(route)
        start = 0
        if after is not None:
            start = bisect.bisect_right(keys, after)
        out, now = [], self._now()
        for key in keys[start:]:
            if len(out) >= limit:
                break
            ent = self.state.live_entity(route, key, now)
            if ent is not None:
                out.append(self._record(route, key, ent))
        return out

    def route_entities(self, route: str):
        """``(key, record)`` for every live entity of a route, in key order."""
        check_route(route)
        now = self._now()
        for key in list(self.state.entities.sorted_keys(route)):
            ent = self.state.live_entity(route, key, now)
            if ent is not None:
                yield key, self._record(route, key, ent)

    def entity_sketches(self, route: str, key: str) -> dict:
        """``{field: sketch}`` of an entity's uniq and dist fields (empty when none), for merging
        over rows (SQL ``uniq_merge``/``quantile_merge``, Drops ``uniq F``). The sketches are the live
        ones: read them (``merge`` them into a copy), never change them."""
        held = self.state.sketches.get(route, key)
        return dict(held) if held else {}

    def route_has_sketches(self, route: str) -> bool:
        """True when some entity of ``route`` holds a uniq or dist field (a cheap test before a scan)."""
        return route in self.state.sketches.routes

    def history(self, route: str, key: str, limit: int = 100) -> list[dict]:
        """Past versions of an entity, newest first (saves, updates and removal)."""
        check_route(route)
        key = check_key(self.expand_key(key))
        entries = list(self.state.entities.history.get((route, key), ()))
        out = []
        for version, seq, ms, op, payload in reversed(entries[-max(0, int(limit)):] if limit else []):
            out.append({"version": version, "seq": seq, "op": op, "payload": payload,
                        "updated_at": iso_ms(ms), "drop_id": self.drop_id(seq)})
        return out

    def events(self, route: str, limit: int = 100, before: int | None = None) -> list[dict]:
        """A route's events, newest first; ``before`` is a seq (exclusive) for the next page."""
        check_route(route)
        log_ = self.state.events.get(route)
        if log_ is None:
            return []
        return [self._event(route, e) for e in log_.newest(max(0, int(limit)), before, self._now())]

    def route_events(self, route: str):
        """Every live event of a route, oldest first."""
        check_route(route)
        log_ = self.state.events.get(route)
        if log_ is None:
            return iter(())
        # PERF: no copy of the route's events: the log's view (events.py) is the route as it is now,
        # however long the reader takes; chunks are decoded a page at a time as it reads.
        now = self._now()
        return (self._event(route, e) for e in log_.live(now))

    def route_event_view(self, route: str):
        """``(view, now_ms)``: the route's event log at this moment (events.py ``View``: its sealed
        chunks, immutable, and its open tail; None when the route holds no events) and the time
        that decides which of its rows have expired. For readers that keep the chunks themselves
        between reads instead of a copy of their rows (sql/columns.py)."""
        check_route(route)
        log_ = self.state.events.get(route)
        return (None if log_ is None else log_.view()), self._now()

    def _event(self, route, e) -> dict:
        seq, ms, payload, expires, source = e
        return {"drop_id": self.drop_id(seq), "seq": seq, "route": route, "payload": payload,
                "created_at": iso_ms(ms), "source": source}

    def event_bytes(self) -> int:
        """Bytes of every route's sealed event columns (the open tails are Python rows): for /metrics."""
        return sum(log_.nbytes() for log_ in list(self.state.events.values()))

    def route_size(self, route: str) -> int:
        """Entities + events a route holds now (expired ones not yet swept included): a size hint."""
        log_ = self.state.events.get(route)
        return (len(log_) if log_ is not None else 0) + len(self.state.entities.routes.get(route, ()))

    def routes(self) -> list[str]:
        """Every route that holds entities or events."""
        names = set(self.state.entities.routes)
        names.update(r for r, log_ in self.state.events.items() if len(log_))
        return sorted(names)

    # -- live --------------------------------------------------------------
    def subscribe(self, prefix: str, after_seq: int | None = None, last: int | None = None,
                  maxsize: int | None = None):
        """Watch ``prefix`` (a route, ``a/*`` or ``*``); see ``bus.Subscription``."""
        check_prefix(prefix)
        with self._lock:  # no write lands between the backlog and going live
            return self.bus.subscribe(prefix, after_seq=after_seq, last=last, maxsize=maxsize)

    def recent(self, prefix: str, n: int) -> list[Message]:
        """The last ``n`` drops under ``prefix`` still in the replay ring, oldest first."""
        check_prefix(prefix)
        return self.bus.recent(prefix, max(0, int(n)))

    def add_listener(self, listener) -> None:
        """Be told of every change (``entity_changed``/``entity_removed``/``event_added``/``events_removed``)."""
        self._listeners.append(listener)

    def _take_trimmed(self) -> list:
        """Events that retention dropped during this write (called under the write lock)."""
        if not self.state.trimmed:
            return []
        out, self.state.trimmed = self.state.trimmed, []
        return out if self._listeners else []

    def _notify_trimmed(self, trimmed: list) -> None:
        for route, seqs in trimmed:
            for listener in self._listeners:
                try:
                    listener.events_removed(route, seqs)
                except Exception:
                    log.exception("ocean: listener %r failed", listener)

    def _notify(self, kind, route, key, seq, ms, body, expires, source):
        for listener in self._listeners:
            try:
                if kind == ops.EVENT:
                    listener.event_added(route, self._event(route, (seq, ms, body, expires, source)))
                elif kind == ops.REMOVE:
                    listener.entity_removed(route, key)
                else:
                    listener.entity_changed(route, key)
            except Exception:  # a listener must never fail a write that is already done
                log.exception("ocean: listener %r failed", listener)

    # -- bookkeeping ---------------------------------------------------------
    @property
    def seq(self) -> int:
        """The newest seq handed out."""
        return self._writer.seq

    def drop_id(self, seq: int) -> str:
        """The drop id of ``seq`` (see ``model.drop_id``)."""
        return drop_id(self.instance, seq)

    def _clock(self) -> int:
        """Milliseconds, never going backwards (op times decide expiry on replay too)."""
        return self._writer.clock()

    def expand_key(self, key):
        """``key`` with its placeholders (``{day}``, ``{hour}``, ``{week}``, ``{month}``) replaced by the
        current period in the ``timezone`` setting (see ``ocean.timekeys``); other values as given."""
        if type(key) is str and ("{" in key or "}" in key):
            return timekeys.expand(key, self.now_ms(), self.settings.timezone)
        return key

    def _now(self) -> int:
        return max(time.time_ns() // 1_000_000, self._writer.last_ms)

    def largest_routes(self, n: int = 10) -> list[tuple[str, int, int]]:
        """The ``n`` routes holding the most events + entities: ``(route, events, entities)``.

        PERF: one pass over the routes; recomputed at most once a second (``/health`` asks often).
        """
        now = time.monotonic()
        cached = self._largest
        if cached is not None and cached[0] > now - 1.0 and cached[1] >= n:
            return cached[2][:n]
        events = {r: len(log_) for r, log_ in list(self.state.events.items())}
        entities = {r: len(t) for r, t in list(self.state.entities.routes.items())}
        sizes = [(r, events.get(r, 0), entities.get(r, 0)) for r in set(events) | set(entities)]
        top = heapq.nlargest(n, sizes, key=lambda x: (x[1] + x[2], x[0]))
        self._largest = (now, n, top)
        return top

    def stats(self) -> dict:
        """Figures for /health and /metrics."""
        out = {
            "entities": self.state.entities.count,
            "events": self.state.event_count,
            "counters": len(self.state.counters),
            "routes": len(self.routes()),
            "seq": self._writer.seq,
            "subscribers": self.bus.subscriber_count(),
            "published": self.bus.published,
            "dropped_subscribers": self.bus.dropped_subscribers,
            "uptime_s": round(time.time() - self.started, 3),
            "implementation": "pure" if core().__name__.endswith("_reference") else "compiled",
        }
        out.update(self.store.stats())
        return out

    def flush(self) -> None:
        """fsync the log now (used by a graceful shutdown)."""
        with self._lock:
            if self.store.wal is not None:
                self.store.wal.sync_to(self.store.wal.appended)

    def snapshot(self) -> str:
        """Write a snapshot now and compact the log (normally done in the background)."""
        self._check_open()
        return self.store.snapshot(self._lock)

    def backup(self, dest: str | None = None) -> dict:
        """Write a consistent copy of the data while writes go on; returns ``{path, seq, bytes, ...}``.

        ``dest`` is a new directory (relative: inside the ``backup_dir`` setting's directory),
        or None for a new ``ocean-<time>-seq<seq>`` there. Writes pause only while the state
        is captured (as for a snapshot); the files are written off the event loop.
        See ``engine/backup.py`` for the format and ``backup.restore`` for the way back.
        """
        self._check_open()
        return self.store.backup(self._lock, dest)

    @property
    def backup_dir(self) -> str:
        """Where backups without a named destination go (the ``backup_dir`` setting, or ``<data>-backups``)."""
        return default_backup_dir(self.store.path, self.settings.backup_dir)

    @property
    def last_backup(self) -> dict | None:
        """The last backup made of this data directory (by any process), or None."""
        return self.store.last_backup

    def sweep(self) -> None:
        """Purge expired entities and events now (normally done once a second)."""
        with self._lock:
            removed, events = self.state.sweep(self._now())
        for listener in self._listeners:
            for route, key in removed:
                listener.entity_removed(route, key)
            for route, seqs in events.items():
                listener.events_removed(route, seqs)

    def _maintain_loop(self) -> None:
        """About once a second (or when woken for a snapshot): flush, snapshot, expire."""
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.store.maintain(self._lock)
                self.sweep()
            except Exception:
                log.exception("ocean: maintenance step failed")

    def _check_open(self) -> None:
        if self._writer.closed:
            raise EngineClosed("the engine is closed")

    def close(self) -> None:
        """Flush and fsync the log, end live streams, release the data directory."""
        if self._writer.closed:
            return
        self._stop.set()
        self._wake.set()
        self.store.abort_snapshot()  # a forked snapshot is ended, not waited for: the log has it all
        if self._maintainer is not None and self._maintainer is not threading.current_thread():
            self._maintainer.join(timeout=5)
        with self._lock:
            self._writer.closed = True
            self.bus.close_all()
            self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _keep_ms(keep) -> int:
    if keep is None:
        return 0
    if type(keep) not in (int, float) or not keep > 0 or keep > 10 ** 10:
        raise InvalidPayload(f"keep must be a positive number of seconds, got {keep!r}")
    return max(1, int(keep * 1000))


def _looks_like_increment(item) -> bool:
    """A drop the compiled path may take: ``{route, key, payload}`` with only ``"+f"`` entries and
    sketch adds (``"~f"``/``"%f"``; ``Writer._sketch_write``)."""
    if type(item) is not dict or len(item) != 3 or item.get("key") is None:
        return False
    payload = item.get("payload")
    return type(payload) is dict and bool(payload) and all(type(k) is str and k[:1] in _COMPILED_PREFIXES
                                                            for k in payload)


_COMPILED_PREFIXES = frozenset("+~%")


def _makes_counters(key: str, payload: dict) -> bool:
    """An increment the compiled path makes a new entity of: ``"+f"`` entries only (sketch adds
    need an entity that has the sketches) and a key without a placeholder."""
    return "{" not in key and "}" not in key and all(k[:1] == "+" for k in payload)


def prepare_save(route, payload, key, keep, expand_key) -> tuple:
    """Validate a ``save`` (every store's): ``(kind, key, body, incs or None, expires_in)``."""
    check_route(route)
    expires_in = _keep_ms(keep)
    if key is None:
        if isinstance(payload, dict):
            _check_object(payload)
            if any(isinstance(k, str) and k.startswith("+") for k in payload):
                raise InvalidPayload("\"+field\" increments need a key: events are never changed")
        return ops.EVENT, None, payload, None, expires_in
    key = check_key(expand_key(key))
    if not isinstance(payload, dict):
        return ops.VALUE, key, payload, None, expires_in
    _check_object(payload)
    body, incs = split_increments(payload)
    return ops.SAVE, key, body, incs or None, expires_in


def prepare_update(route, key, fields, expand_key) -> tuple:
    """Validate an ``update`` (every store's): ``(key, plain fields, incs or None)``."""
    check_route(route)
    key = check_key(expand_key(key))
    if not isinstance(fields, dict) or not fields:
        raise InvalidPayload("update needs an object of fields to merge")
    _check_object(fields)
    plain, incs = split_increments(fields)
    return key, plain, incs or None


_DROP_FIELDS = frozenset(("route", "key", "payload", "keep"))


def prepare_drop(item, expand_key=None) -> tuple:
    """Validate one ``POST /drop`` object into ``(kind, route, key, body, incs, expires_in)``;
    ``expand_key`` (the engine's) replaces a key's placeholders."""
    if type(item) is dict and len(item) == 2 and type(item.get("payload")) is dict and "route" in item:
        # PERF: an event object ({route, payload}), the common drop: the checks below in short
        route, payload = check_route(item["route"]), item["payload"]
        _check_event_object(payload)
        return ops.EVENT, route, None, payload, None, 0
    if not isinstance(item, dict):
        raise InvalidPayload("a drop is an object {route, key?, payload, keep?}")
    if not _DROP_FIELDS.issuperset(item):
        unknown = set(item) - _DROP_FIELDS
        raise InvalidPayload(f"a drop has no field {sorted(unknown)[0]!r} (it takes route, key, payload, keep)")
    route, key, payload = check_route(item.get("route")), item.get("key"), item.get("payload")
    if "payload" not in item:
        raise InvalidPayload("a drop needs a payload")
    keep = item.get("keep")
    expires_in = 0 if keep is None else _keep_ms(keep)
    if key is None:
        if isinstance(payload, dict):
            _check_event_object(payload)
        return ops.EVENT, route, None, payload, None, expires_in
    key = check_key(expand_key(key) if expand_key is not None else key)
    if not isinstance(payload, dict):
        return ops.VALUE, route, key, payload, None, expires_in
    _check_object(payload)
    if payload and all(k[:1] == "+" and len(k) > 1 for k in payload):  # PERF: the counting hot path
        if expires_in:
            raise InvalidPayload("keep applies to saves and events, not to increments")
        return ops.INCR, route, key, None, check_increments({k[1:]: v for k, v in payload.items()}), 0
    plain, incs = split_increments(payload)
    if not incs:
        return ops.SAVE, route, key, plain, None, expires_in
    if expires_in:
        raise InvalidPayload("keep applies to saves and events, not to increments")
    if not plain:
        return ops.INCR, route, key, None, incs, 0
    return ops.UPDATE, route, key, plain, incs, 0


def _check_event_object(payload: dict) -> None:
    """An event's payload object: string field names, none an increment (``_check_object`` and the
    ``"+f"`` check in one pass)."""
    plus = False
    for name in payload:
        if type(name) is str or isinstance(name, str):
            if name[:1] == "+":
                plus = True
        else:
            raise InvalidPayload(f"field names must be strings, got {name!r}")
    if plus:
        raise InvalidPayload("\"+field\" increments need a key: events are never changed")


def _check_object(payload: dict) -> None:
    for name in payload:
        if not isinstance(name, str):
            raise InvalidPayload(f"field names must be strings, got {name!r}")
