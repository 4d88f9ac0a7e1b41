# SPDX-License-Identifier: MIT
"""AEDAT 4.0 reader/writer: dv-processing and faery as independent writers
and readers (every compression), multi-stream files, malformed input, LZ4 frame
options and decompression errors (python-lz4 / zstandard)."""
from __future__ import annotations

import re
import struct
import tracemalloc

import lz4.frame
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysg.events import EVENT_DTYPE, EventFileError, make_events
from pysg.io.aedat4 import MAX_PACKET_BYTES, iter_aedat4, read_aedat4, read_aedat4_header, write_aedat4
from tests.support.dv_files import dv_write, random_events


def dv_read(path) -> np.ndarray:
    dv = pytest.importorskip("dv_processing")
    rec = dv.io.MonoCameraRecording(str(path))
    parts = []
    while rec.isRunning():
        batch = rec.getNextEventBatch()
        if batch is None:
            break
        parts.append(batch.numpy())
    arr = np.concatenate(parts) if parts else np.empty(0, dtype=[("timestamp", "<i8"), ("x", "<i2"),
                                                                 ("y", "<i2"), ("polarity", "i1")])
    return make_events(arr["x"], arr["y"], arr["timestamp"], arr["polarity"])


def faery_mod():
    return pytest.importorskip("faery", reason="faery is the second independent AEDAT 4.0 writer/reader")


def faery_read(path) -> np.ndarray:
    a = faery_mod().events_stream_from_file(str(path)).to_array()
    return make_events(a["x"], a["y"], a["t"].astype(np.int64), a["on"])


