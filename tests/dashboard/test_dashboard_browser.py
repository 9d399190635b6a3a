"""The admin dashboard and the tutorial's example dashboard in real headless Chromium, against ``ocean serve``.

Screenshots land in ``test-artifacts/dashboard/``.
"""
from __future__ import annotations

import datetime
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from ocean.keys import KeyStore
from serverproc import Server

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def call(server, method: str, path: str, body: str | None = None, key: str | None = None):
    """One HTTP request to the server; ``(status, parsed JSON or text)``."""
    req = urllib.request.Request(server.url + path, data=body.encode() if body is not None else None, method=method,
                                 headers={"X-Ocean-Key": key or server.key, "Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def connect(w, server, key=None, expect_state="live"):
    """Open /admin, enter the key in the prompt, wait until the live stream is in ``expect_state``."""
    page = w.page
    page.goto(server.url + "/admin")
    page.wait_for_selector("#key-dialog:not([hidden])")
    page.fill("#key-input", key or server.key)
    page.click("#key-submit")
    if expect_state:
        page.wait_for_selector(f'#conn[data-state="{expect_state}"]', timeout=5000)


def number(page, selector) -> int:
    text = page.text_content(selector) or ""
    digits = text.replace(",", "").strip()
    return int(digits) if digits.isdigit() else -1


def test_counts_show_rise_live_and_the_feed_is_prompt(server, open_page, artifacts):
    w = open_page(1280, 800)
    connect(w, server)
    page = w.page
    # the page's own requests are counted too: the count shows up without any action
    page.wait_for_function("Number(document.querySelector('#stat-requests').textContent.replace(/,/g, '')) >= 1",
                           timeout=4000)
    before = number(page, "#stat-requests")

    for _ in range(5):
        assert call(server, "POST", "/exec", f"incr analytics/daily @{today()} .page_views")[0] == 200
    # accounting writes once a second; the increments arrive over SSE, not by polling
    page.wait_for_function(f"Number(document.querySelector('#stat-requests').textContent.replace(/,/g, '')) >= {before + 5}",
                           timeout=4000)

    marker = f"/entity/feedcheck/k{time.time_ns()}"
    t0 = time.monotonic()
    assert call(server, "GET", marker)[0] == 404
    page.wait_for_selector(f'#feed .path:text-is("{marker}")', timeout=2000)
    assert time.monotonic() - t0 < 2.0
    row = page.locator("#feed .feed-row").first
    assert row.locator(".status").text_content() == "404"

    page.wait_for_function("document.querySelector('#stat-p95').textContent.includes('ms')")
    # p50/p95 of the whole day, from the dist field ms of _admin/daily (flushed each second)
    page.wait_for_function("document.querySelector('#stat-p95-note').textContent === 'today'", timeout=4000)
    assert "today" in page.text_content("#stat-pwindow")
    assert number(page, "#stat-errors") >= 0
    page.wait_for_selector("#endpoints-body tr >> text=/exec")
    page.wait_for_selector("#status-list .status-row.s4xx")
    page.wait_for_function("document.querySelector('#stat-entities').textContent.trim() !== '—'")
    assert page.locator("#chart-hourly canvas").count() == 1 and page.locator("#chart-daily canvas").count() == 1

    # no polling: while nothing happens, the page asks the server for no counters
    time.sleep(0.3)
    seen = len(w.requests)
    time.sleep(2.0)
    idle = [u for u in w.requests[seen:] if "/entities/" in u or "/entity/" in u]
    assert idle == [], idle

    page.screenshot(path=str(artifacts / "admin-live-1280x800.png"), full_page=True)
    assert w.page_errors == [] and w.console_errors == [], (w.page_errors, w.console_errors)


def test_editor_runs_a_script_marks_the_error_and_completes(server, open_page, artifacts):
    w = open_page(1280, 800)
    connect(w, server)
    page = w.page
    script = (f"incr analytics/daily @{today()} .page_views 2\n"
              "-- a comment gives no result\n"
              f"read analytics/daily @{today()}\n"
              f"get analytics/daily @{today()} junk (\n"
              "find analytics/daily limit 3")
    page.fill("#drops-input", script)
    page.click("#drops-run")
    page.wait_for_selector("#drops-results .result >> nth=3")
    results = page.locator("#drops-results .result")
    assert results.count() == 4
    assert [results.nth(i).get_attribute("class") for i in range(4)] == ["result ok", "result ok", "result err", "result ok"]
    assert "line 1" in results.nth(0).text_content() and "line 3" in results.nth(1).text_content()
    err = results.nth(2)
    assert "line 4, col 33" in err.text_content() and "parse_error" in err.text_content()

    # the error is painted at its line (gutter) and its column (a mark under the character)
    assert "err" in page.locator("#drops-gutter .ln").nth(3).get_attribute("class")
    mark = page.locator("#drops-backdrop .bl.err mark")
    assert mark.count() == 1 and mark.text_content() == "j"
    box, area = mark.bounding_box(), page.locator("#drops-input").bounding_box()
    char_w = page.evaluate("""() => { const s = document.createElement('span'); s.textContent = 'M'.repeat(40);
        document.querySelector('#drops-backdrop').append(s); const w = s.getBoundingClientRect().width / 40; s.remove(); return w; }""")
    assert abs(box["x"] - (area["x"] + 10 + 32 * char_w)) < 2
    assert abs(box["y"] - (area["y"] + 10 + 3 * 20)) < 3

    # clicking the location puts the caret there
    err.locator("button.loc").click()
    assert page.evaluate("document.querySelector('#drops-input').selectionStart") == script.index("junk")

    # completion and help come from the command declarations (via `help`)
    page.wait_for_function("document.querySelector('#drops-help').children.length > 5")
    page.fill("#drops-input", "")
    page.type("#drops-input", "inc")
    page.wait_for_selector("#drops-complete:not([hidden]) li >> text=incr")
    page.keyboard.press("Tab")
    assert page.input_value("#drops-input") == "incr "
    assert "incr ROUTE @KEY" in page.text_content("#drops-hint")
    page.type("#drops-input", "x @y .z\nfind analytics/daily so")
    page.wait_for_selector("#drops-complete:not([hidden]) li >> text=sort")
    page.keyboard.press("Escape")
    assert page.locator("#drops-history option").count() >= 2  # the script above is in the history
    page.screenshot(path=str(artifacts / "editor-1280x800.png"), full_page=True)
    assert w.page_errors == [] and w.console_errors == [], (w.page_errors, w.console_errors)


def test_a_quick_return_to_the_editor_keeps_its_completions_open(server, open_page):
    # A result's location button blurs the editor and gives it the focus back; the blur's
    # delayed close once shut the completions typed right after (a flaky CI run showed it).
    w = open_page(1280, 800)
    connect(w, server)
    page = w.page
    page.wait_for_function("document.querySelector('#drops-help').children.length > 5")
    page.fill("#drops-input", "")
    page.evaluate("""() => { const ta = document.querySelector('#drops-input');
        ta.focus(); document.querySelector('#drops-run').focus(); ta.focus(); }""")
    page.keyboard.type("inc")
    page.wait_for_selector("#drops-complete:not([hidden]) li >> text=incr")
    page.wait_for_timeout(400)  # past the blur's 150 ms close
    assert page.locator("#drops-complete").is_visible()
    page.keyboard.press("Tab")
    assert page.input_value("#drops-input") == "incr "


def test_a_read_only_admin_key_watches_and_the_editor_says_it_may_not_write(server, open_page, artifacts):
    token, _ = KeyStore(server.data).create(name="dash-ro", read=["_admin/*"])
    w = open_page(1280, 800)
    connect(w, server, key=token)
    page = w.page
    call(server, "POST", "/exec", f"incr analytics/daily @{today()} .page_views")
    page.wait_for_function("Number(document.querySelector('#stat-requests').textContent.replace(/,/g, '')) > 0")
    page.fill("#drops-input", f"read _admin/daily @{today()}\nincr analytics/daily @{today()} .page_views")
    page.click("#drops-run")
    page.wait_for_selector("#drops-results .result.forbidden")
    assert page.locator("#drops-results .result.ok").count() == 1
    assert "NOT ALLOWED" in page.text_content("#drops-results .result.forbidden .badge")
    note = page.text_content("#editor-access")
    assert page.is_visible("#editor-access") and "may not write" in note and "may not read" not in note, note
    assert "forbidden" in page.get_attribute("#drops-gutter .ln >> nth=1", "class")
    page.screenshot(path=str(artifacts / "read-only-key.png"), full_page=True)
    assert w.page_errors == [] and w.console_errors == [], (w.page_errors, w.console_errors)


def test_the_editor_says_read_when_a_read_was_refused_and_write_when_a_write_was(server, open_page, artifacts):
    """The note over the editor names what the server refused, never "reads still work" after a refused read."""
    token, _ = KeyStore(server.data).create(name="dash-admin-only", read=["_admin/*"])
    call(server, "POST", "/exec", f"incr analytics/daily @{today()} .page_views")
    w = open_page(1280, 800)
    connect(w, server, key=token)
    page = w.page
    page.wait_for_function("document.querySelector('#drops-help .help-item') !== null")  # declarations loaded
    runs = [
        (f"read analytics/daily @{today()}", ["may not read", "'analytics/daily'"], ["write", "still work"]),
        ("analytics/daily", ["may not read"], ["write"]),  # a bare route reads
        ("sql `SELECT * FROM \"analytics/daily\"`", ["may not read"], ["write"]),
        (f"incr analytics/daily @{today()} .page_views", ["may not write"], ["may not read"]),
        (f"incr analytics/daily @{today()} .page_views\nfind analytics/*", ["may not write", "may not read"], []),
        (f"read _admin/daily @{today()}", [], []),  # allowed: the note goes away
    ]
    for script, says, never in runs:
        page.fill("#drops-input", script)
        page.evaluate("document.querySelector('#drops-results').replaceChildren()")
        page.click("#drops-run")
        page.wait_for_function("document.querySelector('#drops-results .summary') && "
                               "!document.querySelector('#drops-results').hasAttribute('aria-busy')")
        note = page.text_content("#editor-access") if page.is_visible("#editor-access") else ""
        for text in says:
            assert text in note, (script, note)
        for text in never:
            assert text not in note, (script, note)
        if not says:
            assert not page.is_visible("#editor-access"), (script, note)
    page.screenshot(path=str(artifacts / "read-refused.png"), full_page=True)
    assert w.page_errors == [] and w.console_errors == [], (w.page_errors, w.console_errors)


@pytest.mark.parametrize("width,height", [(1280, 800), (390, 844)])
def test_layout_has_no_overlap_or_cut_off_panels(server, open_page, artifacts, width, height):
    w = open_page(width, height)
    connect(w, server)
    page = w.page
    page.fill("#drops-input", f"read analytics/daily @{today()}\nfind analytics/daily\nget nothing @here")
    page.click("#drops-run")
    page.wait_for_selector("#drops-results .result >> nth=2")
    page.wait_for_function("document.querySelector('#stat-entities').textContent.trim() !== '—'")
    boxes = page.evaluate("""() => [...document.querySelectorAll('header.topbar, main > section.panel')].map(e => {
        const r = e.getBoundingClientRect();
        return {name: e.dataset.panel || 'topbar', x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height,
                overflow: e.scrollWidth - e.clientWidth};
    })""")
    view_w = page.evaluate("document.documentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= view_w
    assert len(boxes) == 9
    for b in boxes:
        assert b["w"] > 0 and b["h"] > 0, b
        assert b["x"] >= 0 and b["x"] + b["w"] <= view_w + 0.5, (b, view_w)
        assert b["overflow"] <= 1, b
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            dx = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
            dy = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
            assert dx <= 0.5 or dy <= 0.5, (a, b)
    # text that matters is not clipped
    for sel in ["#stat-requests", "#stat-avg", "#stat-p95", "#stat-log", "#stat-uptime"]:
        assert page.evaluate(f"(e => e.scrollWidth <= e.clientWidth + 1)(document.querySelector('{sel}'))"), sel
    page.screenshot(path=str(artifacts / f"layout-{width}x{height}.png"), full_page=True)
    assert w.page_errors == [] and w.console_errors == [], (w.page_errors, w.console_errors)


def test_the_tutorial_dashboard_works_from_another_origin(server, open_page, other_origin, artifacts):
    day = "2026-02-10"
    for _ in range(3):
        status, answer = call(server, "POST", "/exec", f"incr analytics/daily @{day} .page_views")
    views = answer[0]["data"]["page_views"]
    token, _ = KeyStore(server.data).create(name="example-ro", read=["analytics/*"])
    w = open_page(1280, 800)
    q = urllib.parse.urlencode({"server": server.url, "key": token, "date": day})
    w.page.goto(f"{other_origin}/dashboard.html?{q}")
    w.page.wait_for_function(f"document.querySelector('#views').textContent === '{views}'", timeout=5000)
    time.sleep(0.3)  # both streams open
    call(server, "POST", "/exec", 'write analytics/events { method: "POST", path: "/drop", status: 200 }\n'
                                  f"incr analytics/daily @{day} .page_views")
    w.page.wait_for_selector("#feed li >> text=/drop", timeout=2000)
    w.page.wait_for_function(f"document.querySelector('#views').textContent === '{views + 1}'", timeout=2000)
    # unique visitors and p95 latency: a uniq and a dist field beside the counter, live too
    for visitor, ms in (("u-1", 10), ("u-2", 20), ("u-1", 400)):
        server.post_json("/drop", {"route": "analytics/daily", "key": day,
                                   "payload": {"+page_views": 1, "~visitors": visitor, "%ms": ms}})
    w.page.wait_for_function("document.querySelector('#visitors').textContent === '2'", timeout=2000)
    w.page.wait_for_function("document.querySelector('#p95').textContent.endsWith(' ms')", timeout=2000)
    p95 = float(w.page.text_content("#p95").split()[0])
    assert abs(p95 - 20) <= 0.2  # rank 0.95 * (3 - 1) rounded down of 10, 20, 400: the 20, within 1%
    w.page.reload()
    w.page.wait_for_function("document.querySelector('#visitors').textContent === '2'", timeout=5000)
    w.page.screenshot(path=str(artifacts / "example-dashboard.png"))
    assert w.page_errors == [] and w.console_errors == [], (w.page_errors, w.console_errors)


def test_wrong_key_restart_and_dropped_stream_are_explained_and_recovered(tmp_path, open_page, artifacts):
    srv = Server(str(tmp_path / "data")).start()
    try:
        w = open_page(1280, 800)
        page = w.page
        connect(w, srv, key="not-a-key", expect_state=None)
        page.wait_for_function("document.querySelector('#key-error').textContent.includes('rejected')")
        assert page.is_visible("#key-dialog")
        page.fill("#key-input", srv.key)
        page.click("#key-submit")
        page.wait_for_selector('#conn[data-state="live"]', timeout=5000)

        srv.stop()  # SIGTERM: streams end, the port closes
        page.wait_for_selector('#conn[data-state="reconnecting"]', timeout=5000)
        page.wait_for_function("/reconnect/i.test(document.querySelector('#notice-text').textContent)"
                               " && !document.querySelector('#notice').hidden", timeout=3000)
        page.screenshot(path=str(artifacts / "server-down.png"))

        srv = Server(srv.data, port=srv.port).start()  # same port, same data: a restart
        page.wait_for_selector('#conn[data-state="live"]', timeout=15000)
        # the page says it is back ("Reconnected", "restarted", or "missed" when the resume point was lost)
        page.wait_for_function("/Reconnected|restarted|missed/.test(document.querySelector('#notice-text').textContent)")
        call(srv, "GET", "/health")
        page.wait_for_selector('#feed .path:text-is("/health")', timeout=3000)
        # a revoked key ends the stream: the page says so and asks for another key
        token, rec = KeyStore(srv.data).create(name="short-lived", read=["_admin/*"])
        page.click("#key-button")
        page.fill("#key-input", token)
        page.click("#key-submit")
        page.wait_for_selector('#conn[data-state="live"]', timeout=5000)
        KeyStore(srv.data).revoke(rec["id"])
        page.wait_for_selector("#key-dialog:not([hidden])", timeout=12000)
        assert "rejected" in page.text_content("#key-error")
        assert w.page_errors == [], w.page_errors
    finally:
        srv.stop()
