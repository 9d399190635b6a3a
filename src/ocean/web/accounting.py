"""Request accounting (SPEC section 6): every request counted on the ``_admin/*`` routes.

Each request adds to ``_admin/daily @YYYY-MM-DD`` and ``_admin/hourly
@YYYY-MM-DDTHH`` (``requests``, ``errors``, ``ms_total``), ``_admin/endpoints
@YYYY-MM-DD`` (one field per route template, like ``"GET /entity/*"``) and
``_admin/status @YYYY-MM-DD`` (one field per status, like ``"200"``), and
``{method, path, status, ms}`` is published on ``_admin/events`` (bus only).
A stream is counted once, when it opens. Dates are UTC.

PERF: the counts are summed in memory and written with one ``engine.incr``
per entity each ``FLUSH_S`` (4 writes a second instead of 4 per request);
a crash loses at most that last second of accounting, never user data.
"""
from __future__ import annotations

import logging
import re
import threading
import time

from .metrics import Metrics

log = logging.getLogger("ocean.web.accounting")
FLUSH_S = 1.0
_PARAM = re.compile(r"\{[^}]*\}")


def template_of(req) -> str:
    """The route template of a request, never its raw path (``/entity/*``)."""
    tmpl = req.uri_template
    if tmpl:
        return _PARAM.sub("*", tmpl)
    if req.path == "/admin" or req.path.startswith("/admin/"):
        return "/admin/*" if req.path != "/admin" else "/admin"
    return "(unmatched)"


class Accounting:
    """Falcon middleware: time each request, count it, publish it, feed /metrics."""

    def __init__(self, engine, enabled: bool = True):
        self.engine = engine
        self.enabled = enabled
        self.metrics = Metrics()
        self._pending: dict[tuple[str, str], dict[str, float]] = {}
        self._lock = threading.Lock()
        self._flusher = None
        self._stop = threading.Event()

    def process_request(self, req, resp) -> None:
        req.context.t0 = time.perf_counter()

    def process_response(self, req, resp, resource, req_succeeded) -> None:
        seconds = time.perf_counter() - req.context.get("t0", time.perf_counter())
        status = resp.status[:3] if isinstance(resp.status, str) else str(int(resp.status))
        template = template_of(req)
        self.metrics.observe(req.method, template, status, seconds)
        if not self.enabled:
            return
        ms = round(seconds * 1000, 3)
        now = time.gmtime()
        day, hour = time.strftime("%Y-%m-%d", now), time.strftime("%Y-%m-%dT%H", now)
        err = 1 if int(status) >= 400 else 0
        with self._lock:
            for route, key, fields in (
                ("_admin/daily", day, {"requests": 1, "errors": err, "ms_total": ms}),
                ("_admin/hourly", hour, {"requests": 1, "errors": err, "ms_total": ms}),
                ("_admin/endpoints", day, {f"{req.method} {template}": 1}),
                ("_admin/status", day, {status: 1}),
            ):
                acc = self._pending.setdefault((route, key), {})
                for name, n in fields.items():
                    acc[name] = acc.get(name, 0) + n
        self._start()
        try:
            self.engine.publish("_admin/events", {"method": req.method, "path": req.path, "status": int(status), "ms": ms})
        except Exception:  # accounting must never fail a request
            log.exception("publishing _admin/events failed")

    def _start(self) -> None:
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._run, name="ocean-accounting", daemon=True)
            self._flusher.start()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_S):
            self.flush()

    def flush(self) -> None:
        """Write the summed counts to the engine (one ``incr`` per entity)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for (route, key), amounts in pending.items():
            amounts = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in amounts.items()}
            try:
                self.engine.incr(route, key, amounts, source="server")
            except Exception:
                log.exception("accounting write to %s @%s failed", route, key)

    def close(self) -> None:
        """Stop the flusher and write what is pending (called before the engine closes)."""
        self._stop.set()
        self.flush()
