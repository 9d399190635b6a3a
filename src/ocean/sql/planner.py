"""SQL planner: a parsed ``Select`` -> a ``Plan`` the executor runs stage by stage.

The planner knows names and shapes, not data: it checks functions and their
argument counts, finds the aggregates (each computed once, referenced by
``AggRef``), resolves ``GROUP BY``/``ORDER BY`` terms that name a select alias
or position, and decides whether the query is grouped. Types are checked by
the executor, which sees the columns.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import SqlError
from . import functions
from .parser import (Between, Binary, Call, Case, Cast, Column, InList, Interval, IsNull, Like, Literal, Node, Select,
                     Star, Unary)


@dataclass(frozen=True)
class AggRef(Node):
    """The value of aggregate number ``index`` in the current group."""

    index: int


@dataclass(frozen=True)
class OutRef(Node):
    """Output column number ``index`` (an ORDER BY term naming a select alias or position)."""

    index: int


@dataclass
class Plan:
    """What the executor runs: source, filter, grouping, aggregates, output, order, limit."""

    source: str
    source_pos: int
    items: list  # [(expr, name)]; a Star expr expands to the table's columns at run time
    where: Node | None
    grouped: bool
    group_by: list
    aggregates: list  # [Call]
    having: Node | None
    order_by: list  # [(expr | OutRef, desc, nulls_first)]
    limit: int | None
    offset: int
    distinct: bool
    aliases: dict = field(default_factory=dict)  # alias -> row-level expr (for WHERE)


def plan(select: Select) -> Plan:
    """Turn a ``Select`` into a ``Plan``; raise SqlError for what cannot run whatever the data."""
    aggregates: list = []
    items = []
    for item in select.items:
        _check(item.expr, allow_agg=True, allow_star=isinstance(item.expr, Star))
        items.append((item.expr, item.name))
    if select.where is not None:
        _check(select.where, allow_agg=False, where="WHERE")
    for expr in select.group_by:
        _check(expr, allow_agg=False, where="GROUP BY")
    if select.having is not None:
        _check(select.having, allow_agg=True)
    for o in select.order_by:
        _check(o.expr, allow_agg=True)

    aliases = {}
    for item in select.items:
        if item.alias is not None and not _has_agg(item.expr):
            aliases.setdefault(item.alias, item.expr)

    # GROUP BY terms: a position or a select alias names that select expression
    group_by = []
    for expr in select.group_by:
        target = _select_ref(expr, select, "GROUP BY")
        if target is not None:
            if _has_agg(select.items[target].expr):
                raise SqlError(f"GROUP BY term {target + 1} refers to an aggregate ({select.items[target].name})")
            expr = select.items[target].expr
        group_by.append(expr)

    has_agg = any(_has_agg(e) for e, _ in items) or (select.having is not None) or \
        any(_has_agg(o.expr) for o in select.order_by)
    grouped = bool(group_by) or has_agg
    if grouped and any(isinstance(e, Star) for e, _ in items):
        raise SqlError("SELECT * cannot be used with GROUP BY or aggregates; name the columns")

    items = [(_lift(e, aggregates), name) for e, name in items]
    having = _lift(select.having, aggregates) if select.having is not None else None

    order_by = []
    for o in select.order_by:
        target = _select_ref(o.expr, select, "ORDER BY")
        if target is not None:
            if isinstance(select.items[target].expr, Star):
                raise SqlError("ORDER BY cannot refer to *")
            order_by.append((OutRef(target), o.desc, o.nulls_first))
        else:
            order_by.append((_lift(o.expr, aggregates) if grouped else o.expr, o.desc, o.nulls_first))
    return Plan(select.source, select.source_pos, items, select.where, grouped, group_by, aggregates, having,
                order_by, select.limit, select.offset, select.distinct, aliases)


def _select_ref(expr: Node, select: Select, clause: str) -> int | None:
    """Index of the select item ``expr`` names: an integer position or an alias (else None)."""
    if isinstance(expr, Literal) and type(expr.value) is int:
        pos = expr.value
        if not 1 <= pos <= len(select.items):
            raise SqlError(f"{clause} term {pos} is out of range: the query selects {len(select.items)} column(s)")
        return pos - 1
    if isinstance(expr, Column):
        for i, item in enumerate(select.items):
            if item.alias is not None and item.alias == expr.name:
                return i
    return None


def _children(node: Node) -> list:
    if isinstance(node, Unary):
        return [node.operand]
    if isinstance(node, Binary):
        return [node.left, node.right]
    if isinstance(node, IsNull):
        return [node.operand]
    if isinstance(node, InList):
        return [node.operand, *node.items]
    if isinstance(node, Between):
        return [node.operand, node.low, node.high]
    if isinstance(node, Like):
        return [node.operand, node.pattern]
    if isinstance(node, Case):
        out = [] if node.operand is None else [node.operand]
        for cond, result in node.whens:
            out += [cond, result]
        if node.default is not None:
            out.append(node.default)
        return out
    if isinstance(node, Cast):
        return [node.operand]
    if isinstance(node, Call):
        return list(node.args)
    return []


def _has_agg(node: Node) -> bool:
    if isinstance(node, Call) and node.name in functions.AGGREGATES:
        return True
    return any(_has_agg(c) for c in _children(node))


def _check(node: Node, allow_agg: bool, allow_star: bool = False, where: str = "", in_agg: bool = False) -> None:
    """Refuse unknown functions, wrong argument counts, misplaced aggregates and ``*``."""
    if isinstance(node, Star):
        if not allow_star:
            raise SqlError("* may only stand alone in the select list, or in COUNT(*)")
        return
    if isinstance(node, Call):
        name = node.name
        if name in functions.AGGREGATES:
            if not allow_agg:
                raise SqlError(f"aggregate {name.upper()}() is not allowed in {where}")
            if in_agg:
                raise SqlError(f"aggregate {name.upper()}() cannot be nested inside another aggregate")
            if node.star:
                if name != "count":
                    raise SqlError(f"{name.upper()}(*) is not a function; only COUNT(*) takes *")
            elif len(node.args) != functions.AGGREGATE_ARGS.get(name, 1):
                want = functions.AGGREGATE_ARGS.get(name, 1)
                raise SqlError(f"{name.upper()}() takes exactly {'one argument' if want == 1 else f'{want} arguments'}, "
                               f"got {len(node.args)}")
            for arg in node.args:
                _check(arg, allow_agg, where=where, in_agg=True)
            return
        spec = functions.SCALARS.get(name)
        if spec is None:
            known = ", ".join(sorted(n.upper() for n in list(functions.SCALARS) + list(functions.AGGREGATES)))
            raise SqlError(f"unknown function {name.upper()}(); ocean SQL knows {known}")
        lo, hi = spec
        if node.star or node.distinct:
            raise SqlError(f"{name.upper()}() does not take {'*' if node.star else 'DISTINCT'}")
        if not lo <= len(node.args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}" if hi < 99 else f"at least {lo}"
            raise SqlError(f"{name.upper()}() takes {want} argument(s), got {len(node.args)}")
    for child in _children(node):
        _check(child, allow_agg, where=where, in_agg=in_agg)


def _lift(node: Node, aggregates: list) -> Node:
    """Replace each aggregate call by an ``AggRef`` (equal calls share one slot)."""
    if isinstance(node, Call) and node.name in functions.AGGREGATES:
        if node not in aggregates:
            aggregates.append(node)
        return AggRef(aggregates.index(node))
    if isinstance(node, (Column, Literal, Star, AggRef, OutRef, Interval)) or node is None:
        return node
    if isinstance(node, Unary):
        return Unary(node.op, _lift(node.operand, aggregates))
    if isinstance(node, Binary):
        return Binary(node.op, _lift(node.left, aggregates), _lift(node.right, aggregates), node.pos)
    if isinstance(node, IsNull):
        return IsNull(_lift(node.operand, aggregates), node.negated)
    if isinstance(node, InList):
        return InList(_lift(node.operand, aggregates), tuple(_lift(i, aggregates) for i in node.items), node.negated)
    if isinstance(node, Between):
        return Between(_lift(node.operand, aggregates), _lift(node.low, aggregates), _lift(node.high, aggregates),
                       node.negated)
    if isinstance(node, Like):
        return Like(_lift(node.operand, aggregates), _lift(node.pattern, aggregates), node.negated)
    if isinstance(node, Case):
        return Case(None if node.operand is None else _lift(node.operand, aggregates),
                    tuple((_lift(c, aggregates), _lift(r, aggregates)) for c, r in node.whens),
                    None if node.default is None else _lift(node.default, aggregates))
    if isinstance(node, Cast):
        return Cast(_lift(node.operand, aggregates), node.type)
    if isinstance(node, Call):
        return Call(node.name, tuple(_lift(a, aggregates) for a in node.args), node.distinct, node.star, node.pos)
    return node  # pragma: no cover


__all__ = ["AggRef", "OutRef", "Plan", "plan"]
