"""The export/import formats (ocean/transfer.py): import lines into drops, bounded line reading,
batches with per-line errors, CSV cells."""
import csv
import io
import json

import pytest

from ocean import errors
from ocean.engine.export import parse_time
from ocean.transfer import Importer, _cell, csv_chunks, line_limit, ndjson_chunks, parse_line, read_lines

NOW = parse_time("2026-02-10T12:00:00Z")


def _line(doc) -> bytes:
    return json.dumps(doc).encode() + b"\n"


def test_an_exported_entity_with_counters_becomes_one_merging_drop():
    drops, at = parse_line(_line({"route": "a", "key": "k", "payload": {"name": "x", "views": 3},
                                  "counters": ["views"], "created_at": "2025-01-01T00:00:00.000Z",
                                  "updated_at": "2025-01-01T00:00:00.000Z", "version": 4}), NOW)
    assert drops == [{"route": "a", "key": "k", "payload": {"name": "x", "+views": 3}}] and at is None


def test_an_exported_event_keeps_its_time():
    drops, at = parse_line(_line({"route": "e", "payload": [1, 2], "created_at": "2025-01-01T00:00:00.123Z",
                                  "seq": 7}), NOW)
    assert drops == [{"route": "e", "key": None, "payload": [1, 2]}]
    assert at == parse_time("2025-01-01T00:00:00.123Z")


def test_expiry_becomes_keep_and_a_passed_one_is_skipped():
    drops, _ = parse_line(_line({"route": "e", "payload": 1, "expires_at": "2026-02-10T12:00:10Z"}), NOW)
    assert drops[0]["keep"] == 10.0
    assert parse_line(_line({"route": "e", "payload": 1, "expires_at": "2026-02-10T11:00:00Z"}), NOW) == ([], None)
    # keep applies to saves only: an expiring entity with counters is its fields, then its counters
    drops, _ = parse_line(_line({"route": "a", "key": "k", "payload": {"n": 1, "c": 2}, "counters": ["c"],
                                 "expires_at": "2026-02-10T12:01:00Z"}), NOW)
    assert drops == [{"route": "a", "key": "k", "payload": {"n": 1}, "keep": 60.0},
                     {"route": "a", "key": "k", "payload": {"+c": 2}}]


def test_blank_lines_are_nothing():
    assert parse_line(b"\n", NOW) is None and parse_line(b"  \r\n", NOW) is None


@pytest.mark.parametrize("raw, words", [
    (b"{oops\n", "malformed JSON at column 2"),
    (b"\xff\xfe{}\n", "UTF-8"),
    (b"[1, 2]\n", "one JSON object"),
    (b'{"route": "a"}\n', "needs a payload"),
    (b'{"route": "a", "payload": 1, "colour": "red"}\n', "no field 'colour'"),
    (b'{"route": "a", "payload": {"n": "x"}, "key": "k", "counters": ["n"]}\n', "not a number field"),
    (b'{"route": "a", "payload": {"n": 1}, "counters": ["n"]}\n', "counters is a list"),
    (b'{"route": "a", "payload": 1, "created_at": "soon"}\n', "created_at must be"),
    (b'{"route": "a", "payload": 1, "expires_at": 5}\n', "expires_at must be"),
    (b'{"route": "a", "payload": 1, "keep": 5, "expires_at": "2030-01-01"}\n', "not both"),
])
def test_bad_lines_say_why(raw, words):
    with pytest.raises(errors.InvalidLine) as exc:
        parse_line(raw, NOW)
    assert words in exc.value.message and exc.value.code == "invalid_line"


def test_read_lines_numbers_lines_and_never_holds_an_oversize_one():
    body = b'{"a": 1}\n' + b"x" * 100 + b"\n" + b"\n" + b'{"b": 2}'
    got = list(read_lines(io.BytesIO(body).readline, 50))
    assert got == [(1, b'{"a": 1}\n'), (2, None), (3, b"\n"), (4, b'{"b": 2}')]
    assert list(read_lines(io.BytesIO(b"").readline, 50)) == []
    assert list(read_lines(io.BytesIO(b"y" * 200).readline, 50)) == [(1, None)]  # to the end, no newline
    assert line_limit(1000) > 1000


def _fake_writer(calls):
    def write(drops, times):
        calls.append((list(drops), list(times)))
        return [errors.InvalidRoute("bad route") if d["route"] == "bad route" else {"ok": True} for d in drops]
    return write


