# ---------------------------------------------------------------------------
# Sketches: Hll (HyperLogLog, distinct counts) and Dist (DDSketch, quantiles).
# Pure twin (the oracle): ocean/_reference/sketch.py -- same names, same errors, and the
# same registers, bins, bytes and answers bit for bit. Byte layouts: that module's docstring.
# ---------------------------------------------------------------------------
#
# Hll copies Redis's hyperloglog.c where it matters: MurmurHash64A with seed 0xadc83b19,
# p = 14, ranks from the trailing zeros of the upper 50 bits, the same 6-bit dense packing
# and Ertl's estimator. So the same strings give Redis's registers and PFCOUNT exactly
# (tests/unit/test_sketch.py checks it against a real redis-server). The sparse form is a
# sorted array of u32 ``index << 6 | rank``, dense once more than HLL_SPARSE_MAX are set.
#
# PERF: bench/bench_sketch.py, medians of 20 rounds of 10,000 values on the 2-core box:
# Hll.add of 1000 values a call 7.9 ns a value (126M/s), 6.7x Redis 7.0 taking the same
# values as pipelined PFADDs of 1000 (53 ns a value, raw RESP on loopback), 49x one-value
# PFADDs pipelined (390 ns), 147x the twin (1.2 us). One value a call (a uniq per write):
# 52 ns; with the count() a uniq write answers, 0.17 us a write on a dense sketch (the
# histogram kept in the dense block; 11.5 us when count() scanned the registers). Memory
# (tracemalloc, object + data): 113 bytes for 10 values (Redis's MEMORY USAGE 152), 12,472
# for 100k (Redis 14,408). Dist.add: 36-43 ns a call, 15-18x the twin;
# quantile of a 600-bin sketch 0.27 us (twin 23 us).
#
# Bit for bit with the twin: every float operation is one IEEE double operation done in the
# same order as there (no -ffast-math; x86-64's baseline has no FMA to contract into), and
# the transcendental calls go to the same libm as Python's math module. Dist's constants
# are computed at import by Python's own math.log, as in the twin, so no compile-time
# constant folding can differ by an ulp.
#
# Threads: Hll.add and Hll.merge release the GIL for their register loops. Before they do,
# they set the sketch's ``_busy`` flag, and every method waits (without the GIL) until it is
# clear before touching the registers. The flag is only read and written with the GIL held,
# so it needs no atomics, and no method holds it across a Python call or a yield. The flag
# holds the pid that set it: a process forked while another thread ran a loop (a snapshot
# child) does not wait forever for a thread it does not have.
# PERF: a flag, not a pthread mutex: 4 bytes instead of 40 in every sketch (a small Hll is
# ~100 bytes in all; bench/bench_sketch.py::test_hll_memory_per_sketch).
# Dist never releases the GIL: one value per add is too little work to be worth it.

import json as _sk_json_mod
import math as _sk_math

