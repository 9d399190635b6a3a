"""``GET /admin``: the dashboard's page (its other files are a falcon static route); ``GET /ocean.js``."""
from __future__ import annotations

import os

from ...errors import NotFound


class Index:
    """Serve ``static/index.html``; needs no key (the page asks for one)."""

    def __init__(self, static_dir: str):
        self.path = os.path.join(static_dir, "index.html")

    def on_get(self, req, resp):
        if not os.path.isfile(self.path):
            raise NotFound("the admin dashboard is not installed in this build")
        resp.content_type = "text/html; charset=utf-8"
        resp.cache_control = ["no-cache"]
        with open(self.path, "rb") as f:
            resp.data = f.read()


class Script:
    """Serve ``static/js/ocean.js`` at ``/ocean.js``: the public browser client; needs no key."""

    def __init__(self, static_dir: str):
        self.path = os.path.join(static_dir, "js", "ocean.js")

    def on_get(self, req, resp):
        if not os.path.isfile(self.path):
            raise NotFound("the browser client ocean.js is not installed in this build")
        resp.content_type = "text/javascript; charset=utf-8"
        resp.cache_control = ["no-cache"]
        with open(self.path, "rb") as f:
            resp.data = f.read()
