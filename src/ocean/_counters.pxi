# ---------------------------------------------------------------------------
# Counter shards: (route, key, field) -> int64 | float64, striped C locks.
# Pure twin (the oracle): ocean/_reference/counters.py -- same names, same errors.
# ---------------------------------------------------------------------------
#
# Layout. The table has ``shards`` stripes; (route, key) picks one from the two
# strings' cached hashes. A stripe is a dict ``route -> {key -> _CounterEntity}``,
# a ``_NamePool`` and one ``pthread_mutex_t``. An entity keeps its counters in
# insertion order in one PyMem block: unboxed values (int64 or float64, with a
# type tag) and the field names, each name the stripe's one shared copy. Up to
# ``_OCN_SCAN`` counters a field is found by a scan; a larger entity adds an
# open-addressing index of its slots. No dict, tuple or int object per entity or
# counter (issue 14: an entity of 5 counters went from ~500 bytes here to ~220).
#
# PERF: bench/bench_counters.py, medians on the 2-core dev box: a 1000-field
# add_many takes 16-17 us here (was 19-23 us with a dict per entity) against
# 127 us for a dict behind threading.Lock and 260 us for the pure twin, which
# boxes a new int per increment; single add() calls: 78 ns (was 115 ns: no
# (route, key) tuple) vs 310 ns (locked dict) and 1.3 us (twin). Memory: 45
# bytes per counter vs 66 for the twin (1M counters, 100 fields per entity).
# Values stay unboxed; boxing happens once, for the return value, after the
# stripe lock is released.
#
# Atomicity. ``add_many`` applies its ops in order under the stripe lock, keeping
# each op's previous value; on overflow it rolls back in reverse order (new
# fields are removed again), so an entity changes completely or not at all, and
# duplicate fields in one batch accumulate exactly as in the twin.

# PERF: pthread mutexes, not PyThread locks: CPython 3.11's PyThread_acquire_lock reads the
# monotonic clock for a deadline even when it only tries (sem_clockwait), ~20 ns a take;
# an uncontended pthread_mutex_trylock/unlock pair is two atomic operations.
cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t* mutex, const void* attr)
    int pthread_mutex_destroy(pthread_mutex_t* mutex)
    int pthread_mutex_trylock(pthread_mutex_t* mutex)
    int pthread_mutex_lock(pthread_mutex_t* mutex)
    int pthread_mutex_unlock(pthread_mutex_t* mutex)
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF
from cpython.dict cimport PyDict_Next
from cpython.float cimport PyFloat_FromDouble
from cpython.long cimport PyLong_FromLongLong
from cpython.exc cimport PyErr_Clear
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport malloc, free
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.string cimport memcpy, memmove
from libc.math cimport isfinite
cimport cython

from ocean.errors import CounterOverflow as _CounterOverflow, InvalidAmount as _InvalidAmount

cdef extern from "Python.h":
    # Borrowed-pointer variants, so the hot loops do no reference counting.
    bint _ocn_is_str "PyUnicode_CheckExact"(PyObject* o)
    bint _ocn_is_int "PyLong_CheckExact"(PyObject* o)
    bint _ocn_is_float "PyFloat_CheckExact"(PyObject* o)
    double _ocn_float_val "PyFloat_AS_DOUBLE"(PyObject* o)
    long long _ocn_as_ll "PyLong_AsLongLongAndOverflow"(PyObject* o, int* overflow)
    Py_ssize_t _ocn_as_ssize "PyLong_AsSsize_t"(PyObject* o)
    int _ocn_dict_set "PyDict_SetItem"(PyObject* d, PyObject* k, PyObject* v)
    int _ocn_dict_del "PyDict_DelItem"(PyObject* d, PyObject* k)
    Py_ssize_t _ocn_dict_size "PyDict_Size"(PyObject* d)
    Py_ssize_t _ocn_hash "PyObject_Hash"(PyObject* o)
    PyObject* _ocn_tuple_get "PyTuple_GET_ITEM"(PyObject* t, Py_ssize_t i)
    PyObject** _ocn_seq_items "PySequence_Fast_ITEMS"(object o)
    Py_ssize_t _ocn_seq_size "PySequence_Fast_GET_SIZE"(object o)
    void* PyMem_Calloc(size_t nelem, size_t elsize)
    PyObject* _ocn_long "PyLong_FromSsize_t"(Py_ssize_t v)

