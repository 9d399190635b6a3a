"""Export and import formats: NDJSON and CSV out of the engine's pages, NDJSON lines back in as drops.

Out (``GET /export``): ``ndjson_chunks`` and ``csv_chunks`` turn ``engine.export.pages`` into
byte chunks, one page each. An empty chunk carries no bytes: it is a turn for the caller
(the web layer lets other requests run) during CSV's first pass.

In (``POST /import``): ``read_lines`` splits a body into numbered lines of bounded size,
``parse_line`` turns one exported record (or a hand-written drop) into drops, and
``Importer`` writes them in batches through a ``write(drops, times)`` callable (the
``/drop`` batch path), counting lines and keeping one error per failed line. A bad line
is skipped and reported; the lines around it are imported.

What an import keeps: entities' fields, counters (``counters`` names the payload fields
that become counters again), sketch fields (``sketches`` holds their bytes: merged in, exactly)
and expiry; events' payload, expiry and ``created_at``. Entities'
``created_at``/``updated_at``/``version`` and every ``seq`` are the importing server's own: the
engine stamps each entity write with its clock (its expiry replays by op time), and seqs are
handed out in write order. Imported drops are writes like any other, meant for an empty server:
on an existing entity a line without counters replaces its plain fields (a save), one with
counters merges them and *adds* the counters (so importing twice counts twice).
"""
from __future__ import annotations

import csv
import io
import json

import orjson

from .engine.export import ENTITIES, PAGE, Since, event_record, pages, parse_time, sections
from .errors import InvalidLine, OceanError, PayloadTooLarge
from .model import iso_ms, now_ms

FORMATS = ("ndjson", "csv")
SYSTEM_COLUMNS = ("route", "key", "seq", "created_at", "updated_at")
LINE_OVERHEAD = 64 << 10  # room on an import line beside its payload: route, key, times, names
IMPORT_BATCH = 1000  # lines written per engine call (one log write, then others get a turn)
MAX_REPORTED_ERRORS = 1000  # errors listed in an import's answer (all are counted)
LINE_FIELDS = frozenset(("route", "key", "payload", "keep", "counters", "sketches", "expires_at", "created_at",
                         "updated_at", "version", "seq", "drop_id", "source"))

_std_dumps = json.JSONEncoder(separators=(",", ":")).encode  # ASCII: any str encodes
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_NEWLINE = orjson.OPT_APPEND_NEWLINE


# -- out ------------------------------------------------------------------------

def _line(rec: dict) -> bytes:
    try:
        return orjson.dumps(rec, None, _NEWLINE)
    except TypeError:  # an integer beyond 64 bits, a lone surrogate: the stdlib writes those
        return _std_dumps(rec).encode() + b"\n"


def ndjson_chunks(engine, target: str, since: Since | None = None, page: int = PAGE):
    """The NDJSON export of ``target``: one record a line, one page a chunk."""
    dumps = orjson.dumps
    for route, kind, rows in sections(engine, target, since, page):
        if kind == ENTITIES:
            try:
                yield b"".join([dumps(r, None, _NEWLINE) for r in rows])
            except TypeError:
                yield b"".join([_line(r) for r in rows])
        else:
            yield _event_lines(route, rows)


def _event_lines(route: str, rows: list) -> bytes:
    """NDJSON of event rows, each line exactly ``_line(event_record(route, row))``.

    PERF: formatted from a template around the payload's own JSON, with no dict per event and
    each time formatted once per millisecond (~350 ns of CPU an event, against ~750 ns by way
    of records; bench/load/bench_export.py).
    """
    head = b'{"route":' + orjson.dumps(route) + b',"payload":'
    dumps = orjson.dumps
    out, last_ms, at = [], -1, b""
    for row in rows:
        seq, ms, payload, expires = row[0], row[1], row[2], row[3]
        if expires:
            out.append(_line(event_record(route, row)))
            continue
        if ms != last_ms:
            last_ms, at = ms, b',"created_at":"' + iso_ms(ms).encode() + b'","seq":'
        try:
            body = dumps(payload)
        except TypeError:
            body = _std_dumps(payload).encode()
        out.append(b"%s%s%s%d}\n" % (head, body, at, seq))
    return b"".join(out)


def _cell(value) -> str:
    if value is None:
        return ""
    if type(value) is str:
        return value
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) in (int, float):
        return repr(value)
    try:
        return _compact(value)
    except (TypeError, ValueError):
        return _std_dumps(value)


