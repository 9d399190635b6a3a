"""SQL parser: tokens -> a ``Select`` syntax tree (no knowledge of tables or types).

Grammar (the subset ocean speaks)::

    SELECT [DISTINCT] item, ... FROM "route" | "prefix/*"
      [WHERE expr] [GROUP BY expr, ...] [HAVING expr]
      [ORDER BY expr [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n [OFFSET m]]

Expressions, loosest binding first: ``OR``; ``AND``; ``NOT``; comparisons
(``= == != <> < <= > >=``, ``IS [NOT] NULL``, ``[NOT] IN (...)``,
``[NOT] BETWEEN a AND b``, ``[NOT] LIKE``); ``+ -``; ``* / %``; ``||``;
unary ``- +``; then literals, columns, ``CASE``, ``CAST``, calls and
parentheses. Every error is a ``ParseError`` with line, column and a caret.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ParseError
from .calendar import parse_interval
from .lexer import Token, syntax_error, tokenize

NON_RESERVED = frozenset({"FIRST", "LAST", "NULLS"})  # keywords that may still name columns and aliases
MAX_DEPTH = 64  # nesting of parentheses/CASE/calls/NOT/unary minus; deeper is refused, never a RecursionError


# -- the syntax tree ---------------------------------------------------------

@dataclass(frozen=True)
class Node:
    """Base of expression nodes."""


@dataclass(frozen=True)
class Literal(Node):
    value: object  # None, bool, int, float or str
    type: str = ""  # the value's type name, so that 1, 1.0 and TRUE are different nodes

    def __post_init__(self):
        object.__setattr__(self, "type", type(self.value).__name__)


@dataclass(frozen=True)
class Column(Node):
    name: str
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Star(Node):
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "-", "+", "NOT"
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str  # + - * / % || = != < <= > >= AND OR
    left: Node
    right: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class IsNull(Node):
    operand: Node
    negated: bool


@dataclass(frozen=True)
class InList(Node):
    operand: Node
    items: tuple
    negated: bool


@dataclass(frozen=True)
class Between(Node):
    operand: Node
    low: Node
    high: Node
    negated: bool


@dataclass(frozen=True)
class Like(Node):
    operand: Node
    pattern: Node
    negated: bool


@dataclass(frozen=True)
class Case(Node):
    operand: Node | None
    whens: tuple  # ((condition, result), ...)
    default: Node | None


@dataclass(frozen=True)
class Cast(Node):
    operand: Node
    type: str  # INTEGER, REAL, TEXT


@dataclass(frozen=True)
class Call(Node):
    name: str  # lower case
    args: tuple
    distinct: bool = False
    star: bool = False
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Interval(Node):
    """``interval '24 hours'``: months and milliseconds (see ``calendar.parse_interval``)."""

    text: str
    months: int
    ms: int


@dataclass(frozen=True)
class SelectItem:
    expr: Node
    alias: str | None
    name: str  # the output column name: alias, column name or the expression's text


@dataclass(frozen=True)
class OrderItem:
    expr: Node
    desc: bool
    nulls_first: bool | None  # None: SQL default (NULLs sort as the smallest value)


@dataclass(frozen=True)
class Select:
    distinct: bool
    items: tuple
    source: str
    source_pos: int
    where: Node | None
    group_by: tuple
    having: Node | None
    order_by: tuple
    limit: int | None
    offset: int


CAST_TYPES = {"INTEGER": "INTEGER", "INT": "INTEGER", "BIGINT": "INTEGER", "REAL": "REAL", "FLOAT": "REAL",
              "DOUBLE": "REAL", "NUMERIC": "REAL", "TEXT": "TEXT", "VARCHAR": "TEXT", "STRING": "TEXT"}


# -- the parser --------------------------------------------------------------

class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    # token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, what: str, tok: Token | None = None) -> ParseError:
        tok = tok or self.tok
        return syntax_error(self.text, tok.pos, what)

    def describe(self, tok: Token) -> str:
        if tok.kind == "end":
            return "end of query"
        if tok.kind == "string":
            return f"string '{tok.value}'"
        if tok.kind == "ident":
            return f"identifier {tok.value}"
        return f"{tok.value}"

    def next(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def at(self, kind: str, value=None) -> bool:
        tok = self.tok
        return tok.kind == kind and (value is None or tok.value == value)

    def accept(self, kind: str, value=None) -> Token | None:
        if self.at(kind, value):
            return self.next()
        return None

    def kw(self, *words: str) -> bool:
        """Accept keywords ``words`` in sequence (all or nothing)."""
        for k, word in enumerate(words):
            tok = self.tokens[min(self.i + k, len(self.tokens) - 1)]
            if tok.kind != "keyword" or tok.value != word:
                return False
        self.i += len(words)
        return True

    def expect_kw(self, word: str) -> None:
        if not self.kw(word):
            raise self.error(f"expected {word}, found {self.describe(self.tok)}")

    def expect_op(self, op: str) -> Token:
        tok = self.accept("op", op)
        if tok is None:
            raise self.error(f"expected '{op}', found {self.describe(self.tok)}")
        return tok

    def span(self, start_index: int) -> str:
        """The source text of tokens ``start_index`` up to the current one."""
        a = self.tokens[start_index].pos
        b = self.tok.pos
        return self.text[a:b].strip()

    # statements
    def select(self) -> Select:
        if not self.kw("SELECT"):
            raise self.error(f"a query starts with SELECT, found {self.describe(self.tok)}")
        distinct = self.kw("DISTINCT")
        if not distinct:
            self.kw("ALL")
        items = [self.select_item()]
        while self.accept("op", ","):
            items.append(self.select_item())
        if not self.kw("FROM"):
            raise self.error(f"expected FROM or ',', found {self.describe(self.tok)}")
        src = self.tok
        source = self.source()
        where = self.expr() if self.kw("WHERE") else None
        group_by: list = []
        if self.kw("GROUP"):
            self.expect_kw("BY")
            group_by.append(self.expr())
            while self.accept("op", ","):
                group_by.append(self.expr())
        having = self.expr() if self.kw("HAVING") else None
        order_by: list = []
        if self.kw("ORDER"):
            self.expect_kw("BY")
            order_by.append(self.order_item())
            while self.accept("op", ","):
                order_by.append(self.order_item())
        limit, offset = None, 0
        if self.kw("LIMIT"):
            limit = self.count("LIMIT")
            if self.kw("OFFSET"):
                offset = self.count("OFFSET")
        if self.at("op", ";"):
            self.next()
        if not self.at("end"):
            raise self.error(f"unexpected {self.describe(self.tok)} after the query")
        return Select(distinct, tuple(items), source, src.pos, where, tuple(group_by), having,
                      tuple(order_by), limit, offset)

    def source(self) -> str:
        tok = self.next()
        if tok.kind in ("ident", "string"):
            name = tok.value
            end = tok.pos + len(name)
            # bare words may spell a route: analytics/daily or analytics/* without quotes
            while tok.kind == "ident" and self.at("op", "/") and self.tok.pos == end:
                slash = self.next()
                nxt = self.tok
                if nxt.kind == "ident" and nxt.pos == slash.pos + 1:
                    name += "/" + self.next().value
                    end = nxt.pos + len(nxt.value)
                elif nxt.kind == "op" and nxt.value == "*" and nxt.pos == slash.pos + 1:
                    self.next()
                    name += "/*"
                    break
                else:
                    raise self.error("a route segment must follow '/'", nxt)
            return name
        if tok.kind == "op" and tok.value == "*":
            return "*"
        raise self.error(f"expected a route after FROM (like \"analytics/daily\"), found {self.describe(tok)}", tok)

    def count(self, what: str) -> int:
        tok = self.next()
        if tok.kind != "number" or not isinstance(tok.value, int):
            raise self.error(f"{what} takes a whole number, found {self.describe(tok)}", tok)
        return tok.value

    def select_item(self) -> SelectItem:
        start = self.i
        if self.at("op", "*"):
            tok = self.next()
            return SelectItem(Star(tok.pos), None, "*")
        expr = self.expr()
        name = expr.name if isinstance(expr, Column) else self.span(start)
        alias = None
        if self.kw("AS"):
            tok = self.next()
            if tok.kind not in ("ident", "string") and not (tok.kind == "keyword" and tok.value in NON_RESERVED):
                raise self.error(f"expected a name after AS, found {self.describe(tok)}", tok)
            if tok.kind == "keyword":  # a non-reserved word as a name keeps its spelling
                tok = Token("ident", self.text[tok.pos:tok.pos + len(tok.value)], tok.pos)
            alias = tok.value
        elif self.at("ident") or (self.tok.kind == "keyword" and self.tok.value in NON_RESERVED):
            alias = self.next().value
        return SelectItem(expr, alias, alias if alias is not None else name)

    def order_item(self) -> OrderItem:
        expr = self.expr()
        desc = False
        if self.kw("DESC"):
            desc = True
        else:
            self.kw("ASC")
        nulls = None
        if self.kw("NULLS"):
            if self.kw("FIRST"):
                nulls = True
            elif self.kw("LAST"):
                nulls = False
            else:
                raise self.error(f"expected FIRST or LAST after NULLS, found {self.describe(self.tok)}")
        return OrderItem(expr, desc, nulls)

    # expressions
    def expr(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested more than {MAX_DEPTH} deep")
        try:
            return self.or_expr()
        finally:
            self.depth -= 1

    def or_expr(self) -> Node:
        left = self.and_expr()
        while True:
            tok = self.tok
            if not self.kw("OR"):
                return left
            left = Binary("OR", left, self.and_expr(), tok.pos)

    def and_expr(self) -> Node:
        left = self.not_expr()
        while True:
            tok = self.tok
            if not self.kw("AND"):
                return left
            left = Binary("AND", left, self.not_expr(), tok.pos)

    def not_expr(self) -> Node:
        if self.kw("NOT"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"expression nested more than {MAX_DEPTH} deep")
            try:
                return Unary("NOT", self.not_expr())
            finally:
                self.depth -= 1
        return self.comparison()

    def comparison(self) -> Node:
        left = self.additive()
        while True:
            tok = self.tok
            if tok.kind == "op" and tok.value in ("=", "==", "!=", "<>", "<", "<=", ">", ">="):
                self.next()
                op = {"==": "=", "<>": "!="}.get(tok.value, tok.value)
                left = Binary(op, left, self.additive(), tok.pos)
                continue
            if self.kw("IS"):
                negated = self.kw("NOT")
                if self.kw("NULL"):
                    left = IsNull(left, negated)
                    continue
                # IS / IS NOT <expr>: null-safe equality
                right = self.additive()
                cmp = Binary("IS", left, right, tok.pos)
                left = Unary("NOT", cmp) if negated else cmp
                continue
            negated = False
            if self.at("keyword", "NOT") and self.tokens[self.i + 1].kind == "keyword" and \
                    self.tokens[self.i + 1].value in ("IN", "BETWEEN", "LIKE"):
                self.next()
                negated = True
            if self.kw("IN"):
                self.expect_op("(")
                if self.at("op", ")"):
                    raise self.error("IN needs at least one value")
                items = [self.expr()]
                while self.accept("op", ","):
                    items.append(self.expr())
                self.expect_op(")")
                left = InList(left, tuple(items), negated)
                continue
            if self.kw("BETWEEN"):
                low = self.additive()
                self.expect_kw("AND")
                high = self.additive()
                left = Between(left, low, high, negated)
                continue
            if self.kw("LIKE"):
                left = Like(left, self.additive(), negated)
                continue
            if negated:  # pragma: no cover - guarded by the lookahead above
                raise self.error("expected IN, BETWEEN or LIKE after NOT")
            return left

    def additive(self) -> Node:
        left = self.multiplicative()
        while self.tok.kind == "op" and self.tok.value in ("+", "-"):
            tok = self.next()
            left = Binary(tok.value, left, self.multiplicative(), tok.pos)
        return left

    def multiplicative(self) -> Node:
        left = self.concat()
        while self.tok.kind == "op" and self.tok.value in ("*", "/", "%"):
            tok = self.next()
            left = Binary(tok.value, left, self.concat(), tok.pos)
        return left

    def concat(self) -> Node:
        left = self.unary()
        while self.at("op", "||"):
            tok = self.next()
            left = Binary("||", left, self.unary(), tok.pos)
        return left

    def unary(self) -> Node:
        if self.tok.kind == "op" and self.tok.value in ("-", "+"):
            tok = self.next()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"expression nested more than {MAX_DEPTH} deep", tok)
            try:
                operand = self.unary()
            finally:
                self.depth -= 1
            if tok.value == "-" and isinstance(operand, Literal) and type(operand.value) in (int, float):
                return Literal(-operand.value)
            return Unary(tok.value, operand)
        return self.primary()

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "number" or tok.kind == "string":
            self.next()
            return Literal(tok.value)
        if tok.kind == "keyword":
            if tok.value == "NULL":
                self.next()
                return Literal(None)
            if tok.value in ("TRUE", "FALSE"):
                self.next()
                return Literal(tok.value == "TRUE")
            if tok.value == "CASE":
                self.next()
                return self.case()
            if tok.value == "CAST":
                self.next()
                self.expect_op("(")
                operand = self.expr()
                self.expect_kw("AS")
                t = self.next()
                type_name = str(t.value).upper() if t.kind in ("ident", "keyword") else ""
                if type_name not in CAST_TYPES:
                    raise self.error(f"CAST to INTEGER, REAL or TEXT, found {self.describe(t)}", t)
                self.expect_op(")")
                return Cast(operand, CAST_TYPES[type_name])
            if tok.value in NON_RESERVED:  # first, last, nulls: usable as column names
                self.next()
                return Column(self.text[tok.pos:tok.pos + len(tok.value)], tok.pos)
            raise self.error(f"expected an expression, found keyword {tok.value}")
        if tok.kind == "ident" and tok.value.lower() == "interval" and self.tokens[self.i + 1].kind == "string":
            self.next()
            text = self.next()
            try:
                months, ms = parse_interval(text.value)
            except ValueError as exc:
                raise self.error(str(exc), text) from None
            return Interval(text.value, months, ms)
        if tok.kind == "ident":
            self.next()
            if self.at("op", "("):
                return self.call(tok)
            if self.at("op", ".") and self.tokens[self.i + 1].kind == "ident":
                # table.column: ocean queries one table, so the qualifier is accepted and dropped
                self.next()
                col = self.next()
                return Column(col.value, col.pos)
            return Column(tok.value, tok.pos)
        if tok.kind == "op" and tok.value == "(":
            self.next()
            inner = self.expr()
            self.expect_op(")")
            return inner
        raise self.error(f"expected an expression, found {self.describe(tok)}")

    def call(self, name_tok: Token) -> Node:
        self.expect_op("(")
        name = name_tok.value.lower()
        if self.at("op", "*"):
            self.next()
            self.expect_op(")")
            return Call(name, (), False, True, name_tok.pos)
        distinct = self.kw("DISTINCT")
        args = []
        if not self.at("op", ")"):
            args.append(self.expr())
            while self.accept("op", ","):
                args.append(self.expr())
        self.expect_op(")")
        return Call(name, tuple(args), distinct, False, name_tok.pos)

    def case(self) -> Node:
        if self.at("keyword", "END"):
            raise self.error("CASE needs at least one WHEN")
        operand = None if self.at("keyword", "WHEN") else self.expr()
        whens = []
        while self.kw("WHEN"):
            cond = self.expr()
            self.expect_kw("THEN")
            whens.append((cond, self.expr()))
        if not whens:
            raise self.error(f"CASE needs at least one WHEN, found {self.describe(self.tok)}")
        default = self.expr() if self.kw("ELSE") else None
        self.expect_kw("END")
        return Case(operand, tuple(whens), default)


def parse(text: str) -> Select:
    """Parse one SELECT statement; raise ParseError (line, column, caret) when it cannot be read."""
    return _Parser(text).select()