from libc.math cimport ceil, floor, isfinite, log, pow, sqrt, INFINITY
from libc.string cimport memcpy, memmove, memset
from libc.stdint cimport int32_t, uint16_t
from cpython.mem cimport PyMem_RawMalloc, PyMem_RawCalloc, PyMem_RawRealloc, PyMem_RawFree, PyMem_Malloc, PyMem_Free

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* MurmurHash64A (Austin Appleby), as Redis's hyperloglog.c has it: blocks read
       little-endian whatever the host, so a sketch's bytes mean the same everywhere. */
    static inline uint64_t ocean_murmur64a(const unsigned char *data, Py_ssize_t len, uint64_t seed) {
        const uint64_t m = 0xc6a4a7935bd1e995ULL;
        const int r = 47;
        uint64_t h = seed ^ ((uint64_t)len * m);
        const unsigned char *end = data + (len - (len & 7));
        while (data != end) {
            uint64_t k;
            memcpy(&k, data, 8);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            k = __builtin_bswap64(k);
    #endif
            k *= m; k ^= k >> r; k *= m;
            h ^= k; h *= m;
            data += 8;
        }
        switch (len & 7) {
        case 7: h ^= (uint64_t)data[6] << 48; /* fall through */
        case 6: h ^= (uint64_t)data[5] << 40; /* fall through */
        case 5: h ^= (uint64_t)data[4] << 32; /* fall through */
        case 4: h ^= (uint64_t)data[3] << 24; /* fall through */
        case 3: h ^= (uint64_t)data[2] << 16; /* fall through */
        case 2: h ^= (uint64_t)data[1] << 8;  /* fall through */
        case 1: h ^= (uint64_t)data[0];
                h *= m;
        }
        h ^= h >> r; h *= m; h ^= h >> r;
        return h;
    }
    /* Redis's HLL_DENSE_GET/SET_REGISTER: register i at bits 6i..6i+5, LSB first. The
       buffer has one spare byte past the 12288 so the last register reads no further. */
    static inline unsigned ocean_hll_get(const uint8_t *p, uint32_t i) {
        unsigned long byte = i * 6 / 8, fb = i * 6 & 7, fb8 = 8 - fb;
        return (unsigned)(((unsigned long)p[byte] >> fb) | ((unsigned long)p[byte + 1] << fb8)) & 63;
    }
    static inline void ocean_hll_set(uint8_t *p, uint32_t i, unsigned v) {
        unsigned long byte = i * 6 / 8, fb = i * 6 & 7, fb8 = 8 - fb;
        p[byte] &= ~(63UL << fb);
        p[byte] |= (unsigned long)v << fb;
        p[byte + 1] &= ~(63UL >> fb8);
        p[byte + 1] |= (unsigned long)v >> fb8;
    }
    static inline int ocean_ctz64(uint64_t x) { return __builtin_ctzll(x); }
    /* dst = max(dst, src) register by register, keeping dst's histogram; 1 if any changed.
       Four registers are three bytes (24 bits, LSB first), so it walks 4096 such groups and
       skips the ones src leaves at zero. */
    static int ocean_hll_merge_dense(uint8_t *dst, const uint8_t *src, uint16_t *hist) {
        int changed = 0;
        for (int g = 0; g < 4096; g++) {
            const uint8_t *s = src + 3 * g;
            uint8_t *d = dst + 3 * g;
            uint32_t sv = s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16;
            if (sv == 0) continue;
            uint32_t dv = d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16, out = 0;
            for (int r = 0; r < 24; r += 6) {
                unsigned a = (dv >> r) & 63, b = (sv >> r) & 63;
                if (b > a) { hist[a]--; hist[b]++; a = b; changed = 1; }
                out |= (uint32_t)a << r;
            }
            d[0] = (uint8_t)out; d[1] = (uint8_t)(out >> 8); d[2] = (uint8_t)(out >> 16);
        }
        return changed;
    }
    """
    uint64_t _sk_murmur "ocean_murmur64a"(const unsigned char* data, Py_ssize_t n, uint64_t seed) nogil
    unsigned _sk_get "ocean_hll_get"(const uint8_t* p, uint32_t i) nogil
    void _sk_set "ocean_hll_set"(uint8_t* p, uint32_t i, unsigned v) nogil
    int _sk_ctz "ocean_ctz64"(uint64_t x) nogil
    bint _sk_merge_dense "ocean_hll_merge_dense"(uint8_t* dst, const uint8_t* src, uint16_t* hist) nogil

cdef extern from "<sched.h>" nogil:
    int sched_yield()

cdef extern from "<unistd.h>" nogil:
    int getpid()

cdef extern from "Python.h":
    PyObject* _sk_list_item "PyList_GET_ITEM"(object o, Py_ssize_t i)
    bint _sk_is_int "PyLong_CheckExact"(PyObject* o)
    bint _sk_is_float "PyFloat_CheckExact"(PyObject* o)
    bint _sk_is_unicode "PyUnicode_Check"(PyObject* o)

cdef enum:
    _SK_P = 14
    _SK_M = 16384
    _SK_Q = 50
    _SK_MAX_RANK = 51
    _SK_DENSE_BYTES = 12288
    _SK_SPARSE_MAX = 768          # the twin's HLL_SPARSE_MAX: 3 KB sparse, Redis's default
    _SK_VERSION = 1
    _SK_SPARSE = 1
    _SK_DENSE = 2
    _SK_BIN_LIMIT = 2048          # the twin's DIST_BIN_LIMIT, per store
    # A dense block: the registers, their spare byte (padded to 12292), then the histogram of
    # register values as 52 u16 (how many registers hold each rank), kept as registers change.
    _SK_HIST_AT = 12292
    _SK_DENSE_ALLOC = 12292 + 2 * 52

cdef uint64_t _SK_SEED = 0xadc83b19
cdef double _SK_ALPHA_INF = 0.721347520444481703680
cdef uint64_t _SK_U63 = (<uint64_t>1 << 63) - 1

# the canonical JSON text of a non-str value (json.dumps with these arguments, built once)
_sk_json = _sk_json_mod.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

ctypedef struct _sk_text:
    const unsigned char* p
    Py_ssize_t n


# ---- Hll ----------------------------------------------------------------------------

cdef double _sk_tau(double x) noexcept nogil:
    cdef double y, z, z_prev, t
    if x == 0.0 or x == 1.0:
        return 0.0
    y = 1.0
    z = 1.0 - x
    while True:
        x = sqrt(x)
        z_prev = z
        y *= 0.5
        t = 1.0 - x
        z -= t * t * y
        if z_prev == z:
            return z / 3.0


cdef double _sk_sigma(double x) noexcept nogil:
    cdef double y, z, z_prev
    if x == 1.0:
        return INFINITY
    y = 1.0
    z = x
    while True:
        x *= x
        z_prev = z
        z += x * y
        y += y
        if z_prev == z:
            return z


cdef int64_t _sk_estimate(const int64_t* hist) noexcept nogil:
    """Ertl's improved estimator, as Redis's hllCount and the twin's hll_estimate."""
    cdef double m = _SK_M
    cdef double z = m * _sk_tau((m - hist[_SK_Q + 1]) / m)
    cdef int j
    cdef double e, f
    for j in range(_SK_Q, 0, -1):
        z += hist[j]
        z *= 0.5
    z += m * _sk_sigma(hist[0] / m)
    e = _SK_ALPHA_INF * m * m / z
    f = floor(e)                  # round half away from zero, as C's llround
    return <int64_t>(f + 1 if e - f >= 0.5 else f)


