"""Measure: an embedded engine's memory, snapshot and reopening for N events (issue 14, in process).

``drop_many`` N of the issue's events (``{"path": "/p/<i % 1000>", "status": 200|404, "ms": 12.5}``,
batches of 1000, one route, no retention) into ``ocean.Engine(tmpdir)``; prints the RSS growth per
event, the ingest rate, a snapshot's time, then reopening's time and the RSS a fresh process
needs to reopen the directory. events.py's PERF note quotes it.

    PYTHONPATH=src python bench/load/event_memory.py 1000000
"""
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time

import ocean
from ocean.settings import Settings


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def engine(path):
    return ocean.Engine(path, maintenance=False, settings=Settings.load().with_(event_retention=0))


def load(path: str, n: int) -> None:
    base = rss()
    eng = engine(path)
    t0 = time.perf_counter()
    for s in range(0, n, 1000):
        eng.drop_many([{"route": "bench/scale", "payload": {"path": f"/p/{i % 1000}", "status": 200 if i % 4 else 404,
                                                             "ms": 12.5}} for i in range(s, min(n, s + 1000))])
    took = time.perf_counter() - t0
    gc.collect()
    print(f"{n:,} events: {(rss() - base) / n:.1f} B/event of RSS growth, ingest {n / took:,.0f}/s")
    t0 = time.perf_counter()
    eng.snapshot()
    print(f"snapshot {time.perf_counter() - t0:.2f} s")
    eng.close()


def reopen(path: str) -> None:
    base = rss()
    t0 = time.perf_counter()
    eng = engine(path)
    took = time.perf_counter() - t0
    gc.collect()
    print(f"reopened in {took:.2f} s, +{(rss() - base) / 1e6:.0f} MB")
    assert len(eng.events("bench/scale", 5)) == 5
    eng.close()


if __name__ == "__main__":
    if sys.argv[1] == "--reopen":
        reopen(sys.argv[2])
    else:
        tmp = tempfile.mkdtemp(prefix="ocean-event-memory-")
        try:
            load(os.path.join(tmp, "data"), int(sys.argv[1]))
            subprocess.run([sys.executable, __file__, "--reopen", os.path.join(tmp, "data")], check=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
