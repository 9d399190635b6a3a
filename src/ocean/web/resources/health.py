"""``GET /health`` (liveness and readiness) and ``GET /metrics`` (Prometheus text)."""
from __future__ import annotations

import time

import falcon

from ..._version import __version__
from ...errors import EngineClosed
from ...kernels import implementation
from ...sql import columns_bytes
from .. import auth


class Health:
    """``{ok, version, uptime_s, heartbeat_s, implementation, ...}``; 503 while draining. Cheap: no scans
    (the largest routes are recounted at most once a second)."""

    def __init__(self, svc):
        self.svc = svc

    def on_get(self, req, resp):
        svc = self.svc
        if svc.streams.draining:
            raise EngineClosed("the server is shutting down")
        resp.media = {
            "ok": True, "version": __version__, "uptime_s": round(time.monotonic() - svc.started, 3),
            "heartbeat_s": svc.settings.heartbeat_s, "implementation": implementation(),
            "fsync": svc.settings.fsync, "sse_clients": len(svc.streams),
            "seq": None if getattr(svc.engine, "per_route_seq", False) else svc.engine.seq,
            "last_backup": _public(svc.engine.last_backup),
            "timezone": svc.settings.timezone,
            "snapshot": _snapshot(svc.engine),
            **_redis(svc.engine),
            "largest_routes": [{"route": r, "events": ev, "entities": en} for r, ev, en in svc.engine.largest_routes(5)],
        }


def _redis(engine) -> dict:
    """Redis mode: each master's answer, and ``ok`` false while one is down (writes to its routes wait)."""
    if not getattr(engine, "per_route_seq", False):
        return {}
    masters = engine.health()
    return {"ok": masters["ok"], "store": "redis-cluster" if engine.is_cluster else "redis", "redis": masters}


def _public(last: dict | None) -> dict | None:
    """The last backup as /health shows it to anyone: when, seq, size -- not where (GET /admin/backup says)."""
    if not last:
        return None
    return {k: last.get(k) for k in ("created_at", "seq", "bytes", "seconds", "pause_ms")}


class Metrics:
    """Prometheus text; needs a key unless the ``metrics_public`` setting is on."""

    def __init__(self, svc):
        self.svc = svc

    def on_get(self, req, resp):
        svc = self.svc
        if not svc.settings.metrics_public:
            auth.require(req, svc.keys)
        resp.content_type = "text/plain; version=0.0.4; charset=utf-8"
        resp.text = svc.accounting.render_metrics(svc.engine.stats(), len(svc.streams)) + _sizes(svc.engine)
        resp.status = falcon.HTTP_200


def _snapshot(engine) -> dict:
    """The last snapshot's figures, and whether one is being written now."""
    st = getattr(engine.store, "stats", None)
    figures = st() if st is not None else {}
    return {"running": bool(figures.get("snapshot_running")), "seq": figures.get("snapshot_seq", 0),
            "seconds": round(figures.get("snapshot_seconds", 0.0), 3), "bytes": figures.get("snapshot_bytes", 0),
            "pause_ms": round(figures.get("snapshot_pause_ms", 0.0), 3)}


def _sizes(engine) -> str:
    """Gauges of the largest routes and of the SQL columns' and event chunks' memory (Prometheus text)."""
    out = ["# HELP ocean_route_events Events of the largest routes (top 10 by events + entities).",
           "# TYPE ocean_route_events gauge"]
    top = engine.largest_routes(10)
    out += [f'ocean_route_events{{route="{r}"}} {ev}' for r, ev, _ in top]
    out += ["# HELP ocean_route_entities Entities of the largest routes.", "# TYPE ocean_route_entities gauge"]
    out += [f'ocean_route_entities{{route="{r}"}} {en}' for r, _, en in top]
    out += ["# HELP ocean_sql_columns_bytes Memory of the SQL column tables built so far.",
            "# TYPE ocean_sql_columns_bytes gauge", f"ocean_sql_columns_bytes {columns_bytes(engine)}"]
    event_bytes = getattr(engine, "event_bytes", None)  # an engine whose events live elsewhere has none
    if event_bytes is not None:
        out += ["# HELP ocean_event_chunks_bytes Memory of the sealed event column chunks, every route.",
                "# TYPE ocean_event_chunks_bytes gauge", f"ocean_event_chunks_bytes {event_bytes()}"]
    return "\n".join(out) + "\n"
