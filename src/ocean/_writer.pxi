# ---------------------------------------------------------------------------
# The engine's hot write path: entity records, bus messages, the replay ring,
# and ``Writer.incr`` -- a whole increment (validate, number, log, apply,
# publish) in one compiled call.
# Pure twin (the oracle): ocean/_reference/writer.py -- same names, same errors.
# ---------------------------------------------------------------------------
#
# ``Writer.incr`` takes the common case only: an existing entity of plain
# counters (no expiry, no plain field of the same name), or a new one on a
# route that has entities, under a key ``check_key`` passes as written (no
# placeholder); valid names and amounts, a record that fits the payload limit.
# Anything else -- a route's first entity, a field to promote, any error to
# report -- goes to the engine's Python path (``slow``), which is the reference
# semantics; the fast path changes nothing before it decides.
#
# PERF (new entities): bench_drops ``drops-post-1000``, one session, medians: 1000 drops each
# making its entity 7.62 ms (the Python path, State._write and prepare_drop a drop) -> 2.20 ms,
# against 1.75 ms for 1000 increments to existing entities. Both paths hold the engine's write lock,
# take seqs from ``Writer.seq`` and write through the same ``LogFile``.
#
# Sketch adds (``Writer._sketch_write``): a drop / ``uniq`` / ``observe`` adding plain values to
# uniq/dist fields that exist, of that kind, on an existing entity (``"+f"`` increments beside
# them) is logged (the binary record with ``l`` entries, the same bytes ``ops.encode`` writes),
# applied (counters, then each sketch, copied first if a capture may hold it) and published with
# the answer ``State.apply`` gives. New fields, kind mismatches, pairs, whole sketches, errors and
# overflows go to the Python path; replay hands these records to ``State.apply``.
#
# PERF (sketch adds): bench/bench_sketch.py -k uniq_writes, one run of main then this tree, 10,000
# "~visitors" drops through Engine.drop_many: 96.0 ms (25.6x Redis's pipelined one-value PFADD,
# 3.75 ms) -> 9.5 ms (2.4x Redis, 3.98 ms). About 1.0 us a uniq drop against 0.47 us for a
# "+f" drop (callgrind: ~11,600 instructions against ~5,500; the rest is the staging lists, the
# sketch and its count, the answer dict); a dist drop ~2.3 us, most of it the published summary's
# four quantile walks over the bins, which the Python path pays too. bench/bench_engine.py, same
# way: drop_many of 1000 "+page_views, ~visitors, %ms" drops 16.7 -> 3.2 ms; Engine.uniq of one
# new value a call (10,000) 186 -> 21-33 ms, against 7 ms of compiled increments.
#
# PERF: bench/bench_engine.py, medians on the 2-core dev box: Engine.incr 0.46 us a
# call (2.2M/s; 6.0 us through the Python path; a dict under threading.Lock 0.54 us); a
# 1000-field incr 71-76 us (putting the 1000 boxed totals into the result dict is ~25 us);
# drop_many of 1000 counting drops 0.5 ms; replay 2.9M records/s. An increment is ~4,200
# instructions (callgrind, bench loop included): about 400 the loop and call, 600 the
# amounts dict and the result dict, 500 four dict look-ups (route, key, field slot,
# result), and the rest the log record, the counter, the message and its ring.

from cpython.dict cimport PyDict_Copy
from cpython.list cimport PyList_GET_ITEM
from libc.stdint cimport int64_t
from libc.stdlib cimport realloc
from libc.math cimport isnan

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    Py_UCS4 PyUnicode_READ_CHAR(object o, Py_ssize_t index)
    object PyUnicode_DecodeASCII(const char* s, Py_ssize_t size, const char* errors)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    void* PyUnicode_DATA(object o)

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk_id, timespec* tp)
    int CLOCK_REALTIME

import json as _json_mod
import time as _time_mod
from ocean.errors import EngineClosed as _EngineClosed, OceanError as _OceanError
from ocean.model import drop_id as _drop_id, iso_ms as _iso_ms, check_field as _check_field

_json_dumps = _json_mod.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


cdef inline long long _now_ms() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <long long>ts.tv_sec * 1000 + ts.tv_nsec // 1000000


cdef dict _NO_FIELDS = {}  # the fields of every entity without plain fields (see Entity.__init__)


@cython.final
@cython.freelist(256)  # PERF: every increment stores a new record and frees the old one
@cython.no_gc          # holds JSON data only, never itself: it cannot be in a cycle (see below)
cdef class Entity:
    """One entity's stored state.

    Snapshots share records (they are captured by reference, then written out while
    writes go on), so a record a snapshot may hold is never changed: a write stores a
    new one. ``gen`` is the log segment a record was made in; the compiled increment
    path updates a record of the current segment in place -- no snapshot can hold it,
    since a snapshot rotates the log before it captures -- and copies any other.

    PERF: not tracked by the cyclic GC (``no_gc``): it refers only to JSON data, which
    cannot refer back to it, so a million entities add nothing to a full collection's walk.
    """

    cdef public object fields       # dict of plain fields, or None for a plain value
    cdef public object value        # the plain value when fields is None
    cdef public long long created_ms
    cdef public long long updated_ms
    cdef public long long version
    cdef public long long expires_ms  # 0: never
    cdef public long long gen         # see the class docstring; 0 for records made in Python
    cdef _KeyTable cnt                # where its counters are in the CounterTable, once the writer found it

    def __init__(self, fields, value, long long created_ms, long long updated_ms, long long version,
                 long long expires_ms):
        # memory (issue 14): an entity of counters only shares one empty dict (never changed:
        # every write copies the fields it starts from)
        self.fields = _NO_FIELDS if type(fields) is dict and not fields else fields
        self.value = value
        self.created_ms = created_ms
        self.updated_ms = updated_ms
        self.version = version
        self.expires_ms = expires_ms

    def touched(self, long long ms):
        """A copy with a new update time and version (an increment's bookkeeping)."""
        return _touched(self, ms)

    def to_row(self):
        return [self.fields, self.value, self.created_ms, self.updated_ms, self.version, self.expires_ms]

    @classmethod
    def from_row(cls, row):
        return cls(*row)


