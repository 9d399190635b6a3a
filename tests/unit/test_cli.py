"""The ``ocean`` command line: flags declared once, refusals, key commands, tables."""
import json

import pytest

from ocean import cli
from ocean.settings import SETTINGS


def test_serve_has_a_flag_for_every_setting():
    serve = cli.build_parser()._subparsers._group_actions[0].choices["serve"]
    flags = {opt for action in serve._actions for opt in action.option_strings}
    assert {s.flag for s in SETTINGS} <= flags


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("ocean ")


def test_serve_refuses_more_than_one_worker(capsys):
    assert cli.main(["serve", "--workers", "3"]) == 2
    err = capsys.readouterr().err
    assert "--workers must be 1" in err and "data directory" in err


def test_serve_refuses_a_bad_setting(capsys):
    assert cli.main(["serve", "--port", "eighty"]) == 2
    assert "port" in capsys.readouterr().err


def test_key_commands(tmp_path, capsys):
    data = str(tmp_path / "data")
    assert cli.main(["key", "create", "--data", data, "--read", "analytics/*", "--name", "dash", "--json"]) == 1
    assert "--init" in capsys.readouterr().err  # no data directory there: refused, not made
    assert cli.main(["key", "create", "--data", data, "--read", "analytics/*", "--name", "dash", "--json",
                     "--init"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["token"].startswith("ok_") and made["read"] == ["analytics/*"]
    assert cli.main(["key", "list", "--data", data]) == 0
    out = capsys.readouterr().out
    assert "dash" in out and made["token"] not in out
    assert cli.main(["key", "revoke", "--data", data, "dash"]) == 0
    assert cli.main(["key", "revoke", "--data", data, "dash"]) == 1
    assert "already revoked" in capsys.readouterr().err
    assert cli.main(["key", "create", "--data", data]) == 2  # no scope: a usage error


def test_table_is_readable():
    text = cli.table(["date", "page_views"], [["2026-02-10", 4521], ["2026-02-09", None], ["x" * 80, {"a": 1}]])
    lines = text.splitlines()
    assert lines[0].startswith("date") and "page_views" in lines[0]
    assert "NULL" in lines[3] and "…" in lines[4] and '{"a": 1}' in lines[4]
    assert len({line.index("|") for line in lines if "|" in line}) == 1  # columns line up
