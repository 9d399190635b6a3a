"""Sealed column chunks: a run of one route's events as typed numpy columns, never changed.

An event is the row ``(seq, ms, payload, expires_ms, source)``. A ``Chunk`` holds a run of
them column by column:

* ``seq`` and ``ms``: integer columns (``IntColumn``: a base and the smallest unsigned offsets);
* ``expires``: ``None`` when no row expires, else int64 (0: never);
* ``source``: dictionary-coded (the distinct sources, ``None`` included, and a code per row);
* ``shape``: dictionary-coded: per row the tuple of the payload's field names in order, or
  ``None`` for a payload that is not an object (it sits in ``other``, by row), so key order and
  a missing field versus a null one come back exactly;
* one column per payload field: int (``IntColumn``), float64 and bool (with a validity bitmap
  where a row has no value), strings (dictionary-coded; ``None`` is a dictionary entry), and
  ``NumberColumn`` for a field of ints and floats (float64 and a bit per row for "was an int"),
  and ``ObjectColumn`` for anything else -- nested values, ints beyond int64, a field whose rows
  mix other types -- so every JSON value comes back with its own type (``1`` int, ``1.0`` float,
  ``True`` bool).

A chunk is immutable: removing rows (``keep`` expiry) or cutting the front (retention) makes a
new chunk that shares the arrays, so a snapshot, a forked child or an export holding the old
one keeps a consistent view. ``to_parts``/``from_parts`` are the snapshot's binary form.
"""
from __future__ import annotations

import numpy as np

_NONE = type(None)
_UNSIGNED = (np.dtype("<u1"), np.dtype("<u2"), np.dtype("<u4"))


def _narrow(values) -> tuple[int, np.ndarray]:
    """``(base, offsets)`` in the smallest unsigned dtype, or ``(0, int64)`` for a wide range.

    PERF: the issue's events (seq, ms, status 200|404) take 1-4 bytes a column instead of 8:
    36 -> 17 B/event in a sealed chunk of 16,384 (measured with ``Chunk.nbytes``)."""
    arr = np.asarray(values, dtype=np.int64)
    if not len(arr):
        return 0, arr
    lo, hi = int(arr.min()), int(arr.max())
    for dt in _UNSIGNED:
        if hi - lo <= np.iinfo(dt).max:
            return lo, (arr - lo).astype(dt)
    return 0, arr


def _codes(count: int) -> np.dtype:
    return next(dt for dt in _UNSIGNED if count - 1 <= np.iinfo(dt).max)


def _encode(values) -> tuple[list, np.ndarray]:
    """``(distinct values in first-seen order, a code per value)``.

    PERF: a single distinct value (a route's one source, its one shape) costs no per-row Python
    work; many cost what a ``setdefault`` comprehension did (~0.9 ms for 16,384 paths). Sealing
    the issue's events went from 0.78 to 0.56 us a row."""
    uniq = list(dict.fromkeys(values))
    dtype = _codes(max(1, len(uniq)))
    if len(uniq) <= 1:
        return uniq, np.zeros(len(values), dtype)
    index = {v: i for i, v in enumerate(uniq)}
    return uniq, np.fromiter(map(index.__getitem__, values), dtype, len(values))


class IntColumn:
    """int64 values as ``base + offsets``; ``valid`` (packed bits) where some rows have none."""
    __slots__ = ("base", "data", "valid")
    kind = "i"

    def __init__(self, base, data, valid=None):
        self.base, self.data, self.valid = base, data, valid

    def values(self, lo: int, hi: int) -> list:
        out = (self.data[lo:hi].astype(np.int64) + self.base).tolist()
        return _mask(out, self.valid, lo, hi)

    def array(self) -> np.ndarray:
        return self.data.astype(np.int64) + self.base

    def take(self, idx: np.ndarray) -> np.ndarray:
        """The int64 values at the (ascending) positions ``idx``, validity aside."""
        return self.data[idx].astype(np.int64) + self.base

    def slice(self, lo, hi):
        return IntColumn(self.base, self.data[lo:hi], _slice_bits(self.valid, lo, hi))


