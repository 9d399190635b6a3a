"""Pure-Python twin of ``ocean._core``: the same names and errors, used as the test oracle.

Selected only by ``OCEAN_PUREPYTHON=1`` (see ``ocean.kernels``). Each module
mirrors one ``.pxi`` of the compiled core.
"""
from .counters import CounterTable  # noqa: F401

IMPLEMENTATION = "pure"
