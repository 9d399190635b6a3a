"""``GET /export/{route or prefix/*}`` (NDJSON or CSV, streamed) and ``POST /import`` (NDJSON, streamed).

The formats and the import's line handling are ``ocean.transfer``; here are the key checks,
the body's line reader and the pacing. An export is a generator of one chunk per page
(a few hundred records): the worker writes each and gives the other requests a turn, so
neither memory nor latency grows with the route. An import reads its body line by line
and writes batches through the ``/drop`` path (``drop.write``), giving a turn after each.
"""
from __future__ import annotations

from ... import transfer
from ...engine import export
from ...errors import BadRequest, InvalidParameter
from ...model import check_prefix
from .. import auth, body
from . import drop

IMPORT_TYPES = body.TEXT_TYPES + ("application/x-ndjson", "application/ndjson", "application/jsonl",
                                  "application/x-jsonlines", "application/octet-stream")
_MEDIA = {"ndjson": "application/x-ndjson; charset=utf-8", "csv": "text/csv; charset=utf-8"}


def _paced(chunks, turn):
    """``chunks`` with a ``turn()`` before each; empty chunks are turns only (no bytes written).

    NOTE: a client that reads fast never makes the socket block, so without the turns one
    export would hold the worker until its end. ``turn`` is ``Service.turn``: gevent's
    ``idle`` in the server, which lets every ready request run and polls the sockets
    (``sleep(0)`` does not poll: /health took ~30-80 ms per answer during a 1M-event export).
    """
    for chunk in chunks:
        turn()
        if chunk:
            yield chunk


class Export:
    """Every entity and event of a route, or of every route under a prefix, with no row cap."""

    def __init__(self, svc):
        self.svc = svc

    def on_get(self, req, resp, target):
        check_prefix(target)
        auth.require(req, self.svc.keys).check_read(target)
        fmt = req.get_param("format") or "ndjson"
        if fmt not in transfer.FORMATS:
            raise InvalidParameter(f"format must be one of {', '.join(transfer.FORMATS)}, got {fmt[:20]!r}")
        since = export.parse_since(req.get_param("since"))
        if getattr(self.svc.engine, "per_route_seq", False):  # the Redis store pages through Redis itself
            from ...redisstore.export import csv_chunks, ndjson_chunks
            chunks = (csv_chunks if fmt == "csv" else ndjson_chunks)(self.svc.engine, target, since)
        else:
            chunks = (transfer.csv_chunks if fmt == "csv" else transfer.ndjson_chunks)(self.svc.engine, target, since)
        resp.content_type = _MEDIA[fmt]
        name = target[:-2] if target.endswith("/*") else target
        resp.set_header("Content-Disposition",
                        f'attachment; filename="{"all" if name == "*" else name.replace("/", "_")}.{fmt}"')
        resp.stream = _paced(chunks, self.svc.turn)


class _Lines:
    """``readline(size)`` over the request body, never past its declared length.

    NOTE: falcon's ``bounded_stream.readline(size)`` counts ``size`` as read, not the line
    it returns, so it ends the body after the first line; hence this reader.
    """

    def __init__(self, req):
        self.stream = req.stream
        self.left = req.content_length
        if self.left is None and not req.env.get("wsgi.input_terminated"):
            self.left = 0  # no length and a server that does not end the input: nothing to read safely

    def readline(self, size: int) -> bytes:
        if self.left is None:  # chunked, ended by the server at the body's end
            return self.stream.readline(size)
        if self.left <= 0:
            return b""
        line = self.stream.readline(min(size, self.left))
        self.left -= len(line)
        return line


class Import:
    """NDJSON lines (an export, or hand-written drops) written as drops; one error per bad line."""

    def __init__(self, svc):
        self.svc = svc

    def on_post(self, req, resp):
        access = auth.require(req, self.svc.keys)
        body.check_type(req, IMPORT_TYPES)
        engine = self.svc.engine

        def write(drops, times):
            out = drop.write(engine, access, drops, times)
            self.svc.turn()
            return out

        importer = transfer.Importer(write)
        limit = transfer.line_limit(self.svc.settings.max_payload_bytes)
        lines = transfer.read_lines(_Lines(req).readline, limit)
        while True:
            try:
                number, raw = next(lines)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - the server's own body errors, a client gone
                importer.flush()
                raise BadRequest(f"the request body cannot be read after line {importer.lines} "
                                 f"({type(exc).__name__}); the {importer.imported} lines before it "
                                 f"were imported") from None
            importer.feed(number, raw, limit)
        importer.flush()
        resp.media = importer.result()
