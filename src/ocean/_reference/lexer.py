"""Pure twin of ``_lexer.pxi``: the Drops lexer's byte loop (the test oracle).

``drops_lex(data)`` reads a UTF-8 Drops script (``bytes``) once and returns its
commands, each ``(start, end, line, column, tokens)``. ``tokens`` packs native
int32 quintuples ``(kind, start, end, line, column)`` into one bytes object
(``struct.iter_unpack("5i", tokens)`` reads them): byte offsets into ``data``,
a 1-based line and a 1-based column counted in characters. ``kind`` indexes
``DROPS_TOKEN_KINDS``; a kind of ``DROPS_ERROR_BASE`` or more is a lexical
error (``DROPS_LEX_ERRORS[kind - DROPS_ERROR_BASE]``), always the last token
of its command: the rest of that command is skipped and the next one is read.

Line rules: a line that starts with whitespace continues the command above;
blank lines and lines that start with ``--`` are skipped without ending it;
any other line starts a new command. ``--`` starts a comment where a token
could start. Only backtick strings may span lines.

NOTE: this module is written the way ``_lexer.pxi`` is, statement for
statement, so the two can be read side by side; a test checks they agree on
a large generated corpus.
"""
from __future__ import annotations

from array import array

DROPS_TOKEN_KINDS = (
    "word", "int", "float", "string", "backtick", "key", "field", "qfield",
    "true", "false", "null",
    "{", "}", "[", "]", ":", ",", "(", ")",
    "=", "!=", "<", "<=", ">", ">=",
)
DROPS_ERROR_BASE = 32
DROPS_LEX_ERRORS = (
    "invalid_utf8", "control_char", "unterminated_string", "unterminated_backtick",
    "bad_escape", "unexpected_char", "empty_key", "empty_field",
)

_WORD, _INT, _FLOAT, _STRING, _BACKTICK, _KEY, _FIELD, _QFIELD, _TRUE, _FALSE, _NULL = range(11)
_EQ, _NE, _LT, _LE, _GT, _GE = range(19, 25)
_E_UTF8, _E_CONTROL, _E_STRING, _E_BACKTICK, _E_ESCAPE, _E_UNEXPECTED, _E_KEY, _E_FIELD = range(32, 40)

