"""``ocean serve``: every mistake is refused before anything is made; Ctrl-C closes the engine cleanly."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from cliproc import ocean, refused, user_env
from serverproc import Server, free_port

import ocean as ocean_pkg


def serve(tmp_path, *args):
    """``ocean serve ARGS`` with no admin key in the environment: a start would make and print one."""
    return ocean("serve", "--data", str(tmp_path / "data"), *args, timeout=30)


def nothing_made(run, tmp_path):
    assert "admin key" not in run.stdout + run.stderr and "serving http" not in run.stdout + run.stderr
    assert not (tmp_path / "data").exists()


def test_a_port_in_use_is_one_line_before_anything_is_made(tmp_path):
    with socket.socket() as busy:  # a listener on a free port: "in use" for anyone else
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        t0 = time.monotonic()
        run = serve(tmp_path, "--host", "127.0.0.1", "--port", str(port))
        took = time.monotonic() - t0
    line = refused(run, 1, f"port {port}", "already in use", "--port")
    assert run.stderr.strip() == line and took < 10  # no gunicorn retries
    nothing_made(run, tmp_path)


@pytest.mark.parametrize("args, words", [
    (["--port", "70000"], ["port must be at most 65535", "70000"]),
    (["--port", "0"], ["--port must be 1 to 65535"]),
    (["--port", "eighty"], ["port"]),
    (["--host", "127.0.0.1:8085"], ["--host 127.0.0.1 --port 8085"]),
    (["--host", "[::1]:8085"], ["--host ::1 --port 8085"]),
    (["--host", "http://127.0.0.1"], ["--host 127.0.0.1"]),
    (["--host", "a:b:c"], ["not a host name or address"]),
    (["--workers", "2"], ["--workers must be 1"]),
])
def test_bad_values_are_usage_errors_before_anything_is_made(tmp_path, args, words):
    run = serve(tmp_path, *args)
    refused(run, 2, *words)
    nothing_made(run, tmp_path)


def test_a_host_that_is_not_here_is_refused(tmp_path):
    run = serve(tmp_path, "--host", "192.0.2.1", "--port", str(free_port()))  # TEST-NET-1: never local
    refused(run, 1, "not an address of this machine", "--host 127.0.0.1")
    nothing_made(run, tmp_path)


def test_a_data_dir_that_cannot_be_made_is_one_line(tmp_path):
    run = ocean("serve", "--port", str(free_port()), "--data", "/proc/nonexistent/x", timeout=30)
    refused(run, 1, "/proc/nonexistent/x", "--data")
    (tmp_path / "file").write_text("x")
    run = ocean("serve", "--port", str(free_port()), "--data", str(tmp_path / "file"), timeout=30)
    refused(run, 1, "is not a directory", "--data")


@pytest.mark.integration
def test_a_second_server_on_a_directory_never_says_serving(make_server, tmp_path):
    first = make_server()
    run = serve(tmp_path, "--host", "127.0.0.1", "--port", str(free_port()))
    worker = [line.rsplit(" ", 1)[1] for line in first.log().splitlines() if "Booting worker with pid" in line]
    refused(run, 1, "in use by another ocean server", f"held by pid {worker[-1]}", "--data")
    assert "serving http" not in run.stdout + run.stderr
    assert first.get_json("/health")["ok"]


@pytest.mark.integration
def test_serving_is_said_only_once_the_worker_opened_the_engine(make_server, tmp_path):
    """Past the CLI's check (gunicorn run directly, or a race): the worker is refused and never says serving."""
    first = make_server()
    conf = os.path.join(os.path.dirname(ocean_pkg.__file__), "web", "gunicorn_conf.py")
    env = user_env(OCEAN_ADMIN_KEY="k" * 32, OCEAN_PORT=str(free_port()), OCEAN_DATA=first.data)
    run = subprocess.run([sys.executable, "-m", "gunicorn", "-c", conf], env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=60, start_new_session=True)
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "in use" in out
    assert "serving http" not in out, out
    assert f"serving http://127.0.0.1:{first.port}" in first.log()


@pytest.mark.integration
def test_ctrl_c_closes_the_engine_cleanly(make_server):
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it: a drain, not a quick exit."""
    srv = make_server(fsync="no")  # nothing forces the log out but the clean close (or the OS)
    ack = srv.post_json("/drop", {"route": "analytics/daily", "key": "2026-02-10", "payload": {"+page_views": 3}})
    assert ack["ok"]
    stream = socket.create_connection(("127.0.0.1", srv.port), timeout=10)  # an open stream must end, not hold on
    try:
        stream.sendall(f"GET /live/analytics/daily HTTP/1.1\r\nHost: x\r\nX-Ocean-Key: {srv.key}\r\n\r\n".encode())
        assert stream.recv(4096).startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        os.killpg(srv.pid, signal.SIGINT)
        assert srv.proc.wait(30) == 0
        assert time.monotonic() - t0 < 8  # the drain ended the stream: no wait for graceful_timeout (10 s)
        rest = b""
        while chunk := stream.recv(4096):
            rest += chunk
        assert b"event: end" in rest
    finally:
        stream.close()
    srv.stop()
    log = srv.log()
    assert "ocean: engine closed cleanly" in log, log
    assert "Traceback" not in log
    again = make_server()
    assert again.get_json("/entity/analytics/daily/2026-02-10")["payload"]["page_views"] == 3
