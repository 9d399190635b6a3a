"""The Drops parser: one command's tokens -> a ``Parsed`` command ready to execute.

Every command is checked here completely (routes, keys, fields, amounts,
payload shape) so that the executor makes exactly one engine call. Parses are
cached by the command's source bytes: a script that repeats a line (10,000
``incr`` lines) decodes and parses it once. Parsed commands are immutable;
positions in them are relative to the command's first line so a cached parse
serves the same text anywhere in any script.
"""
from __future__ import annotations

import logging

from ..errors import InternalError, InvalidAmount, OceanError, ParseError, UnknownCommand
from ..model import check_amount, check_field, check_prefix, check_route, check_sketch_values
from ..timekeys import check_template
from . import commands
from .lexer import Token, decode, spans

log = logging.getLogger("ocean.drops")

MAX_DEPTH = 64  # nesting of objects, arrays and parentheses
_CACHE_ENTRIES = 4096
_CACHE_MAX_BYTES = 4096  # longer commands are parsed every time (their payloads are big anyway)
_cache: dict = {}

_ROUTE_KINDS = frozenset(("word", "int", "float", "true", "false", "null"))
_NAME_KINDS = frozenset(("word", "string", "int", "float", "true", "false", "null"))
_VALUE_KINDS = frozenset(("string", "int", "float", "true", "false", "null", "backtick"))
_FIELD_KINDS = frozenset(("word", "field", "qfield", "string"))
_OPS = frozenset(("=", "!=", "<", "<=", ">", ">="))


class Parsed:
    """A parsed command: its canonical name and arguments (never mutated: parses are cached)."""

    __slots__ = ("name", "args")

    def __init__(self, name: str, args):
        self.name = name
        self.args = args

    def __repr__(self) -> str:
        return f"Parsed({self.name!r}, {self.args!r})"


class Failed:
    """A command that could not be parsed: the error to report, its position relative to the command."""

    __slots__ = ("name", "error", "line", "column")

    def __init__(self, error: OceanError, line: int, column: int):
        self.name = None
        self.error = error
        self.line = line
        self.column = column


class Query:
    """The plan of a ``find`` or ``count``: target, filter, grouping, order, limit, projection."""

    __slots__ = ("target", "where", "group", "aggregates", "sort", "limit", "pick")

    def __init__(self, target):
        self.target = target
        self.where = None       # a predicate row -> bool, or None
        self.group = None       # tuple of field names, or None
        self.aggregates = ()    # ((output name, function, field), ...)
        self.sort = ()          # ((field, descending), ...)
        self.limit = None
        self.pick = None        # tuple of field names, or None


def _quote(text: str, limit: int = 40) -> str:
    text = text if len(text) <= limit else text[:limit] + "…"
    return "`" + text.replace("`", "'") + "`"


