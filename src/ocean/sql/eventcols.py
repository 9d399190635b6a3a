"""A route's events as ``Vec``s, read from the engine's own storage (engine/chunks.py) with numpy.

Sealed chunks are read in place, per query (sealed.py keeps only references to them):
``live_rows`` gives the positions of a chunk's rows live at a moment, ``field_part`` one field
over those rows, ``present_fields`` the fields some of them hold a value in. Numbers and
booleans come from the chunk's typed columns with numpy; strings stay the chunk's codes
(``StrPart``: sealed.py maps them into the table's dictionary); what could type differently
(an object column, a non-object payload's ``value``) goes through ``from_values``. Every part
has the kind ``from_values`` gives for its rows' values, so parts merge as the rows of a
table built from records would.

``rows_columns`` types rows of the open tail (Python tuples) the same way.
"""
from __future__ import annotations

import numpy as np

from ..engine.chunks import bits_at
from ..model import iso_ms
from .vectors import Vec, from_values, kind_of, parse_ts_array

_KIND = {"i": "int", "f": "float", "b": "bool", "n": "float"}
_ZERO = {"i": 0, "f": 0.0, "b": False, "n": 0.0}
_TS_SAFE = (0, 253_402_300_799_999)  # times whose ISO form is the 24-character one (1970..9999)


def live_rows(chunk, now_ms: int):
    """Positions of ``chunk``'s rows live at ``now_ms`` (removed and expired ones left out), or
    None when every row is."""
    if chunk.expiring:
        alive = chunk.alive() & ((chunk.expires == 0) | (chunk.expires > now_ms))
    elif chunk.dead is None:
        return None
    else:
        alive = ~chunk.dead
    return None if alive.all() else np.flatnonzero(alive)


def size(chunk, idx) -> int:
    return chunk.n if idx is None else len(idx)


def _bits(packed, n: int, idx) -> np.ndarray:
    if idx is None:
        return np.unpackbits(packed, count=n).astype(bool)
    return bits_at(packed, idx)


class IntPart:
    """All rows of a chunk's int column with no NULL, written straight into a query's vector
    (``fill``): no vector of its own per chunk (PERF: see sealed.py ``assemble``)."""
    __slots__ = ("col", "n", "kind")
    valid = None

    def __init__(self, col, n: int, kind: str):
        self.col, self.n, self.kind = col, n, kind

    def __len__(self) -> int:
        return self.n

    def fill(self, out: np.ndarray) -> None:
        if out.dtype == np.int64:
            np.add(self.col.data, self.col.base, out=out, dtype=np.int64)
        else:
            out[...] = self.col.array()


def created_part(chunk, idx):
    """``created_at`` of the rows: ``ts`` (ISO text when a time has no 24-character ISO form)."""
    col = chunk.ms
    if idx is None and chunk.n and _TS_SAFE[0] <= col.base and col.base + int(col.data.max()) <= _TS_SAFE[1]:
        return IntPart(col, chunk.n, "ts")
    ms = col.array() if idx is None else col.take(idx)
    if len(ms) and (ms.min() < _TS_SAFE[0] or ms.max() > _TS_SAFE[1]):
        return from_values([iso_ms(x) for x in ms.tolist()])
    return Vec("ts", ms, None)


class StrFacts:
    """What a chunk dictionary's strings type as (computed once per dictionary, see ``Sealed``)."""
    __slots__ = ("none", "kind", "ms")

    def __init__(self, strings: np.ndarray):
        entries = strings.tolist()
        self.none = next((i for i, s in enumerate(entries) if s is None), -1)  # the NULL code (-1: none)
        text = [s for s in entries if s is not None]
        ts = [kind_of(s) == "ts" for s in text]
        self.ms = None
        if text and all(ts):
            ms, ok = parse_ts_array(entries)
            self.kind = "ts" if ok else "mixed"
            self.ms = ms if ok else None
        else:
            self.kind = "mixed" if any(ts) else "str"


class StrPart:
    """Rows of a chunk's string column: codes into the chunk's ``strings`` (the NULL entry too)."""
    __slots__ = ("strings", "codes", "kind", "facts")

    def __init__(self, strings, codes, kind, facts):
        self.strings, self.codes, self.kind, self.facts = strings, codes, kind, facts

    def __len__(self) -> int:
        return len(self.codes)

    def valid(self):
        return None if self.facts.none < 0 else self.codes != self.facts.none

    def vec(self, kind: str) -> Vec:
        """The rows as a vector of ``kind`` (``ts``, ``obj``), or NULLs."""
        if self.kind == "null":
            return Vec.nulls(len(self.codes))
        if kind == "ts":
            ms = self.facts.ms if self.facts.ms is not None else _ms_of(self.strings)
            return Vec("ts", ms[self.codes], self.valid())
        return Vec("obj", self.strings[self.codes])


def _ms_of(strings) -> np.ndarray:
    ms, _ = parse_ts_array(strings.tolist())
    return ms


