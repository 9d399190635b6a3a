"""Helpers for the SQL tests: a fixed-data engine, the sqlite3 oracle, and the case-file reader."""
from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).parent
FIXTURE = json.loads((HERE / "data" / "fixture.json").read_text())


class FixtureEngine:
    """The read side of the engine contract over fixed records (deterministic timestamps).

    Implements what ``ocean.sql`` uses: ``route_entities``, ``route_events``,
    ``entity``, ``routes``, ``add_listener``, ``settings`` -- and ``save``/``remove``
    helpers that notify listeners the way the engine does.
    """

    def __init__(self, routes: dict | None = None, settings=None):
        data = json.loads(json.dumps(routes if routes is not None else FIXTURE["routes"]))
        self.data = data
        self.listeners = []
        self.settings = settings

    def add_listener(self, obj):
        self.listeners.append(obj)

    def routes(self):
        return sorted(r for r, d in self.data.items() if d["entities"] or d["events"])

    def _record(self, route, key, ent):
        return {"route": route, "key": key, "payload": ent["payload"], "created_at": ent["created_at"],
                "updated_at": ent["updated_at"], "version": 1}

    def route_entities(self, route):
        ents = self.data.get(route, {}).get("entities", {})
        for key in sorted(ents):
            yield key, self._record(route, key, ents[key])

    def route_events(self, route):
        for e in self.data.get(route, {}).get("events", []):
            yield {"drop_id": f"d{e['seq']}", "seq": e["seq"], "route": route, "payload": e["payload"],
                   "created_at": e["created_at"], "source": "test"}

    def entity(self, route, key):
        ent = self.data.get(route, {}).get("entities", {}).get(key)
        return None if ent is None else self._record(route, key, ent)

    # writes (test helpers)
    def put(self, route, key, payload, at="2026-03-01T00:00:00.000Z"):
        d = self.data.setdefault(route, {"entities": {}, "events": []})
        old = d["entities"].get(key)
        d["entities"][key] = {"created_at": old["created_at"] if old else at, "updated_at": at, "payload": payload}
        for lst in self.listeners:
            lst.entity_changed(route, key)

    def delete(self, route, key):
        del self.data[route]["entities"][key]
        for lst in self.listeners:
            lst.entity_removed(route, key)

    def add_event(self, route, payload, at="2026-03-01T00:00:00.000Z"):
        d = self.data.setdefault(route, {"entities": {}, "events": []})
        if not hasattr(self, "_seq"):
            self._seq = max([e["seq"] for r in self.data.values() for e in r["events"]] + [0])
        self._seq += 1
        seq = self._seq
        e = {"seq": seq, "created_at": at, "payload": payload}
        d["events"].append(e)
        rec = {"drop_id": f"d{seq}", "seq": seq, "route": route, "payload": payload, "created_at": at,
               "source": "test"}
        for lst in self.listeners:
            lst.event_added(route, rec)
        return seq

    def expire_events(self, route, seqs):
        d = self.data[route]
        d["events"] = [e for e in d["events"] if e["seq"] not in seqs]
        for lst in self.listeners:
            lst.events_removed(route, list(seqs))


# -- the sqlite3 oracle ---------------------------------------------------------------

def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _parse(ts):
    if not isinstance(ts, str):
        return None
    if ts[-1:] in ("Z", "z"):  # Python 3.10's fromisoformat does not read a "Z" suffix
        ts = ts[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def oracle_date_trunc(unit, ts):
    """date_trunc written independently with datetime (weeks start on Monday)."""
    dt = _parse(ts)
    if dt is None:
        return None
    unit = unit.lower().rstrip("s")
    dt = dt.astimezone(timezone.utc)
    if unit == "second":
        dt = dt.replace(microsecond=0)
    elif unit == "minute":
        dt = dt.replace(second=0, microsecond=0)
    elif unit == "hour":
        dt = dt.replace(minute=0, second=0, microsecond=0)
    elif unit == "day":
        dt = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    elif unit == "week":
        dt = dt.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=dt.weekday())
    elif unit == "month":
        dt = dt.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elif unit == "year":
        dt = dt.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    return _iso(dt)


