"""Pure twin of ``_sketch.pxi``: HyperLogLog (``Hll``) and DDSketch (``Dist``).

Both sketches are mergeable summaries kept per entity field: ``Hll`` estimates how many
*different* values were added (unique visitors), ``Dist`` answers quantiles of the values
added (p95 latency) within 1% relative error. The compiled kernels in ``_sketch.pxi``
give the same registers, bins, bytes and answers bit for bit; the tests hold them to it.

Everything here is written for clarity, not speed: this module is the oracle.

Hll byte layout (version 1), all integers little-endian::

    u8 version = 1, u8 form (1 sparse, 2 dense), then
      sparse: u32 entries ``index << 6 | rank``, sorted by index, at most HLL_SPARSE_MAX
      dense:  the 16384 6-bit registers packed as Redis packs them (12288 bytes)

Dist byte layout (version 1)::

    u8 version = 1, u64 count, u64 zero count, f64 sum, f64 min, f64 max (0.0 when empty),
    then the positive store and the negative store, each: i32 lowest key, u32 n, n counts as
    LEB128 varints (the bins from the lowest to the highest non-empty key, empty ones
    included; most counts are small, so a bin is 1-2 bytes: a 600-bin latency sketch is
    ~1 KB instead of 4.8 KB of u64s). A varint is minimal and at most 9 bytes (< 2**63).
"""
from __future__ import annotations

import json
import math
import struct

# ---- HyperLogLog -------------------------------------------------------------------

HLL_P = 14                       # index bits: 2**14 registers, 1.04/sqrt(16384) = 0.81% error
HLL_REGISTERS = 1 << HLL_P
HLL_Q = 64 - HLL_P               # hash bits left for the rank: ranks run 1..Q+1 = 51
HLL_MAX_RANK = HLL_Q + 1
HLL_DENSE_BYTES = HLL_REGISTERS * 6 // 8   # 12288, as Redis
# NOTE: the form is a function of the registers alone (sparse while at most this many are
# set), so two sketches holding the same registers have the same bytes whatever the order of
# their adds and merges. 768 entries of 4 bytes = 3 KB: Redis's default hll-sparse-max-bytes.
HLL_SPARSE_MAX = 768
HLL_VERSION = 1
HLL_SPARSE = 1
HLL_DENSE = 2
HLL_SEED = 0xADC83B19            # Redis's seed: the same strings land in the same registers
_ALPHA_INF = 0.721347520444481703680   # 0.5 / ln(2), Ertl's estimator
_M64 = 0xC6A4A7935BD1E995
_MASK64 = (1 << 64) - 1


def murmur64a(data: bytes, seed: int = HLL_SEED) -> int:
    """MurmurHash64A of ``data`` (Austin Appleby's, as Redis's ``hyperloglog.c`` has it)."""
    n = len(data)
    h = (seed ^ (n * _M64)) & _MASK64
    body = n & ~7
    for (k,) in struct.iter_unpack("<Q", data[:body]):
        k = (k * _M64) & _MASK64
        k ^= k >> 47
        k = (k * _M64) & _MASK64
        h ^= k
        h = (h * _M64) & _MASK64
    if n & 7:
        h ^= int.from_bytes(data[body:], "little")
        h = (h * _M64) & _MASK64
    h ^= h >> 47
    h = (h * _M64) & _MASK64
    h ^= h >> 47
    return h


def hll_value_bytes(value) -> bytes:
    """The bytes hashed for one value: a str's UTF-8, anything else its canonical JSON text.

    So ``"u-123"`` counts as Redis counts it, and ``5`` and ``"5"`` are the same value (as
    they are in a JSON payload's text).
    """
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def hll_position(h: int) -> tuple[int, int]:
    """(register index, rank) of a 64-bit hash: the low 14 bits pick the register, the rank
    is 1 + the number of trailing zeros of the rest (capped at Q+1 by a sentinel bit)."""
    rest = (h >> HLL_P) | (1 << HLL_Q)
    return h & (HLL_REGISTERS - 1), (rest & -rest).bit_length()


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y = 1.0
    z = 1.0 - x
    while True:
        x = math.sqrt(x)
        z_prev = z
        y *= 0.5
        t = 1.0 - x
        z -= t * t * y
        if z_prev == z:
            return z / 3.0


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y = 1.0
    z = x
    while True:
        x *= x
        z_prev = z
        z += x * y
        y += y
        if z_prev == z:
            return z


