"""The sealed part of a route's SQL table: the engine's event chunks, read in place by each query.

A route's events live in the engine's sealed chunks (engine/chunks.py: immutable; removing rows
makes new chunk objects) and its open tail. The table (columns.py) keeps rows of its own only
for entities and for events not sealed yet; ``Sealed`` keeps references to the chunks as the
engine had them at the table's last refresh, and a query (``Scan``) assembles just the columns
it reads from them, dropped with the query: no second copy of the events.

Kept between queries, all small: per chunk dictionary its ``StrFacts`` and the map of its codes
into the table's dictionary of that field (``TableStrings``), per fully live chunk the fields it
holds values in. They go when their chunks leave the log (``update``); a field's
``TableStrings`` (its distinct strings, first seen first) stays for the table's life.
"""
from __future__ import annotations

import numpy as np

from .eventcols import IntPart, StrFacts, StrPart, created_part, field_part, live_rows, present_fields, size
from .vectors import Dictionary, Vec, as_kind, concat, merge_kinds


_EMPTY = Dictionary(np.zeros(0, object))
_DTYPES = {"bool": bool, "int": np.int64, "float": np.float64, "ts": np.int64}


class TableStrings:
    """The distinct strings of one field, with stable codes (a query's ``str`` vectors index it)."""
    __slots__ = ("values", "index", "_dict", "_len")

    def __init__(self):
        self.values: list = []
        self.index: dict = {}
        self._dict = None
        self._len = -1

    def codes(self, strings) -> np.ndarray:
        """The codes of ``strings`` (None: -1, new strings added) and one more entry, -1, for NULL code -1."""
        index, values = self.index, self.values
        out = np.empty(len(strings) + 1, np.int32)
        for i, s in enumerate(strings):
            if s is None:
                out[i] = -1
                continue
            code = index.get(s)
            if code is None:
                code = index[s] = len(values)
                values.append(s)
            out[i] = code
        out[-1] = -1
        return out

    def dictionary(self) -> Dictionary:
        if self._len != len(self.values):  # a new object only when strings were added (ranks stay cached)
            self._dict = Dictionary(np.array(self.values + [""], dtype=object)[:-1])
            self._len = len(self.values)
        return self._dict

    def nbytes(self) -> int:
        return 8 * len(self.values) + 100 * len(self.index)  # list slots and dict entries (the strings are shared)


