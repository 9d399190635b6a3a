"""Helpers for the in-process web tests: the app over a real engine, an SSE reader, skips."""
import json
import time

from falcon import testing

from ocean import Engine
from ocean.keys import KeyStore
from ocean.settings import Settings
from ocean.web import create_app

ADMIN = "admin-token-for-tests-0123456789abcdef"


class Web:
    """The app, its parts, and clients with and without the admin key."""

    def __init__(self, data, **overrides):
        self.settings = Settings.load(environ={}, data=str(data), **overrides)
        self.engine = Engine(str(data), settings=self.settings, maintenance=False)
        self.keys = KeyStore(str(data), environ={"OCEAN_ADMIN_KEY": ADMIN})
        self.app = create_app(self.engine, self.settings, self.keys)
        self.client = testing.TestClient(self.app, headers={"X-Ocean-Key": ADMIN})
        self.anon = testing.TestClient(self.app)

    def as_key(self, token):
        return testing.TestClient(self.app, headers={"X-Ocean-Key": token})

    def close(self):
        self.app.service.close()
        self.engine.close()


class Reader:
    """Open ``path`` on the app and read its SSE chunks."""

    def __init__(self, app, path, query="", headers=None):
        self.status = None
        env = testing.create_environ(path=path, query_string=query, headers=headers or {"X-Ocean-Key": ADMIN})
        self.body = app(env, self._start)
        self.it = iter(self.body)
        self.text = ""

    def _start(self, status, headers, exc_info=None):
        self.status, self.headers = status, dict(headers)

    def read_until(self, needle: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            assert time.monotonic() < deadline, f"{needle!r} not seen in {self.text!r}"
            try:
                self.text += next(self.it).decode()
            except StopIteration:
                break
        return self.text

    def read_to_end(self, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        for chunk in self.it:
            self.text += chunk.decode()
            assert time.monotonic() < deadline, "stream did not end"
        return self.text

    def events(self):
        """(id, data) of every data message read so far."""
        out = []
        for block in self.text.split("\n\n"):
            lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line and not line.startswith(":"))
            if "data" in lines and "event" not in lines:
                out.append((int(lines["id"]), json.loads(lines["data"])))
        return out

    def close(self):
        self.body.close()
