"""wrk against both workers, interleaved: req/s, p99 and worker CPU per request (by hand, not in CI).

Two servers (``worker_class=ocean`` and ``gevent``, same settings) run at once;
``wrk -t1 -c50`` hits ``GET /health`` and ``POST /exec`` incr (a lua script) on
each in turn, three rounds, the order flipped every round; the medians are
printed as a table. The worker's CPU time comes from ``/proc/<pid>/stat``.
Run: ``PYTHONPATH=src python bench/load/wrkcompare.py [seconds per run, default 10]``
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests"))

from serverproc import ADMIN_KEY, Server  # noqa: E402
from sseload import cpu_seconds, worker_pid  # noqa: E402

EXEC_LUA = f"""
wrk.method = "POST"
wrk.body = "incr bench/daily @2026-02-10 .page_views"
wrk.headers["Content-Type"] = "text/plain"
wrk.headers["X-Ocean-Key"] = "{ADMIN_KEY}"
"""


def main(seconds: int = 10, rounds: int = 3) -> None:
    tmp = tempfile.mkdtemp(prefix="ocean-wrk-")
    lua = os.path.join(tmp, "exec.lua")
    with open(lua, "w") as f:
        f.write(EXEC_LUA)
    servers = {}
    results: dict = {}
    try:
        for wc in ("ocean", "gevent"):
            servers[wc] = Server(os.path.join(tmp, wc, "data"), worker_class=wc).start()
        for rnd in range(rounds):
            for name, args in (("GET /health", ["/health"]), ("POST /exec incr", ["/exec", "-s", lua])):
                for wc in ("ocean", "gevent") if rnd % 2 == 0 else ("gevent", "ocean"):
                    srv = servers[wc]
                    worker = worker_pid(srv.pid)
                    cpu0 = cpu_seconds(worker)
                    out = subprocess.run(["wrk", "-t1", "-c50", f"-d{seconds}s", "--latency", srv.url + args[0]]
                                         + args[1:], capture_output=True, text=True, check=True).stdout
                    cpu = cpu_seconds(worker) - cpu0
                    assert "Non-2xx" not in out, out  # every answer a 200
                    total = int(re.search(r"(\d+) requests in", out).group(1))
                    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
                    p99 = re.search(r"99%\s+(\S+)", out).group(1)
                    results.setdefault((name, wc), []).append((rate, cpu / total * 1e6, p99))
                    print(f"round {rnd} {name} [{wc}]: {rate:,.0f} req/s, p99 {p99}, "
                          f"worker CPU {cpu / total * 1e6:.1f} us/request", flush=True)
    finally:
        for srv in servers.values():
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n| | stock gevent worker | ocean's worker | ratio |\n|---|---|---|---|")
    for name in ("GET /health", "POST /exec incr"):
        ours, stock = results[(name, "ocean")], results[(name, "gevent")]
        r1, r2 = statistics.median(r[0] for r in ours), statistics.median(r[0] for r in stock)
        c1, c2 = statistics.median(r[1] for r in ours), statistics.median(r[1] for r in stock)
        print(f"| {name} | {r2:,.0f} req/s, {c2:.0f} us CPU | {r1:,.0f} req/s, {c1:.0f} us CPU | {r1 / r2:.2f}x |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
