"""Every setting, declared once: name, type, default, environment variable, help.

The CLI builds its ``--flags`` from this table, the docs list it, and a meta
test fails if a setting is missing from the README's settings section.
Values come from (highest first): explicit arguments, ``OCEAN_<NAME>``
environment variables, defaults.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, make_dataclass, replace

from .errors import InvalidSetting
from .timekeys import check_timezone

FSYNC_POLICIES = ("always", "everysec", "no")
WORKER_CLASSES = ("ocean", "gevent")


@dataclass(frozen=True)
class Setting:
    """One declared setting."""

    name: str
    type: type
    default: object
    help: str
    choices: tuple = ()
    most: float | None = None  # the largest value allowed, if any (the least is 0 for numbers)
    check: object = None  # a callable that returns the value or raises InvalidSetting (e.g. a time zone)

    @property
    def env(self) -> str:
        return "OCEAN_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, raw) -> object:
        """Turn a raw value (string from env/CLI, or a Python value) into this setting's type."""
        try:
            if self.type is bool and isinstance(raw, str):
                low = raw.strip().lower()
                if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(raw)
                value = low in ("1", "true", "yes", "on")
            else:
                value = self.type(raw)
        except (TypeError, ValueError):
            raise InvalidSetting(f"setting {self.name} ({self.env}) must be a {self.type.__name__}, got {raw!r}") from None
        if self.choices and value not in self.choices:
            raise InvalidSetting(f"setting {self.name} must be one of {', '.join(map(str, self.choices))}, got {raw!r}")
        if self.type in (int, float) and value < 0:
            raise InvalidSetting(f"setting {self.name} must not be negative, got {raw!r}")
        if self.most is not None and value > self.most:
            raise InvalidSetting(f"setting {self.name} must be at most {self.most}, got {raw!r}")
        if self.check is not None:
            try:
                value = self.check(value)
            except InvalidSetting as exc:
                raise InvalidSetting(f"setting {self.name} ({self.env}): {exc.message}") from None
        return value


SETTINGS: tuple[Setting, ...] = (
    # serving
    Setting("host", str, "127.0.0.1", "Address `ocean serve` listens on."),
    Setting("port", int, 8080, "Port `ocean serve` listens on.", most=65535),
    Setting("data", str, "./ocean-data", "Data directory (one server owns it)."),
    Setting("store", str, "", "Where the data lives: empty for the embedded store in `data`, or "
            "`redis://host:port[,host2:port2]` for Redis (a cluster's seed nodes, or one server; see docs/scale-out.md)."),
    Setting("workers", int, 1, "Worker processes; the embedded engine allows exactly 1 (more only with `store`)."),
    Setting("worker_connections", int, 10000, "Concurrent connections (SSE streams included) per worker."),
    Setting("graceful_timeout", int, 10, "Seconds SIGTERM waits for requests to finish."),
    Setting("worker_class", str, "ocean", "HTTP worker: ocean (httptools, the fast one) or gevent (gunicorn's stock worker).",
            WORKER_CLASSES),
    Setting("access_log", str, "", "Access log: empty for none, `-` for stdout, or a file path (never a query or key)."),
    Setting("metrics_public", bool, True, "Serve /metrics without a key."),
    Setting("accounting", bool, True, "Count every request on the _admin/* routes."),
    Setting("timezone", str, "UTC", "IANA time zone of the `{day}` `{hour}` `{week}` `{month}` key placeholders and "
            "of the _admin/* day and hour keys (like Europe/Paris).", check=check_timezone),
    # durability
    Setting("fsync", str, "everysec", "When the log is fsynced: always (group commit), everysec, no; with `store`, "
            "what a Redis write waits for (docs/scale-out.md).", FSYNC_POLICIES),
    Setting("replica_wait_ms", int, 1000, "With `store` and `--fsync always`: how long a write waits for a Redis "
            "replica to confirm it (WAIT) before it answers 503 not_replicated (docs/scale-out.md)."),
    Setting("snapshot_every", int, 200000, "Log records between background snapshots (0: never)."),
    Setting("backup_dir", str, "", "Where backups go when no destination is named (empty: `<data>-backups`, beside the data directory)."),
    # limits
    Setting("max_payload_bytes", int, 1 << 20, "Largest JSON payload of one drop, encoded."),
    Setting("max_body_bytes", int, 16 << 20, "Largest HTTP request body."),
    Setting("max_script_bytes", int, 1 << 20, "Largest Drops script."),
    Setting("max_batch", int, 10000, "Most drops in one POST /drop array."),
    Setting("history_limit", int, 100, "Past versions kept per entity for `history`."),
    Setting("event_retention", int, 1000000, "Events kept per route (oldest expire first; 0: unbounded)."),
    Setting("list_limit", int, 100, "Default and most entities a bare route or /entities returns per page."),
    Setting("sql_max_rows", int, 100000, "Most rows a SQL query may return."),
    Setting("sql_time_limit_ms", int, 5000, "Longest a SQL query may run, in milliseconds."),
    # live streams
    Setting("replay_history", int, 10000, "Recent drops kept in memory for SSE replay and resume."),
    Setting("replay_history_bytes", int, 64 << 20, "Most bytes of recent drops kept for replay (oldest go first; 0: no cap)."),
    Setting("subscriber_queue", int, 1000, "Messages one SSE client may fall behind before it is disconnected."),
    Setting("heartbeat_s", float, 15.0, "Seconds between SSE heartbeat comments."),
    Setting("max_sse_clients", int, 10000, "Most open SSE streams per server."),
    Setting("max_sse_per_key", int, 0, "Most open SSE streams per key (0: no cap of its own, so one public read key "
            "serves as many viewers as `max_sse_clients`)."),
    Setting("max_sse_per_ip", int, 1000, "Most open SSE streams from one client address (0: no cap): one client "
            "cannot take every stream. Behind a reverse proxy all streams share its address: set 0 there."),
)

BY_NAME = {s.name: s for s in SETTINGS}


class _SettingsMethods:
    """Methods of ``Settings``; its fields are generated from ``SETTINGS``."""

    @classmethod
    def load(cls, environ=None, **overrides):
        """Defaults, then ``OCEAN_*`` environment variables, then ``overrides`` (None means unset)."""
        environ = os.environ if environ is None else environ
        values = {}
        for s in SETTINGS:
            if overrides.get(s.name) is not None:
                values[s.name] = s.parse(overrides[s.name])
            elif s.env in environ:
                values[s.name] = s.parse(environ[s.env])
            else:
                values[s.name] = s.default
        unknown = set(overrides) - set(BY_NAME)
        if unknown:
            raise InvalidSetting(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**values)

    def with_(self, **changes):
        """A copy with some values changed (validated)."""
        return replace(self, **{k: BY_NAME[k].parse(v) for k, v in changes.items()})


Settings = make_dataclass(
    "Settings",
    [(s.name, s.type, field(default=s.default)) for s in SETTINGS],
    bases=(_SettingsMethods,),
    frozen=True,
)
Settings.__doc__ = "A resolved set of settings values; build with ``Settings.load(...)``."
Settings.__module__ = __name__


def markdown_table() -> str:
    """The settings table of the README (a meta test keeps the README equal to this)."""
    rows = ["| setting | default | what |", "|---|---|---|"]
    rows += [f"| `{s.name}` | `{s.default}` | {s.help} |" for s in SETTINGS]
    return "\n".join(rows)
