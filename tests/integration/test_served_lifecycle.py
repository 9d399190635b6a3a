"""Process life: SIGTERM drains cleanly; a SIGKILLed server restarts with every acknowledged write."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from serverproc import SRC, Server

pytestmark = pytest.mark.integration


def test_sigterm_drains_streams_and_closes_the_engine(make_server):
    srv = make_server(graceful_timeout=10)
    lines = []
    with requests.get(f"{srv.url}/live/drain/feed", stream=True, timeout=15,
                      headers={"X-Ocean-Key": srv.key}) as resp:
        it = resp.iter_lines(decode_unicode=True)
        assert next(it).startswith("retry:")
        ack = srv.post_json("/drop", {"route": "drain/feed", "key": "k", "payload": {"+n": 1}})
        t0 = time.monotonic()
        os.kill(srv.pid, signal.SIGTERM)
        for line in it:  # the stream ends by itself, after an `event: end`
            lines.append(line)
        assert time.monotonic() - t0 < 5
    assert "event: end" in lines
    assert srv.proc.wait(15) == 0
    assert "engine closed cleanly" in srv.log()
    again = make_server()
    assert again.get_json("/entity/drain/feed/k")["payload"] == {"n": 1}
    assert ack["seq"] <= again.get_json("/health")["seq"]


def test_sigkill_loses_no_acknowledged_write(make_server):
    srv = make_server(fsync="everysec")
    acked = {"n": 0, "events": 0}
    stop = threading.Event()

    def writer():
        s = requests.Session()
        s.headers["X-Ocean-Key"] = srv.key
        while not stop.is_set():
            try:
                r = s.post(srv.url + "/drop", json=[{"route": "crash/daily", "key": "d", "payload": {"+n": 1}},
                                                    {"route": "crash/events", "payload": {"i": 1}}], timeout=5)
            except requests.RequestException:
                return
            if r.status_code == 200 and all(o["ok"] for o in r.json()):
                acked["n"] += 1
                acked["events"] += 1

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    srv.kill()  # SIGKILL the master and the worker together
    stop.set()
    for t in threads:
        t.join(10)
    assert acked["n"] > 0
    again = make_server()
    n = again.get_json("/entity/crash/daily/d")["payload"]["n"]
    assert n >= acked["n"]  # every acknowledged increment survived (one in flight may have too)
    assert n <= acked["n"] + 4
    events = requests.post(again.url + "/exec", data="count crash/events", timeout=10,
                           headers={"X-Ocean-Key": again.key, "Content-Type": "text/plain"}).json()[0]
    assert events["ok"] and acked["events"] <= events["data"] <= acked["events"] + 4


def test_a_second_server_on_the_same_directory_is_refused(make_server, tmp_path):
    make_server()
    second = Server(str(tmp_path / "data"))
    with pytest.raises(RuntimeError) as err:
        second.start(timeout=20)
    second.stop()
    assert "in use" in str(err.value)


def test_more_than_one_worker_is_refused(tmp_path):
    run = subprocess.run([sys.executable, "-m", "ocean", "serve", "--workers", "2", "--data", str(tmp_path)],
                         env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "--workers must be 1" in run.stderr and "data directory" in run.stderr


def test_first_start_prints_the_admin_key_once(tmp_path):
    srv = Server(str(tmp_path / "data"), admin_key=None).start()
    try:
        log = srv.log()
        keys = [line.split(": ", 1)[1] for line in log.splitlines() if line.startswith("admin key: ")]
        assert len(keys) == 1 and f"serving http://127.0.0.1:{srv.port}" in log
        r = requests.get(f"{srv.url}/entities/a", headers={"X-Ocean-Key": keys[0]}, timeout=5)
        assert r.status_code == 200
        srv.stop()
        srv.start()
        assert sum(line.startswith("admin key: ") for line in srv.log().splitlines()) == 1
        assert keys[0] not in open(os.path.join(srv.data, "keys.json")).read()
    finally:
        srv.stop()


def test_gunicorn_conf_is_usable_directly_and_logs_no_keys(tmp_path):
    """``gunicorn -c .../gunicorn_conf.py`` serves ocean; its access log never shows a key."""
    from serverproc import ADMIN_KEY, free_port

    import ocean.web

    conf = os.path.join(os.path.dirname(ocean.web.__file__), "gunicorn_conf.py")
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OCEAN_")}, "PYTHONPATH": SRC,
           "OCEAN_ADMIN_KEY": ADMIN_KEY, "OCEAN_PORT": str(port), "OCEAN_DATA": str(tmp_path / "data")}
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", conf, "--access-logfile", "-"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(url + "/health", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        r = requests.get(f"{url}/entities/a?_key={ADMIN_KEY}", timeout=5, headers={"Referer": f"{url}/?_key={ADMIN_KEY}"})
        assert r.status_code == 200
        requests.get(f"{url}/entities/a", timeout=5, headers={"X-Ocean-Key": ADMIN_KEY + "-wrong"})
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(20)
    text = log.read_text()
    assert '"GET /entities/a" 200' in text and '"GET /entities/a" 401' in text  # logged, without the query
    assert ADMIN_KEY not in text
