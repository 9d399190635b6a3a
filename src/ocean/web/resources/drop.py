"""``POST /drop``: one drop object, or a JSON array of them (a batch, answered with an array).

A drop is ``{route, key?, payload, keep?}``. Without a key it is an event.
With a key, a payload that holds ``"+f": n`` increments is *merged* into the
entity (increments applied, plain fields beside them set; others kept), and
one without increments replaces the entity's plain fields (SPEC section 3).
In a batch each drop succeeds or fails alone, like the lines of ``/exec``.
"""
from __future__ import annotations

from ...errors import BadRequest, InvalidPayload, OceanError, PayloadTooLarge
from ...model import check_route
from .. import auth, body

FIELDS = {"route", "key", "payload", "keep"}


def _has_increments(payload) -> bool:
    return isinstance(payload, dict) and any(isinstance(k, str) and k.startswith("+") for k in payload)


def write_one(engine, access, item) -> dict:
    """Write one drop for ``access``; the answer ``{ok, drop_id, seq, route, key, created_at}``."""
    if not isinstance(item, dict):
        raise InvalidPayload("a drop is an object like {\"route\": \"analytics/events\", \"payload\": {...}}")
    extra = set(item) - FIELDS
    if extra:
        raise InvalidPayload(f"unknown drop field(s): {', '.join(sorted(map(str, extra)))}; a drop has route, key, payload, keep")
    if "payload" not in item:
        raise InvalidPayload("a drop needs a payload")
    route, key, payload = check_route(item.get("route")), item.get("key"), item["payload"]
    access.check_write(route)
    if key is not None and _has_increments(payload):
        if item.get("keep") is not None:
            raise InvalidPayload("keep cannot go with \"+field\" increments (they merge into the entity)")
        return {"ok": True, **merge(engine, route, key, payload, access.source)}
    return {"ok": True, **engine.save(route, payload, key=key, keep=item.get("keep"), source=access.source)}


def merge(engine, route: str, key: str, payload: dict, source: str) -> dict:
    """Merge a payload with increments; find its drop in the entity's history by version."""
    rec = engine.update(route, key, payload, source=source)
    # NOTE: update() answers with the entity, not the drop; the history entry of
    # the same version carries its seq and id (exact unless a concurrent write to
    # this entity slipped in before the read, then the newest seq is given).
    for h in engine.history(route, key, limit=2):
        if h["version"] == rec["version"]:
            return {"drop_id": h["drop_id"], "seq": h["seq"], "route": route, "key": key, "created_at": h["updated_at"]}
    seq = engine.seq
    return {"drop_id": engine.drop_id(seq), "seq": seq, "route": route, "key": key, "created_at": rec["updated_at"]}


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