class Sealed:
    """The sealed chunks of one route's events as its table last saw them (references, see the module doc)."""

    def __init__(self):
        self.chunks: tuple = ()
        self.now = 0  # the time of the last refresh: rows that expired by then are left out
        self.covered = -1  # the highest seq a sealed chunk has held: events up to it are read from chunks
        self.strings: dict[str, TableStrings] = {}
        self._facts: dict = {}  # id(chunk dictionary) -> (dictionary, StrFacts)
        self._maps: dict = {}  # (field, id(chunk dictionary)) -> (dictionary, codes in the field's TableStrings)
        self._own: dict = {}  # field -> (Dictionary of the table's own rows, codes in TableStrings)
        self._present: dict = {}  # id(chunk) -> (chunk, fields it holds values in), for chunks all live
        self._kinds: dict = {}  # id(chunk) -> (chunk, {column: kind of its rows}), for chunks all live

    def update(self, chunks: tuple, now_ms: int) -> list:
        """Take the engine's chunks as they are now; returns the ones not seen before."""
        self.now = now_ms
        if chunks is self.chunks:
            return []
        seen = {id(c) for c in self.chunks}
        new = [c for c in chunks if id(c) not in seen]
        self.chunks = chunks
        if chunks:
            self.covered = max(self.covered, chunks[-1].last_seq)
        held = {id(col.strings) for c in chunks for col in c.fields.values() if col.kind == "s"}
        self._facts = {k: v for k, v in self._facts.items() if k in held}
        self._maps = {k: v for k, v in self._maps.items() if k[1] in held}
        ids = {id(c) for c in chunks}
        self._present = {k: v for k, v in self._present.items() if k in ids}
        self._kinds = {k: v for k, v in self._kinds.items() if k in ids}
        return new

    def facts(self, strings) -> StrFacts:
        hit = self._facts.get(id(strings))
        if hit is None:
            hit = self._facts[id(strings)] = (strings, StrFacts(strings))
        return hit[1]

    def present(self, chunk, idx) -> set:
        if idx is not None:
            return present_fields(chunk, idx, self.facts)
        hit = self._present.get(id(chunk))
        if hit is None:
            hit = self._present[id(chunk)] = (chunk, present_fields(chunk, None, self.facts))
        return hit[1]

    def kind(self, chunk, idx, name: str, compute) -> str:
        if idx is not None:
            return compute(chunk, idx)
        hit = self._kinds.get(id(chunk))
        if hit is None:
            hit = self._kinds[id(chunk)] = (chunk, {})
        kind = hit[1].get(name)
        if kind is None:
            kind = hit[1][name] = compute(chunk, None)
        return kind

    def chunk_codes(self, name: str, strings) -> np.ndarray:
        key = (name, id(strings))
        hit = self._maps.get(key)
        if hit is None:
            table = self.strings.setdefault(name, TableStrings())
            hit = self._maps[key] = (strings, table.codes(strings.tolist()))
        return hit[1]

    def own_codes(self, name: str, dictionary: Dictionary) -> np.ndarray:
        hit = self._own.get(name)
        if hit is None or hit[0] is not dictionary:
            table = self.strings.setdefault(name, TableStrings())
            hit = self._own[name] = (dictionary, table.codes(dictionary.values.tolist()))
        return hit[1]

    def nbytes(self) -> int:
        """Bytes this keeps between queries (code maps and dictionaries; the chunks are the engine's)."""
        total = sum(t.nbytes() for t in self.strings.values())
        total += sum(m.nbytes for _, m in self._maps.values()) + sum(m.nbytes for _, m in self._own.values())
        total += sum(f.ms.nbytes for _, f in self._facts.values() if f.ms is not None)  # 8 B a timestamp text
        return total


class Scan:
    """One query's reading of the sealed chunks: each one's rows live at the refresh's time."""

    def __init__(self, sealed: Sealed):
        self.sealed = sealed
        self.segments = [(c, live_rows(c, sealed.now)) for c in sealed.chunks]
        sizes = [size(c, idx) for c, idx in self.segments]
        self.starts = np.cumsum([0] + sizes)  # where each chunk's rows begin among the scan's
        self.n = int(self.starts[-1])

    def present(self) -> set:
        out: set = set()
        for chunk, idx in self.segments:
            out |= self.sealed.present(chunk, idx)
        return out

    def parts(self, name: str, system: bool) -> list:
        """The vectors (or ``StrPart``s) of column ``name`` over the chunks, one a chunk."""
        return [self._part(c, idx, name, system) for c, idx in self.segments]

    def parts_at(self, name: str, system: bool, rows: np.ndarray, kinds: list) -> list:
        """``parts`` of just the scan's rows ``rows`` (ascending): None for a chunk holding none of
        them; ``kinds``: each chunk's kind as a whole (``kinds``)."""
        out = []
        bounds = np.searchsorted(rows, self.starts)
        for (chunk, idx), start, lo, hi, kind in zip(self.segments, self.starts.tolist(), bounds.tolist(),
                                                      bounds[1:].tolist(), kinds):
            local = rows[lo:hi] - start
            out.append(self._part(chunk, local if idx is None else idx[local], name, system, kind)
                       if hi > lo else None)
        return out

    def kinds(self, name: str, system: bool) -> list:
        """The kind of column ``name`` over each chunk's rows (some of them may type narrower)."""
        return [self.sealed.kind(chunk, idx, name, lambda c, i: self._part(c, i, name, system).kind)
                for chunk, idx in self.segments]

    def _part(self, chunk, idx, name: str, system: bool, whole: str | None = None):
        if not system:
            return field_part(chunk, name, idx, self.sealed.facts, whole)
        if name == "created_at":
            return created_part(chunk, idx)
        m = size(chunk, idx)
        if name == "key":  # text, NULL in every event (a table's ``key`` is a text column)
            return Vec("str", np.full(m, -1, np.int32), None, _EMPTY)
        return Vec.nulls(m)  # updated_at: events have none


