"""Whole-state comparison of engines, and a data directory cut to a prefix of another's log.

``dump(engine)`` reads everything an engine holds through its public reads (entities
with counters merged, events, history, every route). ``log_prefix(src, seq, dest)``
writes a data directory whose log is ``src``'s records up to ``seq``: the state a
consistent copy taken at ``seq`` must equal.
"""
from __future__ import annotations

import os
import shutil
import struct

from ocean.engine import ops
from ocean.engine.wal import list_segments
from ocean.kernels import core


def dump(eng) -> dict:
    """Everything ``eng`` holds, as plain data."""
    out = {}
    for route in eng.routes():
        out[("entities", route)] = [rec for _, rec in eng.route_entities(route)]
        out[("events", route)] = list(eng.route_events(route))
    for route, key in sorted(eng.state.entities.history):
        out[("history", route, key)] = eng.history(route, key, limit=10 ** 6)
    return out


def log_prefix(src: str, seq: int, dest: str) -> int:
    """Write ``dest``: ``src``'s meta.json and one segment of every record with seq <= ``seq``
    (``src`` must hold its whole log: no snapshot). Returns the records kept."""
    assert not any(n.startswith("snapshot-") for n in os.listdir(src)), "the source compacted its log"
    os.makedirs(dest)
    shutil.copy(os.path.join(src, "meta.json"), dest)
    crc32c, scan = core().crc32c, core().scan_records
    kept = 0
    with open(os.path.join(dest, "wal-00000000000000000001.log"), "wb") as out:
        for _, name in list_segments(src):
            with open(os.path.join(src, name), "rb") as f:
                bodies, _, _ = scan(f.read(), 0)
            for body in bodies:
                if ops.decode(body)[1] <= seq:
                    out.write(struct.pack("<II", len(body), crc32c(body)) + body)
                    kept += 1
    return kept
