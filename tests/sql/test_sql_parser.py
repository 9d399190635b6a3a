"""SQL syntax: tokens, the tree, and errors that point at the place with a caret."""
import pytest

from ocean.errors import ParseError
from ocean.sql.lexer import tokenize
from ocean.sql.parser import Call, Column, Literal, parse


def test_tokens_keep_positions_and_fold_keywords():
    toks = tokenize('select "POST /drop", \'it\'\'s\' FROM t -- note\n')
    assert [(t.kind, t.value) for t in toks] == [
        ("keyword", "SELECT"), ("ident", "POST /drop"), ("op", ","), ("string", "it's"),
        ("keyword", "FROM"), ("ident", "t"), ("end", None)]
    assert toks[1].pos == 7


def test_numbers():
    toks = tokenize("SELECT 1, 2.5, .5, 1e3, 99999999999999999999 FROM t")
    assert [t.value for t in toks if t.kind == "number"] == [1, 2.5, 0.5, 1000.0, 1e20]


def test_tutorial_query_tree():
    q = parse('SELECT key AS date, page_views, requests FROM "analytics/daily" ORDER BY key DESC LIMIT 7')
    assert q.source == "analytics/daily"
    assert [i.name for i in q.items] == ["date", "page_views", "requests"]
    assert q.order_by[0].desc and q.limit == 7 and q.offset == 0


def test_calls_and_literals():
    q = parse("SELECT COUNT(DISTINCT x), date_trunc('day', ts), -3 FROM \"a/b\"")
    count, trunc, neg = (i.expr for i in q.items)
    assert count == Call("count", (Column("x"),), True, False)
    assert trunc.args[0] == Literal("day")
    assert neg == Literal(-3)
    assert Literal(1) != Literal(1.0) != Literal(True)


def test_prefix_sources():
    assert parse('SELECT * FROM "shop/*"').source == "shop/*"
    with pytest.raises(ParseError):  # unquoted, "/*" opens a comment: a prefix needs quotes
        parse("SELECT * FROM shop/*")
    assert parse("SELECT * FROM shop/orders").source == "shop/orders"


@pytest.mark.parametrize("text, line, column, what", [
    ("SELECT key FROM", 1, 16, "expected a route"),
    ("SELECT key,\n  FROM x", 2, 3, "expected an expression"),
    ("SELECT (1 + 2 FROM x", 1, 15, "expected ')'"),
    ("SELECT 'abc FROM x", 1, 8, "unterminated string"),
    ("SELECT a FROM x WHERE a ! 3", 1, 25, "unexpected character '!'"),
    ("SELECT a FROM x ORDER BY a NULLS MIDDLE", 1, 34, "FIRST or LAST"),
    ("SELECT CASE END FROM x", 1, 13, "CASE needs at least one WHEN"),
    ("SELECT a FROM x LIMIT -1", 1, 23, "LIMIT takes a whole number"),
    ("", 1, 1, "starts with SELECT"),
])
def test_errors_point_at_the_place(text, line, column, what):
    with pytest.raises(ParseError) as info:
        parse(text)
    err = info.value
    assert (err.line, err.column) == (line, column), err.message
    assert what in err.message
    caret_line = err.message.splitlines()[-1]
    source_line = err.message.splitlines()[-2]
    assert caret_line.strip() == "^"
    assert len(caret_line) - 2 == column  # two spaces of indent, then the caret under the column
    assert source_line[2:] == text.splitlines()[line - 1] if text else True
    d = err.to_dict()
    assert d["code"] == "parse_error" and d["line"] == line and d["column"] == column
    # the position travels in line/column only: a message that repeats it reads twice in every client
    assert f"line {line}" not in err.message and f"column {column}" not in err.message


def test_deep_nesting_is_a_parse_error_not_a_recursion_error():
    with pytest.raises(ParseError):
        parse("SELECT " + "(" * 5000 + "1" + ")" * 5000 + " FROM x")
    with pytest.raises(ParseError):
        parse("SELECT " + "- " * 5000 + "1 FROM x")
    with pytest.raises(ParseError):
        parse("SELECT " + "NOT " * 5000 + "1 FROM x")


def test_overlong_query_is_refused():
    with pytest.raises(ParseError):
        parse("SELECT " + "1 + " * 100000 + "1 FROM x")
