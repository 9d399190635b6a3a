"""Request and response bodies: size limit, content type, UTF-8 and JSON, as ocean errors.

PERF: responses are encoded by ``orjson`` (1000 ``/drop`` receipts: 1.09 ->
0.24 ms; one ``/exec`` incr result: 2.7 -> 0.8 us), falling back to the stdlib
for anything orjson refuses. Requests are parsed by the stdlib only: orjson
(3.8) read the same 1000-drop body in 0.36 ms against 0.60, but it reads
integers beyond 64 bits as floats and has no nesting limit, and the guards
that keep its answers identical to the stdlib's cost half of that gain.
"""
from __future__ import annotations

import json
import re
import urllib.parse

import orjson

from ..errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

# fetch() with a string body sends text/plain; curl -d sends form-urlencoded but the text
# as is (newlines stripped when it reads a file): both are taken as the text. A real form
# (``query=<encoded>``: an HTML form, curl --data-urlencode query@file) is decoded; an
# encoded body without that field is refused with what to send instead (``form_query``).
FORM = "application/x-www-form-urlencoded"
TEXT_TYPES = ("text/plain", FORM, "")
_URL_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
JSON_TYPES = ("application/json",)

# Strict orjson: a dict key that is not a str, a subclass of a builtin, a datetime
# or a dataclass is refused (TypeError), and the stdlib then answers as it always did.
_ORJSON_STRICT = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_orjson_dumps = orjson.dumps
_std_dumps = json.JSONEncoder(ensure_ascii=False).encode  # what falcon's default JSON handler calls


def dumps(doc) -> bytes:
    """``doc`` as UTF-8 JSON; what the stdlib would give, only faster where it can be.

    NOTE: orjson writes non-finite floats as ``null`` where the stdlib writes
    ``NaN``; none reach a response (the engine and SQL refuse them).
    """
    try:
        return _orjson_dumps(doc, None, _ORJSON_STRICT)
    except TypeError:  # a non-str key, a 65-bit integer, a lone surrogate, deep nesting...
        return _std_dumps(doc).encode("utf-8")


def media_type(req) -> str:
    """The request's media type, lowercased, without parameters ('' when absent)."""
    return (req.content_type or "").split(";", 1)[0].strip().lower()


def _is_json_type(mt: str) -> bool:
    return mt in JSON_TYPES or mt.endswith("+json")


def is_json(req) -> bool:
    """True when the body is declared as JSON (``application/json`` or ``*+json``)."""
    return _is_json_type(media_type(req))


def check_type(req, accepted=TEXT_TYPES + JSON_TYPES) -> str:
    """The body's media type; UnsupportedMediaType (415) unless it is one ``accepted`` (or JSON)."""
    mt = media_type(req)
    if not (mt in accepted or _is_json_type(mt)):
        raise UnsupportedMediaType(
            f"content type {req.content_type!r} is not accepted here; send application/json or text/plain")
    return mt


def _read(stream, size: int) -> bytes:
    """``size`` bytes (or to the end) of the request body; BadRequest when the server cannot read it.

    A malformed chunked body (a bad chunk size, a missing terminator) or a client gone
    mid-body raises from the server's input stream, whose error types vary by server.
    """
    try:
        return stream.read(size)
    except Exception as exc:  # noqa: BLE001 - the server's own parse errors, OSError
        raise BadRequest(f"the request body cannot be read ({type(exc).__name__}); "
                         "send a Content-Length or well-formed chunks") from None


def read_bytes(req, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes with PayloadTooLarge (413)."""
    length = req.content_length
    if length is not None:
        if length > limit:
            raise PayloadTooLarge(f"request body is {length} bytes; the limit is {limit} (setting max_body_bytes)")
        # PERF: with a declared length, read exactly that (no BoundedStream around the input).
        return _read(req.stream, length) if length else b""
    # No length (a chunked body): a server that ends the input at the body's end (gunicorn sets
    # wsgi.input_terminated) is read to that end; falcon's bounded_stream would read nothing.
    stream = req.stream if req.env.get("wsgi.input_terminated") else req.bounded_stream
    data = _read(stream, limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"request body is over the {limit}-byte limit (setting max_body_bytes)")
    return data


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"request body is not valid UTF-8 (byte {exc.start})") from None


def read_text(req, limit: int) -> str:
    """The body as UTF-8 text; BadRequest (400) when it is not valid UTF-8."""
    return _utf8(read_bytes(req, limit))


def parse_json(text: str):
    """Parse JSON text; BadRequest (400) saying where it is malformed."""
    if not text.strip():
        raise BadRequest("request body is empty; send JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise BadRequest("JSON is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer over Python's 4300-digit conversion limit
        raise BadRequest(f"JSON cannot be read: {str(exc).split(';')[0]}") from None


def read_query(req, limit: int) -> str:
    """A script or query: text/plain as is, or JSON ``{"query": "..."}``."""
    env = req.env
    if env.get("CONTENT_TYPE") == "text/plain":
        # PERF: what fetch() sends with a string body, read straight from the WSGI input
        # (the general path below costs ~1.5 us more per /exec); same checks, same errors.
        length = env.get("CONTENT_LENGTH")  # absent (chunked): the general path reads to the end
        if length and length.isascii() and length.isdigit() and int(length) <= limit:
            return _utf8(_read(env["wsgi.input"], int(length)))
    mt = check_type(req)
    text = read_text(req, limit)
    if mt == FORM:
        return form_query(text)
    if not _is_json_type(mt):
        return text
    doc = parse_json(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("query"), str):
        raise BadRequest('a JSON body here must be an object with a "query" string')
    return doc["query"]


def form_query(text: str) -> str:
    """The script or query of a form-urlencoded body.

    ``query=<url-encoded text>`` is decoded (no Drops command or SQL query starts with
    ``query=``). Otherwise the body is the text as ``curl -d 'TEXT'`` sends it, unless it
    is URL-encoded text (``%XX`` escapes or ``+`` for spaces, and no space: ``curl
    --data-urlencode 'TEXT'``), which is refused with what to send instead. (A command
    without a space is a bare route or ``help``: neither holds ``%`` or ``+``.)
    """
    if text.startswith("query="):
        values = urllib.parse.parse_qs(text, keep_blank_values=True).get("query", [])
        if len(values) != 1:
            raise BadRequest("a form body here must hold one field query=<the script, URL-encoded>")
        return values[0]
    if ("+" in text or _URL_ESCAPE.search(text)) and not any(c.isspace() for c in text):
        raise BadRequest("this form body is URL-encoded text: send the text as text/plain "
                         "(curl --data-binary @file -H 'Content-Type: text/plain'), "
                         "or as the form field query=... (curl --data-urlencode query@file)")
    return text
