"""Request accounting (SPEC section 6): every request counted on the ``_admin/*`` routes.

Each request adds to ``_admin/daily @YYYY-MM-DD`` and ``_admin/hourly
@YYYY-MM-DDTHH`` (``requests``, ``errors``, ``ms_total``, and its time to the dist field
``ms``, whose p50/p95 the dashboard shows), ``_admin/endpoints
@YYYY-MM-DD`` (one field per route template, like ``"GET /entity/*"``) and
``_admin/status @YYYY-MM-DD`` (one field per status, like ``"200"``), and
``{method, path, status, ms}`` is published on ``_admin/events`` (bus only).
A stream is counted once, when it opens. Dates and hours are local to the ``timezone``
setting (UTC by default), in the formats of the ``{day}`` and ``{hour}`` key placeholders
(``ocean.timekeys``); ``/health`` names the zone so that the dashboard reads the same keys.

PERF: the counts are summed in memory and written with one ``engine.incr``
per entity each ``FLUSH_S`` (4 writes a second instead of 4 per request); the times
go to ``ms`` as ``[value, count]`` pairs of times rounded to 3 significant digits (well
inside the sketch's 1%), so a second of requests logs a few hundred pairs at most, not
one number per request;
a crash loses at most that last second of accounting, never user data.
A request only appends one tuple to a deque (atomic, no lock: under gevent a
lock is a Python-level object costing ~1 us a pair); the flusher, ``flush``
and ``/metrics`` drain it into the sums and the Prometheus figures.
"""
from __future__ import annotations

import collections
import logging
import re
import threading
import time
from datetime import datetime

from .. import timekeys
from .metrics import Metrics

log = logging.getLogger("ocean.web.accounting")
FLUSH_S = 1.0
DRAIN_AT = 4096  # requests seen but not yet summed: past this a request drains them itself
_PARAM = re.compile(r"\{[^}]*\}")


_templates: dict[str, str] = {}


def template_of(req) -> str:
    """The route template of a request, never its raw path (``/entity/*``)."""
    tmpl = req.uri_template
    if tmpl:
        out = _templates.get(tmpl)
        if out is None:
            out = _templates[tmpl] = _PARAM.sub("*", tmpl)
        return out
    if req.path == "/admin" or req.path.startswith("/admin/"):
        return "/admin/*" if req.path != "/admin" else "/admin"
    return "(unmatched)"


def _rounded(ms: float) -> float:
    """``ms`` to 3 significant digits (0.01234 -> 0.0123, 1234.5 -> 1230.0)."""
    return float(f"{ms:.3g}") if ms > 0 else 0.0