def csv_columns(engine, target: str, since: Since | None = None, page: int = PAGE, upto: int | None = None,
                read=pages):
    """First pass: yields ``b""`` after each page (a turn), and at the end the column list.

    The columns are ``route, key, seq, created_at, updated_at`` and then every top-level
    payload field in the order first seen (``value`` for non-object payloads); a field named
    like one of the first five is hidden by it, as in SQL.
    """
    names: dict = {}
    for recs in read(engine, target, since, page, upto):
        for rec in recs:
            payload = rec["payload"]
            if type(payload) is dict:
                for name in payload:
                    if name not in names:
                        names[name] = None
            elif "value" not in names:
                names["value"] = None
        yield b""
    yield list(SYSTEM_COLUMNS) + [n for n in names if n not in SYSTEM_COLUMNS]


def csv_chunks(engine, target: str, since: Since | None = None, page: int = PAGE, read=pages):
    """The CSV export of ``target``: a header of the union of payload fields (a first pass over
    the same records, whose empty chunks are turns), then one page a chunk.

    Nested values are JSON text, ``null`` is an empty cell, booleans are ``true``/``false``.
    NOTE: events are the same in both passes (both stop at the seq of the start); an entity
    given a new field between the passes is written without that field (NDJSON has it all).
    ``read`` gives the pages of records (the Redis store's own: ``redisstore/export.py``).
    """
    upto = engine.seq
    columns = None
    for item in csv_columns(engine, target, since, page, upto, read):
        if type(item) is list:
            columns = item
        else:
            yield item
    fields = columns[len(SYSTEM_COLUMNS):]
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(columns)
    yield buf.getvalue().encode()
    for recs in read(engine, target, since, page, upto):
        buf.seek(0)
        buf.truncate()
        rows = []
        for rec in recs:
            payload = rec["payload"]
            row = [rec["route"], rec.get("key") or "", rec.get("seq", ""), rec["created_at"], rec.get("updated_at", "")]
            if type(payload) is dict:
                get = payload.get
                row += [_cell(get(name)) for name in fields]
            else:
                row += [_cell(payload) if name == "value" else "" for name in fields]
            rows.append(row)
        out.writerows(rows)
        yield buf.getvalue().encode()


# -- in -------------------------------------------------------------------------

def line_limit(max_payload_bytes: int) -> int:
    """The longest import line: a payload at its limit plus room for the rest of the record."""
    return max_payload_bytes + LINE_OVERHEAD


def read_lines(readline, limit: int):
    """``(number, line)`` for each line ``readline(size)`` gives; ``line`` is None for a line
    over ``limit`` bytes, which is read to its end in bounded pieces and never held."""
    number = 0
    while True:
        line = readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and line[-1:] != b"\n":
            while True:  # ends at the line's newline or the body's end
                rest = readline(1 << 16)
                if not rest or rest[-1:] == b"\n":
                    break
            yield number, None
            continue
        yield number, line


