"""Sketch fields in the Redis store: what the worker sends ``ocean_write``, and the sketches read back.

``uniq`` fields are Redis's own HyperLogLogs (``PFADD`` inside the write's function call): ocean's
``Hll`` copies Redis's hash, registers and estimator, so a field's registers read back here
(``hll_from_redis``) are exactly the embedded store's, for exports and SQL merges, and a merged
``{"sketch": base64}`` goes the other way (``hll_to_redis``, ``PFMERGE``). ``dist`` fields are
DDSketch bins in a hash: the worker maps each value to its bin with the kernel's mapping
(``dist_items``), ``ocean.lua`` applies them with the kernel's 2048-bin collapse and answers the
summary; ``dist_from_hash`` rebuilds the kernel's ``Dist`` from the hash, byte for byte.

Redis's HyperLogLog string (``hyperloglog.c``): ``"HYLL"``, an encoding byte (0 dense, 1 sparse),
3 unused bytes, an 8-byte cached cardinality (its top bit set: not cached), then the 16384 6-bit
registers packed as ocean's dense form packs them, or sparse opcodes: ``00xxxxxx`` ZERO (x+1
zero registers), ``01xxxxxx yyyyyyyy`` XZERO (xy+1 zeros), ``1vvvvvxx`` VAL (x+1 registers of
value v+1).
"""
from __future__ import annotations

import base64
import json

from .._reference import sketch as ref
from ..errors import CounterOverflow, InvalidPayload, NotACounter, NotASketch
from ..kernels import core
from . import layout

REGISTERS = ref.HLL_REGISTERS
SPARSE_MAX = ref.HLL_SPARSE_MAX
_HEAD = b"HYLL"
_UNCACHED = b"\0" * 7 + b"\x80"
KIND_WORD = {"~": "uniq", "%": "dist"}


# -- writes: ocean_write's arguments -------------------------------------------------
def add_args(adds: dict, args: list) -> int:
    """Append each sketch add ``{field: (kind, values)}`` (``ops.split_adds``) to ``args`` as
    ``ocean.lua`` reads it; returns the bytes it adds, for the payload size check."""
    size = 0
    for name, (kind, values) in adds.items():
        items = uniq_items(values) if kind == "uniq" else dist_items(values)
        args += ["\1" + ("~" if kind == "uniq" else "%") + name, len(items)]
        args += items
        size += len(name) + sum(len(i) for i in items)
    return size


def uniq_items(values: list) -> list:
    """``'v'`` + each value's text (an integer counts as its decimal text, as the kernel hashes it),
    ``b'h'`` + a Redis HyperLogLog for each ``{"sketch": ...}`` to merge."""
    out = []
    for v in values:
        t = type(v)
        if t is str:
            out.append("v" + v)
        elif t is int:
            out.append("v" + str(v))
        else:
            out.append(b"h" + hll_to_redis(core().Hll(base64.b64decode(v["sketch"]))))
    return out


def dist_items(values: list) -> list:
    """The items of a dist add, in the order the kernel adds them (the sum is taken in that order)."""
    out = []
    for v in values:
        if type(v) is dict:
            out += _merge_items(base64.b64decode(v["sketch"]))
            continue
        value, count = (float(v[0]), v[1]) if type(v) is list else (float(v), 1)
        if value > 0:
            out.append(f"a P {ref.dist_key(value)} {count} {value!r}")
        elif value < 0:
            out.append(f"a N {ref.dist_key(-value)} {count} {value!r}")
        else:
            out.append(f"a Z 0 {count} 0.0")  # -0.0 too: one zero, as the kernel keeps it
    return out


def _merge_items(data: bytes) -> list:
    """A whole Dist (its ``to_bytes()``, checked by ``model.check_serialized_sketch``) as items."""
    _, count, zero, total, lo, hi = ref._DIST_HEAD.unpack_from(data, 0)
    if not count:
        return []  # the kernel's merge of an empty sketch changes nothing
    out = [f"m {count} {zero} {total!r} {lo!r} {hi!r}"]
    at = ref._DIST_HEAD.size
    for store in "PN":
        bins = ref._Store()
        at, _ = bins.unpack(data, at)
        out += [f"b {store} {k} {c}" for k, c in sorted(bins.bins.items())]
    return out


# -- reads: the kernel's sketches from Redis's data --------------------------------------
def hll_from_redis(data: bytes):
    """ocean's ``Hll`` holding the registers of a Redis HyperLogLog string."""
    if data[:4] != _HEAD or len(data) < 16:
        raise ValueError("not a Redis HyperLogLog")
    if data[4] == 0:
        return core().Hll(bytes((ref.HLL_VERSION, ref.HLL_DENSE)) + data[16:16 + ref.HLL_DENSE_BYTES])
    entries, at, i = [], 0, 16
    while i < len(data):  # bounded: every opcode moves i on
        op = data[i]
        if op & 0x80:  # VAL
            rank, run = (op >> 2 & 0x1F) + 1, (op & 3) + 1
            entries += [(at + j, rank) for j in range(run)]
            at, i = at + run, i + 1
        elif op & 0x40:  # XZERO
            at, i = at + ((op & 0x3F) << 8 | data[i + 1]) + 1, i + 2
        else:  # ZERO
            at, i = at + (op & 0x3F) + 1, i + 1
    if len(entries) <= SPARSE_MAX:
        body = b"".join((index << 6 | rank).to_bytes(4, "little") for index, rank in entries)
        return core().Hll(bytes((ref.HLL_VERSION, ref.HLL_SPARSE)) + body)
    regs = [0] * REGISTERS
    for index, rank in entries:
        regs[index] = rank
    return core().Hll(bytes((ref.HLL_VERSION, ref.HLL_DENSE)) + ref._pack_dense(regs))


