"""Sketch fields: distinct counts (``uniq``, HyperLogLog) and value distributions (``dist``, DDSketch).

An entity field may hold a sketch instead of a plain value or a counter. Writes add values
to it (``"~field"`` / ``"%field"`` in a payload, the ``uniq`` / ``observe`` commands); reads
show what it summarises (``shown``): a uniq field its estimate as an integer, a dist field
``{count, sum, min, max, p50, p90, p95, p99}``. SQL merges the sketches themselves
(``uniq_merge``, ``quantile_merge``), so weekly uniques from daily entities are a union.

The sketches live here, beside the counter table, by route and key. The entity's plain
``fields`` hold the field's kind (``"uniq"`` / ``"dist"``) under its name as a marker: every path
that looks for a plain field before it increments -- the compiled fast path, replay of binary
incr records -- then sees the name is taken and hands the op to ``State.apply``, which refuses
``+field`` on a sketch. Reads replace the marker with the summary.

NOTE: copy on write. A snapshot or backup captures the sketch objects by reference under the
write lock and serialises them while writes go on; a sketch a capture may hold is copied before
its next add (``_fresh`` holds the ids of those no capture holds, which are changed in place).
"""
from __future__ import annotations

import base64
import math

from ..kernels import core

UNIQ, DIST = "uniq", "dist"
KINDS = (UNIQ, DIST)
QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99))


def new_sketch(kind: str, data: bytes | None = None):
    """An empty sketch of ``kind`` (or one read back from ``to_bytes()``), from the kernels in use."""
    cls = core().Hll if kind == UNIQ else core().Dist
    return cls(data) if data is not None else cls()


def kind_of(sketch) -> str:
    """``"uniq"`` or ``"dist"``: which kind of field ``sketch`` is."""
    return UNIQ if type(sketch) is core().Hll else DIST


def shown(sketch):
    """What reads show for a sketch: a uniq field's estimate, a dist field's summary."""
    if type(sketch) is core().Hll:
        return int(sketch.count())
    total = sketch.sum
    out = {"count": sketch.count, "sum": total if math.isfinite(total) else None,  # a sum past float range
           "min": sketch.min, "max": sketch.max}
    for name, q in QUANTILES:
        out[name] = sketch.quantile(q)
    return out


def add_values(sketch, kind: str, values: list) -> None:
    """Add a write's values (validated by ``model.check_sketch_values``) to ``sketch``."""
    if kind == UNIQ:
        plain = [v for v in values if type(v) is not dict]
        if plain:
            sketch.add(plain)  # an integer hashes as its JSON text: 5 and "5" are one value
        if len(plain) < len(values):
            for v in values:
                if type(v) is dict:  # {"sketch": base64}: a whole sketch merged in
                    sketch.merge(new_sketch(kind, base64.b64decode(v["sketch"])))
    else:
        for v in values:
            if type(v) is list:  # [value, count]
                sketch.add(float(v[0]), v[1])
            elif type(v) is dict:
                sketch.merge(new_sketch(kind, base64.b64decode(v["sketch"])))
            else:
                sketch.add(float(v))


MAX_COUNT = (1 << 63) - 1


def dist_overflow(sketch, values: list) -> str | None:
    """Why adding ``values`` to the dist ``sketch`` (None: a new one) must be refused, or None.

    A count past 2**63 - 1 (the sketch raises) or a sum that turns NaN (+inf and -inf met: a
    snapshot could not hold it) is refused before anything changes, as a counter's overflow is;
    the sums are taken in the kernel's order, so live and replay decide alike.
    """
    count = sketch.count if sketch is not None else 0
    total = sketch.sum if sketch is not None else 0.0
    for v in values:
        if type(v) is list:
            count, total = count + v[1], total + float(v[0]) * v[1]
        elif type(v) is dict:
            other = new_sketch(DIST, base64.b64decode(v["sketch"]))
            count, total = count + other.count, total + other.sum
        else:
            count, total = count + 1, total + float(v)
    if count > MAX_COUNT:
        return "its count would pass 2**63 - 1"
    if math.isnan(total):
        return "its sum would leave the float range both ways (+inf and -inf)"
    return None


class SketchTable:
    """route -> key -> {field: sketch}: every entity's sketch fields."""

    def __init__(self):
        self.routes: dict[str, dict[str, dict]] = {}
        self._fresh: set[int] = set()

    def __len__(self) -> int:
        return sum(len(held) for table in self.routes.values() for held in table.values())

    def get(self, route: str, key: str) -> dict | None:
        """The entity's sketches by field, or None; read it, do not change it."""
        table = self.routes.get(route)
        return None if table is None else table.get(key)

    def of(self, route: str, key: str) -> dict:
        """The entity's sketches by field (empty when none); read it, do not change it."""
        return self.get(route, key) or {}

    def shown(self, route: str, key: str) -> dict:
        """``{field: summary}`` of the entity's sketches (empty when none)."""
        held = self.get(route, key)
        return {name: shown(s) for name, s in held.items()} if held else {}

    def add(self, route: str, key: str, adds: dict) -> dict:
        """Add ``{field: (kind, values)}`` (checked by ``State``: kinds match); returns ``{field: summary}``."""
        held = self.routes.setdefault(route, {}).setdefault(key, {})
        out = {}
        for name, (kind, values) in adds.items():
            sketch = held.get(name)
            if sketch is None:
                sketch = held[name] = new_sketch(kind)
                self._fresh.add(id(sketch))
            elif id(sketch) not in self._fresh:  # a capture may hold it: change a copy
                sketch = held[name] = sketch.copy()
                self._fresh.add(id(sketch))
            add_values(sketch, kind, values)
            out[name] = shown(sketch)
        return out

    def delete_entity(self, route: str, key: str) -> None:
        table = self.routes.get(route)
        held = table.pop(key, None) if table else None
        if held is None:
            return
        if not table:
            del self.routes[route]
        for sketch in held.values():
            self._fresh.discard(id(sketch))

    def capture(self) -> list:
        """``[(route, key, field, kind, sketch)]`` as they are now (under the write lock); from now
        on each is copied before it changes."""
        self._fresh.clear()
        return [(route, key, name, kind_of(s), s) for route, table in self.routes.items()
                for key, held in table.items() for name, s in held.items()]

    def load(self, route: str, key: str, name: str, kind: str, data: str) -> None:
        """Put back one sketch a snapshot holds (``data``: base64 of its ``to_bytes()``)."""
        if kind not in KINDS:
            raise ValueError(f"unknown sketch kind {kind!r}")
        sketch = new_sketch(kind, base64.b64decode(data))
        self.routes.setdefault(route, {}).setdefault(key, {})[name] = sketch
        self._fresh.add(id(sketch))


def encode(sketch) -> str:
    """A sketch as snapshot text: base64 of its ``to_bytes()``."""
    return base64.b64encode(sketch.to_bytes()).decode("ascii")


def sketch_bytes(held: dict) -> dict:
    """An entity's sketches as an export writes them: ``{"~field" or "%field": base64 of the bytes}``."""
    return {("~" if kind_of(s) == UNIQ else "%") + name: encode(s) for name, s in held.items()}