# Bytes that may appear in a bare word (routes, keys, field names, numbers,
# command names); bytes >= 0x80 also do, as validated UTF-8 sequences.
_WORDCHAR = bytearray(256)
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/*+":
    _WORDCHAR[_c] = 1
_WORDCHAR = bytes(_WORDCHAR)
_PUNCT = {ord("{"): 11, ord("}"): 12, ord("["): 13, ord("]"): 14,
          ord(":"): 15, ord(","): 16, ord("("): 17, ord(")"): 18}
_ESCAPES = b'"\\/bfnrtu'
_HEX = b"0123456789abcdefABCDEF"


def _utf8_len(p, i, n):
    """Length of the valid UTF-8 sequence starting at ``p[i]`` (a byte >= 0x80), or 0."""
    c = p[i]
    lo = 0x80
    hi = 0xBF
    if 0xC2 <= c <= 0xDF:
        need = 1
    elif c == 0xE0:
        need = 2
        lo = 0xA0
    elif 0xE1 <= c <= 0xEC or c == 0xEE or c == 0xEF:
        need = 2
    elif c == 0xED:
        need = 2
        hi = 0x9F
    elif c == 0xF0:
        need = 3
        lo = 0x90
    elif 0xF1 <= c <= 0xF3:
        need = 3
    elif c == 0xF4:
        need = 3
        hi = 0x8F
    else:
        return 0
    if i + need >= n:
        return 0
    c = p[i + 1]
    if c < lo or c > hi:
        return 0
    k = 2
    while k <= need:
        c = p[i + k]
        if c < 0x80 or c > 0xBF:
            return 0
        k += 1
    return need + 1


def _is_number(p, s, e):
    """0: not a number; 1: an integer; 2: a float. Grammar: [+-]?D+(.D+)?([eE][+-]?D+)?"""
    j = s
    if p[j] == 43 or p[j] == 45:
        j += 1
    d = j
    while j < e and 48 <= p[j] <= 57:
        j += 1
    if j == d:
        return 0
    kind = 1
    if j < e and p[j] == 46:
        j += 1
        d = j
        while j < e and 48 <= p[j] <= 57:
            j += 1
        if j == d:
            return 0
        kind = 2
    if j < e and (p[j] == 101 or p[j] == 69):
        j += 1
        if j < e and (p[j] == 43 or p[j] == 45):
            j += 1
        d = j
        while j < e and 48 <= p[j] <= 57:
            j += 1
        if j == d:
            return 0
        kind = 2
    return kind if j == e else 0


def _scan_word(p, i, n, col):
    """Scan a run of word bytes from ``i``: ``(end, col, error)``; error is an error kind or 0."""
    while i < n:
        c = p[i]
        if c < 0x80:
            if not _WORDCHAR[c]:
                break
            i += 1
        else:
            k = _utf8_len(p, i, n)
            if k == 0:
                return i, col, _E_UTF8
            i += k
        col += 1
    return i, col, 0


def _scan_key(p, i, n, col):
    """Scan a key after '@': word bytes and placeholders ``{word}`` (``@{day}``, ``@eu-{day}``).

    A '{' without its '}' ends the key (``@k{a: 1}`` is a key and an object).
    """
    while True:
        i, col, err = _scan_word(p, i, n, col)
        if err or i >= n or p[i] != 123:  # '{'
            return i, col, err
        j, c2, err = _scan_word(p, i + 1, n, col + 1)
        if err or j >= n or p[j] != 125:  # '}'
            return i, col, 0
        i, col = j + 1, c2 + 1


def _scan_string(p, i, n, col):
    """Scan a JSON string whose quote is at ``i``: ``(end, col, error, err_at, err_col)``."""
    j = i + 1
    col += 1
    while True:
        if j >= n:
            return j, col, _E_STRING, i, 0
        c = p[j]
        if c == 34:
            return j + 1, col + 1, 0, 0, 0
        if c == 10:
            return j, col, _E_STRING, i, 0
        if c == 92:
            if j + 1 >= n or p[j + 1] not in _ESCAPES:
                return j, col, _E_ESCAPE, j, col
            if p[j + 1] == 117:
                k = 2
                while k < 6:
                    if j + k >= n or p[j + k] not in _HEX:
                        return j, col, _E_ESCAPE, j, col
                    k += 1
                j += 6
                col += 6
            else:
                j += 2
                col += 2
        elif c < 32 or c == 127:
            return j, col, _E_CONTROL, j, col
        elif c < 0x80:
            j += 1
            col += 1
        else:
            k = _utf8_len(p, j, n)
            if k == 0:
                return j, col, _E_UTF8, j, col
            j += k
            col += 1


def drops_lex(data):
    """Split a Drops script (UTF-8 bytes) into commands of tokens; see the module docstring."""
    p = data if type(data) is bytes else bytes(data)
    n = len(p)
    if n >= 0x7FFFFFFF:
        raise ValueError("a Drops script must be smaller than 2 GiB")
    out = []
    toks = None
    cs = ce = cl = cc = 0
    i = 0
    line = 1
    col = 1
    bol = True
    skipping = False
    if n >= 3 and p[0] == 0xEF and p[1] == 0xBB and p[2] == 0xBF:
        i = 3
    while i < n:
        c = p[i]
        if bol:
            bol = False
            if not (c == 32 or c == 9 or c == 13 or c == 10 or (c == 45 and i + 1 < n and p[i + 1] == 45)):
                if toks is not None:
                    out.append((cs, ce, cl, cc, toks.tobytes()))
                    toks = None
                skipping = False
        if skipping:
            j = p.find(b"\n", i)
            if j < 0:
                break
            i = j + 1
            line += 1
            col = 1
            bol = True
            continue
        if c == 10:
            i += 1
            line += 1
            col = 1
            bol = True
            continue
        if c == 32 or c == 9 or c == 13:
            i += 1
            col += 1
            continue
        s = i
        tl = line
        tc = col
        kind = -1
        e = i + 1
        if c == 45 and i + 1 < n and p[i + 1] == 45:
            # a comment: skip to the end of the line, still checking the bytes
            j = i + 2
            col += 2
            while j < n:
                c = p[j]
                if c == 10:
                    break
                if (c < 32 and c != 9 and c != 13) or c == 127:
                    kind = _E_CONTROL
                    break
                if c < 0x80:
                    j += 1
                else:
                    k = _utf8_len(p, j, n)
                    if k == 0:
                        kind = _E_UTF8
                        break
                    j += k
                col += 1
            if kind < 0:
                i = j
                continue
            s = j
            e = j + 1
            tc = col
        elif c == 46:
            if i + 1 < n and p[i + 1] == 34:
                e, col, kind, at, acol = _scan_string(p, i + 1, n, col + 1)
                if kind == 0:
                    kind = _QFIELD
                elif kind != _E_STRING:
                    s = at
                    e = at + 1
                    tc = acol
            else:
                e, col, kind = _scan_word(p, i + 1, n, col + 1)
                if kind:
                    s = e
                    e = s + 1
                    tc = col
                elif e == i + 1:
                    kind = _E_FIELD
                else:
                    kind = _FIELD
        elif c < 0x80 and _WORDCHAR[c]:
            e, col, kind = _scan_word(p, i, n, col)
            if kind:
                s = e
                e = s + 1
                tc = col
            else:
                num = _is_number(p, s, e) if (48 <= c <= 57 or c == 43 or c == 45) else 0
                if num == 1:
                    kind = _INT
                elif num == 2:
                    kind = _FLOAT
                elif e - s == 4 and p[s:e] == b"true":
                    kind = _TRUE
                elif e - s == 5 and p[s:e] == b"false":
                    kind = _FALSE
                elif e - s == 4 and p[s:e] == b"null":
                    kind = _NULL
                else:
                    kind = _WORD
        elif c >= 0x80:
            e, col, kind = _scan_word(p, i, n, col)
            if kind:
                s = e
                e = s + 1
                tc = col
            else:
                kind = _WORD
        elif c == 34:
            e, col, kind, at, acol = _scan_string(p, i, n, col)
            if kind == 0:
                kind = _STRING
            elif kind == _E_STRING:
                pass  # s/tl/tc: where the string started; e: where the line ended
            else:
                s = at
                e = at + 1
                tc = acol
        elif c == 96:
            j = i + 1
            col += 1
            while j < n:
                c = p[j]
                if c == 96:
                    break
                if c == 10:
                    line += 1
                    col = 1
                    j += 1
                    continue
                if (c < 32 and c != 9 and c != 13) or c == 127:
                    kind = _E_CONTROL
                    break
                if c < 0x80:
                    j += 1
                else:
                    k = _utf8_len(p, j, n)
                    if k == 0:
                        kind = _E_UTF8
                        break
                    j += k
                col += 1
            if kind > 0:
                s = j
                e = j + 1
                tl = line
                tc = col
            elif j >= n:
                # unterminated: report where it started; resume after that line
                kind = _E_BACKTICK
                line = tl
                e = p.find(b"\n", i)
                if e < 0:
                    e = n
            else:
                kind = _BACKTICK
                e = j + 1
                col += 1
        elif c == 64:
            e, col, kind = _scan_key(p, i + 1, n, col + 1)
            if kind:
                s = e
                e = s + 1
                tl = line
                tc = col
            elif e == i + 1:
                kind = _E_KEY
            else:
                kind = _KEY
        elif c in _PUNCT:
            kind = _PUNCT[c]
            col += 1
        elif c == 61:
            kind = _EQ
            if i + 1 < n and p[i + 1] == 61:
                e = i + 2
            col += e - i
        elif c == 33:
            if i + 1 < n and p[i + 1] == 61:
                kind = _NE
                e = i + 2
                col += 2
            else:
                kind = _E_UNEXPECTED
        elif c == 60 or c == 62:
            kind = _LT if c == 60 else _GT
            if i + 1 < n and p[i + 1] == 61:
                kind += 1
                e = i + 2
            col += e - i
        elif c < 32 or c == 127:
            kind = _E_CONTROL
        else:
            kind = _E_UNEXPECTED
        if toks is None:
            toks = array("i")
            cs = s
            cl = tl
            cc = tc
        toks.extend((kind, s, e, tl, tc))
        ce = e
        i = e
        if kind >= DROPS_ERROR_BASE:
            skipping = True
            i = s
    if toks is not None:
        out.append((cs, ce, cl, cc, toks.tobytes()))
    return out