def oracle_time_bucket(interval, ts):
    dt = _parse(ts)
    if dt is None:
        return None
    n, unit = re.match(r"\s*(\d+)\s*([a-z]+)", interval).groups()
    seconds = int(n) * {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400,
                        "second": 1, "seconds": 1}[unit]
    origin = datetime(2000, 1, 3, tzinfo=timezone.utc)
    delta = (dt - origin).total_seconds()
    return _iso(origin + timedelta(seconds=(delta // seconds) * seconds))


def table_rows(engine, route: str) -> tuple[list, list]:
    """(columns, rows) of a route exactly as the spec defines the table (independent of ocean.sql)."""
    cols = ["key", "created_at", "updated_at"]
    rows = []
    for key, rec in engine.route_entities(route):
        payload = rec["payload"] if isinstance(rec["payload"], dict) else {"value": rec["payload"]}
        for f in payload:
            if f not in cols:
                cols.append(f)
        rows.append({"key": key, "created_at": rec["created_at"], "updated_at": rec["updated_at"], **payload})
    for e in engine.route_events(route):
        payload = e["payload"] if isinstance(e["payload"], dict) else {"value": e["payload"]}
        for f in payload:
            if f not in cols:
                cols.append(f)
        rows.append({**payload, "key": None, "created_at": e["created_at"], "updated_at": None})
    return cols, rows


def oracle_connection(engine) -> sqlite3.Connection:
    """In-memory sqlite3 with one table per route (and per ``prefix/*``) holding the same rows."""
    con = sqlite3.connect(":memory:")
    con.create_function("date_trunc", 2, oracle_date_trunc, deterministic=True)
    con.create_function("time_bucket", 2, oracle_time_bucket, deterministic=True)
    routes = engine.routes()
    tables = {r: table_rows(engine, r) for r in routes}
    prefixes = {r.split("/")[0] + "/*" for r in routes} | {"*"}
    for p in prefixes:
        members = [r for r in routes if p == "*" or r.startswith(p[:-1])]
        cols = ["route"]
        rows = []
        for r in members:
            c, rs = tables[r]
            cols += [x for x in c if x not in cols]
            rows += [{"route": r, **row} for row in rs]
        tables[p] = (cols, rows)
    for name, (cols, rows) in tables.items():
        q = lambda s: '"' + s.replace('"', '""') + '"'  # noqa: E731
        con.execute(f"CREATE TABLE {q(name)} ({', '.join(q(c) for c in cols)})")
        con.executemany(f"INSERT INTO {q(name)} VALUES ({', '.join('?' for _ in cols)})",
                        [[row.get(c) for c in cols] for row in rows])
    return con


def oracle_query(con, text: str) -> dict:
    cur = con.execute(text)
    names = [d[0] for d in cur.description]
    return {"columns": names, "rows": [dict(zip(names, r)) for r in cur.fetchall()]}


# -- case files --------------------------------------------------------------------------

def _ms(iso: str) -> int:
    return int(_parse(iso).timestamp() * 1000)


def load_cases() -> list:
    """Cases from tests/sql/cases/*.sqltest: ``=== name``, the query, then ``--- rows``/``--- error CODE``.

    ``--- no-oracle`` skips the sqlite3 comparison; ``--- now: <ISO time>`` fixes ``now()``.
    """
    cases = []
    for path in sorted((HERE / "cases").glob("*.sqltest")):
        block = None
        for raw in path.read_text().splitlines():
            if raw.startswith("=== "):
                block = {"file": path.name, "name": raw[4:].strip(), "sql": [], "rows": [], "error": None,
                         "oracle": True, "columns": None, "section": "sql", "now": None}
                cases.append(block)
            elif block is None or raw.startswith("#"):
                continue
            elif raw.startswith("--- rows"):
                block["section"] = "rows"
            elif raw.startswith("--- error"):
                block["error"] = raw.split()[2]
                block["section"] = "error"
            elif raw.startswith("--- no-oracle"):
                block["oracle"] = False
            elif raw.startswith("--- now:"):  # now() for this query: an ISO UTC time
                block["now"] = _ms(raw.split(":", 1)[1].strip())
            elif raw.startswith("--- columns"):
                block["columns"] = json.loads(raw.split(":", 1)[1])
            elif block["section"] == "sql":
                block["sql"].append(raw)
            elif block["section"] == "rows" and raw.strip():
                block["rows"].append(json.loads(raw))
    for c in cases:
        c["sql"] = "\n".join(c["sql"]).strip()
    return cases


def normalize(rows: list, ordered: bool) -> list:
    def norm(v):
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, float):
            return int(v) if v.is_integer() and abs(v) < 1e15 else round(v, 9)
        return v
    out = [tuple((k, norm(v)) for k, v in r.items()) for r in rows]
    return out if ordered else sorted(out, key=repr)


class RecordsOnly:
    """The engine as the SQL layer saw it before chunks: its records only, so a table built from it
    holds a copy of every event (the oracle of the in-place reading, and the old design in bench_sql)."""

    def __init__(self, engine):
        self.engine = engine

    def route_entities(self, route):
        return self.engine.route_entities(route)

    def route_events(self, route):
        return self.engine.route_events(route)