def field_part(chunk, name: str, idx, facts, whole: str | None = None):
    """Field ``name`` over the chunk's rows ``idx`` (None: all): a ``Vec`` or a ``StrPart``.

    ``facts(strings)`` gives the (cached) ``StrFacts`` of a string column's dictionary; ``whole``:
    the kind of the chunk's rows as a whole, which Python values (the fallback column) take as
    they are: typed alone, some of the rows could type otherwise (0 with 0.0 a real, an int
    beyond int64 without a real an object)."""
    m = size(chunk, idx)
    as_is = whole if whole != "null" else None
    if chunk.other is not None and name == "value":
        return from_values(_payload_values(chunk, name, idx), as_is)
    col = chunk.fields.get(name)
    if col is None:
        return Vec.nulls(m)
    kind = col.kind
    if kind == "o":
        return from_values(col.data if idx is None else [col.data[i] for i in idx.tolist()], as_is)
    if kind == "s":
        return _strings(col, idx, m, facts(col.strings))
    if kind == "i" and idx is None and col.valid is None:
        return IntPart(col, m, "int")
    if kind in "fb" and idx is None and col.valid is None:
        return Vec(_KIND[kind], col.data, None)  # the chunk's own array: read, never written
    valid = None if col.valid is None else _bits(col.valid, chunk.n, idx)
    if valid is not None and not valid.any():
        return Vec.nulls(m)
    if kind == "i":
        data = col.array() if idx is None else col.take(idx)  # new arrays: free to change
    else:
        data = col.data if idx is None else col.data[idx]
        if valid is not None and idx is None:
            data = data.copy()  # never write into the chunk's own array
    if valid is not None:
        data[~valid] = _ZERO[kind]
    if kind == "n":  # ints and floats: these rows may hold ints only
        ints = _bits(col.ints, chunk.n, idx)
        if (ints[valid] if valid is not None else ints).all():
            return Vec("int", data.astype(np.int64), valid)
    return Vec(_KIND[kind], data, valid)


def _strings(col, idx, m: int, facts: StrFacts) -> StrPart:
    codes = col.data if idx is None else col.data[idx]
    present = None if facts.none < 0 else codes != facts.none
    if present is not None and not present.any():
        return StrPart(col.strings, codes, "null", facts)
    kind = facts.kind
    if kind == "mixed":  # some entries look like timestamps: decide on the entries these rows use
        used = np.unique(codes if present is None else codes[present])
        kind = from_values(col.strings[used].tolist()).kind
    return StrPart(col.strings, codes, kind, facts)


def _payload_values(chunk, name: str, idx) -> list:
    """Field ``name`` of each row as Python values, a non-object payload being its ``value``."""
    col = chunk.fields.get(name)
    values = list(col.values(0, chunk.n)) if col is not None else [None] * chunk.n
    for r, payload in chunk.other.items():
        values[r] = payload
    return values if idx is None else [values[i] for i in idx.tolist()]


def chunk_fields(chunk) -> list:
    """The chunk's field names in the order its rows first show them (``value``: a non-object payload)."""
    out: dict = {}
    for shape in chunk.shapes:
        out.update(dict.fromkeys(("value",) if shape is None else shape))
    return list(out)


def present_fields(chunk, idx, facts) -> set:
    """The fields at least one of the rows ``idx`` (None: all) holds a value in."""
    out = set()
    for name in chunk_fields(chunk):
        if chunk.other is not None and name == "value":
            if any(v is not None for v in _payload_values(chunk, name, idx)):
                out.add(name)
            continue
        col = chunk.fields.get(name)
        if col is None or not size(chunk, idx):
            continue
        if col.kind == "o":
            rows = col.data if idx is None else [col.data[i] for i in idx.tolist()]
            held = any(v is not None for v in rows)
        elif col.kind == "s":
            none = facts(col.strings).none
            held = none < 0 or bool(((col.data if idx is None else col.data[idx]) != none).any())
        else:
            held = col.valid is None or bool(_bits(col.valid, chunk.n, idx).any())
        if held:
            out.add(name)
    return out


def rows_columns(rows: list):
    """``(m, seqs, created, fields)`` of event rows ``(seq, ms, payload, expires, source)``: the
    ``seq`` and ``created_at`` vectors and ``{field: Vec}`` in the order the rows first show each field."""
    m = len(rows)
    seqs = np.fromiter((r[0] for r in rows), np.int64, m)
    ms = np.fromiter((r[1] for r in rows), np.int64, m)
    if m and (ms.min() < _TS_SAFE[0] or ms.max() > _TS_SAFE[1]):
        created = from_values([iso_ms(x) for x in ms.tolist()])
    else:
        created = Vec("ts", ms, None)
    payloads = [r[2] if type(r[2]) is dict else {"value": r[2]} for r in rows]
    names: dict = {}
    for p in payloads:
        names.update(dict.fromkeys(p))
    fields = {name: from_values([p.get(name) for p in payloads]) for name in names}
    return m, Vec("int", seqs, None), created, fields
