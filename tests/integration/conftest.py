"""Integration fixtures: real ``ocean serve`` processes (gunicorn + gevent) on free loopback ports."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from serverproc import Server  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server shared by a module's tests (heartbeat 1 s so idle streams show life quickly)."""
    srv = Server(str(tmp_path_factory.mktemp("served") / "data"), heartbeat_s=1).start()
    yield srv
    srv.stop()
