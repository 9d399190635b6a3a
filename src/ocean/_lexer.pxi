# -- Drops lexer ----------------------------------------------------------------
# The byte loop of the Drops lexer. ``drops_lex(data)`` reads a UTF-8 script once
# and returns its commands, each ``(start, end, line, column, tokens)``, where
# ``tokens`` packs native int32 quintuples ``(kind, start, end, line, column)``
# (byte offsets, 1-based line, 1-based column in characters) into one bytes
# object; ``struct.iter_unpack("5i", tokens)`` reads them back. A kind >=
# DROPS_ERROR_BASE is a lexical error, always the last token of its command. ``ocean/_reference/lexer.py`` is the
# pure twin, written statement for statement like this loop, and the oracle.
#
# PERF: measured with bench/bench_drops.py (group "drops-lexer", a 1 MB script
# of tutorial-like lines): ~300 MB/s compiled against ~7 MB/s for the pure twin
# (~40x). Tokens are packed, not tuples: building five Python ints and a tuple
# per token capped this loop at ~20 MB/s. They are unpacked and their values
# decoded in Python (ocean/drops/lexer.py) only when a command's parse is not
# cached already.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.stdint cimport int32_t

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

cdef enum:
    _LX_WORD = 0
    _LX_INT = 1
    _LX_FLOAT = 2
    _LX_STRING = 3
    _LX_BACKTICK = 4
    _LX_KEY = 5
    _LX_FIELD = 6
    _LX_QFIELD = 7
    _LX_TRUE = 8
    _LX_FALSE = 9
    _LX_NULL = 10
    _LX_EQ = 19
    _LX_NE = 20
    _LX_LT = 21
    _LX_GT = 23
    _LX_ERROR_BASE = 32
    _LX_E_UTF8 = 32
    _LX_E_CONTROL = 33
    _LX_E_STRING = 34
    _LX_E_BACKTICK = 35
    _LX_E_ESCAPE = 36
    _LX_E_UNEXPECTED = 37
    _LX_E_KEY = 38
    _LX_E_FIELD = 39

# byte -> 1 for bytes of a bare word; byte -> punctuation kind (0: none)
cdef unsigned char _lx_wordchar[256]
cdef unsigned char _lx_punct[256]
cdef unsigned char _lx_escape[256]
cdef unsigned char _lx_hex[256]


