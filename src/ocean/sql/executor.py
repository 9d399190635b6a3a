"""SQL executor: runs a ``Plan`` over a table view, stage by stage, within the limits.

Stages: filter (WHERE, a vectorised mask) -> group (hash group ids, per-group
aggregates, HAVING) -> DISTINCT -> order (lexsort; with LIMIT only the top-k
candidates found by ``np.argpartition`` are sorted) -> LIMIT/OFFSET -> output.
Select expressions are evaluated last, on the rows that are returned only.

Limits (``ocean.settings``): ``sql_max_rows`` caps the rows a query returns and
``sql_time_limit_ms`` its running time, checked between stages and every 16k
rows of each per-row Python loop; both fail with ``QueryLimit`` naming the setting.
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import QueryLimit, SqlError
from ..kernels import core
from . import functions as F
from .aggregates import aggregate, group_ids
from .parser import Between, Binary, Call, Case, Cast, Column, InList, Interval, IsNull, Like, Literal, Star, Unary
from .planner import AggRef, OutRef, Plan
from .vectors import Vec, set_deadline, tick


class Deadline:
    """The time limit of one query."""

    def __init__(self, limit_ms: int):
        self.limit_ms = limit_ms
        self.end = time.perf_counter() + limit_ms / 1000.0 if limit_ms else None

    def check(self) -> None:
        if self.end is not None and time.perf_counter() > self.end:
            raise QueryLimit(f"the query ran longer than {self.limit_ms} ms (setting sql_time_limit_ms); "
                             f"narrow it with WHERE or LIMIT")


class RowFrame:
    """Rows of the table (all, or a subset) that row-level expressions see."""

    def __init__(self, view, rows: np.ndarray | None, aliases: dict):
        self.view = view
        self.rows = rows
        self.n = view.n if rows is None else len(rows)
        self.aliases = aliases
        self._cache: dict = {}

    def column(self, name: str) -> Vec | None:
        v = self._cache.get(name)
        if v is None:
            if not self.view.has(name) and name in self.aliases:
                return None
            if self.rows is None:
                v = self.view.column(name)
            else:
                at = getattr(self.view, "column_at", None)
                v = at(name, self.rows) if at is not None else self.view.column(name).take(self.rows)
            self._cache[name] = v
        return v

    def sketches(self, call) -> Vec:
        """The sketch objects ``uniq_merge(field)``/``quantile_merge(field, q)`` merge (NULL rows: none)."""
        node = call.args[0]
        if type(node) is not Column:
            raise SqlError(f"{call.name.upper()}() takes a field of the table (a uniq or dist field), "
                           f"not an expression")
        get = getattr(self.view, "sketch", None)
        v = get(node.name) if get is not None else None
        if v is None:
            values = self.column(node.name)
            if values is not None and values.kind != "null":
                kind = "uniq" if call.name == "uniq_merge" else "dist"
                raise SqlError(f"{call.name.upper()}() needs a {kind} field; {node.name} holds "
                               f"{F.describe(values)}")
            return Vec.nulls(self.n)
        return v if self.rows is None else v.take(self.rows)

    def agg(self, index: int) -> Vec:  # pragma: no cover - the planner only lifts aggregates when grouped
        raise SqlError("aggregate used outside a grouped query")

    def subset(self, idx: np.ndarray) -> "RowFrame":
        rows = idx if self.rows is None else self.rows[idx]
        return RowFrame(self.view, rows, self.aliases)


class GroupFrame:
    """One row per group: columns are the group's first row, aggregates its results."""

    def __init__(self, base: RowFrame, first: np.ndarray, aggs: list, n: int, aliases: dict):
        self.base = base
        self.first = first
        self.aggs = aggs
        self.n = n
        self.view = base.view
        self.aliases = aliases

    def column(self, name: str) -> Vec | None:
        if not self.view.has(name) and name in self.aliases:
            return None
        if len(self.first) < self.n:  # the one group of an aggregate over no rows
            return Vec.nulls(self.n)
        return self.base.column(name).take(self.first)

    def agg(self, index: int) -> Vec:
        return self.aggs[index]

    def subset(self, idx: np.ndarray) -> "GroupFrame":
        first = self.first[idx] if len(self.first) == self.n else self.first
        return GroupFrame(self.base, first, [a.take(idx) for a in self.aggs], len(idx), self.aliases)


