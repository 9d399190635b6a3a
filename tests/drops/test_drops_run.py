"""``ocean.drops.run``: one result per command, access per command, whole-script refusal, no escapes."""

import pytest

from ocean.access import Access
from ocean.drops import executor, parser, run
from ocean.errors import ScriptTooLarge


def test_one_result_per_command_and_failures_do_not_stop_the_rest(engine):
    results = run(engine, "get a @missing\n\n-- only a comment\nincr a @k .n\n   \nget a @k\n")
    assert [r["ok"] for r in results] == [False, True, True]
    assert results[0] == {"ok": False, "error": "a @missing not found", "code": "not_found", "line": 1, "column": 1}
    assert results[2]["data"] == {"n": 1}


def test_str_and_bytes_give_the_same_results(engine):
    assert run(engine, "incr a @k .é") == [{"ok": True, "data": {"é": 1}}]
    assert run(engine, "incr a @k .é".encode()) == [{"ok": True, "data": {"é": 2}}]
    assert run(engine, "") == [] and run(engine, b"\n\n-- x\n") == []


def test_positions_are_script_positions_even_from_the_parse_cache(engine):
    script = "get a @b 'x'\n\nincr a\n  @k .n\n  .m zz\nget a @b 'x'\n"
    first = run(engine, script)
    assert [(r["line"], r["column"]) for r in first] == [(1, 10), (5, 6), (6, 10)]
    assert run(engine, "\n\n" + script)[2]["line"] == 8  # same text, cached, two lines lower
    again = run(engine, 'incr a @k .n\nsave a @k x: "open\n\nsave a @k x: "open')
    assert [(r["line"], r["column"]) for r in again[1:]] == [(2, 14), (4, 14)]
    assert again[1]["error"].startswith("unterminated string `\"open`: it starts here")


def test_access_is_checked_per_command(engine):
    run(engine, "save public/x @a v: 1\nsave private/x @a v: 1")
    reader = Access("k1", read=("public/*",), write=())
    results = run(engine, "get public/x @a\nget private/x @a\nincr public/x @a .v\nfind public/*\nfind *\n"
                          "count private/x\nhistory public/x @a\nhelp", access=reader)
    assert [r.get("code") for r in results] == [None, "forbidden", "forbidden", None, "forbidden", "forbidden",
                                               None, None]
    writer = Access("k2", read=(), write=("public/*",))
    results = run(engine, "incr public/x @a .v\nincr _admin/daily @d .r\nremove public/x @a", access=writer)
    assert [r.get("code") for r in results] == [None, "forbidden", None]
    assert engine.entity("public/x", "a") is None


def test_writes_record_the_callers_source(engine):
    run(engine, "write logs e: 1", access=Access("key-42", read=("*",), write=("*",)))
    assert [e["source"] for e in engine.events("logs")] == ["key-42"]


def test_scripts_over_the_limit_are_refused_whole(engine):
    small = engine.settings.with_(max_script_bytes=64)
    with pytest.raises(ScriptTooLarge) as err:
        run(engine, "incr a @k .n\n" * 10, settings=small)
    assert err.value.code == "script_too_large" and err.value.status == 413
    assert engine.entity("a", "k") is None
    assert len(run(engine, "incr a @k .n\n" * 4, settings=small)) == 4


def test_a_cached_script_is_still_held_to_the_limit_and_runs_again(engine):
    script = "incr a @k .é\n" * 5  # 70 bytes of UTF-8 in 65 characters
    assert [r["data"] for r in run(engine, script)][-1] == {"é": 5}  # cached now
    with pytest.raises(ScriptTooLarge):
        run(engine, script, settings=engine.settings.with_(max_script_bytes=69))
    assert run(engine, script.encode())[-1]["data"] == {"é": 10}  # bytes: its own entry, same answers
    assert run(engine, script)[-1]["data"] == {"é": 15}  # every run executes: only the parse is cached


def test_an_unexpected_exception_is_an_internal_result(engine, monkeypatch):
    def boom(*a, **k):
        raise KeyError("secret detail")
    monkeypatch.setattr(engine, "incr", boom)
    results = run(engine, "incr a @k .n\nsave a @j v: 1")
    assert results[0]["ok"] is False and results[0]["code"] == "internal"
    assert "secret" not in results[0]["error"] and (results[0]["line"], results[0]["column"]) == (1, 1)
    assert results[1]["ok"] is True


