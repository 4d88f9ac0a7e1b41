# SPDX-License-Identifier: MIT
"""AEDAT 3.1 reader/writer: round trips, a third-party reader as independent
truth, hand-built files, and malformed input."""
from __future__ import annotations

import datetime as dt
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysg.events import EVENT_DTYPE, EventFileError, make_events
from pysg.io.aedat31 import read_aedat31, read_aedat31_header, write_aedat31

START = dt.datetime(2017, 5, 4, 14, 7, 20, tzinfo=dt.timezone(dt.timedelta(hours=2)))
HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"
PKT = struct.Struct("<hhiiiiii")


def random_events(rng: np.random.Generator, n: int, t_max: int, width: int = 128, height: int = 128) -> np.ndarray:
    return make_events(rng.integers(0, width, n), rng.integers(0, height, n),
                       np.sort(rng.integers(0, t_max, n)), rng.integers(0, 2, n))


def packet(ev_type: int, payload: bytes, number: int, *, size: int = 8, ts_offset: int = 4, overflow: int = 0,
           capacity: int | None = None, source: int = 1) -> bytes:
    """A packet header (valid count = number) followed by ``payload``."""
    capacity = number if capacity is None else capacity
    return PKT.pack(ev_type, source, size, ts_offset, overflow, capacity, number, number) + payload


def polarity(x: int, y: int, p: int, ts: int, valid: int = 1) -> bytes:
    return struct.pack("<Ii", (x << 17) | (y << 2) | (p << 1) | valid, ts)


def special(kind: int, ts: int, data: int = 0) -> bytes:
    # cAER special event: bit 0 valid, bits 1..7 type, bits 8..31 data.
    return struct.pack("<Ii", (data << 8) | (kind << 1) | 1, ts)


def walk_packets(raw: bytes, start: int) -> list[tuple[int, tuple]]:
    """Independent packet walk for structure checks: [(offset, header fields)]."""
    out = []
    pos = start
    while pos < len(raw):
        fields = PKT.unpack_from(raw, pos)
        out.append((pos, fields))
        pos += PKT.size + fields[2] * fields[5]
    assert pos == len(raw)
    return out


# --------------------------------------------------------------------------- #
# Round trips
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("n, t_max, packet_events", [
    (0, 1, 4096),
    (1, 1000, 4096),
    (5000, 10**7, 4096),
    (5000, 2**34, 4096),   # TSOverflow up to 7
    (3000, 2**33, 7),      # many small packets
])
def test_round_trip(tmp_path, n, t_max, packet_events):
    ev = random_events(np.random.default_rng(n + packet_events), n, t_max)
    path = tmp_path / "rt.aedat"
    write_aedat31(path, ev, packet_events=packet_events, start_time=START)
    got = read_aedat31(path)
    assert got.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(got, ev)


def test_round_trip_overflow_boundaries(tmp_path):
    edges = [0, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 1, 2**32, 5 * 2**31 + 17, 2**62 - 1]
    ev = make_events([0, 127, 1, 2, 3, 4, 5, 6], [127, 0, 1, 2, 3, 4, 5, 6], edges, [1, 0, 1, 0, 1, 0, 1, 0])
    path = tmp_path / "edges.aedat"
    write_aedat31(path, ev, start_time=START)
    np.testing.assert_array_equal(read_aedat31(path), ev)


def test_packets_never_straddle_an_overflow(tmp_path):
    rng = np.random.default_rng(1)
    ev = random_events(rng, 4000, 2**33)
    path = tmp_path / "p.aedat"
    write_aedat31(path, ev, packet_events=100, start_time=START)
    raw = path.read_bytes()
    start = read_aedat31_header(path)["data_offset"]
    i = 0
    for pos, (ev_type, source, size, ts_off, overflow, cap, number, valid) in walk_packets(raw, start):
        assert (ev_type, source, size, ts_off) == (1, 1, 8, 4)
        assert 0 < number == cap == valid <= 100
        assert np.all(ev["t"][i:i + number] >> 31 == overflow)
        i += number
    assert i == ev.size


