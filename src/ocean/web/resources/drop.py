"""``POST /drop``: one drop object, or a JSON array of them (a batch, answered with an array).

A drop is ``{route, key?, payload, keep?}``. Without a key it is an event.
With a key, a payload that holds ``"+f": n`` increments is *merged* into the
entity (increments applied, plain fields beside them set; others kept), and
one without increments replaces the entity's plain fields (SPEC section 3).
In a batch each drop succeeds or fails alone, like the lines of ``/exec``.
"""
from __future__ import annotations

from ...errors import BadRequest, InvalidPayload, OceanError, PayloadTooLarge
from ...model import check_route, iso_ms, now_ms
from .. import auth, body

FIELDS = {"route", "key", "payload", "keep"}
_last_stamp = [0, ""]


def _stamp() -> str:
    """``created_at`` of a drop written now (formatted once per millisecond: batches repeat it)."""
    ms = now_ms()
    if ms != _last_stamp[0]:
        _last_stamp[0], _last_stamp[1] = ms, iso_ms(ms)
    return _last_stamp[1]


def _has_increments(payload) -> bool:
    return isinstance(payload, dict) and any(isinstance(k, str) and k.startswith("+") for k in payload)


def write_one(engine, access, item) -> dict:
    """Write one drop for ``access``; the answer ``{ok, drop_id, seq, route, key, created_at}``."""
    if not isinstance(item, dict):
        raise InvalidPayload("a drop is an object like {\"route\": \"analytics/events\", \"payload\": {...}}")
    if not item.keys() <= FIELDS:
        extra = item.keys() - FIELDS
        raise InvalidPayload(f"unknown drop field(s): {', '.join(sorted(map(str, extra)))}; a drop has route, key, payload, keep")
    if "payload" not in item:
        raise InvalidPayload("a drop needs a payload")
    route, key, payload = check_route(item.get("route")), item.get("key"), item["payload"]
    access.check_write(route)
    if key is not None and _has_increments(payload):
        if item.get("keep") is not None:
            raise InvalidPayload("keep cannot go with \"+field\" increments (they merge into the entity)")
        return merge(engine, route, key, payload, access.source)
    return {"ok": True, **engine.save(route, payload, key=key, keep=item.get("keep"), source=access.source)}


def merge(engine, route: str, key: str, payload: dict, source: str) -> dict:
    """Merge a payload with increments into an entity; the answer (``ok`` first) names the drop."""
    only_increments = all(isinstance(k, str) and k.startswith("+") and len(k) > 1 for k in payload)
    if engine.settings.fsync != "always":
        # NOTE: update()/incr() answer with the entity or the totals, not the drop.
        # Outside fsync=always a write never yields between taking its seq and
        # returning (the gevent worker is one thread, and sync is a no-op), so the
        # engine's newest seq is this drop's. PERF: incr is ~10x cheaper than the
        # history lookup below (7 vs 84 us per drop, measured in a 1000-drop batch).
        if only_increments:
            engine.incr(route, key, {k[1:]: v for k, v in payload.items()}, source=source)
        else:
            engine.update(route, key, payload, source=source)
        seq = engine.seq
        return {"ok": True, "drop_id": engine.drop_id(seq), "seq": seq, "route": route, "key": key,
                "created_at": _stamp()}
    rec = engine.update(route, key, payload, source=source)
    # fsync=always yields while waiting for the group commit: find the drop by version
    # (with history_limit=0 there is none to find: the newest seq is the best answer).
    for h in engine.history(route, key, limit=2):
        if h["version"] == rec["version"]:
            return {"ok": True, "drop_id": h["drop_id"], "seq": h["seq"], "route": route, "key": key,
                    "created_at": h["updated_at"]}
    seq = engine.seq
    return {"ok": True, "drop_id": engine.drop_id(seq), "seq": seq, "route": route, "key": key,
            "created_at": rec["updated_at"]}


class Drop:
    """Write drops as JSON."""

    def __init__(self, svc):
        self.svc = svc

    def on_post(self, req, resp):
        access = auth.require(req, self.svc.keys)
        body.check_type(req)
        doc = body.parse_json(body.read_text(req, self.svc.settings.max_body_bytes))
        engine = self.svc.engine
        if isinstance(doc, dict):
            resp.media = write_one(engine, access, doc)
            return
        if not isinstance(doc, list):
            raise BadRequest("POST /drop takes a drop object or an array of drops")
        if len(doc) > self.svc.settings.max_batch:
            raise PayloadTooLarge(f"a batch holds at most {self.svc.settings.max_batch} drops (setting max_batch); got {len(doc)}")
        out = []
        for item in doc:
            try:
                out.append(write_one(engine, access, item))
            except OceanError as exc:
                out.append(exc.to_dict())
        resp.media = out
