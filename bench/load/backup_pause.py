"""Measure: what a backup costs the writers of a real ``ocean serve`` (docs/operations.md quotes it).

Loads ENTITIES entities (3 plain fields, 2 counters) and EVENTS events through the engine, starts a
server on them, and has one client increment a counter back to back: its latencies for a few
seconds, then while ``POST /admin/backup`` runs, are compared with the pause the server reports.

    PYTHONPATH=src python bench/load/backup_pause.py /tmp/backup-pause 100000 1000000
"""
import http.client
import json
import os
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
from serverproc import Server  # noqa: E402

from ocean import Engine  # noqa: E402
from ocean.settings import Settings  # noqa: E402


def load(data: str, entities: int, events: int) -> None:
    eng = Engine(data, settings=Settings.load(environ={}, snapshot_every=0), maintenance=False)
    for start in range(0, entities, 10000):
        keys = range(start, min(entities, start + 10000))
        eng.drop_many([{"route": "users", "key": f"u{i}", "payload": {"name": f"user {i}", "plan": "pro", "age": i % 90}}
                       for i in keys])
        eng.drop_many([{"route": "users", "key": f"u{i}", "payload": {"+visits": 1, "+spent": 0.5}} for i in keys])
    for start in range(0, events, 10000):
        eng.drop_many([{"route": "analytics/events", "payload": {"path": f"/p/{i % 500}", "status": 200, "ms": i % 37}}
                       for i in range(start, min(events, start + 10000))])
    eng.snapshot()
    eng.close()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main(root: str, entities: int, events: int) -> None:
    shutil.rmtree(root, ignore_errors=True)
    data = os.path.join(root, "data")
    t0 = time.perf_counter()
    load(data, entities, events)
    print(f"loaded {entities} entities, {events} events in {time.perf_counter() - t0:.1f} s")
    srv = Server(data).start(timeout=600)
    stop, lat = threading.Event(), []

    def writer():
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
        body = json.dumps({"route": "users", "key": "u1", "payload": {"+visits": 1}})
        while not stop.is_set():
            t = time.perf_counter()
            c.request("POST", "/drop", body=body, headers={"X-Ocean-Key": srv.key, "Content-Type": "application/json"})
            c.getresponse().read()
            lat.append((t, time.perf_counter() - t))
        c.close()

    try:
        w = threading.Thread(target=writer)
        w.start()
        time.sleep(3)
        began = time.perf_counter()
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=600)
        c.request("POST", "/admin/backup", headers={"X-Ocean-Key": srv.key})
        info = json.loads(c.getresponse().read())
        ended = time.perf_counter()
        c.close()
        time.sleep(1)
        stop.set()
        w.join()
    finally:
        srv.stop()
    before = [d * 1000 for t, d in lat if t < began]
    during = [d * 1000 for t, d in lat if began <= t < ended]
    print(f"backup: {info['bytes'] / 1e6:.1f} MB in {ended - began:.2f} s (server: {info['seconds']} s, "
          f"write pause {info['pause_ms']} ms)")
    print(f"increments before: n={len(before)} p50 {pct(before, .5):.2f} ms p99 {pct(before, .99):.2f} ms "
          f"max {max(before):.1f} ms")
    print(f"increments during: n={len(during)} p50 {pct(during, .5):.2f} ms p99 {pct(during, .99):.2f} ms "
          f"max {max(during):.1f} ms")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