class PlainColumn:
    """float64 (``kind`` "f") or bool ("b") values; ``valid`` as in ``IntColumn``."""
    __slots__ = ("kind", "data", "valid")

    def __init__(self, kind, data, valid=None):
        self.kind, self.data, self.valid = kind, data, valid

    def values(self, lo, hi):
        return _mask(self.data[lo:hi].tolist(), self.valid, lo, hi)

    def slice(self, lo, hi):
        return PlainColumn(self.kind, self.data[lo:hi], _slice_bits(self.valid, lo, hi))


class StringColumn:
    """Strings as codes into ``strings`` (an object array; ``None`` may be one of them)."""
    __slots__ = ("strings", "data")
    kind = "s"
    valid = None

    def __init__(self, strings, data):
        self.strings, self.data = strings, data

    def values(self, lo, hi):
        return self.strings[self.data[lo:hi]].tolist()

    def slice(self, lo, hi):
        return StringColumn(self.strings, self.data[lo:hi])


class ObjectColumn:
    """The fallback: one Python (JSON) value per row, ``None`` where the row has none."""
    __slots__ = ("data",)
    kind = "o"
    valid = None

    def __init__(self, data):
        self.data = data

    def values(self, lo, hi):
        return self.data[lo:hi]

    def slice(self, lo, hi):
        return ObjectColumn(self.data[lo:hi])


def _mask(out: list, valid, lo, hi) -> list:
    if valid is not None:
        for k in np.flatnonzero(~_bits(valid, lo, hi)).tolist():
            out[k] = None
    return out


def _bits(packed, lo, hi) -> np.ndarray:
    first = lo & 7
    return np.unpackbits(packed[lo >> 3:(hi + 7) >> 3])[first:first + hi - lo].astype(bool)


def bits_at(packed, idx: np.ndarray) -> np.ndarray:
    """The bits at the ascending positions ``idx`` (unpacking only the bytes they span)."""
    if not len(idx):
        return np.zeros(0, bool)
    lo = int(idx[0])
    return _bits(packed, lo, int(idx[-1]) + 1)[idx - lo]


def _slice_bits(packed, lo, hi):
    return None if packed is None else np.packbits(_bits(packed, lo, hi))


def column_of(vals: list, n: int, memo: dict):
    """The typed column for one field's values (``None``: no value in that row)."""
    types = set(map(type, vals))
    has_none = _NONE in types
    types.discard(_NONE)
    if not types:  # only nulls and missing fields: the cheapest column
        return StringColumn(np.array([None], object), np.zeros(n, np.uint8))
    if types == _MIXED:
        return _numbers(vals, n, has_none) or ObjectColumn(vals)
    if len(types) > 1:
        return ObjectColumn(vals)
    kind = types.pop()
    if kind is str:
        uniq, codes = _encode(vals)
        strings = np.empty(len(uniq), object)
        strings[:] = [memo.setdefault(s, s) if s is not None else None for s in uniq]
        return StringColumn(strings, codes)
    if kind not in (int, float, bool):
        return ObjectColumn(vals)
    valid, given = None, vals
    if has_none:
        present = np.fromiter((v is not None for v in vals), bool, n)
        valid = np.packbits(present)
        vals = [0 if v is None else v for v in vals]
    if kind is int:
        try:
            base, data = _narrow(vals)
        except OverflowError:  # beyond int64
            return ObjectColumn(given)
        return IntColumn(base, data, valid)
    return PlainColumn("f" if kind is float else "b", np.array(vals, np.float64 if kind is float else bool), valid)


_MIXED = {int, float}
_EXACT = 1 << 53  # ints a float64 holds exactly


