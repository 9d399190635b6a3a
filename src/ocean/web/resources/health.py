"""``GET /health`` (liveness and readiness) and ``GET /metrics`` (Prometheus text)."""
from __future__ import annotations

import time

import falcon

from ..._version import __version__
from ...errors import EngineClosed
from ...kernels import implementation
from .. import auth


class Health:
    """``{ok, version, uptime_s, heartbeat_s, implementation, ...}``; 503 while draining. Cheap: no scans."""

    def __init__(self, svc):
        self.svc = svc

    def on_get(self, req, resp):
        svc = self.svc
        if svc.streams.draining:
            raise EngineClosed("the server is shutting down")
        resp.media = {
            "ok": True, "version": __version__, "uptime_s": round(time.monotonic() - svc.started, 3),
            "heartbeat_s": svc.settings.heartbeat_s, "implementation": implementation(),
            "fsync": svc.settings.fsync, "seq": svc.engine.seq, "sse_clients": len(svc.streams),
            "last_backup": _public(svc.engine.last_backup),
            "timezone": svc.settings.timezone,
        }


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
        resp.text = svc.accounting.render_metrics(svc.engine.stats(), len(svc.streams))
        resp.status = falcon.HTTP_200