class _Cursor:
    """Reads one command's tokens left to right and makes positioned errors."""

    __slots__ = ("toks", "i", "name")

    def __init__(self, toks: list[Token], name: str):
        self.toks = toks
        self.i = 1
        self.name = name

    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def at_end(self) -> bool:
        return self.i >= len(self.toks)

    def take(self, what: str) -> Token:
        if self.i >= len(self.toks):
            raise self.error(f"`{self.name}` needs {what}; usage: {commands.BY_NAME[self.name].syntax}")
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, message: str, tok: Token | None = None, cls=ParseError) -> OceanError:
        if tok is None:
            last = self.toks[-1]
            return cls(message, line=last.line, column=last.column + len(last.text))
        return cls(message, line=tok.line, column=tok.column)

    def keyword(self, word: str) -> bool:
        """Take the next token when it is the keyword ``word`` (any case)."""
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.value.lower() == word:
            self.i += 1
            return True
        return False

    def end(self) -> None:
        tok = self.peek()
        if tok is not None:
            raise self.error(f"unexpected {_quote(tok.text)}; usage: {commands.BY_NAME[self.name].syntax}", tok)

    # -- operands -------------------------------------------------------------
    def route(self, prefix: bool = False) -> str:
        tok = self.take("a route (like analytics/daily)")
        if tok.kind not in _ROUTE_KINDS:
            raise self.error(f"expected a route (like analytics/daily), got {_quote(tok.text)}", tok)
        try:
            return check_prefix(tok.text) if prefix else check_route(tok.text)
        except OceanError as exc:
            raise self.error(exc.message, tok, type(exc)) from None

    def key(self) -> str:
        tok = self.take("a key (like @2026-02-10)")
        if tok.kind != "key":
            raise self.error(f"expected a key (like @2026-02-10), got {_quote(tok.text)}", tok)
        return _checked_key(self, tok)

    def field(self, what: str = "a field name") -> str:
        tok = self.take(what)
        if tok.kind not in _FIELD_KINDS:
            raise self.error(f"expected {what}, got {_quote(tok.text)}", tok)
        try:
            return check_field(tok.value)
        except OceanError as exc:
            raise self.error(exc.message, tok, type(exc)) from None

    def count_arg(self, what: str) -> int:
        tok = self.take(what)
        if tok.kind != "int" or tok.value < 0:
            raise self.error(f"expected {what} (a whole number >= 0), got {_quote(tok.text)}", tok)
        return tok.value

    def value(self, depth: int = 0):
        """One JSON-like value: string, number, true/false/null, `backtick`, {object} or [array]."""
        tok = self.take("a value")
        kind = tok.kind
        if kind in _VALUE_KINDS:
            return tok.value
        if depth >= MAX_DEPTH:
            raise self.error(f"values are nested more than {MAX_DEPTH} deep", tok)
        if kind == "{":
            return self.object_rest(depth + 1)
        if kind == "[":
            out = []
            while True:
                tok = self.peek()
                if tok is None:
                    raise self.error("unterminated array: expected `]`")
                if tok.kind == "]":
                    self.i += 1
                    return out
                out.append(self.value(depth + 1))
                if self.peek() is not None and self.peek().kind == ",":
                    self.i += 1
        if kind == "word":
            raise self.error(f"expected a value, got {_quote(tok.text)}; strings need double quotes: "
                             f"{_quote(_json_str(tok.text))}", tok)
        raise self.error(f"expected a value, got {_quote(tok.text)}", tok)

    def object_rest(self, depth: int) -> dict:
        """The members of an object literal after its ``{``; keys quoted or not, commas optional."""
        out = {}
        while True:
            tok = self.peek()
            if tok is None:
                raise self.error("unterminated object: expected `}`")
            if tok.kind == "}":
                self.i += 1
                return out
            name = self.member_name()
            out[name] = self.value(depth)
            if self.peek() is not None and self.peek().kind == ",":
                self.i += 1

    def member_name(self) -> str:
        tok = self.take("a field name")
        if tok.kind not in _NAME_KINDS and tok.kind not in ("field", "qfield"):
            raise self.error(f"expected a field name, got {_quote(tok.text)}", tok)
        name = tok.value if tok.kind in ("string", "field", "qfield") else tok.text
        colon = self.peek()
        if colon is None or colon.kind != ":":
            raise self.error(f"expected `:` after the field name {_quote(tok.text)}",
                             colon if colon is not None else None)
        self.i += 1
        try:
            return check_field(name)
        except OceanError as exc:
            raise self.error(exc.message, tok, type(exc)) from None

    def is_pair_start(self) -> bool:
        tok, nxt = self.peek(), self.peek(1)
        return (tok is not None and nxt is not None and nxt.kind == ":"
                and (tok.kind in _NAME_KINDS or tok.kind in ("field", "qfield")))

    def payload(self, fields_only: bool = False):
        """Field pairs (``name: "Alice" age: 30``), an object literal, or (unless fields_only) one value."""
        tok = self.peek()
        if tok is None:
            what = "fields to merge" if fields_only else "a payload"
            also = "" if fields_only else " or one value"
            raise self.error(f"`{self.name}` needs {what}: field pairs like name: \"Alice\" age: 30, "
                             f"an object {{ ... }}{also}; usage: {commands.BY_NAME[self.name].syntax}")
        if self.is_pair_start():
            out = {}
            while self.is_pair_start():
                name = self.member_name()
                out[name] = self.value()
                if self.peek() is not None and self.peek().kind == ",":
                    self.i += 1
            return out
        if fields_only and tok.kind != "{":
            raise self.error(f"`{self.name}` needs fields: name: value pairs or an object {{ ... }}, "
                             f"got {_quote(tok.text)}", tok)
        return self.value()