def _numbers(vals: list, n: int, has_none: bool):
    """A ``NumberColumn`` for a field of ints and floats (None if an int is beyond 2**53).

    PERF: JSON writers print 12.0 as 12 (JavaScript's JSON.stringify does), so a field of floats
    often holds some ints; the fallback column holds a pointer and a float object (32 B) a value,
    this one 8 B and 1-2 bits."""
    if any(type(v) is int and not -_EXACT <= v <= _EXACT for v in vals):
        return None
    valid = np.packbits(np.fromiter((v is not None for v in vals), bool, n)) if has_none else None
    ints = np.packbits(np.fromiter((type(v) is int for v in vals), bool, n))
    data = np.array([0.0 if v is None else v for v in vals] if has_none else vals, np.float64)
    return NumberColumn(data, ints, valid)


class NumberColumn:
    """Ints and floats in one float64 column; ``ints`` (packed bits) marks the rows that were ints."""
    __slots__ = ("data", "ints", "valid")
    kind = "n"

    def __init__(self, data, ints, valid=None):
        self.data, self.ints, self.valid = data, ints, valid

    def values(self, lo, hi):
        out = self.data[lo:hi].tolist()
        for k in np.flatnonzero(_bits(self.ints, lo, hi)).tolist():
            out[k] = int(out[k])
        return _mask(out, self.valid, lo, hi)

    def is_int(self, idx) -> np.ndarray:
        return bits_at(self.ints, idx)

    def slice(self, lo, hi):
        return NumberColumn(self.data[lo:hi], _slice_bits(self.ints, lo, hi), _slice_bits(self.valid, lo, hi))


