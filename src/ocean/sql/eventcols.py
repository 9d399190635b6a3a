"""A page of a route's events, read from the engine's column chunks straight into ``Vec``s.

``Table.build`` appends events a page at a time; from dict records it types each field's
values with ``from_values``. Here a page is a list of parts (events.py ``View.pages``): a
sealed chunk and the positions of its rows in the page, or a list of event rows (the open
tail). Numbers, booleans and plain strings go from the chunk's typed columns to vectors with
numpy; whatever could type differently (an object column, a field typed differently in two
parts of one page, strings shaped like timestamps) goes through ``from_values`` on the
field's Python values, so every vector is the one ``from_values`` gives for the page.
"""
from __future__ import annotations

import numpy as np

from ..engine.chunks import bits_at
from ..model import iso_ms
from .vectors import Dictionary, Vec, from_values, kind_of

_KIND = {"i": "int", "f": "float", "b": "bool"}
_TS_SAFE = (0, 253_402_300_799_999)  # times whose ISO form is the 24-character one (1970..9999)


def page_columns(parts: list):
    """``(m, seqs, created, fields)`` of one page: its row count, the ``seq`` and ``created_at``
    vectors, and ``{field: Vec}`` in the order the page's rows first show each field."""
    segs = [_Segment(c, idx) if c is not None else _Rows(idx) for c, idx in parts]
    m = sum(s.m for s in segs)
    seqs = np.concatenate([s.seqs() for s in segs])
    ms = np.concatenate([s.ms() for s in segs])
    if len(ms) and (ms.min() < _TS_SAFE[0] or ms.max() > _TS_SAFE[1]):
        created = from_values([iso_ms(x) for x in ms.tolist()])
    else:
        created = Vec("ts", ms, None)
    names: dict = {}
    for s in segs:
        names.update(dict.fromkeys(s.names()))
    fields = {name: _field(segs, name, m) for name in names}
    return m, Vec("int", seqs, None), created, fields


def _field(segs: list, name: str, m: int) -> Vec:
    cols = [s.column(name) for s in segs]
    kinds = {"f" if c.kind == "n" else c.kind for c, _ in cols if c is not None}  # ints and floats: float
    chunked = all(type(s) is _Segment for s in segs)
    if chunked and len(kinds) == 1:
        kind = next(iter(kinds))
        if kind in _KIND:
            return _numbers(kind, cols, m)
        if kind == "s" and len(cols) == 1:
            vec = _strings(*cols[0])
            if vec is not None:
                return vec
    values: list = []
    for s, (c, idx) in zip(segs, cols):
        values += s.values(name, c, idx)
    return from_values(values)


def _numbers(kind: str, cols: list, m: int) -> Vec:
    """What ``from_values`` makes of ints, floats or bools (a chunk without the field: NULLs)."""
    dtype = {"i": np.int64, "f": np.float64, "b": bool}[kind]
    data = np.concatenate([np.zeros(len(idx), dtype) if c is None else _typed(c, idx) for c, idx in cols])
    valids = [np.zeros(len(idx), bool) if c is None else _valid(c, idx) for c, idx in cols]
    if all(v is None for v in valids):
        valid = None
    else:
        valid = np.concatenate([np.ones(len(idx), bool) if v is None else v for v, (_, idx) in zip(valids, cols)])
        if not valid.any():
            return Vec.nulls(m)
        data[~valid] = 0
    if any(c is not None and c.kind == "n" for c, _ in cols):  # ints and floats: the page may hold ints only
        ints = np.concatenate([c.is_int(idx) if c is not None and c.kind == "n" else np.zeros(len(idx), bool)
                               for c, idx in cols])
        if ints[valid].all() if valid is not None else ints.all():
            return Vec("int", data.astype(np.int64), valid)
    return Vec(_KIND[kind], data, valid)


def _typed(col, idx):
    return col.take(idx) if col.kind == "i" else col.data[idx]


def _valid(col, idx):
    return None if col.valid is None else bits_at(col.valid, idx)


def _strings(col, idx) -> Vec | None:
    """``encode_strings`` of one chunk's string rows, with numpy; None when they may be timestamps."""
    codes = col.data[idx].astype(np.int64)
    strings = col.strings
    null = [i for i, s in enumerate(strings.tolist()) if s is None]
    present = np.ones(len(codes), bool) if not null else ~np.isin(codes, null)
    if not present.any():
        return Vec.nulls(len(codes))
    first = strings[codes[np.argmax(present)]]
    if kind_of(first) == "ts":
        return None
    used, first_at = np.unique(codes[present], return_index=True)
    order = np.argsort(first_at, kind="stable")  # codes in the order the rows first show them
    mapping = np.full(len(strings) + 1, -1, np.int32)
    mapping[used[order]] = np.arange(len(used), dtype=np.int32)
    out = mapping[np.where(present, codes, len(strings))]
    return Vec("str", out, None, Dictionary(np.array(strings[used[order]].tolist() + [""], dtype=object)[:-1]))


class _Segment:
    """The rows ``idx`` of one sealed chunk (none of them has a non-object payload)."""

    def __init__(self, chunk, idx):
        self.chunk, self.idx, self.m = chunk, idx, len(idx)

    def seqs(self):
        return self.chunk.seq.take(self.idx)

    def ms(self):
        return self.chunk.ms.take(self.idx)

    def names(self):
        codes = self.chunk.shape_codes[self.idx]
        used, first_at = np.unique(codes, return_index=True)
        out: dict = {}
        for code in used[np.argsort(first_at, kind="stable")].tolist():
            out.update(dict.fromkeys(self.chunk.shapes[code]))
        return out

    def column(self, name):
        col = self.chunk.fields.get(name)
        return (col, self.idx)

    def values(self, name, col, idx):
        if col is None:
            return [None] * len(idx)
        lo = int(idx[0]) if len(idx) else 0
        some = col.values(lo, int(idx[-1]) + 1 if len(idx) else 0)
        return [some[i - lo] for i in idx.tolist()]


class _Rows:
    """Event rows as tuples (the open tail, or a chunk's rows holding a non-object payload)."""

    def __init__(self, rows):
        self.rows, self.m = rows, len(rows)
        self.payloads = [r[2] if type(r[2]) is dict else {"value": r[2]} for r in rows]

    def seqs(self):
        return np.array([r[0] for r in self.rows], np.int64)

    def ms(self):
        return np.array([r[1] for r in self.rows], np.int64)

    def names(self):
        out: dict = {}
        for p in self.payloads:
            out.update(dict.fromkeys(p))
        return out

    def column(self, name):
        return (None, None)

    def values(self, name, col, idx):
        return [p.get(name) for p in self.payloads]
