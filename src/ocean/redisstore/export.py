"""``GET /export`` (NDJSON) of a Redis store: the embedded export's records, read in pages from Redis.

Why its own module: ``ocean.engine.export`` pages through the embedded store's memory. Here
entities come from ``ocean_list`` (counters kept apart, so the record names them in
``counters`` and an import adds them back as counters; sketch fields' bytes under ``sketches``,
read with ``ocean_sketches``; ``keep`` as ``expires_at``) and events from the route's stream.
"""
from __future__ import annotations

import json

import orjson

from .. import transfer
from ..engine.export import routes_of
from ..engine.sketches import encode
from ..model import iso_ms
from . import layout, sketches

PAGE = 1000


def _line(rec: dict) -> bytes:
    try:
        return orjson.dumps(rec, None, orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # an integer beyond 64 bits: the stdlib writes those
        return json.dumps(rec, separators=(",", ":")).encode() + b"\n"


def entity_records(engine, route: str, since_ms: int | None):
    cursor = ""
    while True:  # bounded: each call moves the cursor past the keys it looked at
        page, more = engine._fcall("ocean_list", route, [route, cursor, PAGE, "more"], read=True)
        out = []
        for key, created, updated, version, value, fields, counters, kinds, expires in page:
            if since_ms is not None and int(updated) < since_ms:
                continue
            rec = {"route": route, "key": key}
            if value:
                rec["payload"] = json.loads(value)
            else:
                payload = {fields[i]: json.loads(fields[i + 1]) for i in range(0, len(fields), 2)}
                names = counters[0::2]
                payload.update({counters[i]: layout.number(counters[i + 1]) for i in range(0, len(counters), 2)})
                rec["payload"] = payload
                if names:
                    rec["counters"] = names
                if kinds:
                    rec["sketches"] = _sketch_bytes(engine, route, key)
            rec.update(created_at=iso_ms(int(created)), updated_at=iso_ms(int(updated)), version=int(version))
            if expires != "0":
                rec["expires_at"] = iso_ms(int(expires))
            out.append(rec)
        if out:
            yield out
        if len(page) < PAGE and not more:
            return
        cursor = more or page[-1][0]


def _sketch_bytes(engine, route: str, key: str) -> dict:
    """``{"~field" or "%field": base64}``: the embedded export's ``sketch_bytes`` of the same sketches."""
    reply = sketches.read(engine, route, key)
    tags = [reply[i].decode()[0] for i in range(0, len(reply), 2)]
    return {tag + name: encode(s) for tag, (name, s) in zip(tags, sketches.from_reply(reply).items())}


def event_records(engine, route: str, since, end: str = "+"):
    """Pages of a route's live events, oldest first, up to the stream id ``end`` (inclusive)."""
    start, now = ("(%d-18446744073709551615" % since.seq) if since.seq else "-", engine._now()
    while True:
        page = engine._redis(engine.client.xrange, layout.events(route), start, end, count=PAGE)
        out = []
        for sid, f in page:
            expires = int(f.get("x", 0))
            if expires and expires <= now:
                continue
            seq, ms = layout.split_id(sid)
            at = int(f["t"]) if "t" in f else ms
            if since.ms is not None and at < since.ms:
                continue
            rec = {"route": route, "payload": json.loads(f["p"]), "created_at": iso_ms(at), "seq": seq}
            if expires:
                rec["expires_at"] = iso_ms(expires)
            out.append(rec)
        if out:
            yield out
        if len(page) < PAGE:
            return
        start = f"({page[-1][0]}"


def records(engine, target: str, since, ends: dict | None = None):
    """Pages of records: per route (in name order) its entities, then its events. With ``ends``
    (``{route: last event stream id}``, ``event_ends``), those routes only, their events up to there."""
    for route in routes_of(engine, target) if ends is None else ends:
        if since.seq is None:
            yield from entity_records(engine, route, since.ms)
        yield from event_records(engine, route, since, "+" if ends is None else ends[route])


def ndjson_chunks(engine, target: str, since):
    """One chunk per page: per route (in name order) its entities, then its events."""
    for recs in records(engine, target, since):
        yield b"".join(_line(r) for r in recs)


def event_ends(engine, target: str) -> dict:
    """``{route: its newest event's stream id ("0-0": none)}`` of the routes ``target`` covers, now."""
    routes = routes_of(engine, target)
    if not routes:
        return {}
    pipe = engine.client.pipeline(transaction=False)
    for route in routes:
        pipe.xrevrange(layout.events(route), count=1)
    return {r: page[0][0] if page else "0-0" for r, page in zip(routes, engine._redis(pipe.execute))}


def csv_chunks(engine, target: str, since):
    """The embedded CSV export (``transfer.csv_chunks``: its two passes, its columns and cells) over
    these records; both passes read the routes and events there were at the start."""
    ends = event_ends(engine, target)
    return transfer.csv_chunks(engine, target, since, read=lambda engine, target, since, page, upto:
                               records(engine, target, since, ends))
