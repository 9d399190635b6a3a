"""The column store: one columnar table per route, kept current as writes arrive.

``store_for(engine)`` gives the engine's one ``ColumnStore`` (it registers
itself as an engine listener once). A route's ``Table`` is built from
``engine.route_entities`` and ``engine.route_event_view`` (``route_events`` records
for an engine without chunks) the first time a query reads it; after that the
listener callbacks only note what changed (a dirty key, a new event record, removed
event seqs) and the next query patches just those rows. Tables are never rebuilt per query.

The engine's sealed event chunks are not copied: the table keeps references to them
(``sealed``: sealed.py) and each query assembles the columns it reads from them, besides
the table's own rows (``StoreColumn``s): entities, and events not sealed yet (the open tail
at the build, events noted since). Each refresh takes the engine's chunks as they are
then (a removal makes new chunk objects, so removed events are gone from them) and drops
its own rows of events that were sealed since.

Rows: entities (``key``, ``created_at``, ``updated_at``, every payload field
with counters merged) and events (``key`` NULL, ``created_at`` set,
``updated_at`` NULL): the sealed events first, then the table's own rows in the
order they were first seen. A non-object payload is the column ``value``. A payload
field named like a system column is hidden by it.

A sketch field (uniq, dist) reads as its summary, like any field (a uniq field is an integer
column); beside it the table keeps the sketch objects themselves in ``sketches`` (object
columns, not in ``*``), which only ``uniq_merge``/``quantile_merge`` read (``TableView.sketch``).

NOTE: listener callbacks run on the writer's thread right after each write;
they take one small lock and append, nothing more.

A first build reads the route's entities (and an engine's events without chunks) in pages
of ``BUILD_PAGE`` rows and calls the store's ``turn`` hook (set by the web layer: the event
loop's turn) after each, so a big route never holds the other requests for the whole build.
Writes that land during the build are noted like any other and patched in by the refresh
that follows.
"""
from __future__ import annotations

import itertools
import threading
import weakref

import numpy as np

from ..model import prefix_matches
from .eventcols import chunk_fields, rows_columns
from .sealed import Scan, Sealed, assemble
from .vectors import (Dictionary, Vec, as_kind, concat, encode_strings, from_values, kind_of, merge_kinds,
                      parse_ts_canonical)

SYSTEM = ("key", "created_at", "updated_at")
# PERF: the whole route was built in one go before: 3.2 s at 1M events, and every request waited
# for it. Served, pages of 10,000 / 5,000 rows left the worst GET /health wait at 107 / 77-104 ms
# on this shared box. In process at 1M events, 5,000-row pages: median 10.7 ms, worst 51 ms;
# 2,000: median 4.2 ms, worst 21 ms (the first page, which lists the route's events), and the
# whole build took the same 2.2 s.
BUILD_PAGE = 2_000
_DTYPES = {"bool": bool, "int": np.int64, "float": np.float64, "ts": np.int64, "str": np.int32, "obj": object}


