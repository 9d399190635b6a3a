"""SQL over routes: ``query(engine, text)`` -> ``{"columns": [...], "rows": [{...}, ...]}``.

Pipeline: ``lexer`` -> ``parser`` (syntax tree) -> ``planner`` (plan) ->
``executor`` (runs the plan over the route's table from ``columns``, the
column store kept current by engine listeners). ``functions`` and
``aggregates`` hold the vectorised operators; the hot loops are scan kernels
in ``ocean._core`` (``_scan.pxi``). The Drops ``sql`` command and
``POST /sql`` both call ``query``. See docs/sql.md.
"""
from __future__ import annotations

import threading

from ..access import Access
from ..errors import InternalError, OceanError, ParseError, QueryLimit
from ..model import check_prefix
from ..model import now_ms as _now_ms
from .columns import TableView, columns_bytes, set_turn, store_for, union_view
from .executor import Deadline, execute
from .parser import parse
from .planner import Plan, plan

__all__ = ["query", "prepare", "run_plan", "store_for", "set_turn", "columns_bytes"]

_PLAN_CACHE_SIZE = 512
_plans: dict[str, Plan] = {}
_plans_lock = threading.Lock()


def prepare(text: str) -> Plan:
    """Parse and plan ``text`` (cached by the exact text; errors are not cached)."""
    p = _plans.get(text) if isinstance(text, str) else None
    if p is None:
        p = plan(parse(text))
        with _plans_lock:
            if len(_plans) >= _PLAN_CACHE_SIZE:
                _plans.clear()
            _plans[text] = p
    return p


def query(engine, text: str, access: Access | None = None, settings=None, now_ms: int | None = None) -> dict:
    """Run one SELECT over the engine's routes.

    Args:
        engine: an ``ocean.Engine`` (or anything with ``route_entities``, ``route_events``,
            ``entity``, ``routes`` and ``add_listener``).
        text: the query.
        access: whose query it is; read scope is checked for the route or prefix in FROM.
            Default: the server (may read everything).
        settings: limits ``sql_max_rows`` and ``sql_time_limit_ms``; default the engine's.
        now_ms: ``now()`` for the whole query (epoch ms); default the engine's clock
            (``engine.now_ms()``, else the system clock) when the query starts.
    Returns:
        ``{"columns": [names], "rows": [{name: value}, ...]}`` with rows in column order.
    Raises:
        ParseError (syntax, with line/column/caret), SqlError (cannot run: unknown function,
        type errors), QueryLimit (a limit setting), Forbidden, InvalidRoute -- never anything else.
    """
    try:
        access = access or Access.server()
        settings = settings if settings is not None else getattr(engine, "settings", None)
        max_rows = getattr(settings, "sql_max_rows", 100000)
        limit_ms = getattr(settings, "sql_time_limit_ms", 5000)
        now = now_ms if now_ms is not None else getattr(engine, "now_ms", _now_ms)()
        p = prepare(text)
        source = p.source
        check_prefix(source)
        access.check_read(source)
        store = store_for(engine)
        return _run(store, p, source, max_rows, limit_ms, now)
    except OceanError:
        raise
    except RecursionError:
        raise ParseError("the query is nested too deeply") from None
    except MemoryError:
        raise QueryLimit("the query needs more memory than is available; narrow it with WHERE or LIMIT") from None
    except Exception as exc:  # never let a stray exception escape as a 500 with a traceback
        raise InternalError(f"the SQL query failed unexpectedly ({type(exc).__name__}: {exc})") from exc


def _run(store, p: Plan, source: str, max_rows: int, limit_ms: int, now_ms: int | None = None) -> dict:
    # NOTE: the time limit covers running the query, not building a route's table the first
    # time it is read (or applying the writes noted since the last query): that work is the
    # store's, done once, and every later query reuses it.
    prefix = source == "*" or source.endswith("/*")
    if not prefix:
        table = store.tables.get(source)
        if table is None and source not in store.engine.routes():
            return execute(p, TableView(0, ["key", "created_at", "updated_at"], lambda name: None), max_rows,
                           Deadline(limit_ms), now_ms)
        table = store.table(source)
        with table.lock:
            table.refresh(store.engine)
            return execute(p, table.view(), max_rows, Deadline(limit_ms), now_ms)
    tables = [store.table(r) for r in sorted(store.routes(source))]
    for t in tables:  # locks in route order: no two queries wait on each other in a cycle
        t.lock.acquire()
    try:
        parts = []
        for t in tables:
            t.refresh(store.engine)
            parts.append((t.route, t.view()))
        return execute(p, union_view(parts), max_rows, Deadline(limit_ms), now_ms)
    finally:
        for t in reversed(tables):
            t.lock.release()


def run_plan(p: Plan, view, max_rows: int = 100000, time_limit_ms: int = 5000, now_ms: int | None = None) -> dict:
    """Run a prepared plan over a ready view (tests and benchmarks of the executor alone)."""
    return execute(p, view, max_rows, Deadline(time_limit_ms), now_ms)