def hll_to_redis(sketch) -> bytes:
    """A Redis HyperLogLog string of ``sketch``'s registers: sparse while ocean's is (a merge then
    keeps a small field small), dense when it is dense or a rank passes the sparse form's 32."""
    data = sketch.to_bytes()
    if data[1] == ref.HLL_DENSE:
        return _HEAD + b"\0\0\0\0" + _UNCACHED + data[2:]
    entries = [(e >> 6, e & 63) for e in (int.from_bytes(data[i:i + 4], "little") for i in range(2, len(data), 4))]
    if any(rank > 32 for _, rank in entries):
        regs = [0] * REGISTERS
        for index, rank in entries:
            regs[index] = rank
        return _HEAD + b"\0\0\0\0" + _UNCACHED + ref._pack_dense(regs)
    out, at, i = bytearray(), 0, 0
    while i < len(entries):
        index, rank = entries[i]
        out += _zeros(index - at)
        run = 1
        while run < 4 and i + run < len(entries) and entries[i + run] == (index + run, rank):
            run += 1
        out.append(0x80 | (rank - 1) << 2 | (run - 1))
        at, i = index + run, i + run
    out += _zeros(REGISTERS - at)
    return _HEAD + b"\1\0\0\0" + _UNCACHED + bytes(out)


def _zeros(n: int) -> bytes:
    out = bytearray()
    while n > 0:
        run = min(n, 16384)
        out += bytes((0x40 | (run - 1) >> 8, (run - 1) & 0xFF)) if run > 64 else bytes((run - 1,))
        n -= run
    return bytes(out)


def dist_from_hash(fields: dict):
    """The kernel's ``Dist`` of a dist field's hash (``ocean.lua``: n, z, s, lo, hi, P<k>, N<k>)."""
    count = int(fields.get("n", 0))
    head = ref._DIST_HEAD.pack(ref.DIST_VERSION, count, int(fields.get("z", 0)), float(fields.get("s", 0.0)),
                               float(fields["lo"]) if count else 0.0, float(fields["hi"]) if count else 0.0)
    stores = []
    for store in "PN":
        bins = {int(k[1:]): int(c) for k, c in fields.items() if k[:1] == store}
        if not bins:
            stores.append(ref._DIST_STORE.pack(0, 0))
            continue
        lo, hi = min(bins), max(bins)
        stores.append(ref._DIST_STORE.pack(lo, hi - lo + 1)
                      + b"".join(ref._uvarint(bins.get(k, 0)) for k in range(lo, hi + 1)))
    return core().Dist(head + b"".join(stores))


def read(engine, route: str, key: str) -> list:
    """``ocean_sketches``'s reply for one entity, undecoded (a HyperLogLog is binary)."""
    from redis.client import NEVER_DECODE
    return engine._redis(engine.client.execute_command, "FCALL_RO", "ocean_sketches", 1, layout.meta(route),
                         route, key, **{NEVER_DECODE: True})


def from_reply(reply: list) -> dict:
    """``ocean_sketches``'s raw reply (bytes) -> ``{field: Hll or Dist}`` in the order they came."""
    out = {}
    for i in range(0, len(reply), 2):
        tag, data = reply[i].decode(), reply[i + 1]
        if tag[0] == "~":
            out[tag[1:]] = hll_from_redis(data) if data else core().Hll()
        else:
            out[tag[1:]] = dist_from_hash({data[j].decode(): data[j + 1].decode() for j in range(0, len(data), 2)})
    return out


# -- refusals: the embedded State's errors, for ocean.lua's sketch_* codes ------------------
def error(code: str, detail: list):
    name = detail[0]
    if code == "sketch_set":
        kind = detail[1]
        return NotASketch.sketch_set(name, KIND_WORD[kind], kind)
    if code == "sketch_incr":
        kind = detail[1]
        return NotACounter.sketch_incremented(name, KIND_WORD[kind], kind)
    if code == "sketch_both":
        return InvalidPayload.written_and_added(name, detail[1], KIND_WORD[detail[2]])
    if code == "sketch_overflow":
        return CounterOverflow.dist(name, detail[1])
    if code == "sketch_kind":
        held, kind = detail[1], detail[2]
        return NotASketch.other_kind(name, KIND_WORD[held], held, KIND_WORD[kind])
    if code == "sketch_counter":
        return NotASketch.counter_added(name, KIND_WORD[detail[1]])
    if code == "sketch_plain":
        return NotASketch.plain_added(name, json.loads(detail[2]), KIND_WORD[detail[1]])
    return None
