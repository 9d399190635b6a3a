"""Which kernels loaded: the compiled core by default, the twin only when asked, never silently."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ocean

# where the ocean under test lives (the source tree, or site-packages after pip install)
SRC = str(Path(ocean.__file__).resolve().parents[1])


def _python(code: str, **env_overrides) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OCEAN_PUREPYTHON"}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(os.environ.get("OCEAN_PUREPYTHON") == "1", reason="the twin was asked for")
def test_compiled_core_is_the_one_loaded():
    from ocean import kernels

    core = kernels.core()
    assert core.__name__ == "ocean._core"
    assert core.__file__.endswith((".so", ".pyd")), core.__file__
    assert core.IMPLEMENTATION == "compiled"
    assert kernels.implementation() == "compiled"
    assert not hasattr(core.CounterTable(), "__dict__")  # an extension type, not the twin's class


def test_purepython_env_selects_the_twin():
    proc = _python(
        """
        from ocean import kernels
        core = kernels.core()
        print(core.__name__, core.IMPLEMENTATION, kernels.implementation())
        """,
        OCEAN_PUREPYTHON="1",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ocean._reference", "pure", "pure"]


def test_missing_core_raises_core_not_built_with_build_hint():
    proc = _python(
        """
        import sys
        sys.modules["ocean._core"] = None  # as if the extension was never built
        from ocean import kernels
        from ocean.errors import CoreNotBuilt
        try:
            kernels.core()
        except CoreNotBuilt as exc:
            print("RAISED", exc)
        else:
            print("NO ERROR")
        """
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("RAISED"), out
    assert "pip install ." in out and "build_ext --inplace" in out