def _json_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _checked_key(cur: _Cursor, tok: Token) -> str:
    try:
        return check_template(tok.value)  # placeholders ({day}...) stay: the executor expands them
    except OceanError as exc:
        raise cur.error(exc.message, tok, type(exc)) from None


# -- one parser per command ----------------------------------------------------

def _p_save(c: _Cursor) -> tuple:
    route = c.route()
    key = c.key() if c.peek() is not None and c.peek().kind == "key" else None
    payload = c.payload()
    keep = None
    if c.keyword("keep"):
        tok = c.take("a number of seconds after keep")
        if tok.kind not in ("int", "float") or not tok.value > 0:
            raise c.error(f"keep takes a number of seconds > 0, got {_quote(tok.text)}", tok)
        keep = tok.value
    tok = c.peek()
    if tok is not None:
        hint = "; field pairs are written name: value" if tok.kind in _NAME_KINDS else ""
        raise c.error(f"unexpected {_quote(tok.text)} after the payload{hint}", tok)
    return route, key, payload, keep


def _p_get(c: _Cursor) -> tuple:
    route = c.route()
    key = c.key()
    c.end()
    return route, key


def _p_update(c: _Cursor) -> tuple:
    route = c.route()
    key = c.key()
    fields = c.payload(fields_only=True)
    if not isinstance(fields, dict) or not fields:
        raise c.error("`update` needs at least one field to merge")
    c.end()
    return route, key, fields


def _p_remove(c: _Cursor) -> tuple:
    return _p_get(c)


def _p_incr(c: _Cursor) -> tuple:
    route = c.route()
    key = c.key()
    amounts: dict = {}
    if c.at_end():
        raise c.error("`incr` needs at least one .field, like .page_views; usage: "
                      + commands.BY_NAME["incr"].syntax)
    while not c.at_end():
        tok, name = _field(c, '.page_views or ."POST /drop"')
        amount = 1
        nxt = c.peek()
        if nxt is not None and nxt.kind in ("int", "float"):
            c.i += 1
            try:
                amount = check_amount(nxt.value, name)
            except OceanError as exc:
                raise c.error(exc.message, nxt, type(exc)) from None
        if name in amounts:
            amount = amounts[name] + amount
            try:
                check_amount(amount, name)
            except InvalidAmount as exc:
                raise c.error(exc.message, tok, InvalidAmount) from None
        amounts[name] = amount
    return route, key, tuple(amounts.items())


def _field(c: _Cursor, like: str) -> tuple:
    """The next ``.field`` token of ``incr``/``uniq``/``observe`` and its checked name."""
    tok = c.take("a field")
    if tok.kind not in ("field", "qfield"):
        raise c.error(f"expected a .field (like {like}), got {_quote(tok.text)}", tok)
    try:
        return tok, check_field(tok.value)
    except OceanError as exc:
        raise c.error(exc.message, tok, type(exc)) from None


def _sketch_adds(c: _Cursor, prefix: str) -> tuple:
    """``uniq``/``observe``: ``ROUTE @KEY .FIELD VALUE [VALUE]... [.FIELD ...]``, each value checked
    where it stands; a field named twice gets the values of both."""
    route = c.route()
    key = c.key()
    what = "a value (a \"string\" or an integer)" if prefix == "~" else "a number"
    example = '.visitors "u-123"' if prefix == "~" else ".ms 12.5"
    if c.at_end():
        raise c.error(f"`{c.name}` needs a .field and its values, like {example}; usage: "
                      + commands.BY_NAME[c.name].syntax)
    adds: dict = {}
    while not c.at_end():
        tok, name = _field(c, example.split()[0])
        values = adds.setdefault(name, [])
        start = len(values)
        while c.peek() is not None and c.peek().kind not in ("field", "qfield"):
            vtok = c.peek()
            if vtok.kind == "[":
                items = c.value()  # an array of values: `["u-1", "u-2"]`
            elif vtok.kind in _VALUE_KINDS:
                c.i += 1
                items = [vtok.value]
            else:
                hint = f"; strings need double quotes: {_quote(_json_str(vtok.text))}" if vtok.kind == "word" else ""
                raise c.error(f"expected {what} after {_quote(tok.text)}, got {_quote(vtok.text)}{hint}", vtok)
            try:
                values.extend(check_sketch_values(prefix, items, name))
            except OceanError as exc:
                raise c.error(exc.message, vtok, type(exc)) from None
        if len(values) == start:
            raise c.error(f"{_quote(tok.text)} needs {what} after it, like {example}",
                          c.peek() if c.peek() is not None else None)
    return route, key, tuple((name, tuple(v)) for name, v in adds.items())