cdef inline uint16_t* _sk_hist(uint8_t* dense) noexcept nogil:
    return <uint16_t*>(dense + _SK_HIST_AT)


cdef void _sk_rehist(uint8_t* dense) noexcept nogil:
    """Count the registers of each value into the dense block's histogram."""
    cdef uint16_t* hist = _sk_hist(dense)
    cdef Py_ssize_t i
    memset(hist, 0, 2 * (_SK_MAX_RANK + 1))
    for i in range(_SK_M):
        hist[_sk_get(dense, <uint32_t>i)] += 1


cdef class Hll:
    """HyperLogLog, p=14: 16384 6-bit registers (12 KB dense, as Redis), ~0.81% standard error.

    Hash: MurmurHash64A (seed 0xadc83b19, as Redis) of each value's UTF-8 bytes; a non-str value
    is hashed as its canonical JSON text. Sparse (a sorted array of u32 ``index << 6 | rank``)
    while at most 768 registers are set, dense above. ``Hll(data)`` loads ``to_bytes()``.
    """

    cdef uint8_t* _dense          # the dense block once dense (registers + histogram), else NULL
    cdef uint32_t* _sparse        # sorted entries while sparse
    cdef uint8_t* _spare          # a zeroed dense buffer set aside before a nogil section
    cdef int64_t _cached          # count() until a register changes, or -1
    cdef int32_t _n, _cap         # sparse entries used / allocated
    cdef int32_t _busy            # pid of a register loop running without the GIL, or 0

    def __cinit__(self, *args, **kwargs):
        self._cached = 0

    def __dealloc__(self):
        PyMem_RawFree(self._dense)
        PyMem_RawFree(self._sparse)
        PyMem_RawFree(self._spare)

    cdef inline void _wait(self) noexcept:
        """Return once no register loop runs on this sketch (called with the GIL held)."""
        while self._busy and self._busy == getpid():
            with nogil:
                sched_yield()

    def __init__(self, data=None):
        if data is not None:
            self._load(data)

    # -- registers (callers hold the GIL and have waited out _busy) ------------------------

    cdef int _reserve(self, Py_ssize_t more) except -1:
        """Room for ``more`` new registers, so the nogil loop never allocates."""
        cdef Py_ssize_t need, cap
        cdef uint32_t* grown
        # PERF: capacity grows to what the batch can need (at least doubling, up to the limit),
        # so a sketch filled by one add of 10 values holds 40 bytes of entries, not 64
        if self._dense != NULL:
            return 0
        need = min(self._n + more, <Py_ssize_t>_SK_SPARSE_MAX)
        if need > self._cap:
            cap = max(need, min(2 * self._cap, <Py_ssize_t>_SK_SPARSE_MAX), 4)
            grown = <uint32_t*>PyMem_RawRealloc(self._sparse, cap * sizeof(uint32_t))
            if grown == NULL:
                raise MemoryError()
            self._sparse, self._cap = grown, cap
        if self._n + more > _SK_SPARSE_MAX and self._spare == NULL:
            self._spare = <uint8_t*>PyMem_RawCalloc(_SK_DENSE_ALLOC, 1)
            if self._spare == NULL:
                raise MemoryError()
        return 0

    cdef void _release_spare(self) noexcept:
        PyMem_RawFree(self._spare)
        self._spare = NULL

    cdef void _densify(self) noexcept nogil:
        """Move the sparse entries into the spare dense buffer (set aside by _reserve)."""
        cdef Py_ssize_t i
        cdef uint32_t e
        self._dense, self._spare = self._spare, NULL
        for i in range(self._n):
            e = self._sparse[i]
            _sk_set(self._dense, e >> 6, e & 63)
        _sk_rehist(self._dense)
        PyMem_RawFree(self._sparse)
        self._sparse, self._n, self._cap = NULL, 0, 0

    cdef bint _raise(self, uint32_t index, unsigned rank) noexcept nogil:
        """Register ``index`` = max(itself, rank); True if it changed."""
        cdef Py_ssize_t lo, hi, mid
        cdef unsigned old
        cdef uint16_t* hist
        if self._dense != NULL:
            old = _sk_get(self._dense, index)
            if rank <= old:
                return False
            _sk_set(self._dense, index, rank)
            hist = _sk_hist(self._dense)
            hist[old] -= 1
            hist[rank] += 1
            return True
        lo, hi = 0, self._n
        while lo < hi:
            mid = (lo + hi) >> 1
            if (self._sparse[mid] >> 6) < index:
                lo = mid + 1
            else:
                hi = mid
        if lo < self._n and (self._sparse[lo] >> 6) == index:
            if rank <= (self._sparse[lo] & 63):
                return False
            self._sparse[lo] = index << 6 | rank
            return True
        if self._n == _SK_SPARSE_MAX:      # one more would pass the limit: dense from here
            self._densify()
            return self._raise(index, rank)
        memmove(&self._sparse[lo + 1], &self._sparse[lo], (self._n - lo) * sizeof(uint32_t))
        self._sparse[lo] = index << 6 | rank
        self._n += 1
        return True

    cdef bint _add_texts(self, const _sk_text* texts, Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t i
        cdef uint64_t h
        cdef bint changed = False
        for i in range(n):
            h = _sk_murmur(texts[i].p, texts[i].n, _SK_SEED)
            changed |= self._raise(<uint32_t>(h & (_SK_M - 1)),
                                   <unsigned>_sk_ctz((h >> _SK_P) | (<uint64_t>1 << _SK_Q)) + 1)
        return changed

    # -- the API -------------------------------------------------------------------------

    def add(self, values):
        """Add every value of an iterable; True if any register changed.

        Every value is encoded before any register moves, so a value that cannot be hashed
        (a surrogate, an object json cannot write) raises and leaves the sketch unchanged.
        """
        # PERF: the register loop runs without the GIL; str values are hashed straight from
        # their UTF-8 (ASCII strs from their own buffer), non-str ones from their JSON text
        # kept alive in ``keep``. bench/bench_sketch.py: see the figures in the module's PERF.
        if isinstance(values, (str, bytes, bytearray)):
            raise TypeError("Hll.add takes an iterable of values (a list), not one string")
        # a copy, even of a list: it keeps every value alive while the loop runs without the GIL
        cdef list seq = list(values)
        cdef Py_ssize_t n = len(seq), i
        cdef _sk_text small[8]
        cdef _sk_text* texts = small
        cdef PyObject* o
        cdef list keep = None
        cdef bint changed
        if n == 0:
            return False
        if n > 8:       # PERF: one value a call (a uniq per write) skips malloc: 95 -> 80 ns a call
            texts = <_sk_text*>PyMem_Malloc(n * sizeof(_sk_text))
            if texts == NULL:
                raise MemoryError()
        try:
            for i in range(n):
                o = _sk_list_item(seq, i)
                if _sk_is_unicode(o):
                    texts[i].p = <const unsigned char*>_ocn_utf8(<object>o, &texts[i].n)
                    continue
                if keep is None:
                    keep = []
                text = str(<object>o) if _sk_is_int(o) else _sk_json(<object>o)   # an int's JSON is its str
                keep.append(text)
                texts[i].p = <const unsigned char*>_ocn_utf8(text, &texts[i].n)
            self._wait()
            try:
                self._reserve(n)
                if texts == small:      # PERF: a few values: releasing the GIL costs more than the loop
                    changed = self._add_texts(texts, n)
                else:
                    self._busy = getpid()
                    with nogil:
                        changed = self._add_texts(texts, n)
                if changed:
                    self._cached = -1
            finally:
                self._busy = 0
                self._release_spare()
        finally:
            if texts != small:
                PyMem_Free(texts)
        return changed

    def count(self):
        """The estimated number of distinct values added (cached until a register changes)."""
        # PERF: dense sketches keep their histogram as registers change, so a count after an
        # add that moved a register (what a uniq write answers) costs the estimator's ~0.5 us,
        # not a 27 us pass over the 16384 registers: add + count 11.5 -> ~1 us a write.
        cdef int64_t hist[_SK_Q + 2]
        cdef Py_ssize_t i
        cdef uint16_t* kept
        self._wait()
        if self._cached < 0:
            memset(hist, 0, sizeof(hist))
            if self._dense != NULL:
                kept = _sk_hist(self._dense)
                for i in range(_SK_MAX_RANK + 1):
                    hist[i] = kept[i]
            else:
                hist[0] = _SK_M - self._n
                for i in range(self._n):
                    hist[self._sparse[i] & 63] += 1
            self._cached = _sk_estimate(hist)
        return self._cached

    cdef bytes _registers(self):
        """The form byte's body: sparse entries (u32 little-endian) or the dense registers."""
        cdef bytes out
        cdef unsigned char* p
        cdef Py_ssize_t i
        cdef uint32_t e
        if self._dense != NULL:
            return _ocn_bytes_from(<const char*>self._dense, _SK_DENSE_BYTES)
        out = _ocn_bytes_from(NULL, 4 * self._n)
        p = <unsigned char*>_ocn_bytes_ptr(out)
        for i in range(self._n):
            e = self._sparse[i]
            p[4 * i] = e & 0xFF
            p[4 * i + 1] = (e >> 8) & 0xFF
            p[4 * i + 2] = (e >> 16) & 0xFF
            p[4 * i + 3] = e >> 24
        return out

    def to_bytes(self):
        """The version byte, the form byte and the registers (layout: ocean/_reference/sketch.py)."""
        self._wait()
        form = _SK_DENSE if self._dense != NULL else _SK_SPARSE
        return bytes((_SK_VERSION, form)) + self._registers()

    cdef _load(self, data):
        cdef const unsigned char* p
        cdef Py_ssize_t n, i, count, last = -1
        cdef uint32_t e, index, rank
        cdef uint8_t* regs
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"Hll() takes bytes from to_bytes(), got {type(data).__name__}")
        PyMem_RawFree(self._dense)
        PyMem_RawFree(self._sparse)
        self._dense, self._sparse, self._n, self._cap = NULL, NULL, 0, 0
        data = bytes(data)
        n = len(data)
        p = <const unsigned char*>_ocn_bytes_ptr(data)
        if n < 2 or p[0] != _SK_VERSION:
            raise ValueError("not an Hll (bad length or version byte)")
        if p[1] == _SK_SPARSE:
            count = (n - 2) // 4
            if (n - 2) % 4 or count > _SK_SPARSE_MAX:
                raise ValueError("bad Hll sparse length")
            for i in range(count):
                e = p[2 + 4 * i] | (<uint32_t>p[3 + 4 * i] << 8) | (<uint32_t>p[4 + 4 * i] << 16) | (<uint32_t>p[5 + 4 * i] << 24)
                index, rank = e >> 6, e & 63
                if index >= _SK_M or <Py_ssize_t>index <= last or not 1 <= rank <= _SK_MAX_RANK:
                    raise ValueError("bad Hll sparse entry")
                last = index
            self._reserve(count)
            for i in range(count):
                self._sparse[i] = p[2 + 4 * i] | (<uint32_t>p[3 + 4 * i] << 8) | (<uint32_t>p[4 + 4 * i] << 16) | (<uint32_t>p[5 + 4 * i] << 24)
            self._n = count
        elif p[1] == _SK_DENSE:
            if n - 2 != _SK_DENSE_BYTES:
                raise ValueError("bad Hll dense length")
            regs = <uint8_t*>PyMem_RawCalloc(_SK_DENSE_ALLOC, 1)
            if regs == NULL:
                raise MemoryError()
            memcpy(regs, p + 2, _SK_DENSE_BYTES)
            count = 0
            for i in range(_SK_M):
                rank = _sk_get(regs, <uint32_t>i)
                if rank > _SK_MAX_RANK:
                    PyMem_RawFree(regs)
                    raise ValueError("bad Hll register value")
                count += rank != 0
            if count > _SK_SPARSE_MAX:
                _sk_rehist(regs)
                self._dense = regs
            else:           # a dense form holding few registers (not one we write) loads sparse
                try:
                    self._reserve(count)
                    for i in range(_SK_M):
                        rank = _sk_get(regs, <uint32_t>i)
                        if rank:
                            self._sparse[self._n] = <uint32_t>i << 6 | rank
                            self._n += 1
                finally:
                    PyMem_RawFree(regs)
        else:
            raise ValueError("bad Hll form byte")
        self._cached = -1

    def __reduce__(self):
        return (type(self), (self.to_bytes(),))

    def merge(self, Hll other not None):
        """Union in place: each register keeps the larger rank."""
        cdef bytes theirs
        cdef const unsigned char* p
        cdef Py_ssize_t i, count
        cdef uint32_t e
        cdef bint changed = False, dense
        # a snapshot of other's registers first (other may be self, or busy in another thread)
        other._wait()
        dense = other._dense != NULL
        count = _SK_M if dense else other._n
        theirs = other._registers()
        # NOTE: a bytes object ends in a NUL past its size, so reading the last register's
        # spare byte (_sk_get) stays inside it
        p = <const unsigned char*>_ocn_bytes_ptr(theirs)
        self._wait()
        try:
            self._reserve(count)
            self._busy = getpid()
            with nogil:
                if dense:
                    # PERF: a union of dense sketches (uniq_merge over rows) a group of four
                    # registers at a time: 65 -> 22 us a merge (200 sketches of 3000 values)
                    if self._dense == NULL:
                        self._densify()
                        changed = True
                    changed |= _sk_merge_dense(self._dense, p, _sk_hist(self._dense))
                else:
                    for i in range(count):
                        e = p[4 * i] | (<uint32_t>p[4 * i + 1] << 8) | (<uint32_t>p[4 * i + 2] << 16) | (<uint32_t>p[4 * i + 3] << 24)
                        changed |= self._raise(e >> 6, e & 63)
            if changed:
                self._cached = -1
        finally:
            self._busy = 0
            self._release_spare()

    def copy(self):
        cdef Hll out = Hll.__new__(Hll)
        self._wait()
        if self._dense != NULL:
            out._dense = <uint8_t*>PyMem_RawMalloc(_SK_DENSE_ALLOC)
            if out._dense == NULL:
                raise MemoryError()
            memcpy(out._dense, self._dense, _SK_DENSE_ALLOC)
        elif self._n:
            out._reserve(self._n)
            memcpy(out._sparse, self._sparse, self._n * sizeof(uint32_t))
            out._n = self._n
        out._cached = self._cached
        return out

    @property
    def nbytes(self):
        """Bytes of register data: 4 per sparse entry, 12288 dense (slack and headers aside)."""
        self._wait()
        return _SK_DENSE_BYTES if self._dense != NULL else 4 * self._n

    @property
    def dense(self):
        """Whether the registers are held dense (more than 768 set)."""
        self._wait()
        return self._dense != NULL

    def __repr__(self):
        return f"Hll(count={self.count()}, {'dense' if self._dense != NULL else 'sparse'})"


