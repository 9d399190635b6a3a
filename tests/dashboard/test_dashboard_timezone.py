"""The dashboard in a server whose ``timezone`` is not UTC: today's figures, the charts and the
accounting keys all follow the server's zone, in real headless Chromium against ``ocean serve``."""
from __future__ import annotations

import datetime
import json
import urllib.request
from zoneinfo import ZoneInfo

import pytest

from serverproc import Server

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def zone_off_utc_date() -> str:
    """A zone whose date differs from UTC's now, by at least an hour's margin either way:
    UTC+14 from 12:00 UTC (its date is already tomorrow), UTC-11 before it (still yesterday)."""
    return "Pacific/Kiritimati" if datetime.datetime.now(datetime.timezone.utc).hour >= 12 else "Pacific/Pago_Pago"


@pytest.fixture(scope="module")
def zoned(tmp_path_factory):
    name = zone_off_utc_date()
    srv = Server(str(tmp_path_factory.mktemp("dashboard-zone") / "data"), timezone=name).start()
    yield srv, name
    srv.stop()


def call(server, method: str, path: str, body: str | None = None):
    req = urllib.request.Request(server.url + path, data=body.encode() if body is not None else None, method=method,
                                 headers={"X-Ocean-Key": server.key, "Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_today_and_the_charts_follow_the_server_zone(zoned, open_page, artifacts):
    server, name = zoned
    local_day = datetime.datetime.now(ZoneInfo(name)).strftime("%Y-%m-%d")
    utc_day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    assert local_day != utc_day
    assert call(server, "GET", "/health")["timezone"] == name

    # the placeholder counts into the zone's day, and the answer names it
    out = call(server, "POST", "/exec", "incr analytics/daily @{day} .page_views")
    assert out == [{"ok": True, "data": {"page_views": 1}, "key": local_day}]

    w = open_page(1280, 800)
    page = w.page
    page.goto(server.url + "/admin")
    page.wait_for_selector("#key-dialog:not([hidden])")
    page.fill("#key-input", server.key)
    page.click("#key-submit")
    page.wait_for_selector('#conn[data-state="live"]', timeout=5000)
    # "today" reads the zone's day: the requests above (and the page's own) show up
    page.wait_for_function("Number(document.querySelector('#stat-requests').textContent.replace(/,/g, '')) >= 2",
                           timeout=6000)
    page.wait_for_function(f"document.querySelector('#chart-daily').textContent.includes('day ({name})')",
                           timeout=4000)
    assert f"hour ({name})" in page.text_content("#chart-hourly")
    assert page.text_content("#today-zone") == name
    page.screenshot(path=str(artifacts / "dashboard-timezone.png"))

    keys = [e["key"] for e in call(server, "GET", "/entities/_admin/daily")["entities"]]
    assert local_day in keys and utc_day not in keys  # the accounting writes the zone's dates
    hours = [e["key"] for e in call(server, "GET", "/entities/_admin/hourly")["entities"]]
    assert all(h.startswith(local_day) for h in hours)
    assert not w.page_errors and not w.console_errors, (w.page_errors, w.console_errors)
