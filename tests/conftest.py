"""Shared fixtures: a fresh engine on a temporary data directory; hypothesis profiles."""
import os

import pytest
from hypothesis import settings

# CI replays the same examples every run (a failure there is reproducible, never luck);
# by hand, hypothesis explores new examples each run.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

from ocean import Engine


@pytest.fixture
def make_engine(tmp_path):
    """Open engines on ``tmp_path/data`` (the same directory each call); all closed at teardown."""
    opened = []

    def make(**kw):
        kw.setdefault("maintenance", False)
        eng = Engine(str(tmp_path / "data"), **kw)
        opened.append(eng)
        return eng

    yield make
    for eng in opened:
        eng.close()


@pytest.fixture
def engine(make_engine):
    return make_engine()
