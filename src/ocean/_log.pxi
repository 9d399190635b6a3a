# ---------------------------------------------------------------------------
# The log's bytes: CRC-32, the memory-mapped segment appender, the binary
# increment record, and the record scanner used by replay.
# Pure twin (the oracle): ocean/_reference/log.py -- same names, same errors.
# ---------------------------------------------------------------------------
#
# Framing: ``<u32 length><u32 crc32c(body)><body>``, little endian. The checksum is
# CRC-32C (Castagnoli), which x86-64 computes in hardware (SSE 4.2: 8 bytes per
# instruction; a table-driven slice-by-8 elsewhere). Logs written before it carry
# zlib's CRC-32; replay accepts a record whose checksum is either (a damaged record
# matches neither), so old data directories open unchanged.
# A body is a JSON op (starts with ``[``) or, for the hot ``incr`` op, a binary
# record (starts with ``I``):
#
#   'I' | u8 flags (1: has source) | u32 nfields | i64 seq | i64 ms
#       | u16 len + route | u16 len + key | [u16 len + source]
#       | nfields x (u16 len + field name | u8 'i' or 'f' | 8-byte int64/float64
#                     | or u8 'l' | u32 count | count x value)
#   value: u8 's' | u16 len + UTF-8  or  u8 'i' | int64  or  u8 'f' | float64
#
# An ``l`` entry is a sketch add (``"~f"``/``"%f"`` with its list of values, as the op holds
# it: ``engine/ops.py``); a record holding one replays through ``State.apply``. Adds a value
# list cannot hold (``[value, count]`` pairs, whole sketches) are logged as JSON.
#
# Durability. A segment file is mapped MAP_SHARED and records are copied into
# it: once the copy is done the bytes are in the kernel's page cache, so a
# process killed with SIGKILL loses nothing it acknowledged (the promise
# ``os.write`` gave before, at a quarter of the cost). Room is reserved ahead in
# chunks by the WAL's ``_reserve`` (posix_fallocate), so a full disk is an
# error at reservation -- before any byte of a record is written -- never a
# SIGBUS. Bytes past the last record are zero; replay stops at them.
#
# PERF: appending a 60-byte record costs ~40 ns (copy + CRC) against ~1.3 us
# for os.write. CRC-32C in hardware: ~30 instructions for a 72-byte incr record
# against 270 for the slice-by-8 CRC-32 (callgrind), and ~2.5 us instead of ~15 us
# for the 20 KB record of a 1000-field increment.

from libc.string cimport memcpy, memset
from libc.stdint cimport uint8_t, uint16_t, uint32_t