cdef inline Entity _touched(Entity e, long long ms):
    cdef Entity new = Entity.__new__(Entity)
    new.fields = e.fields
    new.value = e.value
    new.created_ms = e.created_ms
    new.updated_ms = ms
    new.version = e.version + 1
    new.expires_ms = e.expires_ms
    new.cnt = e.cnt
    return new


@cython.final
@cython.freelist(256)  # PERF: a full ring frees one message for each it takes
@cython.no_gc          # holds JSON data and strings, never itself: it cannot be in a cycle
cdef class Message:
    """One published drop; its JSON and SSE bytes are built on first use and cached."""

    cdef public long long seq
    cdef public object route
    cdef public object key
    cdef public object op
    cdef public object fields
    cdef public long long ms
    cdef public object instance
    cdef public Py_ssize_t size     # about how many bytes it holds (its log record), for the ring's cap
    cdef object _json
    cdef object _sse

    def __init__(self, long long seq, route, key, op, fields, long long ms, instance, Py_ssize_t size=0):
        self.seq = seq
        self.route = route
        self.key = key
        self.op = op
        self.fields = fields
        self.ms = ms
        self.instance = instance
        self.size = size

    @property
    def drop_id(self):
        return _drop_id(self.instance, self.seq)

    @property
    def data(self):
        """The payload's fields plus ``_route``, ``_key`` (keyed), ``_id``, ``_at`` and ``_op``."""
        out = dict(self.fields) if isinstance(self.fields, dict) else {"_value": self.fields}
        out["_route"] = self.route
        if self.key is not None:
            out["_key"] = self.key
        out["_id"] = self.drop_id
        out["_at"] = _iso_ms(self.ms)
        out["_op"] = self.op
        return out

    def json(self):
        if self._json is None:
            self._json = _json_dumps(self.data)
        return self._json

    def sse(self):
        """``id: <seq>\\ndata: <json>\\n\\n`` as bytes (JSON has no raw newlines)."""
        if self._sse is None:
            self._sse = f"id: {self.seq}\ndata: {self.json()}\n\n".encode("utf-8")
        return self._sse


@cython.final
cdef class Ring:
    """The most recent messages of one kind of route, and how far back it reaches.

    Bounded twice: at most ``size`` messages and about ``max_bytes`` of them (1 MiB
    payloads would otherwise let 10,000 messages hold 10 GiB); the newest always
    stays. A circular list: appending never allocates.
    """

    cdef list buf
    cdef Py_ssize_t head, count, cap
    cdef public long long forgotten   # every seq <= this is gone from the ring (or predates it)
    cdef public long long last        # the newest seq this ring took (or ``start_seq``): what it covers
    cdef public long long bytes
    cdef public long long max_bytes   # 0: no byte cap
    cdef public long long appended

    def __init__(self, Py_ssize_t size, long long start_seq, long long max_bytes=0):
        self.cap = max(1, size)
        self.buf = [None] * self.cap
        self.head = 0
        self.count = 0
        self.forgotten = start_seq
        self.last = start_seq
        self.bytes = 0
        self.max_bytes = max_bytes
        self.appended = 0

    @property
    def messages(self):
        """The messages, oldest first (a new list)."""
        cdef Py_ssize_t j
        return [self.buf[(self.head + j) % self.cap] for j in range(self.count)]

    def __len__(self):
        return self.count

    def append(self, Message msg):
        self._append(msg)

    cdef inline void _evict(self):
        cdef Message old = <Message>PyList_GET_ITEM(self.buf, self.head)
        self.buf[self.head] = None
        self.head = (self.head + 1) % self.cap
        self.count -= 1
        self.bytes -= old.size
        self.forgotten = old.seq

    cdef void _append(self, Message msg):
        if self.count == self.cap:
            self._evict()
        self.buf[(self.head + self.count) % self.cap] = msg
        self.count += 1
        self.bytes += msg.size
        self.appended += 1
        self.last = msg.seq
        while self.max_bytes and self.bytes > self.max_bytes and self.count > 1:
            self._evict()


@cython.final
cdef class WriteLock:
    """The engine's write lock, taken from C by the compiled path (~15 ns against ~120 ns
    for ``threading.Lock``'s methods).

    Waiting is cooperative: a busy lock is polled with ``time.sleep`` (0, then 0.1 to 2 ms),
    which gevent's monkey-patching turns into a greenlet switch. A blocking wait would
    stall the whole worker when the holder is a greenlet parked on I/O (the engine
    fsyncs through the threadpool under this lock when it rotates or closes the log).
    Holders are short, so waiting is rare: ``contended`` counts the polls.
    """

    cdef pthread_mutex_t _lock
    cdef bint _ready
    cdef bint _held
    cdef readonly long long contended

    def __cinit__(self):
        if pthread_mutex_init(&self._lock, NULL) != 0:
            raise MemoryError()
        self._ready = True
        self._held = False
        self.contended = 0

    def __dealloc__(self):
        if self._ready:
            pthread_mutex_destroy(&self._lock)

    cdef inline bint _try(self) noexcept:
        if pthread_mutex_trylock(&self._lock) == 0:
            self._held = True
            return True
        return False

    cdef int _acquire(self) except -1:
        cdef int polls = 0
        cdef double nap = 0.0001
        while not self._try():
            self.contended += 1
            if polls < 20:
                _time_mod.sleep(0)
            else:  # the holder waits on I/O (an fsync at rotation): back off to 2 ms
                _time_mod.sleep(nap)
                nap = min(nap * 2, 0.002)
            polls += 1
        return 0

    cdef inline void _release(self) noexcept:
        self._held = False
        pthread_mutex_unlock(&self._lock)

    def acquire(self, bint blocking=True):
        if not blocking:
            return self._try()
        self._acquire()
        return True

    def release(self):
        if not self._held:
            raise RuntimeError("release unlocked lock")
        self._release()

    def locked(self):
        return self._held

    def __enter__(self):
        self._acquire()
        return self

    def __exit__(self, *exc):
        self._release()