def _p_uniq(c: _Cursor) -> tuple:
    return _sketch_adds(c, "~")


def _p_observe(c: _Cursor) -> tuple:
    return _sketch_adds(c, "%")


def _p_list(c: _Cursor) -> tuple:
    route = c.route()
    c.end()
    return route, None


def _p_history(c: _Cursor) -> tuple:
    route = c.route()
    key = c.key()
    limit = None
    if c.keyword("limit"):
        limit = c.count_arg("a number of versions")
    c.end()
    return route, key, limit


def _p_sql(c: _Cursor) -> tuple:
    """The query text, and where its first character sits (line relative to the command, column).

    Only a backtick query maps one to one onto the script, so only then is the
    position kept: SQL errors can then point into the script.
    """
    tok = c.take("a query between backticks, like `SELECT * FROM \"analytics/daily\"`")
    if tok.kind not in ("backtick", "string"):
        raise c.error(f"expected the query between backticks (`SELECT ...`), got {_quote(tok.text)}", tok)
    c.end()
    if tok.kind == "backtick":
        return tok.value, (tok.line - c.toks[0].line, tok.column + 1)
    return tok.value, None


def _p_help(c: _Cursor):
    tok = c.peek()
    if tok is None:
        return None
    c.i += 1
    c.end()
    cmd = commands.lookup(str(tok.value)) or (commands.BY_NAME.get(str(tok.value).lower()))
    if cmd is None:
        hint = _unknown_hint(str(tok.value), 0.6)
        raise c.error(f"no command named {_quote(tok.text)}" + (f"; {hint}" if hint else ""), tok, UnknownCommand)
    return cmd.name


# -- find / count: where, group, sort, limit, pick ------------------------------

_CAT_NONE, _CAT_BOOL, _CAT_NUM, _CAT_STR, _CAT_OTHER = range(5)


def _cat(v) -> int:
    t = type(v)
    if t is int or t is float:
        return _CAT_NUM
    if t is str:
        return _CAT_STR
    if v is None:
        return _CAT_NONE
    if t is bool:
        return _CAT_BOOL
    return _CAT_OTHER


def _eq(a, b) -> bool:
    return _cat(a) == _cat(b) and a == b


def _compare(field: str, op: str, value):
    """A predicate for ``field OP value``; ``<`` and friends hold only between two numbers or two strings."""
    cv = _cat(value)
    if op == "=":
        return lambda row: _eq(row.get(field), value)
    if op == "!=":
        return lambda row: not _eq(row.get(field), value)
    if cv not in (_CAT_NUM, _CAT_STR):
        return lambda row: False
    if op == "<":
        return lambda row: _cat(x := row.get(field)) == cv and x < value
    if op == "<=":
        return lambda row: _cat(x := row.get(field)) == cv and x <= value
    if op == ">":
        return lambda row: _cat(x := row.get(field)) == cv and x > value
    return lambda row: _cat(x := row.get(field)) == cv and x >= value


def _where(c: _Cursor, depth: int = 0):
    """``cond (and|or cond)...`` with ``and`` binding tighter; parentheses group."""
    terms = [_and_chain(c, depth)]
    while c.keyword("or"):
        terms.append(_and_chain(c, depth))
    if len(terms) == 1:
        return terms[0]
    return lambda row: any(t(row) for t in terms)


def _and_chain(c: _Cursor, depth: int):
    terms = [_condition(c, depth)]
    while c.keyword("and"):
        terms.append(_condition(c, depth))
    if len(terms) == 1:
        return terms[0]
    return lambda row: all(t(row) for t in terms)


