"""Reliability fixtures: real ``ocean serve`` processes, each stopped by its pid at teardown."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from serverproc import Server  # noqa: E402


@pytest.fixture
def make_server(tmp_path):
    """Start servers on ``tmp_path/data`` (or ``data=``); all stopped by pid at teardown."""
    started = []

    def make(data=None, **settings) -> Server:
        srv = Server(str(data or tmp_path / "data"), **settings)
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.stop(timeout=15)