def faery_write(path, ev, compression, width=640, height=480):
    faery = faery_mod()
    arr = np.zeros(ev.size, dtype=faery.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"]
    comp = {"none": None, "lz4": faery.aedat.LZ4_DEFAULT, "zstd": faery.aedat.ZSTD_DEFAULT}[compression]
    faery.events_stream_from_array(arr, dimensions=(width, height)).to_file(str(path), compression=comp)


@pytest.mark.parametrize("compression", ["NONE", "LZ4", "LZ4_HIGH", "ZSTD", "ZSTD_HIGH"])
def test_dv_processing_written(tmp_path, compression):
    ev = random_events(1, 20000)
    path = tmp_path / "dv.aedat4"
    dv_write(path, ev, compression)
    head = read_aedat4_header(path)
    assert head.compression == compression.lower()
    assert head.data_table_position > 0       # dv writes a data table: must be skipped
    assert [(s.type, s.width, s.height) for s in head.streams] == [("EVTS", 640, 480)]
    got = read_aedat4(path)
    assert got.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(got, ev)


@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
def test_faery_written(tmp_path, compression):
    ev = random_events(2, 30000, width=346, height=260)
    path = tmp_path / "faery.aedat4"
    faery_write(path, ev, compression, 346, 260)
    np.testing.assert_array_equal(read_aedat4(path), ev)


@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
@pytest.mark.parametrize("n, packet_events", [(0, 100), (1, 100), (25000, 4096)])
def test_ours_read_by_dv_and_faery(tmp_path, compression, n, packet_events):
    ev = random_events(3 + n, n, width=346, height=260)
    path = tmp_path / "ours.aedat4"
    write_aedat4(path, ev, width=346, height=260, compression=compression, packet_events=packet_events)
    np.testing.assert_array_equal(read_aedat4(path), ev)
    np.testing.assert_array_equal(faery_read(path), ev)
    np.testing.assert_array_equal(dv_read(path), ev)


def test_packets_and_chunks(tmp_path):
    ev = random_events(4, 10000)
    path = tmp_path / "p.aedat4"
    write_aedat4(path, ev, width=640, height=480, packet_events=999)
    chunks = list(iter_aedat4(path))
    assert [c.size for c in chunks] == [999] * 10 + [10]
    np.testing.assert_array_equal(np.concatenate(chunks), ev)


def test_writer_rejects(tmp_path):
    with pytest.raises(ValueError, match="x=346"):
        write_aedat4(tmp_path / "a.aedat4", make_events([346], [0], [0], [0]))
    with pytest.raises(ValueError, match="not sorted"):
        write_aedat4(tmp_path / "a.aedat4", make_events([0, 0], [0, 0], [2, 1], [0, 0]))
    with pytest.raises(ValueError, match="compression"):
        write_aedat4(tmp_path / "a.aedat4", make_events([0], [0], [0], [0]), compression="gzip")


# --------------------------------------------------------------------------- #
# Malformed input
# --------------------------------------------------------------------------- #
def small_file(tmp_path, compression="lz4") -> bytes:
    path = tmp_path / "small.aedat4"
    write_aedat4(path, random_events(5, 300, 346, 260), width=346, height=260,
                 compression=compression, packet_events=100)
    return path.read_bytes()


def test_wrong_magic(tmp_path):
    path = tmp_path / "x.aedat4"
    path.write_bytes(b"#!AER-DAT3.1\r\n")
    with pytest.raises(EventFileError, match="not an AEDAT 4.0") as info:
        read_aedat4(path)
    assert info.value.where == "byte offset 0"


def test_lying_sizes_allocate_nothing(tmp_path):
    raw = bytearray(small_file(tmp_path))
    hsize = struct.unpack_from("<i", raw, 14)[0]
    first = 18 + hsize
    path = tmp_path / "lie.aedat4"
    for at, value, match in ((14, 2**31 - 1, "IOHeader size"), (first + 4, 2**31 - 1, "packet size")):
        buf = bytearray(raw)
        struct.pack_into("<i", buf, at, value)
        path.write_bytes(bytes(buf))
        tracemalloc.start()
        try:
            with pytest.raises(EventFileError, match=match) as info:
                read_aedat4(path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert info.value.where == f"byte offset {at}"
        assert peak < 1 << 20


def test_no_event_stream(tmp_path):
    raw = small_file(tmp_path).replace(b">EVTS<", b">FRME<")
    path = tmp_path / "noev.aedat4"
    path.write_bytes(raw)
    with pytest.raises(EventFileError, match="no event stream"):
        read_aedat4(path)


def _read_or_error(path) -> None:
    try:
        out = read_aedat4(path)
    except EventFileError as e:
        assert e.where.startswith("byte offset "), e
        return
    assert out.dtype == EVENT_DTYPE


_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(data=st.data(), compression=st.sampled_from(["none", "lz4", "zstd"]))
def test_fuzz_truncation_and_flips(tmp_path, data, compression):
    raw = small_file(tmp_path, compression)
    hsize = struct.unpack_from("<i", raw, 14)[0]
    buf = bytearray(raw[:data.draw(st.integers(0, len(raw)))])
    # Bias flips to the binary parts (the IOHeader flatbuffer head and packets).
    for _ in range(data.draw(st.integers(0, 4))):
        if buf:
            at = data.draw(st.one_of(st.integers(0, min(len(buf), 18 + 64) - 1),
                                     st.integers(min(len(buf) - 1, 18 + hsize), len(buf) - 1)))
            buf[at] ^= 1 << data.draw(st.integers(0, 7))
    path = tmp_path / "f.aedat4"
    path.write_bytes(bytes(buf))
    _read_or_error(path)


@_FUZZ
@given(body=st.binary(max_size=300))
def test_fuzz_random_packets(tmp_path, body):
    raw = small_file(tmp_path, "none")
    hsize = struct.unpack_from("<i", raw, 14)[0]
    path = tmp_path / "r.aedat4"
    path.write_bytes(raw[:18 + hsize] + body)
    _read_or_error(path)


# --------------------------------------------------------------------------- #
# Decompression (python-lz4 / zstandard): every frame option, errors at the packet
# --------------------------------------------------------------------------- #
def _packets_of(raw: bytes) -> tuple[int, list[tuple[int, bytes]]]:
    """(offset of the first packet, [(stream id, payload)]) of a file without data table."""
    pos = first = 18 + struct.unpack_from("<i", raw, 14)[0]
    out = []
    while pos < len(raw):
        sid, size = struct.unpack_from("<ii", raw, pos)
        out.append((sid, raw[pos + 8:pos + 8 + size]))
        pos += 8 + size
    return first, out


def _repacked(raw: bytes, fn) -> bytes:
    """The file with each packet payload replaced by fn(index, payload)."""
    first, packets = _packets_of(raw)
    body = [struct.pack("<ii", sid, len(p)) + p for sid, p in
            ((sid, fn(i, p)) for i, (sid, p) in enumerate(packets))]
    return raw[:first] + b"".join(body)


def _both_readers(monkeypatch, path) -> list:
    """read_aedat4 and iter_aedat4, with the C packet decoder (when built) and without."""
    import pysg.io.aedat4 as a4
    results = []
    for lib in dict.fromkeys((a4._lib, None)):  # C when built, then the reference
        with monkeypatch.context() as m:
            m.setattr(a4, "_lib", lib)
            for fn in (lambda: read_aedat4(path), lambda: np.concatenate(list(iter_aedat4(path)))):
                try:
                    results.append(fn())
                except EventFileError as e:
                    results.append(e)
    return results


@pytest.mark.parametrize("options", [
    {"store_size": True},
    {"block_linked": False, "block_checksum": True, "content_checksum": True},
    {"block_size": lz4.frame.BLOCKSIZE_MAX4MB, "compression_level": 16, "store_size": True},
    {"block_size": lz4.frame.BLOCKSIZE_MAX64KB, "block_linked": True, "content_checksum": True},
])
def test_lz4_frame_options(tmp_path, monkeypatch, options):
    """Packets whose LZ4 frames use any option liblz4 writes (content size stored or not,
    checksums, block sizes and linking) read back to the events written."""
    ev = random_events(6, 9000, 346, 260)
    path = tmp_path / "opt.aedat4"
    write_aedat4(path, ev, width=346, height=260, compression="lz4", packet_events=5000)
    path.write_bytes(_repacked(path.read_bytes(),
                               lambda i, p: lz4.frame.compress(lz4.frame.decompress(p), **options)))
    for got in _both_readers(monkeypatch, path):
        np.testing.assert_array_equal(got, ev)


@pytest.mark.parametrize("compression, damage, match", [
    ("lz4", lambda p: b"\0\0\0\0" + p[4:], "lz4 decompression failed: .*frameType_unknown"),
    ("lz4", lambda p: p[:-6], "lz4 decompression failed: Frame incomplete"),
    ("lz4", lambda p: p[:5], "lz4 decompression failed: .*frameHeader_incomplete"),
    ("zstd", lambda p: b"\0\0\0\0" + p[4:], "zstd decompression failed"),
    ("zstd", lambda p: p[:-6], "truncated or oversized ZSTD frame"),
])
def test_decompression_errors_name_the_packet(tmp_path, monkeypatch, compression, damage, match):
    raw = small_file(tmp_path, compression)
    first, packets = _packets_of(raw)
    second = first + 8 + len(packets[0][1])  # the second packet's header
    path = tmp_path / "bad.aedat4"
    path.write_bytes(_repacked(raw, lambda i, p: damage(p) if i == 1 else p))
    for got in _both_readers(monkeypatch, path):
        assert isinstance(got, EventFileError), type(got)
        assert got.where == f"byte offset {second + 8}"
        assert re.search(match, str(got)), str(got)


def test_lz4_lying_content_size_allocates_nothing(tmp_path, monkeypatch):
    """A frame header (valid checksum) declaring more than MAX_PACKET_BYTES is refused before
    python-lz4 would allocate the declared size."""
    raw = small_file(tmp_path, "lz4")
    first, _ = _packets_of(raw)
    header = lz4.frame.LZ4FrameCompressor().begin(source_size=MAX_PACKET_BYTES + 1)  # linked blocks
    assert len(header) == 15  # magic, FLG, BD, 8-byte content size, header checksum

    def lying(i: int, p: bytes) -> bytes:  # the blocks of a 7-byte-header frame after that header
        return header + lz4.frame.compress(lz4.frame.decompress(p), store_size=False, block_linked=True)[7:]
    path = tmp_path / "lie.aedat4"
    path.write_bytes(_repacked(raw, lying))
    tracemalloc.start()
    try:
        results = _both_readers(monkeypatch, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    for got in results:
        assert isinstance(got, EventFileError), type(got)
        assert got.where == f"byte offset {first + 8}"
        assert f"declares {MAX_PACKET_BYTES + 1} bytes" in str(got)
    assert peak < 1 << 20


@pytest.mark.parametrize("store_size, word", [(True, "declares"), (False, "holds")])
def test_lz4_packet_over_the_limit(tmp_path, monkeypatch, store_size, word):
    """The size limit applies to the declared content size, and to the content itself
    when the frame stores no size."""
    import pysg.io.aedat4 as a4
    raw = small_file(tmp_path, "lz4")
    first, packets = _packets_of(raw)
    size = len(lz4.frame.decompress(packets[0][1]))
    assert size == 16 * 100 + 36  # 100 events and the flatbuffer around them
    path = tmp_path / "big.aedat4"
    path.write_bytes(_repacked(raw, lambda i, p: lz4.frame.compress(lz4.frame.decompress(p), store_size=store_size)))
    monkeypatch.setattr(a4, "MAX_PACKET_BYTES", size - 1)
    for got in _both_readers(monkeypatch, path):
        assert isinstance(got, EventFileError) and got.where == f"byte offset {first + 8}", got
        assert f"{word} {size} bytes, more than {size - 1}" in str(got)
    monkeypatch.setattr(a4, "MAX_PACKET_BYTES", size)
    for got in _both_readers(monkeypatch, path):
        assert got.size == 300
