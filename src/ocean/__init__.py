"""ocean: a self-hosted, real-time data engine for analytics.

Public API: ``Engine``, ``Client`` (the HTTP client), ``errors`` and ``__version__`` -- nothing else.
"""
from . import errors
from ._version import __version__
from .engine import Engine
from .client import Client

__all__ = ["Engine", "Client", "errors", "__version__"]
