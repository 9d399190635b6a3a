"""The function calls' own Redis client: raw connections per master, hiredis packing and parsing.

Every ``FCALL`` (each write, each entity read) goes through here instead of redis-py's cluster
client, whose per-command machinery cost a worker ~150 us of CPU per write under gevent: the
command's key specs looked up, a pooled connection checked out and polled for readability,
metrics recorded. Here one call is: the route's slot (computed once per key, then a dict
lookup), its master from redis-py's own topology (``nodes_manager.slots_cache``: one source of
truth, refreshed by ``connection.refresh``), one idle connection popped from that master's free
list, one ``sendall`` of hiredis's packing, hiredis parsing the reply. ``execute`` sends a batch
(``drop_many``'s page) to every master at once and reads each master's replies in order.

Redis's answers are handled as redis-py would, but only where a retry cannot apply a write twice:

- ``MOVED`` / ``ASK``: the call goes again to the address named (``ASKING`` first), at most
  ``REDIRECTS`` times, and the topology is refreshed (throttled);
- ``CLUSTERDOWN`` / ``TRYAGAIN`` / ``LOADING`` / ``MASTERDOWN`` / ``READONLY``, or a master that
  cannot be connected to: nothing ran, so the call waits (50 ms doubling, at most 0.5 s) and
  tries again, ``retries`` times, refreshing the topology each time, then raises (503);
- a reused idle connection found closed before any reply byte (Redis restarted, or its idle
  ``timeout``): tried once more on a fresh connection. A connection lost once the command may
  have reached Redis, or a timeout waiting for the reply, is raised at once: the write may have
  landed, as for any lost answer (redis-py would send it again).

Errors are redis-py's exception types, so ``connection.translate`` maps them as before. A
connection goes back to its free list only after a whole exchange; one interrupted (a
``gevent.Timeout``, a greenlet killed) is closed. Works under gevent (the sockets are the
patched ones) and with plain threads: a connection is used by one caller at a time.
"""
from __future__ import annotations

import os
import socket
import time
import weakref

import hiredis
import redis
from redis.crc import key_slot

from .connection import TIMEOUT_S, refresh

REDIRECTS = 5
MAX_IDLE = 32  # idle connections kept per master; more are closed when handed back
_RETRY_LATER = ("CLUSTERDOWN", "TRYAGAIN", "LOADING", "MASTERDOWN", "READONLY")  # refused: nothing ran
_REDIRECT_OR_LATER = ("MOVED ", "ASK ") + _RETRY_LATER


