"""docs/clients.md's Python snippets (counting, reading, SQL, the live feed), run as written."""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import threading
import time

import pytest

from ocean import Client

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "clients.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", DOC, re.S)


def _env(srv) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OCEAN_URL": srv.url, "OCEAN_KEY": srv.key}


def test_the_doc_has_the_tutorials_snippets():
    joined = "\n".join(BLOCKS)
    for needed in ['"page_views"', '"requests"', '{"POST /drop": 1}', '{"GET /entity/*": 1}',
                   'FROM "analytics/daily" ORDER BY key DESC LIMIT 7', 'client.stream("analytics/events")',
                   'client.get("analytics/daily", "2026-02-10")']:
        assert needed in joined, needed


def test_the_python_snippets_run(make_server, tmp_path):
    srv = make_server()
    finite = [b for b in BLOCKS if "client.stream(" not in b]
    script = tmp_path / "snippets.py"
    script.write_text("\n".join(finite), encoding="utf-8")
    run = subprocess.run([sys.executable, str(script)], env=_env(srv), capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "not_found 404",                               # errors
        "{'page_views': 1}", "line 2: not_found",      # exec results
        "{'page_views': 1, 'requests': 1}",            # reading the counts
        "{'POST /drop': 1, 'GET /entity/*': 1}",       # per-endpoint tracking
        "2026-02-10 1 1",                              # SQL over days
    ]
    rows = Client(srv.url, key=srv.key).sql('SELECT method, path, status FROM "analytics/events"')
    assert rows == [{"method": "POST", "path": "/drop", "status": 200}]  # the event drop was written


def test_the_live_feed_snippet_prints_what_is_written(make_server, tmp_path):
    srv = make_server()
    (setup,) = [b for b in BLOCKS if "Client()" in b]
    (feed,) = [b for b in BLOCKS if "client.stream(" in b]
    (write,) = [b for b in BLOCKS if 'client.drop("analytics/events"' in b]
    script = tmp_path / "feed.py"
    script.write_text(setup + "\n" + feed, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script)], env=_env(srv), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while srv.get_json("/health")["sse_clients"] < 1:  # the snippet's stream is open
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else ""
            time.sleep(0.05)
        writer = tmp_path / "write.py"
        writer.write_text(setup + "\n" + write, encoding="utf-8")
        subprocess.run([sys.executable, str(writer)], env=_env(srv), check=True, timeout=30)
        while not lines and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lines and lines[0].strip() == "POST /drop 200", proc.stderr.read() if proc.poll() is not None else lines
    finally:
        proc.kill()
        proc.wait(10)
