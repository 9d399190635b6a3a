"""Drops tokens: the compiled byte loop's output turned into values people can read.

The byte loop (``drops_lex`` in ``_core``, or its pure twin) splits a script
into commands and finds the tokens; this module decodes one command's tokens
into ``Token`` values (JSON string escapes, numbers, keys, field names) and
turns the loop's lexical error codes into ``ParseError`` messages that quote
the offending text and say where it is.
"""
from __future__ import annotations

import json
import struct
from typing import NamedTuple

from ..errors import ParseError
from ..kernels import core

_K = core()
KINDS: tuple[str, ...] = _K.DROPS_TOKEN_KINDS
ERROR_BASE: int = _K.DROPS_ERROR_BASE
LEX_ERRORS: tuple[str, ...] = _K.DROPS_LEX_ERRORS
lex = _K.drops_lex
_unpack = struct.Struct("5i").iter_unpack

_ESCAPES_HELP = 'JSON escapes are \\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX'


class Token(NamedTuple):
    """One token: its kind (a name from ``KINDS``), decoded value, source text and position."""

    kind: str
    value: object
    text: str
    line: int
    column: int


def _quote(text: str, limit: int = 40) -> str:
    """``text`` in backticks for a message, shortened to ``limit`` characters."""
    text = text if len(text) <= limit else text[:limit] + "…"
    return "`" + text.replace("`", "'") + "`"


def _text(data: bytes, s: int, e: int) -> str:
    return data[s:e].decode("utf-8", "replace")


def _lex_error(data: bytes, kind: int, s: int, e: int, line: int, col: int) -> ParseError:
    """The ParseError for the byte loop's error token ``kind`` at ``data[s:e]``."""
    what = LEX_ERRORS[kind - ERROR_BASE]
    if what == "invalid_utf8":
        msg = f"invalid UTF-8 (byte 0x{data[s]:02X}): a Drops script is UTF-8 text"
    elif what == "control_char":
        msg = (f"control character U+{data[s]:04X} is not allowed here; inside a string "
               f"write it as an escape (\\u{data[s]:04x}, \\t, \\n)")
    elif what == "unterminated_string":
        msg = f"unterminated string {_quote(_text(data, s, e))}: it starts here; close it with \" on the same line"
    elif what == "unterminated_backtick":
        msg = f"unterminated backtick string {_quote(_text(data, s, e))}: it starts here; close it with `"
    elif what == "bad_escape":
        bad = _text(data, s, min(s + 6 if data[s + 1:s + 2] == b"u" else s + 2, len(data)))
        msg = f"invalid escape {_quote(bad)} in a string; {_ESCAPES_HELP}"
    elif what == "unexpected_char":
        ch = _text(data, s, e)
        hint = {"'": "; strings use double quotes", "!": "; did you mean `!=`?",
                ";": "; one command per line, no `;` needed", "#": "; comments start with `--`"}.get(ch, "")
        msg = f"unexpected character {_quote(ch)}{hint}"
    elif what == "empty_key":
        msg = "`@` must be followed by a key, like @2026-02-10"
    else:  # empty_field
        msg = "`.` must be followed by a field name, like .page_views or .\"POST /drop\""
    return ParseError(msg, line=line, column=col)


def _string(data: bytes, s: int, e: int, line: int, col: int) -> str:
    """Decode a JSON string literal ``data[s:e]`` (quotes included; already checked by the loop)."""
    raw = data[s + 1:e - 1]
    if b"\\" not in raw:
        return raw.decode("utf-8")
    value = json.loads(data[s:e])
    if b"\\u" in raw:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ParseError(f"string {_quote(_text(data, s, e))} holds an unpaired \\u surrogate escape",
                             line=line, column=col) from None
    return value


def spans(packed: bytes) -> list[tuple[int, int, int, int]]:
    """``(start, end, line, column)`` of each of one command's packed tokens, error tokens included."""
    return [(s, e, line, col) for _kind, s, e, line, col in _unpack(packed)]


def decode(data: bytes, packed: bytes) -> list[Token]:
    """Decode one command's packed tokens; raises ParseError for a lexical error token."""
    out = []
    for kind, s, e, line, col in _unpack(packed):
        if kind >= ERROR_BASE:
            raise _lex_error(data, kind, s, e, line, col)
        name = KINDS[kind]
        if name == "word":
            text = data[s:e].decode("utf-8")
            value = text
        elif name == "int":
            text = data[s:e].decode("ascii")
            if len(text) > 400:  # NOTE: int() refuses over 4300 digits; no JSON number needs 400
                raise ParseError(f"number {text[:20]}... has {len(text)} digits; that is too long to be a "
                                 f"count or an amount", line=line, column=col)
            value = int(text)
        elif name == "float":
            text = data[s:e].decode("ascii")
            value = float(text)
        elif name == "string":
            text = data[s:e].decode("utf-8")
            value = _string(data, s, e, line, col)
        elif name == "backtick":
            text = data[s:e].decode("utf-8")
            value = text[1:-1]
        elif name == "key":
            text = data[s:e].decode("utf-8")
            value = text[1:]
        elif name == "field":
            text = data[s:e].decode("utf-8")
            value = text[1:]
        elif name == "qfield":
            text = data[s:e].decode("utf-8")
            value = _string(data, s + 1, e, line, col)
        elif name in ("true", "false", "null"):
            text = name
            value = {"true": True, "false": False, "null": None}[name]
        else:
            text = name
            value = name
        out.append(Token(name, value, text, line, col))
    return out


def tokenize(text: str | bytes) -> list[list[Token]]:
    """Every command of a script as its list of tokens (for tools and tests); ParseError on a lexical error."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    return [decode(data, packed) for _s, _e, _l, _c, packed in lex(data)]