class Evaluator:
    """Evaluates expression nodes to vectors over a frame."""

    def __init__(self, deadline: Deadline, now_ms: int | None = None):
        self.deadline = deadline
        self.now_ms = int(time.time_ns() // 1_000_000) if now_ms is None else int(now_ms)  # one now() per query
        self._resolving: set = set()

    def full(self, v: Vec, n: int) -> Vec:
        return v.broadcast(n) if v.const else v

    def eval(self, node, frame) -> Vec:
        t = type(node)
        if t is Column:
            v = frame.column(node.name)
            if v is None:  # a select alias used in WHERE/HAVING (not a column of the table)
                if node.name in self._resolving:
                    return Vec.nulls(frame.n)
                self._resolving.add(node.name)
                try:
                    return self.eval(frame.aliases[node.name], frame)
                finally:
                    self._resolving.discard(node.name)
            return v
        if t is Literal:
            return Vec.constant(node.value)
        if t is AggRef:
            return frame.agg(node.index)
        if t is Binary:
            op = node.op
            if op == "AND":
                return F.logic_and(self.eval(node.left, frame), self.eval(node.right, frame))
            if op == "OR":
                return F.logic_or(self.eval(node.left, frame), self.eval(node.right, frame))
            if type(node.right) is Interval or type(node.left) is Interval:
                return self._interval_arith(node, frame)
            left, right = self.eval(node.left, frame), self.eval(node.right, frame)
            if op in ("+", "-", "*", "/", "%"):
                return F.arith(op, left, right)
            if op == "||":
                return F.concat_text(left, right)
            if op == "IS":
                return F.null_safe_equal(left, right)
            return F.compare(op, left, right)
        if t is Call:
            if node.name == "now":
                return Vec("ts", np.array([self.now_ms], np.int64), None, None, True)
            args = [self.eval(a, frame) for a in node.args]
            out = F.call_scalar(node.name, args, frame.n)
            self.deadline.check()
            return out
        if t is Unary:
            v = self.eval(node.operand, frame)
            if node.op == "NOT":
                return F.logic_not(v)
            if node.op == "-":
                return F.negate(v)
            return F.require_numeric(v, "unary '+'")
        if t is IsNull:
            return F.is_null(self.eval(node.operand, frame), node.negated)
        if t is InList:
            return F.in_list(self.eval(node.operand, frame), [self.eval(i, frame) for i in node.items],
                             node.negated)
        if t is Between:
            x = self.eval(node.operand, frame)
            out = F.logic_and(F.compare(">=", x, self.eval(node.low, frame)),
                              F.compare("<=", x, self.eval(node.high, frame)))
            return F.logic_not(out) if node.negated else out
        if t is Like:
            out = F.like(self.eval(node.operand, frame), self.eval(node.pattern, frame), node.negated)
            self.deadline.check()
            return out
        if t is Case:
            n = frame.n
            if node.operand is not None:
                operand = self.eval(node.operand, frame)
                conds = [F.compare("=", operand, self.eval(c, frame)) for c, _ in node.whens]
            else:
                conds = [self.eval(c, frame) for c, _ in node.whens]
            results = [self.eval(r, frame) for _, r in node.whens]
            default = None if node.default is None else self.eval(node.default, frame)
            return F.case(conds, results, default, n)
        if t is Cast:
            return F.cast(self.eval(node.operand, frame), node.type)
        if t is Interval:
            return Vec.constant(node.text)  # as text: time_bucket(interval '15 minutes', ts) reads it
        if t is Star:
            raise SqlError("* may only stand alone in the select list, or in COUNT(*)")
        raise SqlError(f"cannot evaluate {type(node).__name__}")  # pragma: no cover

    def _interval_arith(self, node, frame) -> Vec:
        """``ts + interval``, ``interval + ts`` and ``ts - interval``."""
        op, left, right = node.op, node.left, node.right
        if type(left) is Interval and type(right) is not Interval and op == "+":
            left, right = right, left
        if type(left) is Interval or op not in ("+", "-"):
            raise SqlError(f"an interval can only be added to or subtracted from a timestamp "
                           f"(like now() - interval '24 hours'), not used with '{op}' there")
        return F.add_interval(self.eval(left, frame), right.months, right.ms, 1 if op == "+" else -1)

    def mask(self, node, frame) -> np.ndarray:
        """Rows where condition ``node`` is true (NULL counts as false)."""
        cond = F.truth(self.eval(node, frame), "WHERE/HAVING")
        hit = cond.data if cond.valid is None else cond.data & cond.valid
        return np.broadcast_to(hit, (frame.n,))


# -- ordering ---------------------------------------------------------------------

def _sort_arrays(v: Vec, n: int, desc: bool, nulls_first: bool | None):
    """(null_key or None, value_key) so that ascending lexsort gives the wanted order."""
    v = v.broadcast(n)
    kind = v.kind
    if kind == "obj":
        values = v.data.tolist()
        keys = []
        for i, x in enumerate(values):
            tick(i)
            keys.append((x is not None, F._class_key(x) if x is not None else (0, 0)))
        order = sorted(range(n), key=keys.__getitem__)
        val = np.empty(n, np.int64)
        rank, prev = -1, object()
        for i in order:
            key = None if values[i] is None else F._class_key(values[i])
            if key != prev:
                rank += 1
                prev = key
            val[i] = rank
    elif kind == "str":
        val = v.dict.ranks_ext()[v.data]
    elif kind == "null":
        val = np.zeros(n, np.int64)
    elif kind == "bool":
        val = v.data.astype(np.int64)
    else:
        val = v.data
    if desc:
        val = -val if val.dtype == np.float64 else ~val
    notnull = v.notnull()
    if nulls_first is None:
        nulls_first = not desc  # NULL sorts as the smallest value
    if notnull is None or (kind != "null" and notnull.all()):
        return None, val
    null_key = notnull if nulls_first else ~notnull
    return null_key.astype(np.int8), val


def order_rows(keys: list[Vec], descs: list[bool], nulls: list, n: int, k: int | None) -> np.ndarray:
    """Row positions in ORDER BY order; with ``k`` only the first k (top-k via argpartition)."""
    arrays = [_sort_arrays(v, n, d, nf) for v, d, nf in zip(keys, descs, nulls)]
    lex = []
    for null_key, val in reversed(arrays):
        lex.append(val)
        if null_key is not None:
            lex.append(null_key)
    if k is not None and len(arrays) == 1 and arrays[0][0] is None and k < n:
        # one key, no NULLs: the top-k kernel (a bounded heap) gives a stable sort's first k
        val = arrays[0][1]
        if val.dtype == np.float64:
            if not np.isnan(val).any():
                return np.asarray(core().top_k_f64(val, k), np.int64)
        else:
            return np.asarray(core().top_k_i64(val, k), np.int64)
    if k is not None and k < n // 2 and arrays[0][0] is None:
        if k == 0:
            return np.zeros(0, np.int64)
        primary = arrays[0][1]
        kth = np.partition(primary, k - 1)[k - 1]
        cand = np.flatnonzero(primary <= kth)
        order = np.lexsort([a[cand] for a in lex])
        return cand[order[:k]]
    order = np.lexsort(lex) if lex else np.arange(n)
    return order if k is None else order[:k]


def unique_names(names: list[str]) -> list[str]:
    """Output column names made unique: a repeated name gets ``:1``, ``:2``... (as SQLite names them)."""
    seen: dict = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            candidate = f"{name}:{seen[name]}"
            while candidate in seen:
                seen[name] += 1
                candidate = f"{name}:{seen[name]}"
            seen[candidate] = 0
            out.append(candidate)
        else:
            seen[name] = 0
            out.append(name)
    return out


def _clean(value):
    if type(value) is float and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


# -- the pipeline ---------------------------------------------------------------------

def execute(plan: Plan, view, max_rows: int, deadline: Deadline, now_ms: int | None = None) -> dict:
    """Run ``plan`` over ``view``; return ``{"columns": [...], "rows": [{...}, ...]}``.

    ``now_ms`` is ``now()`` (epoch ms) for the whole query; default the clock when it starts.
    """
    set_deadline(deadline)
    try:
        return _execute(plan, view, max_rows, deadline, now_ms)
    finally:
        set_deadline(None)


def _execute(plan: Plan, view, max_rows: int, deadline: Deadline, now_ms: int | None = None) -> dict:
    ev = Evaluator(deadline, now_ms)
    items = []
    for expr, name in plan.items:
        if isinstance(expr, Star):
            items.extend((Column(c), c) for c in view.names)
        else:
            items.append((expr, name))
    frame = RowFrame(view, None, plan.aliases)

    # 1. filter
    if plan.where is not None:
        frame = frame.subset(np.flatnonzero(ev.mask(plan.where, frame)))
    deadline.check()

    # 2. group
    if plan.grouped:
        n = frame.n
        keys = [ev.eval(g, frame) for g in plan.group_by]
        if keys:
            gid, first = group_ids(keys, n)
            ngroups = len(first)
        else:
            gid, first = np.zeros(n, np.int64), np.zeros(min(n, 1), np.int64)
            ngroups = 1
        deadline.check()
        aggs = []
        for call in plan.aggregates:
            if call.name in F.SKETCH_AGGREGATES:
                arg = frame.sketches(call)
            else:
                arg = None if call.star else ev.eval(call.args[0], frame)
            param = ev.eval(call.args[1], frame) if len(call.args) > 1 else None  # percentile's fraction
            aggs.append(aggregate(call.name, call.star, call.distinct, arg, gid, ngroups, param))
            deadline.check()
        group_aliases = {name: expr for expr, name in plan.items if not isinstance(expr, Star)}
        frame = GroupFrame(frame, first, aggs, ngroups, group_aliases)
        if keys and not plan.order_by and ngroups > 1:  # groups come out in key order, like SQLite
            reps = [k.broadcast(n).take(first) for k in keys]
            frame = frame.subset(order_rows(reps, [False] * len(reps), [None] * len(reps), ngroups, None))
        if plan.having is not None:
            frame = frame.subset(np.flatnonzero(ev.mask(plan.having, frame)))
        deadline.check()

    # 3. distinct
    outs: list = [None] * len(items)
    if plan.distinct:
        if frame.n > 0:
            outs = [ev.eval(e, frame).broadcast(frame.n) for e, _ in items]
            _, first = group_ids(outs, frame.n)
            first = np.sort(first)
            frame = frame.subset(first)
            outs = [o.take(first) for o in outs]
        deadline.check()

    # 4. order, 5. limit
    n = frame.n
    stop = None if plan.limit is None else plan.offset + plan.limit
    if plan.order_by:
        keys, descs, nulls = [], [], []
        for expr, desc, nulls_first in plan.order_by:
            if isinstance(expr, OutRef):
                if outs[expr.index] is None:
                    outs[expr.index] = ev.eval(items[expr.index][0], frame)
                v = outs[expr.index]
            else:
                v = ev.eval(expr, frame)
            keys.append(v)
            descs.append(desc)
            nulls.append(nulls_first)
        deadline.check()
        perm = order_rows(keys, descs, nulls, n, stop)
        perm = perm[plan.offset:]
    else:
        perm = np.arange(min(n, plan.offset), n if stop is None else min(n, stop))
    if max_rows and len(perm) > max_rows:  # 0: no cap
        raise QueryLimit(f"the query returns {len(perm)} rows; at most {max_rows} are allowed "
                         f"(setting sql_max_rows); add a LIMIT")
    if len(perm) != n or plan.order_by:
        frame = frame.subset(perm)
        outs = [None if o is None else o.broadcast(n).take(perm) for o in outs]
    deadline.check()

    # 6. output
    m = frame.n
    columns = []
    for i, (expr, _) in enumerate(items):
        v = outs[i] if outs[i] is not None else ev.eval(expr, frame)
        values = v.to_list(m) if v.const else v.to_list()
        if len(values) != m:  # pragma: no cover - defensive: a constant over a subset
            values = (values * m)[:m]
        if v.kind == "float":
            values = [_clean(x) for x in values]
        columns.append(values)
    deadline.check()
    names = unique_names([name for _, name in items])
    rows = [dict(zip(names, row)) for row in zip(*columns)] if columns else [{} for _ in range(m)]
    return {"columns": names, "rows": rows}
