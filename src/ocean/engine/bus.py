"""Publish/subscribe by route prefix: bounded subscriber queues and a replay ring.

Every write becomes a ``Message`` (seq, route, key, op, fields, time) that is
put on the ring of recent drops and pushed to each subscriber whose prefix
covers its route. Its JSON and SSE bytes are built lazily, once, however many
subscribers send it. A subscriber that falls more than ``maxsize`` messages
behind is marked overflowed and dropped: the bus never buffers without bound.

Publishing costs a ring append plus one dict walk over the *distinct* watched
prefixes -- next to nothing when nobody watches. Only ``threading`` primitives
are used; under gevent's monkey-patching they cooperate with greenlets.
"""
from __future__ import annotations

import heapq
import threading
import time
import weakref
from collections import deque

from ..kernels import kernel
from ..model import prefix_matches


# One published drop, encoded on first use and cached; the replay ring of one kind of
# route. Both are compiled (``_writer.pxi``, twins in ``_reference``): the engine's
# compiled increment path makes and rings a message per write.
Message = kernel("Message")
Ring = kernel("Ring")


class Subscription:
    """One subscriber's bounded queue; ``get`` blocks (cooperatively under gevent).

    PERF: the subscriptions to one prefix of one bus share a few bells (``threading.Event``s
    swapped for fresh ones once rung), one per ``group``: a publish to 5,000 of them rings
    at most GROUPS bells and their waiters are woken in one pass each, instead of 5,000
    events each scheduling its own wake-up. Under gevent each of those costs four
    short-lived objects that pile up for the whole publish and set off the cyclic GC (a
    full pass over every stream's objects took ~200 ms at 5,000 streams). A waiter woken
    for another subscriber of its group (by its ``wake`` or ``close``) finds nothing to do
    and waits again. ``get`` has no timer of its own unless given a timeout: ``wake`` (a
    heartbeat ticker, which can wake one ``group`` at a time) makes a blocked ``get``
    return None.
    """

    GROUPS = 16  # bells per prefix: a wake or close disturbs 1/16 of the prefix's subscribers

    class _Bell:
        __slots__ = ("event", "lock", "__weakref__")

        def __init__(self):
            self.event = threading.Event()
            self.lock = threading.Lock()

        def ring(self) -> None:
            event = self.event
            if not event.is_set():
                event.set()

        def current(self):
            """The event to wait on: the bell's, or a fresh one if that has rung already."""
            event = self.event
            if event.is_set():
                with self.lock:
                    event = self.event
                    if event.is_set():
                        event = self.event = threading.Event()
            return event

    _bells: "weakref.WeakValueDictionary[tuple, Subscription._Bell]" = weakref.WeakValueDictionary()
    _bells_lock = threading.Lock()
    _made = 0  # subscriptions made: deals out the groups in turn

    def __init__(self, bus: "Bus", prefix: str, maxsize: int):
        self.bus = bus
        self.prefix = prefix
        self.maxsize = maxsize
        self.backlog: list[Message] = []
        self.gap = False
        self.overflowed = False
        self.closed = False
        self._queue: deque = deque()
        self._waiting = False  # set before a getter's last look at the queue, so a pusher knows to ring
        self._woken = False
        with Subscription._bells_lock:
            self.group = Subscription._made % Subscription.GROUPS
            Subscription._made += 1
            key = (id(bus), prefix, self.group)
            bell = Subscription._bells.get(key)
            if bell is None:
                bell = Subscription._bells[key] = Subscription._Bell()
        self._bell = bell  # the subscription (which holds the bus) keeps it, and so the key's id, alive

    def _leave(self) -> None:
        """Unregister from whatever feeds this queue (the bus; the Redis store's hub overrides it)."""
        self.bus._remove(self)

    def push(self, msg: Message) -> None:
        if len(self._queue) >= self.maxsize:
            self.overflowed = True
            self._leave()
        else:
            self._queue.append(msg)
        if self._waiting:
            self._bell.ring()

    def get(self, timeout: float | None = None) -> Message | None:
        """The next message, or None on timeout, ``wake``, overflow or close."""
        deadline = None
        while True:
            if self.overflowed or self.closed:
                return None
            if self._queue:
                return self._queue.popleft()
            if self._woken:
                self._woken = False
                return None
            if timeout is not None:
                if deadline is None:
                    deadline = time.monotonic() + timeout
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
            else:
                left = None
            # NOTE: flag first, then the bell, then one more look: a push, wake or close after
            # that look sees the flag and rings the event taken here (or a later one, which
            # exists only once this one has rung).
            self._waiting = True
            try:
                event = self._bell.current()
                if self._queue or self.overflowed or self.closed or self._woken:
                    continue
                event.wait(left)
            finally:
                self._waiting = False

    def pending(self) -> int:
        return len(self._queue)

    def wake(self) -> None:
        """Make a blocked (or the next) ``get`` return None: time for a heartbeat."""
        self._woken = True
        if self._waiting:
            self._bell.ring()

    def close(self) -> None:
        """Stop receiving; wakes a blocked ``get``. Safe to call twice."""
        if not self.closed:
            self.closed = True
            self._leave()
            if self._waiting:
                self._bell.ring()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _seq(msg) -> int:
    return msg.seq