def assemble(sealed: Sealed, name: str, parts: list, n: int, kinds: list | None = None) -> Vec:
    """The rows of ``parts`` one after another as one vector, typed as a table's column widens
    while it appends them. ``kinds``: the kind of each part's whole chunk when ``parts`` hold some
    of the rows only (None: a chunk none of whose rows are wanted)."""
    chain, kind = [], "null"  # the column's kind after each part, as it widened
    kinds = kinds if kinds is not None else [p.kind for p in parts]
    for k in kinds:
        kind = merge_kinds(kind, k)
        chain.append(kind)
    held = [(i, p) for i, p in enumerate(parts) if p is not None]
    parts = [p for _, p in held]
    if kind == "null":
        return Vec.nulls(n)
    if kind == "str":
        return _strings(sealed, name, parts)
    if kind == "obj":  # each part as the column had it: ints a later real widened stay reals
        vecs = []
        for i, p in held:
            if type(p) is StrPart:  # text (timestamps too) -> text: the same strings
                vecs.append(p.vec("obj"))
                continue
            for k in dict.fromkeys([kinds[i]] + chain[i:]):  # its chunk's kind first, then the widenings
                if k not in (p.kind, "null"):
                    p = as_kind(p, k)
            vecs.append(p)
        return concat(vecs) if vecs else Vec("obj", np.empty(0, object))
    if len(parts) == 1 and type(parts[0]) is Vec:
        return parts[0] if parts[0].kind == kind else as_kind(parts[0], kind)
    return _numbers(kind, parts, n)


def _numbers(kind: str, parts: list, n: int) -> Vec:
    """PERF: one output array, each part written into its slice: building a vector per chunk and
    concatenating them moved every value twice (the issue's group-by-path query at 1M events:
    ~12 ms of assembly against ~6 ms)."""
    out = np.empty(n, _DTYPES[kind])
    valid = None
    lo = 0
    for p in parts:
        if type(p) is StrPart:
            p = p.vec(kind)
        hi = lo + len(p)
        if type(p) is IntPart:
            p.fill(out[lo:hi])
        elif p.kind == "null":
            out[lo:hi] = 0
        else:
            out[lo:hi] = p.data
        pvalid = p.valid if p.kind != "null" else False
        if pvalid is not None:
            if valid is None:
                valid = np.ones(n, bool)
            valid[lo:hi] = pvalid
        lo = hi
    return Vec(kind, out, valid)


def _strings(sealed: Sealed, name: str, parts: list) -> Vec:
    held = [p for p in parts if p.kind != "null" and not (type(p) is Vec and p.kind == "str" and not len(p.dict))]
    if not parts:
        return Vec("str", np.zeros(0, np.int32), None, _EMPTY)
    if not held or (len(held) == 1 and type(held[0]) is Vec and held[0].kind == "str"):
        # e.g. ``key``: the own rows' dictionary as it is, NULL in every event
        codes = [p.data if held and p is held[0] else np.full(len(p), -1, np.int32) for p in parts]
        return Vec("str", codes[0] if len(codes) == 1 else np.concatenate(codes), None,
                   held[0].dict if held else _EMPTY)
    out = np.empty(sum(len(p) for p in parts), np.int32)
    lo = 0
    for p in parts:
        hi = lo + len(p)
        if p.kind == "null":
            out[lo:hi] = -1
        elif type(p) is StrPart:
            np.take(sealed.chunk_codes(name, p.strings), p.codes, out=out[lo:hi], mode="clip")  # "raise" buffers `out`
        else:
            v = as_kind(p, "str")
            np.take(sealed.own_codes(name, v.dict), v.data, out=out[lo:hi], mode="wrap")  # -1 (NULL): the last entry
        lo = hi
    return Vec("str", out, None, sealed.strings[name].dictionary())
