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
            "timezone": svc.settings.timezone,
        }


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
