"""The embedded engine: entities, counters, events, the log and the bus -- no HTTP here."""
from .engine import Engine  # noqa: F401
