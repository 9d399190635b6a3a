"""``GET``/``DELETE /entity/{route}/{key}`` and ``GET /entities/{route}``."""
from __future__ import annotations

from ...errors import InvalidKey
from ...model import check_key, check_route
from ...timekeys import check_template
from .. import auth


def split_entity_path(rest: str) -> tuple[str, str]:
    """``analytics/daily/2026-02-10`` -> (``analytics/daily``, ``2026-02-10``); the key is the last segment."""
    route, sep, key = rest.rpartition("/")
    if not sep or not key:
        raise InvalidKey("the path must be /entity/{route}/{key}, like /entity/analytics/daily/2026-02-10")
    return check_route(route), check_template(key)  # {day}...: the engine expands it


class Entity:
    """One entity: its fields with counters merged, or its removal."""

    def __init__(self, svc):
        self.svc = svc

    def on_get(self, req, resp, rest):
        route, key = split_entity_path(rest)
        auth.require(req, self.svc.keys).check_read(route)
        resp.media = self.svc.engine.get(route, key)

    def on_delete(self, req, resp, rest):
        route, key = split_entity_path(rest)
        access = auth.require(req, self.svc.keys)
        access.check_write(route)
        key = self.svc.engine.expand_key(key)  # the answer names the key removed
        out = self.svc.engine.remove(route, key, source=access.source)
        resp.media = {"ok": True, "route": route, "key": key, **out}


class Entities:
    """A page of a route's entities in key order: ``?limit=`` (at most ``list_limit``), ``?after=KEY``."""

    def __init__(self, svc):
        self.svc = svc

    def on_get(self, req, resp, route):
        check_route(route)
        auth.require(req, self.svc.keys).check_read(route)
        cap = self.svc.settings.list_limit
        limit = min(req.get_param_as_int("limit", min_value=1) or cap, cap)  # page on with ?after=next
        after = req.get_param("after")
        if after is not None:
            check_key(after)
        rows = self.svc.engine.list(route, limit=limit, after=after)
        nxt = rows[-1]["key"] if len(rows) == limit else None
        resp.media = {"ok": True, "route": route, "entities": rows, "next": nxt}
