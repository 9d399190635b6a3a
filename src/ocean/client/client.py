"""``Client``: ocean's HTTP API as Python calls, on one keep-alive connection.

Every call is one request on the client's persistent connection (see
``transport``); an error answer raises the catalog's class for its ``code``
(``NotFound``, ``Unauthorized``, ``ParseError`` with ``line``/``column``...),
and a call that got no answer raises ``Unreachable`` or ``ClientTimeout``.
Calls that run several things -- ``exec`` (a Drops script) and ``drops``
(a batch) -- answer one ``Result`` per item, because the server runs the items
after a failed one too; ``check=True`` raises the first failure instead.

``incr`` is sent as a Drops ``incr`` line: that is the call that answers the
new totals. Its route and key are checked here (the same checks and
messages as the server's) so that no text can reach the script but a route,
a key, quoted field names and numbers.
"""
from __future__ import annotations

import json
import math
import os
import urllib.parse

from ..errors import InvalidAmount, InvalidField, from_wire
from ..model import check_key, check_route
from .stream import Stream
from .transport import Connection, Reply, split_url

DEFAULT_URL = "http://127.0.0.1:8080"
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"


class Result:
    """The outcome of one command of a script, or one drop of a batch.

    ``ok``; ``data`` (the command's answer; for a drop, its ``{drop_id, seq, ...}``);
    ``columns`` (for ``sql`` lines); ``error`` (the typed error when not ok, with
    its ``code`` and, for parse errors, ``line``/``column``).
    """

    __slots__ = ("ok", "data", "columns", "error", "raw")

    def __init__(self, raw: dict, data_key: str | None = "data"):
        self.raw = raw
        self.ok = bool(raw.get("ok"))
        self.data = (raw.get(data_key) if data_key else {k: v for k, v in raw.items() if k != "ok"}) \
            if self.ok else None
        self.columns = raw.get("columns")
        self.error = None if self.ok else from_wire(raw)

    @property
    def value(self):
        """``data``, or the typed error raised."""
        if self.error is not None:
            raise self.error
        return self.data

    def __repr__(self) -> str:
        return f"Result(ok, {self.data!r})" if self.ok else f"Result(error, {self.error.code}: {self.error.message!r})"


class Rows(list):
    """SQL rows as dicts (keys in column order); ``columns`` names them, also when there are no rows."""

    columns: list[str]

    def __init__(self, rows, columns):
        super().__init__(rows)
        self.columns = list(columns)


def _amounts(fields, amounts) -> dict:
    """``incr``'s fields: names (by 1), dicts of name -> amount, and keyword amounts, merged in order."""
    out: dict = {}
    for f in fields:
        if isinstance(f, str):
            out[f] = out.get(f, 0) + 1
        elif isinstance(f, dict):
            for name, n in f.items():
                out[name] = out[name] + n if name in out else n
        else:
            raise InvalidField(f"incr takes field names and dicts of field -> amount, got {type(f).__name__}")
    for name, n in amounts.items():
        out[name] = out[name] + n if name in out else n
    if not out:
        raise InvalidField("incr needs at least one field (like page_views=1)")
    return out


def _number(name: str, n) -> str:
    if isinstance(n, bool) or not isinstance(n, (int, float)) or (isinstance(n, float) and not math.isfinite(n)):
        raise InvalidAmount(f"amount for {name!r} must be a finite number, got {n!r}")
    return json.dumps(n)


def incr_line(route: str, key: str, amounts: dict) -> str:
    """The Drops ``incr`` line for ``amounts`` (field -> number), every field quoted."""
    check_route(route)
    check_key(key)
    parts = [f"incr {route} @{key}"]
    for name, n in amounts.items():
        if not isinstance(name, str) or not name:
            raise InvalidField(f"field names are non-empty strings, got {name!r}")
        parts.append(f".{json.dumps(name, ensure_ascii=False)} {_number(name, n)}")
    return " ".join(parts)


