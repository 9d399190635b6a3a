"""Reading request bodies: size limit, content type, UTF-8 and JSON, as ocean errors."""
from __future__ import annotations

import json

from ..errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

# curl -d sends form-urlencoded and fetch() with a string body sends text/plain:
# both carry the raw text, so both are taken as what the endpoint reads.
TEXT_TYPES = ("text/plain", "application/x-www-form-urlencoded", "")
JSON_TYPES = ("application/json",)


def media_type(req) -> str:
    """The request's media type, lowercased, without parameters ('' when absent)."""
    return (req.content_type or "").split(";", 1)[0].strip().lower()


def is_json(req) -> bool:
    """True when the body is declared as JSON (``application/json`` or ``*+json``)."""
    mt = media_type(req)
    return mt in JSON_TYPES or mt.endswith("+json")


def check_type(req, accepted=TEXT_TYPES + JSON_TYPES) -> None:
    """Raise UnsupportedMediaType (415) unless the body type is one ``accepted``."""
    if not (media_type(req) in accepted or is_json(req)):
        raise UnsupportedMediaType(
            f"content type {req.content_type!r} is not accepted here; send application/json or text/plain")


def read_bytes(req, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes with PayloadTooLarge (413)."""
    length = req.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"request body is {length} bytes; the limit is {limit} (setting max_body_bytes)")
    data = req.bounded_stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"request body is over the {limit}-byte limit (setting max_body_bytes)")
    return data


def read_text(req, limit: int) -> str:
    """The body as UTF-8 text; BadRequest (400) when it is not valid UTF-8."""
    raw = read_bytes(req, limit)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"request body is not valid UTF-8 (byte {exc.start})") from None


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
    check_type(req)
    text = read_text(req, limit)
    if not is_json(req):
        return text
    doc = parse_json(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("query"), str):
        raise BadRequest('a JSON body here must be an object with a "query" string')
    return doc["query"]
