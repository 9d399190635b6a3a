"""The dashboard's backup panel in headless Chromium against a real ``ocean serve``: the button makes a backup."""
from __future__ import annotations

import os

import pytest

from ocean.engine import backup
from ocean.keys import KeyStore

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _connect(w, server, key):
    page = w.page
    page.goto(server.url + "/admin")
    page.wait_for_selector("#key-dialog:not([hidden])")
    page.fill("#key-input", key)
    page.click("#key-submit")
    page.wait_for_selector('#conn[data-state="live"]', timeout=5000)
    return page


def test_the_button_makes_a_backup_and_the_panel_shows_it(server, open_page, artifacts):
    w = open_page(1280, 800)
    page = _connect(w, server, server.key)
    page.wait_for_function("document.querySelector('#stat-seq').textContent.trim() !== '—'")
    assert page.text_content("#backup-when") == "none yet"
    page.click("#backup-run")
    page.wait_for_function("document.querySelector('#backup-where').textContent.includes('-backups/ocean-')",
                           timeout=15000)
    path = page.text_content("#backup-where").strip()
    assert os.path.dirname(path) == os.path.abspath(server.data) + "-backups"
    doc = backup.verify(path)  # a whole backup on disk, every checksum good
    assert f"seq {doc['seq']:,}" in page.text_content("#backup-meta")
    assert "UTC" in page.text_content("#backup-when")
    assert "Backup written" in page.text_content("#notice-text")
    assert page.is_enabled("#backup-run") and page.text_content("#backup-run") == "Back up now"
    page.screenshot(path=str(artifacts / "admin-backup-1280x800.png"), full_page=True)
    assert w.page_errors == [] and w.console_errors == [], (w.page_errors, w.console_errors)


def test_a_key_that_is_not_admin_is_told_so(server, open_page):
    token, _ = KeyStore(server.data, environ={}).create(name="watcher", read=["_admin/*"])
    w = open_page(1280, 800)
    page = _connect(w, server, token)
    page.click("#backup-run")
    page.wait_for_function("document.querySelector('#notice-text').textContent.includes('admin key')", timeout=10000)
    assert page.is_enabled("#backup-run")
    # console errors here are the browser's own 403 lines for the refused requests
    assert w.page_errors == [], w.page_errors
