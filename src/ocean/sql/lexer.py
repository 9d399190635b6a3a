"""SQL tokens: words, quoted identifiers, strings, numbers and operators, with positions.

The lexer turns query text into a list of ``Token``s (kind, value, offset). It
never raises anything but ``ParseError``, which carries the line and column as
fields (never in the message) and a caret line under the offending text (see
``syntax_error``).
"""
from __future__ import annotations

import re
from typing import NamedTuple

from ..errors import ParseError

# Words the grammar gives a meaning; anything else is an identifier.
KEYWORDS = frozenset(
    """SELECT DISTINCT ALL FROM WHERE GROUP BY HAVING ORDER ASC DESC NULLS FIRST LAST LIMIT
    OFFSET AS AND OR NOT IN IS NULL TRUE FALSE BETWEEN LIKE CASE WHEN THEN ELSE END CAST""".split()
)

# Longest operators first so that "<=" wins over "<".
OPERATORS = ("<>", "<=", ">=", "!=", "==", "||", "(", ")", ",", "*", "+", "-", "/", "%", "=", "<", ">", ".", ";")

MAX_QUERY_CHARS = 100_000

_NUMBER = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_SPACE = re.compile(r"\s+")
_DIGITS = frozenset("0123456789")


class Token(NamedTuple):
    """One token: ``kind`` is word/keyword/ident/string/number/op/end; ``pos`` is its offset."""

    kind: str
    value: object
    pos: int


def position(text: str, pos: int) -> tuple[int, int]:
    """1-based (line, column) of offset ``pos`` in ``text``."""
    pos = max(0, min(pos, len(text)))
    line = text.count("\n", 0, pos) + 1
    start = text.rfind("\n", 0, pos) + 1
    return line, pos - start + 1


def syntax_error(text: str, pos: int, what: str) -> ParseError:
    """A ParseError for ``what`` at offset ``pos``, with the source line and a caret under it."""
    line, column = position(text, pos)
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", start)
    src = text[start:] if end < 0 else text[start:end]
    if len(src) > 200:  # keep the message readable: show a window around the column
        lo = max(0, column - 100)
        src, caret_col = src[lo:lo + 200], column - lo
    else:
        caret_col = column
    src = src.replace("\t", " ")
    # NOTE: the position is in ``line``/``column`` only; the message never repeats it.
    message = f"SQL syntax error: {what}\n  {src}\n  {' ' * (caret_col - 1)}^"
    return ParseError(message, line=line, column=column)


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``end`` token; raise ParseError on bad input."""
    if not isinstance(text, str):
        raise ParseError("a SQL query must be text")
    if len(text) > MAX_QUERY_CHARS:
        raise ParseError(f"SQL query is {len(text)} characters; at most {MAX_QUERY_CHARS} are allowed")
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i = _SPACE.match(text, i).end()
            continue
        if text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise syntax_error(text, i, "unterminated /* comment")
            i = j + 2
            continue
        if c == "'" or c == '"' or c == "`" or c == "[":
            close = "]" if c == "[" else c
            j, parts = i + 1, []
            while True:
                k = text.find(close, j)
                if k < 0:
                    what = "string" if c == "'" else "quoted identifier"
                    raise syntax_error(text, i, f"unterminated {what} (missing closing {close})")
                parts.append(text[j:k])
                if close != "]" and text.startswith(close * 2, k):
                    parts.append(close)
                    j = k + 2
                    continue
                break
            value = "".join(parts)
            if c == "'":
                out.append(Token("string", value, i))
            else:
                if not value:
                    raise syntax_error(text, i, "empty quoted identifier")
                out.append(Token("ident", value, i))
            i = k + 1
            continue
        if c in _DIGITS or (c == "." and i + 1 < n and text[i + 1] in _DIGITS):
            m = _NUMBER.match(text, i)
            raw = m.group()
            end = m.end()
            if end < n and (text[end].isalnum() or text[end] == "_"):
                raise syntax_error(text, end, f"unexpected character {text[end]!r} after number {raw}")
            if "." in raw or "e" in raw or "E" in raw:
                value = float(raw)
                if value != value or value in (float("inf"), float("-inf")):
                    raise syntax_error(text, i, f"number {raw} is out of range")
            else:
                value = int(raw)
                if value > (1 << 63) - 1:
                    value = float(raw)
            out.append(Token("number", value, i))
            i = end
            continue
        m = _WORD.match(text, i)
        if m:
            word = m.group()
            upper = word.upper()
            if upper in KEYWORDS:
                out.append(Token("keyword", upper, i))
            else:
                out.append(Token("ident", word, i))
            i = m.end()
            continue
        for op in OPERATORS:
            if text.startswith(op, i):
                out.append(Token("op", op, i))
                i += len(op)
                break
        else:
            shown = repr(c)  # quoted, with escapes for characters that do not print
            raise syntax_error(text, i, f"unexpected character {shown}")
    out.append(Token("end", None, n))
    return out
