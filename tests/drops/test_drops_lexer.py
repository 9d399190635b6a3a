"""The Drops lexer: the compiled byte loop and its pure twin agree; tokens decode to values."""
import random
import struct

import pytest
from hypothesis import given, settings, strategies as st

from ocean import _reference, kernels
from ocean.drops import lexer
from ocean.errors import ParseError

try:
    from ocean import _core
except ImportError:  # pragma: no cover - the kernels module reports it
    _core = None

# Fragments that exercise every branch of the byte loop, valid and not.
ATOMS = [
    b"incr", b"get", b"save", b"find", b"where", b"x", b" ", b"  ", b"\t", b"\n", b"\n  ", b"\r\n", b"\n\n",
    b"analytics/daily", b"a/*", b"*", b"@2026-02-10", b"@", b"@a@b", b".page_views", b'."POST /drop"', b".",
    b'"str"', b'"esc \\n \\u00e9 \\"q\\" \\/"', b'"bad \\q"', b'"\\u12"', b'"\\ud83d\\ude00"', b'"unterminated',
    b'"tab\tin"', b"`SELECT 1`", b"`multi\nline`", b"`open", b"`ctl\x01`", b"-- comment\n", b"--", b"-5", b"+3",
    b"1.5e3", b"1.", b"007", b"1e", b"-.5", b"true", b"false", b"null", b"truex", b"{", b"}", b"[", b"]", b":",
    b",", b"(", b")", b"=", b"==", b"!=", b"!", b"<", b"<=", b">", b">=", b"'", b"#", b";", b"\\", b"caf\xc3\xa9",
    b"\xff", b"\xc3", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe0\x80\xaf",
    b"\x00", b"\x07", b"\x7f", b"\x0c", b"\xef\xbb\xbf", b"+views", b"-", b"a--b",
    b"@{day}", b"@eu-{hour}", b"@{", b"@}", b"@k{a", b"@{x y}", b"@{a}b}", b"@{week}{month}", b"@{d\xc3\xa9}", b"@{\xff}", b"@{day}\n",
]


def corpus(seed: int, n: int):
    """``n`` generated scripts: fragment soups, and now and then raw random bytes."""
    rng = random.Random(seed)
    for _ in range(n):
        if rng.random() < 0.15:
            yield bytes(rng.randrange(256) for _ in range(rng.randint(0, 60)))
        else:
            yield b"".join(rng.choice(ATOMS) for _ in range(rng.randint(0, 40)))


def test_the_compiled_kernel_is_the_one_loaded():
    if kernels.PURE:
        assert lexer.lex is _reference.drops_lex
    else:
        assert lexer.lex is _core.drops_lex
        assert _core.drops_lex is not _reference.drops_lex


@pytest.mark.skipif(_core is None, reason="compiled core not built")
def test_twins_declare_the_same_kinds():
    assert _core.DROPS_TOKEN_KINDS == _reference.DROPS_TOKEN_KINDS
    assert _core.DROPS_LEX_ERRORS == _reference.DROPS_LEX_ERRORS
    assert _core.DROPS_ERROR_BASE == _reference.DROPS_ERROR_BASE


@pytest.mark.skipif(_core is None, reason="compiled core not built")
def test_twins_agree_on_a_large_generated_corpus():
    total = 0
    for script in corpus(seed=20260210, n=6000):
        assert _core.drops_lex(script) == _reference.drops_lex(script), script
        total += len(script)
    big = b"".join(corpus(seed=7, n=300))
    assert _core.drops_lex(big) == _reference.drops_lex(big)
    assert total > 200_000


@pytest.mark.skipif(_core is None, reason="compiled core not built")
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_twins_agree_on_any_bytes(data):
    assert _core.drops_lex(data) == _reference.drops_lex(data)


def _kinds(text):
    return [[(t.kind, t.value) for t in cmd] for cmd in lexer.tokenize(text)]


def test_tokens_and_values():
    assert _kinds('incr analytics/daily @2026-02-10 .page_views ."POST /drop" -3 1.5e3') == [[
        ("word", "incr"), ("word", "analytics/daily"), ("key", "2026-02-10"), ("field", "page_views"),
        ("qfield", "POST /drop"), ("int", -3), ("float", 1500.0)]]
    assert _kinds('x { a: "\\u00e9\\n", b: [true, false, null] } != <= >= < > = ( )') == [[
        ("word", "x"), ("{", "{"), ("word", "a"), (":", ":"), ("string", "é\n"), (",", ","), ("word", "b"),
        (":", ":"), ("[", "["), ("true", True), (",", ","), ("false", False), (",", ","), ("null", None),
        ("]", "]"), ("}", "}"), ("!=", "!="), ("<=", "<="), (">=", ">="), ("<", "<"), (">", ">"), ("=", "="),
        ("(", "("), (")", ")")]]
    assert _kinds("sql `SELECT *\n  FROM t`") == [[("word", "sql"), ("backtick", "SELECT *\n  FROM t")]]