# -- validation without raising (a miss sends the call to the Python path) --------

cdef inline bint _field_ok(PyObject* name) noexcept:
    """Printable ASCII, 1..256 characters (others go through ``model.check_field``)."""
    cdef Py_ssize_t n, j
    cdef const unsigned char* s
    if not _ocn_is_str(name) or not PyUnicode_IS_ASCII(<object>name):
        return False
    n = PyUnicode_GET_LENGTH(<object>name)
    if n < 1 or n > 256:
        return False
    s = <const unsigned char*>PyUnicode_DATA(<object>name)
    for j in range(n):
        if s[j] < 32 or s[j] > 126:
            return False
    return True


cdef inline bint _key_ok(PyObject* key) noexcept:
    """A key ``model.check_key`` passes as it is: 1..256 of ``A-Za-z0-9._-``."""
    cdef Py_ssize_t n, j
    cdef const unsigned char* s
    cdef unsigned char c
    if not _ocn_is_str(key) or not PyUnicode_IS_ASCII(<object>key):
        return False
    n = PyUnicode_GET_LENGTH(<object>key)
    if n < 1 or n > 256:
        return False
    s = <const unsigned char*>PyUnicode_DATA(<object>key)
    for j in range(n):
        c = s[j]
        if not ((48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c == 46 or c == 95 or c == 45):
            return False
    return True


cdef inline bint _amount_ok(PyObject* o, _ocn_op* op) noexcept:
    cdef int overflow = 0
    cdef long long v
    cdef double d
    if _ocn_is_int(o):
        v = _ocn_as_ll(o, &overflow)
        if overflow:
            return False
        op.amt.i = v
        op.atag = _OCN_INT
        return True
    if _ocn_is_float(o):
        d = _ocn_float_val(o)
        if not isfinite(d):
            return False
        op.amt.d = d
        op.atag = _OCN_FLOAT
        return True
    return False


cdef object _SLOW = object()   # "take the Python path"


cdef Py_ssize_t _estimate(object data) except -1:
    """About how many bytes a bus-only message holds (for the ring's byte cap), without encoding it.
    PERF: ``len(repr(data))`` cost ~1 us on every request's ``_admin/events`` message."""
    cdef Py_ssize_t n = 64
    cdef PyObject* k
    cdef PyObject* v
    cdef Py_ssize_t pos = 0
    if type(data) is dict:
        while PyDict_Next(<dict>data, &pos, &k, &v):
            n += 8 + (PyUnicode_GET_LENGTH(<object>k) if _ocn_is_str(k) else 16)
            n += PyUnicode_GET_LENGTH(<object>v) if _ocn_is_str(v) else 16
        return n
    if type(data) is str:
        return n + PyUnicode_GET_LENGTH(data)
    return n + 64


cdef bint _stage(dict amounts, PyObject** names, _ocn_op* ops, dict strip) except -1:
    """Check and unbox ``{field: amount}`` into ``names``/``ops`` (new references to the
    names). False -- with nothing held -- when anything is unusual; the Python path then
    reports it. With ``strip``, keys are ``"+field"`` and the cache ``strip`` maps them to
    the field names."""
    cdef PyObject* name
    cdef PyObject* amount
    cdef PyObject* p
    cdef Py_ssize_t pos = 0, j = 0, k
    cdef object field
    while PyDict_Next(amounts, &pos, &name, &amount):
        if not _amount_ok(amount, &ops[j]):
            break
        if strip is not None:
            p = _ocn_dict_get(<PyObject*>strip, name)
            if p == NULL:
                if not _ocn_is_str(name) or PyUnicode_GET_LENGTH(<object>name) < 2 or \
                        PyUnicode_READ_CHAR(<object>name, 0) != 43:  # '+'
                    break
                field = (<str>name)[1:]
                if len(strip) < 100000:
                    strip[<object>name] = field
            else:
                field = <object>p
            name = <PyObject*>field
        if not _field_ok(name):
            try:
                _check_field(<object>name)
            except Exception:
                break
        Py_INCREF(<object>name)
        names[j] = name
        j += 1
    else:
        return True
    for k in range(j):
        Py_DECREF(<object>names[k])
    return False


cdef inline void _unstage(PyObject** names, Py_ssize_t n) noexcept:
    cdef Py_ssize_t k
    for k in range(n):
        Py_DECREF(<object>names[k])


cdef Py_ssize_t _staged_size(object route, object key, object source, PyObject** names, Py_ssize_t n) except -2:
    """Bytes of the binary incr record of the staged op, or -1 if it cannot be binary."""
    cdef Py_ssize_t size = _INCR_HEAD + 4, ln, j
    _ocn_utf8(route, &ln)
    size += ln
    _ocn_utf8(key, &ln)
    size += ln
    if source is not None:
        _ocn_utf8(source, &ln)
        if ln > 65535:
            return -1
        size += 2 + ln
    for j in range(n):
        _ocn_utf8(<object>names[j], &ln)
        if ln > 65535:
            return -1
        size += 11 + ln
    return size


cdef class Writer:
    """The engine's write state (seq, clock) and its compiled increment path.

    ``attach`` wires what the fast path touches: ``counters`` (a CounterTable),
    ``entities`` (the EntityTable, whose ``routes`` it reads and adds to), ``log`` (the LogFile), ``ring`` and
    ``system_ring`` (the replay Rings of user and ``_system`` routes), ``bus``
    (``_fanout(msg)`` when ``subscribed`` -- the bus's prefix dict -- is not
    empty), ``lock`` (the engine's WriteLock), ``slow(route, key, amounts,
    source)`` (the Python path) and ``after(route, key, ticket)`` (fsync wait,
    listeners, snapshot wake), called when ``listeners`` is not empty,
    ``sync_always`` is set, or a snapshot just fell due (the maintainer is woken
    once; it also checks every second).
    """

    cdef public long long seq
    cdef readonly bint makes_entities  # drop_many/incr make new entities of counters (the twin's do not)
    cdef public long long last_ms
    cdef public bint closed
    cdef public object instance
    cdef public long long max_bytes
    cdef public long long snapshot_every
    cdef public bint sync_always
    cdef public long long lease          # bus-only messages may take seqs up to here (logged)
    cdef public object extend_lease      # extend_lease(upto) logs a new lease, returns it
    cdef CounterTable counters
    cdef dict routes
    cdef object entities          # the EntityTable (engine/entities.py); ``routes`` is its dict
    cdef LogFile log
    cdef Ring ring
    cdef Ring system_ring
    cdef object bus
    cdef dict subscribed
    cdef WriteLock lock
    cdef object slow
    cdef object after
    cdef list listeners
    cdef dict strip
    cdef bytes id_prefix          # the drop id's first 19 characters, from the instance
    cdef object sketches          # the SketchTable (engine/sketches.py), once attach_sketches wired it
    cdef PyObject** buf_names     # drop_many's staging (used under the lock only)
    cdef _ocn_op* buf_ops
    cdef Py_ssize_t buf_cap

    def __init__(self, long long seq, instance):
        self.seq = seq
        self.makes_entities = True
        self.last_ms = 0
        self.closed = False
        self.instance = instance
        self.max_bytes = 1 << 20
        self.snapshot_every = 1 << 62
        self.sync_always = False
        self.strip = {}
        self.id_prefix = f"{instance[:8]}-{instance[8:12]}-{instance[12:16]}-".encode("ascii")

    def __dealloc__(self):
        free(self.buf_names)
        free(self.buf_ops)

    def attach(self, counters, entities, LogFile log, Ring ring, Ring system_ring, bus, dict subscribed, lock,
               slow, after, list listeners):
        """Wire the parts the fast path touches (see the class docstring)."""
        self.counters = <CounterTable?>counters
        self.entities = entities
        self.routes = <dict?>entities.routes
        self.log = log
        self.ring = ring
        self.system_ring = system_ring
        self.bus = bus
        self.subscribed = subscribed
        self.lock = <WriteLock?>lock
        self.slow = slow
        self.after = after
        self.listeners = listeners

    def attach_sketches(self, sketches):
        """Wire the SketchTable (engine/sketches.py): sketch adds then take the compiled path too."""
        self.sketches = sketches

    def clock(self):
        """Milliseconds, never going backwards (op times decide expiry on replay too)."""
        return self._clock()

    cdef inline long long _clock(self) noexcept:
        cdef long long ms = _now_ms()
        if ms <= self.last_ms:
            return self.last_ms
        self.last_ms = ms
        return ms

    cdef Entity _target(self, object route, object key, PyObject** names, Py_ssize_t n, PyObject** table):
        """The entity an increment may take the fast path on, or None (caller holds the lock);
        ``table`` gets the route's entity dict (borrowed)."""
        cdef PyObject* p = _ocn_dict_get(<PyObject*>self.routes, <PyObject*>route)
        cdef Entity ent
        cdef Py_ssize_t j
        if p == NULL:
            return None
        table[0] = p
        p = _ocn_dict_get(p, <PyObject*>key)
        if p == NULL:
            return None
        ent = <Entity>p
        if ent.fields is None or ent.expires_ms != 0:
            return None
        if ent.fields:
            for j in range(n):
                if _ocn_dict_get(<PyObject*>ent.fields, names[j]) != NULL:
                    return None  # a plain field becomes a counter: the Python path
        return ent

    cdef bint _creatable(self, object route, object key, PyObject** table) noexcept:
        """Whether an increment may make (route, key) a new entity of counters here (caller holds the
        lock): the route has entities (so its name was checked when the first was made), the key
        is absent and a valid key as written (a placeholder, or anything ``check_key`` would refuse,
        goes to the Python path). ``table`` gets the route's entity dict (borrowed)."""
        cdef PyObject* p = _ocn_dict_get(<PyObject*>self.routes, <PyObject*>route)
        if p == NULL:
            return False
        table[0] = p
        return _ocn_dict_get(p, <PyObject*>key) == NULL and _key_ok(<PyObject*>key)

    cdef Message _apply(self, object route, object key, object source, Entity ent, PyObject* table,
                        PyObject** names, _ocn_op* ops, Py_ssize_t n, Py_ssize_t body, long long ms,
                        object amounts=None):
        """Log and apply one staged increment; returns its message (caller holds the lock).
        ``ent`` None: the entity is new (``_creatable``), made here as ``State.apply`` makes it --
        no plain fields, created and updated at ``ms``, version 1, no expiry.

        Raises StorageError (no room: nothing happened) or CounterOverflow (logged and
        refused: the seq is spent, as replay refuses it too).
        """
        cdef long long seq = self.seq + 1
        cdef dict totals
        cdef object total
        cdef Entity touched
        cdef Message msg
        cdef Py_ssize_t j
        _write_incr(self.log._claim(body), seq, ms, route, key, source, names, ops, n)
        self.log._commit(body)
        self.seq = seq
        if ent is None:  # CounterOverflow cannot happen on new counters (0 + a checked amount)
            self.counters._add_ops(route, key, names, ops, n)
            ent = Entity.__new__(Entity)
            ent.fields = _NO_FIELDS
            ent.created_ms = ms
            ent.updated_ms = ms
            ent.version = 1
            ent.gen = self.log.switches  # made in this segment: no snapshot holds it (see Entity)
            ent.cnt = self.counters._lookup(route, key)
            (<dict><object>table)[key] = ent
            self.entities.added(route)
        else:
            if ent.cnt is None or self.counters._add_ops_at(ent.cnt, key, names, ops, n) != 0:
                self.counters._add_ops(route, key, names, ops, n)
                # a cache on the record (no field a snapshot reads): the next increment skips the look-up
                ent.cnt = self.counters._lookup(route, key)
            if ent.gen == self.log.switches:  # made since the last snapshot's capture: only we hold it
                ent.updated_ms = ms
                ent.version += 1
            else:
                touched = _touched(ent, ms)
                touched.gen = self.log.switches
                _ocn_dict_set(table, <PyObject*>key, <PyObject*>touched)  # an existing key: cannot fail
        if amounts is not None and n >= 8:
            # PERF: ``names`` are ``amounts``' own keys in its order, so the totals are a copy
            # of it with new values: a clone of its table and 1000 in-place replacements cost
            # ~15% less of a 1000-field increment than 1000 inserts into a growing dict.
            totals = PyDict_Copy(amounts)
            for j in range(n):
                total = _ocn_box(ops[j].new, ops[j].ntag)
                _ocn_dict_set(<PyObject*>totals, names[j], <PyObject*>total)  # an existing key: cannot fail
        else:
            totals = {}
            for j in range(n):
                totals[<object>names[j]] = _ocn_box(ops[j].new, ops[j].ntag)
        msg = Message.__new__(Message)
        msg.seq = seq
        msg.route = route
        msg.key = key
        msg.op = "incr"
        msg.fields = totals
        msg.ms = ms
        msg.instance = self.instance
        msg.size = body
        if (<const unsigned char*>PyUnicode_DATA(route))[0] == 95:  # '_': a system route
            self.system_ring._append(msg)
        else:
            self.ring._append(msg)
        if self.subscribed:
            self.bus._fanout(msg)
        return msg

    def publish(self, route, data):
        """``Engine.publish``: a message on the bus only (not stored), e.g. ``_admin/events``.

        Its seq is in no op: a logged lease (one record per 4096 seqs) keeps it from being
        reused after a restart, where a client's Last-Event-ID may still hold it.
        """
        cdef Message msg
        cdef long long seq
        self.lock._acquire()
        try:
            if self.closed:
                raise _EngineClosed("the engine is closed")
            seq = self.seq + 1
            if seq > self.lease:
                self.lease = self.extend_lease(seq + 4096)
            self.seq = seq
            msg = Message.__new__(Message)
            msg.seq = seq
            msg.route = route
            msg.key = None
            msg.op = "event"
            msg.fields = data
            msg.ms = self._clock()
            msg.instance = self.instance
            msg.size = _estimate(data)
            if route.startswith("_"):
                self.system_ring._append(msg)
            else:
                self.ring._append(msg)
            if self.subscribed:
                self.bus._fanout(msg)
            return msg
        finally:
            self.lock._release()

    def incr(self, route, key, amounts, source=None):
        """``Engine.incr``: increment fields of one entity atomically; returns ``{field: new value}``."""
        out = self._incr(route, key, amounts, source)
        if out is _SLOW:
            return self.slow(route, key, amounts, source)
        return out

    cdef object _incr(self, object route, object key, object amounts, object source):
        cdef PyObject* stack_names[16]
        cdef _ocn_op stack_ops[16]
        cdef PyObject** names = stack_names
        cdef _ocn_op* ops = stack_ops
        cdef Py_ssize_t n, body
        cdef long long ticket
        cdef Entity ent
        cdef Message msg
        cdef PyObject* table = NULL
        cdef bint listeners
        # Route and key need no checking here: ``_target`` takes only an entity that exists,
        # whose route and key were checked when it was made, and ``_creatable`` a new key on a
        # route that has entities, checking the key (PERF: ~250 instructions).
        if type(amounts) is not dict or not _ocn_is_str(<PyObject*>key) or not _ocn_is_str(<PyObject*>route):
            return _SLOW
        if source is not None and not _ocn_is_str(<PyObject*>source):
            return _SLOW
        n = len(<dict>amounts)
        if n == 0:
            return _SLOW
        if n > 16:
            names = <PyObject**>malloc(n * sizeof(PyObject*))
            ops = <_ocn_op*>malloc(n * sizeof(_ocn_op))
            if names == NULL or ops == NULL:
                free(names)
                free(ops)
                raise MemoryError()
        try:
            if not _stage(<dict>amounts, names, ops, None):
                return _SLOW
            try:
                body = _staged_size(route, key, source, names, n)
                if body < 0 or body > self.max_bytes:
                    return _SLOW
                self.lock._acquire()
                try:
                    if self.closed:
                        return _SLOW
                    ent = self._target(route, key, names, n, &table)
                    if ent is None and not self._creatable(route, key, &table):
                        return _SLOW
                    msg = self._apply(route, key, source, ent, table, names, ops, n, body, self._clock(), amounts)
                    ticket = self.log.appended
                    listeners = len(self.listeners) > 0
                finally:
                    self.lock._release()
            finally:
                _unstage(names, n)
            if listeners or self.sync_always or self.log.since_snapshot == self.snapshot_every:
                self.after(route, key, ticket)
            return msg.fields
        finally:
            if names != stack_names:
                free(names)
                free(ops)

    cdef int _reserve_stage(self, Py_ssize_t n) except -1:
        cdef void* a
        cdef void* b
        if n <= self.buf_cap:
            return 0
        a = realloc(self.buf_names, n * sizeof(PyObject*))
        if a == NULL:
            raise MemoryError()
        self.buf_names = <PyObject**>a
        b = realloc(self.buf_ops, n * sizeof(_ocn_op))
        if b == NULL:
            raise MemoryError()
        self.buf_ops = <_ocn_op*>b
        self.buf_cap = n
        return 0

    cdef object _drop_id(self, long long seq):
        cdef char buf[36]
        cdef const char* hexd = b"0123456789abcdef"
        cdef int j
        cdef unsigned long long v = <unsigned long long>seq
        memcpy(buf, _ocn_bytes_ptr(self.id_prefix), 19)
        for j in range(15, -1, -1):
            buf[19 + j + (1 if j >= 4 else 0)] = hexd[v & 15]
            v >>= 4
        buf[23] = 45  # '-'
        return PyUnicode_DecodeASCII(buf, 36, NULL)

    def adds(self, prefix, route, key, values, source=None):
        """``Engine.uniq`` (``prefix`` "~") / ``Engine.observe`` ("%"): the common case -- values added
        to sketch fields that exist, of that kind, on an existing entity -- written here; returns
        ``{field: new estimate or summary}``, or None: the engine's Python path takes the call."""
        cdef Message msg
        cdef long long ticket
        cdef bint listeners
        if self.sketches is None or type(values) is not dict or not values or not _ocn_is_str(<PyObject*>key) \
                or not _ocn_is_str(<PyObject*>route) or (prefix != "~" and prefix != "%"):
            return None
        if source is not None and not _ocn_is_str(<PyObject*>source):
            return None
        self.lock._acquire()
        try:
            if self.closed:
                return None
            msg = self._sketch_write(route, key, <dict>values, prefix, source, self._clock())
            if msg is None:
                return None
            ticket = self.log.appended
            listeners = len(self.listeners) > 0
        finally:
            self.lock._release()
        if listeners or self.sync_always or self.log.since_snapshot == self.snapshot_every:
            self.after(route, key, ticket)
        return msg.fields

    cdef Message _sketch_write(self, object route, object key, dict payload, object prefix, object source,
                               long long ms):
        """Log, apply and publish one write of sketch adds (and increments beside them) on an existing
        entity -- the op ``State.apply`` would make of it, with the same record, state, answer and
        message -- or return None with nothing done (the Python path then takes it). The caller holds
        the lock. ``prefix`` None: ``payload`` is a drop's (``"+f"``, ``"~f"``, ``"%f"`` keys); else
        every key is a field of that prefix's kind (``uniq``/``observe``).

        Raises StorageError (no room: nothing happened) or CounterOverflow (logged and refused, as
        ``State.apply`` refuses it: the seq is spent).
        """
        cdef list names = [], amounts = [], sk_fields = [], sk_values = [], sk_held = []
        cdef list counted = [], sk_kinds = []
        cdef set seen = set()
        cdef PyObject* name_p
        cdef PyObject* value_p
        cdef PyObject* q
        cdef Py_ssize_t pos = 0, j, ncnt = 0, nsk, body
        cdef object name, value, field, values, marker, sketch, held_routes, held
        cdef Py_UCS4 c
        cdef Entity ent, touched
        cdef PyObject* table
        cdef dict fields, totals
        cdef Dist dist
        cdef double total
        cdef long long seq
        cdef Message msg
        cdef _ocn_op op
        if self.sketches is None or not _ocn_is_str(<PyObject*>route) or not _ocn_is_str(<PyObject*>key):
            return None
        # 1. The payload: checked as model.split_increments / check_sketch_values would pass it.
        while PyDict_Next(payload, &pos, &name_p, &value_p):
            name = <object>name_p
            value = <object>value_p
            if not _ocn_is_str(name_p):
                return None
            if prefix is None:
                if PyUnicode_GET_LENGTH(name) < 2:
                    return None
                c = PyUnicode_READ_CHAR(name, 0)
                field = (<str>name)[1:]
            else:
                c = PyUnicode_READ_CHAR(prefix, 0)
                field = name
                name = prefix + field
            if not _field_ok(<PyObject*>field) or field in seen:
                return None  # also "+f" beside "~f", or "~f" beside "%f": refused by the Python path
            seen.add(field)
            if c == 43:  # '+'
                if not _amount_ok(value_p, &op):
                    return None
                names.append(field)
                amounts.append(value)
                counted.append(field)
                continue
            if c != 126 and c != 37:  # '~', '%'
                return None
            values = list(value) if type(value) is list else [value]  # a copy, as check_sketch_values
            if not values:
                return None
            for v in <list>values:
                if c == 126:
                    if _ocn_is_str(<PyObject*>v):
                        if not PyUnicode_IS_ASCII(v) or PyUnicode_GET_LENGTH(v) > 1024:
                            return None
                    elif not _ocn_is_int(<PyObject*>v) or not (-(1 << 63) <= v <= (1 << 63) - 1):
                        return None
                elif not _amount_ok(<PyObject*>v, &op):  # an int64 or a finite float
                    return None
            names.append(name)
            amounts.append(values)
            sk_fields.append(field)
            sk_values.append(values)
            sk_kinds.append(<int>c)  # (a Py_UCS4 would box as a 1-character str)
        nsk = len(sk_fields)
        if nsk == 0:
            return None
        body = _adds_size(route, key, source, names, amounts)
        if body < 0 or body > self.max_bytes:
            return None
        # 2. The entity: existing, of fields, no expiry; counters new or counters; sketches there, of their kind.
        q = _ocn_dict_get(<PyObject*>self.routes, <PyObject*>route)
        if q == NULL:
            return None
        table = q
        q = _ocn_dict_get(table, <PyObject*>key)
        if q == NULL:
            return None
        ent = <Entity>q
        if ent.fields is None or ent.expires_ms != 0:
            return None
        fields = <dict>ent.fields
        for field in counted:
            if field in fields:
                return None
        held_routes = (<dict?>self.sketches.routes).get(route)
        held = (<dict>held_routes).get(key) if held_routes is not None else None
        if held is None:
            return None
        for j in range(nsk):
            field = sk_fields[j]
            sketch = (<dict?>held).get(field)
            marker = fields.get(field)
            if sketch is None or marker is None:
                return None
            if type(sketch) is Hll:
                if marker != "uniq" or sk_kinds[j] != 126:
                    return None
            elif type(sketch) is Dist:
                if marker != "dist" or sk_kinds[j] != 37:
                    return None
                dist = <Dist>sketch
                # dist_overflow: a count past 2**63 - 1 or a sum that turns NaN is the Python path's
                if dist._count > <uint64_t>((1 << 63) - 1) - <uint64_t>len(<list>sk_values[j]):
                    return None
                total = dist._sum
                for v in <list>sk_values[j]:
                    total += <double>float(v)
                if isnan(total):
                    return None
            else:
                return None
            sk_held.append(sketch)
        # 3. Log it (the record ops.encode writes for this op), then apply: counters, then sketches.
        seq = self.seq + 1
        _write_adds(self.log._claim(body), seq, ms, route, key, source, names, amounts)
        self.log._commit(body)
        self.seq = seq
        totals = {}
        ncnt = len(counted)
        if ncnt:
            self._reserve_stage(ncnt)
            j = 0
            for field, value in zip(names, amounts):
                if type(value) is not list:
                    self.buf_names[j] = <PyObject*>field
                    _amount_ok(<PyObject*>value, &self.buf_ops[j])
                    j += 1
            self.counters._add_ops(route, key, self.buf_names, self.buf_ops, ncnt)  # CounterOverflow: nothing changed
            for j in range(ncnt):
                totals[<object>self.buf_names[j]] = _ocn_box(self.buf_ops[j].new, self.buf_ops[j].ntag)
        fresh = self.sketches._fresh
        for j in range(nsk):
            sketch = sk_held[j]
            field = sk_fields[j]
            if id(sketch) not in fresh:  # a capture may hold it: change a copy (sketches.py)
                sketch = sketch.copy()
                (<dict>held)[field] = sketch
                (<set?>fresh).add(id(sketch))
            if type(sketch) is Hll:
                (<Hll>sketch).add(sk_values[j])
                totals[field] = int((<Hll>sketch).count())
            else:
                for v in <list>sk_values[j]:  # finite numbers; the count's room checked above
                    (<Dist>sketch)._add(<double>float(v), 1)
                totals[field] = _dist_shown(<Dist>sketch)
        if ent.gen == self.log.switches:  # as _apply: only we hold a record of this segment
            ent.updated_ms = ms
            ent.version += 1
        else:
            touched = _touched(ent, ms)
            touched.gen = self.log.switches
            _ocn_dict_set(table, <PyObject*>key, <PyObject*>touched)
        msg = Message.__new__(Message)
        msg.seq = seq
        msg.route = route
        msg.key = key
        msg.op = "incr"
        msg.fields = totals
        msg.ms = ms
        msg.instance = self.instance
        msg.size = body
        if (<const unsigned char*>PyUnicode_DATA(route))[0] == 95:  # '_': a system route
            self.system_ring._append(msg)
        else:
            self.ring._append(msg)
        if self.subscribed:
            self.bus._fanout(msg)
        return msg

    def drop_many(self, list drops, Py_ssize_t start, list results, source=None):
        """``Engine.drop_many``'s counting case: from ``start``, take each drop that increments an
        existing entity of counters, or makes one (``_creatable``), (``{route, key, payload: {"+f": n,
        ...}}``), putting its
        receipt in ``results``; stop at the first other drop and return its index.

        Returns ``(next_index, ticket, count)``: ``ticket`` for the fsync wait, ``count`` drops taken.
        """
        cdef Py_ssize_t i = start, total = len(drops), n, body, taken = 0
        cdef PyObject* p
        cdef object item, route, key, payload
        cdef Entity ent
        cdef Message msg
        cdef PyObject* table = NULL
        cdef long long ms
        cdef object created_at
        if source is not None and not _ocn_is_str(<PyObject*>source):
            return start, self.log.appended, 0
        self.lock._acquire()
        try:
            if self.closed:
                return start, self.log.appended, 0
            ms = self._clock()  # one time for the drops written together
            created_at = _iso_ms(ms)
            while i < total:
                item = <object>PyList_GET_ITEM(drops, i)
                if type(item) is not dict or len(<dict>item) != 3:
                    break
                p = _ocn_dict_get(<PyObject*>item, <PyObject*>"route")
                if p == NULL:
                    break
                route = <object>p
                p = _ocn_dict_get(<PyObject*>item, <PyObject*>"key")
                if p == NULL:
                    break
                key = <object>p
                p = _ocn_dict_get(<PyObject*>item, <PyObject*>"payload")
                if p == NULL or type(<object>p) is not dict:
                    break
                payload = <object>p
                n = len(<dict>payload)
                if n == 0 or not _ocn_is_str(<PyObject*>key) or not _ocn_is_str(<PyObject*>route):
                    break
                self._reserve_stage(n)
                if not _stage(<dict>payload, self.buf_names, self.buf_ops, self.strip):
                    # sketch adds ("~f"/"%f") beside the increments: the compiled sketch path
                    try:
                        msg = self._sketch_write(route, key, <dict>payload, None, source, ms)
                    except _OceanError as exc:  # no room (nothing written) or overflow (logged, refused)
                        results[i] = exc
                        i += 1
                        continue
                    if msg is None:
                        break
                    results[i] = {"drop_id": self._drop_id(msg.seq), "seq": msg.seq, "route": route, "key": key,
                                  "created_at": created_at}
                    taken += 1
                    i += 1
                    continue
                try:
                    body = _staged_size(route, key, source, self.buf_names, n)
                    if body < 0 or body > self.max_bytes:
                        break
                    ent = self._target(route, key, self.buf_names, n, &table)
                    if ent is None and not self._creatable(route, key, &table):
                        break
                    try:
                        msg = self._apply(route, key, source, ent, table, self.buf_names, self.buf_ops, n, body, ms)
                    except _OceanError as exc:  # no room (nothing written) or overflow (logged, refused)
                        results[i] = exc
                        i += 1
                        continue
                finally:
                    _unstage(self.buf_names, n)
                results[i] = {"drop_id": self._drop_id(msg.seq), "seq": msg.seq, "route": route, "key": key,
                              "created_at": created_at}
                taken += 1
                i += 1
            return i, self.log.appended, taken
        finally:
            self.lock._release()

    def publish_run(self, list where, list batch, list outcomes, list results, long long ms, created_at,
                    dict names, list written):
        """``Engine._drop_run``'s last step, under the write lock: for each op of ``batch`` (drop
        ``where[j]``) that ``LocalStore.write_many`` applied, its receipt in ``results``, its message
        on the bus (as ``Bus.publish``) and the op in ``written``; a refused op's error in ``results``.

        An event's ``created_at`` is its own time when it has one (``ops.event_ms``), else
        ``created_at`` (``ms``'s). PERF: ~0.7 us a drop less than the same loop in Python
        (bench_drops ``drops-post-1000``).
        """
        cdef Py_ssize_t j, n = len(where)
        cdef list op
        cdef tuple done
        cdef object outcome, at_obj, route, kind
        cdef long long seq, at
        cdef Message msg
        instance = self.instance  # set after __init__ by a test that gives two engines one instance
        self.id_prefix = f"{instance[:8]}-{instance[8:12]}-{instance[12:16]}-".encode("ascii")
        for j in range(n):
            outcome = <object>PyList_GET_ITEM(outcomes, j)
            if type(outcome) is not tuple:
                results[<Py_ssize_t>where[j]] = outcome
                continue
            done = <tuple>outcome
            op = <list>PyList_GET_ITEM(batch, j)
            kind = op[0]
            route = op[3]
            seq = op[1]
            at_obj = op[6]
            at = at_obj if kind == "e" and type(at_obj) is int else ms
            msg = Message.__new__(Message)
            msg.seq = seq
            msg.route = route
            msg.key = op[4]
            msg.op = names[kind]
            msg.fields = done[1]
            msg.ms = at
            msg.instance = self.instance
            msg.size = done[2]
            if (<str>route).startswith("_"):
                self.system_ring._append(msg)
            else:
                self.ring._append(msg)
            if self.subscribed:
                self.bus._fanout(msg)
            results[<Py_ssize_t>where[j]] = {"drop_id": self._drop_id(seq), "seq": seq, "route": route, "key": op[4],
                                             "created_at": created_at if at == ms else _iso_ms(at)}
            written.append(op)


# -- replay ------------------------------------------------------------------------

def replay(list bodies, counters, dict routes, long long after_seq, apply_json, apply_op):
    """Apply a segment's record bodies in log order, skipping seqs <= ``after_seq``.

    Binary incr records on an existing entity of counters are applied here, as
    ``State.apply`` would (an overflow refused live is refused again); any other incr
    record -- one holding sketch adds (``l`` entries) too -- goes to ``apply_op(op)``; runs of JSON records go to ``apply_json(bodies)``,
    which returns their ``(last seq, count, last user seq)`` after ``after_seq``. Returns
    ``(last seq, records after after_seq, last seq on a user route)``: the last is where the
    user replay ring starts after a restart (system routes' writes, ``_admin/...``, do not
    make a resuming client's gap). ValueError if an incr record is malformed.
    PERF: ~0.3 us a record against ~2.5 us through ``decode`` + ``State.apply``.
    """
    cdef CounterTable table = <CounterTable?>counters
    cdef Py_ssize_t i, total = len(bodies), n, j, used, cap = 0
    cdef long long seq, ms, last = 0, count = 0, last_user = 0
    cdef const unsigned char* p
    cdef const unsigned char* end
    cdef PyObject** names = NULL
    cdef _ocn_op* ops = NULL
    cdef PyObject* q
    cdef Entity ent
    cdef dict entities
    cdef list run = []
    cdef bytes body
    cdef bint fast, has_source
    cdef void* grown
    try:
        for i in range(total):
            body = <bytes>PyList_GET_ITEM(bodies, i)
            p = <const unsigned char*>_ocn_bytes_ptr(body)
            if p[0] != 73:  # JSON
                run.append(body)
                continue
            end = p + len(body)
            fast = end - p >= _INCR_HEAD and p[1] <= 1  # else decode_incr reports what is wrong
            seq = ocean_get_i64(p + 6)
            if seq <= after_seq:
                continue
            if run:
                seq_count = apply_json(run)
                last = max(last, <long long>seq_count[0])
                count += <long long>seq_count[1]
                last_user = max(last_user, <long long>seq_count[2])
                run = []
            last = max(last, seq)
            count += 1
            if fast:
                n = ocean_get_u32(p + 2)
                ms = ocean_get_i64(p + 14)
                if n > cap:
                    grown = realloc(names, n * sizeof(PyObject*))
                    if grown == NULL:
                        raise MemoryError()
                    names = <PyObject**>grown
                    grown = realloc(ops, n * sizeof(_ocn_op))
                    if grown == NULL:
                        raise MemoryError()
                    ops = <_ocn_op*>grown
                    cap = n
                has_source = p[1]
                p += _INCR_HEAD
                route = _get_str(p, end, &used); p += used
                if not (<str>route).startswith("_"):
                    last_user = max(last_user, seq)
                key = _get_str(p, end, &used); p += used
                if has_source:
                    _get_str(p, end, &used); p += used
                q = _ocn_dict_get(<PyObject*>routes, <PyObject*>route)
                ent = None
                if q != NULL:
                    q = _ocn_dict_get(q, <PyObject*>key)
                    if q != NULL:
                        ent = <Entity>q
                if ent is None or ent.fields is None or ent.expires_ms != 0:
                    fast = False
                else:
                    fields = []  # keeps the names alive while ``names`` borrows them
                    for j in range(n):
                        name = _get_str(p, end, &used); p += used
                        if p < end and p[0] == 108:  # 'l': sketch adds -- State.apply, via decode_incr
                            fast = False
                            break
                        if p + 9 > end or (p[0] != 105 and p[0] != 102):
                            raise ValueError("incr record cut short or with an unknown amount type")
                        if ent.fields and _ocn_dict_get(<PyObject*>ent.fields, <PyObject*>name) != NULL:
                            fast = False
                            break
                        fields.append(name)
                        names[j] = <PyObject*>name
                        if p[0] == 105:
                            ops[j].amt.i = ocean_get_i64(p + 1)
                            ops[j].atag = _OCN_INT
                        else:
                            memcpy(&ops[j].amt.d, p + 1, 8)
                            ops[j].atag = _OCN_FLOAT
                        p += 9
                    if fast:
                        if p != end:
                            raise ValueError("incr record has trailing bytes")
                        try:
                            table._add_ops(route, key, names, ops, n)
                        except _OceanError:
                            continue  # refused live too (same state): it changed nothing then either
                        entities = <dict>routes[route]
                        entities[key] = _touched(ent, ms)
                        continue
            op = decode_incr(body)
            if not fast and not (<str>op[3]).startswith("_"):
                last_user = max(last_user, seq)
            apply_op(op)
        if run:
            seq_count = apply_json(run)
            last = max(last, <long long>seq_count[0])
            count += <long long>seq_count[1]
            last_user = max(last_user, <long long>seq_count[2])
        return last, count, last_user
    finally:
        free(names)
        free(ops)