def parse_line(raw: bytes, now: int):
    """The drops of one import line and an event's own time: ``(drops, at)``.

    ``None`` for a blank line; ``([], None)`` for a record whose ``expires_at`` has passed.
    Raises ``InvalidLine`` (or the engine's validation error) for a line that is not a drop.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidLine(f"not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        return None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidLine(f"malformed JSON at column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InvalidLine("JSON is nested too deeply") from None
    except ValueError as exc:
        raise InvalidLine(f"JSON cannot be read: {str(exc).split(';')[0]}") from None
    if type(doc) is not dict:
        raise InvalidLine("a line is one JSON object {route, key?, payload, ...}")
    unknown = doc.keys() - LINE_FIELDS
    if unknown:
        raise InvalidLine(f"a line has no field {sorted(unknown)[0]!r} (it takes {', '.join(sorted(LINE_FIELDS))})")
    if "payload" not in doc:
        raise InvalidLine("a line needs a payload")
    route, key, payload = doc.get("route"), doc.get("key"), doc["payload"]
    counters = doc.get("counters")
    incs = None
    if counters is not None:
        if key is None or type(payload) is not dict or type(counters) is not list:
            raise InvalidLine("counters is a list naming number fields of an entity's payload")
        payload, incs = dict(payload), {}
        for name in counters:
            value = payload.pop(name, None) if type(name) is str else None
            if type(value) not in (int, float):
                raise InvalidLine(f"counters names {name!r}, which is not a number field of the payload")
            incs["+" + name] = value
    sketches = doc.get("sketches")
    if sketches is not None:
        if key is None or type(payload) is not dict or type(sketches) is not dict:
            raise InvalidLine('sketches is an object of "~field"/"%field": base64 sketch bytes, for an entity')
        if incs is None:
            payload, incs = dict(payload), {}
        for name, data in sketches.items():
            if len(name) < 2 or name[0] not in "~%" or type(data) is not str:
                raise InvalidLine(f'sketches names {name[:40]!r}; it takes "~field" or "%field": base64 sketch bytes')
            payload.pop(name[1:], None)  # the summary reads showed: the sketch itself replaces it
            incs[name] = {"sketch": data}  # merged in by the engine, which checks the bytes
    keep = doc.get("keep")
    if doc.get("expires_at") is not None:
        if keep is not None:
            raise InvalidLine("a line takes keep or expires_at, not both")
        try:
            left = parse_time(doc["expires_at"]) - now
        except ValueError:
            raise InvalidLine(f"expires_at must be an ISO-8601 time, got {str(doc['expires_at'])[:40]!r}") from None
        if left <= 0:
            return [], None
        keep = left / 1000
    at = None
    if key is None and doc.get("created_at") is not None:
        try:
            at = parse_time(doc["created_at"])
        except ValueError:
            raise InvalidLine(f"created_at must be an ISO-8601 time, got {str(doc['created_at'])[:40]!r}") from None
    first = {"route": route, "key": key, "payload": payload}
    if keep is not None:
        first["keep"] = keep
    if not incs:
        return [first], at
    if keep is None:
        payload.update(incs)  # plain fields and "+counter" increments: one atomic write
        return [first], at
    # keep applies to saves only: the fields (with their expiry), then the counters
    return [first, {"route": route, "key": key, "payload": incs}], at


class Importer:
    """Feeds numbered import lines to ``write(drops, times)`` in batches; counts and reports.

    ``write`` returns one receipt or ``OceanError`` per drop (``Engine.drop_many``'s shape).
    """

    def __init__(self, write, batch: int = IMPORT_BATCH, max_errors: int = MAX_REPORTED_ERRORS, clock=now_ms):
        self.write = write
        self.batch = batch
        self.max_errors = max_errors
        self.clock = clock
        self.lines = self.imported = self.failed = self.expired = 0
        self.errors: list[dict] = []
        self._drops: list = []
        self._times: list = []
        self._owner: list[int] = []
        self._pending = 0

    def feed(self, number: int, raw: bytes | None, limit: int = 0) -> None:
        """Take line ``number`` (``raw`` None: it was over ``limit`` bytes)."""
        self.lines = number
        if raw is None:
            self._fail(number, PayloadTooLarge(f"the line is over {limit} bytes (a payload may hold "
                                               f"max_payload_bytes; the rest of the line {LINE_OVERHEAD})"))
            return
        try:
            parsed = parse_line(raw, self.clock())
        except OceanError as exc:
            self._fail(number, exc)
            return
        if parsed is None:
            return
        drops, at = parsed
        if not drops:
            self.expired += 1
            return
        for d in drops:
            self._drops.append(d)
            self._times.append(at)
            self._owner.append(number)
        self._pending += 1
        if self._pending >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Write the lines taken since the last flush."""
        if not self._drops:
            return
        drops, times, owner, pending = self._drops, self._times, self._owner, self._pending
        self._drops, self._times, self._owner, self._pending = [], [], [], 0
        failed: dict[int, OceanError] = {}
        for number, out in zip(owner, self.write(drops, times)):
            if isinstance(out, OceanError) and number not in failed:
                failed[number] = out
        self.imported += pending - len(failed)
        for number, exc in failed.items():
            self._fail(number, exc)

    def _fail(self, number: int, exc: OceanError) -> None:
        self.failed += 1
        if len(self.errors) < self.max_errors:
            self.errors.append({"line": number, "ok": False, "error": exc.message, "code": exc.code})

    def result(self) -> dict:
        """The answer: counts, and the errors (each naming its line) in line order."""
        return {"ok": True, "lines": self.lines, "imported": self.imported, "failed": self.failed,
                "expired": self.expired, "errors": sorted(self.errors, key=lambda e: e["line"]),
                "errors_truncated": self.failed > len(self.errors)}