# ---- Dist ---------------------------------------------------------------------------

# Computed by Python's math at import, exactly as the twin computes them (see the top).
_SK_REL_ACC_PY = 0.01
cdef double _SK_GAMMA = (1 + _SK_REL_ACC_PY) / (1 - _SK_REL_ACC_PY)
cdef double _SK_MULT = 1.0 / _sk_math.log((1 + _SK_REL_ACC_PY) / (1 - _SK_REL_ACC_PY))
cdef double _SK_ONE_PLUS_A = 1 + _SK_REL_ACC_PY
cdef int32_t _SK_KEY_MIN = _sk_math.ceil(_sk_math.log(5e-324) * _SK_MULT)
cdef int32_t _SK_KEY_MAX = _sk_math.ceil(_sk_math.log(1.7976931348623157e308) * _SK_MULT)

ctypedef struct _sk_store:
    uint64_t* bins        # bins[i] counts key lo + i; lo and hi are non-empty
    int32_t lo, hi
    Py_ssize_t n          # hi - lo + 1, or 0 when empty


cdef inline int32_t _sk_key(double a) noexcept nogil:
    return <int32_t>ceil(log(a) * _SK_MULT)


cdef inline double _sk_value(int32_t k) noexcept nogil:
    return pow(_SK_GAMMA, <double>(k - 1)) * _SK_ONE_PLUS_A


