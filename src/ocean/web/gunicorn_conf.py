"""gunicorn settings for ocean: ``gunicorn -c path/to/gunicorn_conf.py`` (``ocean serve`` runs this).

One gevent worker owns the data directory (the engine is embedded), so
``workers`` is 1 there; with ``store`` (Redis holds the data) it is ``--workers``; ``worker_connections`` bounds open connections,
SSE streams included. Values come from ``ocean.settings`` (``OCEAN_*`` env).
No ``preload_app``: the engine opens in the worker, after fork. SIGTERM
drains: gunicorn stops accepting and lets requests finish, our hook ends
the SSE streams, and ``worker_exit`` flushes, fsyncs and closes the engine.

NOTE: this is the serving entry point, the one place that imports gevent. It
monkey-patches before anything imports ocean, so the engine's ``threading``
locks and events are gevent's in the master and the forked worker alike.
"""
from gevent import monkey

monkey.patch_all()

import socket  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402

from ocean.settings import Settings  # noqa: E402

_settings = Settings.load()
if _settings.workers != 1 and not _settings.store:
    sys.exit("ocean: --workers must be 1: the embedded engine lives in one process that owns "
             "the data directory (a second process would be refused the lock); one gevent worker "
             "serves thousands of connections")

_host = f"[{_settings.host}]" if ":" in _settings.host else _settings.host  # an IPv6 literal needs brackets
bind = f"{_host}:{_settings.port}"
workers = _settings.workers if _settings.store else 1  # Redis holds the data: any number of workers share it
# ocean's own worker (httptools, one send per answer) unless OCEAN_WORKER_CLASS=gevent asks for the stock one.
worker_class = "ocean.web.worker.OceanWorker" if _settings.worker_class == "ocean" else "gevent"
worker_connections = _settings.worker_connections
graceful_timeout = _settings.graceful_timeout
timeout = 0  # no heartbeat kill: opening a big data directory (log replay) precedes the first heartbeat
keepalive = 2  # seconds an idle keep-alive connection is held; SIGTERM waits for idle ones too
backlog = 4096
preload_app = False
wsgi_app = "ocean.web.wsgi:app"
proc_name = "ocean"
control_socket_disable = True  # gunicorn >= 24's control socket is one fixed path per user: servers would clash
accesslog = _settings.access_log or None  # off by default; "-" is stdout
# The path without its query (no ?_key=) and no header: a key is never logged. OceanWorker writes
# the same fields itself, with the milliseconds to a tenth.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'


def on_starting(server):
    """Master, before anything: create the admin key on the first start and print it once; Ctrl-C drains."""
    from ocean.keys import KeyStore

    if _settings.store:  # the keys live in Redis (the master opens it once, to make the first admin key)
        from ocean.redisstore import RedisEngine
        from ocean.redisstore.keystore import RedisKeyStore
        engine = RedisEngine(_settings.store, settings=_settings)
        try:
            token = RedisKeyStore(engine).ensure_admin()
        finally:
            engine.close()
    else:
        token = KeyStore(_settings.data).ensure_admin()
    if token:
        print(f"admin key: {token}", flush=True)
        print("  (shown once; only its hash is stored. Create scoped keys with `ocean key create`.)", flush=True)
    # Ctrl-C (SIGINT) to the master is SIGTERM's graceful stop, not gunicorn's quick one; a
    # second Ctrl-C during it is the quick stop (SIGQUIT to the worker, SIGKILL 2 s later).
    server.handle_int = server.handle_term


def post_worker_init(worker):
    """Worker, once the app (and so the engine) opened: only now say where it serves.

    NOTE: not ``when_ready`` (the master, before the worker opens the data directory):
    a server refused its directory must never have said ``serving``.
    """
    host = _host if _settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
    where = f"store: {_settings.store}, worker {worker.pid}" if _settings.store else f"data: {_settings.data}"
    print(f"ocean {_version()} serving http://{host}:{_settings.port} ({where}, "
          f"fsync: {_settings.fsync})", flush=True)


def post_fork(server, worker):
    """Worker, after fork: TCP_NODELAY on accepted sockets, SIGTERM/SIGINT end streams, fsync off-loop."""
    import logging

    from ocean.web import serving

    ocean_log = logging.getLogger("ocean")
    ocean_log.handlers = list(server.log.error_log.handlers)
    ocean_log.setLevel(logging.INFO)
    ocean_log.propagate = False
    serving.offload = lambda fn, *args: gevent.get_hub().threadpool.apply(fn, args)
    serving.turn = gevent.idle  # a long export's turn: others' I/O is polled (sleep(0) would starve it)
    _raise_open_files(worker_connections + 256)
    serving.freeze_settings(worker.cfg)
    handle, handle_exit = worker.handle, worker.handle_exit

    def handle_nodelay(listener, client, addr):
        # Without it, small keep-alive responses wait ~40 ms for Nagle + delayed ACK.
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return handle(listener, client, addr)

    def handle_term(sig, frame):
        handle_exit(sig, frame)
        gevent.spawn(serving.drain)

    worker.handle = handle_nodelay
    worker.handle_exit = handle_term
    # SIGINT (Ctrl-C reaches the whole process group) and SIGQUIT drain the same way.
    # gunicorn's own quit exits from a greenlet 0.1 s later, and a second signal raised
    # SystemExit inside ``worker_exit``, so the engine was never closed.
    worker.handle_quit = handle_term


def worker_exit(server, worker):
    """Worker, on the way out (also after SIGTERM): flush, fsync and close the engine."""
    from ocean.web import serving

    serving.close()


def _raise_open_files(want: int) -> None:
    """Lift the soft open-files limit (often 1024) toward ``want`` so streams are not refused."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _version():
    from ocean._version import __version__

    return __version__
