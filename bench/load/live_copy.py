"""Experiment: what a ``cp -r`` of a live data directory gives (docs/operations.md quotes it).

A real ``ocean serve`` takes a snapshot every SNAPSHOT_EVERY records while three writers each
log ``{"i": n, "+n": 1}`` to an entity and an event ``{"i": n}`` per request (one log write).
Each of COPIES copies is opened and checked: every entity's ``n`` equals its ``i`` and its
events are exactly 1..i (a consistent prefix), else it is INCONSISTENT; or ocean refuses it.

    PYTHONPATH=src python bench/load/live_copy.py /tmp/live-copy 100 150
"""
import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
from serverproc import Server  # noqa: E402

from ocean import Engine, errors  # noqa: E402
from ocean.settings import Settings  # noqa: E402


def main(root: str, snapshot_every: int, copies: int) -> dict:
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    srv = Server(os.path.join(root, "data"), snapshot_every=snapshot_every).start()
    stop = threading.Event()

    def writer(w):
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        i = 0
        while not stop.is_set():
            i += 1
            body = json.dumps([{"route": "x/s", "key": f"w{w}", "payload": {"i": i, "+n": 1}},
                               {"route": f"x/e{w}", "payload": {"i": i, "pad": "p" * 200}}])
            c.request("POST", "/drop", body=body, headers={"X-Ocean-Key": srv.key, "Content-Type": "application/json"})
            c.getresponse().read()
        c.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    time.sleep(1)
    outcomes: dict = {}
    try:
        for k in range(copies):
            dst = os.path.join(root, f"copy{k}")
            cp = subprocess.run(["cp", "-r", os.path.join(root, "data"), dst], capture_output=True, text=True)
            os.unlink(os.path.join(dst, "ocean.lock"))
            try:
                eng = Engine(dst, settings=Settings.load(environ={}), maintenance=False)
                bad = []
                for w in range(3):
                    ent = eng.entity("x/s", f"w{w}")
                    n, i = (ent["payload"]["n"], ent["payload"]["i"]) if ent else (0, 0)
                    evs = [e["payload"]["i"] for e in eng.route_events(f"x/e{w}")]
                    if n != i or evs != list(range(1, len(evs) + 1)) or len(evs) not in (i, i - 1):
                        bad.append({"writer": w, "n": n, "i": i, "events": len(evs)})
                eng.close()
                what = "opened, consistent prefix" if not bad else f"opened, INCONSISTENT {bad}"
            except errors.OceanError as exc:
                what = f"refused: {type(exc).__name__}: {exc.message[:90]}"
            what += " (cp warned of a vanished file)" if cp.returncode else ""
            outcomes[what] = outcomes.get(what, 0) + 1
            shutil.rmtree(dst)
    finally:
        stop.set()
        for t in threads:
            t.join()
        srv.stop()
    return outcomes


if __name__ == "__main__":
    for what, n in sorted(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])).items()):
        print(n, what)