def test_importer_batches_counts_and_names_failed_lines():
    calls = []
    imp = Importer(_fake_writer(calls), batch=2, clock=lambda: NOW)
    lines = [_line({"route": "a", "payload": 1}), b"{oops\n", b"\n", _line({"route": "bad route", "payload": 1}),
             _line({"route": "a", "payload": 2, "created_at": "2025-01-01"}), None,
             _line({"route": "a", "payload": 3, "expires_at": "2000-01-01"})]
    for n, raw in enumerate(lines, 1):
        imp.feed(n, raw, 10)
    imp.flush()
    out = imp.result()
    assert [len(d) for d, _ in calls] == [2, 1]  # batches of 2 written lines
    assert calls[1][1] == [parse_time("2025-01-01")]
    assert out == {"ok": True, "lines": 7, "imported": 2, "failed": 3, "expired": 1, "errors_truncated": False,
                   "errors": [{"line": 2, "ok": False, "error": out["errors"][0]["error"], "code": "invalid_line"},
                              {"line": 4, "ok": False, "error": "bad route", "code": "invalid_route"},
                              {"line": 6, "ok": False, "error": out["errors"][2]["error"], "code": "too_large"}]}
    assert "over 10 bytes" in out["errors"][2]["error"]


def test_importer_reports_a_line_once_when_both_its_drops_fail_and_caps_the_list():
    imp = Importer(lambda drops, times: [errors.Forbidden("no")] * len(drops), max_errors=2, clock=lambda: NOW)
    line = _line({"route": "a", "key": "k", "payload": {"c": 1}, "counters": ["c"], "expires_at": "2030-01-01"})
    for n in range(1, 4):
        imp.feed(n, line)
    imp.flush()
    out = imp.result()
    assert out["failed"] == 3 and [e["line"] for e in out["errors"]] == [1, 2] and out["errors_truncated"]


@pytest.mark.parametrize("value, cell", [(None, ""), ("a,b", "a,b"), (True, "true"), (False, "false"), (3, "3"),
                                         (1.5, "1.5"), ({"a": [1, "é"]}, '{"a":[1,"é"]}'), ([], "[]")])
def test_csv_cells(value, cell):
    assert _cell(value) == cell


def test_csv_header_is_the_union_of_fields_and_rows_line_up(engine):
    engine.save("r", {"a": 1, "nested": {"x": [1]}}, key="k1")
    engine.save("r", "plain", key="k2")
    engine.save("r", {"b": "two, with comma", "key": "hidden by the key column"})
    chunks = list(csv_chunks(engine, "r", page=1))
    assert b"" in chunks  # the first pass gives the caller turns
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert rows[0] == ["route", "key", "seq", "created_at", "updated_at", "a", "nested", "value", "b"]
    assert rows[1][:2] == ["r", "k1"] and rows[1][5:] == ["1", '{"x":[1]}', "", ""]
    assert rows[2][1] == "k2" and rows[2][5:] == ["", "", "plain", ""]
    assert rows[3][1] == "" and rows[3][2] == "3" and rows[3][4] == "" and rows[3][5:] == ["", "", "", "two, with comma"]
    assert len(rows) == 4


def test_ndjson_is_one_record_a_line_even_for_what_orjson_refuses(engine):
    engine.save("r", {"big": 2 ** 70, "text": "é\u2028"})
    body = b"".join(ndjson_chunks(engine, "r"))
    assert body.count(b"\n") == 1
    assert json.loads(body)["payload"] == {"big": 2 ** 70, "text": "é\u2028"}


def test_event_lines_from_the_template_equal_the_records(engine):
    from ocean.engine.export import pages
    from ocean.transfer import _line

    for payload in [{"a": 1}, "text", 2 ** 70, [1, {"x": None}], {"é": "\u2028\"quoted\""}, None, 1.5, {}]:
        engine.save("ev", payload)
    engine.save("ev", {"keep": "me"}, keep=3600)
    engine.drop_many([{"route": "ev", "payload": {"old": 1}}], times=[parse_time("2001-02-03T04:05:06.007Z")])
    engine.incr("ev", "k", {"n": 1})
    body = b"".join(ndjson_chunks(engine, "ev", page=4))
    assert body == b"".join(_line(r) for recs in pages(engine, "ev", page=4) for r in recs)
    assert len(body.splitlines()) == 11 and all(json.loads(line) for line in body.splitlines())
