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
    assert set(parser.PARSERS) == {c.name for c in commands.COMMANDS if not c.bare}
    words = [w for c in commands.COMMANDS if not c.bare for w in (c.name, *c.aliases)]
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
