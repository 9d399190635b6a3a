"""The log's kernels (CRC, LogFile, binary incr records, scan) and the writer's records
(Entity, Message, Ring, WriteLock): the compiled core against its pure twin."""
from __future__ import annotations

import os
import struct
import threading
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ocean._core as compiled
import ocean._reference as pure
from ocean.errors import InvalidAmount, StorageError


@pytest.fixture(params=[compiled, pure], ids=["compiled", "pure"])
def impl(request):
    return request.param


@given(st.binary(max_size=300), st.integers(0, 2**32 - 1))
@settings(max_examples=300)
def test_crc32_is_zlibs(data, start):
    assert compiled.crc32(data, start) == zlib.crc32(data, start) == pure.crc32(data, start)


def test_crc32c_is_castagnolis():
    # the check value of CRC-32C (RFC 3720's polynomial) and a zero-filled 32-byte block (RFC 3720 B.4)
    for kernel in (compiled, pure):
        assert kernel.crc32c(b"123456789") == 0xE3069283
        assert kernel.crc32c(bytes(32)) == 0x8A9136AA
        assert kernel.crc32c(b"") == 0
    assert compiled.crc32c(b"123456789", software=True) == 0xE3069283


@given(st.binary(max_size=300), st.binary(max_size=40), st.integers(0, 2**32 - 1))
@settings(max_examples=300)
def test_crc32c_hardware_software_and_twin_agree(data, more, start):
    want = pure.crc32c(data, start)
    assert compiled.crc32c(data, start) == compiled.crc32c(data, start, software=True) == want
    assert compiled.crc32c(more, compiled.crc32c(data)) == compiled.crc32c(data + more)  # continues


def test_the_log_writes_crc32c_frames(impl, tmp_path):
    fd = os.open(tmp_path / "seg", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        log = impl.LogFile(fd, 0, lambda fd_, size: os.posix_fallocate(fd_, 0, size))
        body = b'["e",1]'
        log.append(body)
        log.close()
    finally:
        os.close(fd)
    n, crc = struct.unpack_from("<II", (tmp_path / "seg").read_bytes())
    assert n == len(body) and crc == compiled.crc32c(body) != zlib.crc32(body)


names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
amounts = st.one_of(st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False))


@given(st.integers(0, 2**62), st.integers(0, 2**62), names, names,
       st.dictionaries(names, amounts, min_size=1, max_size=20), st.none() | names)
@settings(max_examples=200)
def test_incr_records_are_the_same_bytes_and_round_trip(seq, ms, route, key, incs, source):
    body = compiled.encode_incr(seq, ms, route, key, incs, source)
    assert body == pure.encode_incr(seq, ms, route, key, incs, source)
    op = ["i", seq, ms, route, key, None, incs, 0, source]
    assert compiled.decode_incr(body) == pure.decode_incr(body) == op
    for cut in (1, len(body) // 2, len(body) - 1):
        for kernel in (compiled, pure):
            with pytest.raises(ValueError):
                kernel.decode_incr(body[:cut])


sketch_values = st.lists(st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
                                   st.integers(-2**63, 2**63 - 1),
                                   st.floats(allow_nan=False, allow_infinity=False)), max_size=6)


@given(st.integers(0, 2**62), st.integers(0, 2**62), names, names,
       st.dictionaries(names, st.one_of(amounts, sketch_values), min_size=1, max_size=8).filter(
           lambda d: any(type(v) is list for v in d.values())), st.none() | names)
