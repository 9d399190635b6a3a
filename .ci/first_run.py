"""Prove the README's first command and first session on a bare venv, as a new user runs them.

A green suite once hid a broken first command: the test extras brought in a module that
``ocean serve`` needed and the plain install lacked. So this script, run by ``.ci/run``:

1. copies the tracked files of this checkout to a scratch directory (no build leftovers);
2. makes a new venv there with nothing in it;
3. runs the README's install command (the block after "Install and run the server") exactly
   as written, in a shell whose PATH starts with that venv, and waits for ``GET /health``;
4. stops it with SIGINT to its process group, as Ctrl-C does, and reads the admin key it printed;
5. runs the README's "A first session": the server block, then the client block, with the
   port replaced by a free one (and ``OCEAN_URL`` set to match), the ``<token>`` by the key,
   and the live ``curl -N`` given ``--max-time`` (it streams until stopped, as the README says);
6. checks the answers and stops every process it started by its process group id.

Only 127.0.0.1 traffic; every wait is bounded. Exit status 0 only if every step passed.
Stdlib only: it runs with the machine's python3 before anything is installed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
INSTALL_WAIT_S = 900  # pip builds the Cython core from source in the bare venv
START_WAIT_S = 60


def fail(msg: str) -> None:
    print(f"first_run: FAIL: {msg}", flush=True)
    sys.exit(1)


def sh_block_after(marker: str, nth: int = 0) -> str:
    """The nth ```sh block after the line starting with ``marker``."""
    at = README.find(marker)
    if at < 0:
        fail(f"README.md has no {marker!r}")
    blocks = re.findall(r"```sh\n(.*?)\n```", README[at:], re.S)
    if len(blocks) <= nth:
        fail(f"README.md has no sh block {nth} after {marker!r}")
    return blocks[nth]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            return json.loads(r.read())
    except OSError:
        return None


class Shell:
    """One ``bash -c`` in a session of its own (its pid is its process group id)."""

    def __init__(self, script: str, cwd: str, env: dict, log: str):
        self.log = log
        self._f = open(log, "wb")
        self.proc = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, stdout=self._f,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def text(self) -> str:
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_health(self, port: int, limit_s: float) -> dict:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                fail(f"exited ({self.proc.returncode}) before /health answered; its output ends:\n{self.text()[-3000:]}")
            body = health(port)
            if body is not None:
                return body
            time.sleep(0.5)
        fail(f"no /health answer in {limit_s:.0f} s; output ends:\n{self.text()[-3000:]}")

    def stop(self, sig=signal.SIGTERM, limit_s: float = 30) -> int:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(limit_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                fail(f"did not stop within {limit_s:.0f} s of {sig.name}; killed")
        try:  # anything left in the group (a worker), by the same id
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._f.close()
        return self.proc.returncode


def main() -> None:
    install = sh_block_after("Install and run the server")
    first_server = sh_block_after("## A first session", 0)
    first_client = sh_block_after("## A first session", 1)
    work = tempfile.mkdtemp(prefix="ocean-first-run.")
    try:
        run(work, install, first_server, first_client)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: str, install: str, first_server: str, first_client: str) -> None:
    tree = os.path.join(work, "ocean")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = os.path.join(ROOT, rel)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(tree, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(tree, rel))
    venv = os.path.join(work, "venv")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OCEAN_", "PYTHON", "VIRTUAL_ENV", "PIP_"))}
    env.update(PATH=os.path.join(venv, "bin") + os.pathsep + env.get("PATH", ""), VIRTUAL_ENV=venv,
               PIP_DISABLE_PIP_VERSION_CHECK="1")

    # 1. The install command, exactly as written; the port comes from the environment.
    port = free_port()
    print(f"+ {install}    (OCEAN_PORT={port}, in a bare venv)", flush=True)
    server = Shell(install, tree, dict(env, OCEAN_PORT=str(port)), os.path.join(work, "install.log"))
    body = server.wait_health(port, INSTALL_WAIT_S)
    if body.get("ok") is not True:
        fail(f"/health answered {body}")
    print(f"  GET /health -> {body}", flush=True)
    key = re.search(r"admin key: (\S+)", server.text())
    rc = server.stop(signal.SIGINT)  # Ctrl-C in the user's terminal
    out = server.text()
    if not key:
        fail(f"the first start printed no 'admin key: <token>' line:\n{out[-2000:]}")
    if "Traceback" in out:
        fail(f"a traceback reached the user:\n{out[-4000:]}")
    if "engine closed cleanly" not in out:
        fail(f"Ctrl-C did not close the engine cleanly (exit {rc}):\n{out[-2000:]}")
    print("  stopped with Ctrl-C: engine closed cleanly", flush=True)

    # 2. The first session: its server, then its client commands in a second shell.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_cmd = first_server.replace("8080", str(port))
    print(f"+ {server_cmd}", flush=True)
    server = Shell(server_cmd, tree, env, os.path.join(work, "serve.log"))
    try:
        server.wait_health(port, START_WAIT_S)
        client = first_client.replace("8080", str(port)).replace("<token>", key.group(1))
        client = re.sub(r"curl -N ", "curl -sS --max-time 2 -N ", client)
        print("+ " + client.replace("\n", "\n+ "), flush=True)
        # The live curl is stopped by --max-time (exit 28): the script goes on past it.
        shell = subprocess.run(["bash", "-c", client], cwd=tree, env=dict(env, OCEAN_URL=url),
                               capture_output=True, text=True, timeout=120)
        print(shell.stdout + shell.stderr, flush=True)
    finally:
        server.stop(signal.SIGTERM)
    said = shell.stdout + shell.stderr
    if "Traceback" in said or "Traceback" in server.text():
        fail("a traceback reached the user")
    if '"page_views":1' not in said.replace(" ", "") or '"requests":1' not in said.replace(" ", ""):
        fail("POST /exec did not answer the increments")
    if not re.search(r"2026-02-10\s*\|\s*1\s*\|\s*1", said):
        fail("ocean sql did not print the day's row")
    if "curl: (7)" in said or "Connection refused" in said:
        fail("the live stream did not connect")
    print("first_run: the README's first command and first session work on a bare venv", flush=True)


if __name__ == "__main__":
    main()