class Chunk:
    """A run of events as columns (see the module docstring); ``dead`` marks rows removed since."""
    __slots__ = ("n", "seq", "ms", "expires", "sources", "source_codes", "shapes", "shape_codes",
                 "fields", "other", "dead", "live", "expiring", "first_seq", "last_seq")

    def __init__(self, n, seq, ms, expires, sources, source_codes, shapes, shape_codes, fields, other, dead=None):
        self.n, self.seq, self.ms, self.expires = n, seq, ms, expires
        self.sources, self.source_codes = sources, source_codes
        self.shapes, self.shape_codes = shapes, shape_codes
        self.fields, self.other, self.dead = fields, other, dead
        self.live = n - (int(dead.sum()) if dead is not None else 0)
        self.expiring = 0 if expires is None else int(np.count_nonzero(expires if dead is None else expires[~dead]))
        self.first_seq = seq.base + int(seq.data[0]) if n else 0
        self.last_seq = seq.base + int(seq.data[-1]) if n else 0

    @classmethod
    def seal(cls, rows: list, memo: dict) -> Chunk:
        """The chunk of ``rows`` (event tuples, oldest first); ``memo`` shares strings between chunks.

        PERF: a field's values are gathered per shape with one list comprehension: ``zip`` over each
        row's ``dict.values()`` made an object per row and, with the collector on, cost 2.4 us a
        row against 0.5 now (16,384 of the issue's events, taken from a real ingest's tail)."""
        n = len(rows)
        seqs, mss, payloads, exps, srcs = zip(*rows) if n else ((),) * 5
        base, data = _narrow(seqs)
        seq = IntColumn(base, data)
        ms = IntColumn(*_narrow(mss))
        expires = np.array(exps, np.int64) if any(exps) else None
        src_list, src_codes = _encode(srcs)
        sources = np.empty(len(src_list), object)
        sources[:] = [memo.setdefault(s, s) if s is not None else None for s in src_list]
        shapes, codes = _encode([tuple(p) if type(p) is dict else None for p in payloads])
        other = {i: p for i, p in enumerate(payloads) if type(p) is not dict} if None in shapes else None
        parts: dict = {}  # field -> [(row indices or None for all, values tuple)]
        for code, shape in enumerate(shapes):
            if shape is None or not shape:
                continue
            if len(shapes) == 1:
                idx, group = None, payloads
            else:
                idx = np.flatnonzero(codes == code)
                group = [payloads[i] for i in idx.tolist()]
            for name in shape:
                parts.setdefault(memo.setdefault(name, name), []).append((idx, [p[name] for p in group]))
        fields = {}
        for name, pieces in parts.items():
            if len(pieces) == 1 and pieces[0][0] is None:
                vals = pieces[0][1]
            else:
                arr = np.full(n, None, object)
                for idx, v in pieces:
                    arr[idx] = v
                vals = arr.tolist()
            fields[name] = column_of(vals, n, memo)
        shapes = [tuple(memo.setdefault(k, k) for k in s) if s is not None else None for s in shapes]
        return cls(n, seq, ms, expires, sources, src_codes, shapes, codes, fields, other)

    # -- reading ---------------------------------------------------------------
    def index(self, seq: int) -> int:
        """How many rows have a seq < ``seq``."""
        if seq <= self.first_seq:
            return 0
        if seq > self.last_seq:
            return self.n
        return int(np.searchsorted(self.seq.data, seq - self.seq.base, "left"))

    def seqs(self) -> np.ndarray:
        return self.seq.array()

    def rows(self, lo: int, hi: int) -> list[tuple]:
        """The live rows in ``[lo, hi)`` as event tuples, oldest first (removed rows skipped)."""
        hi = min(hi, self.n)
        if hi <= lo:
            return []
        seqs = self.seq.values(lo, hi)
        mss = self.ms.values(lo, hi)
        exps = self.expires[lo:hi].tolist() if self.expires is not None else [0] * (hi - lo)
        srcs = self.sources[self.source_codes[lo:hi]].tolist()
        payloads = self.payloads(lo, hi)
        out = list(zip(seqs, mss, payloads, exps, srcs))
        if self.dead is not None:
            out = [r for r, d in zip(out, self.dead[lo:hi].tolist()) if not d]
        return out

    def payloads(self, lo: int, hi: int) -> list:
        cols = {name: col.values(lo, hi) for name, col in self.fields.items()}
        shapes = self.shapes
        if len(shapes) == 1 and shapes[0] is not None:
            shape = shapes[0]
            if not shape:
                return [{} for _ in range(hi - lo)]
            return [dict(zip(shape, t)) for t in zip(*[cols[k] for k in shape])]
        out = []
        other = self.other
        for r, code in enumerate(self.shape_codes[lo:hi].tolist()):
            shape = shapes[code]
            if shape is None:
                out.append(other[lo + r])
            else:
                out.append({k: cols[k][r] for k in shape})
        return out

    # -- new chunks from this one ----------------------------------------------
    def without(self, hit: np.ndarray) -> Chunk:
        """This chunk with the rows where ``hit`` is true removed (the arrays are shared)."""
        dead = hit if self.dead is None else (self.dead | hit)
        return Chunk(self.n, self.seq, self.ms, self.expires, self.sources, self.source_codes, self.shapes,
                     self.shape_codes, self.fields, self.other, dead)

    def cut(self, lo: int) -> Chunk:
        """The rows from ``lo`` on (retention cut the front); the arrays are views of these."""
        n = self.n
        other = None if self.other is None else {r - lo: p for r, p in self.other.items() if r >= lo}
        return Chunk(n - lo, self.seq.slice(lo, n), self.ms.slice(lo, n),
                     None if self.expires is None else self.expires[lo:], self.sources, self.source_codes[lo:],
                     self.shapes, self.shape_codes[lo:], {k: c.slice(lo, n) for k, c in self.fields.items()},
                     other, None if self.dead is None else self.dead[lo:])

    def alive(self) -> np.ndarray:
        return np.ones(self.n, bool) if self.dead is None else ~self.dead

    def nbytes(self) -> int:
        """Bytes of the arrays (not the shared dictionaries): the columns' memory."""
        total = self.seq.data.nbytes + self.ms.data.nbytes + self.source_codes.nbytes + self.shape_codes.nbytes
        total += 0 if self.expires is None else self.expires.nbytes
        for col in self.fields.values():
            total += col.data.nbytes if hasattr(col.data, "nbytes") else 8 * len(col.data)
            total += 0 if col.valid is None else col.valid.nbytes
        return total