@settings(max_examples=200)
def test_incr_records_with_sketch_adds_are_the_same_bytes_and_round_trip(seq, ms, route, key, incs, source):
    """A sketch add's value list rides in the record as an ``l`` entry (``_log.pxi``)."""
    body = compiled.encode_incr(seq, ms, route, key, incs, source)
    assert body is not None and body == pure.encode_incr(seq, ms, route, key, incs, source)
    op = ["i", seq, ms, route, key, None, incs, 0, source]
    got = compiled.decode_incr(body)
    assert got == pure.decode_incr(body) == op
    assert [type(v) for vs in got[6].values() if type(vs) is list for v in vs] == \
        [type(v) for vs in incs.values() if type(vs) is list for v in vs]  # 5 stays an int, 5.0 a float
    for cut in (1, len(body) // 2, len(body) - 1):
        for kernel in (compiled, pure):
            with pytest.raises(ValueError):
                kernel.decode_incr(body[:cut])


def test_sketch_adds_without_a_binary_form_are_left_to_json(impl):
    for adds in ({"%ms": [[2.5, 3]]}, {"~v": [{"sketch": "AA=="}]}, {"~v": [True]}, {"~v": [2**64]},
                 {"%ms": [float("inf")]}, {"~v": ["x"], "n": "text"}):
        assert impl.encode_incr(1, 2, "r", "k", adds) is None
    body = impl.encode_incr(1, 2, "r", "k", {"~v": ["x"]})
    assert body.endswith(b"l\x01\x00\x00\x00s\x01\x00x")
    bad = body[:-4] + b"q" + body[-3:]  # an unknown value type
    for kernel in (compiled, pure):
        with pytest.raises(ValueError, match="unknown value type"):
            kernel.decode_incr(bad)


def test_incr_record_refuses_bad_amounts_like_the_twin(impl):
    with pytest.raises(InvalidAmount):
        impl.encode_incr(1, 1, "r", "k", {"n": True})
    with pytest.raises(InvalidAmount):
        impl.encode_incr(1, 1, "r", "k", {"n": float("nan")})
    assert impl.encode_incr(1, 1, "r", "k", {"n": 1}, source=7) is None  # not a str: logged as JSON instead


def _framed(body: bytes, crc=compiled.crc32c) -> bytes:
    return struct.pack("<II", len(body), crc(body)) + body


def test_scan_records_finds_the_end_and_what_is_wrong(impl):
    a, b = b'["e",1]', compiled.encode_incr(2, 3, "r", "k", {"n": 1})
    good = _framed(a) + _framed(b)
    assert impl.scan_records(good) == ([a, b], len(good), None)
    assert impl.scan_records(good + bytes(4096)) == ([a, b], len(good), None)  # reserved room: the clean end
    torn = good + _framed(b'["e",3]')[:-2]
    assert impl.scan_records(torn) == ([a, b], len(good), "body cut short")
    flipped = bytearray(good)
    flipped[10] ^= 1
    assert impl.scan_records(bytes(flipped)) == ([], 0, "checksum mismatch")
    assert impl.scan_records(good + b"\x01\x00\x00") == ([a, b], len(good), "header cut short")
    legacy = _framed(a, zlib.crc32) + _framed(b, zlib.crc32)  # written before CRC-32C
    assert impl.scan_records(legacy + good) == ([a, b, a, b], 2 * len(good), None)
    flipped = bytearray(legacy)
    flipped[10] ^= 1
    assert impl.scan_records(bytes(flipped)) == ([], 0, "checksum mismatch")
    assert impl.scan_records(b"") == ([], 0, None)


def test_logfile_appends_through_the_map_and_gives_back_its_room(impl, tmp_path):
    path = tmp_path / "seg.log"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    asked = []

    def reserve(fd_, length):
        asked.append(length)
        os.posix_fallocate(fd_, 0, length)

    log = impl.LogFile(-1, 0, reserve)
    log.switch(fd, 0)
    assert log.append(b"[1]") == 1 and log.append_many([b"[2]", b"[3]"]) == 3
    assert log.size == 33 and log.appended == 3 and log.since_snapshot == 3
    assert os.path.getsize(path) >= impl.RESERVE_CHUNK  # room reserved ahead, zero-filled
    log.release_room()
    assert path.read_bytes() == _framed(b"[1]") + _framed(b"[2]") + _framed(b"[3]")
    log.append(b"[4]")  # reserves again
    assert len(asked) == 2
    log.close()
    os.close(fd)
    assert impl.scan_records(path.read_bytes())[0] == [b"[1]", b"[2]", b"[3]", b"[4]"]


def test_logfile_takes_just_what_it_needs_then_refuses_without_writing(impl, tmp_path):
    path = tmp_path / "seg.log"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    room = [8192]

    def reserve(fd_, length):
        if length > room[0]:
            raise OSError(28, "No space left on device")
        os.posix_fallocate(fd_, 0, length)

    log = impl.LogFile(-1, 0, reserve)
    log.switch(fd, 0)
    log.append(b"[" + b"1" * 5000 + b"]")  # the 4 MiB chunk is refused; one page more is taken
    with pytest.raises(StorageError, match="No space"):
        log.append(b"[" + b"2" * 5000 + b"]")
    assert log.appended == 1
    with pytest.raises(StorageError):
        log.append_many([b"[3]", b"[" + b"4" * 5000 + b"]"])  # all or nothing
    assert log.appended == 1
    log.close()
    os.close(fd)
    assert len(impl.scan_records(path.read_bytes())[0]) == 1


def test_ring_is_capped_by_count_and_bytes(impl):
    ring = impl.Ring(3, 10, 1000)
    for seq in range(11, 16):
        ring.append(impl.Message(seq, "r", None, "event", {"i": seq}, 0, "ab" * 8, 10))
    assert [m.seq for m in ring.messages] == [13, 14, 15] and ring.forgotten == 12 and ring.bytes == 30
    ring.append(impl.Message(16, "r", None, "event", {}, 0, "ab" * 8, 990))
    assert [m.seq for m in ring.messages] == [15, 16] and ring.forgotten == 14 and ring.bytes == 1000
    ring.append(impl.Message(17, "r", None, "event", {}, 0, "ab" * 8, 5000))  # the newest always stays
    assert [m.seq for m in ring.messages] == [17] and len(ring) == 1 and ring.appended == 7


def test_messages_encode_alike():
    args = (5, "a/b", "k", "incr", {"n": 2, "é": 1.5}, 1767225600123, "0123456789abcdef", 40)
    c, p = compiled.Message(*args), pure.Message(*args)
    assert c.data == p.data and c.json() == p.json() and c.sse() == p.sse()
    assert c.drop_id == p.drop_id == "01234567-89ab-cdef-0000-000000000005"
    assert compiled.Message(6, "e", None, "event", [1], 0, "0" * 16).data["_value"] == [1]


def test_entity_records_alike():
    row = [{"a": 1}, None, 1, 2, 3, 0]
    c, p = compiled.Entity.from_row(row), pure.Entity.from_row(row)
    assert c.to_row() == p.to_row() == row
    t = c.touched(9)
    assert t.to_row() == [{"a": 1}, None, 1, 9, 4, 0] and t.fields is c.fields and c.updated_ms == 2


def test_write_lock_excludes_threads_and_refuses_a_stray_release():
    lock = compiled.WriteLock()
    with pytest.raises(RuntimeError):
        lock.release()
    total = [0]

    def work():
        for _ in range(2000):
            with lock:
                v = total[0]
                total[0] = v + 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert total[0] == 8000 and not lock.locked()
    assert lock.acquire(False) and not lock.acquire(False)
    lock.release()