def _condition(c: _Cursor, depth: int):
    tok = c.peek()
    if tok is not None and tok.kind == "(":
        if depth >= MAX_DEPTH:
            raise c.error(f"conditions are nested more than {MAX_DEPTH} deep", tok)
        c.i += 1
        pred = _where(c, depth + 1)
        close = c.peek()
        if close is None or close.kind != ")":
            raise c.error("expected `)`" + ("" if close is None else f", got {_quote(close.text)}"), close)
        c.i += 1
        return pred
    field = c.field("a field to compare (like status)")
    op = c.take("an operator (= != < <= > >=)")
    if op.kind not in _OPS:
        raise c.error(f"expected an operator (= != < <= > >=) after {_quote(field)}, got {_quote(op.text)}", op)
    val = c.take("a value to compare with")
    if val.kind not in _VALUE_KINDS:
        if val.kind == "word":
            raise c.error(f"expected a value, got {_quote(val.text)}; strings need double quotes: "
                          f"{_quote(_json_str(val.text))}", val)
        raise c.error(f"expected a value, got {_quote(val.text)}", val)
    return _compare(field, op.kind, val.value)


def _field_list(c: _Cursor, what: str) -> tuple:
    out = [c.field(what)]
    while c.peek() is not None and c.peek().kind == ",":
        c.i += 1
        out.append(c.field(what))
    return tuple(out)


_AGGREGATES = ("sum", "avg", "min", "max", "uniq")


def _query(c: _Cursor, clauses: tuple) -> Query:
    q = Query(c.route(prefix=True))
    seen = set()
    aggregates = []
    while not c.at_end():
        tok = c.peek()
        word = tok.value.lower() if tok.kind == "word" else None
        if word not in clauses:
            expected = ", ".join(x for x in clauses if x not in ("then",)) + (" or then pick" if "then" in clauses else "")
            raise c.error(f"unexpected {_quote(tok.text)} in `{c.name}`; expected {expected}", tok)
        c.i += 1
        if word in seen and word not in _AGGREGATES:
            clause = "then pick" if word == "then" else word
            raise c.error(f"`{clause}` appears twice in `{c.name}`; each clause may come once, in any order", tok)
        seen.add(word)
        if word == "where":
            q.where = _where(c)
        elif word == "group":
            q.group = _field_list(c, "a field to group by")
        elif word in _AGGREGATES:
            field = c.field(f"a field after {word}")
            aggregates.append((f"{word}_{field}", word, field))
        elif word == "count":
            aggregates.append(("count", "count", None))
        elif word == "sort":
            keys = []
            while True:
                field = c.field("a field to sort by")
                desc = False
                if c.keyword("desc"):
                    desc = True
                else:
                    c.keyword("asc")
                keys.append((field, desc))
                if c.peek() is None or c.peek().kind != ",":
                    break
                c.i += 1
            q.sort = tuple(keys)
        elif word == "limit":
            q.limit = c.count_arg("a row limit")
        elif word == "then":
            if not c.keyword("pick"):
                raise c.error("expected `pick` after `then`, like: then pick key, page_views", c.peek())
            q.pick = _field_list(c, "a field to pick")  # ends at the first field not after a comma
    if q.group is not None and not aggregates:
        aggregates.append(("count", "count", None))
    q.aggregates = tuple(aggregates)
    return q


_FIND_CLAUSES = ("where", "group", "sum", "avg", "min", "max", "uniq", "count", "sort", "limit", "then")


def _p_find(c: _Cursor) -> Query:
    return _query(c, _FIND_CLAUSES)


def _p_count(c: _Cursor) -> Query:
    return _query(c, ("where",))


PARSERS = {
    "save": _p_save, "get": _p_get, "list": _p_list, "update": _p_update, "remove": _p_remove, "incr": _p_incr,
    "uniq": _p_uniq, "observe": _p_observe, "find": _p_find, "count": _p_count, "sql": _p_sql, "history": _p_history, "help": _p_help,
}


# Words that begin a SQL statement and name no Drops command: a command that starts with one
# was meant for `sql` (difflib would offer `delete` for SELECT). UPDATE and DELETE are Drops
# commands too; ``_sql_instead`` adds the hint when they fail to parse as Drops.
SQL_WORDS = frozenset(("select", "with", "insert", "explain", "values", "pragma", "create", "alter"))
_SQL_LOOKING = {"update": "set", "delete": "from", "remove": "from"}  # command word -> a SQL word after it


def _sql_hint(source: str | None = None) -> str:
    """How to run SQL from Drops, showing ``source`` inside ``sql `...``` when it fits on one short line."""
    if source is not None:
        source = " ".join(source.split())
    if not source or "`" in source or len(source) > 80:
        word = source.split()[0].upper() if source else "SELECT"
        source = f"{word} ..."
    return f"SQL runs through the `sql` command, the query between backticks: sql `{source}`"