cdef extern from *:
    """
    #include <stdint.h>
    /* PyDict_GetItem without its error save/restore (PERF: ~180 instructions of the
       ~5,600 of an Engine.incr call made ~5 look-ups through it). Same answer: a key
       that cannot be hashed or compared is a miss, its error dropped. */
    static inline PyObject* ocean_dict_get(PyObject* d, PyObject* k) {
        PyObject* v = PyDict_GetItemWithError(d, k);
        if (v == NULL && PyErr_Occurred()) PyErr_Clear();
        return v;
    }
    /* Exact str equality without Python code (under a stripe lock): identity, then length,
       kind, the cached hashes when both are known, then the bytes. */
    static inline int ocean_str_eq(PyObject* a, PyObject* b) {
        Py_ssize_t n;
        Py_hash_t ha, hb;
        if (a == b) return 1;
        n = PyUnicode_GET_LENGTH(a);
        if (n != PyUnicode_GET_LENGTH(b) || PyUnicode_KIND(a) != PyUnicode_KIND(b)) return 0;
        ha = ((PyASCIIObject*)a)->hash;
        hb = ((PyASCIIObject*)b)->hash;
        if (ha != -1 && hb != -1 && ha != hb) return 0;
        return memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)n * PyUnicode_KIND(a)) == 0;
    }
    static inline int ocean_add_i64(int64_t a, int64_t b, int64_t *out) {
    #if defined(__GNUC__) || defined(__clang__)
        return __builtin_add_overflow(a, b, out);
    #else
        if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b)) return 1;
        *out = a + b;
        return 0;
    #endif
    }
    """
    bint ocean_add_i64(int64_t a, int64_t b, int64_t* out) nogil
    bint ocean_str_eq(PyObject* a, PyObject* b) noexcept
    PyObject* _ocn_dict_get "ocean_dict_get"(PyObject* d, PyObject* k)


ctypedef union _ocn_num:
    int64_t i
    double d

ctypedef struct _ocn_op:          # one increment of a batch, staged outside the lock
    _ocn_num amt
    _ocn_num old                  # value before this op (restored on rollback)
    _ocn_num new
    Py_ssize_t slot
    unsigned char atag, otag, ntag, inserted

ctypedef struct _ocn_cell:        # a value copied out under the lock, boxed after it
    PyObject* route               # NULL when the caller knows it
    PyObject* key
    PyObject* field
    _ocn_num v
    unsigned char tag

cdef enum:
    _OCN_INT = 0                  # value tags
    _OCN_FLOAT = 1
    _OCN_STACK_OPS = 16           # batches up to this size stage on the stack
    _OCN_SCAN = 8                 # entities up to this many counters find a field by a scan


cdef inline void _ocn_lock(pthread_mutex_t* lock) noexcept:
    # Held only while the GIL is held, so it is normally free; if not (another
    # thread released the GIL inside its section -- never done here -- or a
    # free-threaded build), wait without the GIL so the holder can finish.
    if pthread_mutex_trylock(lock) != 0:
        with nogil:
            pthread_mutex_lock(lock)


cdef inline object _ocn_box(_ocn_num v, unsigned char tag):
    if tag == _OCN_INT:
        return PyLong_FromLongLong(v.i)
    return PyFloat_FromDouble(v.d)


cdef inline int _ocn_check_name(PyObject* o) except -1:
    if not _ocn_is_str(o):
        raise TypeError(f"route, key and field must be str, got {type(<object>o).__name__}")
    return 0


cdef int _ocn_check_amount(PyObject* o, PyObject* field, _ocn_num* out, unsigned char* tag) except -1:
    """Unbox an amount into ``out``/``tag``; InvalidAmount exactly as the twin's ``_check``."""
    cdef int overflow = 0
    cdef long long v
    cdef double d
    if _ocn_is_int(o):
        v = _ocn_as_ll(o, &overflow)
        if overflow:
            raise _InvalidAmount(f"amount {<object>o} for {<object>field!r} is outside the int64 range")
        out.i = v
        tag[0] = _OCN_INT
        return 0
    if _ocn_is_float(o):
        d = _ocn_float_val(o)
        if not isfinite(d):
            raise _InvalidAmount(f"amount for {<object>field!r} must be a finite number, got {<object>o}")
        out.d = d
        tag[0] = _OCN_FLOAT
        return 0
    raise _InvalidAmount(f"amount for {<object>field!r} must be a number, got {type(<object>o).__name__}")


cdef object _ocn_overflow(object field, _ocn_op* op):
    old = _ocn_box(op.old, op.otag)
    amount = _ocn_box(op.amt, op.atag)
    if op.otag == _OCN_INT and op.atag == _OCN_INT:
        return _CounterOverflow(
            f"counter {field!r} would overflow int64 ({old} + {amount}); it is unchanged")
    return _CounterOverflow(
        f"counter {field!r} would leave the float64 range ({old} + {amount}); it is unchanged")


