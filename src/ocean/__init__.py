"""ocean: a self-hosted, real-time data engine for analytics.

Public API: ``Engine``, ``errors`` and ``__version__`` -- nothing else.
"""
from . import errors
from ._version import __version__
from .engine import Engine

__all__ = ["Engine", "errors", "__version__"]
