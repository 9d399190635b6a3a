"""Counter table facade: the engine's view of the compiled ``CounterTable`` kernel."""
from __future__ import annotations

from ..kernels import core


def new_table(shards: int = 64):
    """A fresh sharded counter table from the kernel in use (compiled, or the pure twin in tests)."""
    return core().CounterTable(shards)


def is_number(value) -> bool:
    """JSON numbers that can be counters (bools are not numbers here)."""
    return type(value) in (int, float)
