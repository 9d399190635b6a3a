"""Helpers every benchmark uses, so each one checks its answer in full and in short mode.

CI runs ``pytest bench --benchmark-disable``: each benchmarked function then runs
once, with no statistics. ``Counted`` tells a benchmark how many times its
function really ran (so totals are asserted exactly either way), and ``rate``
gives a per-second figure, or None when there are no statistics.
"""
from __future__ import annotations


class Counted:
    """Wrap a function and count its calls (``.calls``)."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def rate(benchmark, amount: float, digits: int = 0):
    """``amount`` per second at the median round, or None when benchmarking is disabled."""
    stats = getattr(benchmark, "stats", None)
    if stats is None:
        return None
    return round(amount / stats.stats.median, digits or None)
