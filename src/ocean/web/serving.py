"""The one engine of a serving worker: opened after fork, closed on exit (no gevent here).

gunicorn's config (``gunicorn_conf.py``) owns the process hooks and passes in
gevent's threadpool as ``offload``; this module only builds and tears down
the engine, the key store and the app, so the worker owns the data directory.
"""
from __future__ import annotations

import gc
import logging
import sys

from ..errors import OceanError
from ..settings import Settings

log = logging.getLogger("ocean.web")
BOOT_ERROR = 3  # gunicorn's WORKER_BOOT_ERROR: the master stops instead of respawning

offload = None  # set by gunicorn_conf: runs fsync/snapshot writes off the event loop
turn = None  # set by gunicorn_conf: lets the other ready requests run (and polls I/O), see Service.turn
_app = None


def app():
    """The worker's app, opening the engine on first use."""
    global _app
    if _app is None:
        from .app import create_app

        settings = Settings.load()
        try:
            engine, keys = open_store(settings)
        except OceanError as exc:
            print(f"ocean: cannot open {settings.store or settings.data}: {exc.message}", file=sys.stderr, flush=True)
            sys.exit(BOOT_ERROR)
        _app = create_app(engine, settings, keys)
        _on_key_changes(engine, keys, _app.service.streams)
        if turn is not None:
            _app.service.turn = turn
        # PERF: what the worker built to start (modules, the replayed state, the app) lives as
        # long as the worker; frozen out of the cyclic collector's sight, a full collection
        # during a storm of SSE connects walks the streams' objects only, not the whole heap
        # (100-240 ms per full pass at 5,000 streams before).
        gc.freeze()
        # PERF: a request allocates a few hundred containers; at CPython's default gen-0
        # threshold (700) the collector ran every few requests and took ~20 us of each
        # (worker CPU per GET /health: 172 us with it, 152 us with the collector off).
        # Collecting every 20,000 allocations keeps cyclic garbage bounded for a fraction.
        gc.set_threshold(20000, 10, 10)
    return _app


def open_store(settings):
    """``(engine, key store)``: the embedded ones on the data directory, or Redis's (``store`` set)."""
    if settings.store:
        from ..redisstore import RedisEngine
        from ..redisstore.keystore import RedisKeyStore
        engine = RedisEngine(settings.store, settings=settings)
        return engine, RedisKeyStore(engine)
    from ..engine import Engine
    from ..keys import KeyStore
    engine = Engine(settings.data, settings=settings, offload=offload, fork_snapshots=True)
    return engine, KeyStore(settings.data)


def _on_key_changes(engine, keys, streams) -> None:
    """Redis mode: a key revoked on any node ends this worker's streams of it at once (the broadcast),
    not at the ticker's next look."""
    hub = getattr(engine, "_live", None)
    if hub is None or not hasattr(keys, "changed"):
        return

    def changed():
        keys.changed()
        streams._revoke()

    hub().on_keys.append(changed)
    hub().start()


def freeze_settings(cfg) -> None:
    """Give the worker's gunicorn config its values as plain attributes.

    PERF: gunicorn reads ~20 settings per request (``cfg.keepalive``,
    ``cfg.strip_header_spaces``...), each through ``Config.__getattr__`` and
    ``Setting.get()``: ~1 us apiece, 18-20 us of every request. A worker never
    changes its settings (a reload forks new workers, which freeze afresh), so
    each value is stored on the instance, where the lookup finds it directly.
    Names the class defines itself (properties such as ``address``, methods)
    are left alone.
    """
    cls = type(cfg)
    for name, setting in cfg.settings.items():
        if not hasattr(cls, name):
            object.__setattr__(cfg, name, setting.get())


def drain() -> None:
    """SIGTERM: end every stream now (requests in flight finish; gunicorn stops accepting)."""
    if _app is not None:
        _app.service.streams.drain()


def close() -> None:
    """Worker exit: end streams, write pending accounting, flush+fsync and close the engine."""
    global _app
    if _app is None:
        return
    app_, _app = _app, None
    try:
        app_.service.close()
    finally:
        app_.service.engine.close()
        log.info("ocean: engine closed cleanly")