def test_header_lines(tmp_path):
    path = tmp_path / "h.aedat"
    write_aedat31(path, random_events(np.random.default_rng(2), 10, 100), start_time=START)
    raw = path.read_bytes()
    assert raw.startswith(b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n")
    header = read_aedat31_header(path)
    assert header["lines"] == ["#!AER-DAT3.1", "#Format: RAW", "#Source 1: DVS128",
                               "#Start-Time: 2017-05-04 14:07:20 (TZ+0200)", "#!END-HEADER"]
    assert header["format"] == "RAW"
    assert header["sources"] == {1: "DVS128"}
    assert header["start_time"] == "2017-05-04 14:07:20 (TZ+0200)"
    assert raw[header["data_offset"] - 14:header["data_offset"]] == b"#!END-HEADER\r\n"


def test_writer_is_deterministic(tmp_path):
    ev = random_events(np.random.default_rng(3), 500, 2**32)
    write_aedat31(tmp_path / "a.aedat", ev, start_time=START)
    write_aedat31(tmp_path / "b.aedat", ev, start_time=START)
    assert (tmp_path / "a.aedat").read_bytes() == (tmp_path / "b.aedat").read_bytes()


def test_writer_source_id_and_large_sensor(tmp_path):
    ev = make_events([345], [259], [7], [1])
    path = tmp_path / "davis.aedat"
    write_aedat31(path, ev, width=346, height=260, source_id=3, start_time=START)
    assert read_aedat31_header(path)["sources"] == {3: "DVS 346x260"}
    np.testing.assert_array_equal(read_aedat31(path), ev)


@pytest.mark.parametrize("events, kwargs, match", [
    (make_events([0, 1], [0, 0], [5, 4], [0, 1]), {}, "not sorted"),
    (make_events([128], [0], [0], [0]), {}, "x=128"),
    (make_events([0], [64], [0], [0]), {"height": 64}, "y=64"),
    (make_events([0], [0], [0], [2]), {}, "p=2"),
    (make_events([0], [0], [-1], [0]), {}, "negative t"),
    (make_events([0], [0], [2**62], [0]), {}, "eventTSOverflow"),
    (make_events([0], [0], [0], [0]), {"packet_events": 0}, "packet_events"),
    (make_events([0], [0], [0], [0]), {"width": 0}, "width"),
    (make_events([0], [0], [0], [0]), {"source_id": -1}, "source_id"),
    (np.zeros(3, dtype=[("x", "u2"), ("y", "u2"), ("t", "i8")]), {}, "missing p"),
])
def test_writer_rejects(tmp_path, events, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_aedat31(tmp_path / "bad.aedat", events, **kwargs)


# --------------------------------------------------------------------------- #
# Independent truth: a third-party reader
# --------------------------------------------------------------------------- #
def evutils_read(path) -> np.ndarray:
    """Read with evutils and return EVENT_DTYPE.

    evutils quirk: its AEDAT 3.1 read_all() stops at the first special-event
    packet holding external-trigger events unless ext_trigger=True (that packet
    yields an empty event chunk, which ends the drain loop). So read with
    triggers on and drop them.
    """
    evutils_io = pytest.importorskip("evutils.io", reason="evutils is the independent AEDAT 3.1 reader")
    events, _triggers = evutils_io.EventReader(str(path), mode="all", ext_trigger=True).read_all()
    return make_events(events.x, events.y, events.t, events.p)


@pytest.mark.parametrize("seed, n, t_max, packet_events", [
    (10, 20000, 10**8, 4096),
    (11, 20000, 2**35, 4096),   # beyond 2^31 µs: several TSOverflow values
    (12, 3000, 2**33, 13),
])
def test_evutils_reads_our_files(tmp_path, seed, n, t_max, packet_events):
    ev = random_events(np.random.default_rng(seed), n, t_max)
    path = tmp_path / "third_party.aedat"
    write_aedat31(path, ev, packet_events=packet_events, start_time=START)
    theirs = evutils_read(path)
    assert theirs.size == ev.size
    for field in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(theirs[field], ev[field], err_msg=field)


def test_evutils_reads_our_empty_file(tmp_path):
    path = tmp_path / "empty.aedat"
    write_aedat31(path, np.empty(0, dtype=EVENT_DTYPE), start_time=START)
    assert evutils_read(path).size == 0
    assert read_aedat31(path).size == 0


# --------------------------------------------------------------------------- #
# Hand-built files
# --------------------------------------------------------------------------- #
def hand_built() -> tuple[bytes, np.ndarray, np.ndarray]:
    """A file mixing packet types, with the events expected with and without
    invalid ones."""
    body = packet(1, polarity(1, 2, 1, 10) + polarity(3, 4, 0, 20), 2)
    # Special events: a timestamp reset (type 1) and an external input rising
    # edge (type 2). They carry no polarity events.
    body += packet(0, special(1, 21) + special(2, 25, data=7), 2)
    # Polarity packet with an invalid event and capacity > number: the unused
    # slot holds garbage that must not be decoded.
    body += packet(1, polarity(5, 6, 1, 30) + polarity(7, 8, 0, 40, valid=0) + polarity(9, 10, 1, 50)
                   + polarity(99, 99, 1, 99), 3, capacity=4)
    # A frame-sized packet (type 2, 36-byte slots) and an IMU6 packet (type 3).
    body += packet(2, bytes(range(72)), 1, size=36, ts_offset=8, capacity=2)
    body += packet(3, b"\xab" * 36, 1, size=36, ts_offset=4)
    # Another source and a TSOverflow of 3.
    body += packet(1, polarity(127, 127, 0, 5), 1, overflow=3, source=2)
    # An empty polarity packet.
    body += packet(1, b"", 0)
    every = make_events([1, 3, 5, 7, 9, 127], [2, 4, 6, 8, 10, 127],
                        [10, 20, 30, 40, 50, (3 << 31) | 5], [1, 0, 1, 0, 1, 0])
    valid = every[[0, 1, 2, 4, 5]]
    return HEADER + body, every, valid


def test_hand_built_file(tmp_path):
    raw, every, valid = hand_built()
    path = tmp_path / "hand.aedat"
    path.write_bytes(raw)
    np.testing.assert_array_equal(read_aedat31(path), valid)
    np.testing.assert_array_equal(read_aedat31(path, include_invalid=True), every)
    np.testing.assert_array_equal(evutils_read(path), valid)


def test_header_tolerates_lf_and_unknown_lines(tmp_path):
    body = packet(1, polarity(1, 1, 1, 1), 1)
    path = tmp_path / "lf.aedat"
    path.write_bytes(b"#!AER-DAT3.1\n#Source 1: DVS128\n#Some other comment: x\n#!END-HEADER\n" + body)
    np.testing.assert_array_equal(read_aedat31(path), make_events([1], [1], [1], [1]))
    assert read_aedat31_header(path)["format"] == "RAW"


# --------------------------------------------------------------------------- #
# Malformed input
# --------------------------------------------------------------------------- #
def test_missing_file(tmp_path):
    path = tmp_path / "nope.aedat"
    with pytest.raises(FileNotFoundError, match="nope.aedat"):
        read_aedat31(path)


@pytest.mark.parametrize("content, match", [
    (b"", "empty file"),
    (b"#!AER-DAT2.0\r\n#Start-Time: x\r\n" + b"\0" * 16, "AEDAT 2.0"),
    (b"#!AER-DAT4.0\r\n" + b"\0" * 16, "AEDAT 4.0"),
    (b"\x00\x01binary garbage", "not an AEDAT 3.1 file"),
])
def test_wrong_magic(tmp_path, content, match):
    path = tmp_path / "wrong.aedat"
    path.write_bytes(content)
    with pytest.raises(EventFileError, match=match) as info:
        read_aedat31(path)
    assert info.value.where == "byte offset 0"
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content, where", [
    (b"#!AER-DAT3.1\r\n#Format: RAW\r\n", "byte offset 28"),
    (b"#!AER-DAT3.1\r\n#Format: RAW\r\n#!END-HEA", "byte offset 28"),
    (b"#!AER-DAT3.1\r\n#Format: RAW\r\n\x01\x00\x01\x00" + b"\0" * 24, "byte offset 28"),
])
def test_missing_end_header(tmp_path, content, where):
    path = tmp_path / "noend.aedat"
    path.write_bytes(content)
    with pytest.raises(EventFileError, match="END-HEADER") as info:
        read_aedat31(path)
    assert info.value.where == where