class StoreColumn:
    """One growable typed column with a null mask (its kind widens as values demand)."""

    __slots__ = ("kind", "data", "valid", "n", "nulls", "strings", "index", "_dict", "_dict_len", "hint")

    def __init__(self, n: int = 0, hint: int = 0):
        self.hint = hint  # rows expected (a first build knows them): buffers are sized once, not doubled
        self.kind = "null"
        self.data = None
        self.valid = None
        self.n = n
        self.nulls = n  # NULL rows (numeric kinds: rows with valid False)
        self.strings: list = []
        self.index: dict = {}
        self._dict = None
        self._dict_len = -1

    # -- buffers -------------------------------------------------------------
    def _reserve(self, size: int) -> None:
        if self.kind == "null" or len(self.data) >= size:
            return
        cap = max(size, 2 * len(self.data), 64) if size > self.hint else self.hint
        data = np.empty(cap, self.data.dtype)
        data[:self.n] = self.data[:self.n]
        self.data = data
        if self.valid is not None:
            valid = np.zeros(cap, bool)
            valid[:self.n] = self.valid[:self.n]
            self.valid = valid

    def _convert(self, kind: str) -> None:
        """Widen this column to ``kind`` (``merge_kinds`` decided it)."""
        if kind == self.kind:
            return
        cap = max(64, self.n, self.hint)
        if self.kind == "null":
            if kind == "str":
                self.data = np.full(cap, -1, np.int32)
            elif kind == "obj":
                self.data = np.full(cap, None, object)
            else:
                self.data = np.zeros(cap, _DTYPES[kind])
                self.valid = np.zeros(cap, bool)
            self.kind = kind
            return
        old = self.vec()
        new = as_kind(old, kind)
        self.kind = kind
        self.data = np.empty(cap, _DTYPES[kind]) if kind != "obj" else np.full(cap, None, object)
        self.valid = None
        self.strings, self.index, self._dict, self._dict_len = [], {}, None, -1
        if kind == "str":
            self.data[:] = -1
            self.data[:self.n] = self._map_codes(new)
        elif kind == "obj":
            self.data[:self.n] = new.data
        else:
            self.valid = np.zeros(cap, bool)
            self.data[:self.n] = new.data
            self.valid[:self.n] = True if new.valid is None else new.valid

    def _map_codes(self, vec: Vec) -> np.ndarray:
        """Codes of a ``str`` vector's values in this column's dictionary (adding new strings)."""
        index, strings = self.index, self.strings
        mapping = np.empty(len(vec.dict.values) + 1, np.int32)
        for i, s in enumerate(vec.dict.values.tolist()):
            code = index.get(s)
            if code is None:
                code = index[s] = len(strings)
                strings.append(s)
            mapping[i] = code
        mapping[-1] = -1
        return mapping[vec.data]

    # -- writes --------------------------------------------------------------
    def extend_nulls(self, count: int) -> None:
        """Append ``count`` NULL rows."""
        if count <= 0:
            return
        if self.kind != "null":
            self._reserve(self.n + count)
            lo, hi = self.n, self.n + count
            if self.kind == "str":
                self.data[lo:hi] = -1
            elif self.kind == "obj":
                self.data[lo:hi] = None
            else:
                self.valid[lo:hi] = False
        self.n += count
        self.nulls += count

    def extend(self, vec: Vec) -> None:
        """Append the rows of ``vec`` (widening this column's kind if needed)."""
        m = len(vec.data)
        kind = merge_kinds(self.kind, vec.kind)
        self._convert(kind)
        if kind == "null":
            self.n += m
            self.nulls += m
            return
        vec = as_kind(vec, kind)
        self._reserve(self.n + m)
        lo, hi = self.n, self.n + m
        if kind == "str":
            codes = self._map_codes(vec)
            self.data[lo:hi] = codes
            self.nulls += int((codes < 0).sum())
        elif kind == "obj":
            self.data[lo:hi] = vec.data
            self.nulls += int(np.equal(vec.data, None).sum())
        else:
            self.data[lo:hi] = vec.data
            if vec.valid is None:
                self.valid[lo:hi] = True
            else:
                self.valid[lo:hi] = vec.valid
                self.nulls += int(m - vec.valid.sum())
        self.n = hi

    def set(self, row: int, value) -> None:
        """Overwrite one row (an entity that changed)."""
        vkind = kind_of(value)
        if vkind == "ts":
            ms = parse_ts_canonical(value)
            if ms is None:  # shaped like a timestamp, but no such date: plain text
                vkind = "str"
        kind = merge_kinds(self.kind, vkind)
        if kind != self.kind:
            self._convert(kind)
        if kind == "null":
            return
        if kind == "str":
            was_null = self.data[row] < 0
            if value is None:
                code = -1
            else:
                if type(value) is not str:  # pragma: no cover - merge_kinds keeps str columns str
                    value = str(value)
                code = self.index.get(value)
                if code is None:
                    code = self.index[value] = len(self.strings)
                    self.strings.append(value)
            self.data[row] = code
            self.nulls += (code < 0) - was_null
        elif kind == "obj":
            self.nulls += (value is None) - (self.data[row] is None)
            self.data[row] = value
        else:
            was_null = not self.valid[row]
            if value is None:
                self.valid[row] = False
            else:
                if kind == "ts":
                    value = ms
                self.data[row] = value
                self.valid[row] = True
            self.nulls += (value is None) - was_null

    def set_many(self, rows: np.ndarray, vec: Vec) -> None:
        """Overwrite rows ``rows`` (distinct positions) with the values of ``vec``, typed once."""
        kind = merge_kinds(self.kind, vec.kind)
        self._convert(kind)
        if kind == "null":
            return
        vec = as_kind(vec, kind)
        if kind == "str":
            codes = self._map_codes(vec)
            self.nulls += int((codes < 0).sum()) - int((self.data[rows] < 0).sum())
            self.data[rows] = codes
        elif kind == "obj":
            self.nulls += int(np.equal(vec.data, None).sum()) - int(np.equal(self.data[rows], None).sum())
            self.data[rows] = vec.data
        else:
            was_null = int((~self.valid[rows]).sum())
            self.data[rows] = vec.data
            if vec.valid is None:
                self.valid[rows] = True
                self.nulls -= was_null
            else:
                self.valid[rows] = vec.valid
                self.nulls += int((~vec.valid).sum()) - was_null

    def compact(self, keep: np.ndarray) -> None:
        """Keep only rows ``keep`` (ascending positions), dropping removed rows."""
        if self.kind != "null":
            self.data = self.data[keep].copy()
            if self.valid is not None:
                self.valid = self.valid[keep].copy()
                self.nulls = int(len(keep) - self.valid.sum())
            elif self.kind == "str":
                self.nulls = int((self.data < 0).sum())
            else:
                self.nulls = int(np.equal(self.data, None).sum())
        else:
            self.nulls = len(keep)
        self.n = len(keep)

    # -- reads ---------------------------------------------------------------
    def vec(self) -> Vec:
        """The column's current rows as a ``Vec`` (views, no copy)."""
        n = self.n
        if self.kind == "null":
            return Vec.nulls(n)
        if self.kind == "str":
            if self._dict_len != len(self.strings):
                self._dict = Dictionary(np.array(self.strings + [""], dtype=object)[:-1])
                self._dict_len = len(self.strings)
            return Vec("str", self.data[:n], None, self._dict)
        if self.kind == "obj":
            return Vec("obj", self.data[:n])
        return Vec(self.kind, self.data[:n], None if self.nulls == 0 else self.valid[:n])


