"""Which implementation of the hot kernels is in use: compiled ``_core`` or the pure twin.

The compiled module is required. ``OCEAN_PUREPYTHON=1`` swaps in
``ocean._reference`` (same names, same errors) -- for tests only, as the
oracle the compiled kernels are checked against. There is no silent fallback:
if ``_core`` is missing, ``core()`` raises ``CoreNotBuilt`` saying how to build it.
"""
from __future__ import annotations

import os

from .errors import CoreNotBuilt

PURE = os.environ.get("OCEAN_PUREPYTHON") == "1"
_import_error: str | None = None

if PURE:
    from . import _reference as _impl
else:
    try:
        from . import _core as _impl
    except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
        _impl = None
        _import_error = str(exc)

BUILD_HINT = (
    "ocean's compiled core (ocean._core) is not built. Install ocean with `pip install .` "
    "(needs gcc and the Python headers) or a prebuilt wheel, or in a source checkout run "
    "`python setup.py build_ext --inplace`."
)


def core():
    """The kernel module in use; raises CoreNotBuilt when the compiled core is missing."""
    if _impl is None:
        raise CoreNotBuilt(f"{BUILD_HINT} (import error: {_import_error})")
    return _impl


def kernel(name: str):
    """One kernel by name, for a module-level binding; None when the core is missing
    (``Engine`` and ``ocean serve`` call ``core()`` first and raise ``CoreNotBuilt``)."""
    return None if _impl is None else getattr(_impl, name)


def implementation() -> str:
    """``"compiled"`` or ``"pure"`` -- which kernels loaded (reported by /health)."""
    core()
    return "pure" if PURE else "compiled"
