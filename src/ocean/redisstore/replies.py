"""The function calls' shapes on the Python side: arguments in, replies out, refusals as ocean errors.

``ocean.lua`` answers in Redis's terms (flat arrays, number texts, ``OCEAN code TAB detail TAB``
errors); this module turns them into the embedded engine's records and its error types with the
same messages, so the two stores cannot be told apart by their answers.
"""
from __future__ import annotations

import json

from ..errors import CounterOverflow, InvalidPayload, NotACounter, NotFound, OceanError
from ..model import MAX_INT64, MIN_INT64, check_amount, iso_ms
from . import layout


def written(reply, at) -> tuple:
    """``ocean_write``'s answer as ``(seq, ms, stream id, totals, own time or None)``."""
    totals = reply[3]
    out = {totals[i]: layout.number(totals[i + 1]) for i in range(0, len(totals), 2)}
    if len(reply) > 5 and reply[5]:  # sketch fields' summaries, after the counters (as State._write)
        shown = reply[5]
        out.update({shown[i]: json.loads(shown[i + 1]) for i in range(0, len(shown), 2)})
    return int(reply[0]), int(reply[1]), reply[2], out, at


def number_text(value) -> str:
    """How a plain field's value may set a counter: its number text, '' (not a number), '?' (not an amount)."""
    t = type(value)
    if t is int:
        return str(value) if MIN_INT64 <= value <= MAX_INT64 else "?"
    if t is float:
        return repr(value)
    return ""


def ocean_error(text: str, route, key, body) -> OceanError:
    """The embedded engine's error (type and message) for an ``OCEAN code TAB detail TAB`` reply."""
    code, _, rest = text[len("OCEAN "):].partition("\t")
    detail = rest.rsplit("\t", 1)[0].split("\t")
    name = detail[0]
    if code == "not_found":
        return NotFound(f"{route} @{key} does not exist")
    if code == "plain_value":
        return NotACounter.plain_value(route, key)
    if code == "not_a_counter_set":
        return NotACounter.counter_set(name, body[name])
    if code == "invalid_amount":
        try:
            check_amount(body[name], name)
        except OceanError as exc:
            return exc
    if code == "both":
        return InvalidPayload.set_and_incremented(name)
    if code == "not_a_number":
        return NotACounter.not_a_number(name, json.loads(detail[1]))
    if code == "overflow":
        return CounterOverflow.int64(name, layout.number(detail[1]), layout.number(detail[2]))
    if code.startswith("sketch_"):
        from .sketches import error
        return error(code, detail)
    if code == "float_overflow":
        return CounterOverflow.float64(name, layout.number(detail[1]), layout.number(detail[2]))
    return OceanError(f"Redis refused the write: {text[:200]}")


def record(route: str, reply) -> dict:
    key, created, updated, version, value, fields, counters = reply
    if value:
        payload = json.loads(value)
    else:
        payload = {fields[i]: json.loads(fields[i + 1]) for i in range(0, len(fields), 2)}
        for i in range(0, len(counters), 2):
            payload[counters[i]] = layout.number(counters[i + 1])
    return {"route": route, "key": key, "payload": payload, "created_at": iso_ms(int(created)),
            "updated_at": iso_ms(int(updated)), "version": int(version)}


def message(route: str, sid: str, fields: dict) -> dict:
    """A change stream entry as a live message: ``id`` (the SSE id), per-route ``seq``, ``op``, ``data``."""
    seq, ms = layout.split_id(sid)
    return {"id": layout.live_id(sid, fields["e"]), "seq": seq, "route": route, "key": fields.get("k"),
            "op": fields["o"], "data": json.loads(fields["d"]), "at": ms, "epoch": fields["e"],
            "drop_id": layout.drop_id(route, sid)}


def event(route: str, sid: str, fields: dict, now: int) -> dict | None:
    expires = int(fields.get("x", 0))
    if expires and expires <= now:
        return None
    seq, ms = layout.split_id(sid)
    at = int(fields["t"]) if "t" in fields else ms
    return {"drop_id": layout.drop_id(route, sid), "seq": seq, "route": route, "payload": json.loads(fields["p"]),
            "created_at": iso_ms(at), "source": fields.get("s")}
