"""``GET /export`` (NDJSON) of a Redis store: the embedded export's records, read in pages from Redis.

Why its own module: ``ocean.engine.export`` pages through the embedded store's memory. Here
entities come from ``ocean_list`` (counters kept apart, so the record names them in
``counters`` and an import adds them back as counters) and events from the route's stream.
An entity's ``keep`` is not exported (the list reply does not carry it). CSV is not served yet.
"""
from __future__ import annotations

import json

import orjson

from ..engine.export import routes_of
from ..model import iso_ms
from . import layout

PAGE = 1000


def _line(rec: dict) -> bytes:
    try:
        return orjson.dumps(rec, None, orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # an integer beyond 64 bits: the stdlib writes those
        return json.dumps(rec, separators=(",", ":")).encode() + b"\n"


def entity_records(engine, route: str, since_ms: int | None):
    cursor = ""
    while True:  # bounded: each call moves the cursor past the keys it looked at
        page, more = engine._fcall("ocean_list", route, [route, cursor, PAGE], read=True)
        out = []
        for key, created, updated, version, value, fields, counters in page:
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
            rec.update(created_at=iso_ms(int(created)), updated_at=iso_ms(int(updated)), version=int(version))
            out.append(rec)
        if out:
            yield out
        if len(page) < PAGE and not more:
            return
        cursor = more or page[-1][0]


def event_records(engine, route: str, since):
    start, now = ("(%d-18446744073709551615" % since.seq) if since.seq else "-", engine._now()
    while True:
        page = engine._redis(engine.client.xrange, layout.events(route), start, "+", count=PAGE)
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


def ndjson_chunks(engine, target: str, since):
    """One chunk per page: per route (in name order) its entities, then its events."""
    for route in routes_of(engine, target):
        if since.seq is None:
            for recs in entity_records(engine, route, since.ms):
                yield b"".join(_line(r) for r in recs)
        for recs in event_records(engine, route, since):
            yield b"".join(_line(r) for r in recs)