def test_unsupported_format(tmp_path):
    path = tmp_path / "fmt.aedat"
    path.write_bytes(b"#!AER-DAT3.1\r\n#Format: PNTCompressed\r\n#!END-HEADER\r\n")
    with pytest.raises(EventFileError, match="PNTCompressed") as info:
        read_aedat31(path)
    assert info.value.where == "byte offset 14"


def test_truncation_at_every_offset(tmp_path):
    """Cut the hand-built file at every byte: a cut at a packet boundary is a
    valid shorter file (a prefix of the events), any other cut raises
    EventFileError naming a byte inside the cut packet's header."""
    raw, _every, _valid = hand_built()
    starts = [pos for pos, _ in walk_packets(raw, len(HEADER))] + [len(raw)]
    full_path = tmp_path / "full.aedat"
    full_path.write_bytes(raw)
    path = tmp_path / "cut.aedat"
    for cut in range(len(raw)):
        path.write_bytes(raw[:cut])
        if cut in starts:
            # Reference: the same packets, read from a file that ends there.
            got = read_aedat31(path)
            assert got.size <= _valid.size
            np.testing.assert_array_equal(got, _valid[:got.size])
            continue
        with pytest.raises(EventFileError) as info:
            read_aedat31(path)
        offset = int(info.value.where.removeprefix("byte offset "))
        if cut < len(HEADER):
            assert offset <= cut
        else:
            pkt = max(s for s in starts if s < cut)
            assert pkt <= offset < pkt + PKT.size, (cut, info.value)


