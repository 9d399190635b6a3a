"""Pure twin of ``_log.pxi``: CRC-32C and CRC-32, the memory-mapped segment appender, the binary
incr record and the record scanner (see the ``.pxi`` for the formats)."""
from __future__ import annotations

import math
import mmap
import os
import struct
import zlib

from ..errors import StorageError
from .counters import _check

MAX_RECORD = 256 << 20
RESERVE_CHUNK = 4 << 20
_HEADER = struct.Struct("<II")
_INCR_HEAD = struct.Struct("<cBIqq")  # 'I', flags, nfields, seq, ms
_U16 = struct.Struct("<H")


def crc32(data, value: int = 0) -> int:
    """CRC-32 exactly as ``zlib.crc32``: the checksum of older logs."""
    return zlib.crc32(data, value)


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()
CRC32C_HARDWARE = False


def crc32c(data, value: int = 0, software: bool = False) -> int:
    """CRC-32C (Castagnoli) of ``data`` continuing from ``value``: the log's checksum."""
    crc, table = value ^ 0xFFFFFFFF, _CRC32C
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class LogFile:
    """Appends framed records to one segment file through a shared memory map."""

    def __init__(self, fd: int, size: int, reserve):
        self.fd = fd
        self.size = size
        self.mapped = 0
        self.appended = 0
        self.since_snapshot = 0
        self.switches = 0
        self._reserve = reserve
        self._map: mmap.mmap | None = None

    def _unmap(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
            self.mapped = 0

    def _room(self, n: int) -> None:
        if self.size + n <= self.mapped:
            return
        if self.fd < 0:
            raise StorageError("the log is closed")
        want = (self.size + n + RESERVE_CHUNK + 4095) & ~4095
        try:
            self._reserve(self.fd, want)
        except OSError:
            want = (self.size + n + 4095) & ~4095
            try:
                self._reserve(self.fd, want)
            except OSError as exc:
                raise StorageError(f"ocean could not write its log ({exc.strerror or exc}); "
                                   f"nothing was acknowledged") from None
        self._unmap()
        self._map = mmap.mmap(self.fd, want, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.mapped = want

    def _put(self, body: bytes) -> None:
        end = self.size + 8 + len(body)
        self._map[self.size:end] = _HEADER.pack(len(body), crc32c(body)) + body
        self.size = end
        self.appended += 1
        self.since_snapshot += 1

    def append(self, body: bytes) -> int:
        self._room(len(body) + 8)
        self._put(body)
        return self.appended

    def append_many(self, bodies: list) -> int:
        self._room(sum(len(b) + 8 for b in bodies))
        for body in bodies:
            self._put(body)
        return self.appended

    def switch(self, fd: int, size: int) -> None:
        self._unmap()
        self.fd = fd
        self.size = size
        self.switches += 1

    def release_room(self) -> None:
        self._unmap()
        if self.fd >= 0:
            os.ftruncate(self.fd, self.size)

    def close(self) -> None:
        self.release_room()
        self.fd = -1


def _str(s: str) -> bytes:
    b = s.encode("utf-8")
    if len(b) > 65535:
        raise OverflowError
    return _U16.pack(len(b)) + b


def _value(v) -> bytes | None:
    """One value of an ``l`` entry (a sketch add), or None if it has no binary form."""
    t = type(v)
    if t is str:
        return b"s" + _str(v)
    if t is int:
        return b"i" + struct.pack("<q", v) if -(1 << 63) <= v < (1 << 63) else None
    if t is float:
        return b"f" + struct.pack("<d", v) if math.isfinite(v) else None
    return None


def _head(seq: int, ms: int, route: str, key: str, amounts: dict, source) -> list:
    """An incr record's head: the fixed fields, the route, the key and the source if any."""
    parts = [_INCR_HEAD.pack(b"I", 1 if source is not None else 0, len(amounts), seq, ms), _str(route), _str(key)]
    if source is not None:
        parts.append(_str(source))
    return parts


def _encode_adds(seq: int, ms: int, route: str, key: str, amounts: dict, source) -> bytes | None:
    """An incr record with sketch adds: numbers as ``i``/``f`` entries, value lists as ``l``."""
    try:
        parts = _head(seq, ms, route, key, amounts, source)
        for name, amount in amounts.items():
            if type(name) is not str:
                return None
            parts.append(_str(name))
            if type(amount) is list:
                parts.append(b"l" + struct.pack("<I", len(amount)))
                for v in amount:
                    one = _value(v)
                    if one is None:
                        return None
                    parts.append(one)
            else:
                one = _value(amount)
                if one is None or one[:1] == b"s":
                    return None
                parts.append(one)
    except OverflowError:
        return None
    return b"".join(parts)


def encode_incr(seq: int, ms: int, route: str, key: str, amounts: dict, source=None):
    """The binary body of ``["i", seq, ms, route, key, None, amounts, 0, source]``, or None."""
    if source is not None and type(source) is not str:
        return None
    if any(type(a) is list for a in amounts.values()):
        return _encode_adds(seq, ms, route, key, amounts, source)
    try:
        parts = _head(seq, ms, route, key, amounts, source)
        for name, amount in amounts.items():
            if type(name) is not str:
                return None
            _check(amount, name)
            parts.append(_str(name))
            parts.append(b"i" + struct.pack("<q", amount) if type(amount) is int else b"f" + struct.pack("<d", amount))
    except OverflowError:
        return None
    return b"".join(parts)


def _get_str(body: bytes, pos: int) -> tuple[str, int]:
    if pos + 2 > len(body):
        raise ValueError("incr record cut short")
    n = _U16.unpack_from(body, pos)[0]
    if pos + 2 + n > len(body):
        raise ValueError("incr record cut short")
    return body[pos + 2:pos + 2 + n].decode("utf-8"), pos + 2 + n


def decode_incr(body: bytes) -> list:
    """The op list of a binary incr record body; ValueError if it is not one."""
    if len(body) < _INCR_HEAD.size or body[:1] != b"I" or body[1] > 1:
        raise ValueError("not an incr record")
    _, flags, n, seq, ms = _INCR_HEAD.unpack_from(body, 0)
    pos = _INCR_HEAD.size
    route, pos = _get_str(body, pos)
    key, pos = _get_str(body, pos)
    source = None
    if flags:
        source, pos = _get_str(body, pos)
    incs = {}
    for _ in range(n):
        name, pos = _get_str(body, pos)
        if body[pos:pos + 1] == b"l":  # a sketch add's values
            if pos + 5 > len(body):
                raise ValueError("incr record cut short")
            count = struct.unpack_from("<I", body, pos + 1)[0]
            pos += 5
            values = []
            for _ in range(count):
                kind = body[pos:pos + 1]
                if kind == b"s":
                    v, pos = _get_str(body, pos + 1)
                elif kind in (b"i", b"f"):
                    if pos + 9 > len(body):
                        raise ValueError("incr record cut short")
                    v = struct.unpack_from("<q" if kind == b"i" else "<d", body, pos + 1)[0]
                    pos += 9
                elif not kind:
                    raise ValueError("incr record cut short")
                else:
                    raise ValueError("incr record holds an unknown value type")
                values.append(v)
            incs[name] = values
            continue
        if pos + 9 > len(body):
            raise ValueError("incr record cut short")
        kind = body[pos:pos + 1]
        if kind == b"i":
            incs[name] = struct.unpack_from("<q", body, pos + 1)[0]
        elif kind == b"f":
            incs[name] = struct.unpack_from("<d", body, pos + 1)[0]
        else:
            raise ValueError("incr record holds an unknown amount type")
        pos += 9
    if pos != len(body):
        raise ValueError("incr record has trailing bytes")
    return ["i", seq, ms, route, key, None, incs, 0, source]


def scan_records(data, start: int = 0):
    """Split framed records from ``start``: ``(bodies, end, problem)`` (see the ``.pxi``)."""
    data = bytes(data)
    bodies, pos, size, problem = [], start, len(data), None
    while pos < size:
        if pos + 8 > size:
            problem = "header cut short"
            break
        n, crc = _HEADER.unpack_from(data, pos)
        if n == 0 or n > MAX_RECORD:
            problem = f"impossible length {n}"
            break
        if pos + 8 + n > size:
            problem = "body cut short"
            break
        body = data[pos + 8:pos + 8 + n]
        if crc32c(body) != crc and zlib.crc32(body) != crc:
            problem = "checksum mismatch"  # neither CRC-32C nor (older logs) CRC-32
            break
        bodies.append(body)
        pos += 8 + n
    if problem is not None and not data[pos:].strip(b"\0"):
        problem = None
    return bodies, pos, problem


