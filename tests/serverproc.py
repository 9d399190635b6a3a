"""A real ``ocean serve`` (gunicorn + gevent) in a subprocess, for integration tests and benchmarks.

The server runs in its own process group on a free 127.0.0.1 port with a
known admin key (``OCEAN_ADMIN_KEY``); ``stop()`` signals that group by its
pid and waits, so nothing outlives the test.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import ocean

# The server runs the same ocean this process imported (a source tree built in place, or an install).
SRC = os.path.dirname(os.path.dirname(os.path.abspath(ocean.__file__)))
PASSED_THROUGH = ("OCEAN_PUREPYTHON", "OCEAN_WORKER_CLASS")
ADMIN_KEY = "test-admin-key-0123456789abcdef0123456789"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One ``ocean serve`` process: ``url``, ``key``, ``data``, ``pid``, ``log()``."""

    def __init__(self, data: str, port: int | None = None, env: dict | None = None,
                 admin_key: str | None = ADMIN_KEY, **settings):
        self.data = data
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = admin_key  # None: no OCEAN_ADMIN_KEY, the first start makes and prints one
        self.settings = settings
        self.extra_env = env or {}
        self.proc = None
        self.log_path = os.path.join(os.path.dirname(os.path.abspath(data)), f"server-{self.port}.log")

    def start(self, timeout: float = 20.0) -> "Server":
        # Settings come only from this object; which kernels to use (OCEAN_PUREPYTHON) and which
        # HTTP worker (OCEAN_WORKER_CLASS: CI runs some suites once more under the stock one) pass through.
        env = {k: v for k, v in os.environ.items() if not k.startswith("OCEAN_") or k in PASSED_THROUGH}
        env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
        if self.key:
            env["OCEAN_ADMIN_KEY"] = self.key
        env.update(self.extra_env)
        argv = [sys.executable, "-m", "ocean", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--data", self.data]
        for name, value in self.settings.items():
            argv += ["--" + name.replace("_", "-"), str(value)]
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, env=env, stdout=self._logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ocean serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.get_json("/health").get("ok"):
                    return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"ocean serve did not become healthy in {timeout}s:\n{self.log()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def get_json(self, path: str, timeout: float = 5.0):
        req = urllib.request.Request(self.url + path, headers={"X-Ocean-Key": self.key} if self.key else {})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def post_json(self, path: str, doc, timeout: float = 10.0):
        req = urllib.request.Request(self.url + path, data=json.dumps(doc).encode(), method="POST",
                                     headers={"X-Ocean-Key": self.key, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def stop(self, sig=signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the server (its master, by pid) and wait; SIGKILL its group if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return self._finish()
        try:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return self._finish()

    def kill(self) -> int:
        """SIGKILL the whole process group (master and worker) by the master's pid."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        return self._finish()

    def _finish(self) -> int:
        # A worker left behind (master killed alone) is ended by its group id, which is our pid.
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self._logf.close()
            return self.proc.returncode
        return 0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
