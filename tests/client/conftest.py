"""Client fixtures: real ``ocean serve`` processes, and a ``Client`` on each."""
import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from serverproc import Server  # noqa: E402

from ocean import Client  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server shared by a module's tests (heartbeat 1 s so idle streams show life quickly)."""
    srv = Server(str(tmp_path_factory.mktemp("client") / "data"), heartbeat_s=1).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with Client(server.url, key=server.key, timeout=10) as c:
        yield c


class Collector:
    """Iterates a ``Stream`` in a thread; ``wait_for(pred)`` polls what arrived (bounded)."""

    def __init__(self, stream):
        self.stream = stream
        self.items = []
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for item in self.stream:
                self.items.append(item)
        except Exception as exc:  # kept for the test to look at
            self.error = exc

    def messages(self):
        return [m for m in self.items if m.type == "message"]

    def wait_for(self, pred, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self):
                return True
            if not self.thread.is_alive():
                break
            time.sleep(0.02)
        return pred(self)

    def stop(self):
        self.stream.close()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the stream did not stop on close()"


@pytest.fixture
def collect():
    """``collect(stream)``: a ``Collector`` over it, stopped at teardown."""
    made = []

    def make(stream):
        c = Collector(stream)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()
