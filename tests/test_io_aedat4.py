# SPDX-License-Identifier: MIT
"""AEDAT 4.0 reader/writer: dv-processing and faery as independent writers
and readers (every compression), multi-stream files, malformed input."""
from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysg.events import EVENT_DTYPE, EventFileError, make_events
from pysg.io.aedat4 import iter_aedat4, read_aedat4, read_aedat4_header, write_aedat4

T0 = 1_600_000_000_000_000  # DV writes absolute µs timestamps


def random_events(seed: int, n: int, width: int = 640, height: int = 480, span: int = 10**8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(rng.integers(0, width, n), rng.integers(0, height, n),
                       np.sort(rng.integers(T0, T0 + span, n)), rng.integers(0, 2, n))


def dv_write(path, ev, compression: str, width=640, height=480, batch=7000):
    dv = pytest.importorskip("dv_processing", reason="dv-processing is the reference AEDAT 4.0 writer")
    cfg = dv.io.MonoCameraWriter.EventOnlyConfig("DVXplorer_test", (width, height))
    # dv-processing quirk: CompressionType lives at dv.CompressionType, not dv.io.
    cfg.compression = getattr(dv.CompressionType, compression)
    writer = dv.io.MonoCameraWriter(str(path), cfg)
    for a in range(0, ev.size, batch):
        store = dv.EventStore()
        for e in ev[a:a + batch]:
            store.push_back(int(e["t"]), int(e["x"]), int(e["y"]), bool(e["p"]))
        writer.writeEvents(store)
    del writer  # the file (and its data table) is finalised on destruction


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