cdef int _sk_store_add(_sk_store* s, int32_t k, uint64_t c) except -1:
    """Count ``c`` at key ``k``; past 2048 keys the lowest fold into the new floor (the
    twin's _Store.add: each value ends at max(its key, highest - 2047), in any order)."""
    cdef int32_t floor_
    cdef Py_ssize_t n, i, keep_from
    cdef uint64_t folded
    cdef uint64_t* bins
    if s.n == 0:
        s.bins = <uint64_t*>PyMem_RawCalloc(1, sizeof(uint64_t))
        if s.bins == NULL:
            raise MemoryError()
        s.lo = s.hi = k
        s.n = 1
    elif k > s.hi:
        floor_ = k - _SK_BIN_LIMIT + 1
        if floor_ > s.lo:
            # fold [lo, floor) into floor; keep [floor, hi]; the new span is [floor, k]
            n = k - floor_ + 1
            bins = <uint64_t*>PyMem_RawCalloc(n, sizeof(uint64_t))
            if bins == NULL:
                raise MemoryError()
            folded = 0
            keep_from = min(<Py_ssize_t>(floor_ - s.lo), s.n)
            for i in range(keep_from):
                folded += s.bins[i]
            for i in range(keep_from, s.n):
                bins[s.lo + i - floor_] = s.bins[i]
            bins[0] += folded
            PyMem_RawFree(s.bins)
            s.bins, s.lo, s.n = bins, floor_, n
        else:
            n = k - s.lo + 1
            bins = <uint64_t*>PyMem_RawRealloc(s.bins, n * sizeof(uint64_t))
            if bins == NULL:
                raise MemoryError()
            memset(&bins[s.n], 0, (n - s.n) * sizeof(uint64_t))
            s.bins, s.n = bins, n
        s.hi = k
    elif k < s.lo:
        k = max(k, s.hi - _SK_BIN_LIMIT + 1)
        if k < s.lo:
            n = s.hi - k + 1
            bins = <uint64_t*>PyMem_RawRealloc(s.bins, n * sizeof(uint64_t))
            if bins == NULL:
                raise MemoryError()
            memmove(&bins[s.lo - k], bins, s.n * sizeof(uint64_t))
            memset(bins, 0, (s.lo - k) * sizeof(uint64_t))
            s.bins, s.lo, s.n = bins, k, n
    s.bins[k - s.lo] += c
    return 0