def hll_estimate(hist: list[int]) -> int:
    """Ertl's improved estimator ("New cardinality estimation algorithms for HyperLogLog
    sketches", 2017) over the histogram of register values, as Redis's ``hllCount``: no
    empirical bias table, and close to exact for small sets (it folds in linear counting)."""
    m = float(HLL_REGISTERS)
    z = m * _tau((m - hist[HLL_Q + 1]) / m)
    for j in range(HLL_Q, 0, -1):
        z += hist[j]
        z *= 0.5
    z += m * _sigma(hist[0] / m)
    e = _ALPHA_INF * m * m / z
    f = math.floor(e)            # round half away from zero, as C's llround
    return int(f + 1 if e - f >= 0.5 else f)


def _pack_dense(regs: list[int]) -> bytes:
    """Registers packed 6 bits each, least significant bit first (Redis's dense layout)."""
    out = bytearray(HLL_DENSE_BYTES + 1)
    for i, v in enumerate(regs):
        if v:
            bit = i * 6
            byte, fb = bit >> 3, bit & 7
            out[byte] |= (v << fb) & 0xFF
            out[byte + 1] |= v >> (8 - fb)
    return bytes(out[:HLL_DENSE_BYTES])


def _unpack_dense(data: bytes) -> list[int]:
    buf = bytes(data) + b"\0"
    regs = []
    for i in range(HLL_REGISTERS):
        bit = i * 6
        byte, fb = bit >> 3, bit & 7
        regs.append(((buf[byte] >> fb) | (buf[byte + 1] << (8 - fb))) & 63)
    return regs


