"""Run parsed Drops commands against an engine, one result per command.

Each command was fully validated by the parser; here it checks the caller's
access and makes a single engine call, so a failing command changes nothing
and never stops the commands after it. Any error becomes that command's
result: ``OceanError``s with their code, anything unexpected as ``internal``
(logged, never a traceback in the result).
"""
from __future__ import annotations

import json
import logging

from ..errors import InternalError, OceanError, QueryLimit, UnknownCommand
from ..engine.sketches import UNIQ, kind_of
from ..model import prefix_matches
from ..sql import query as sql_query
from ..timekeys import has_placeholder
from . import commands
from .parser import Failed, Query

log = logging.getLogger("ocean.drops")


def _clone(value):
    """A fresh copy of a parsed JSON value (parses are cached and shared; the engine may keep what it gets)."""
    t = type(value)
    if t is dict:
        return {k: _clone(v) for k, v in value.items()}
    if t is list:
        return [_clone(v) for v in value]
    return value


def _fields(payload) -> dict:
    return payload if isinstance(payload, dict) else {"value": payload}


# -- writes ----------------------------------------------------------------------

def _save(engine, access, settings, args):
    route, key, payload, keep = args
    access.check_write(route)
    rec = engine.save(route, _clone(payload), key=key, keep=keep, source=access.source)
    return {"drop_id": rec["drop_id"], "seq": rec["seq"], "key": rec["key"]}


def _update(engine, access, settings, args):
    route, key, fields = args
    access.check_write(route)
    return engine.update(route, key, _clone(fields), source=access.source)["payload"]


def _remove(engine, access, settings, args):
    route, key = args
    access.check_write(route)
    return engine.remove(route, key, source=access.source)


def _incr(engine, access, settings, args):
    route, key, amounts = args
    access.check_write(route)
    return engine.incr(route, key, dict(amounts), source=access.source)


def _uniq(engine, access, settings, args):
    route, key, adds = args
    access.check_write(route)
    return engine.uniq(route, key, {name: list(values) for name, values in adds}, source=access.source)


def _observe(engine, access, settings, args):
    route, key, adds = args
    access.check_write(route)
    return engine.observe(route, key, {name: list(values) for name, values in adds}, source=access.source)


# -- reads -----------------------------------------------------------------------

def _get(engine, access, settings, args):
    route, key = args
    access.check_read(route)
    return engine.get(route, key)["payload"]


def _list(engine, access, settings, args):
    route, hint = args
    if hint is not None and (not access.can_read(route) or route not in engine.routes()):
        raise UnknownCommand(f"unknown command `{route}`; {hint}")
    access.check_read(route)
    out = []
    for rec in engine.list(route, limit=settings.list_limit):
        row = {"key": rec["key"]}
        for f, v in _fields(rec["payload"]).items():
            row.setdefault(f, v)
        out.append(row)
    return out


def _history(engine, access, settings, args):
    route, key, limit = args
    access.check_read(route)
    return engine.history(route, key, limit=100 if limit is None else limit)


SKETCHES = ("sketches",)  # a row's key (never a field name: not a str) for its entity's sketches


def _rows(engine, access, target: str, sketches: bool = False):
    """Every row ``find``/``count`` see: entities (key order) then events (oldest first), per route.

    ``sketches``: entity rows also carry their sketch objects under ``SKETCHES`` (for ``uniq F``).
    """
    access.check_read(target)
    subtree = target == "*" or target.endswith("/*")
    routes = [r for r in engine.routes() if prefix_matches(target, r)] if subtree else (target,)
    for route in routes:
        for key, rec in engine.route_entities(route):
            row = {"key": key, "route": route} if subtree else {"key": key}
            for f, v in _fields(rec["payload"]).items():
                row.setdefault(f, v)
            if sketches:
                row[SKETCHES] = engine.entity_sketches(route, key)
            yield row
        for ev in engine.route_events(route):
            row = {"created_at": ev["created_at"], "route": route} if subtree else {"created_at": ev["created_at"]}
            for f, v in _fields(ev["payload"]).items():
                row.setdefault(f, v)
            yield row


def _sort_key(v):
    """Order across types: null < booleans < numbers < strings < arrays/objects (by their JSON)."""
    t = type(v)
    if t is int or t is float:
        return (2, v)
    if t is str:
        return (3, v)
    if v is None:
        return (0, 0)
    if t is bool:
        return (1, v)
    return (4, json.dumps(v, sort_keys=True, default=str))


def _group_key(v):
    t = type(v)
    if t is dict or t is list:
        return (t.__name__, json.dumps(v, sort_keys=True, default=str))
    return (t.__name__, v)


