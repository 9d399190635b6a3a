"""uniq and observe: parsed with positions, run atomically; find ... group ... uniq F is a union."""
import pytest

from ocean.drops import run


def test_uniq_and_observe_answer_the_estimate_and_the_summary(engine):
    out = run(engine, 'uniq analytics/daily @2026-02-10 .visitors "u-123" "u-456"\n'
                      'uniq analytics/daily @2026-02-10 .visitors ["u-456", "u-789"] 42 .countries "fr"\n'
                      "observe analytics/latency @2026-02-10 .ms 12.5 40 7\n"
                      "get analytics/daily @2026-02-10")
    assert out[0] == {"ok": True, "data": {"visitors": 2}}
    assert out[1] == {"ok": True, "data": {"visitors": 4, "countries": 1}}
    ms = out[2]["data"]["ms"]
    assert ms["count"] == 3 and ms["sum"] == 59.5 and ms["min"] == 7 and ms["max"] == 40
    assert out[3]["data"] == {"visitors": 4, "countries": 1}


def test_key_placeholders_name_the_key_used(engine):
    engine.now_ms = lambda: 1770681600000  # 2026-02-10T00:00:00Z
    out = run(engine, "observe analytics/latency @{day} .ms 3")
    assert out[0]["key"] == "2026-02-10" and out[0]["data"]["ms"]["count"] == 1


@pytest.mark.parametrize("script, code, column", [
    ("uniq a/b @k", "parse_error", 12),
    ("uniq a/b @k .v", "parse_error", 15),
    ("uniq a/b @k .v u1", "parse_error", 16),
    ("uniq a/b @k .v 1.5", "invalid_amount", 16),
    ('uniq a/b @k .v "a" [true]', "invalid_amount", 20),
    ('uniq a/b @k "v" "a"', "parse_error", 13),
    ('observe a/b @k .ms "slow"', "invalid_amount", 20),
    ("observe a/b @k .ms 1 .p", "parse_error", 24),
    ("observe a/b .ms 1", "parse_error", 13),
])
def test_parse_errors_carry_line_and_column(engine, script, code, column):
    [res] = run(engine, "\n" + script)
    assert res["ok"] is False and res["code"] == code and res["line"] == 2 and res["column"] == column, res


def test_type_errors_change_nothing(engine):
    run(engine, "incr a/daily @d .pv 2\nuniq a/daily @d .visitors \"x\"")
    out = run(engine, 'uniq a/daily @d .pv "x"\nincr a/daily @d .visitors\nobserve a/daily @d .visitors 1\n'
                      'uniq a/daily @d .visitors "y" .pv "z"\nget a/daily @d')
    assert [r.get("code") for r in out[:4]] == ["not_a_sketch", "not_a_counter", "not_a_sketch", "not_a_sketch"]
    assert out[4]["data"] == {"pv": 2, "visitors": 1}


def test_find_group_uniq_is_the_union_not_the_sum(engine):
    for day, visitors in (("d1", ["a", "b", "c"]), ("d2", ["b", "c", "d"]), ("d3", ["x"])):
        run(engine, f"uniq site/daily @{day} .visitors " + " ".join(f'"{v}"' for v in visitors)
            + f"\nsave site/daily @{day} week: {1 if day != 'd3' else 2}")
    [res] = run(engine, "find site/daily group week uniq visitors sum visitors count")
    assert res["data"] == [{"week": 1, "uniq_visitors": 4, "sum_visitors": 6, "count": 2},
                           {"week": 2, "uniq_visitors": 1, "sum_visitors": 1, "count": 1}]
    [res] = run(engine, "find site/daily where visitors >= 3 then pick key, visitors")
    assert res["data"] == [{"key": "d1", "visitors": 3}, {"key": "d2", "visitors": 3}]
