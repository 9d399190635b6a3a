"""Fuzzing ``run``: any bytes give a list of results (or ScriptTooLarge), never another exception.

The results must also never be ``internal``: every failure is an ocean error
with a code and a position. atheris runs too when it is installed.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ocean import Engine
from ocean.drops import run
from ocean.errors import ScriptTooLarge

WORDS = ["incr", "get", "read", "save", "write", "update", "patch", "remove", "delete", "find", "query", "count",
         "sql", "history", "help", "where", "and", "or", "group", "sum", "avg", "min", "max", "sort", "asc",
         "desc", "limit", "then", "pick", "keep", "a/b", "a/*", "*", "_admin/x", "@k", "@", ".f", '."g h"', ".",
         "x", '"s"', '"\\u00e9"', '"\\ud800"', "`SELECT 1`", "1", "-2", "1.5", "1e999", "99999999999999999999",
         "true", "null", "{", "}", "[", "]", ":", ",", "(", ")", "=", "!=", "<", ">=", "+v", "\n", "\n  ", " ",
         "--", "\xff", "\x00"]
_SETTINGS = dict(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def fuzz_engine(tmp_path_factory):
    eng = Engine(str(tmp_path_factory.mktemp("fuzz")), maintenance=False)
    yield eng
    eng.close()


def check(engine, data):
    try:
        results = run(engine, data)
    except ScriptTooLarge:
        return
    assert isinstance(results, list)
    for res in results:
        assert res["ok"] in (True, False)
        if not res["ok"]:
            assert res["code"] != "internal", res
            assert isinstance(res["error"], str) and res["line"] >= 1 and res["column"] >= 1


@settings(**_SETTINGS)
@given(st.binary(max_size=300))
def test_any_bytes(fuzz_engine, data):
    check(fuzz_engine, data)


@settings(**_SETTINGS)
@given(st.lists(st.sampled_from(WORDS), max_size=40).map(" ".join))
def test_token_soup(fuzz_engine, text):
    check(fuzz_engine, text.encode("utf-8", "surrogateescape"))


@settings(**_SETTINGS)
@given(st.text(max_size=200))
def test_any_text(fuzz_engine, text):
    check(fuzz_engine, text)


def test_deep_nesting_is_an_error_not_a_crash(fuzz_engine):
    deep = "save a @k " + "[" * 5000 + "]" * 5000
    (res,) = run(fuzz_engine, deep)
    assert res["code"] == "parse_error" and "nested" in res["error"]
    (res,) = run(fuzz_engine, "find a where " + "(" * 5000 + "x = 1" + ")" * 5000)
    assert res["code"] == "parse_error"


def test_atheris_if_installed():
    pytest.importorskip("atheris")
    target = Path(__file__).with_name("fuzz_drops_atheris.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    runs = os.environ.get("OCEAN_ATHERIS_RUNS", "20000")
    seconds = os.environ.get("OCEAN_ATHERIS_SECONDS", "5")
    proc = subprocess.run([sys.executable, str(target), f"-runs={runs}", f"-max_total_time={seconds}",
                           "-max_len=512", "-len_control=0", "-seed=1"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