def test_a_key_may_hold_placeholder_braces():
    assert _kinds("incr analytics/daily @{day} .page_views") == [[
        ("word", "incr"), ("word", "analytics/daily"), ("key", "{day}"), ("field", "page_views")]]
    assert _kinds("get a @eu-{week}-x {a: 1}") == [[
        ("word", "get"), ("word", "a"), ("key", "eu-{week}-x"), ("{", "{"), ("word", "a"), (":", ":"),
        ("int", 1), ("}", "}")]]
    assert _kinds("get a @{}")[0][2] == ("key", "{}")  # lexed as a key; the parser says what is wrong
    assert _kinds("save a @k{b: 1}") == [[  # a brace without its pair ends the key, as before
        ("word", "save"), ("word", "a"), ("key", "k"), ("{", "{"), ("word", "b"), (":", ":"), ("int", 1),
        ("}", "}")]]


def test_lines_comments_and_continuations():
    script = b"\xef\xbb\xbf-- intro\nget a @b -- trailing\n\n  \nincr a @b\n  .x 2\n-- between\n\t.y\nfind a/*\n"
    cmds = lexer.lex(script)
    assert [(line, col) for _s, _e, line, col, _t in cmds] == [(2, 1), (5, 1), (9, 1)]
    assert [script[s:e] for s, e, *_ in cmds] == [b"get a @b", b"incr a @b\n  .x 2\n-- between\n\t.y", b"find a/*"]
    toks = lexer.decode(script, cmds[1][4])
    assert [(t.text, t.line, t.column) for t in toks] == [
        ("incr", 5, 1), ("a", 5, 6), ("@b", 5, 8), (".x", 6, 3), ("2", 6, 6), (".y", 8, 2)]


def test_columns_count_characters_not_bytes():
    toks = lexer.tokenize("save café @é1 x: \"ü\" y")[0]
    assert [t.column for t in toks] == [1, 6, 11, 15, 16, 18, 22]


def test_packed_tokens_are_int32_quintuples():
    (start, end, line, col, packed), = lexer.lex(b"get a @b")
    assert list(struct.iter_unpack("5i", packed)) == [(0, 0, 3, 1, 1), (0, 4, 5, 1, 5), (5, 6, 8, 1, 7)]


@pytest.mark.parametrize("script, where, says", [
    (b'save a @b x: "open\nget a @b', (1, 14), 'unterminated string `"open`: it starts here'),
    (b"sql `SELECT\nget a @b", (1, 5), "unterminated backtick string `'SELECT`: it starts here"),
    (b"get a @b \xff", (1, 10), "invalid UTF-8 (byte 0xFF)"),
    (b'save a @b x: "\xc3"', (1, 15), "invalid UTF-8"),
    (b"get a @b \x07", (1, 10), "control character U+0007"),
    (b'save a @b x: "a\tb"', (1, 16), "control character U+0009"),
    (b'save a @b x: "\\q"', (1, 15), "invalid escape `\\q`"),
    (b"get a @b 'x'", (1, 10), "unexpected character `'`; strings use double quotes"),
    (b"get a @", (1, 7), "`@` must be followed by a key"),
    (b"incr a @b .", (1, 11), "`.` must be followed by a field name"),
    (b"-- caf\xff", (1, 7), "invalid UTF-8"),
])
def test_lexical_errors_say_where_and_what(script, where, says):
    cmd = lexer.lex(script)[0]
    with pytest.raises(ParseError) as err:
        lexer.decode(script, cmd[4])
    assert (err.value.line, err.value.column) == where
    assert says in err.value.message


def test_an_error_skips_only_its_own_command():
    cmds = lexer.lex(b"get a @b \xff more\n  continued \x00\nget c @d\n")
    assert len(cmds) == 2
    assert [t.text for t in lexer.decode(b"get a @b \xff more\n  continued \x00\nget c @d\n", cmds[1][4])] == \
        ["get", "c", "@d"]
