"""The public browser client ``/ocean.js`` in real headless Chromium, against ``ocean serve``.

Each page is the server's own ``/health`` (same origin), where ``import('/ocean.js')``
loads the module exactly as a user's page would; ``examples/dashboard.html`` uses it
from another origin (``test_dashboard_browser.py``).
"""
from __future__ import annotations

import time

import pytest

from ocean.keys import KeyStore
from serverproc import Server

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SETUP = """async ([key, prefix, opts]) => {
    const { Ocean } = await import('/ocean.js');
    window.got = []; window.gaps = []; window.errs = []; window.states = [];
    window.feed = new Ocean({ key }).live(prefix, (d, id) => got.push([d.n, id]), {
        ...opts,
        onGap: (g) => gaps.push(g),
        onError: (e) => errs.push([e.code, e.status, e.fatal, e instanceof Error]),
        onState: (s) => states.push(s),
    });
}"""


def open_on(w, srv):
    w.page.goto(srv.url + "/health")
    return w.page


def wait(page, expr: str, timeout: float = 10000):
    page.wait_for_function(expr, timeout=timeout)


def test_calls_answer_and_errors_are_typed(server, open_page):
    w = open_page()
    page = open_on(w, server)
    out = page.evaluate("""async (key) => {
        const { Ocean, OceanError } = await import('/ocean.js');
        const o = new Ocean({ key });
        const out = {};
        const caught = async (p) => { try { await p; return null; } catch (e) {
            return { ok: e instanceof OceanError, code: e.code, status: e.status, line: e.line, column: e.column }; } };
        out.incr = await o.incr('js/daily', '2026-02-10', 'page_views', { 'POST /drop': 2 });
        out.incr2 = await o.incr('js/daily', '2026-02-10', { page_views: 2 });
        out.read = await o.read('js/daily', '2026-02-10');
        out.entity = (await o.entity('js/daily', '2026-02-10')).key;
        const rows = await o.sql('SELECT key AS date, page_views FROM "js/daily" ORDER BY key DESC LIMIT 7');
        out.rows = rows; out.columns = rows.columns;
        out.exec = await o.exec('read js/daily @2026-02-10\\nget js/daily @nope\\nincr js/daily @2026-02-10 .n');
        out.save = await o.save('js/users', 'alice', { name: 'Alice' });
        out.user = await o.read('js/users', 'alice');
        out.event = await o.drop('js/events', { method: 'POST', path: '/drop', status: 200 });
        out.notFound = await caught(o.read('js/daily', 'nope'));
        out.parse = await caught(o.sql('SELECT key FROM\\n  WHERE'));
        out.check = await caught(o.exec('read js/daily @2026-02-10\\nget js/daily @x junk (', { check: true }));
        out.unauthorized = await caught(new Ocean({ key: 'not-a-key' }).read('js/daily', '2026-02-10'));
        out.nokey = await caught(new Ocean().sql('SELECT 1'));
        out.badKey = await caught(o.incr('js/daily', 'x\\nremove js/users @alice', 'n'));
        out.badAmount = await caught(o.incr('js/daily', 'k', { n: NaN }));
        out.unreachable = await caught(new Ocean({ url: 'http://127.0.0.1:9', key }).read('js/daily', 'k'));
        out.uniq = await o.uniq('js/daily', '2026-02-11', { visitors: ['u-1', 'u-2', 'u-1'], 'a b': 'x' });
        out.observe = await o.observe('js/daily', '2026-02-11', { ms: [12.5, 40] });
        out.sketchMix = await caught(o.observe('js/daily', '2026-02-11', { visitors: 1 }));
        return out;
    }""", server.key)
    assert out["incr"] == {"page_views": 1, "POST /drop": 2} and out["incr2"] == {"page_views": 3}
    assert out["uniq"] == {"visitors": 2, "a b": 1} and out["observe"]["ms"]["count"] == 2
    assert out["sketchMix"]["code"] == "not_a_sketch"
    assert out["read"] == {"page_views": 3, "POST /drop": 2} and out["entity"] == "2026-02-10"
    assert out["rows"] == [{"date": "2026-02-10", "page_views": 3}] and out["columns"] == ["date", "page_views"]
    assert [r["ok"] for r in out["exec"]] == [True, False, True]
    assert out["exec"][1]["code"] == "not_found" and out["exec"][2]["data"] == {"n": 1}
    assert out["save"]["key"] == "alice" and out["user"] == {"name": "Alice"}
    assert out["event"]["key"] is None and out["event"]["seq"] > 0
    assert out["notFound"] == {"ok": True, "code": "not_found", "status": 404, "line": None, "column": None}
    assert out["parse"]["code"] == "parse_error" and (out["parse"]["line"], out["parse"]["column"]) == (2, 3)
    assert out["check"]["code"] == "parse_error" and out["check"]["line"] == 2
    assert out["unauthorized"]["code"] == "unauthorized" and out["unauthorized"]["status"] == 401
    assert out["nokey"]["code"] == "unauthorized"
    assert out["badKey"]["code"] == "invalid_key" and out["badAmount"]["code"] == "invalid_amount"
    assert out["unreachable"]["code"] == "unreachable" and out["unreachable"]["status"] == 0
    assert server.get_json("/entity/js/users/alice")["payload"] == {"name": "Alice"}
    assert w.page_errors == [], w.page_errors