cdef inline void _sk_put(unsigned char* p, uint64_t v, int width) noexcept nogil:
    cdef int i
    for i in range(width):
        p[i] = (v >> (8 * i)) & 0xFF


cdef inline uint64_t _sk_take(const unsigned char* p, int width) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(width):
        v |= <uint64_t>p[i] << (8 * i)
    return v


cdef Py_ssize_t _sk_store_pack(_sk_store* s, unsigned char* p) noexcept:
    """Write the store at ``p`` (room for 8 + 10 per bin); returns the bytes written."""
    cdef Py_ssize_t i, at = 8
    cdef uint64_t c
    _sk_put(p, <uint32_t>(s.lo if s.n else 0), 4)
    _sk_put(p + 4, <uint32_t>s.n, 4)
    for i in range(s.n):
        c = s.bins[i]
        while c >= 0x80:             # LEB128, as the twin's _uvarint
            p[at] = (c & 0x7F) | 0x80
            c >>= 7
            at += 1
        p[at] = <unsigned char>c
        at += 1
    return at


cdef Py_ssize_t _sk_store_unpack(_sk_store* s, const unsigned char* p, Py_ssize_t at, Py_ssize_t size,
                                 uint64_t* total) except -1:
    """Load the store at ``at``; returns the offset after it, its count in ``total``."""
    cdef int32_t lo
    cdef uint32_t n
    cdef Py_ssize_t i
    cdef uint64_t c, t = 0
    cdef unsigned char b
    cdef int shift
    if size < at + 8:
        raise ValueError("Dist bytes cut short")
    lo = <int32_t><uint32_t>_sk_take(p + at, 4)
    n = <uint32_t>_sk_take(p + at + 4, 4)
    at += 8
    total[0] = 0
    if n == 0:
        if lo != 0:
            raise ValueError("bad Dist store")
        return at
    if n > _SK_BIN_LIMIT or lo < _SK_KEY_MIN or <int64_t>lo + n - 1 > _SK_KEY_MAX:
        raise ValueError("bad Dist store span")
    s.bins = <uint64_t*>PyMem_RawMalloc(n * sizeof(uint64_t))
    if s.bins == NULL:
        raise MemoryError()
    s.lo, s.hi, s.n = lo, lo + <int32_t>n - 1, n
    for i in range(n):
        c = 0
        shift = 0
        while True:
            if at >= size:
                raise ValueError("Dist bytes cut short")
            b = p[at]
            at += 1
            c |= <uint64_t>(b & 0x7F) << shift
            if not b & 0x80:
                if b == 0 and shift:
                    raise ValueError("bad Dist count: a varint that is not minimal")
                break
            shift += 7
            if shift >= 63:
                raise ValueError("bad Dist count: a varint too long")
        s.bins[i] = c
        if t + c > _SK_U63:
            raise ValueError("bad Dist: the bins do not add up to the count")
        t += c
    if s.bins[0] == 0 or s.bins[n - 1] == 0:
        raise ValueError("bad Dist store: an empty end bin")
    total[0] = t
    return at