class Table:
    """The columnar table of one route, patched from the listener's notes at each query."""

    def __init__(self, route: str):
        self.route = route
        self.n = 0
        self.columns: dict[str, StoreColumn] = {name: StoreColumn() for name in SYSTEM}
        self.fields: dict[str, StoreColumn] = {}  # payload fields, in the order first seen
        self.seq = StoreColumn()  # event seqs (NULL for entities), to find removed events
        self.sketches: dict[str, StoreColumn] = {}  # sketch objects of uniq/dist fields (see the module doc)
        self.live = np.ones(64, bool)
        self.dead = 0
        self.key_row: dict[str, int] = {}
        self.lock = threading.RLock()  # held by a query while it patches and reads
        self.pending_lock = threading.Lock()  # held by listener callbacks only to append
        self.dirty: set = set()
        self.new_events: list = []
        self.removed_seqs: list = []
        self.loaded_seq = -1
        self.hint = 0  # rows a first build expects (see build)
        self.builds = 0  # full builds (1 for the table's life, unless the engine is replaced)
        self.patched_rows = 0  # rows patched incrementally since the build
        self.sealed: Sealed | None = None  # the engine's sealed event chunks (an engine that has them)

    # -- notes from the listener (cheap) ---------------------------------------
    def note_entity(self, key: str) -> None:
        with self.pending_lock:
            self.dirty.add(key)

    def note_event(self, record: dict) -> None:
        with self.pending_lock:
            self.new_events.append(record)

    def note_removed(self, seqs) -> None:
        with self.pending_lock:
            self.removed_seqs.extend(seqs)

    # -- building and patching ---------------------------------------------------
    def build(self, engine, turn=None) -> None:
        """Load the route's current entities and events (the first query of this route).

        ``turn`` (if given) runs after each page of ``BUILD_PAGE`` rows: other requests go on
        meanwhile, and what they write is noted and patched in by the next ``refresh``.
        """
        # PERF: at 10M events, every column doubling its buffer in the same page copied ~0.5 GB in
        # one go (a 1.1 s wait for every request); sized once from the route's count, none do.
        count = getattr(engine, "route_size", None)
        self.hint = count(self.route) if count is not None else 0
        tail = None
        if getattr(engine, "route_event_view", None) is not None:
            # PERF: the sealed chunks are read in place by each query (sealed.py), never copied: only
            # the open tail's rows (under 16,384) become rows of the table, besides the entities
            self.sealed = Sealed()
            tail, new = self._take_chunks(engine)
            self.hint = max(0, self.hint - sum(c.live for c in self.sealed.chunks))
        for col in list(self.columns.values()) + [self.seq]:
            col.hint = self.hint
        entities = engine.route_entities(self.route)
        while True:
            page = list(itertools.islice(entities, BUILD_PAGE))
            if not page:
                break
            self._append([(k, r["created_at"], r["updated_at"], None, r["payload"]) for k, r in page])
            self._note_sketches(engine, [k for k, _ in page])
            if turn is not None:
                turn()
        loaded = -1
        if tail is not None:
            self._add_fields(new)  # after the entities' fields, as a build from records orders them
            loaded = self.sealed.covered
            for lo in range(0, len(tail), BUILD_PAGE):
                m, seqs, created, fields = rows_columns(tail[lo:lo + BUILD_PAGE])
                self._extend(m, [None] * m, created, Vec.nulls(m), seqs, fields)
                loaded = max(loaded, int(seqs.data.max()))
                if turn is not None:
                    turn()
            events = iter(())
        else:
            events = engine.route_events(self.route)  # the route's events as they are now (a list, read in pages)
        while True:
            page = list(itertools.islice(events, BUILD_PAGE))
            if not page:
                break
            self._append([(None, e["created_at"], None, e["seq"], e["payload"]) for e in page])
            loaded = max(loaded, max(e["seq"] for e in page))
            if turn is not None:
                turn()
        if loaded >= 0:
            self.loaded_seq = loaded  # the build read every event up to here
        self.builds += 1
        self.hint = 0
        for col in list(self.columns.values()) + list(self.fields.values()) + [self.seq]:
            col.hint = 0  # later growth doubles as before

    def _take_chunks(self, engine) -> tuple[list, list]:
        """Point ``sealed`` at the engine's chunks of this route as they are now; returns the open
        tail's live rows and the chunks not seen before."""
        view, now = engine.route_event_view(self.route)
        new = self.sealed.update(view.chunks if view is not None else (), now)
        tail = [] if view is None else [e for e in view.tail[:view.ntail] if not e[3] or e[3] > now]
        return tail, new

    def _add_fields(self, chunks: list) -> None:
        """The fields of ``chunks`` join ``fields`` (in the order their rows show them; no rows here)."""
        for chunk in chunks:
            for name in chunk_fields(chunk):
                if name not in self.fields:
                    self.fields[name] = StoreColumn(self.n)

    def refresh(self, engine) -> None:
        """Apply the changes noted since the last query (caller holds ``self.lock``)."""
        covered = -1
        if self.sealed is not None:
            covered = self.sealed.covered
            self._add_fields(self._take_chunks(engine)[1])
            if self.sealed.covered > covered:  # events sealed since: read from their chunks, not from rows here
                self._drop_events_upto(self.sealed.covered)
            covered = self.sealed.covered
        with self.pending_lock:
            dirty, self.dirty = self.dirty, set()
            new_events, self.new_events = self.new_events, []
            removed, self.removed_seqs = self.removed_seqs, []
        if new_events:
            # NOTE: listeners hear of writes outside the engine's lock, so notes may arrive out of
            # seq order; only events the build already read (seq <= loaded_seq, fixed at build
            # time) are duplicates.
            fresh = [e for e in new_events if e["seq"] > max(self.loaded_seq, covered)]
            if fresh:
                self._append([(None, e["created_at"], None, e["seq"], e["payload"]) for e in fresh])
                self.patched_rows += len(fresh)
        if removed:
            seqs = self.seq.vec()
            hit = np.isin(seqs.data, np.asarray(removed, np.int64))
            if seqs.valid is not None:
                hit &= seqs.valid
            hit &= self.live[:self.n]
            self.live[:self.n][hit] = False
            self.dead += int(hit.sum())
            self.patched_rows += int(hit.sum())
        if dirty:
            added, changed = [], []
            for key in dirty:
                rec = engine.entity(self.route, key)
                row = self.key_row.get(key)
                if rec is None:
                    if row is not None:
                        self.live[row] = False
                        self.dead += 1
                        del self.key_row[key]
                elif row is None:
                    added.append((key, rec["created_at"], rec["updated_at"], None, rec["payload"]))
                else:
                    changed.append((row, rec))
            self._update(changed)
            self._append(added)
            self._note_sketches(engine, [rec["key"] for _, rec in changed] + [r[0] for r in added])
            self.patched_rows += len(dirty)
        if self.dead > 1024 and self.dead * 2 > self.n:
            self._compact()

    def _drop_events_upto(self, seq: int) -> None:
        """Remove the table's own event rows with a seq up to ``seq`` (sealed chunks hold them now)."""
        seqs = self.seq.vec()
        if seqs.kind != "int":
            return
        hit = seqs.data <= seq
        if seqs.valid is not None:
            hit &= seqs.valid
        hit &= self.live[:self.n]
        self.live[:self.n][hit] = False
        self.dead += int(hit.sum())

    def _update(self, changed: list) -> None:
        """Overwrite existing entity rows ``[(row, record)]`` column by column (typed once per column)."""
        if not changed:
            return
        rows = np.fromiter((r for r, _ in changed), np.int64, len(changed))
        payloads = [rec["payload"] if isinstance(rec["payload"], dict) else {"value": rec["payload"]}
                    for _, rec in changed]
        # created_at too: a key removed and written again between two queries is a new entity in the same row
        self.columns["created_at"].set_many(rows, from_values([rec["created_at"] for _, rec in changed]))
        self.columns["updated_at"].set_many(rows, from_values([rec["updated_at"] for _, rec in changed]))
        names = dict.fromkeys(self.fields)
        for p in payloads:
            names.update(dict.fromkeys(p))
        for name in names:
            col = self.fields.get(name)
            if col is None:
                col = self.fields[name] = StoreColumn(self.n)
            col.set_many(rows, from_values([p.get(name) for p in payloads]))

    def _append(self, rows: list) -> None:
        """Append rows ``(key, created_at, updated_at, seq, payload)`` column by column."""
        m = len(rows)
        if not m:
            return
        keys = [r[0] for r in rows]
        per_field: dict = {}
        for i, r in enumerate(rows):
            payload = r[4]
            if not isinstance(payload, dict):
                payload = {"value": payload}
            for name, value in payload.items():
                values = per_field.get(name)
                if values is None:
                    values = per_field[name] = [None] * m
                values[i] = value
        fields = {name: from_values(values) for name, values in per_field.items()}
        self._extend(m, keys, from_values([r[1] for r in rows]), from_values([r[2] for r in rows]),
                     from_values([r[3] for r in rows]), fields)

    def _extend(self, m: int, keys: list, created: Vec, updated: Vec, seqs: Vec, per_field: dict) -> None:
        """Append ``m`` rows given as vectors (``per_field``: the payload fields the rows hold)."""
        self.columns["key"].extend(encode_strings(keys))
        self.columns["created_at"].extend(created)
        self.columns["updated_at"].extend(updated)
        self.seq.extend(seqs)
        for name, vec in per_field.items():
            col = self.fields.get(name)
            if col is None:
                col = self.fields[name] = StoreColumn(self.n, self.hint)
                col.extend_nulls(0)
            col.extend(vec)
        for name, col in self.fields.items():
            if name not in per_field:
                col.extend_nulls(m)
        for i, key in enumerate(keys):
            if key is not None:
                self.key_row[key] = self.n + i
        if len(self.live) < self.n + m:
            live = np.ones(max(2 * len(self.live), self.n + m, self.hint), bool)
            live[:self.n] = self.live[:self.n]
            self.live = live
        self.live[self.n:self.n + m] = True
        self.n += m

    def _note_sketches(self, engine, keys: list) -> None:
        """Put the sketch objects of entities ``keys`` (rows already written) in ``sketches``."""
        get, has = getattr(engine, "entity_sketches", None), getattr(engine, "route_has_sketches", None)
        if get is None or (not self.sketches and has is not None and not has(self.route)):  # PERF: most hold none
            return
        self._pad_sketches()
        for key in keys:
            held, row = get(self.route, key), self.key_row[key]
            for name, col in self.sketches.items():
                if name not in held and col.n > row:
                    col.set(row, None)
            for name, sketch in held.items():
                col = self.sketches.get(name)
                if col is None:
                    col = self.sketches[name] = StoreColumn(self.n)
                col.set(row, sketch)

    def _pad_sketches(self) -> None:
        """Sketch columns as long as the table (rows appended since hold no sketch)."""
        for col in self.sketches.values():
            col.extend_nulls(self.n - col.n)

    def _compact(self) -> None:
        keep = np.flatnonzero(self.live[:self.n])
        self._pad_sketches()
        for col in list(self.columns.values()) + list(self.fields.values()) + [self.seq] + list(self.sketches.values()):
            col.compact(keep)
        pos = np.full(self.n, -1, np.int64)
        pos[keep] = np.arange(len(keep))
        self.key_row = {k: int(pos[r]) for k, r in self.key_row.items()}
        self.n = len(keep)
        self.live = np.ones(max(64, self.n), bool)
        self.dead = 0

    # -- reading -------------------------------------------------------------
    def view(self) -> "TableView":
        """A read view of the current rows (caller holds ``self.lock``)."""
        cols = {name: col for name, col in self.fields.items()}
        cols.update(self.columns)
        # a field every row lost (set to NULL or removed) leaves `*`; removed rows keep theirs until compaction
        names = list(SYSTEM) + [f for f, col in self.fields.items() if f not in SYSTEM and col.nulls < col.n]
        rows = None if self.dead == 0 else np.flatnonzero(self.live[:self.n])
        self._pad_sketches()
        sketches = dict(self.sketches)
        own = self.n if rows is None else len(rows)
        if self.sealed is None or not self.sealed.chunks:  # no sealed events: the table's own rows alone
            return TableView(own, names, lambda name: _col_vec(cols, name, rows),
                             lambda name: _col_vec(sketches, name, rows))
        # the sealed chunks' rows first (events, oldest first), then the table's own rows; a query's
        # vectors are assembled from both when it reads a column, and dropped with the query
        scan, sealed = Scan(self.sealed), self.sealed
        present = scan.present()
        names = list(SYSTEM) + [f for f, col in self.fields.items()
                                if f not in SYSTEM and (col.nulls < col.n or f in present)]
        total = scan.n + own

        def column(name):
            system = name in SYSTEM
            if not system and name not in self.fields:
                return None
            mine = _col_vec(cols, name, rows)
            parts = scan.parts(name, system)
            if own:
                parts.append(mine if mine is not None else Vec.nulls(own))
            return assemble(sealed, name, parts, total)

        def column_at(name, at):
            # PERF: only the rows a query kept (after WHERE, for ORDER BY's winners) are read from
            # the chunks, typed as the whole column is
            system = name in SYSTEM
            if not system and name not in self.fields:
                return None
            mine = _col_vec(cols, name, rows)
            split = int(np.searchsorted(at, scan.n))
            kinds = scan.kinds(name, system)
            parts = scan.parts_at(name, system, at[:split], kinds)
            if own:
                mine = mine if mine is not None else Vec.nulls(own)
                kinds.append(mine.kind)
                parts.append(mine.take(at[split:] - scan.n) if split < len(at) else None)
            return assemble(sealed, name, parts, len(at), kinds)

        def sketch(name):
            mine = _col_vec(sketches, name, rows)
            return mine if mine is None or not scan.n else concat([Vec.nulls(scan.n), mine])

        return TableView(total, names, column, sketch, column_at)

    def held_bytes(self) -> int:
        """Bytes of the arrays this table keeps between queries (never the engine's chunks)."""
        total = self.live.nbytes
        for col in list(self.columns.values()) + list(self.fields.values()) + [self.seq] + list(self.sketches.values()):
            for arr in (col.data, col.valid):
                total += getattr(arr, "nbytes", 0)
        return total + (self.sealed.nbytes() if self.sealed is not None else 0)