def sketch_line(command: str, route: str, key: str, values: dict) -> str:
    """The Drops ``uniq``/``observe`` line adding ``values`` (field -> value or list), every field quoted."""
    check_route(route)
    check_key(key)
    if not values:
        raise InvalidField(f"{command} needs at least one field")
    parts = [f"{command} {route} @{key}"]
    for name, v in values.items():
        if not isinstance(name, str) or not name:
            raise InvalidField(f"field names are non-empty strings, got {name!r}")
        try:
            text = json.dumps(v if isinstance(v, list) else [v], ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError):
            raise InvalidAmount(f"values for {name!r} must be JSON strings or numbers, got {v!r}") from None
        parts.append(f".{json.dumps(name, ensure_ascii=False)} {text}")
    return " ".join(parts)


class Client:
    """A client of one ocean server, on one keep-alive connection (see the module docstring).

    Args:
        url: the server, like ``http://127.0.0.1:8080`` (a path after it is kept as a
            prefix, for a server behind a proxy). Default: ``$OCEAN_URL``, else
            ``http://127.0.0.1:8080``.
        key: the API key, sent as ``X-Ocean-Key``. Default: ``$OCEAN_KEY``; none if unset.
        timeout: seconds to connect, and to wait for each answer.

    Raises:
        ValueError: ``url`` is not an http(s) URL with a valid port.

    A Client may be shared by threads: their calls take turns on its one
    connection (use a Client per thread to run calls side by side).
    """

    def __init__(self, url: str | None = None, key: str | None = None, *, timeout: float = 30.0):
        self.url = (url or os.environ.get("OCEAN_URL") or DEFAULT_URL).rstrip("/")
        split_url(self.url)  # ValueError now for a URL that is not one (no scheme, a bad port)
        self.key = key if key is not None else (os.environ.get("OCEAN_KEY") or None)
        self.timeout = timeout
        self._conn = Connection(self.url, timeout)

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the kept-alive connection (a later call opens a new one)."""
        self._conn.close()

    # -- the raw call ----------------------------------------------------------------

    def _headers(self, content_type: str | None) -> dict:
        headers = {"Accept": _JSON}
        if self.key:
            headers["X-Ocean-Key"] = self.key
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def request(self, method: str, path: str, body: str | bytes | None = None, *,
                content_type: str | None = None, timeout: float | None = None) -> Reply:
        """One request; the ``Reply`` (status, raw body, ``json()``) whatever its status.

        Raises only ``Unreachable`` / ``ClientTimeout`` (no answer). ``body`` as a
        ``str`` goes as UTF-8 ``text/plain`` unless ``content_type`` says otherwise.
        """
        if isinstance(body, str):
            body = body.encode("utf-8")
            content_type = content_type or _TEXT
        elif body is not None:
            content_type = content_type or _JSON
        return self._conn.request(method, path, body, self._headers(content_type), timeout)

    def call(self, method: str, path: str, body=None, *, content_type: str | None = None):
        """The decoded JSON answer of one request; the typed error raised for a 4xx/5xx."""
        if body is not None and not isinstance(body, (str, bytes)):
            body, content_type = json.dumps(body, ensure_ascii=False).encode("utf-8"), _JSON
        reply = self.request(method, path, body, content_type=content_type)
        if reply.status >= 400:
            raise reply.error()
        return reply.json()

    # -- entities, counters, drops ---------------------------------------------------

    def incr(self, route: str, key: str, *fields, **amounts) -> dict:
        """Add to counters atomically; the new values, ``{field: total}``.

        ``incr(route, key, "page_views")`` adds 1; ``incr(route, key, page_views=2)``
        adds 2; ``incr(route, key, {"POST /drop": 1})`` names fields that are not identifiers.
        """
        (res,) = self.exec(incr_line(route, key, _amounts(fields, amounts)))
        return res.value

    def uniq(self, route: str, key: str, values: dict | None = None, **more) -> dict:
        """Add values to uniq (distinct-count) fields; the new estimates, ``{field: 2}``.

        ``uniq(route, key, visitors="u-123")`` or ``uniq(route, key, {"visitors": ["u-1", "u-2"]})``.
        """
        (res,) = self.exec(sketch_line("uniq", route, key, {**(values or {}), **more}))
        return res.value

    def observe(self, route: str, key: str, values: dict | None = None, **more) -> dict:
        """Add numbers to dist (distribution) fields; the new summaries, ``{field: {count, ..., p95, p99}}``.

        ``observe(route, key, ms=12.5)`` or ``observe(route, key, {"ms": [12.5, 40]})``.
        """
        (res,) = self.exec(sketch_line("observe", route, key, {**(values or {}), **more}))
        return res.value

    def get(self, route: str, key: str) -> dict:
        """An entity's fields, counters merged in; ``NotFound`` when it does not exist."""
        return self.entity(route, key)["payload"]

    def entity(self, route: str, key: str) -> dict:
        """An entity's record: ``{route, key, payload, created_at, updated_at, version}``."""
        return self.call("GET", _entity_path(route, key))

    def remove(self, route: str, key: str) -> dict:
        """Remove an entity with its counters; ``NotFound`` when it does not exist."""
        return self.call("DELETE", _entity_path(route, key))

    def save(self, route: str, key: str | None, payload, *, keep: float | None = None) -> dict:
        """Replace an entity's plain fields (Drops ``save``); ``key=None`` appends an event.

        Answers ``{drop_id, seq, route, key, created_at}``.
        """
        return self.drop(route, payload, key=key, keep=keep)

    def drop(self, route: str, payload, *, key: str | None = None, keep: float | None = None) -> dict:
        """One ``POST /drop``: an event (no key) or an entity write (``"+f": n`` entries increment)."""
        return self.call("POST", "/drop", _drop(route, payload, key, keep))

    def drops(self, items, *, check: bool = False) -> list[Result]:
        """A batch (one ``POST /drop``): one ``Result`` per item, in order; each succeeds on its own.

        Items are dicts ``{route, key?, payload, keep?}``. ``check=True`` raises the first
        failed item's error (the others were still written).
        """
        answers = self.call("POST", "/drop", list(items))
        results = [Result(a, data_key=None) for a in answers]
        return _checked(results) if check else results

    # -- languages ---------------------------------------------------------------------

    def exec(self, script: str, *, check: bool = False) -> list[Result]:
        """Run a Drops script: one ``Result`` per command (blank and comment lines give none).

        A failing command does not stop the ones after it, so failures are
        returned, not raised; ``check=True`` raises the first one's typed error.
        """
        results = [Result(r) for r in self.call("POST", "/exec", script, content_type=_TEXT)]
        return _checked(results) if check else results

    def sql(self, query: str) -> Rows:
        """Run a SQL query: the rows as dicts, ``.columns`` their names; ``ParseError``/``SqlError`` raised."""
        doc = self.call("POST", "/sql", query, content_type=_TEXT)
        return Rows(doc.get("rows", []), doc.get("columns", []))

    # -- live ------------------------------------------------------------------------------

    def stream(self, prefix: str, last_event_id: str | int | None = None, *, last: int | None = None,
               retries: int = 10, backoff: float = 0.25, idle_timeout: float = 45.0) -> Stream:
        """The live drops under ``prefix`` (``analytics/events``, ``analytics/*``, ``*``) as a ``Stream``.

        It yields ``Message``, ``Gap``, ``Overflow`` and ``End`` and, on its own
        connection, reconnects and resumes after the last message with
        ``Last-Event-ID`` (see ``ocean.client.stream``). Start after ``last_event_id``,
        or with the last ``last`` drops replayed. ``idle_timeout`` must exceed the
        server's ``heartbeat_s`` (15 s).
        """
        return Stream(self.url, self._headers(None), prefix, last_event_id=last_event_id, last=last,
                      retries=retries, backoff=backoff, idle_timeout=idle_timeout, timeout=self.timeout)

    def health(self) -> dict:
        """``GET /health`` (no key needed)."""
        return self.call("GET", "/health")


def _entity_path(route: str, key: str) -> str:
    return "/entity/" + urllib.parse.quote(check_route(route)) + "/" + urllib.parse.quote(check_key(key))


def _drop(route, payload, key, keep) -> dict:
    doc = {"route": route, "payload": payload}
    if key is not None:
        doc["key"] = key
    if keep is not None:
        doc["keep"] = keep
    return doc


def _checked(results: list[Result]) -> list[Result]:
    for r in results:
        if r.error is not None:
            raise r.error
    return results

