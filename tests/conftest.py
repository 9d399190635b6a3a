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


@pytest.fixture
def make_server(tmp_path):
    """Start real ``ocean serve`` processes on ``tmp_path/data`` (or ``data=``), each on a free port
    (or ``port=``); all stopped by pid at teardown. Shared by every suite that serves."""
    from serverproc import Server

    started = []

    def make(data=None, port=None, **settings):
        srv = Server(str(data or tmp_path / "data"), port=port, **settings)
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.stop(timeout=15)
