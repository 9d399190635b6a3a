"""Low-level probes for the reliability suite: raw HTTP, keep-alive clients, /proc readings.

Everything talks to 127.0.0.1 only.
"""
import http.client
import json
import os
import time

from serverproc import ADMIN_KEY


class Client:
    """One keep-alive HTTP/1.1 connection; ``call`` answers ``(status, headers, body bytes)``."""

    def __init__(self, port: int, key: str | None = ADMIN_KEY, timeout: float = 10.0):
        self.port, self.key, self.timeout = port, key, timeout
        self.conn = None

    def call(self, method: str, path: str, body=None, headers=None, key=..., retry: bool = True):
        """One request; a keep-alive connection the server closed is reopened once when ``retry``."""
        key = self.key if key is ... else key
        hdrs = {}
        if key:
            hdrs["X-Ocean-Key"] = key
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        elif isinstance(body, str):
            body = body.encode()
            hdrs["Content-Type"] = "text/plain"
        hdrs.update(headers or {})
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt or not retry:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body=None, headers=None, key=...):
        status, _, data = self.call(method, path, body, headers, key)
        return status, json.loads(data) if data else None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def status_of(answer: bytes) -> int | None:
    """The status code of a raw HTTP answer (None when there is none)."""
    if not answer.startswith(b"HTTP/"):
        return None
    try:
        return int(answer.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def worker_pid(master: int, timeout: float = 10.0) -> int:
    """The gunicorn worker: the one child of the master."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{master}/task/{master}/children") as f:
                kids = f.read().split()
        except FileNotFoundError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    raise AssertionError(f"no worker under master {master}")


def rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (``VmRSS`` of /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def fd_count(pid: int) -> int:
    """Open file descriptors of ``pid``."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def metric(text: str, name: str) -> float:
    """One unlabelled value from Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in metrics")