class Hll:
    """HyperLogLog, p=14: 16384 6-bit registers (12 KB dense, as Redis), ~0.81% standard error.

    Hash: MurmurHash64A (seed 0xadc83b19, as Redis) of each value's UTF-8 bytes; a non-str value
    is hashed as its canonical JSON text. Sparse (index -> rank; sorted entries in its bytes) while
    at most ``HLL_SPARSE_MAX`` registers are set, dense above: most daily sketches see a handful of
    visitors, and a dense 12 KB for each of them would dwarf the entity.
    """

    __slots__ = ("_sparse", "_dense", "_cached")

    def __init__(self, data: bytes | None = None):
        self._sparse: dict[int, int] | None = {}   # index -> rank, while sparse
        self._dense: list[int] | None = None        # 16384 ranks, once dense
        self._cached = -1                           # count() until a register changes
        if data is not None:
            self._load(data)

    # -- bytes ---------------------------------------------------------------------------

    def _load(self, data) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"Hll() takes bytes from to_bytes(), got {type(data).__name__}")
        data = bytes(data)
        if len(data) < 2 or data[0] != HLL_VERSION:
            raise ValueError("not an Hll (bad length or version byte)")
        body = data[2:]
        if data[1] == HLL_SPARSE:
            if len(body) % 4 or len(body) // 4 > HLL_SPARSE_MAX:
                raise ValueError("bad Hll sparse length")
            last = -1
            for (e,) in struct.iter_unpack("<I", body):
                index, rank = e >> 6, e & 63
                if index >= HLL_REGISTERS or index <= last or not 1 <= rank <= HLL_MAX_RANK:
                    raise ValueError("bad Hll sparse entry")
                self._sparse[index] = rank
                last = index
        elif data[1] == HLL_DENSE:
            if len(body) != HLL_DENSE_BYTES:
                raise ValueError("bad Hll dense length")
            regs = _unpack_dense(body)
            if max(regs) > HLL_MAX_RANK:
                raise ValueError("bad Hll register value")
            # a dense form holding few registers (not one we write) is made sparse
            self._sparse = {i: r for i, r in enumerate(regs) if r}
            self._promote()
        else:
            raise ValueError("bad Hll form byte")

    def to_bytes(self) -> bytes:
        """The version byte, the form byte and the registers (see the module docstring)."""
        if self._dense is not None:
            return bytes((HLL_VERSION, HLL_DENSE)) + _pack_dense(self._dense)
        entries = [i << 6 | self._sparse[i] for i in sorted(self._sparse)]
        return bytes((HLL_VERSION, HLL_SPARSE)) + struct.pack(f"<{len(entries)}I", *entries)

    def __reduce__(self):
        return (type(self), (self.to_bytes(),))

    # -- registers -----------------------------------------------------------------------

    def _promote(self) -> None:
        if self._sparse is not None and len(self._sparse) > HLL_SPARSE_MAX:
            regs = [0] * HLL_REGISTERS
            for i, r in self._sparse.items():
                regs[i] = r
            self._dense, self._sparse = regs, None

    def _set(self, index: int, rank: int) -> bool:
        """Register ``index`` = max(itself, rank); True if it changed."""
        if self._dense is not None:
            if rank <= self._dense[index]:
                return False
            self._dense[index] = rank
            return True
        if rank <= self._sparse.get(index, 0):
            return False
        self._sparse[index] = rank
        self._promote()
        return True

    def add(self, values) -> bool:
        """Add every value of an iterable; True if any register changed.

        Every value is encoded before any register moves, so a value that cannot be hashed
        (a surrogate, an object json cannot write) raises and leaves the sketch unchanged.
        """
        if isinstance(values, (str, bytes, bytearray)):
            raise TypeError("Hll.add takes an iterable of values (a list), not one string")
        positions = [hll_position(murmur64a(hll_value_bytes(v))) for v in values]
        changed = False
        for index, rank in positions:
            changed |= self._set(index, rank)
        if changed:
            self._cached = -1
        return changed

    def _histogram(self) -> list[int]:
        hist = [0] * (HLL_Q + 2)
        if self._dense is not None:
            for r in self._dense:
                hist[r] += 1
        else:
            hist[0] = HLL_REGISTERS - len(self._sparse)
            for r in self._sparse.values():
                hist[r] += 1
        return hist

    def count(self) -> int:
        """The estimated number of distinct values added (cached until a register changes)."""
        if self._cached < 0:
            self._cached = hll_estimate(self._histogram())
        return self._cached

    def merge(self, other: Hll) -> None:
        """Union in place: each register keeps the larger rank."""
        if not isinstance(other, Hll):
            raise TypeError(f"Hll.merge takes an Hll, got {type(other).__name__}")
        items = (list(enumerate(other._dense)) if other._dense is not None
                 else list(other._sparse.items()))
        changed = False
        for index, rank in items:
            if rank:
                changed |= self._set(index, rank)
        if changed:
            self._cached = -1

    def copy(self) -> Hll:
        out = Hll()
        out._sparse = None if self._sparse is None else dict(self._sparse)
        out._dense = None if self._dense is None else list(self._dense)
        out._cached = self._cached
        return out

    @property
    def nbytes(self) -> int:
        """Bytes of register data: 4 per sparse entry, 12288 dense (slack and headers aside)."""
        return HLL_DENSE_BYTES if self._dense is not None else 4 * len(self._sparse)

    @property
    def dense(self) -> bool:
        """Whether the registers are held dense (more than HLL_SPARSE_MAX set)."""
        return self._dense is not None

    def __repr__(self) -> str:
        return f"Hll(count={self.count()}, {'dense' if self._dense is not None else 'sparse'})"


# ---- DDSketch ----------------------------------------------------------------------

DIST_RELATIVE_ACCURACY = 0.01
DIST_GAMMA = (1 + DIST_RELATIVE_ACCURACY) / (1 - DIST_RELATIVE_ACCURACY)
DIST_MULTIPLIER = 1.0 / math.log(DIST_GAMMA)
# NOTE: per store; gamma**2048 spans 17 orders of magnitude, so only a sketch fed values
# from nanoseconds to centuries collapses, and then only its lowest |values| lose accuracy.
DIST_BIN_LIMIT = 2048
DIST_VERSION = 1
_DIST_HEAD = struct.Struct("<BQQddd")
_DIST_STORE = struct.Struct("<iI")
_U63 = (1 << 63) - 1


def dist_key(a: float) -> int:
    """The bin of a positive magnitude: k with gamma**(k-1) < a <= gamma**k (up to rounding)."""
    return math.ceil(math.log(a) * DIST_MULTIPLIER)


def dist_value(k: int) -> float:
    """What bin k answers: 2 gamma^k / (gamma + 1) = gamma^(k-1) (1 + a), within a of the bin."""
    return math.pow(DIST_GAMMA, k - 1) * (1 + DIST_RELATIVE_ACCURACY)


DIST_KEY_MIN = dist_key(5e-324)
DIST_KEY_MAX = dist_key(1.7976931348623157e308)