class Bus:
    """Routes messages to subscribers by prefix and keeps the replay rings.

    System routes (``_admin/events`` on every request) have a ring of their own,
    so a busy server's request feed never pushes users' drops out of replay.
    """

    def __init__(self, ring_size: int, queue_size: int, start_seq: int = 0, ring_bytes: int = 0,
                 user_seq: int | None = None):
        """``start_seq``: the newest seq before this start (the rings hold nothing up to it);
        ``user_seq``: the newest of those on a user route, where the user ring's gap begins."""
        self.queue_size = queue_size
        self.user = Ring(ring_size, start_seq if user_seq is None else user_seq, ring_bytes)
        self.system = Ring(ring_size, start_seq, ring_bytes)
        self._by_prefix: dict[str, list[Subscription]] = {}
        self._lock = threading.RLock()  # push() may drop a subscriber while publish holds it
        self.dropped_subscribers = 0

    @property
    def published(self) -> int:
        """Messages published since start."""
        return self.user.appended + self.system.appended

    def _rings(self, prefix: str) -> list[Ring]:
        if prefix == "*":
            return [self.user, self.system]
        return [self.system if prefix.startswith("_") else self.user]

    def publish(self, msg) -> None:
        """Ring it and fan it out. Callers hold the engine's write lock, so messages go in seq order
        and ``subscribe`` (which takes that lock too) sees each either in its backlog or live."""
        (self.system if msg.route.startswith("_") else self.user).append(msg)
        if self._by_prefix:
            self._fanout(msg)

    def _fanout(self, msg) -> None:
        """Push ``msg`` to every subscriber whose prefix covers its route (the compiled path calls
        this only when someone subscribes)."""
        with self._lock:
            route = msg.route
            for prefix, subs in list(self._by_prefix.items()):
                if prefix_matches(prefix, route):
                    for sub in list(subs):
                        sub.push(msg)

    def subscribe(self, prefix: str, after_seq: int | None = None, last: int | None = None,
                  maxsize: int | None = None) -> Subscription:
        """Watch ``prefix``; replay from after ``after_seq`` or the last ``last`` drops first."""
        sub = Subscription(self, prefix, maxsize or self.queue_size)
        with self._lock:
            if after_seq is not None:
                rings = self._rings(prefix)
                sub.gap = any(after_seq < r.forgotten for r in rings)
                sub.backlog = list(heapq.merge(*(
                    [m for m in r.messages if m.seq > after_seq and prefix_matches(prefix, m.route)]
                    for r in rings), key=_seq))
            elif last:
                sub.backlog = self.recent(prefix, last)
            self._by_prefix.setdefault(prefix, []).append(sub)
        return sub

    def recent(self, prefix: str, n: int) -> list:
        """The last ``n`` ring messages under ``prefix``, oldest first."""
        picked = []
        with self._lock:
            rings = [r.messages for r in self._rings(prefix)]
        for ring in rings:
            out = []
            for m in reversed(ring):
                if len(out) >= n:
                    break
                if prefix_matches(prefix, m.route):
                    out.append(m)
            picked.extend(out)
        picked.sort(key=_seq)
        return picked[-n:] if n else []

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._by_prefix.get(sub.prefix)
            if subs and sub in subs:
                subs.remove(sub)
                if sub.overflowed:
                    self.dropped_subscribers += 1
                if not subs:
                    del self._by_prefix[sub.prefix]

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._by_prefix.values())

    def close_all(self) -> None:
        for subs in list(self._by_prefix.values()):
            for sub in list(subs):
                sub.close()