def _col_vec(cols: dict, name: str, rows):
    col = cols.get(name)
    if col is None:
        return None
    v = col.vec()
    return v if rows is None else v.take(rows)


class TableView:
    """What the executor reads: ``n`` rows, column ``names`` (for ``*``), ``column(name)``."""

    def __init__(self, n: int, names: list, getter, sketch_getter=None, rows_getter=None):
        self.n = n
        self.names = names
        self._getter = getter
        self._sketch_getter = sketch_getter
        self._rows_getter = rows_getter  # (name, ascending rows) -> the column at those rows only, or None
        self._cache: dict = {}

    def sketch(self, name: str) -> Vec | None:
        """The sketch objects of the uniq/dist field ``name`` (an ``obj`` column), or None when no row has one."""
        return None if self._sketch_getter is None else self._sketch_getter(name)

    def column(self, name: str) -> Vec:
        """The column ``name``; all NULL when no row has that field (a missing field is NULL)."""
        v = self._cache.get(name)
        if v is None:
            v = self._getter(name)
            if v is None:
                v = Vec.nulls(self.n)
            self._cache[name] = v
        return v

    def column_at(self, name: str, rows: np.ndarray) -> Vec:
        """``column(name).take(rows)``, without the whole column when the view can read just those rows."""
        if self._rows_getter is None or name in self._cache:
            return self.column(name).take(rows)
        if len(rows) > 1 and not (rows[1:] >= rows[:-1]).all():  # ORDER BY's rows: read in order, then permute
            order = np.argsort(rows, kind="stable")
            back = np.empty_like(order)
            back[order] = np.arange(len(order))
            return self.column_at(name, rows[order]).take(back)
        v = self._rows_getter(name, rows)
        return Vec.nulls(len(rows)) if v is None else v

    def has(self, name: str) -> bool:
        return name in self.names

    @staticmethod
    def from_columns(columns: dict) -> "TableView":
        """A view over ready-made vectors (tests, and tables built outside an engine)."""
        n = len(next(iter(columns.values())).data) if columns else 0
        return TableView(n, list(columns), columns.get)