@cython.final
cdef class _NamePool:
    """One shard's field names: each held once however many entities count it (memory, issue 14),
    and let go when the last of them does. ``names`` maps a name to its one copy, ``uses`` that
    copy to how many counters hold it. Plain C under the stripe lock: dict inserts and int
    objects allocate nothing the cyclic GC tracks."""
    cdef dict names
    cdef dict uses

    def __cinit__(self):
        self.names = {}
        self.uses = {}

    cdef PyObject* take(self, PyObject* field) noexcept:
        """The shared copy of ``field`` with a new reference for the caller; NULL when out of memory."""
        cdef PyObject* name = _ocn_dict_get(<PyObject*>self.names, field)
        cdef PyObject* n
        cdef Py_ssize_t uses = 0
        if name == NULL:
            name = field
        else:
            uses = _ocn_as_ssize(_ocn_dict_get(<PyObject*>self.uses, name))
        n = _ocn_long(uses + 1)
        if n == NULL:
            PyErr_Clear()
            return NULL
        if uses == 0 and _ocn_dict_set(<PyObject*>self.names, name, name) < 0:
            Py_DECREF(<object>n)
            PyErr_Clear()
            return NULL
        if _ocn_dict_set(<PyObject*>self.uses, name, n) < 0:   # replaces an existing key: cannot fail
            if uses == 0:
                _ocn_dict_del(<PyObject*>self.names, name)
            Py_DECREF(<object>n)
            PyErr_Clear()
            return NULL
        Py_DECREF(<object>n)
        Py_INCREF(<object>name)
        return name

    cdef void give(self, PyObject* name) noexcept:
        """Give back a reference from ``take``; the last one forgets the name."""
        cdef Py_ssize_t uses = _ocn_as_ssize(_ocn_dict_get(<PyObject*>self.uses, name)) - 1
        cdef PyObject* n
        if uses <= 0:
            _ocn_dict_del(<PyObject*>self.uses, name)
            _ocn_dict_del(<PyObject*>self.names, name)
        else:
            n = _ocn_long(uses)
            if n != NULL:             # out of memory: the name is kept (held once too many)
                _ocn_dict_set(<PyObject*>self.uses, name, n)
                Py_DECREF(<object>n)
            else:
                PyErr_Clear()
        Py_DECREF(<object>name)


