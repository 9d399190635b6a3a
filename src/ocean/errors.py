"""The error catalog: every error ocean raises, each with a machine code.

Each class has a one-line docstring, a stable ``code`` (what clients match on)
and an HTTP ``status`` that the web layer uses to translate it; nothing else
in the web layer decides statuses. Parse errors carry a ``line`` and
``column`` (1-based), and their message never repeats them. ``OceanError.to_dict()``
is the one wire shape: ``{"ok": false, "error": message, "code": code}`` plus the
position when known. ``docs/http.md`` lists the codes from ``markdown_table()``.
"""
from __future__ import annotations


def shown(value) -> str:
    """A value as an error message quotes it: its repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class OceanError(Exception):
    """Any other error ocean raises on purpose (the base of the catalog)."""

    code = "error"
    status = 400

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def to_dict(self) -> dict:
        out = {"ok": False, "error": self.message, "code": self.code}
        if self.line is not None:
            out["line"] = self.line
            out["column"] = self.column
        return out


# -- data model and validation (400) -----------------------------------------

class ValidationError(OceanError):
    """Input does not fit the data model."""
    code = "invalid"


class InvalidRoute(ValidationError):
    """A route is not 1-10 segments of [A-Za-z0-9._-], at most 512 characters."""
    code = "invalid_route"


class InvalidKey(ValidationError):
    """A key is not 1-256 characters of [A-Za-z0-9._-]."""
    code = "invalid_key"


class InvalidField(ValidationError):
    """A field name is empty, too long, or not a string."""
    code = "invalid_field"


class InvalidPayload(ValidationError):
    """A payload is not valid JSON data, or has the wrong shape for the operation."""
    code = "invalid_payload"

    # The write refusals below are worded once here: both stores raise them (the Redis store
    # from its function's refusal codes, redisstore/replies.py) and must read the same.
    @classmethod
    def set_and_incremented(cls, name):
        return cls(f"field {name!r} is both set and incremented in one write")

    @classmethod
    def written_and_added(cls, name, how, kind):
        """``how``: "set" or "incremented"; ``kind``: the sketch kind word (uniq, dist)."""
        return cls(f"field {name!r} is both {how} and added to as a {kind} field in one write")


class PayloadTooLarge(OceanError):
    """A payload, body or script is over its size limit."""
    code = "too_large"
    status = 413


class InvalidAmount(ValidationError):
    """An increment amount is not a finite number, or a sketch value is not one its field takes."""
    code = "invalid_amount"


class NotACounter(ValidationError):
    """A counter field would be set to, or incremented from, a non-number."""
    code = "not_a_counter"

    @classmethod
    def plain_value(cls, route, key):
        return cls(f"{route} @{key} holds a plain value, not fields; save an object to replace it")

    @classmethod
    def counter_set(cls, name, value):
        return cls(f"field {name!r} is a counter; it can only be set to a number, not {shown(value)}")

    @classmethod
    def not_a_number(cls, name, value):
        return cls(f"field {name!r} holds {shown(value)}, not a number; it cannot be incremented")

    @classmethod
    def sketch_incremented(cls, name, kind, prefix):
        return cls(f"field {name!r} is a {kind} field, not a counter; add to it with \"{prefix}{name}\"")


class NotASketch(ValidationError):
    """A field is written as another type than it holds: a sketch add on a counter, plain field or other sketch, or a plain value on a sketch."""
    code = "not_a_sketch"

    @classmethod
    def sketch_set(cls, name, kind, prefix):
        return cls(f"field {name!r} is a {kind} field; add to it with \"{prefix}{name}\", "
                   f"or remove the entity to start over")

    @classmethod
    def other_kind(cls, name, held, held_prefix, kind):
        return cls(f"field {name!r} is a {held} field, not a {kind} field; add to it with \"{held_prefix}{name}\"")

    @classmethod
    def counter_added(cls, name, kind):
        return cls(f"field {name!r} is a counter, not a {kind} field")

    @classmethod
    def plain_added(cls, name, value, kind):
        return cls(f"field {name!r} holds {shown(value)}, not a {kind} field")


class CounterOverflow(ValidationError):
    """An int64 counter (or a dist field's count or sum) would overflow; the value is left unchanged."""
    code = "overflow"

    @classmethod
    def int64(cls, name, base, amount):
        return cls(f"counter {name!r} would overflow int64 ({base} + {amount}); it is unchanged")

    @classmethod
    def float64(cls, name, base, amount):
        return cls(f"counter {name!r} would leave the float64 range ({base} + {amount}); it is unchanged")

    @classmethod
    def dist(cls, name, why):
        return cls(f"dist field {name!r}: {why}; it is unchanged")


class InvalidParameter(ValidationError):
    """A query parameter has a value it cannot take (``format``, ``since`` of ``GET /export``)."""
    code = "invalid_parameter"


class InvalidLine(ValidationError):
    """An import line is not one JSON drop (malformed JSON or UTF-8, an unknown field, a bad time)."""
    code = "invalid_line"


class InvalidSetting(ValidationError):
    """A setting has a value it cannot take."""
    code = "invalid_setting"


# -- lookups (404 / 409) -----------------------------------------------------

class NotFound(OceanError):
    """The entity, route or resource does not exist."""
    code = "not_found"
    status = 404


class Conflict(OceanError):
    """The request conflicts with the current state."""
    code = "conflict"
    status = 409


# -- languages: Drops and SQL (400, with positions) --------------------------

class ParseError(OceanError):
    """A Drops script or SQL query cannot be read; line and column say where."""
    code = "parse_error"


class UnknownCommand(ParseError):
    """A Drops line starts with a word that is not a command."""
    code = "unknown_command"


class ScriptTooLarge(PayloadTooLarge):
    """A Drops script is over the `max_script_bytes` setting."""
    code = "script_too_large"


class SqlError(OceanError):
    """A SQL query is well formed but cannot run (unknown column, bad types)."""
    code = "sql_error"


class QueryLimit(OceanError):
    """A query went over a row cap or time limit setting."""
    code = "query_limit"


# -- keys and access (401 / 403 / 429) ---------------------------------------

class Unauthorized(OceanError):
    """No key, or a key that is not known (or revoked)."""
    code = "unauthorized"
    status = 401


class Forbidden(OceanError):
    """The key is known but its scopes do not allow this."""
    code = "forbidden"
    status = 403


class TooManyConnections(OceanError):
    """A stream cap (per server, per client address or per key) is reached."""
    code = "too_many_connections"
    status = 429


# -- HTTP-shaped input errors (raised by the web layer, declared here) --------

class BadRequest(OceanError):
    """The request is malformed (JSON, encoding, content type)."""
    code = "bad_request"


class UnsupportedMediaType(OceanError):
    """The request body has a content type this endpoint does not take."""
    code = "unsupported_media_type"
    status = 415


class MethodNotAllowed(OceanError):
    """The path exists but not with this method."""
    code = "method_not_allowed"
    status = 405


# -- the engine's own state (5xx) ---------------------------------------------

class StorageError(OceanError):
    """The data directory cannot be written (disk full, I/O error); nothing was acknowledged."""
    code = "storage_unavailable"
    status = 503


class NotReplicated(StorageError):
    """Redis mode with `--fsync always`: the write was applied, but no replica confirmed it in time (`replica_wait_ms`); a failover of its master now may lose it."""
    code = "not_replicated"


class DataDirLocked(OceanError):
    """Another engine or process already owns this data directory."""
    code = "data_dir_locked"
    status = 503


class CorruptLog(OceanError):
    """The log or a snapshot is damaged before its last record; the engine refuses to open."""
    code = "corrupt_log"
    status = 500


class EngineClosed(OceanError):
    """The engine was closed, or the server is draining (SIGTERM): retry shortly."""
    code = "closed"
    status = 503


class CoreNotBuilt(OceanError):
    """The compiled core `ocean._core` is missing; build it (see the message)."""
    code = "core_not_built"
    status = 500


class NotSupported(OceanError):
    """The store in use does not offer this (`POST /admin/backup` with `--store redis://`: Redis backs itself up)."""
    code = "not_supported"
    status = 501


class InternalError(OceanError):
    """An unexpected fault; the message never carries a traceback."""
    code = "internal"
    status = 500


# -- backup and restore --------------------------------------------------------

class InvalidBackupDest(ValidationError):
    """A backup or restore target cannot be used (not a directory, not writable, not empty, in the data dir)."""
    code = "invalid_destination"


class BackupRunning(Conflict):
    """A backup of this data directory is already being written."""
    code = "backup_running"


class BackupFailed(OceanError):
    """A backup or restore could not be written (disk full, I/O error); nothing half-done is left as complete."""
    code = "backup_failed"
    status = 507


class DamagedBackup(ValidationError):
    """A backup is not one, is unfinished, or fails a checksum; the message names the file and byte offset."""
    code = "damaged_backup"


class IncompleteDataDir(OceanError):
    """The directory holds a backup or restore that never finished; it is not a usable data directory."""
    code = "incomplete_data_dir"
    status = 503


# -- the client's side (ocean.Client): no usable answer came back -------------
# Never sent by the server; ``status`` is what a gateway would answer in its place.

class ClientError(OceanError):
    """ocean.Client only (never sent by a server): a call failed on its way, no answer was read."""
    code = "client_error"
    status = 502


class Unreachable(ClientError):
    """ocean.Client only: the server cannot be reached, or dropped the connection before it answered."""
    code = "unreachable"
    status = 503


class ClientTimeout(ClientError):
    """ocean.Client only: no answer within the client's timeout (the call may still have run)."""
    code = "timeout"
    status = 504


def catalog() -> list[type[OceanError]]:
    """Every error class, for docs and the meta tests."""
    out, todo = [], [OceanError]
    while todo:
        cls = todo.pop(0)
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def markdown_table() -> str:
    """The table of codes in ``docs/http.md`` (a meta test keeps the page equal to this)."""
    rows = ["| code | status | what |", "|---|---|---|"]
    declared = [c for c in globals().values() if isinstance(c, type) and issubclass(c, OceanError)]
    rows += [f"| `{c.code}` | {c.status} | {' '.join(c.__doc__.split())} |" for c in declared]
    return "\n".join(rows)


_BY_CODE: dict[str, type[OceanError]] = {}


def from_wire(doc, status: int | None = None) -> OceanError:
    """The typed error for a wire-shape dict a client received (the inverse of ``to_dict``).

    The class is the catalog's for ``doc["code"]``; an unknown code (a newer
    server, a proxy's ``http_502``) gives a plain ``OceanError`` that keeps the
    code and ``status``. Anything that is not the wire shape is described as is.
    """
    if not _BY_CODE:
        _BY_CODE.update((cls.code, cls) for cls in catalog())
    if not isinstance(doc, dict):
        doc = {"error": str(doc)[:200], "code": f"http_{status}" if status else "error"}
    code = str(doc.get("code") or (f"http_{status}" if status else "error"))
    message = str(doc.get("error") or code)
    line, column = doc.get("line"), doc.get("column")
    cls = _BY_CODE.get(code)
    err = (cls or OceanError)(message, line=line if isinstance(line, int) else None,
                              column=column if isinstance(column, int) else None)
    if cls is None:
        err.code = code
        if status:
            err.status = status
    return err