def union_view(parts: list[tuple[str, TableView]]) -> TableView:
    """The rows of several routes' views one after another, with a ``route`` column first."""
    names: list = ["route"]
    for _, view in parts:
        for name in view.names:
            if name not in names:
                names.append(name)
    total = sum(view.n for _, view in parts)

    def getter(name):
        if name == "route":
            routes = np.array([r for r, _ in parts] + [""], dtype=object)[:-1]
            codes = np.repeat(np.arange(len(parts), dtype=np.int32), [v.n for _, v in parts])
            return Vec("str", codes, None, Dictionary(routes, unique=True))
        if not any(view.has(name) for _, view in parts):
            return None
        return concat([view.column(name) for _, view in parts]) if parts else Vec.nulls(0)

    def sketch(name):
        vecs = [view.sketch(name) for _, view in parts]
        if all(v is None for v in vecs):
            return None
        return concat([Vec.nulls(view.n) if v is None else v for v, (_, view) in zip(vecs, parts)])

    return TableView(total, names, getter, sketch)


class ColumnStore:
    """All materialised tables of one engine, and the listener that keeps them current."""

    def __init__(self, engine):
        self._engine = weakref.ref(engine) if _weakrefable(engine) else (lambda e=engine: e)
        self.tables: dict[str, Table] = {}
        self.lock = threading.Lock()
        self.turn = _turns.get(engine)  # called between the pages of a first build (see ``set_turn``)

    @property
    def engine(self):
        return self._engine()

    # listener protocol (see Engine.add_listener): note, never compute
    def entity_changed(self, route: str, key: str) -> None:
        t = self.tables.get(route)
        if t is not None:
            t.note_entity(key)

    entity_removed = entity_changed

    def event_added(self, route: str, record: dict) -> None:
        t = self.tables.get(route)
        if t is not None:
            t.note_event(record)

    def events_removed(self, route: str, seqs) -> None:
        t = self.tables.get(route)
        if t is not None:
            t.note_removed(seqs)

    def table(self, route: str) -> Table:
        """The route's table, built on first use (listening starts before the build reads)."""
        t = self.tables.get(route)
        if t is None:
            with self.lock:
                t = self.tables.get(route)
                if t is None:
                    t = Table(route)
                    t.lock.acquire()  # held through the build: a query of this route waits for it
                    self.tables[route] = t
                    building = True
                else:
                    building = False
            if building:  # outside the store's lock: queries of other routes go on meanwhile
                try:
                    t.build(self.engine, self.turn)
                except BaseException:
                    with self.lock:
                        self.tables.pop(route, None)
                    raise
                finally:
                    t.lock.release()
        return t

    def routes(self, target: str) -> list[str]:
        """The routes ``target`` (a route, ``prefix/*`` or ``*``) covers."""
        if not (target == "*" or target.endswith("/*")):
            return [target]
        return [r for r in self.engine.routes() if prefix_matches(target, r)]


