"""Commands are declared once: the parser, executor, help, docs and editor all follow the declarations."""
import json
from pathlib import Path

from ocean.drops import commands, executor, parser, run

DOC = Path(__file__).resolve().parents[2] / "docs" / "drops.md"
BEGIN = "<!-- generated from ocean/drops/commands.py"
END = "<!-- end of generated commands -->"


def test_every_declared_command_has_a_parser_and_an_executor():
    names = {c.name for c in commands.COMMANDS}
    assert set(executor.EXECUTORS) == names
    assert set(parser.PARSERS) == names  # every command can be typed by name, bare ones too
    words = [w for c in commands.COMMANDS for w in (c.name, *c.aliases)]
    assert len(words) == len(set(words)), "a name or alias is declared twice"


def test_declarations_are_json_for_the_editor():
    decl = json.loads(json.dumps(commands.declarations()))
    assert [d["name"] for d in decl] == [c.name for c in commands.COMMANDS]
    for d in decl:
        assert set(d) >= {"name", "aliases", "syntax", "help", "example", "keywords"}
        assert d["help"] and d["syntax"] and d["example"]


def test_the_docs_page_is_generated_from_the_declarations():
    text = DOC.read_text()
    start = text.index("\n", text.index(BEGIN)) + 1
    block = text[start:text.index(END)]
    assert block == commands.markdown(), (
        "docs/drops.md is stale: regenerate the block after the marker with `python -m ocean.drops.commands`")
    for c in commands.COMMANDS:
        assert f"### {c.name}" in text
        for alias in c.aliases:
            assert f"`{alias}`" in text


def test_help_lists_every_command_and_help_name_shows_one(engine):
    listed, one, alias = run(engine, "help\nhelp incr\nhelp patch")
    assert [d["name"] for d in listed["data"]] == [c.name for c in commands.COMMANDS]
    assert one["data"]["syntax"] == commands.BY_NAME["incr"].syntax
    assert one["data"]["example"] == commands.BY_NAME["incr"].example
    assert alias["data"]["name"] == "update"


def test_every_example_parses_and_runs(engine):
    run(engine, 'save users @alice name: "Alice"\nincr analytics/daily @2026-02-10 .page_views 200')
    for c in commands.COMMANDS:
        (res,) = run(engine, c.example)
        assert res["ok"], (c.name, res)


def test_unknown_commands_suggest_the_closest(engine):
    assert commands.suggest("incrr") == "incr"
    assert commands.suggest("serch") is None or commands.suggest("serch") in commands.WORDS
    (res,) = run(engine, "upate users @a x: 1")
    assert res["code"] == "unknown_command" and "did you mean `update`?" in res["error"]


def test_list_runs_by_name_as_help_declares_it(engine):
    """`help list` describes `list ROUTE`; typing it works, and the bare route still does the same."""
    run(engine, "save analytics/daily @b v: 2\nsave analytics/daily @a v: 1")
    (decl,) = run(engine, "help list")
    assert decl["data"]["syntax"].startswith("list ROUTE")
    named, bare, upper = run(engine, "list analytics/daily\nanalytics/daily\nLIST analytics/daily")
    assert named == bare == upper == {"ok": True, "data": [{"key": "a", "v": 1}, {"key": "b", "v": 2}]}
    (bad,) = run(engine, "list analytics/daily @a")
    assert bad["code"] == "parse_error" and "usage: list ROUTE" in bad["error"]


def test_sql_typed_as_drops_suggests_the_sql_command_not_a_close_name(engine):
    assert commands.suggest("select") == "delete"  # why the SQL words are checked before difflib
    for text in ("SELECT * FROM users", "select key from \"analytics/daily\" where a = 'x'", "WITH t AS (SELECT 1) SELECT 1"):
        (res,) = run(engine, text)
        assert res["code"] == "unknown_command" and (res["line"], res["column"]) == (1, 1), res
        assert f"sql `{text}`" in res["error"] and "delete" not in res["error"], res
    (res,) = run(engine, "UPDATE users SET x = 1")  # a Drops command too: its own error, then the hint
    assert "got `SET`" in res["error"] and "sql `UPDATE users SET x = 1`" in res["error"]
    assert not any(w == c for w in parser.SQL_WORDS for c in commands.WORDS)


def test_error_messages_never_repeat_their_position(engine):
    """line/column are fields of the result; the message must not say them again (Drops and SQL alike)."""
    script = ('save a @b x: "open\nsql `SELECT\n  FROM`\nsql `SELECT * FROM`\nfind a limit 1 limit 2\n'
              'get a @b \'x\'\nsql `SELECT a FROM "a" WHERE`\nsql "SELECT ("')
    results = run(engine, script)
    assert all(not r["ok"] for r in results), results
    for r in results:
        assert f"line {r['line']}" not in r["error"] and f"column {r['column']}" not in r["error"], r
