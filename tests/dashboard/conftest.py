"""Fixtures for the dashboard's browser tests: a real ``ocean serve``, the system Chromium, a second origin.

Chromium is Debian's ``/usr/bin/chromium`` driven by Python playwright (never a
downloaded browser). Without it the tests skip, unless ``OCEAN_REQUIRE_SYSTEM_TOOLS=1``
(CI), where a missing browser is a failure.
"""
from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from serverproc import Server, free_port  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _missing(what: str):
    if os.environ.get("OCEAN_REQUIRE_SYSTEM_TOOLS") == "1":
        pytest.fail(f"{what} is required here (OCEAN_REQUIRE_SYSTEM_TOOLS=1)")
    pytest.skip(f"{what} is not available")


@pytest.fixture(scope="session")
def chromium():
    """The system Chromium under playwright, shared by the session."""
    if not os.path.exists(CHROMIUM):
        _missing(CHROMIUM)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("python playwright")
    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()
    pw.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One real ``ocean serve`` (gunicorn + gevent) for the module."""
    srv = Server(str(tmp_path_factory.mktemp("dashboard") / "data")).start()
    yield srv
    srv.stop()


@pytest.fixture
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


class Watched:
    """A page with its console errors and uncaught exceptions collected."""

    def __init__(self, page):
        self.page = page
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))


@pytest.fixture
def open_page(chromium):
    """``open_page(width, height)``: a fresh context (empty localStorage) and a watched page."""
    contexts = []

    def make(width: int = 1280, height: int = 800) -> Watched:
        ctx = chromium.new_context(viewport={"width": width, "height": height})
        contexts.append(ctx)
        return Watched(ctx.new_page())

    yield make
    for ctx in contexts:
        ctx.close()


@pytest.fixture
def other_origin():
    """``examples/`` served by ``python -m http.server`` on another 127.0.0.1 port (stopped by pid)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(ROOT / "examples")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