_stores: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_stores_lock = threading.Lock()
_turns: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def set_turn(engine, turn) -> None:
    """Give ``engine``'s tables a ``turn()`` to call between the pages of a first build.

    The web layer passes its event loop's turn, so a big route's first query lets the other
    requests run. Nothing is registered on the engine until a query needs its column store.
    """
    with _stores_lock:
        _turns[engine] = turn
        store = _stores.get(engine)
        if store is not None:
            store.turn = turn


def _weakrefable(obj) -> bool:
    try:
        weakref.ref(obj)
        return True
    except TypeError:
        return False


def store_for(engine) -> ColumnStore:
    """The engine's one ColumnStore (created and registered as a listener on first use)."""
    try:
        store = _stores.get(engine)
    except TypeError:  # pragma: no cover - engines are weak-referenceable
        store = getattr(engine, "_ocean_sql_store", None)
    if store is None:
        with _stores_lock:
            store = _stores.get(engine)
            if store is None:
                store = ColumnStore(engine)
                engine.add_listener(store)
                _stores[engine] = store
    return store


def columns_bytes(engine) -> int:
    """Bytes held by ``engine``'s column tables (0 when no query built one; registers nothing)."""
    store = _stores.get(engine)
    if store is None:
        return 0
    return sum(table.held_bytes() for table in list(store.tables.values()))
