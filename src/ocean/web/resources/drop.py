"""``POST /drop``: one drop object, or a JSON array of them (a batch, answered with an array).

A drop is ``{route, key?, payload, keep?}``. Without a key it is an event.
With a key, a payload that holds ``"+f": n`` increments is *merged* into the
entity (increments applied, plain fields beside them set; others kept), and
one without increments replaces the entity's plain fields (SPEC section 3).
The engine's ``drop_many`` does the writing: a batch is one log write, and
each drop succeeds or fails alone, like the lines of ``/exec``.
"""
from __future__ import annotations

from ...errors import BadRequest, OceanError, PayloadTooLarge
from ...model import check_route
from .. import auth, body


def _refusal(access, route: str) -> OceanError | None:
    """Why ``access`` may not write ``route`` (an invalid route or a missing scope), or None."""
    try:
        access.check_write(check_route(route))
    except OceanError as exc:
        return exc
    return None


def _route_of(item):
    """The item's route when it is a string (anything else is refused by the engine, with its reason)."""
    route = item.get("route") if type(item) is dict else None
    return route if type(route) is str else None


def write(engine, access, items: list, times: list | None = None, parsed: bool = False) -> list:
    """Write ``items`` for ``access``; one receipt dict or ``OceanError`` per item, in order.

    ``times`` (``POST /import``): an event's own time beside each item (``Engine.drop_many``);
    ``parsed``: the items came from a JSON parser (``Engine.drop_many``).
    """
    # PERF: a batch names few routes; each is checked once, and a batch with no refusal (the
    # common case) goes to the engine as it is.
    try:
        routes = {item["route"] for item in items}  # PERF: one C-level pass when every item has one
    except (TypeError, KeyError):  # an item that is no dict, has no route, or an unhashable one
        routes = {_route_of(item) for item in items}
    refused = {route: exc for route in routes if type(route) is str
               for exc in (_refusal(access, route),) if exc is not None}
    if not refused:
        return engine.drop_many(items, source=access.source, times=times, parsed=parsed)
    results: list = [refused.get(_route_of(item)) for item in items]
    where = [i for i, out in enumerate(results) if out is None]
    kept = None if times is None else [times[i] for i in where]
    for i, out in zip(where, engine.drop_many([items[i] for i in where], source=access.source, times=kept,
                                              parsed=parsed)):
        results[i] = out
    return results


class Drop:
    """Write drops as JSON."""

    def __init__(self, svc):
        self.svc = svc

    def on_post(self, req, resp):
        access = auth.require(req, self.svc.keys)
        body.check_type(req)
        doc = body.parse_json(body.read_text(req, self.svc.settings.max_body_bytes))
        if isinstance(doc, dict):
            [out] = write(self.svc.engine, access, [doc], parsed=True)
            if isinstance(out, OceanError):
                raise out
            resp.data = body.dumps({"ok": True, **out})
            return
        if not isinstance(doc, list):
            raise BadRequest("POST /drop takes a drop object or an array of drops")
        if len(doc) > self.svc.settings.max_batch:
            raise PayloadTooLarge(f"a batch holds at most {self.svc.settings.max_batch} drops (setting max_batch); got {len(doc)}")
        resp.data = body.dumps([{"ok": True, **out} if type(out) is dict else out.to_dict()
                                for out in write(self.svc.engine, access, doc, parsed=True)])
