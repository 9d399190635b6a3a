"""The falcon app: routes, middleware, and the one JSON error shape for every failure.

Every error a client sees is ``OceanError.to_dict()`` with its ``status``:
ocean errors as they are, falcon's own HTTP errors (404, 405, bad params)
mapped onto the catalog, and anything unexpected logged server-side and
answered ``{"ok": false, "code": "internal"}`` (500) with no traceback.
"""
from __future__ import annotations

import logging
import os
import time

import falcon

from .. import errors, sql
from .accounting import Accounting
from .body import dumps
from .resources import admin, backup, drop, entity, health, live, query
from .resources import transfer as transfer_resources
from .sse import Streams

log = logging.getLogger("ocean.web")
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

_HTTP_CODES = {400: errors.BadRequest, 404: errors.NotFound, 405: errors.MethodNotAllowed,
               413: errors.PayloadTooLarge, 415: errors.UnsupportedMediaType}


class Service:
    """What the resources share: the engine, settings, key store, open streams, accounting."""

    def __init__(self, engine, settings, keys):
        self.engine = engine
        self.settings = settings
        self.keys = keys
        self.started = time.monotonic()
        self.streams = Streams(keys, settings)
        self.accounting = Accounting(engine, enabled=settings.accounting)
        self.turn = _short_sleep  # the serving entry point sets its event loop's own (gevent.idle)

    def close(self) -> None:
        """End every stream and write pending accounting (before the engine closes)."""
        self.streams.drain()
        self.accounting.close()


def _short_sleep() -> None:
    """A turn for other requests where no event loop hook is set: under gevent's patched
    ``time`` a timer, so the loop polls I/O (``sleep(0)`` would not); in threads, ~50 us."""
    time.sleep(1e-6)


def _send(resp, err: errors.OceanError) -> None:
    resp.status = falcon.code_to_http_status(err.status)
    resp.content_type = falcon.MEDIA_JSON  # a stream may have set text/event-stream already
    resp.stream = None
    resp.media = err.to_dict()


def _on_ocean_error(req, resp, ex, params):
    _send(resp, ex)


def _on_http_error(req, resp, ex, params):
    if ex.headers:
        resp.set_headers(ex.headers)
    cls = _HTTP_CODES.get(ex.status_code)
    if ex.status_code == 404 and req.uri_template is None:
        message = f"no endpoint at {req.method} {req.path}"
    elif ex.status_code == 405:
        message = f"{req.method} is not allowed on {req.path} (allowed: {(ex.headers or {}).get('Allow', '-')})"
    else:
        message = ": ".join(p for p in (ex.title, ex.description) if p) or "request failed"
    err = cls(message) if cls else errors.OceanError(message)
    if cls is None:
        err.code, err.status = f"http_{ex.status_code}", ex.status_code
    _send(resp, err)


def _on_unexpected(req, resp, ex, params):
    log.error("unexpected error on %s %s", req.method, req.path, exc_info=ex)
    _send(resp, errors.InternalError("internal error; the server log has the details"))


class OceanApp(falcon.App):
    """falcon's App plus ``service``: what the resources share (closed on shutdown)."""

    service: Service


def create_app(engine, settings, keys, static_dir: str = STATIC_DIR) -> OceanApp:
    """The WSGI app over ``engine``; ``app.service`` holds what it shares (for closing).

    ``static_dir`` holds the dashboard served at ``/admin`` and its client, also served
    as ``/ocean.js`` (no key needed for either).
    """
    svc = Service(engine, settings, keys)
    sql.set_turn(engine, lambda: svc.turn())  # a big route's first SQL build gives the loop turns
    app = OceanApp(middleware=[falcon.CORSMiddleware(allow_origins="*", expose_headers="*"), svc.accounting])
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(dumps=dumps)
    app.add_error_handler(Exception, _on_unexpected)
    app.add_error_handler(falcon.HTTPError, _on_http_error)
    app.add_error_handler(errors.OceanError, _on_ocean_error)

    app.add_route("/exec", query.Exec(svc))
    app.add_route("/sql", query.Sql(svc))
    app.add_route("/drop", drop.Drop(svc))
    app.add_route("/entity/{rest:path}", entity.Entity(svc))
    app.add_route("/entities/{route:path}", entity.Entities(svc))
    app.add_route("/live/{prefix:path}", live.Live(svc))
    app.add_route("/stream/{prefix:path}", live.Stream(svc))
    app.add_route("/export/{target:path}", transfer_resources.Export(svc))
    app.add_route("/import", transfer_resources.Import(svc))
    app.add_route("/health", health.Health(svc))
    app.add_route("/metrics", health.Metrics(svc))
    app.add_route("/admin/backup", backup.Backup(svc))
    app.add_route("/admin", admin.Index(static_dir))
    app.add_route("/admin/", admin.Index(static_dir))
    app.add_static_route("/admin", os.path.abspath(static_dir))
    app.add_route("/ocean.js", admin.Script(static_dir))  # the public browser client, no key
    app.service = svc
    return app