def test_cached_parses_are_not_shared_with_the_engine(engine):
    script = 'save a @k { tags: ["x"], inner: { n: 1 } }'
    run(engine, script)
    engine.get("a", "k")["payload"]["tags"].append("mutated")
    run(engine, script)
    assert engine.get("a", "k")["payload"] == {"tags": ["x"], "inner": {"n": 1}}


def test_the_parse_cache_stays_bounded(engine):
    parser._cache.clear()
    run(engine, "".join(f"get a @k{i}\n" for i in range(parser._CACHE_ENTRIES + 10)))
    assert len(parser._cache) <= parser._CACHE_ENTRIES


def test_sql_hands_the_backtick_text_to_ocean_sql(engine, monkeypatch):
    seen = {}

    def query(eng, text, access=None, settings=None):
        seen.update(text=text, access=access)
        return {"columns": ["date", "n"], "rows": [["2026-02-10", 3], ["2026-02-09", 1]]}
    monkeypatch.setattr(executor, "sql_query", query)
    res = run(engine, 'sql `SELECT key AS date, n FROM "a" ORDER BY key DESC`')
    assert res == [{"ok": True, "columns": ["date", "n"],
                    "data": [{"date": "2026-02-10", "n": 3}, {"date": "2026-02-09", "n": 1}]}]
    assert seen["text"] == 'SELECT key AS date, n FROM "a" ORDER BY key DESC'
    assert seen["access"].source == "server"


def test_find_refuses_more_rows_than_the_cap_without_a_limit(engine):
    run(engine, "\n".join(f"save t @k{i} n: {i}" for i in range(5)))
    capped = engine.settings.with_(sql_max_rows=3)
    (over,) = run(engine, "find t", settings=capped)
    assert over["code"] == "query_limit" and "add a limit" in over["error"]
    assert len(run(engine, "find t limit 3", settings=capped)[0]["data"]) == 3
    assert run(engine, "find t group n count", settings=capped)[0]["code"] == "query_limit"
    assert run(engine, "count t", settings=capped)[0]["data"] == 5


def test_bare_route_lists_at_most_list_limit(engine):
    run(engine, "\n".join(f"save t @k{i:02d} n: {i}" for i in range(12)))
    rows = run(engine, "t", settings=engine.settings.with_(list_limit=5))[0]["data"]
    assert [r["key"] for r in rows] == ["k00", "k01", "k02", "k03", "k04"]


def test_a_typo_that_is_also_a_route_with_data_lists_it(engine):
    assert run(engine, "hepl")[0]["code"] == "unknown_command"
    run(engine, "save hepl @a v: 1")
    assert run(engine, "hepl")[0] == {"ok": True, "data": [{"key": "a", "v": 1}]}


def test_sql_error_positions_point_into_the_script(engine, monkeypatch):
    from ocean.errors import ParseError

    def query(eng, text, access=None, settings=None):
        lines = text.split("\n")
        raise ParseError("bad", line=len(lines), column=len(lines[-1]) + 1)
    monkeypatch.setattr(executor, "sql_query", query)
    _missing, one, multi, quoted = run(engine, 'get a @b\n\nsql `SELECT x FROM`\nsql `SELECT x\n    FROM`\nsql "SELECT"')
    assert (one["line"], one["column"]) == (3, 19)
    assert (multi["line"], multi["column"]) == (5, 9)
    assert (quoted["line"], quoted["column"]) == (6, 1) and "of the query" in quoted["error"]


def test_crlf_scripts_a_bom_and_an_indented_first_line(engine):
    results = run(engine, "\ufeff  incr a @k .n\r\nincr a @k\r\n  .n 2\r\n-- c\r\nget a @k\r\n")
    assert [r.get("data") for r in results] == [{"n": 1}, {"n": 3}, {"n": 3}]
    (bad,) = run(engine, "  get a @k 'x'")
    assert (bad["line"], bad["column"]) == (1, 12)
