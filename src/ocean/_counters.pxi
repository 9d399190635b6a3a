# ---------------------------------------------------------------------------
# Counter shards: (route, key, field) -> int64 | float64, striped C locks.
# Pure twin (the oracle): ocean/_reference/counters.py -- same names, same errors.
# ---------------------------------------------------------------------------
#
# Layout. The table has ``shards`` stripes; (route, key) picks one from the two
# strings' cached hashes. A stripe is a dict ``route -> _KeyTable``, a
# ``_NamePool`` and one ``pthread_mutex_t``. A ``_KeyTable`` is an open-addressing
# table of entity blocks (``_ocn_ent``): one PyMem allocation per entity holding
# its key, and its counters in insertion order -- unboxed values (int64 or
# float64, with a type tag) and the field names, each name the stripe's one
# shared copy. Up to ``_OCN_SCAN`` counters a field is found by a scan; a larger
# entity adds an open-addressing index of its slots. No dict entry, tuple or
# Python object per entity or counter (issue 14: an entity of 5 counters took
# ~500 bytes here, a dict of five, an object, a tuple and a dict entry; now one
# 128-byte block and ~14 bytes of its key table).
#
# PERF: bench/bench_counters.py, medians on the 2-core dev box: a 1000-field
# add_many takes 15 us here (21 us with a dict per entity) against 114 us for a
# dict behind threading.Lock and 256 us for the pure twin, which boxes a new int
# per increment; single add() calls: 66 ns (108 ns with the (route, key) tuple
# and dict per entity) vs 298 ns (locked dict) and 1.3 us (twin). Memory: 44
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
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF, Py_XDECREF
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
    /* A str's hash: the cached one when set (PERF: no call through tp_hash on the hot path). */
    static inline Py_hash_t ocean_str_hash(PyObject* o) {
        Py_hash_t h = ((PyASCIIObject*)o)->hash;
        return h != -1 ? h : PyObject_Hash(o);
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
    Py_ssize_t ocean_str_hash(PyObject* o) noexcept
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
    _OCN_FIRST = 6                # room a new entity starts with


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
        return _CounterOverflow.int64(field, old, amount)
    return _CounterOverflow.float64(field, old, amount)


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


ctypedef struct _ocn_ent:         # one entity's counters: this header, then vals[cap], names[cap], tags[cap]
    PyObject* key                 # its key (a reference)
    int* hix                      # past _OCN_SCAN counters: hix[0] = size, then slot + 1 per position (0 empty)
    int cap
    int top


cdef inline _ocn_num* _e_vals(_ocn_ent* e) noexcept:
    return <_ocn_num*>(<char*>e + sizeof(_ocn_ent))


cdef inline PyObject** _e_names(_ocn_ent* e) noexcept:
    return <PyObject**>(<char*>e + sizeof(_ocn_ent) + e.cap * sizeof(_ocn_num))


cdef inline unsigned char* _e_tags(_ocn_ent* e) noexcept:
    return <unsigned char*>(<char*>e + sizeof(_ocn_ent) + e.cap * (sizeof(_ocn_num) + sizeof(PyObject*)))


cdef _ocn_ent* _e_alloc(_ocn_ent* old, int cap) noexcept:
    """An entity of room ``cap`` holding ``old``'s slots (``old`` freed), or NULL when out of memory
    (``old`` untouched). PyMem is safe under the lock: pymalloc allocates no GC-tracked object and
    runs no Python code, and tracemalloc sees it (bench_counters measures bytes per counter with it)."""
    cdef _ocn_ent* e = <_ocn_ent*>PyMem_Malloc(sizeof(_ocn_ent) + cap * (sizeof(_ocn_num) + sizeof(PyObject*) + 1))
    if e == NULL:
        return NULL
    e.cap = cap
    if old == NULL:
        e.key = NULL
        e.hix = NULL
        e.top = 0
        return e
    e.key = old.key
    e.hix = old.hix
    e.top = old.top
    memcpy(_e_vals(e), _e_vals(old), old.top * sizeof(_ocn_num))
    memcpy(_e_names(e), _e_names(old), old.top * sizeof(PyObject*))
    memcpy(_e_tags(e), _e_tags(old), old.top)
    PyMem_Free(old)
    return e


cdef void _e_reindex(_ocn_ent* e) noexcept:
    """Rebuild ``hix`` for the current slots (none at or below ``_OCN_SCAN``); out of memory, it
    is left out and ``_e_find`` scans."""
    cdef int size = 16, s, h
    cdef PyObject** names = _e_names(e)
    PyMem_Free(e.hix)
    e.hix = NULL
    if e.top <= _OCN_SCAN:
        return
    while size < e.top * 3:
        size *= 2
    e.hix = <int*>PyMem_Calloc(size + 1, sizeof(int))
    if e.hix == NULL:
        return
    e.hix[0] = size
    for s in range(e.top):
        h = <int>(<uint64_t>ocean_str_hash(names[s]) & <uint64_t>(size - 1))
        while e.hix[1 + h] != 0:
            h = (h + 1) & (size - 1)
        e.hix[1 + h] = s + 1


cdef inline Py_ssize_t _e_find(_ocn_ent* e, PyObject* field) noexcept:
    """The field's slot in ``e``, or -1."""
    cdef PyObject** names = _e_names(e)
    cdef Py_ssize_t s
    cdef int h, m
    if e.hix == NULL:
        for s in range(e.top):
            if names[s] == field:
                return s
        for s in range(e.top):
            if ocean_str_eq(names[s], field):
                return s
        return -1
    m = e.hix[0] - 1
    h = <int>(<uint64_t>ocean_str_hash(field) & <uint64_t>m)
    while e.hix[1 + h] != 0:
        s = e.hix[1 + h] - 1
        if ocean_str_eq(names[s], field):
            return s
        h = (h + 1) & m
    return -1


cdef inline void _e_index(_ocn_ent* e, Py_ssize_t s) noexcept:
    cdef int m = e.hix[0] - 1
    cdef int h = <int>(<uint64_t>ocean_str_hash(_e_names(e)[s]) & <uint64_t>m)
    while e.hix[1 + h] != 0:
        h = (h + 1) & m
    e.hix[1 + h] = <int>s + 1


cdef void _e_free(_ocn_ent* e, _NamePool pool) noexcept:
    """Free an entity, giving back its names (to ``pool``, or plainly when None) and its key."""
    cdef Py_ssize_t s
    cdef PyObject** names = _e_names(e)
    for s in range(e.top):
        if pool is not None:
            pool.give(names[s])
        else:
            Py_DECREF(<object>names[s])
    Py_XDECREF(e.key)
    PyMem_Free(e.hix)
    PyMem_Free(e)


@cython.final
@cython.no_gc        # holds only str keys and names: it can never be in a cycle
cdef class _KeyTable:
    """One shard's entities of one route: an open-addressing table (linear probing) of entity
    blocks keyed by their keys' cached hashes.

    PERF/memory (issue 14): no dict entry, tuple or Python object per entity. An entity of up to
    ``_OCN_SCAN`` counters finds a field by a scan (pointer, then hash and bytes); a larger one
    keeps an index of its slots. A new entity has room for ``_OCN_FIRST`` counters, so the common
    few are one 128-byte block, never grown (growing left the smaller blocks behind as holes in
    RSS), plus ~14 bytes of this table (a dict of five took ~180, its values' array 64 more, the
    entity object 96, its (route, key) tuple and dict entry ~100, and field names were not shared).
    """
    cdef _ocn_ent** slots
    cdef Py_ssize_t size, n            # size: a power of two (0 before the first entity)
    cdef long long table               # its CounterTable's serial
    cdef int shard
    cdef bint live                     # still in its shard's map (a writer may cache it, see _add_ops_at)

    def __dealloc__(self):
        cdef Py_ssize_t h
        for h in range(self.size):
            if self.slots[h] != NULL:
                _e_free(self.slots[h], None)   # still in a map: its table (and pool) is going too
        PyMem_Free(self.slots)

    cdef inline Py_ssize_t find(self, PyObject* key) noexcept:
        """The position of ``key``'s entity, or -1."""
        cdef Py_ssize_t m, h
        if self.n == 0:
            return -1
        m = self.size - 1
        h = <Py_ssize_t>(<uint64_t>ocean_str_hash(key) & <uint64_t>m)
        while self.slots[h] != NULL:
            if ocean_str_eq(self.slots[h].key, key):
                return h
            h = (h + 1) & m
        return -1

    cdef inline Py_ssize_t _place(self, _ocn_ent* e) noexcept:
        cdef Py_ssize_t m = self.size - 1
        cdef Py_ssize_t h = <Py_ssize_t>(<uint64_t>ocean_str_hash(e.key) & <uint64_t>m)
        while self.slots[h] != NULL:
            h = (h + 1) & m
        self.slots[h] = e
        return h

    cdef Py_ssize_t add(self, PyObject* key) noexcept:
        """A new entity for ``key`` (absent) with room for two counters: its position, or -1
        when out of memory (nothing changed)."""
        cdef Py_ssize_t size, h
        cdef _ocn_ent** old
        cdef _ocn_ent* e
        if (self.n + 1) * 4 > self.size * 3:
            size = 8 if self.size == 0 else self.size * 2
            old = self.slots
            self.slots = <_ocn_ent**>PyMem_Calloc(size, sizeof(_ocn_ent*))
            if self.slots == NULL:
                self.slots = old
                return -1
            self.size, size = size, self.size
            for h in range(size):
                if old[h] != NULL:
                    self._place(old[h])
            PyMem_Free(old)
        e = _e_alloc(NULL, _OCN_FIRST)
        if e == NULL:
            return -1
        Py_INCREF(<object>key)
        e.key = key
        self.n += 1
        return self._place(e)

    cdef void remove(self, Py_ssize_t h, _NamePool pool) noexcept:
        """Free the entity at ``h`` and close the gap (backward-shift deletion)."""
        cdef Py_ssize_t m = self.size - 1, j = h, k
        _e_free(self.slots[h], pool)
        self.slots[h] = NULL
        self.n -= 1
        while True:
            j = (j + 1) & m
            if self.slots[j] == NULL:
                return
            k = <Py_ssize_t>(<uint64_t>ocean_str_hash(self.slots[j].key) & <uint64_t>m)
            # the entry at j may move to the hole at h when its home k is not in (h, j]
            if (j > h and (k <= h or k > j)) or (j < h and (k <= h and k > j)):
                self.slots[h] = self.slots[j]
                self.slots[j] = NULL
                h = j

    cdef Py_ssize_t slot_of(self, _NamePool pool, Py_ssize_t at, PyObject* field, bint create,
                            unsigned char* inserted) noexcept:
        """The field's slot in the entity at ``at``; with ``create`` a new zero int slot
        (``inserted`` set; the block may move). -1: absent, -2: out of memory."""
        cdef _ocn_ent* e = self.slots[at]
        cdef Py_ssize_t s = _e_find(e, field)
        cdef PyObject* name
        cdef int cap
        inserted[0] = 0
        if s >= 0 or not create:
            return s
        if e.top == e.cap:
            # by two up to _OCN_SCAN (fewest freed blocks left behind: RSS), then by half
            cap = e.cap + 2 if e.cap < _OCN_SCAN else e.cap + e.cap // 2
            e = _e_alloc(e, cap)
            if e == NULL:
                return -2
            self.slots[at] = e
        name = pool.take(field)
        if name == NULL:
            return -2
        s = e.top
        e.top += 1
        _e_names(e)[s] = name
        _e_vals(e)[s].i = 0
        _e_tags(e)[s] = _OCN_INT
        if e.top > _OCN_SCAN and (e.hix == NULL or e.top * 3 > e.hix[0] * 2):
            _e_reindex(e)
        elif e.hix != NULL:
            _e_index(e, s)
        inserted[0] = 1
        return s

    cdef void unset(self, _NamePool pool, Py_ssize_t at, Py_ssize_t s) noexcept:
        """Remove slot ``s`` of the entity at ``at``; later slots move down one (order kept)."""
        cdef _ocn_ent* e = self.slots[at]
        cdef PyObject* name = _e_names(e)[s]
        cdef Py_ssize_t rest = e.top - s - 1
        if rest:
            memmove(_e_vals(e) + s, _e_vals(e) + s + 1, rest * sizeof(_ocn_num))
            memmove(_e_names(e) + s, _e_names(e) + s + 1, rest * sizeof(PyObject*))
            memmove(_e_tags(e) + s, _e_tags(e) + s + 1, rest)
        e.top -= 1
        pool.give(name)
        if e.hix != NULL:
            _e_reindex(e)

    cdef void rollback(self, _NamePool pool, Py_ssize_t at, _ocn_op* ops, Py_ssize_t n) noexcept:
        """Undo the first ``n`` ops, newest first (so duplicates restore correctly)."""
        cdef Py_ssize_t t
        cdef _ocn_ent* e
        for t in range(n - 1, -1, -1):
            if ops[t].inserted:
                self.unset(pool, at, ops[t].slot)   # the newest slot: nothing moves
            else:
                e = self.slots[at]
                _e_vals(e)[ops[t].slot] = ops[t].old
                _e_tags(e)[ops[t].slot] = ops[t].otag

    cdef Py_ssize_t apply(self, _NamePool pool, Py_ssize_t at, PyObject** fields, _ocn_op* ops, Py_ssize_t n,
                          Py_ssize_t* created) noexcept:
        """Apply ``n`` staged increments in order to the entity at ``at``. Returns -1 when all
        applied, the failing index on overflow, -2 when out of memory; on failure nothing changed."""
        cdef Py_ssize_t j, s
        cdef _ocn_op* op
        cdef _ocn_ent* e
        cdef int64_t r
        cdef double d
        created[0] = 0
        for j in range(n):
            op = &ops[j]
            s = self.slot_of(pool, at, fields[j], True, &op.inserted)
            if s == -2:
                self.rollback(pool, at, ops, j)
                created[0] = 0
                return -2
            e = self.slots[at]
            created[0] += op.inserted
            op.slot = s
            op.old = _e_vals(e)[s]
            op.otag = _e_tags(e)[s]
            if op.otag == _OCN_INT and op.atag == _OCN_INT:
                if ocean_add_i64(op.old.i, op.amt.i, &r):
                    self.rollback(pool, at, ops, j + 1)
                    created[0] = 0
                    return j
                op.new.i = r
                op.ntag = _OCN_INT
            else:
                d = (<double>op.old.i if op.otag == _OCN_INT else op.old.d) + \
                    (<double>op.amt.i if op.atag == _OCN_INT else op.amt.d)
                if not isfinite(d):
                    self.rollback(pool, at, ops, j + 1)
                    created[0] = 0
                    return j
                op.new.d = d
                op.ntag = _OCN_FLOAT
            _e_vals(e)[s] = op.new
            _e_tags(e)[s] = op.ntag
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
    cdef list _maps                   # per shard: dict route -> _KeyTable
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
        cdef uint64_t h = <uint64_t>ocean_str_hash(route) * 0x9E3779B97F4A7C15ULL
        h ^= <uint64_t>ocean_str_hash(key)
        h ^= h >> 31
        h *= 0xBF58476D1CE4E5B9ULL
        h ^= h >> 29
        return <Py_ssize_t>(h % <uint64_t>self.shards)

    cdef inline _NamePool _pool(self, Py_ssize_t i):
        return <_NamePool>self._pools[i]

    cdef inline _KeyTable _keys(self, Py_ssize_t i, object route):
        """Shard ``i``'s entities of ``route`` or None (the caller holds the lock, or the GIL with
        no other thread inside: the maps change only under it)."""
        cdef PyObject* p = _ocn_dict_get(<PyObject*>self._maps[i], <PyObject*>route)
        return <_KeyTable>p if p != NULL else None

    cdef _KeyTable _keys_made(self, Py_ssize_t i, object route):
        """``_keys``, made when missing; the caller holds the shard lock. A new table is made
        outside the lock, since a new object may start a GC collection, and the lock is taken
        again."""
        cdef _KeyTable kt = self._keys(i, route)
        cdef _KeyTable fresh
        if kt is not None:
            return kt
        pthread_mutex_unlock(&self._locks[i])
        try:
            fresh = _KeyTable.__new__(_KeyTable)
        finally:
            _ocn_lock(&self._locks[i])
        kt = self._keys(i, route)
        if kt is not None:            # another thread made it meanwhile
            return kt
        if _ocn_dict_set(<PyObject*>self._maps[i], <PyObject*>route, <PyObject*>fresh) < 0:
            raise MemoryError()
        fresh.table = self.serial
        fresh.shard = <int>i
        fresh.live = True
        return fresh

    cdef Py_ssize_t _entity(self, _KeyTable kt, object key) noexcept:
        """The position of ``key``'s entity in ``kt``, made when missing; -1 when out of memory."""
        cdef Py_ssize_t at = kt.find(<PyObject*>key)
        if at >= 0:
            return at
        return kt.add(<PyObject*>key)

    cdef void _remove(self, Py_ssize_t i, object route, _KeyTable kt, Py_ssize_t at) noexcept:
        """Free the entity at ``at`` (and take an emptied route out of the shard's map). The map's
        reference to ``kt`` may be the last: the caller holds one, so it is not freed under the lock."""
        kt.remove(at, self._pool(i))
        if kt.n == 0:
            kt.live = False
            _ocn_dict_del(<PyObject*>self._maps[i], <PyObject*>route)

    cdef inline void _drop_if_empty(self, Py_ssize_t i, object route, _KeyTable kt, Py_ssize_t at) noexcept:
        # Invariant: no empty entity is stored (entity_count counts holders only).
        if kt.slots[at].top == 0:
            self._remove(i, route, kt, at)

    def add(self, route, key, field, amount):
        """Add ``amount`` to one counter and return its new value."""
        cdef _ocn_op op
        cdef PyObject* f = <PyObject*>field
        _ocn_check_name(f)
        _ocn_check_amount(<PyObject*>amount, f, &op.amt, &op.atag)
        _ocn_check_name(<PyObject*>route)
        _ocn_check_name(<PyObject*>key)
        self._add_ops(route, key, &f, &op, 1)
        return _ocn_box(op.new, op.ntag)

    cdef _KeyTable _lookup(self, object route, object key):
        """Where (route, key)'s counters are, or None, for a caller to keep and pass to
        ``_add_ops_at`` (no lock: with the GIL held, the map is not changing)."""
        return self._keys(self._shard(<PyObject*>route, <PyObject*>key), route)

    cdef inline Py_ssize_t _apply_held(self, Py_ssize_t i, object route, _KeyTable kt, Py_ssize_t at,
                                       PyObject** fs, _ocn_op* ops, Py_ssize_t n) noexcept:
        """Apply to the entity at ``at`` with shard ``i``'s lock held; counts the counters it made.
        On failure nothing changed, so only an entity this call made can be left empty: it is
        dropped again."""
        cdef Py_ssize_t created = 0
        cdef Py_ssize_t bad = kt.apply(self._pool(i), at, fs, ops, n, &created)
        self._counts[i] += created
        if bad != -1:
            self._drop_if_empty(i, route, kt, at)
        return bad

    cdef int _add_ops_at(self, _KeyTable kt, object key, PyObject** fs, _ocn_op* ops, Py_ssize_t n) except -1:
        """``_add_ops`` through a key table found before (``_lookup``), without the shard's map
        look-up: 1 (nothing done) when it is no longer in this table or holds no ``key``.

        PERF: ~600 of the ~5,200 instructions of an ``Engine.incr`` call.
        """
        cdef Py_ssize_t i = kt.shard, bad, at
        if kt.table != self.serial:
            return 1
        _ocn_lock(&self._locks[i])
        try:
            if not kt.live:
                return 1
            at = kt.find(<PyObject*>key)
            if at < 0:
                return 1
            bad = self._apply_held(i, None, kt, at, fs, ops, n)  # an entity with counters: never emptied
        finally:
            pthread_mutex_unlock(&self._locks[i])
        return _ocn_raise_bad(bad, fs, ops)

    cdef int _add_ops(self, object route, object key, PyObject** fs, _ocn_op* ops, Py_ssize_t n) except -1:
        """Apply ``n`` staged, checked increments to one entity atomically (overflow: none applied).

        The core of ``add_many``, also called by the compiled write path (``_writer.pxi``).
        """
        cdef Py_ssize_t i, bad, at
        cdef _KeyTable kt
        i = self._shard(<PyObject*>route, <PyObject*>key)
        _ocn_lock(&self._locks[i])
        try:
            kt = self._keys_made(i, route)
            at = self._entity(kt, key)
            if at < 0:
                bad = -2
                if kt.n == 0:
                    kt.live = False
                    _ocn_dict_del(<PyObject*>self._maps[i], <PyObject*>route)
            else:
                bad = self._apply_held(i, route, kt, at, fs, ops, n)
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
        # lock is dropped and retaken (key table creation), when a list could change.
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
        cdef Py_ssize_t i, s = -2, at
        cdef _KeyTable kt
        cdef _ocn_ent* e
        _ocn_check_name(f)
        _ocn_check_amount(<PyObject*>value, f, &v, &tag)
        _ocn_check_name(<PyObject*>route)
        _ocn_check_name(<PyObject*>key)
        i = self._shard(<PyObject*>route, <PyObject*>key)
        _ocn_lock(&self._locks[i])
        try:
            kt = self._keys_made(i, route)
            at = self._entity(kt, key)
            if at >= 0:
                s = kt.slot_of(self._pool(i), at, f, True, &inserted)
                if s >= 0:
                    e = kt.slots[at]
                    _e_vals(e)[s] = v
                    _e_tags(e)[s] = tag
                    self._counts[i] += inserted
                else:
                    self._drop_if_empty(i, route, kt, at)
            elif kt.n == 0:
                kt.live = False
                _ocn_dict_del(<PyObject*>self._maps[i], <PyObject*>route)
        finally:
            pthread_mutex_unlock(&self._locks[i])
        if s < 0:
            raise MemoryError()

    def get(self, route, key, field):
        """One counter's value, or None."""
        cdef PyObject* f = <PyObject*>field
        cdef Py_ssize_t i, s = -1, at
        cdef _ocn_num v
        cdef unsigned char tag
        cdef _KeyTable kt
        _ocn_check_name(f)
        _ocn_check_name(<PyObject*>route)
        _ocn_check_name(<PyObject*>key)
        i = self._shard(<PyObject*>route, <PyObject*>key)
        _ocn_lock(&self._locks[i])
        try:
            kt = self._keys(i, route)
            at = kt.find(<PyObject*>key) if kt is not None else -1
            if at >= 0:
                s = _e_find(kt.slots[at], f)
                if s >= 0:
                    v = _e_vals(kt.slots[at])[s]
                    tag = _e_tags(kt.slots[at])[s]
        finally:
            pthread_mutex_unlock(&self._locks[i])
        if s < 0:
            return None
        return _ocn_box(v, tag)

    def entity(self, route, key):
        """A copy of one entity's counters (empty when it has none)."""
        cdef Py_ssize_t i, n = 0, j, at = -1
        cdef _ocn_cell* cells = NULL
        cdef _KeyTable kt
        cdef dict out = {}
        _ocn_check_name(<PyObject*>route)
        _ocn_check_name(<PyObject*>key)
        i = self._shard(<PyObject*>route, <PyObject*>key)
        _ocn_lock(&self._locks[i])
        try:
            kt = self._keys(i, route)
            at = kt.find(<PyObject*>key) if kt is not None else -1
            if at >= 0:
                cells = <_ocn_cell*>malloc((kt.slots[at].top + 1) * sizeof(_ocn_cell))
                if cells != NULL:
                    n = _ocn_copy_cells(kt.slots[at], NULL, cells)
        finally:
            pthread_mutex_unlock(&self._locks[i])
        if at >= 0 and cells == NULL:
            raise MemoryError()
        try:
            for j in range(n):
                out[<object>cells[j].field] = _ocn_box(cells[j].v, cells[j].tag)
        finally:
            _ocn_release_cells(cells, n)
        return out

    def delete_entity(self, route, key):
        """Drop all counters of one entity; returns how many there were."""
        cdef Py_ssize_t i, n = 0, at
        cdef _KeyTable kt
        _ocn_check_name(<PyObject*>route)
        _ocn_check_name(<PyObject*>key)
        i = self._shard(<PyObject*>route, <PyObject*>key)
        _ocn_lock(&self._locks[i])
        try:
            kt = self._keys(i, route)      # kept alive past the lock by this reference
            at = kt.find(<PyObject*>key) if kt is not None else -1
            if at >= 0:
                n = kt.slots[at].top
                self._remove(i, route, kt, at)
                self._counts[i] -= n
        finally:
            pthread_mutex_unlock(&self._locks[i])
        return n

    def delete_field(self, route, key, field):
        """Drop one counter; True when it existed."""
        cdef PyObject* f = <PyObject*>field
        cdef Py_ssize_t i, s = -1, at
        cdef _KeyTable kt
        _ocn_check_name(f)
        _ocn_check_name(<PyObject*>route)
        _ocn_check_name(<PyObject*>key)
        i = self._shard(<PyObject*>route, <PyObject*>key)
        _ocn_lock(&self._locks[i])
        try:
            kt = self._keys(i, route)
            at = kt.find(<PyObject*>key) if kt is not None else -1
            if at >= 0:
                s = _e_find(kt.slots[at], f)
                if s >= 0:
                    kt.unset(self._pool(i), at, s)
                    self._counts[i] -= 1
                    self._drop_if_empty(i, route, kt, at)
        finally:
            pthread_mutex_unlock(&self._locks[i])
        return s >= 0

    def export(self):
        """Every counter as ``(route, key, field, value)``, for snapshots (shard by shard)."""
        cdef list out = []
        cdef Py_ssize_t i, j, n, pos, h
        cdef _ocn_cell* cells
        cdef PyObject* rp
        cdef PyObject* kp
        cdef _KeyTable kt
        cdef Py_ssize_t total
        for i in range(self.shards):
            n = 0
            _ocn_lock(&self._locks[i])
            try:
                # Sized from the entities themselves, not from the running count.
                total = pos = 0
                while PyDict_Next(self._maps[i], &pos, &rp, &kp):
                    kt = <_KeyTable>kp
                    for h in range(kt.size):
                        if kt.slots[h] != NULL:
                            total += kt.slots[h].top
                cells = <_ocn_cell*>malloc((total + 1) * sizeof(_ocn_cell))
                if cells != NULL:
                    pos = 0
                    while PyDict_Next(self._maps[i], &pos, &rp, &kp):
                        kt = <_KeyTable>kp
                        for h in range(kt.size):
                            if kt.slots[h] != NULL:
                                n += _ocn_copy_cells(kt.slots[h], rp, cells + n)
            finally:
                kt = None
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
        cdef PyObject* kp
        for i in range(self.shards):
            _ocn_lock(&self._locks[i])
            pos = 0
            while PyDict_Next(self._maps[i], &pos, &rp, &kp):
                n += (<_KeyTable>kp).n
            pthread_mutex_unlock(&self._locks[i])
        return n


cdef Py_ssize_t _ocn_copy_cells(_ocn_ent* e, PyObject* route, _ocn_cell* cells) noexcept:
    """Copy an entity's counters (insertion order) into ``cells``, taking references.
    Plain C under the stripe lock: no object is allocated here."""
    cdef Py_ssize_t n
    cdef PyObject** names = _e_names(e)
    for n in range(e.top):
        cells[n].route = route
        cells[n].key = e.key
        cells[n].field = names[n]
        cells[n].v = _e_vals(e)[n]
        cells[n].tag = _e_tags(e)[n]
        Py_INCREF(<object>names[n])
        if route != NULL:
            Py_INCREF(<object>route)
            Py_INCREF(<object>e.key)
    return e.top


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