cdef double _sk_as_float(value) except? -1.0:
    if isinstance(value, (str, bytes, bytearray)):
        raise TypeError(f"Dist takes numbers, got {type(value).__name__}")
    return float(value)


cdef class Dist:
    """DDSketch, relative accuracy 1% (gamma = (1+a)/(1-a), a = 0.01), logarithmic mapping,
    positive and negative stores and a zero count; at most 2048 bins per store (the lowest
    collapse). A quantile answers within 1% of a true value, clamped to [min, max].
    """

    cdef uint64_t _count, _zero
    cdef double _sum, _min, _max
    cdef _sk_store _pos, _neg

    def __dealloc__(self):
        PyMem_RawFree(self._pos.bins)
        PyMem_RawFree(self._neg.bins)

    def __init__(self, data=None):
        if data is not None:
            self._load(data)

    cdef _load(self, data):
        cdef const unsigned char* p
        cdef Py_ssize_t size, at
        cdef uint64_t npos, nneg, count, zero
        cdef double total, lo, hi
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"Dist() takes bytes from to_bytes(), got {type(data).__name__}")
        PyMem_RawFree(self._pos.bins)
        PyMem_RawFree(self._neg.bins)
        self._pos.bins, self._pos.n, self._neg.bins, self._neg.n = NULL, 0, NULL, 0
        data = bytes(data)
        size = len(data)
        p = <const unsigned char*>_ocn_bytes_ptr(data)
        if size < 41 or p[0] != _SK_VERSION:
            raise ValueError("not a Dist (bad length or version byte)")
        count, zero = _sk_take(p + 1, 8), _sk_take(p + 9, 8)
        memcpy(&total, p + 17, 8)   # NOTE: f64s as the host holds them: little-endian here
        memcpy(&lo, p + 25, 8)
        memcpy(&hi, p + 33, 8)
        at = _sk_store_unpack(&self._pos, p, 41, size, &npos)
        at = _sk_store_unpack(&self._neg, p, at, size, &nneg)
        if at != size:
            raise ValueError("bad Dist length")
        if count > _SK_U63 or zero > _SK_U63 or npos + nneg > _SK_U63 or npos + nneg + zero != count:
            raise ValueError("bad Dist: the bins do not add up to the count")
        if count == 0:
            if lo != 0.0 or hi != 0.0 or total != 0.0:
                raise ValueError("bad Dist: an empty sketch with a sum, min or max")
        elif not (isfinite(lo) and isfinite(hi) and lo <= hi) or total != total:
            raise ValueError("bad Dist min, max or sum")
        self._count, self._zero, self._sum, self._min, self._max = count, zero, total, lo, hi

    def to_bytes(self):
        """Version, count, zero count, sum, min, max, then the positive and negative stores."""
        cdef unsigned char head[41]
        head[0] = _SK_VERSION
        _sk_put(head + 1, self._count, 8)
        _sk_put(head + 9, self._zero, 8)
        memcpy(head + 17, &self._sum, 8)
        memcpy(head + 25, &self._min, 8)
        memcpy(head + 33, &self._max, 8)
        cdef Py_ssize_t n = 41 + 16 + 10 * (self._pos.n + self._neg.n)
        cdef unsigned char* buf = <unsigned char*>PyMem_Malloc(n)
        if buf == NULL:
            raise MemoryError()
        try:
            memcpy(buf, head, 41)
            n = 41 + _sk_store_pack(&self._pos, buf + 41)
            n += _sk_store_pack(&self._neg, buf + n)
            return _ocn_bytes_from(<const char*>buf, n)
        finally:
            PyMem_Free(buf)

    def __reduce__(self):
        return (type(self), (self.to_bytes(),))

    def add(self, value, count=1):
        """Add ``value`` ``count`` times (a finite number; count a positive int)."""
        cdef double v
        if _sk_is_float(<PyObject*>value):
            v = value
        else:
            v = _sk_as_float(value)
        if not isfinite(v):
            raise ValueError(f"Dist.add takes finite numbers, got {v}")
        if isinstance(count, bool) or not isinstance(count, int):
            raise TypeError(f"count must be an int, got {type(count).__name__}")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        if count > _SK_U63 - self._count:
            raise OverflowError("Dist count would pass 2**63 - 1")
        self._add(v, count)

    cdef void _add(self, double v, uint64_t c) noexcept:
        """``add`` once checked: ``v`` finite, ``c`` >= 1 and within the count's room."""
        if v == 0.0:
            v = 0.0             # -0.0 too: one zero, so min/max do not depend on the order
        if v > 0.0:
            _sk_store_add(&self._pos, _sk_key(v), c)
        elif v < 0.0:
            _sk_store_add(&self._neg, _sk_key(-v), c)
        else:
            self._zero += c
        if self._count == 0:
            self._min = self._max = v
        elif v < self._min:
            self._min = v
        elif v > self._max:
            self._max = v
        self._count += c
        self._sum += v * <double>c

    def quantile(self, q):
        """The value at quantile ``q`` (0..1): the bin holding the sorted value at rank
        ``q * (count - 1)`` rounded down, as numpy's 'lower'; None when empty."""
        cdef double x = _sk_as_float(q)
        if not 0.0 <= x <= 1.0:
            raise ValueError(f"quantile takes 0 <= q <= 1, got {x}")
        if self._count == 0:
            return None
        return self._quantile(x)

    cdef double _quantile(self, double x) noexcept:
        """``quantile`` of a sketch holding values, ``x`` in [0, 1]."""
        cdef double rank, v
        cdef uint64_t seen = 0
        cdef Py_ssize_t i
        if x == 0.0:
            return self._min
        if x == 1.0:
            return self._max
        # NOTE: seen is compared as a double, exact below 2**53 values (the twin compares ints)
        rank = x * <double>(self._count - 1)
        for i in range(self._neg.n - 1, -1, -1):
            seen += self._neg.bins[i]
            if <double>seen > rank:
                v = -_sk_value(self._neg.lo + <int32_t>i)
                break
        else:
            seen += self._zero
            if <double>seen > rank:
                v = 0.0
            else:
                v = self._max
                for i in range(self._pos.n):
                    seen += self._pos.bins[i]
                    if <double>seen > rank:
                        v = _sk_value(self._pos.lo + <int32_t>i)
                        break
        if v < self._min:
            v = self._min
        if self._max < v:
            v = self._max
        return v

    def merge(self, Dist other not None):
        """Add every value ``other`` holds (its bins): the same as adding them here."""
        cdef Py_ssize_t i
        if other._count == 0:
            return
        if other._count > _SK_U63 - self._count:
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
        for i in range(other._pos.n):
            if other._pos.bins[i]:
                _sk_store_add(&self._pos, other._pos.lo + <int32_t>i, other._pos.bins[i])
        for i in range(other._neg.n):
            if other._neg.bins[i]:
                _sk_store_add(&self._neg, other._neg.lo + <int32_t>i, other._neg.bins[i])

    def copy(self):
        return Dist(self.to_bytes())

    @property
    def count(self):
        return self._count

    @property
    def sum(self):
        return self._sum

    @property
    def min(self):
        return self._min if self._count else None

    @property
    def max(self):
        return self._max if self._count else None

    @property
    def nbytes(self):
        """Bytes of data: 8 per bin spanned in each store plus the five scalars."""
        return 40 + 8 * (self._pos.n + self._neg.n)

    def __repr__(self):
        return f"Dist(count={self._count}, min={self.min}, max={self.max})"


cdef dict _dist_shown(Dist d):
    """``engine/sketches.shown`` of a dist sketch holding values (what a write answers and publishes),
    for the compiled write path; the same keys, order and numbers (QUANTILES there)."""
    return {"count": d._count, "sum": d._sum if isfinite(d._sum) else None, "min": d._min, "max": d._max,
            "p50": d._quantile(0.5), "p90": d._quantile(0.9), "p95": d._quantile(0.95), "p99": d._quantile(0.99)}