class _Store:
    """Bins of one sign: key -> count, spanning at most DIST_BIN_LIMIT keys.

    NOTE: when a key beyond the highest arrives, every bin below ``highest - limit + 1``
    folds into that one. The floor only rises, so each value ends at ``max(its key, floor)``
    whatever the order of adds and merges: merging sketches equals adding all their values.
    """

    __slots__ = ("bins", "hi")

    def __init__(self):
        self.bins: dict[int, int] = {}
        self.hi = 0

    def add(self, k: int, n: int) -> None:
        bins = self.bins
        if not bins:
            self.hi = k
        elif k > self.hi:
            self.hi = k
            floor = k - DIST_BIN_LIMIT + 1
            low = [j for j in bins if j < floor]
            if low:
                bins[floor] = bins.get(floor, 0) + sum(bins.pop(j) for j in low)
        else:
            k = max(k, self.hi - DIST_BIN_LIMIT + 1)
        bins[k] = bins.get(k, 0) + n

    def span(self) -> tuple[int, int]:
        """(lowest key, number of keys up to the highest); (0, 0) when empty."""
        if not self.bins:
            return 0, 0
        lo = min(self.bins)
        return lo, self.hi - lo + 1

    def pack(self) -> bytes:
        lo, n = self.span()
        return _DIST_STORE.pack(lo, n) + b"".join(_uvarint(self.bins.get(lo + i, 0)) for i in range(n))

    def unpack(self, data: bytes, at: int) -> tuple[int, int]:
        """Load the store at ``at``; returns (offset after it, total count)."""
        if len(data) < at + _DIST_STORE.size:
            raise ValueError("Dist bytes cut short")
        lo, n = _DIST_STORE.unpack_from(data, at)
        at += _DIST_STORE.size
        if n == 0:
            if lo != 0:
                raise ValueError("bad Dist store")
            return at, 0
        if n > DIST_BIN_LIMIT or lo < DIST_KEY_MIN or lo + n - 1 > DIST_KEY_MAX:
            raise ValueError("bad Dist store span")
        counts = []
        for _ in range(n):
            c, at = _read_uvarint(data, at)
            counts.append(c)
        if counts[0] == 0 or counts[-1] == 0:
            raise ValueError("bad Dist store: an empty end bin")
        if sum(counts) > _U63:
            raise ValueError("bad Dist: the bins do not add up to the count")
        self.bins = {lo + i: c for i, c in enumerate(counts) if c}
        self.hi = lo + n - 1
        return at, sum(counts)


def _uvarint(n: int) -> bytes:
    """LEB128: 7 bits a byte, low first, the high bit set on every byte but the last."""
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_uvarint(data: bytes, at: int) -> tuple[int, int]:
    """(value, offset after it); ValueError unless minimal, whole and below 2**63."""
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("Dist bytes cut short")
        b = data[at]
        at += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and shift:
                raise ValueError("bad Dist count: a varint that is not minimal")
            return value, at
        shift += 7
        if shift >= 63:
            raise ValueError("bad Dist count: a varint too long")


def _as_float(value) -> float:
    if isinstance(value, (str, bytes, bytearray)):
        raise TypeError(f"Dist takes numbers, got {type(value).__name__}")
    return float(value)