def _unknown_hint(word: str, cutoff: float) -> str | None:
    """What to say after ``unknown command `word```: the SQL way, a close command name, or None."""
    if word.lower() in SQL_WORDS:
        return _sql_hint()
    guess = commands.suggest(word, cutoff=cutoff)
    return f"did you mean `{guess}`?" if guess else None


def _parse_tokens(toks: list[Token]) -> Parsed:
    first = toks[0]
    if first.kind == "word":
        cmd = commands.lookup(first.value)
        if cmd is not None:
            c = _Cursor(toks, cmd.name)
            return Parsed(cmd.name, PARSERS[cmd.name](c))
    c = _Cursor(toks, "list")
    c.i = 0
    if first.kind in _ROUTE_KINDS:
        looks_like_route = "/" in first.text or (len(toks) > 1 and toks[1].kind == "key")
        hint = None if looks_like_route else _unknown_hint(first.text, 0.7 if len(toks) == 1 else 0.6)
        if not looks_like_route and len(toks) > 1:
            raise c.error(f"unknown command {_quote(first.text)}; {hint or 'try `help`'}", first, UnknownCommand)
        route = c.route()
        if c.at_end():
            # NOTE: `hepl` alone is a valid route; the executor reports it as a typo of `help`
            # only when that route holds nothing.
            return Parsed("list", (route, hint))
        c.name = "get"
        key = c.key()
        c.end()
        return Parsed("get", (route, key))
    raise c.error(f"a command starts with a command name or a route, not {_quote(first.text)}; try `help`", first)


def _sql_instead(data: bytes, packed: bytes, end: int | None, exc: OceanError) -> OceanError:
    """``exc``, or, for a command that reads as SQL, an error that says how to run SQL.

    Works from the raw bytes, so SQL that is not even Drops tokens (`'text'`) gets the hint too.
    """
    toks = spans(packed)
    if not toks:
        return exc
    words = [data[s:e].decode("utf-8", "replace").lower() for s, e, _l, _c in toks[:3]]
    s0, _e0, line, col = toks[0]
    stop = toks[-1][1] if end is None else max(end, toks[-1][1])
    eol = data.find(b"\n", stop)  # a lexical error ends the command early: show the rest of its line
    source = data[s0:len(data) if eol < 0 else eol].decode("utf-8", "replace")
    if words[0] in SQL_WORDS:
        return UnknownCommand(f"unknown command {_quote(source.split()[0])}; {_sql_hint(source)}",
                              line=line, column=col)
    if _SQL_LOOKING.get(words[0]) in words[1:] and isinstance(exc, ParseError):
        return type(exc)(f"{exc.message} ({_sql_hint(source)})", line=exc.line, column=exc.column)
    return exc


def parse_command(data: bytes, packed: bytes, line: int, end: int | None = None):
    """Parse one command (the byte loop's packed tokens, ending at ``end``); a ``Failed`` instead of raising."""
    try:
        return _parse_tokens(decode(data, packed))
    except OceanError as exc:
        exc = _sql_instead(data, packed, end, exc)
        rel = (exc.line or line) - line
        return Failed(exc, rel, exc.column or 1)
    except RecursionError:
        return Failed(ParseError("the command is nested too deeply"), 0, 1)
    except Exception as exc:  # noqa: BLE001 - a parser fault must not escape the script
        log.exception("internal error parsing a Drops command (line %d)", line)
        return Failed(InternalError(f"internal error reading this command ({type(exc).__name__}); "
                                    f"see the server log"), 0, 1)


def parse(data: bytes, start: int, end: int, line: int, column: int, packed: bytes):
    """``parse_command`` through the cache keyed by the command's source bytes."""
    if end - start > _CACHE_MAX_BYTES:
        cmd = parse_command(data, packed, line, end)
    else:
        key = (data[start:end], column)
        cmd = _cache.get(key)
        if cmd is None:
            cmd = parse_command(data, packed, line, end)
            if type(cmd) is Parsed:  # failures are not cached: they are rare, and the cache holds what runs
                if len(_cache) >= _CACHE_ENTRIES:
                    _cache.clear()
                _cache[key] = cmd
    return cmd
