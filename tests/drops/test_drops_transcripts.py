"""Transcripts: each ``transcripts/NAME.drops`` run on a fresh engine gives ``NAME.json``.

The JSON holds ``[command text, result]`` pairs, with volatile values masked.
After a deliberate change, regenerate with ``OCEAN_REGEN_TRANSCRIPTS=1`` and
read the diff before committing it.
"""
import json
import os
from pathlib import Path

import pytest

from ocean.drops import run
from ocean.drops.lexer import lex

HERE = Path(__file__).parent / "transcripts"
SCRIPTS = sorted(HERE.glob("*.drops"))


def _commands(text: str) -> list[str]:
    data = text.encode()
    return [data[s:e].decode() for s, e, _l, _c, _t in lex(data)]


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_transcript(script, engine, monkeypatch, masked):
    monkeypatch.setitem(__import__("sys").modules, "ocean.sql", None)  # SQL has its own transcripts
    text = script.read_text()
    results = run(engine, text)
    got = [[cmd, masked(res)] for cmd, res in zip(_commands(text), results, strict=True)]
    expected_path = script.with_suffix(".json")
    if os.environ.get("OCEAN_REGEN_TRANSCRIPTS") == "1":
        expected_path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    expected = json.loads(expected_path.read_text())
    assert got == expected
