"""CLI fixtures: real ``ocean serve`` processes for exec and sql (helpers to run ``ocean`` are in cliproc)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from serverproc import Server  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server shared by a module's tests."""
    srv = Server(str(tmp_path_factory.mktemp("served") / "data")).start()
    yield srv
    srv.stop()