class Dist:
    """DDSketch, relative accuracy 1% (gamma = (1+a)/(1-a), a = 0.01), logarithmic mapping,
    positive and negative stores and a zero count; at most 2048 bins per store (the lowest
    collapse). A quantile answers within 1% of a true value, clamped to [min, max].

    Chosen over t-digest because its error is relative (what a latency p99 needs) and its
    merge is exact: merging two sketches gives the bins of adding every value to one.
    """

    __slots__ = ("_count", "_zero", "_sum", "_min", "_max", "_pos", "_neg")

    def __init__(self, data: bytes | None = None):
        self._count = 0
        self._zero = 0
        self._sum = 0.0
        self._min = 0.0
        self._max = 0.0
        self._pos = _Store()
        self._neg = _Store()
        if data is not None:
            self._load(data)

    def _load(self, data) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"Dist() takes bytes from to_bytes(), got {type(data).__name__}")
        data = bytes(data)
        if len(data) < _DIST_HEAD.size or data[0] != DIST_VERSION:
            raise ValueError("not a Dist (bad length or version byte)")
        _, count, zero, total, lo, hi = _DIST_HEAD.unpack_from(data)
        at, npos = self._pos.unpack(data, _DIST_HEAD.size)
        at, nneg = self._neg.unpack(data, at)
        if at != len(data):
            raise ValueError("bad Dist length")
        if count > _U63 or npos + nneg + zero != count:
            raise ValueError("bad Dist: the bins do not add up to the count")
        if count == 0:
            if lo != 0.0 or hi != 0.0 or total != 0.0:
                raise ValueError("bad Dist: an empty sketch with a sum, min or max")
        elif not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi) or math.isnan(total):
            raise ValueError("bad Dist min, max or sum")
        self._count, self._zero, self._sum, self._min, self._max = count, zero, total, lo, hi

    def to_bytes(self) -> bytes:
        head = _DIST_HEAD.pack(DIST_VERSION, self._count, self._zero, self._sum, self._min, self._max)
        return head + self._pos.pack() + self._neg.pack()

    def __reduce__(self):
        return (type(self), (self.to_bytes(),))

    def add(self, value: float, count: int = 1) -> None:
        """Add ``value`` ``count`` times (a finite number; count a positive int)."""
        v = _as_float(value)
        if not math.isfinite(v):
            raise ValueError(f"Dist.add takes finite numbers, got {v}")
        if isinstance(count, bool) or not isinstance(count, int):
            raise TypeError(f"count must be an int, got {type(count).__name__}")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        if count > _U63 - self._count:
            raise OverflowError("Dist count would pass 2**63 - 1")
        if v == 0.0:
            v = 0.0             # -0.0 too: one zero, so min/max do not depend on the order
        if self._count == 0:
            self._min = self._max = v
        elif v < self._min:
            self._min = v
        elif v > self._max:
            self._max = v
        self._count += count
        self._sum += v * count
        if v > 0.0:
            self._pos.add(dist_key(v), count)
        elif v < 0.0:
            self._neg.add(dist_key(-v), count)
        else:
            self._zero += count

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0..1): the bin holding the sorted value at rank
        ``q * (count - 1)`` rounded down, as numpy's 'lower'; None when empty."""
        q = _as_float(q)
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile takes 0 <= q <= 1, got {q}")
        if self._count == 0:
            return None
        if q == 0.0:
            return self._min    # the ends are known exactly: no need to answer within 1%
        if q == 1.0:
            return self._max
        rank = q * (self._count - 1)
        seen = 0
        v = self._max
        for k in sorted(self._neg.bins, reverse=True):
            seen += self._neg.bins[k]
            if seen > rank:
                v = -dist_value(k)
                break
        else:
            seen += self._zero
            if seen > rank:
                v = 0.0
            else:
                for k in sorted(self._pos.bins):
                    seen += self._pos.bins[k]
                    if seen > rank:
                        v = dist_value(k)
                        break
        return min(max(v, self._min), self._max)

    def merge(self, other: Dist) -> None:
        """Add every value ``other`` holds (its bins): the same as adding them here."""
        if not isinstance(other, Dist):
            raise TypeError(f"Dist.merge takes a Dist, got {type(other).__name__}")
        if other._count == 0:
            return
        if other._count > _U63 - self._count:
            raise OverflowError("Dist count would pass 2**63 - 1")
        if other is self:
            other = self.copy()
        if self._count == 0:
            self._min, self._max = other._min, other._max
        else:
            self._min = min(self._min, other._min)
            self._max = max(self._max, other._max)
        self._count += other._count
        self._sum += other._sum
        self._zero += other._zero
        for mine, theirs in ((self._pos, other._pos), (self._neg, other._neg)):
            for k in sorted(theirs.bins):
                mine.add(k, theirs.bins[k])

    def copy(self) -> Dist:
        return Dist(self.to_bytes())

    @property
    def count(self) -> int:
        return self._count

    @property
    def sum(self) -> float:
        return self._sum

    @property
    def min(self) -> float | None:
        return self._min if self._count else None

    @property
    def max(self) -> float | None:
        return self._max if self._count else None

    @property
    def nbytes(self) -> int:
        """Bytes of data: 8 per bin spanned in each store plus the five scalars."""
        return 40 + 8 * (self._pos.span()[1] + self._neg.span()[1])

    def __repr__(self) -> str:
        return f"Dist(count={self._count}, min={self.min}, max={self.max})"
