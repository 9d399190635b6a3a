"""``POST /exec`` (Drops) and ``POST /sql``: text/plain or JSON ``{"query": ...}``."""
from __future__ import annotations

from ...drops import run as run_drops
from ...sql import query as run_sql
from .. import auth, body


class Exec:
    """Run a Drops script; 200 with one result object per command."""

    def __init__(self, svc):
        self.svc = svc

    def on_post(self, req, resp):
        access = auth.require(req, self.svc.keys)
        text = body.read_query(req, self.svc.settings.max_body_bytes)
        if "sql" in text.lower():  # only a script with a sql command reads the columns
            _catch_up(self.svc.engine)
        resp.data = body.dumps(run_drops(self.svc.engine, text, access=access, settings=self.svc.settings))


class Sql:
    """Run one SQL query; ``{ok, columns, rows}``."""

    def __init__(self, svc):
        self.svc = svc

    def on_post(self, req, resp):
        access = auth.require(req, self.svc.keys)
        text = body.read_query(req, self.svc.settings.max_body_bytes)
        _catch_up(self.svc.engine)
        result = run_sql(self.svc.engine, text, access=access, settings=self.svc.settings)
        resp.media = as_answer(result)


def _catch_up(engine) -> None:
    """Redis mode: the SQL columns take in what other nodes wrote up to now (read your writes)."""
    catch_up = getattr(engine, "catch_up", None)
    if catch_up is not None:
        catch_up()


def as_answer(result) -> dict:
    """``{ok, columns, rows}`` from what ``ocean.sql.query`` returns (a dict or an object)."""
    if isinstance(result, dict):
        return {"ok": True, **result}
    return {"ok": True, "columns": list(result.columns), "rows": list(result.rows)}
