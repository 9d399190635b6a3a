"""Reading a route's whole state out in pages: the records ``GET /export`` streams.

A page is a list of at most ``PAGE`` records, read from the engine's state without
its write lock and without copying the route: entities walk the route's sorted key
list as it was when the export began (the entity table replaces that list on a
change, never edits it), each entity as it is when its page is read; events walk
the route's log by seq up to the newest seq at the start, so an export ends even
while writes go on. Memory is one page, whatever the route holds.

Record shapes (each is also an import line, see ``ocean.transfer``):

- entity: ``{route, key, payload, counters?, sketches?, created_at, updated_at, version, expires_at?}``
  where ``payload`` is the fields with counters merged (as ``GET /entity`` gives)
  and ``counters`` names the fields that are counters (absent when none); ``sketches``
  holds each uniq/dist field's exact bytes, base64, under its payload prefix
  (``{"~visitors": "...", "%ms": "..."}``; absent when none), so an import restores them;
- event: ``{route, payload, created_at, seq, expires_at?}``.

History (past versions) is not exported: an export is the current state.
"""
from __future__ import annotations

import bisect
import operator
import re
from datetime import datetime, timezone

from ..errors import InvalidParameter
from ..model import check_prefix, iso_ms, prefix_matches
from .sketches import sketch_bytes

PAGE = 500  # records per page: ~60 KB of NDJSON (~0.2 ms to encode), one write, then others get a turn
MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
_SEQ = operator.itemgetter(0)
_DIGITS = re.compile(r"[0-9]{1,19}\Z")


class Since:
    """Where an export starts: after a seq (events only), or at a time (events and entities)."""

    __slots__ = ("seq", "ms")

    def __init__(self, seq: int | None = None, ms: int | None = None):
        self.seq = seq
        self.ms = ms

    def __repr__(self) -> str:
        return f"Since(seq={self.seq}, ms={self.ms})"


def parse_time(text) -> int:
    """Epoch milliseconds of an ISO-8601 time (``2026-02-10``, ``...T12:00:00Z``, offsets);
    a time without a zone is UTC. Raises ValueError."""
    if not isinstance(text, str) or not 10 <= len(text) <= 40:
        raise ValueError("not an ISO-8601 time")
    dt = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text)  # 3.10 lacks Z
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    ms = (dt - datetime(1970, 1, 1, tzinfo=timezone.utc)) // _ONE_MS
    if not 0 <= ms <= MAX_MS:
        raise ValueError("outside 1970..9999")
    return ms


_ONE_MS = datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_since(text: str | None) -> Since:
    """``?since=``: a seq number (events with a greater seq; entities have no seq of their own,
    so none are exported) or an ISO-8601 time (events created and entities updated at or after it)."""
    if text is None or text == "":
        return Since()
    if _DIGITS.match(text):
        return Since(seq=int(text))
    try:
        return Since(ms=parse_time(text))
    except ValueError:
        raise InvalidParameter(f"since must be a seq number or an ISO-8601 time like 2026-02-10T12:00:00Z, "
                               f"got {text[:40]!r}") from None


def routes_of(engine, target: str) -> list[str]:
    """The routes ``target`` (a route, ``prefix/*`` or ``*``) covers, in name order."""
    check_prefix(target)
    if target == "*" or target.endswith("/*"):
        return [r for r in engine.routes() if prefix_matches(target, r)]
    return [target]


def pages(engine, target: str, since: Since | None = None, page: int = PAGE, upto: int | None = None):
    """Every record of ``target``: per route (in name order) its entities, then its events
    with a seq up to ``upto`` (default: the newest at the start; later ones are not part of it)."""
    for route, kind, rows in sections(engine, target, since, page, upto):
        yield rows if kind == ENTITIES else [event_record(route, row) for row in rows]


ENTITIES, EVENTS = "entities", "events"


def sections(engine, target: str, since: Since | None = None, page: int = PAGE, upto: int | None = None):
    """``pages`` as ``(route, kind, rows)``: entity pages as records, event pages as the log's own
    rows ``(seq, ms, payload, expires, source)`` (``event_record`` makes one a record).

    PERF: an encoder that knows the event layout skips building a dict per event (NDJSON
    export: ~750 -> ~350 ns of CPU per event).
    """
    since = since or Since()
    upto = engine.seq if upto is None else upto
    for route in routes_of(engine, target):
        if since.seq is None:
            for rows in entity_pages(engine, route, since.ms, page):
                yield route, ENTITIES, rows
        for rows in event_rows(engine, route, since, upto, page):
            yield route, EVENTS, rows


def event_record(route: str, row: tuple) -> dict:
    """The export record of one event row ``(seq, ms, payload, expires, source)``."""
    seq, ms, payload, expires = row[0], row[1], row[2], row[3]
    rec = {"route": route, "payload": payload, "created_at": iso_ms(ms), "seq": seq}
    if expires:
        rec["expires_at"] = iso_ms(expires)
    return rec


def entity_pages(engine, route: str, since_ms: int | None = None, page: int = PAGE):
    """Pages of a route's live entities in key order (``since_ms``: updated at or after it)."""
    state = engine.state
    if route not in state.entities.routes:
        return
    keys = state.entities.sorted_keys(route)  # the key list of the start; the table never edits it
    counters = state.counters
    for start in range(0, len(keys), page):
        now = engine._now()
        out = []
        for key in keys[start:start + page]:
            ent = state.live_entity(route, key, now)
            if ent is None or (since_ms is not None and ent.updated_ms < since_ms):
                continue
            rec = {"route": route, "key": key}
            if ent.fields is None:
                rec["payload"] = ent.value
            else:
                payload = dict(ent.fields)
                held = state.sketches.get(route, key) if state.sketches.routes else None
                if held:  # uniq/dist fields as reads show them (their summaries); their bytes below
                    payload.update(state.sketches.shown(route, key))
                counts = counters.entity(route, key)
                if counts:
                    payload.update(counts)
                    rec["payload"] = payload
                    rec["counters"] = list(counts)
                else:
                    rec["payload"] = payload
                if held:
                    rec["sketches"] = sketch_bytes(held)
            rec["created_at"] = iso_ms(ent.created_ms)
            rec["updated_at"] = iso_ms(ent.updated_ms)
            rec["version"] = ent.version
            if ent.expires_ms:
                rec["expires_at"] = iso_ms(ent.expires_ms)
            out.append(rec)
        if out:
            yield out


def event_pages(engine, route: str, since: Since | None = None, upto: int | None = None, page: int = PAGE):
    """Pages of a route's live events oldest first, as records, up to seq ``upto`` (default: all)."""
    for rows in event_rows(engine, route, since, upto, page):
        yield [event_record(route, row) for row in rows]


def event_rows(engine, route: str, since: Since | None = None, upto: int | None = None, page: int = PAGE):
    """Pages of a route's live events oldest first, as the log's rows, up to seq ``upto``."""
    log = engine.state.events.get(route)
    if log is None:
        return
    since = since or Since()
    after = since.seq or 0
    since_ms = since.ms
    upto = engine.seq if upto is None else upto
    while after < upto:
        chunk = log.after(after, page)  # the log as it is now: retention and appends change it between pages
        if not chunk:
            return
        after = chunk[-1][0]
        if chunk[-1][0] > upto:
            chunk = chunk[:bisect.bisect_right(chunk, upto, key=_SEQ)]
        if since_ms is not None or log.expiring:
            now = engine._now()
            chunk = [e for e in chunk if not (e[3] and e[3] <= now) and (since_ms is None or e[1] >= since_ms)]
        if chunk:
            yield chunk
