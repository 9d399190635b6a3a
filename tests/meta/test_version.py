"""One version, read from one place (``ocean/_version.py``): the CLI, the package and its metadata agree.

Meaningful where ocean is installed (a wheel, ``pip install .``): ``wheels/check`` and
cibuildwheel run it against each wheel. From a bare source tree there is no metadata and no
console script, so it skips.
"""
import importlib.metadata
import os
import subprocess
import sysconfig

import pytest

import ocean


def _installed_distribution():
    """The installed ``ocean`` distribution, if it is the one this process imported; else skip."""
    try:
        dist = importlib.metadata.distribution("ocean")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("ocean is not installed (run from a source tree)")
    imported = os.path.realpath(ocean.__file__)
    if not any(os.path.realpath(f.locate()) == imported for f in dist.files or ()):
        pytest.skip(f"the ocean imported ({imported}) is not the installed distribution's")
    return dist


def test_cli_package_and_metadata_agree_on_the_version():
    dist = _installed_distribution()
    script = os.path.join(sysconfig.get_path("scripts"), "ocean")
    if not os.path.exists(script):
        pytest.skip(f"the `ocean` console script is not installed ({script})")
    proc = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ocean", ocean.__version__]
    assert ocean.__version__ == dist.version == importlib.metadata.version("ocean")
