"""Response encoding (``web.body.dumps``): orjson where it agrees with the stdlib, the stdlib elsewhere."""
import json

import pytest

from ocean.web.body import dumps


def _stdlib(doc) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")  # what falcon's JSON handler sent before


@pytest.mark.parametrize("doc", [
    [{"ok": True, "data": {"page_views": 4522}}],
    {"ok": False, "error": "é \u2028 \"quoted\" \\ </script>", "code": "x", "line": 1, "column": 2},
    {"n": [0, -1, 2 ** 63 - 1, -(2 ** 63), 2 ** 64 - 1, 0.1, 1e16, 5e-324, -0.0, None, True]},
    {"emoji": "\U0001f600", "nested": [[[{"a": []}]]], "empty": {}},
])
def test_the_same_json_as_the_stdlib(doc):
    assert json.loads(dumps(doc)) == json.loads(_stdlib(doc))


@pytest.mark.parametrize("doc", [
    {1: "int key"}, {"big": 2 ** 70}, {"lone": "\ud800"}, [json.loads("[" * 300 + "]" * 300)],  # 300 deep: over orjson's 254
])
def test_what_orjson_refuses_is_the_stdlibs_bytes_or_error(doc):
    try:
        expected = _stdlib(doc)
    except UnicodeEncodeError:  # a lone surrogate: the stdlib's error, as before
        with pytest.raises(UnicodeEncodeError):
            dumps(doc)
        return
    assert dumps(doc) == expected


def test_unserializable_values_fail_as_with_the_stdlib():
    with pytest.raises(TypeError):
        dumps({"x": object()})
    with pytest.raises(TypeError):
        dumps({"x": {1, 2}})


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_a_form_body_to_exec_is_the_text_a_query_field_or_a_clear_error(web):
    """What curl sends: -d 'TEXT' (form type, text as is), --data-urlencode query@file, --data-urlencode 'TEXT'."""
    import urllib.parse

    r = web.client.simulate_post("/exec", body="incr a @k .n", headers=FORM)  # curl -d 'incr a @k .n'
    assert r.status_code == 200 and r.json == [{"ok": True, "data": {"n": 1}}]
    script = "incr a @k .n 2\nget a @k\n"  # newlines kept: a form field is encoded, not stripped
    r = web.client.simulate_post("/exec", body=urllib.parse.urlencode({"query": script}), headers=FORM)
    assert r.status_code == 200 and [x["data"] for x in r.json] == [{"n": 3}, {"n": 3}], r.json
    r = web.client.simulate_post("/sql", body=urllib.parse.urlencode({"query": 'SELECT n FROM "a"'}), headers=FORM)
    assert r.status_code == 200 and r.json["rows"] == [{"n": 3}], r.json
    r = web.client.simulate_post("/exec", body=urllib.parse.quote(script), headers=FORM)  # --data-urlencode 'TEXT'
    assert r.status_code == 400 and r.json["code"] == "bad_request"
    assert "--data-binary" in r.json["error"] and "text/plain" in r.json["error"]
    r = web.client.simulate_post("/exec", body="help+incr", headers=FORM)  # what curl makes of 'help incr'
    assert r.status_code == 400 and r.json["code"] == "bad_request"
    r = web.client.simulate_post("/exec", body="query=a&query=b", headers=FORM)
    assert r.status_code == 400 and "query=" in r.json["error"]