cdef extern from "<sys/mman.h>" nogil:
    void* mmap(void* addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void* addr, size_t length)
    int PROT_READ, PROT_WRITE, MAP_SHARED
    void* MAP_FAILED

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    static uint32_t ocean_crc_table[8][256];
    static void ocean_crc_init(void) {
        uint32_t i, j, c;
        for (i = 0; i < 256; i++) {
            c = i;
            for (j = 0; j < 8; j++) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : (c >> 1);
            ocean_crc_table[0][i] = c;
        }
        for (i = 0; i < 256; i++)
            for (j = 1; j < 8; j++)
                ocean_crc_table[j][i] = (ocean_crc_table[j - 1][i] >> 8) ^ ocean_crc_table[0][ocean_crc_table[j - 1][i] & 0xff];
    }
    /* zlib-compatible CRC-32 (slice-by-8 on little-endian machines). */
    static uint32_t ocean_crc32(uint32_t crc, const unsigned char *p, size_t n) {
        crc = ~crc;
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        while (n >= 8) {
            uint32_t one, two;
            memcpy(&one, p, 4); memcpy(&two, p + 4, 4);
            one ^= crc;
            crc = ocean_crc_table[7][one & 0xff] ^ ocean_crc_table[6][(one >> 8) & 0xff]
                ^ ocean_crc_table[5][(one >> 16) & 0xff] ^ ocean_crc_table[4][one >> 24]
                ^ ocean_crc_table[3][two & 0xff] ^ ocean_crc_table[2][(two >> 8) & 0xff]
                ^ ocean_crc_table[1][(two >> 16) & 0xff] ^ ocean_crc_table[0][two >> 24];
            p += 8; n -= 8;
        }
    #endif
        while (n--) crc = ocean_crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return ~crc;
    }
    /* CRC-32C (Castagnoli, reflected 0x82F63B78), as iSCSI/ext4/RFC 3720 define it. */
    static uint32_t ocean_crc32c_table[8][256];
    static uint32_t ocean_crc32c_sw(uint32_t crc, const unsigned char *p, size_t n) {
        crc = ~crc;
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        while (n >= 8) {
            uint32_t one, two;
            memcpy(&one, p, 4); memcpy(&two, p + 4, 4);
            one ^= crc;
            crc = ocean_crc32c_table[7][one & 0xff] ^ ocean_crc32c_table[6][(one >> 8) & 0xff]
                ^ ocean_crc32c_table[5][(one >> 16) & 0xff] ^ ocean_crc32c_table[4][one >> 24]
                ^ ocean_crc32c_table[3][two & 0xff] ^ ocean_crc32c_table[2][(two >> 8) & 0xff]
                ^ ocean_crc32c_table[1][(two >> 16) & 0xff] ^ ocean_crc32c_table[0][two >> 24];
            p += 8; n -= 8;
        }
    #endif
        while (n--) crc = ocean_crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return ~crc;
    }
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    #define OCEAN_CRC32C_HW 1
    __attribute__((target("sse4.2")))
    static uint32_t ocean_crc32c_hw(uint32_t crc, const unsigned char *p, size_t n) {
        uint64_t c = (uint32_t)~crc;
        while (n >= 8) {
            uint64_t v;
            memcpy(&v, p, 8);
            c = __builtin_ia32_crc32di(c, v);
            p += 8; n -= 8;
        }
        while (n--) c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        return ~(uint32_t)c;
    }
    #endif
    static int ocean_crc32c_uses_hw = 0;
    static void ocean_crc32c_init(void) {
        uint32_t i, j, c;
        for (i = 0; i < 256; i++) {
            c = i;
            for (j = 0; j < 8; j++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : (c >> 1);
            ocean_crc32c_table[0][i] = c;
        }
        for (i = 0; i < 256; i++)
            for (j = 1; j < 8; j++)
                ocean_crc32c_table[j][i] = (ocean_crc32c_table[j - 1][i] >> 8) ^ ocean_crc32c_table[0][ocean_crc32c_table[j - 1][i] & 0xff];
    #ifdef OCEAN_CRC32C_HW
        __builtin_cpu_init();
        ocean_crc32c_uses_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    #endif
    }
    static inline uint32_t ocean_crc32c(uint32_t crc, const unsigned char *p, size_t n) {
    #ifdef OCEAN_CRC32C_HW
        if (ocean_crc32c_uses_hw) return ocean_crc32c_hw(crc, p, n);
    #endif
        return ocean_crc32c_sw(crc, p, n);
    }
    static inline void ocean_put_u16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }
    static inline void ocean_put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
    static inline void ocean_put_i64(unsigned char *p, int64_t v) { memcpy(p, &v, 8); }
    static inline uint16_t ocean_get_u16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
    static inline uint32_t ocean_get_u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
    static inline int64_t ocean_get_i64(const unsigned char *p) { int64_t v; memcpy(&v, p, 8); return v; }
    """
    void ocean_crc_init() nogil
    uint32_t ocean_crc32(uint32_t crc, const unsigned char* p, size_t n) nogil
    void ocean_crc32c_init() nogil
    uint32_t ocean_crc32c(uint32_t crc, const unsigned char* p, size_t n) nogil
    uint32_t ocean_crc32c_sw(uint32_t crc, const unsigned char* p, size_t n) nogil
    int ocean_crc32c_uses_hw
    void ocean_put_u16(unsigned char* p, uint16_t v) nogil
    void ocean_put_u32(unsigned char* p, uint32_t v) nogil
    void ocean_put_i64(unsigned char* p, int64_t v) nogil
    uint16_t ocean_get_u16(const unsigned char* p) nogil
    uint32_t ocean_get_u32(const unsigned char* p) nogil
    int64_t ocean_get_i64(const unsigned char* p) nogil

cdef extern from *:
    """
    /* PERF: an ASCII str is its own UTF-8: its bytes straight, without the call (routes,
       keys and most field names are ASCII). */
    static inline const char* ocean_utf8(PyObject* o, Py_ssize_t* size) {
        if (PyUnicode_CheckExact(o) && PyUnicode_IS_COMPACT_ASCII(o)) {
            *size = PyUnicode_GET_LENGTH(o);
            return (const char*)PyUnicode_DATA(o);
        }
        return PyUnicode_AsUTF8AndSize(o, size);
    }
    """
    const char* _ocn_utf8 "ocean_utf8"(object o, Py_ssize_t* size) except NULL

cdef extern from "Python.h":
    object _ocn_str_from "PyUnicode_DecodeUTF8"(const char* s, Py_ssize_t size, const char* errors)
    object _ocn_bytes_from "PyBytes_FromStringAndSize"(const char* s, Py_ssize_t size)
    char* _ocn_bytes_ptr "PyBytes_AS_STRING"(object o)

ocean_crc_init()
ocean_crc32c_init()

from ocean.errors import StorageError as _StorageError

MAX_RECORD = 256 << 20      # larger lengths can only be damage
RESERVE_CHUNK = 4 << 20     # room reserved ahead of the log's end
cdef enum:
    _INCR_HEAD = 22         # 'I', flags, nfields, seq, ms


def crc32(data, unsigned int value=0):
    """CRC-32 exactly as ``zlib.crc32`` (bytes-like ``data``): the checksum of older logs."""
    cdef const unsigned char[::1] view = data
    if view.shape[0] == 0:
        return value
    return ocean_crc32(value, &view[0], view.shape[0])


def crc32c(data, unsigned int value=0, bint software=False):
    """CRC-32C (Castagnoli) of bytes-like ``data``, continuing from ``value``: the log's checksum.

    ``software`` forces the table-driven code where the CPU's instruction is used (tests).
    """
    cdef const unsigned char[::1] view = data
    if view.shape[0] == 0:
        return value
    if software:
        return ocean_crc32c_sw(value, &view[0], view.shape[0])
    return ocean_crc32c(value, &view[0], view.shape[0])


CRC32C_HARDWARE = bool(ocean_crc32c_uses_hw)   # True: the CPU's crc32 instruction (SSE 4.2)


cdef class LogFile:
    """Appends framed records to one segment file through a shared memory map.

    ``size`` is the logical end (the first byte after the last record); the file
    may be longer, zero-filled room reserved ahead. ``reserve(fd, length)`` (the
    WAL's hook) must make the file at least ``length`` bytes long with its blocks
    allocated, or raise ``OSError``. ``appended`` counts records since open (the
    tickets group commit waits on); ``since_snapshot`` counts records since the
    last snapshot.
    """

    cdef readonly int fd
    cdef unsigned char* base
    cdef readonly Py_ssize_t mapped
    cdef public Py_ssize_t size
    cdef public long long appended
    cdef public long long since_snapshot
    cdef readonly long long switches  # segments begun (the generation of entity records, see Entity)
    cdef object reserve

    def __cinit__(self, int fd, Py_ssize_t size, reserve):
        self.fd = fd
        self.base = NULL
        self.mapped = 0
        self.size = size
        self.appended = 0
        self.since_snapshot = 0
        self.reserve = reserve

    def __dealloc__(self):
        self._unmap()

    cdef void _unmap(self) noexcept:
        if self.base != NULL:
            munmap(self.base, self.mapped)
            self.base = NULL
            self.mapped = 0

    cdef int _room(self, Py_ssize_t n) except -1:
        """Make sure ``n`` more bytes fit after ``size``, reserving and remapping if not."""
        cdef Py_ssize_t want
        cdef void* p
        if self.size + n <= self.mapped:
            return 0
        if self.fd < 0:
            raise _StorageError("the log is closed")
        want = self.size + n + RESERVE_CHUNK
        want = (want + 4095) & ~<Py_ssize_t>4095
        try:
            self.reserve(self.fd, want)
        except OSError:
            want = (self.size + n + 4095) & ~<Py_ssize_t>4095   # a nearly full disk: just what is needed
            try:
                self.reserve(self.fd, want)
            except OSError as exc:
                raise _StorageError(f"ocean could not write its log ({exc.strerror or exc}); "
                                    f"nothing was acknowledged") from None
        self._unmap()
        p = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_SHARED, self.fd, 0)
        if p == MAP_FAILED:
            raise _StorageError("ocean could not map its log file into memory; nothing was acknowledged")
        self.base = <unsigned char*>p
        self.mapped = want
        return 0

    cdef inline unsigned char* _claim(self, Py_ssize_t body) except NULL:
        """Room for one record of ``body`` bytes; returns where its body goes."""
        self._room(body + 8)
        return self.base + self.size + 8

    cdef inline void _commit(self, Py_ssize_t body) noexcept:
        """Frame the body written at ``_claim``'s pointer and move the end past it."""
        cdef unsigned char* rec = self.base + self.size
        ocean_put_u32(rec, <uint32_t>body)
        ocean_put_u32(rec + 4, ocean_crc32c(0, rec + 8, body))
        self.size += body + 8
        self.appended += 1
        self.since_snapshot += 1

    def append(self, bytes body):
        """Append one record; returns its ticket (``appended`` after it)."""
        cdef Py_ssize_t n = len(body)
        memcpy(self._claim(n), _ocn_bytes_ptr(body), n)
        self._commit(n)
        return self.appended

    def append_many(self, list bodies):
        """Append several records (all or, if room cannot be had, none); returns the last ticket."""
        cdef Py_ssize_t total = 0, n
        cdef bytes b
        for b in bodies:
            total += len(b) + 8
        self._room(total)
        for b in bodies:
            n = len(b)
            memcpy(self._claim(n), _ocn_bytes_ptr(b), n)
            self._commit(n)
        return self.appended

    def switch(self, int fd, Py_ssize_t size):
        """Append to another segment file from now on (the WAL rotated); tickets go on counting."""
        self._unmap()
        self.fd = fd
        self.size = size
        self.switches += 1

    def release_room(self):
        """Unmap and cut the file back to its records (before rotating, closing, or to test a full disk)."""
        import os
        self._unmap()
        if self.fd >= 0:
            os.ftruncate(self.fd, self.size)

    def close(self):
        self.release_room()
        self.fd = -1


# -- the binary incr record ----------------------------------------------------

cdef Py_ssize_t _incr_size(object route, object key, object source, dict amounts) except -2:
    """Bytes of the record body, or -1 if it cannot be written in binary (then JSON is used)."""
    cdef Py_ssize_t n = _INCR_HEAD + 4, ln
    cdef PyObject* name
    cdef PyObject* amount
    cdef Py_ssize_t pos = 0
    _ocn_utf8(route, &ln)
    n += ln
    _ocn_utf8(key, &ln)
    n += ln
    if ln > 65535:
        return -1
    if source is not None:
        if not _ocn_is_str(<PyObject*>source):
            return -1
        _ocn_utf8(source, &ln)
        if ln > 65535:
            return -1
        n += 2 + ln
    while PyDict_Next(amounts, &pos, &name, &amount):
        if not _ocn_is_str(name):
            return -1
        _ocn_utf8(<object>name, &ln)
        if ln > 65535:
            return -1
        n += 2 + ln + 9
    return n


cdef inline unsigned char* _put_str(unsigned char* p, object s) except NULL:
    cdef Py_ssize_t ln
    cdef const char* c = _ocn_utf8(s, &ln)
    ocean_put_u16(p, <uint16_t>ln)
    memcpy(p + 2, c, ln)
    return p + 2 + ln


cdef void _write_incr(unsigned char* p, long long seq, long long ms, object route, object key,
                      object source, PyObject** names, _ocn_op* ops, Py_ssize_t n) except *:
    """The body of an incr record at ``p`` (sized by ``_incr_size``)."""
    cdef Py_ssize_t j
    p[0] = 73  # 'I'
    p[1] = 1 if source is not None else 0
    ocean_put_u32(p + 2, <uint32_t>n)
    ocean_put_i64(p + 6, seq)
    ocean_put_i64(p + 14, ms)
    p = _put_str(p + _INCR_HEAD, route)
    p = _put_str(p, key)
    if source is not None:
        p = _put_str(p, source)
    for j in range(n):
        p = _put_str(p, <object>names[j])
        if ops[j].atag == _OCN_INT:
            p[0] = 105  # 'i'
            ocean_put_i64(p + 1, ops[j].amt.i)
        else:
            p[0] = 102  # 'f'
            memcpy(p + 1, &ops[j].amt.d, 8)
        p += 9


cdef inline object _get_str(const unsigned char* p, const unsigned char* end, Py_ssize_t* used):
    cdef Py_ssize_t ln
    if p + 2 > end:
        raise ValueError("incr record cut short")
    ln = ocean_get_u16(p)
    if p + 2 + ln > end:
        raise ValueError("incr record cut short")
    used[0] = 2 + ln
    return _ocn_str_from(<const char*>p + 2, ln, NULL)


# -- sketch adds in the binary record (``l`` entries) ---------------------------------

cdef Py_ssize_t _value_size(PyObject* v) except -2:
    """Bytes of one value of an ``l`` entry, or -1 if it has no binary form."""
    cdef Py_ssize_t ln
    cdef int overflow = 0
    if _ocn_is_str(v):
        _ocn_utf8(<object>v, &ln)
        return 3 + ln if ln <= 65535 else -1
    if _ocn_is_int(v):
        _ocn_as_ll(v, &overflow)
        return -1 if overflow else 9
    if _ocn_is_float(v):
        return 9 if isfinite(_ocn_float_val(v)) else -1
    return -1


cdef Py_ssize_t _adds_size(object route, object key, object source, list names, list amounts) except -2:
    """Bytes of the record body of ``names``/``amounts`` (numbers, or lists of values), or -1
    if it cannot be written in binary (then JSON is used)."""
    cdef Py_ssize_t n = _INCR_HEAD + 4, ln, j, k, m
    cdef PyObject* a
    cdef list values
    _ocn_utf8(route, &ln)
    n += ln
    _ocn_utf8(key, &ln)
    n += ln
    if ln > 65535:
        return -1
    if source is not None:
        if not _ocn_is_str(<PyObject*>source):
            return -1
        _ocn_utf8(source, &ln)
        if ln > 65535:
            return -1
        n += 2 + ln
    for j in range(len(names)):
        if not _ocn_is_str(<PyObject*>names[j]):
            return -1
        _ocn_utf8(names[j], &ln)
        if ln > 65535:
            return -1
        n += 2 + ln
        a = <PyObject*>amounts[j]
        if type(<object>a) is list:
            values = <list>a
            n += 5
            for k in range(len(values)):
                m = _value_size(<PyObject*>values[k])
                if m < 0:
                    return -1
                n += m
        else:
            m = _value_size(a)
            if m != 9:  # a number (a str is no amount)
                return -1
            n += 9
    return n


cdef unsigned char* _put_value(unsigned char* p, PyObject* v) except NULL:
    cdef double d
    cdef int overflow = 0
    if _ocn_is_str(v):
        p[0] = 115  # 's'
        return _put_str(p + 1, <object>v)
    if _ocn_is_int(v):
        p[0] = 105  # 'i'
        ocean_put_i64(p + 1, _ocn_as_ll(v, &overflow))
    else:
        p[0] = 102  # 'f'
        d = _ocn_float_val(v)
        memcpy(p + 1, &d, 8)
    return p + 9


cdef void _write_adds(unsigned char* p, long long seq, long long ms, object route, object key,
                      object source, list names, list amounts) except *:
    """The body of an incr record with sketch adds at ``p`` (sized by ``_adds_size``)."""
    cdef Py_ssize_t j, k, n = len(names)
    cdef PyObject* a
    cdef list values
    p[0] = 73  # 'I'
    p[1] = 1 if source is not None else 0
    ocean_put_u32(p + 2, <uint32_t>n)
    ocean_put_i64(p + 6, seq)
    ocean_put_i64(p + 14, ms)
    p = _put_str(p + _INCR_HEAD, route)
    p = _put_str(p, key)
    if source is not None:
        p = _put_str(p, source)
    for j in range(n):
        p = _put_str(p, names[j])
        a = <PyObject*>amounts[j]
        if type(<object>a) is list:
            values = <list>a
            p[0] = 108  # 'l'
            ocean_put_u32(p + 1, <uint32_t>len(values))
            p += 5
            for k in range(len(values)):
                p = _put_value(p, <PyObject*>values[k])
        else:
            p = _put_value(p, a)


cdef object _get_value(const unsigned char* p, const unsigned char* end, Py_ssize_t* used):
    cdef double d
    if p + 1 > end:
        raise ValueError("incr record cut short")
    if p[0] == 115:
        v = _get_str(p + 1, end, used)
        used[0] += 1
        return v
    if p[0] != 105 and p[0] != 102:
        raise ValueError("incr record holds an unknown value type")
    if p + 9 > end:
        raise ValueError("incr record cut short")
    used[0] = 9
    if p[0] == 105:
        return ocean_get_i64(p + 1)
    memcpy(&d, p + 1, 8)
    return d


def encode_incr(long long seq, long long ms, route, key, dict amounts, source=None):
    """The binary record body of ``["i", seq, ms, route, key, None, amounts, 0, source]``.

    Returns None when the op cannot be written in binary (a field name over 65535
    bytes, say); the caller then logs it as JSON.
    """
    cdef Py_ssize_t size = _incr_size(route, key, source, amounts), n = len(amounts), j = 0
    cdef _ocn_op* ops
    cdef PyObject* name
    cdef PyObject* amount
    cdef Py_ssize_t pos = 0
    cdef list names_l, amounts_l
    for amount_o in amounts.values():
        if type(amount_o) is list:  # sketch adds: ``l`` entries
            names_l, amounts_l = list(amounts), list(amounts.values())
            size = _adds_size(route, key, source, names_l, amounts_l)
            if size < 0:
                return None
            out = _ocn_bytes_from(NULL, size)
            _write_adds(<unsigned char*>_ocn_bytes_ptr(out), seq, ms, route, key, source, names_l, amounts_l)
            return out
    if size < 0:
        return None
    names = tuple(amounts)
    ops = <_ocn_op*>malloc((n or 1) * sizeof(_ocn_op))
    if ops == NULL:
        raise MemoryError()
    try:
        while PyDict_Next(amounts, &pos, &name, &amount):
            _ocn_check_amount(amount, name, &ops[j].amt, &ops[j].atag)
            j += 1
        out = _ocn_bytes_from(NULL, size)
        _write_incr(<unsigned char*>_ocn_bytes_ptr(out), seq, ms, route, key, source,
                    _ocn_seq_items(names), ops, n)
        return out
    finally:
        free(ops)


def decode_incr(bytes body):
    """The op list of a binary incr record body; ValueError if it is not one."""
    cdef const unsigned char* p = <const unsigned char*>_ocn_bytes_ptr(body)
    cdef const unsigned char* end = p + len(body)
    cdef Py_ssize_t used, n, j, k, count
    cdef double d
    if end - p < _INCR_HEAD or p[0] != 73 or p[1] > 1:
        raise ValueError("not an incr record")
    n = ocean_get_u32(p + 2)
    seq = ocean_get_i64(p + 6)
    ms = ocean_get_i64(p + 14)
    p += _INCR_HEAD
    route = _get_str(p, end, &used); p += used
    key = _get_str(p, end, &used); p += used
    source = None
    if (<const unsigned char*>_ocn_bytes_ptr(body))[1]:
        source = _get_str(p, end, &used); p += used
    incs = {}
    for j in range(n):
        name = _get_str(p, end, &used); p += used
        if p < end and p[0] == 108:  # 'l': a sketch add's values
            if p + 5 > end:
                raise ValueError("incr record cut short")
            count = ocean_get_u32(p + 1)
            p += 5
            values = []
            for k in range(count):
                values.append(_get_value(p, end, &used)); p += used
            incs[name] = values
            continue
        if p + 9 > end:
            raise ValueError("incr record cut short")
        if p[0] == 105:
            incs[name] = ocean_get_i64(p + 1)
        elif p[0] == 102:
            memcpy(&d, p + 1, 8)
            incs[name] = d
        else:
            raise ValueError("incr record holds an unknown amount type")
        p += 9
    if p != end:
        raise ValueError("incr record has trailing bytes")
    return ["i", seq, ms, route, key, None, incs, 0, source]


# -- reading a segment -----------------------------------------------------------

def scan_records(data, Py_ssize_t start=0):
    """Split framed records from ``start``: returns ``(bodies, end, problem)``.

    ``end`` is where the valid records stop; ``problem`` is None when everything
    after ``end`` is zero bytes (the clean end of a log, or its reserved room), else
    what is wrong with the record at ``end`` (the caller decides: torn tail or damage).
    """
    cdef const unsigned char[::1] view = data
    cdef Py_ssize_t size = view.shape[0], pos = start, i
    cdef uint32_t n, crc
    cdef list bodies = []
    cdef const unsigned char* base
    if size == 0:
        return bodies, 0, None
    base = &view[0]
    while pos < size:
        if pos + 8 > size:
            problem = "header cut short"
            break
        n = ocean_get_u32(base + pos)
        crc = ocean_get_u32(base + pos + 4)
        if n == 0 or n > MAX_RECORD:
            problem = f"impossible length {n}"
            break
        if pos + 8 + <Py_ssize_t>n > size:
            problem = "body cut short"
            break
        if ocean_crc32c(0, base + pos + 8, n) != crc and ocean_crc32(0, base + pos + 8, n) != crc:
            problem = "checksum mismatch"  # neither CRC-32C nor (older logs) CRC-32
            break
        bodies.append(_ocn_bytes_from(<const char*>base + pos + 8, n))
        pos += 8 + n
    else:
        return bodies, pos, None
    for i in range(pos, size):
        if base[i] != 0:
            return bodies, pos, problem
    return bodies, pos, None