@cython.final
@cython.no_gc        # holds only str names: it can never be in a cycle
cdef class _CounterEntity:
    """One entity's counters in insertion order: slot ``s`` is ``names[s]`` (the shard's pooled
    copy of the field name), ``vals[s]`` and ``tags[s]``, all three in one allocation.

    PERF/memory (issue 14): no dict per entity. An entity of up to ``_OCN_SCAN`` counters finds a
    field by a scan (pointer, then hash and bytes); a larger one keeps ``hix``, an open-addressing
    table of slot numbers keyed by the names' cached hashes. Five counters take 112 bytes here
    plus this 64-byte object (a dict of five took ~180, its values' array 64 more, and the
    field names were not shared).
    """
    cdef char* block              # [vals: cap x 8][names: cap x 8][tags: cap x 1]
    cdef int* hix                 # slot + 1 per position, 0 empty; NULL while top <= _OCN_SCAN
    cdef int cap, top, hcap
    # Where it is stored, for callers that keep it (the writer caches it on the entity's
    # record): its table's serial, its shard, and whether it is still in that shard's map.
    cdef int shard
    cdef bint live
    cdef long long table

    def __dealloc__(self):
        cdef Py_ssize_t s
        cdef PyObject** names = self.names()
        for s in range(self.top):
            Py_DECREF(<object>names[s])   # still in a map: its table (and pool) is going too
        PyMem_Free(self.block)
        PyMem_Free(self.hix)

    cdef inline _ocn_num* vals(self) noexcept:
        return <_ocn_num*>self.block

    cdef inline PyObject** names(self) noexcept:
        return <PyObject**>(self.block + self.cap * sizeof(_ocn_num))

    cdef inline unsigned char* tags(self) noexcept:
        return <unsigned char*>(self.block + self.cap * (sizeof(_ocn_num) + sizeof(PyObject*)))

    cdef int grow(self) noexcept:
        """Room for one more slot: 0, or -1 when out of memory (nothing changed). PyMem is safe
        under the lock: pymalloc allocates no GC-tracked object and runs no Python code, and
        tracemalloc sees it (bench_counters measures bytes per counter with it)."""
        # by two up to _OCN_SCAN (fewest freed blocks left behind: RSS), then by half
        cdef int cap = 2 if self.cap == 0 else (self.cap + 2 if self.cap < _OCN_SCAN else self.cap + self.cap // 2)
        cdef char* b = <char*>PyMem_Malloc(cap * (sizeof(_ocn_num) + sizeof(PyObject*) + 1))
        if b == NULL:
            return -1
        if self.top:
            memcpy(b, self.block, self.top * sizeof(_ocn_num))
            memcpy(b + cap * sizeof(_ocn_num), self.names(), self.top * sizeof(PyObject*))
            memcpy(b + cap * (sizeof(_ocn_num) + sizeof(PyObject*)), self.tags(), self.top)
        PyMem_Free(self.block)
        self.block = b
        self.cap = cap
        return 0

    cdef int reindex(self) noexcept:
        """Rebuild ``hix`` for the current slots (dropped at or below ``_OCN_SCAN``): 0, or -1
        when out of memory (then it is dropped, and ``slot_of`` scans)."""
        cdef int hcap = 16, s, h
        cdef PyObject** names = self.names()
        PyMem_Free(self.hix)
        self.hix = NULL
        self.hcap = 0
        if self.top <= _OCN_SCAN:
            return 0
        while hcap < self.top * 3:
            hcap *= 2
        self.hix = <int*>PyMem_Calloc(hcap, sizeof(int))
        if self.hix == NULL:
            return -1
        self.hcap = hcap
        for s in range(self.top):
            h = <int>(<uint64_t>_ocn_hash(names[s]) & <uint64_t>(hcap - 1))
            while self.hix[h] != 0:
                h = (h + 1) & (hcap - 1)
            self.hix[h] = s + 1
        return 0

    cdef inline Py_ssize_t find(self, PyObject* field) noexcept:
        """The field's slot, or -1."""
        cdef PyObject** names = self.names()
        cdef Py_ssize_t s
        cdef int h, m
        if self.hix == NULL:
            for s in range(self.top):
                if names[s] == field:
                    return s
            for s in range(self.top):
                if ocean_str_eq(names[s], field):
                    return s
            return -1
        m = self.hcap - 1
        h = <int>(<uint64_t>_ocn_hash(field) & <uint64_t>m)
        while self.hix[h] != 0:
            s = self.hix[h] - 1
            if ocean_str_eq(names[s], field):
                return s
            h = (h + 1) & m
        return -1

    cdef Py_ssize_t slot_of(self, _NamePool pool, PyObject* field, bint create, unsigned char* inserted) noexcept:
        """The field's slot; with ``create`` a new zero int slot (``inserted`` set).
        -1: absent, -2: out of memory."""
        cdef Py_ssize_t s = self.find(field)
        cdef PyObject* name
        inserted[0] = 0
        if s >= 0 or not create:
            return s
        if self.top == self.cap and self.grow() < 0:
            return -2
        name = pool.take(field)
        if name == NULL:
            return -2
        s = self.top
        self.top += 1
        self.names()[s] = name
        self.vals()[s].i = 0
        self.tags()[s] = _OCN_INT
        if self.top > _OCN_SCAN and (self.hix == NULL or self.top * 3 > self.hcap * 2):
            self.reindex()            # out of memory: left without it, found by a scan
        elif self.hix != NULL:
            self._index(s)
        inserted[0] = 1
        return s

    cdef inline void _index(self, Py_ssize_t s) noexcept:
        cdef int m = self.hcap - 1
        cdef int h = <int>(<uint64_t>_ocn_hash(self.names()[s]) & <uint64_t>m)
        while self.hix[h] != 0:
            h = (h + 1) & m
        self.hix[h] = <int>s + 1

    cdef void unset(self, _NamePool pool, Py_ssize_t s) noexcept:
        """Remove slot ``s``; the later slots move down one (insertion order is kept)."""
        cdef PyObject* name = self.names()[s]
        cdef Py_ssize_t rest = self.top - s - 1
        if rest:
            memmove(self.vals() + s, self.vals() + s + 1, rest * sizeof(_ocn_num))
            memmove(self.names() + s, self.names() + s + 1, rest * sizeof(PyObject*))
            memmove(self.tags() + s, self.tags() + s + 1, rest)
        self.top -= 1
        pool.give(name)
        if self.hix != NULL:
            self.reindex()

    cdef void clear(self, _NamePool pool) noexcept:
        """Give back every name (the entity leaves its shard's map)."""
        cdef Py_ssize_t s
        cdef PyObject** names = self.names()
        for s in range(self.top):
            pool.give(names[s])
        self.top = 0
        PyMem_Free(self.hix)
        self.hix = NULL
        self.hcap = 0

    cdef void rollback(self, _NamePool pool, _ocn_op* ops, Py_ssize_t n) noexcept:
        """Undo the first ``n`` ops, newest first (so duplicates restore correctly)."""
        cdef Py_ssize_t t
        for t in range(n - 1, -1, -1):
            if ops[t].inserted:
                self.unset(pool, ops[t].slot)   # the newest slot: nothing moves
            else:
                self.vals()[ops[t].slot] = ops[t].old
                self.tags()[ops[t].slot] = ops[t].otag

    cdef Py_ssize_t apply(self, _NamePool pool, PyObject** fields, _ocn_op* ops, Py_ssize_t n,
                          Py_ssize_t* created) noexcept:
        """Apply ``n`` staged increments in order. Returns -1 when all applied, the
        failing index on overflow, -2 when out of memory; on failure nothing changed."""
        cdef Py_ssize_t j, s
        cdef _ocn_op* op
        cdef int64_t r
        cdef double d
        created[0] = 0
        for j in range(n):
            op = &ops[j]
            s = self.slot_of(pool, fields[j], True, &op.inserted)
            if s == -2:
                self.rollback(pool, ops, j)
                created[0] = 0
                return -2
            created[0] += op.inserted
            op.slot = s
            op.old = self.vals()[s]
            op.otag = self.tags()[s]
            if op.otag == _OCN_INT and op.atag == _OCN_INT:
                if ocean_add_i64(op.old.i, op.amt.i, &r):
                    self.rollback(pool, ops, j + 1)
                    created[0] = 0
                    return j
                op.new.i = r
                op.ntag = _OCN_INT
            else:
                d = (<double>op.old.i if op.otag == _OCN_INT else op.old.d) + \
                    (<double>op.amt.i if op.atag == _OCN_INT else op.amt.d)
                if not isfinite(d):
                    self.rollback(pool, ops, j + 1)
                    created[0] = 0
                    return j
                op.new.d = d
                op.ntag = _OCN_FLOAT
            self.vals()[s] = op.new
            self.tags()[s] = op.ntag
        return -1


cdef long long _ocn_tables = 0   # serials of CounterTables made in this process


cdef int _ocn_raise_bad(Py_ssize_t bad, PyObject** fs, _ocn_op* ops) except -1:
    """0 when ``apply`` succeeded (-1); else its error: MemoryError (-2) or the overflow at ``bad``."""
    if bad == -2:
        raise MemoryError()
    if bad >= 0:
        raise _ocn_overflow(<object>fs[bad], &ops[bad])
    return 0


cdef class CounterTable:
    """Counters sharded by (route, key); one lock per shard, so an entity's fields change together."""

    cdef readonly Py_ssize_t shards
    cdef long long serial             # this table's, set in its entities (see ``_add_ops_at``)
    cdef list _maps                   # per shard: dict route -> dict key -> _CounterEntity
    cdef list _pools                  # per shard: its _NamePool
    cdef pthread_mutex_t* _locks
    cdef Py_ssize_t _inited           # mutexes initialised so far (destroyed in __dealloc__)
    cdef Py_ssize_t* _counts          # per shard: number of counters

    def __cinit__(self, Py_ssize_t shards=64):
        global _ocn_tables
        cdef Py_ssize_t i
        if shards < 1:
            raise ValueError("shards must be >= 1")
        _ocn_tables += 1
        self.serial = _ocn_tables
        self._inited = 0
        self._locks = <pthread_mutex_t*>malloc(shards * sizeof(pthread_mutex_t))
        self._counts = <Py_ssize_t*>malloc(shards * sizeof(Py_ssize_t))
        if self._locks == NULL or self._counts == NULL:
            raise MemoryError()
        for i in range(shards):
            self._counts[i] = 0
        for i in range(shards):
            # STRIPE LOCK: a C lock gevent does not patch. It is held only around
            # plain C work on one shard -- dict look-ups on exact str keys, C array
            # reads/writes, malloc -- never across I/O, a Python callback, or
            # anything that can switch greenlets or start a GC collection.
            # Python objects (results, tuples, dicts) are built after release.
            if pthread_mutex_init(&self._locks[i], NULL) != 0:
                raise MemoryError()
            self._inited = i + 1
        self._maps = [{} for i in range(shards)]
        self._pools = [_NamePool() for i in range(shards)]
        self.shards = shards

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self._locks != NULL:
            for i in range(self._inited):
                pthread_mutex_destroy(&self._locks[i])
            free(self._locks)
        free(self._counts)

    cdef inline Py_ssize_t _shard(self, PyObject* route, PyObject* key) noexcept:
        # str hashes are cached on the objects, so this is a few multiplications.
        cdef uint64_t h = <uint64_t>_ocn_hash(route) * 0x9E3779B97F4A7C15ULL
        h ^= <uint64_t>_ocn_hash(key)
        h ^= h >> 31
        h *= 0xBF58476D1CE4E5B9ULL
        h ^= h >> 29
        return <Py_ssize_t>(h % <uint64_t>self.shards)

    cdef inline _NamePool _pool(self, Py_ssize_t i):
        return <_NamePool>self._pools[i]

    cdef inline _CounterEntity _find(self, Py_ssize_t i, object route, object key):
        """The entity of (route, key) in shard ``i`` or None (the caller holds the lock, or the GIL
        with no other thread inside: the maps change only under it)."""
        cdef PyObject* p = _ocn_dict_get(<PyObject*>self._maps[i], <PyObject*>route)
        if p != NULL:
            p = _ocn_dict_get(p, <PyObject*>key)
        return <_CounterEntity>p if p != NULL else None

    cdef _CounterEntity _entity(self, Py_ssize_t i, object route, object key):
        """The entity for (route, key) in shard ``i``, made when missing; the caller holds
        the shard lock. A new one -- and its route's key map -- is made outside the lock,
        since a new object may start a GC collection, and the lock is taken again."""
        cdef _CounterEntity found = self._find(i, route, key)
        cdef _CounterEntity fresh
        cdef dict keys
        cdef PyObject* m = <PyObject*>self._maps[i]
        cdef PyObject* r
        if found is not None:
            return found
        pthread_mutex_unlock(&self._locks[i])
        try:
            fresh = _CounterEntity.__new__(_CounterEntity)
            keys = {}
        finally:
            _ocn_lock(&self._locks[i])
        found = self._find(i, route, key)
        if found is not None:         # another thread made it meanwhile
            return found
        r = _ocn_dict_get(m, <PyObject*>route)
        if r == NULL:
            if _ocn_dict_set(m, <PyObject*>route, <PyObject*>keys) < 0:
                raise MemoryError()
            r = <PyObject*>keys
        if _ocn_dict_set(r, <PyObject*>key, <PyObject*>fresh) < 0:
            raise MemoryError()
        fresh.table = self.serial
        fresh.shard = <int>i
        fresh.live = True
        return fresh

    cdef void _unlink(self, Py_ssize_t i, object route, object key, _CounterEntity ent) noexcept:
        """Take ``ent`` out of shard ``i``'s map (and an emptied route map with it), giving back
        its names. The caller still references ``ent``, so it is not freed under the lock."""
        cdef PyObject* m = <PyObject*>self._maps[i]
        cdef PyObject* r = _ocn_dict_get(m, <PyObject*>route)
        ent.clear(self._pool(i))
        ent.live = False
        if r != NULL:
            _ocn_dict_del(r, <PyObject*>key)
            if _ocn_dict_size(r) == 0:
                _ocn_dict_del(m, <PyObject*>route)

    cdef inline void _drop_if_empty(self, Py_ssize_t i, object route, object key, _CounterEntity ent) noexcept:
        # Invariant: no empty entity is stored (entity_count counts holders only).
        if ent.top == 0:
            self._unlink(i, route, key, ent)

    def add(self, route, key, field, amount):
        """Add ``amount`` to one counter and return its new value."""
        cdef _ocn_op op
        cdef PyObject* f = <PyObject*>field
        cdef Py_ssize_t i, created, bad
        cdef _CounterEntity ent
        _ocn_check_name(f)
        _ocn_check_amount(<PyObject*>amount, f, &op.amt, &op.atag)
        _ocn_check_name(<PyObject*>route)
        _ocn_check_name(<PyObject*>key)
        i = self._shard(<PyObject*>route, <PyObject*>key)
        _ocn_lock(&self._locks[i])
        try:
            ent = self._entity(i, route, key)
            bad = ent.apply(self._pool(i), &f, &op, 1, &created)
            self._counts[i] += created
            if bad != -1:
                self._drop_if_empty(i, route, key, ent)
        finally:
            pthread_mutex_unlock(&self._locks[i])
        if bad == -1:
            return _ocn_box(op.new, op.ntag)
        if bad == -2:
            raise MemoryError()
        raise _ocn_overflow(field, &op)

    cdef _CounterEntity _lookup(self, object route, object key):
        """The counter entity of (route, key) or None, for a caller to keep and pass to
        ``_add_ops_at`` (no lock: with the GIL held, the map is not changing)."""
        return self._find(self._shard(<PyObject*>route, <PyObject*>key), route, key)

    cdef inline Py_ssize_t _apply_held(self, Py_ssize_t i, object route, object key, _CounterEntity ent,
                                       PyObject** fs, _ocn_op* ops, Py_ssize_t n) noexcept:
        """``ent.apply`` with shard ``i``'s lock held; counts the counters it made. On failure
        nothing changed, so only an entity this call made can be left empty: ``route``/``key``
        are its place in the map, to drop it (None for an entity found before, which keeps its
        counters)."""
        cdef Py_ssize_t created = 0
        cdef Py_ssize_t bad = ent.apply(self._pool(i), fs, ops, n, &created)
        self._counts[i] += created
        if bad != -1 and key is not None:
            self._drop_if_empty(i, route, key, ent)
        return bad

    cdef int _add_ops_at(self, _CounterEntity ent, PyObject** fs, _ocn_op* ops, Py_ssize_t n) except -1:
        """``_add_ops`` on a counter entity found before (``_lookup``), without the map
        look-ups: 1 (nothing done) when it is no longer in this table.

        PERF: ~600 of the ~5,200 instructions of an ``Engine.incr`` call.
        """
        cdef Py_ssize_t i = ent.shard, bad
        if ent.table != self.serial:
            return 1
        _ocn_lock(&self._locks[i])
        try:
            if not ent.live:
                return 1
            bad = self._apply_held(i, None, None, ent, fs, ops, n)
        finally:
            pthread_mutex_unlock(&self._locks[i])
        return _ocn_raise_bad(bad, fs, ops)

    cdef int _add_ops(self, object route, object key, PyObject** fs, _ocn_op* ops, Py_ssize_t n) except -1:
        """Apply ``n`` staged, checked increments to one entity atomically (overflow: none applied).

        The core of ``add_many``, also called by the compiled write path (``_writer.pxi``).
        """
        cdef Py_ssize_t i, bad
        i = self._shard(<PyObject*>route, <PyObject*>key)
        _ocn_lock(&self._locks[i])
        try:
            bad = self._apply_held(i, route, key, self._entity(i, route, key), fs, ops, n)
        finally:
            pthread_mutex_unlock(&self._locks[i])
        return _ocn_raise_bad(bad, fs, ops)

    def add_many(self, route, key, fields, amounts):
        """Add to several counters of one entity atomically: all change, or (on error) none."""
        cdef _ocn_op stack_ops[_OCN_STACK_OPS]
        cdef _ocn_op* ops = stack_ops
        cdef PyObject** fs
        cdef PyObject** am
        cdef Py_ssize_t n, j
        cdef list out
        if len(fields) != len(amounts):
            raise ValueError("fields and amounts differ in length")
        # NOTE: a tuple, not the caller's list: the field objects are used after the
        # lock is dropped and retaken (entity creation), when a list could change.
        fseq = fields if type(fields) is tuple else tuple(fields)
        aseq = amounts if type(amounts) is list or type(amounts) is tuple else list(amounts)
        n = _ocn_seq_size(fseq)
        if n != _ocn_seq_size(aseq):
            raise ValueError("fields and amounts differ in length")
        fs = _ocn_seq_items(fseq)
        am = _ocn_seq_items(aseq)
        if n > _OCN_STACK_OPS:
            ops = <_ocn_op*>malloc(n * sizeof(_ocn_op))
            if ops == NULL:
                raise MemoryError()
        try:
            for j in range(n):
                _ocn_check_name(fs[j])
                _ocn_check_amount(am[j], fs[j], &ops[j].amt, &ops[j].atag)
            _ocn_check_name(<PyObject*>route)
            _ocn_check_name(<PyObject*>key)
            out = [None] * n          # allocated before the lock, filled after it
            if n == 0:
                return out            # no empty entity is ever stored
            self._add_ops(route, key, fs, ops, n)
            for j in range(n):
                out[j] = _ocn_box(ops[j].new, ops[j].ntag)
            return out
        finally:
            if ops != stack_ops:
                free(ops)

    def set(self, route, key, field, value):
        """Set one counter to ``value`` (an int64 or finite float)."""
        cdef _ocn_num v
        cdef unsigned char tag, inserted
        cdef PyObject* f = <PyObject*>field
        cdef Py_ssize_t i, s
        cdef _CounterEntity ent
        _ocn_check_name(f)
        _ocn_check_amount(<PyObject*>value, f, &v, &tag)
        _ocn_check_name(<PyObject*>route)
        _ocn_check_name(<PyObject*>key)
        i = self._shard(<PyObject*>route, <PyObject*>key)
        _ocn_lock(&self._locks[i])
        try:
            ent = self._entity(i, route, key)
            s = ent.slot_of(self._pool(i), f, True, &inserted)
            if s >= 0:
                ent.vals()[s] = v
                ent.tags()[s] = tag
                self._counts[i] += inserted
            else:
                self._drop_if_empty(i, route, key, ent)
        finally:
            pthread_mutex_unlock(&self._locks[i])
        if s < 0:
            raise MemoryError()

    def get(self, route, key, field):
        """One counter's value, or None."""
        cdef PyObject* f = <PyObject*>field
        cdef Py_ssize_t i, s = -1
        cdef _ocn_num v
        cdef unsigned char tag
        cdef _CounterEntity ent
        _ocn_check_name(f)
        _ocn_check_name(<PyObject*>route)
        _ocn_check_name(<PyObject*>key)
        i = self._shard(<PyObject*>route, <PyObject*>key)
        _ocn_lock(&self._locks[i])
        try:
            ent = self._find(i, route, key)
            if ent is not None:
                s = ent.find(f)
                if s >= 0:
                    v = ent.vals()[s]
                    tag = ent.tags()[s]
        finally:
            pthread_mutex_unlock(&self._locks[i])
        if s < 0:
            return None
        return _ocn_box(v, tag)

    def entity(self, route, key):
        """A copy of one entity's counters (empty when it has none)."""
        cdef Py_ssize_t i, n = 0, j
        cdef _ocn_cell* cells = NULL
        cdef _CounterEntity ent
        cdef dict out = {}
        _ocn_check_name(<PyObject*>route)
        _ocn_check_name(<PyObject*>key)
        i = self._shard(<PyObject*>route, <PyObject*>key)
        _ocn_lock(&self._locks[i])
        try:
            ent = self._find(i, route, key)
            if ent is not None:
                cells = <_ocn_cell*>malloc((ent.top + 1) * sizeof(_ocn_cell))
                if cells != NULL:
                    n = _ocn_copy_cells(ent, NULL, NULL, cells)
        finally:
            pthread_mutex_unlock(&self._locks[i])
        if ent is not None and cells == NULL:
            raise MemoryError()
        try:
            for j in range(n):
                out[<object>cells[j].field] = _ocn_box(cells[j].v, cells[j].tag)
        finally:
            _ocn_release_cells(cells, n)
        return out

    def delete_entity(self, route, key):
        """Drop all counters of one entity; returns how many there were."""
        cdef Py_ssize_t i, n = 0
        cdef _CounterEntity ent
        _ocn_check_name(<PyObject*>route)
        _ocn_check_name(<PyObject*>key)
        i = self._shard(<PyObject*>route, <PyObject*>key)
        _ocn_lock(&self._locks[i])
        try:
            ent = self._find(i, route, key)      # kept alive past the lock by this reference
            if ent is not None:
                n = ent.top
                self._unlink(i, route, key, ent)
                self._counts[i] -= n
        finally:
            pthread_mutex_unlock(&self._locks[i])
        return n

    def delete_field(self, route, key, field):
        """Drop one counter; True when it existed."""
        cdef PyObject* f = <PyObject*>field
        cdef Py_ssize_t i, s = -1
        cdef _CounterEntity ent
        _ocn_check_name(f)
        _ocn_check_name(<PyObject*>route)
        _ocn_check_name(<PyObject*>key)
        i = self._shard(<PyObject*>route, <PyObject*>key)
        _ocn_lock(&self._locks[i])
        try:
            ent = self._find(i, route, key)
            if ent is not None:
                s = ent.find(f)
                if s >= 0:
                    ent.unset(self._pool(i), s)
                    self._counts[i] -= 1
                    self._drop_if_empty(i, route, key, ent)
        finally:
            pthread_mutex_unlock(&self._locks[i])
        return s >= 0

    def export(self):
        """Every counter as ``(route, key, field, value)``, for snapshots (shard by shard)."""
        cdef list out = []
        cdef Py_ssize_t i, j, n, pos, kpos
        cdef _ocn_cell* cells
        cdef PyObject* rp
        cdef PyObject* keys
        cdef PyObject* kp
        cdef PyObject* ep
        cdef Py_ssize_t total
        for i in range(self.shards):
            n = 0
            _ocn_lock(&self._locks[i])
            try:
                # Sized from the entities themselves, not from the running count.
                total = pos = 0
                while PyDict_Next(self._maps[i], &pos, &rp, &keys):
                    kpos = 0
                    while PyDict_Next(<object>keys, &kpos, &kp, &ep):
                        total += (<_CounterEntity>ep).top
                cells = <_ocn_cell*>malloc((total + 1) * sizeof(_ocn_cell))
                if cells != NULL:
                    pos = 0
                    while PyDict_Next(self._maps[i], &pos, &rp, &keys):
                        kpos = 0
                        while PyDict_Next(<object>keys, &kpos, &kp, &ep):
                            n += _ocn_copy_cells(<_CounterEntity>ep, rp, kp, cells + n)
            finally:
                pthread_mutex_unlock(&self._locks[i])
            if cells == NULL:
                raise MemoryError()
            try:
                for j in range(n):
                    out.append((<object>cells[j].route, <object>cells[j].key, <object>cells[j].field,
                                _ocn_box(cells[j].v, cells[j].tag)))
            finally:
                _ocn_release_cells(cells, n)
        return out

    def __len__(self):
        cdef Py_ssize_t i, n = 0
        for i in range(self.shards):
            _ocn_lock(&self._locks[i])
            n += self._counts[i]
            pthread_mutex_unlock(&self._locks[i])
        return n

    def entity_count(self):
        """How many entities hold at least one counter."""
        cdef Py_ssize_t i, n = 0, pos
        cdef PyObject* rp
        cdef PyObject* keys
        for i in range(self.shards):
            _ocn_lock(&self._locks[i])
            pos = 0
            while PyDict_Next(self._maps[i], &pos, &rp, &keys):
                n += _ocn_dict_size(keys)
            pthread_mutex_unlock(&self._locks[i])
        return n


cdef Py_ssize_t _ocn_copy_cells(_CounterEntity ent, PyObject* route, PyObject* key, _ocn_cell* cells) noexcept:
    """Copy an entity's counters (insertion order) into ``cells``, taking references.
    Plain C under the stripe lock: no object is allocated here."""
    cdef Py_ssize_t n
    cdef PyObject** names = ent.names()
    for n in range(ent.top):
        cells[n].route = route
        cells[n].key = key
        cells[n].field = names[n]
        cells[n].v = ent.vals()[n]
        cells[n].tag = ent.tags()[n]
        Py_INCREF(<object>names[n])
        if route != NULL:
            Py_INCREF(<object>route)
            Py_INCREF(<object>key)
    return ent.top


cdef void _ocn_release_cells(_ocn_cell* cells, Py_ssize_t n) noexcept:
    cdef Py_ssize_t j
    if cells == NULL:
        return
    for j in range(n):
        Py_DECREF(<object>cells[j].field)
        if cells[j].route != NULL:
            Py_DECREF(<object>cells[j].route)
            Py_DECREF(<object>cells[j].key)
    free(cells)