def test_live_messages_arrive_and_resume_after_a_restart(tmp_path, open_page):
    # accounting off: its writes just before the stop would put the resume point behind the
    # restarted server's replay history, which it rightly reports as a gap (no loss either way)
    srv = Server(str(tmp_path / "data"), accounting=False).start()
    try:
        w = open_page()
        page = open_on(w, srv)
        page.evaluate(SETUP, [srv.key, "rs/*", {}])
        wait(page, "window.feed.state === 'live'")
        srv.post_json("/drop", [{"route": "rs/events", "payload": {"n": i}} for i in range(10)])
        wait(page, "window.got.length === 10")

        srv.stop()  # SIGTERM: `event: end`, then the port closes
        wait(page, "window.feed.state === 'reconnecting'")
        srv = Server(srv.data, port=srv.port, accounting=False).start()  # same data, same port
        for i in range(10, 20):  # written before the page is back: replayed on resume
            srv.post_json("/drop", {"route": "rs/events", "payload": {"n": i}})
        wait(page, "window.got.length >= 20", timeout=20000)
        time.sleep(0.5)  # a duplicate would arrive now
        got = page.evaluate("window.got")
        assert [n for n, _ in got] == list(range(20))
        ids = [int(i) for _, i in got]
        assert ids == sorted(set(ids))
        assert page.evaluate("window.gaps") == [] and page.evaluate("window.errs") == []
        assert page.evaluate("window.feed.state") == "live"
        page.evaluate("window.feed.close()")
        assert w.page_errors == [], w.page_errors
    finally:
        srv.stop()


def test_a_gap_is_reported_when_the_resume_point_is_too_old(tmp_path, open_page):
    srv = Server(str(tmp_path / "data"), replay_history=5, accounting=False).start()
    try:
        answers = srv.post_json("/drop", [{"route": "gap/events", "payload": {"n": i}} for i in range(20)])
        w = open_page()
        page = open_on(w, srv)
        page.evaluate(SETUP, [srv.key, "gap/*", {"lastEventId": str(answers[0]["seq"])}])
        wait(page, "window.got.length === 5")
        assert [n for n, _ in page.evaluate("window.got")] == list(range(15, 20))
        gaps = page.evaluate("window.gaps")
        assert len(gaps) == 1 and "missed" in gaps[0]["reason"]
        page.evaluate("window.feed.close()")
    finally:
        srv.stop()