@pytest.mark.parametrize("fields, payload, match, field", [
    # (eventType, eventSize, eventTSOffset, eventTSOverflow, eventCapacity, eventNumber)
    ((1, 8, 4, 0, 2**31 - 1, 1), b"\0" * 8, "runs past end of file", 20),
    ((1, 8, 4, 0, -2**31, 0), b"", "negative eventCapacity", 20),
    ((2, 2**31 - 1, 0, 0, 2**31 - 1, 1), b"\0" * 64, "runs past end of file", 20),
    ((1, 8, 4, 0, 1, 2), b"\0" * 8, "exceeds eventCapacity", 24),
    ((1, 8, 4, 0, 1, -1), b"\0" * 8, "negative eventNumber", 24),
    ((1, -8, 4, 0, 1, 1), b"\0" * 8, "eventSize -8 must be positive", 4),
    ((0, 0, 0, 0, 0, 0), b"", "eventSize 0 must be positive", 4),
    ((1, 16, 4, 0, 1, 1), b"\0" * 16, "eventSize 16 for polarity", 4),
    ((1, 8, 0, 0, 1, 1), b"\0" * 8, "eventTSOffset 0 for polarity", 8),
    ((3, 36, 40, 0, 1, 1), b"\0" * 36, "eventTSOffset 40 outside", 8),
    ((1, 8, 4, -1, 1, 1), b"\0" * 8, "negative eventTSOverflow", 12),
])
def test_bad_packet_header(tmp_path, fields, payload, match, field):
    ev_type, size, ts_offset, overflow, capacity, number = fields
    first = packet(1, polarity(1, 1, 1, 1), 1)
    bad = PKT.pack(ev_type, 1, size, ts_offset, overflow, capacity, number, number) + payload
    path = tmp_path / "bad.aedat"
    path.write_bytes(HEADER + first + bad)
    tracemalloc.start()
    try:
        with pytest.raises(EventFileError, match=match) as info:
            read_aedat31(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.where == f"byte offset {len(HEADER) + len(first) + field}"
    assert "packet 1" in info.value.what
    assert peak < 1 << 20  # a lying header allocates nothing


def test_negative_event_timestamp(tmp_path):
    body = packet(1, polarity(1, 1, 1, 1) + struct.pack("<II", (2 << 17) | 1, 0x80000000), 2)
    path = tmp_path / "neg.aedat"
    path.write_bytes(HEADER + body)
    with pytest.raises(EventFileError, match="negative timestamp") as info:
        read_aedat31(path)
    assert info.value.where == f"byte offset {len(HEADER) + PKT.size + 8}"


def test_invalid_event_with_negative_timestamp_is_ignored(tmp_path):
    body = packet(1, polarity(1, 1, 1, 1) + struct.pack("<II", 2 << 17, 0x80000000), 2)
    path = tmp_path / "neg_invalid.aedat"
    path.write_bytes(HEADER + body)
    np.testing.assert_array_equal(read_aedat31(path), make_events([1], [1], [1], [1]))


def _read_or_error(path) -> None:
    try:
        out = read_aedat31(path)
    except EventFileError:
        return
    assert out.dtype == EVENT_DTYPE


_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(data=st.data())
def test_fuzz_bit_flips_in_headers(tmp_path, data):
    """Flip bits in the text header or any packet header: the reader returns
    events or raises EventFileError, nothing else (no IndexError, struct.error,
    MemoryError, hang)."""
    raw, _every, _valid = hand_built()
    header_bytes = list(range(len(HEADER)))
    for pos, _ in walk_packets(raw, len(HEADER)):
        header_bytes.extend(range(pos, pos + PKT.size))
    flips = data.draw(st.lists(st.tuples(st.sampled_from(header_bytes), st.integers(0, 7)), min_size=1, max_size=4))
    buf = bytearray(raw)
    for index, bit in flips:
        buf[index] ^= 1 << bit
    path = tmp_path / "flip.aedat"
    path.write_bytes(bytes(buf))
    _read_or_error(path)


@_FUZZ
@given(tail=st.binary(max_size=300))
def test_fuzz_random_packet_bytes(tmp_path, tail):
    path = tmp_path / "random.aedat"
    path.write_bytes(HEADER + tail)
    _read_or_error(path)


@pytest.mark.slow
def test_ten_million_events_round_trip(tmp_path):
    """Thousands of packets across several TSOverflow epochs (speed is measured in bench/)."""
    ev = random_events(np.random.default_rng(7), 10_000_000, 2**33)
    path = tmp_path / "big.aedat"
    write_aedat31(path, ev, start_time=START)
    np.testing.assert_array_equal(read_aedat31(path), ev)