def _aggregate(rows, q: Query) -> list:
    groups: dict = {}
    fields = q.group or ()
    for row in rows:
        gk = tuple(_group_key(row.get(f)) for f in fields)
        g = groups.get(gk)
        if g is None:
            g = groups[gk] = [tuple(row.get(f) for f in fields), []]
        g[1].append(row)
    out = []
    for values, members in groups.values():
        row = dict(zip(fields, values))
        for name, fn, field in q.aggregates:
            if fn == "count":
                row[name] = len(members)
                continue
            if fn == "uniq":
                row[name] = _uniq_union(members, field)
                continue
            vals = [r.get(field) for r in members]
            if fn in ("sum", "avg"):
                nums = [v for v in vals if type(v) is int or type(v) is float]
                if not nums:
                    row[name] = None
                elif fn == "sum":
                    row[name] = sum(nums)
                else:
                    row[name] = sum(nums) / len(nums)
            else:
                present = [v for v in vals if v is not None]
                pick = min if fn == "min" else max
                row[name] = pick(present, key=_sort_key) if present else None
        out.append(row)
    if q.group:
        out.sort(key=lambda r: tuple(_sort_key(r.get(f)) for f in fields))
    return out


def _uniq_union(rows, field: str):
    """The distinct count of the rows' uniq fields ``field`` together (None when no row has one)."""
    union = None
    for row in rows:
        sketch = row.get(SKETCHES, {}).get(field)
        if sketch is None or kind_of(sketch) != UNIQ:
            continue
        if union is None:
            union = sketch.copy()
        else:
            union.merge(sketch)
    return None if union is None else int(union.count())


def _find(engine, access, settings, q: Query):
    rows = _rows(engine, access, q.target, any(a[1] == "uniq" for a in q.aggregates))
    if q.where is not None:
        rows = filter(q.where, rows)
    cap = settings.sql_max_rows
    if q.limit is not None and q.limit > cap:
        raise QueryLimit(f"limit {q.limit} is over the sql_max_rows setting ({cap})")
    if q.aggregates:
        rows = _aggregate(rows, q)
    elif q.limit is not None and not q.sort:
        out = []
        for row in rows:
            if len(out) >= q.limit:
                break
            out.append(row)
        rows = out
    else:
        rows = list(rows)
    for field, desc in reversed(q.sort):
        rows.sort(key=lambda r, f=field: _sort_key(r.get(f)), reverse=desc)
    if q.limit is not None:
        rows = rows[:q.limit]
    elif len(rows) > cap:
        raise QueryLimit(f"find matched {len(rows)} rows, over the sql_max_rows setting ({cap}); add a limit")
    if q.pick:
        rows = [{f: r.get(f) for f in q.pick} for r in rows]
    return rows


def _count(engine, access, settings, q: Query):
    rows = _rows(engine, access, q.target)
    if q.where is not None:
        rows = filter(q.where, rows)
    return sum(1 for _ in rows)


def _sql(engine, access, settings, args):
    text = args[0]
    res = sql_query(engine, text, access=access, settings=settings)
    columns = list(res["columns"])
    rows = res["rows"]
    if rows and not isinstance(rows[0], dict):
        rows = [dict(zip(columns, r)) for r in rows]
    return rows, columns


def _help(engine, access, settings, name):
    if name is None:
        return [{"name": d["name"], "aliases": d["aliases"], "syntax": d["syntax"], "help": d["help"]}
                for d in commands.declarations()]
    return next(d for d in commands.declarations() if d["name"] == name)


# commands whose second argument is a key (it may hold placeholders like {day})
KEYED = frozenset({"save", "get", "update", "remove", "incr", "uniq", "observe", "history"})

EXECUTORS = {
    "save": _save, "get": _get, "list": _list, "update": _update, "remove": _remove, "incr": _incr,
    "uniq": _uniq, "observe": _observe, "find": _find, "count": _count, "sql": _sql, "history": _history, "help": _help,
}


def execute(engine, cmd, line: int, column: int, access, settings) -> dict:
    """Run one parsed command; its result dict (never raises an ocean or ordinary error)."""
    if type(cmd) is Failed:
        exc = cmd.error
        return {"ok": False, "error": exc.message, "code": exc.code,
                "line": line + cmd.line, "column": cmd.column}
    name = cmd.name
    args, key_used = cmd.args, None
    try:
        if name in KEYED and has_placeholder(args[1]):  # @{day}...: the key this command uses, now
            key_used = engine.expand_key(args[1])
            args = (args[0], key_used, *args[2:])
        data = EXECUTORS[name](engine, access, settings, args)
    except OceanError as exc:
        message = exc.message
        if exc.line is not None:  # a position inside the SQL text: map it into the script
            origin = cmd.args[1] if name == "sql" else None
            if origin is not None:
                rel, first_col = origin
                q_line, q_col = exc.line, exc.column or 1
                return {"ok": False, "error": message, "code": exc.code, "line": line + rel + q_line - 1,
                        "column": first_col + q_col - 1 if q_line == 1 else q_col}
            message += f" (line {exc.line}, column {exc.column} of the query)"
        return {"ok": False, "error": message, "code": exc.code, "line": line, "column": column}
    except Exception as exc:  # noqa: BLE001 - a command's fault must not escape the script
        log.exception("internal error running Drops `%s` (line %d)", name, line)
        err = InternalError(f"internal error running `{name}` ({type(exc).__name__}); see the server log")
        return {"ok": False, "error": err.message, "code": err.code, "line": line, "column": column}
    if name == "sql":
        rows, columns = data
        return {"ok": True, "data": rows, "columns": columns}
    if key_used is not None:  # beside ``data`` (whose shape stays the command's), only for a placeholder
        return {"ok": True, "data": data, "key": key_used}
    return {"ok": True, "data": data}
