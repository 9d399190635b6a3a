"""Hostile input: thousands of generated and mutated raw requests against every endpoint.

Zero 5xx answers, zero tracebacks in any body, the same worker alive (no
crash-and-respawn hidden by gunicorn) and a healthy server afterwards. The
corpus is seeded (``OCEAN_FUZZ_SEED``) and bounded both in count
(``OCEAN_FUZZ_COUNT``) and in time (``OCEAN_FUZZ_SECONDS``). Requests that
ever broke something are kept in ``hostile_regressions.json`` and replayed first.
"""
import json
import os
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import hostile
from probes import Client, status_of, worker_pid
from serverproc import Server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = int(os.environ.get("OCEAN_FUZZ_SEED", "20261129"))
COUNT = int(os.environ.get("OCEAN_FUZZ_COUNT", "6000"))
SECONDS = float(os.environ.get("OCEAN_FUZZ_SECONDS", "60"))
REGRESSIONS = os.path.join(HERE, "hostile_regressions.json")


def exchange(port: int, raw: bytes, timeout: float = 5.0) -> bytes:
    """Send ``raw`` and read the answer: until close, a complete body, or the head of a stream."""
    out = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            try:
                s.sendall(raw)
                s.shutdown(socket.SHUT_WR)  # the whole request is sent: a short body ends here
            except (BrokenPipeError, ConnectionResetError):
                pass
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    break
                if not chunk:
                    break
                out += chunk
                head, sep, body = out.partition(b"\r\n\r\n")
                if sep and b"text/event-stream" in head.lower():
                    break  # a stream opened: its head is the answer
                if sep and b"\r\ncontent-length:" in head.lower():
                    n = int(head.lower().split(b"\r\ncontent-length:")[1].split(b"\r\n")[0])
                    if len(body) >= n and b"\r\n\r\nHTTP/" not in body:
                        break
    except socket.timeout:
        out += b"<timeout>"
    except OSError as exc:
        out += f"<{exc}>".encode()
    return out


def _bad(label: str, answer: bytes) -> str | None:
    status = status_of(answer)
    if status is None and not label.startswith(("framing", "garbage")):
        return "no HTTP answer"  # only broken framing may be dropped without one
    if status is not None and status >= 500:
        return f"status {status}"
    if b"Traceback" in answer or b'File "/' in answer:
        return "traceback in the body"
    if b'"code": "internal"' in answer or b'"code":"internal"' in answer:
        return "an internal error (a bug, even when the status is not 5xx)"
    if answer.endswith(b"<timeout>") and not answer.startswith(b"HTTP/"):
        return "no answer before the timeout"
    return None


def _seed_data(c: Client) -> None:
    docs = [{"route": "fuzz/c", "key": k, "payload": {"n": i, "name": k}} for i, k in enumerate("abc")]
    docs += [{"route": "fuzz/events", "payload": {"path": "/x", "status": s, "ms": s / 10}} for s in (200, 404, 500)]
    assert c.json("POST", "/drop", docs)[0] == 200


class Watcher:
    """An SSE client that reads everything on ``prefix`` and notes whether its stream ended."""

    def __init__(self, port: int, key: str, prefix: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(f"GET /live/{prefix} HTTP/1.1\r\nHost: x\r\nX-Ocean-Key: {key}\r\n\r\n".encode())
        self.data = bytearray()
        self.ended = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.data += chunk[-4096:] if len(self.data) > 1 << 20 else chunk
        except OSError:
            pass
        self.ended = True

    def saw(self, needle: bytes, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while needle not in self.data and time.monotonic() < deadline and not self.ended:
            time.sleep(0.05)
        return needle in self.data

    def close(self):
        self.sock.close()
        self.thread.join(5)


def _cases():
    with open(REGRESSIONS, encoding="utf-8") as f:
        return json.load(f)["cases"]


def _raw(text: str, key: str) -> bytes:
    return text.replace("{KEY}", key).encode("latin-1")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    srv = Server(str(tmp_path_factory.mktemp("hostile") / "data"), heartbeat_s=1, max_body_bytes=4 << 20).start()
    yield srv
    srv.stop(timeout=15)


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"], marks=[pytest.mark.xfail(
    reason="open: " + c["open"], strict=True)] if c.get("open") else []) for c in _cases()])
def test_regression_case(served, case):
    """Each request that once broke something now gets a proper answer."""
    for raw in case["requests"]:
        answer = exchange(served.port, _raw(raw, served.key))
        assert _bad("regression", answer) is None, answer[:600]


def test_thousands_of_hostile_requests_get_no_5xx(served):
    srv = served
    worker = worker_pid(srv.pid)
    log_start = len(srv.log())
    c = Client(srv.port, srv.key)
    _seed_data(c)
    watchers = [Watcher(srv.port, srv.key, p) for p in ("*", "fuzz/*", "_admin/events")]
    fixed = [("regression: " + c["name"], _raw(r, srv.key)) for c in _cases() if not c.get("open") for r in c["requests"]]
    corpus = fixed + list(hostile.generate(random.Random(SEED), srv.key, COUNT))
    failures, statuses, tried = [], {}, 0
    deadline = time.monotonic() + SECONDS

    def one(item):
        label, raw = item
        if time.monotonic() > deadline:
            return None
        return label, raw, exchange(srv.port, raw)

    with ThreadPoolExecutor(4) as pool:
        for res in pool.map(one, corpus):
            if res is None:
                continue
            label, raw, answer = res
            tried += 1
            st = status_of(answer)
            statuses[st] = statuses.get(st, 0) + 1
            why = _bad(label, answer)
            if why:
                failures.append((label, why, raw[:300], answer[:600]))
    print(f"hostile: seed {SEED}, {tried} requests tried of {len(corpus)}, statuses {sorted(statuses.items(), key=str)}, "
          f"5xx {sum(n for s, n in statuses.items() if s and s >= 500)}, failures {len(failures)}")
    for f in failures[:15]:
        print("FAIL", f)
    assert tried >= min(len(corpus), 1000), f"only {tried} requests in {SECONDS}s"
    assert not failures, failures[:5]
    # healthy afterwards: the same worker (no crash hidden by a respawn), answering normally
    assert worker_pid(srv.pid) == worker
    status, doc = c.json("GET", "/health")
    assert status == 200 and doc["ok"]
    assert c.json("POST", "/exec", "incr fuzz/after @k .n")[1][0]["data"] == {"n": 1}
    for w in watchers:  # every stream lived through it all and still delivers
        assert not w.ended, w.data[-500:]
        assert w.saw(b'"_route":"fuzz/after"') or w.saw(b'"_route":"_admin/events"'), w.data[-500:]
        w.close()
    assert "Traceback" not in srv.log()[log_start:], srv.log()[log_start:][-3000:]
    c.close()