class Accounting:
    """Falcon middleware: time each request, count it, publish it, feed /metrics."""

    def __init__(self, engine, enabled: bool = True):
        self.engine = engine
        self.enabled = enabled
        self.metrics = Metrics()
        # (method, template, status, seconds, wall time) of each request not yet summed
        self._seen: collections.deque = collections.deque()
        # (hour "YYYY-MM-DDTHH", "METHOD /template", status) -> [requests, ms_total]
        self._pending: dict[tuple[str, str, str], list] = {}
        self._times: dict[str, dict[float, int]] = {}  # hour -> {ms rounded: requests}, for the ms dist field
        self._lock = threading.Lock()  # held by the summing side only, never by a request
        self._flusher = None
        self._stop = threading.Event()
        self._hour_start, self._hour = 0.0, ""
        self.timezone = getattr(getattr(engine, "settings", None), "timezone", "UTC")

    def process_request(self, req, resp) -> None:
        req.context.t0 = time.perf_counter()

    def _hour_key(self, now: float) -> str:
        """The local hour key (``2026-02-10T14``) of wall time ``now`` in the timezone setting.

        NOTE: cached for the local hour that holds ``now`` (an hour after its local start); a
        zone whose DST shifts by half an hour (Lord Howe) may count up to 30 minutes of that one
        night into the neighbouring hour.
        """
        if not self._hour_start <= now < self._hour_start + 3600:
            local = datetime.fromtimestamp(now, timekeys.zone(self.timezone))
            self._hour_start = now - (local.minute * 60 + local.second + local.microsecond / 1e6)
            self._hour = timekeys.period("hour", int(now * 1000), self.timezone)
        return self._hour

    def process_response(self, req, resp, resource, req_succeeded) -> None:
        t1 = time.perf_counter()
        seconds = t1 - req.context.get("t0", t1)
        status = resp.status
        status = status[:3] if isinstance(status, str) else str(int(status))
        seen = self._seen
        seen.append((req.method, template_of(req), status, seconds, time.time()))
        if len(seen) >= DRAIN_AT:
            self.drain()
        if not self.enabled:
            return
        if self._flusher is None:
            self._start()
        try:
            self.engine.publish("_admin/events", {"method": req.method, "path": req.path, "status": int(status),
                                                  "ms": round(seconds * 1000, 3)})
        except Exception:  # accounting must never fail a request
            log.exception("publishing _admin/events failed")

    def drain(self) -> None:
        """Sum the requests seen so far into the metrics and (when enabled) the pending counts."""
        seen, observe, pending = self._seen, self.metrics.observe, self._pending
        with self._lock:
            while seen:
                method, template, status, seconds, now = seen.popleft()
                observe(method, template, status, seconds)
                if not self.enabled:
                    continue
                hour = self._hour_key(now)
                ms = _rounded(seconds * 1000)
                times = self._times.get(hour)
                if times is None:
                    times = self._times[hour] = {}
                times[ms] = times.get(ms, 0) + 1
                key = (hour, f"{method} {template}", status)
                acc = pending.get(key)
                if acc is None:
                    pending[key] = [1, seconds * 1000]
                else:
                    acc[0] += 1
                    acc[1] += seconds * 1000

    def render_metrics(self, stats: dict, sse_clients: int) -> str:
        """The Prometheus text, counting every request answered so far."""
        self.drain()
        return self.metrics.render(stats, sse_clients)

    def _start(self) -> None:
        self._flusher = threading.Thread(target=self._run, name="ocean-accounting", daemon=True)
        self._flusher.start()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_S):
            self.flush()

    @staticmethod
    def _entities(pending) -> dict[tuple[str, str], dict]:
        """The summed increments per (route, key) of the four ``_admin`` entities."""
        out: dict[tuple[str, str], dict] = {}

        def add(route, key, field, n):
            fields = out.setdefault((route, key), {})
            fields[field] = fields.get(field, 0) + n

        for (hour, endpoint, status), (n, ms) in pending.items():
            day, err = hour[:10], n if int(status) >= 400 else 0
            for route, key in (("_admin/daily", day), ("_admin/hourly", hour)):
                add(route, key, "requests", n)
                add(route, key, "errors", err)
                add(route, key, "ms_total", round(ms, 3))
            add("_admin/endpoints", day, endpoint, n)
            add("_admin/status", day, status, n)
        return out

    def flush(self) -> None:
        """Write the summed counts to the engine (one ``incr`` per entity)."""
        self.drain()
        with self._lock:
            pending, self._pending = self._pending, {}
            times, self._times = self._times, {}
        for (route, key), amounts in self._entities(pending).items():
            amounts = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in amounts.items()}
            try:
                self.engine.incr(route, key, amounts, source="server")
            except Exception:
                log.exception("accounting write to %s @%s failed", route, key)
        for (route, key), pairs in self._distributions(times).items():
            try:
                self.engine.observe(route, key, {"ms": pairs}, source="server")
            except Exception:
                log.exception("accounting write to %s @%s failed", route, key)

    @staticmethod
    def _distributions(times) -> dict[tuple[str, str], list]:
        """The ``[ms, requests]`` pairs of ``_admin/daily`` and ``_admin/hourly`` per key."""
        out: dict[tuple[str, str], dict] = {}
        for hour, counts in times.items():
            for route, key in (("_admin/daily", hour[:10]), ("_admin/hourly", hour)):
                acc = out.setdefault((route, key), {})
                for ms, n in counts.items():
                    acc[ms] = acc.get(ms, 0) + n
        return {rk: [[ms, n] for ms, n in sorted(acc.items())] for rk, acc in out.items()}

    def close(self) -> None:
        """Stop the flusher and write what is pending (called before the engine closes)."""
        self._stop.set()
        self.flush()
