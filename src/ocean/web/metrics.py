"""Prometheus text exposition of this worker's request figures and the engine's stats."""
from __future__ import annotations

import bisect
import threading

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Engine figures (``Engine.stats()``) that only grow while the process runs: Prometheus
# counters, exposed under a name that ends in ``_total`` (so ``rate()`` applies). Every other
# numeric figure is a gauge; ``seq`` too: it is the newest write's position, kept across
# restarts, not a count of this process's work. A test keeps every figure in one of the two.
ENGINE_COUNTERS = {
    "fsyncs": "ocean_engine_fsyncs_total",
    "fsync_seconds_total": "ocean_engine_fsync_seconds_total",
    "published": "ocean_engine_published_total",
    "dropped_subscribers": "ocean_engine_dropped_subscribers_total",
    "snapshots": "ocean_engine_snapshots_total",
}
ENGINE_GAUGES = frozenset((
    "entities", "events", "counters", "routes", "seq", "subscribers", "uptime_s", "log_bytes",
    "last_fsync_ms", "snapshot_seq", "records_since_snapshot", "snapshot_pause_ms",
    "snapshot_seconds", "snapshot_bytes", "snapshot_running",
))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Request counts by route template and status, and one latency histogram."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.seconds_sum = 0.0
        self.count = 0

    def observe(self, method: str, template: str, status: str, seconds: float) -> None:
        """Count one request (``template`` like ``/entity/*``, ``status`` like ``"200"``)."""
        key = (method, template, status)
        with self._lock:
            self.requests[key] = self.requests.get(key, 0) + 1
            self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.seconds_sum += seconds
            self.count += 1

    def render(self, stats: dict, sse_clients: int) -> str:
        """The exposition text: requests, latency, SSE clients, then every numeric engine stat."""
        out = ["# HELP ocean_http_requests_total HTTP requests by method, route template and status.",
               "# TYPE ocean_http_requests_total counter"]
        with self._lock:
            for (method, template, status), n in sorted(self.requests.items()):
                out.append(f'ocean_http_requests_total{{method="{method}",route="{_label(template)}",'
                           f'status="{status}"}} {n}')
            out += ["# HELP ocean_http_request_duration_seconds Time to answer (streams: to open).",
                    "# TYPE ocean_http_request_duration_seconds histogram"]
            running = 0
            for bound, n in zip(BUCKETS + (float("inf"),), self.buckets):
                running += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(f'ocean_http_request_duration_seconds_bucket{{le="{le}"}} {running}')
            out.append(f"ocean_http_request_duration_seconds_sum {self.seconds_sum:.6f}")
            out.append(f"ocean_http_request_duration_seconds_count {self.count}")
        out += ["# HELP ocean_sse_clients Open SSE streams.", "# TYPE ocean_sse_clients gauge",
                f"ocean_sse_clients {sse_clients}"]
        for name, value in sorted(stats.items()):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                counter = ENGINE_COUNTERS.get(name)
                if counter is not None:
                    out += [f"# TYPE {counter} counter", f"{counter} {value}"]
                    continue
                metric = "ocean_engine_" + "".join(c if c.isalnum() else "_" for c in name)
                out += [f"# TYPE {metric} gauge", f"{metric} {value}"]
        return "\n".join(out) + "\n"