class _Link:
    """One connection to one Redis node, with its reply parser."""

    __slots__ = ("sock", "reader", "used")

    def __init__(self, host: str, port: int):
        self.sock = socket.create_connection((host, port), TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = hiredis.Reader(encoding="utf-8")
        self.used = False  # False until its first whole exchange: a fresh link is never retried

    def exchange(self, data: bytes, n: int) -> list:
        """Send ``data``, return the next ``n`` replies (error replies as ``hiredis.ReplyError`` values,
        in place). Raises ``_Stale`` when a reused link turns out closed before any reply byte."""
        out, reader, recv, got = [], self.reader, self.sock.recv, False
        try:
            self.sock.sendall(data)
            while len(out) < n:  # bounded: each pass takes a reply or waits (TIMEOUT_S at most) for bytes
                reply = reader.gets()
                if reply is False:
                    chunk = recv(65536)
                    if not chunk:
                        raise ConnectionResetError("Redis closed the connection")
                    got = True
                    reader.feed(chunk)
                else:
                    out.append(reply)
        except (ConnectionResetError, BrokenPipeError):
            if self.used and not got:
                raise _Stale() from None
            raise
        except hiredis.ProtocolError as exc:  # not Redis speaking: the link is lost, as a reset would be
            raise ConnectionAbortedError(f"Redis's reply could not be read: {exc}") from None
        self.used = True
        return out

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class _Stale(Exception):
    """A reused connection was closed before any reply byte came: nothing ran, try a fresh one."""


class _NotSent(redis.ConnectionError):
    """Nothing was sent: no connection could be made, or no master is known for the slot."""


class Direct:
    """Calls on the masters of ``client``'s topology (a ``RedisCluster``), or on its one server.

    ``call(key, *args)`` runs one command on ``key``'s master and returns its reply (an error reply
    raised as ``redis.ResponseError``); ``execute([(key, args), ...])`` runs a batch, pipelined per
    master, and returns one reply or exception per command, in order.
    """

    def __init__(self, client, is_cluster: bool, retries: int = 3):
        self.client = client
        self.nodes = client.nodes_manager if is_cluster else None
        if is_cluster:
            self.single = None
        else:
            kw = client.connection_pool.connection_kwargs
            self.single = (kw.get("host", "127.0.0.1"), kw.get("port", 6379))
        self.retries = retries
        self._slots: dict[str, int] = {}
        self._free: dict[tuple, list] = {}
        self._closed = False
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: ref() is not None and ref()._forget())

    # -- one call --------------------------------------------------------------
    def call(self, key: str, *args):
        """The common case in one straight line: a pooled link to the master, one exchange. Anything
        else that is sure not to have run (a redirect, a retry-later reply, a stale or refused
        connection) goes through ``execute``'s handling."""
        address = self._address(key)
        packed = hiredis.pack_command(args)
        link = None
        try:
            link = self._take(address)
            reply = self._talk(link, packed, 1)[0]
        except (_Stale, OSError) as exc:
            if isinstance(exc, _Stale) or link is None:
                reply = self.execute([(key, args)])[0]  # nothing ran: the careful path from the start
            else:
                reply = _lost(address, exc)
                refresh(self.client)
        else:
            self._give(address, link)
            if type(reply) is hiredis.ReplyError:
                text = str(reply)
                reply = (self.execute([(key, args)])[0] if text.startswith(_REDIRECT_OR_LATER)
                         else redis.ResponseError(text))
        if isinstance(reply, Exception):
            raise reply
        return reply

    def execute(self, commands: list) -> list:
        """Run ``commands`` (``(key, args)`` pairs); one reply or redis-py exception each, in order.
        Commands on one master go in one write and keep their order; a redirected or retried one
        goes again after the others of its round (a route's commands share a slot: they move together)."""
        packed = [hiredis.pack_command(args) for _, args in commands]
        out: list = [None] * len(commands)
        todo = [(i, self._address(key), False) for i, (key, _) in enumerate(commands)]
        waits = redirects = 0
        while todo:  # bounded: each round either finishes, redirects (REDIRECTS) or waits (retries)
            again, wait, moved, lost = [], None, False, False
            for address, items in _by_address(todo).items():
                for (i, _, asking), reply in zip(items, self._exchange(address, items, packed)):
                    if not isinstance(reply, Exception):
                        out[i] = reply
                        continue
                    text = str(reply)
                    if isinstance(reply, hiredis.ReplyError):
                        if text.startswith(("MOVED ", "ASK ")) and redirects < REDIRECTS:
                            moved = True
                            again.append((i, _redirect_address(text), text.startswith("ASK ")))
                            continue
                        if text.startswith(_RETRY_LATER) and waits < self.retries:
                            wait = wait or reply
                            again.append((i, None, False))
                            continue
                        out[i] = redis.ResponseError(text)
                    elif isinstance(reply, _NotSent) and waits < self.retries:
                        wait = wait or reply
                        again.append((i, None, False))
                    else:  # lost midway (it may have run), or out of retries
                        out[i], lost = reply, True
            if moved or lost or wait is not None:
                refresh(self.client)
            if wait is not None:
                time.sleep(min(0.5, 0.05 * 2 ** (waits + 1)))
                waits += 1
            elif moved:
                redirects += 1
            todo = [(i, address or self._address(commands[i][0]), asking)
                    for i, address, asking in again]
        return out

    # -- connections -------------------------------------------------------------
    def _address(self, key: str) -> tuple:
        """``key``'s master now, as ``(host, port)`` (redis-py's topology: refreshed elsewhere)."""
        if self.nodes is None:
            return self.single
        slot = self._slots.get(key)
        if slot is None:
            if len(self._slots) > 100_000:  # a bound: keys are routes' meta keys, but never grow without one
                self._slots.clear()
            slot = self._slots[key] = key_slot(key.encode())
        try:
            node = self.nodes.slots_cache[slot][0]
        except (KeyError, IndexError, TypeError):
            return ("", slot)  # no master known for the slot: _exchange reports it, the retry refreshes
        return (node.host, node.port)

    def _exchange(self, address: tuple, items: list, packed: list) -> list:
        """Send ``items``' commands to ``address`` in one write and read their replies; a failure
        to connect is a ``redis.ConnectionError`` per item (retried), one later is raised to all."""
        if not address[0]:
            return [_NotSent(f"no master is known for slot {address[1]} (the cluster is down)")] * len(items)
        data = b"".join((b"*1\r\n$6\r\nASKING\r\n" if asking else b"") + packed[i] for i, _, asking in items)
        n = len(items) + sum(1 for _, _, asking in items if asking)
        for _ in range(2):  # a stale reused link, then a fresh one
            try:
                link = self._take(address)
            except OSError as exc:
                return [_NotSent(f"Redis at {address[0]}:{address[1]}: {exc}")] * len(items)
            try:
                replies = self._talk(link, data, n)
            except _Stale:
                continue
            except OSError as exc:
                return [_lost(address, exc)] * len(items)
            self._give(address, link)
            if n != len(items):  # drop each ASKING's +OK
                replies = _without_asking(items, replies)
            return replies
        return [redis.ConnectionError(f"Redis at {address[0]}:{address[1]} closed fresh connections")] * len(items)

    @staticmethod
    def _talk(link: _Link, data: bytes, n: int) -> list:
        """One exchange on ``link``; on any failure the link is closed (its stream is unknown)."""
        try:
            return link.exchange(data, n)
        except BaseException:
            link.close()
            raise

    def _take(self, address: tuple) -> _Link:
        try:
            return self._free[address].pop()
        except (KeyError, IndexError):  # none idle (or another thread took the last one)
            return _Link(*address)

    def _forget(self) -> None:
        """In a forked child: the parent's sockets are not this process's to use (nor to close)."""
        self._free = {}

    def _give(self, address: tuple, link: _Link) -> None:
        free = self._free.setdefault(address, [])
        if self._closed or len(free) >= MAX_IDLE:
            link.close()
        else:
            free.append(link)

    def close(self) -> None:
        self._closed = True
        for free in self._free.values():
            while free:
                free.pop().close()


def _by_address(todo: list) -> dict:
    groups: dict = {}
    for item in todo:
        groups.setdefault(item[1], []).append(item)
    return groups


def _lost(address: tuple, exc: OSError) -> redis.RedisError:
    """A connection lost (or timed out) after the command was sent: it may have run."""
    kind = redis.TimeoutError if isinstance(exc, socket.timeout) else redis.ConnectionError
    return kind(f"Redis at {address[0]}:{address[1]}: {type(exc).__name__}: {exc}")


def _redirect_address(text: str) -> tuple:
    """``MOVED 3999 127.0.0.1:6381`` -> ``("127.0.0.1", 6381)``."""
    host, _, port = text.split(" ")[2].rpartition(":")
    return (host, int(port))


def _without_asking(items: list, replies: list) -> list:
    out, j = [], 0
    for _, _, asking in items:
        j += asking  # skip the +OK (or the error) of its ASKING
        out.append(replies[j])
        j += 1
    return out
