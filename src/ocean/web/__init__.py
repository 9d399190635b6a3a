"""The HTTP service: the only package that imports falcon.

``create_app(engine, settings, keys)`` builds the falcon WSGI app;
``gunicorn_conf.py`` serves it with ocean's worker (``worker.py``), or gunicorn's gevent worker.
"""
from .app import create_app

__all__ = ["create_app"]