cdef void _lx_init_tables():
    cdef int c
    for c in range(256):
        _lx_wordchar[c] = 0
        _lx_punct[c] = 0
        _lx_escape[c] = 0
        _lx_hex[c] = 0
    for c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/*+":
        _lx_wordchar[c] = 1
    for c in b'"\\/bfnrtu':
        _lx_escape[c] = 1
    for c in b"0123456789abcdefABCDEF":
        _lx_hex[c] = 1
    _lx_punct[ord("{")] = 11
    _lx_punct[ord("}")] = 12
    _lx_punct[ord("[")] = 13
    _lx_punct[ord("]")] = 14
    _lx_punct[ord(":")] = 15
    _lx_punct[ord(",")] = 16
    _lx_punct[ord("(")] = 17
    _lx_punct[ord(")")] = 18


_lx_init_tables()


cdef inline Py_ssize_t _lx_utf8_len(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """Length of the valid UTF-8 sequence starting at p[i] (a byte >= 0x80), or 0."""
    cdef unsigned char c = p[i]
    cdef unsigned char lo = 0x80
    cdef unsigned char hi = 0xBF
    cdef Py_ssize_t need, k
    if 0xC2 <= c <= 0xDF:
        need = 1
    elif c == 0xE0:
        need = 2
        lo = 0xA0
    elif (0xE1 <= c <= 0xEC) or c == 0xEE or c == 0xEF:
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


cdef inline int _lx_is_number(const unsigned char* p, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    """0: not a number; 1: an integer; 2: a float. Grammar: [+-]?D+(.D+)?([eE][+-]?D+)?"""
    cdef Py_ssize_t j = s, d
    cdef int kind = 1
    if p[j] == 43 or p[j] == 45:
        j += 1
    d = j
    while j < e and 48 <= p[j] <= 57:
        j += 1
    if j == d:
        return 0
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


cdef inline int _lx_scan_word(const unsigned char* p, Py_ssize_t* pi, Py_ssize_t n, Py_ssize_t* pcol) noexcept nogil:
    """Scan a run of word bytes from *pi (updated, with *pcol); returns an error kind or 0."""
    cdef Py_ssize_t i = pi[0], col = pcol[0], k
    cdef unsigned char c
    cdef int err = 0
    while i < n:
        c = p[i]
        if c < 0x80:
            if not _lx_wordchar[c]:
                break
            i += 1
        else:
            k = _lx_utf8_len(p, i, n)
            if k == 0:
                err = _LX_E_UTF8
                break
            i += k
        col += 1
    pi[0] = i
    pcol[0] = col
    return err


cdef inline int _lx_scan_key(const unsigned char* p, Py_ssize_t* pi, Py_ssize_t n, Py_ssize_t* pcol) noexcept nogil:
    """Scan a key after '@': word bytes and placeholders ``{word}`` (``@{day}``, ``@eu-{day}``);
    returns an error kind or 0. A '{' without its '}' ends the key (``@k{a: 1}`` is a key and an
    object, as before placeholders); which placeholders exist is the parser's business."""
    cdef int err
    cdef Py_ssize_t j, c2
    while True:
        err = _lx_scan_word(p, pi, n, pcol)
        if err or pi[0] >= n or p[pi[0]] != 123:  # '{'
            return err
        j = pi[0] + 1
        c2 = pcol[0] + 1
        if _lx_scan_word(p, &j, n, &c2) or j >= n or p[j] != 125:  # '}'
            return 0
        pi[0] = j + 1
        pcol[0] = c2 + 1


cdef inline int _lx_scan_string(const unsigned char* p, Py_ssize_t i, Py_ssize_t n, Py_ssize_t* pe,
                                Py_ssize_t* pcol, Py_ssize_t* pat, Py_ssize_t* pacol) noexcept nogil:
    """Scan a JSON string whose quote is at i; *pe/*pcol get its end; returns an error kind or 0."""
    cdef Py_ssize_t j = i + 1, col = pcol[0] + 1, k
    cdef unsigned char c
    while True:
        if j >= n:
            pe[0] = j
            pcol[0] = col
            pat[0] = i
            return _LX_E_STRING
        c = p[j]
        if c == 34:
            pe[0] = j + 1
            pcol[0] = col + 1
            return 0
        if c == 10:
            pe[0] = j
            pcol[0] = col
            pat[0] = i
            return _LX_E_STRING
        if c == 92:
            if j + 1 >= n or not _lx_escape[p[j + 1]]:
                pe[0] = j
                pat[0] = j
                pacol[0] = col
                return _LX_E_ESCAPE
            if p[j + 1] == 117:
                k = 2
                while k < 6:
                    if j + k >= n or not _lx_hex[p[j + k]]:
                        pe[0] = j
                        pat[0] = j
                        pacol[0] = col
                        return _LX_E_ESCAPE
                    k += 1
                j += 6
                col += 6
            else:
                j += 2
                col += 2
        elif c < 32 or c == 127:
            pe[0] = j
            pat[0] = j
            pacol[0] = col
            return _LX_E_CONTROL
        elif c < 0x80:
            j += 1
            col += 1
        else:
            k = _lx_utf8_len(p, j, n)
            if k == 0:
                pe[0] = j
                pat[0] = j
                pacol[0] = col
                return _LX_E_UTF8
            j += k
            col += 1


cdef inline Py_ssize_t _lx_find_newline(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    while i < n:
        if p[i] == 10:
            return i
        i += 1
    return -1


cdef struct _lx_buf:
    int32_t* v
    Py_ssize_t n
    Py_ssize_t cap


cdef int _lx_push(_lx_buf* b, int kind, Py_ssize_t s, Py_ssize_t e, Py_ssize_t line, Py_ssize_t col) except -1:
    cdef Py_ssize_t cap
    cdef int32_t* v
    if b.n + 5 > b.cap:
        cap = b.cap * 2 + 80
        v = <int32_t*> PyMem_Realloc(b.v, cap * sizeof(int32_t))
        if v == NULL:
            raise MemoryError()
        b.v = v
        b.cap = cap
    v = b.v + b.n
    v[0] = kind
    v[1] = <int32_t> s
    v[2] = <int32_t> e
    v[3] = <int32_t> line
    v[4] = <int32_t> col
    b.n += 5
    return 0


cdef int _lx_loop(const unsigned char* p, Py_ssize_t n, list out, _lx_buf* toks) except -1:
    cdef bint intoks = False
    cdef Py_ssize_t cs = 0, ce = 0, cl = 0, cc = 0
    cdef Py_ssize_t i = 0, j, k, s, e, tl, tc, at = 0, acol = 0
    cdef Py_ssize_t line = 1, col = 1
    cdef bint bol = True, skipping = False
    cdef unsigned char c
    cdef int kind, num
    if n >= 3 and p[0] == 0xEF and p[1] == 0xBB and p[2] == 0xBF:
        i = 3
    while i < n:
        c = p[i]
        if bol:
            bol = False
            if not (c == 32 or c == 9 or c == 13 or c == 10 or (c == 45 and i + 1 < n and p[i + 1] == 45)):
                if intoks:
                    out.append((cs, ce, cl, cc, PyBytes_FromStringAndSize(<char*> toks.v, toks.n * sizeof(int32_t))))
                    intoks = False
                skipping = False
        if skipping:
            j = _lx_find_newline(p, i, n)
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
                    kind = _LX_E_CONTROL
                    break
                if c < 0x80:
                    j += 1
                else:
                    k = _lx_utf8_len(p, j, n)
                    if k == 0:
                        kind = _LX_E_UTF8
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
                col += 1
                kind = _lx_scan_string(p, i + 1, n, &e, &col, &at, &acol)
                if kind == 0:
                    kind = _LX_QFIELD
                elif kind != _LX_E_STRING:
                    s = at
                    e = at + 1
                    tc = acol
            else:
                e = i + 1
                col += 1
                kind = _lx_scan_word(p, &e, n, &col)
                if kind:
                    s = e
                    e = s + 1
                    tc = col
                elif e == i + 1:
                    kind = _LX_E_FIELD
                else:
                    kind = _LX_FIELD
        elif c < 0x80 and _lx_wordchar[c]:
            e = i
            kind = _lx_scan_word(p, &e, n, &col)
            if kind:
                s = e
                e = s + 1
                tc = col
            else:
                num = _lx_is_number(p, s, e) if (48 <= c <= 57 or c == 43 or c == 45) else 0
                if num == 1:
                    kind = _LX_INT
                elif num == 2:
                    kind = _LX_FLOAT
                elif e - s == 4 and p[s] == 116 and p[s + 1] == 114 and p[s + 2] == 117 and p[s + 3] == 101:
                    kind = _LX_TRUE
                elif e - s == 5 and p[s] == 102 and p[s + 1] == 97 and p[s + 2] == 108 and p[s + 3] == 115 and p[s + 4] == 101:
                    kind = _LX_FALSE
                elif e - s == 4 and p[s] == 110 and p[s + 1] == 117 and p[s + 2] == 108 and p[s + 3] == 108:
                    kind = _LX_NULL
                else:
                    kind = _LX_WORD
        elif c >= 0x80:
            e = i
            kind = _lx_scan_word(p, &e, n, &col)
            if kind:
                s = e
                e = s + 1
                tc = col
            else:
                kind = _LX_WORD
        elif c == 34:
            kind = _lx_scan_string(p, i, n, &e, &col, &at, &acol)
            if kind == 0:
                kind = _LX_STRING
            elif kind != _LX_E_STRING:
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
                    kind = _LX_E_CONTROL
                    break
                if c < 0x80:
                    j += 1
                else:
                    k = _lx_utf8_len(p, j, n)
                    if k == 0:
                        kind = _LX_E_UTF8
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
                kind = _LX_E_BACKTICK
                line = tl
                e = _lx_find_newline(p, i, n)
                if e < 0:
                    e = n
            else:
                kind = _LX_BACKTICK
                e = j + 1
                col += 1
        elif c == 64:
            e = i + 1
            col += 1
            kind = _lx_scan_key(p, &e, n, &col)
            if kind:
                s = e
                e = s + 1
                tl = line
                tc = col
            elif e == i + 1:
                kind = _LX_E_KEY
            else:
                kind = _LX_KEY
        elif _lx_punct[c]:
            kind = _lx_punct[c]
            col += 1
        elif c == 61:
            kind = _LX_EQ
            if i + 1 < n and p[i + 1] == 61:
                e = i + 2
            col += e - i
        elif c == 33:
            if i + 1 < n and p[i + 1] == 61:
                kind = _LX_NE
                e = i + 2
                col += 2
            else:
                kind = _LX_E_UNEXPECTED
        elif c == 60 or c == 62:
            kind = _LX_LT if c == 60 else _LX_GT
            if i + 1 < n and p[i + 1] == 61:
                kind += 1
                e = i + 2
            col += e - i
        elif c < 32 or c == 127:
            kind = _LX_E_CONTROL
        else:
            kind = _LX_E_UNEXPECTED
        if not intoks:
            intoks = True
            toks.n = 0
            cs = s
            cl = tl
            cc = tc
        _lx_push(toks, kind, s, e, tl, tc)
        ce = e
        i = e
        if kind >= _LX_ERROR_BASE:
            skipping = True
            i = s
    if intoks:
        out.append((cs, ce, cl, cc, PyBytes_FromStringAndSize(<char*> toks.v, toks.n * sizeof(int32_t))))
    return 0


def drops_lex(data):
    """Split a Drops script (UTF-8 bytes) into commands of tokens (see the section comment)."""
    cdef bytes b = data if type(data) is bytes else bytes(data)
    cdef const unsigned char* p = <const unsigned char*> PyBytes_AS_STRING(b)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    cdef list out = []
    cdef _lx_buf toks
    if n >= 0x7FFFFFFF:
        raise ValueError("a Drops script must be smaller than 2 GiB")
    toks.v = NULL
    toks.n = 0
    toks.cap = 0
    try:
        _lx_loop(p, n, out, &toks)
    finally:
        PyMem_Free(toks.v)
    return out