def test_invalid_revoked_and_forbidden_keys_are_auth_failures(server, open_page):
    w = open_page()
    page = open_on(w, server)
    page.evaluate(SETUP, ["not-a-key", "auth/*", {}])
    wait(page, "window.errs.length === 1")
    assert page.evaluate("window.errs") == [["unauthorized", 401, True, True]]
    assert page.evaluate("window.feed.state") == "key rejected"

    other, _ = KeyStore(server.data).create(name="js-other", read=["elsewhere/*"])
    page.evaluate(SETUP, [other, "auth/*", {}])
    wait(page, "window.errs.length === 1")
    assert page.evaluate("window.errs") == [["forbidden", 403, True, True]]
    assert page.evaluate("window.feed.state") == "not allowed"

    token, rec = KeyStore(server.data).create(name="js-revoked", read=["auth/*"])
    page.evaluate(SETUP, [token, "auth/*", {}])
    wait(page, "window.feed.state === 'live'")
    server.post_json("/drop", {"route": "auth/events", "payload": {"n": 1}})
    wait(page, "window.got.length === 1")
    KeyStore(server.data).revoke(rec["id"])  # open streams of a revoked key end within a second
    wait(page, "window.errs.length === 1", timeout=8000)
    assert page.evaluate("window.errs") == [["unauthorized", 401, True, True]]
    assert page.evaluate("window.feed.state") == "key rejected"
    assert w.page_errors == [], w.page_errors


def _doc_blocks(lang: str) -> list[str]:
    import pathlib
    import re
    doc = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "clients.md").read_text(encoding="utf-8")
    return re.findall(rf"```{lang}\n(.*?)```", doc, re.S)


def wait_streams(srv, n: int, timeout: float = 10.0) -> None:
    """Until the server holds ``n`` open streams (its /health says)."""
    deadline = time.monotonic() + timeout
    while srv.get_json("/health")["sse_clients"] < n:
        assert time.monotonic() < deadline, f"fewer than {n} streams open after {timeout} s"
        time.sleep(0.05)


def _on(srv, text: str) -> str:
    return text.replace("http://127.0.0.1:8080", srv.url).replace("YOUR_KEY", srv.key)


def test_the_docs_javascript_snippets_run(tmp_path, open_page):
    """docs/clients.md's JavaScript, as written (the server's URL and key filled in)."""
    srv = Server(str(tmp_path / "data")).start()
    try:
        setup, *tutorial = _doc_blocks("js")
        assert "new Ocean(" in setup and len(tutorial) == 5
        w = open_page()
        page = open_on(w, srv)
        prelude = "window.fed = []; const addToLiveFeed = (event) => fed.push(event);\n"
        page.add_script_tag(type="module", content=_on(srv, setup) + "\n" + prelude + "\n".join(tutorial)
                            + "\nwindow.out = { counts, week: [...week], columns: week.columns };")
        wait(page, "window.out !== undefined")
        out = page.evaluate("window.out")
        assert out["counts"] == {"page_views": 1, "requests": 1}
        assert out["week"] == [{"date": "2026-02-10", "page_views": 1, "requests": 1}]
        assert out["columns"] == ["date", "page_views", "requests"]
        assert srv.get_json("/entity/analytics/endpoints/2026-02-10")["payload"] == {"POST /drop": 1,
                                                                                    "GET /entity/*": 1}
        wait_streams(srv, 1)  # the snippet's live feed is open
        srv.post_json("/drop", {"route": "analytics/events", "payload": {"method": "GET", "path": "/x", "status": 404}})
        wait(page, "window.fed.length === 1")
        assert page.evaluate("window.fed[0].path") == "/x"

        (html,) = _doc_blocks("html")
        markup, script = html.split('<script type="module">')
        dash = open_page()
        page = open_on(dash, srv)
        page.evaluate("(m) => { document.body.innerHTML = m; }", markup)
        page.add_script_tag(type="module", content=_on(srv, script.split("</script>")[0]))
        wait(page, "document.querySelector('#views').textContent === '1'")
        wait_streams(srv, 2)  # and the dashboard's
        srv.post_json("/drop", {"route": "analytics/events", "payload": {"method": "POST", "path": "/drop", "status": 200}})
        wait(page, "document.querySelector('#feed li') !== null")
        assert page.text_content("#feed li") == "POST /drop 200"
        assert w.page_errors == [] and dash.page_errors == [], (w.page_errors, dash.page_errors)
    finally:
        srv.stop()
