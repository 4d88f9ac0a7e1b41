# SPDX-License-Identifier: MIT
"""Chunked reading of DAT, AEDAT 2.0 and .npy (iter_dat, iter_aedat2, iter_npy and
pysg.io.iter_events): the chunks concatenated equal the whole-file reader's events
for every chunk size (timestamp unwrapping carried across chunk borders), errors are
the whole-file reader's, and the memory in use follows the chunk, not the file."""
from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest

from pysg.events import EVENT_DTYPE, EventFileError, make_events
from pysg.io import iter_events, read_events
from pysg.io.aedat2 import iter_aedat2, read_aedat2, write_aedat2
from pysg.io.evt import iter_dat, read_dat
from pysg.io.npy import iter_npy, read_npy

DAT_HEAD = b"% Date 2020-01-01 00:00:00\n% Version 2\n% Width 640\n% Height 480\n\x0c\x08"


def write_dat(path, t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray, head: bytes = DAT_HEAD) -> None:
    rec = np.empty(t.size, dtype=[("t", "<u4"), ("d", "<u4")])
    rec["t"] = t & 0xFFFFFFFF
    rec["d"] = x | (y << 14) | (p << 28)
    path.write_bytes(head + rec.tobytes())


def wrapping_times(rng: np.random.Generator, n: int) -> np.ndarray:
    """Sorted µs timestamps across several 2**32 wraps, the first below 2**32 (a file
    cannot tell how many wraps came before its first event)."""
    t = np.sort(rng.integers(2**32 - 10**6, 3 * 2**32 + 10**6, n, dtype=np.int64))
    return t - ((t[0] >> 32) << 32) if n else t


def concat(chunks: list[np.ndarray]) -> np.ndarray:
    for c in chunks:
        assert c.dtype == EVENT_DTYPE
    return np.concatenate(chunks) if chunks else np.empty(0, dtype=EVENT_DTYPE)


def error_of(fn):
    try:
        fn()
    except EventFileError as e:
        return str(e), e.where
    return None


@pytest.mark.parametrize("n", [0, 1, 5000])
@pytest.mark.parametrize("chunk", [1, 7, 999, 5000, 6000])
def test_dat_chunks_equal_whole(tmp_path, n, chunk):
    rng = np.random.default_rng(n + chunk)
    t = wrapping_times(rng, n)
    path = tmp_path / "w.dat"
    write_dat(path, t, rng.integers(0, 640, n), rng.integers(0, 480, n), rng.integers(0, 2, n))
    whole = read_dat(path)
    np.testing.assert_array_equal(whole["t"], t)  # independent truth: the unwrapped times written
    np.testing.assert_array_equal(concat(list(iter_dat(path, chunk_events=chunk))), whole)
    np.testing.assert_array_equal(concat(list(iter_events(path, chunk_events=chunk))), read_events(path).events)


def test_dat_faery_written(tmp_path):
    faery = pytest.importorskip("faery")
    rng = np.random.default_rng(3)
    n = 20000
    ev = make_events(rng.integers(0, 1280, n), rng.integers(0, 720, n), np.sort(rng.integers(0, 10**8, n)),
                     rng.integers(0, 2, n))
    arr = np.zeros(n, dtype=faery.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"]
    path = tmp_path / "f.dat"
    faery.events_stream_from_array(arr, dimensions=(1280, 720)).to_file(str(path), version="dat2", zero_t0=True)
    np.testing.assert_array_equal(concat(list(iter_dat(path, chunk_events=333))), ev)


@pytest.mark.parametrize("where", ["polarity", "geometry", "truncated", "type"])
def test_dat_errors_same_as_whole(tmp_path, where):
    rng = np.random.default_rng(1)
    n = 1000
    t, x, y, p = np.arange(n) * 10, rng.integers(0, 640, n), rng.integers(0, 480, n), rng.integers(0, 2, n)
    head = DAT_HEAD
    if where == "polarity":
        p[777] = 5
    elif where == "geometry":
        y[612] = 900
    elif where == "type":
        head = head[:-2] + b"\x0d\x08"
    path = tmp_path / "e.dat"
    write_dat(path, t, x, y, p, head)
    if where == "truncated":
        path.write_bytes(path.read_bytes()[:-3])
    expected = error_of(lambda: read_dat(path))
    assert expected is not None
    yielded = []

    def run():
        for c in iter_dat(path, chunk_events=100):
            yielded.append(c)
    assert error_of(run) == expected
    if where in ("polarity", "geometry"):  # the chunks before the bad event were given
        assert sum(c.size for c in yielded) == (700 if where == "polarity" else 600)
    else:
        assert not yielded


@pytest.mark.parametrize("layout", ["dvs128", "davis"])
@pytest.mark.parametrize("chunk", [1, 13, 4096, 100_000])
def test_aedat2_chunks_equal_whole(tmp_path, layout, chunk):
    rng = np.random.default_rng(chunk)
    n = 6000
    w, h = (128, 128) if layout == "dvs128" else (346, 260)
    ev = make_events(rng.integers(0, w, n), rng.integers(0, h, n), np.sort(rng.integers(0, 2**32, n)),
                     rng.integers(0, 2, n))
    path = tmp_path / "a.aedat"
    write_aedat2(path, ev, layout=layout)
    raw = bytearray(path.read_bytes())
    # timestamps that wrap (jAER counts past 2**31 into negatives, then past 2**32)
    body = len(raw) - 8 * n
    ts = np.frombuffer(raw, dtype=">i4", offset=body + 4)[::2].copy()
    big = np.sort(rng.integers(2**31 - 10**4, 3 * 2**32, n, dtype=np.int64))
    for i, v in enumerate(big):
        struct.pack_into(">I", raw, body + 8 * i + 4, int(v) & 0xFFFFFFFF)
    # external / APS records, which are skipped
    for i in range(0, n, 97):
        a = struct.unpack_from(">I", raw, body + 8 * i)[0]
        struct.pack_into(">I", raw, body + 8 * i, a | (0x8000 if layout == "dvs128" else 0x80000000))
    path.write_bytes(bytes(raw))
    assert ts.size == n
    whole = read_aedat2(path, layout=layout)
    keep = np.ones(n, bool)
    keep[::97] = False
    np.testing.assert_array_equal(whole["t"], big[keep])  # independent truth: the times written
    np.testing.assert_array_equal(concat(list(iter_aedat2(path, chunk_events=chunk, layout=layout))), whole)
    np.testing.assert_array_equal(concat(list(iter_events(path, chunk_events=chunk, layout=layout))),
                                  read_events(path, layout=layout).events)


def test_aedat2_errors_same_as_whole(tmp_path):
    rng = np.random.default_rng(2)
    ev = make_events(rng.integers(0, 128, 500), rng.integers(0, 128, 500), np.arange(500), rng.integers(0, 2, 500))
    path = tmp_path / "e.aedat"
    write_aedat2(path, ev, layout="davis", width=128)
    for kwargs in ({"layout": "davis", "flip_x": True, "width": 50}, {"layout": "davis"}):
        expected = error_of(lambda kw=kwargs: read_aedat2(path, **kw))
        got = error_of(lambda kw=kwargs: list(iter_aedat2(path, chunk_events=64, **kw)))
        assert got == expected
        if kwargs.get("width") == 50:
            assert expected is not None and "cannot flip" in expected[0]
    path.write_bytes(path.read_bytes() + b"\x01\x02")
    expected = error_of(lambda: read_aedat2(path, layout="davis"))
    assert expected is not None and error_of(lambda: next(iter_aedat2(path, layout="davis"))) == expected
    path.write_bytes(b"")
    assert error_of(lambda: next(iter_aedat2(path))) == error_of(lambda: read_aedat2(path))


@pytest.mark.parametrize("dtype", [
    [("x", "<u2"), ("y", "<u2"), ("t", "<i8"), ("p", "u1")],
    [("t", ">i8"), ("x", ">i4"), ("y", "<i2"), ("p", "?"), ("extra", "<f4")],
])
@pytest.mark.parametrize("chunk", [1, 100, 10**6])
def test_npy_chunks_equal_whole(tmp_path, dtype, chunk):
    rng = np.random.default_rng(chunk)
    n = 3000
    arr = np.zeros(n, dtype=dtype)
    arr["x"], arr["y"] = rng.integers(0, 640, n), rng.integers(0, 480, n)
    arr["t"], arr["p"] = np.sort(rng.integers(0, 10**9, n)), rng.integers(0, 2, n)
    path = tmp_path / "e.npy"
    np.save(path, arr)
    whole = read_npy(path)
    for f in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(whole[f], arr[f].astype(np.int64))
    np.testing.assert_array_equal(concat(list(iter_npy(path, chunk_events=chunk))), whole)
    np.testing.assert_array_equal(concat(list(iter_events(path, chunk_events=chunk))), read_events(path).events)


def test_npy_errors_and_fallbacks(tmp_path):
    arr = np.zeros(500, dtype=[("x", "<i4"), ("y", "<u2"), ("t", "<i8"), ("p", "u1")])
    arr["x"][321] = -4
    path = tmp_path / "e.npy"
    np.save(path, arr)
    expected = error_of(lambda: read_npy(path))
    assert expected == ("" + str(EventFileError(str(path), "event 321", "field x=-4 outside [0, 65535]")),
                        "event 321")
    assert error_of(lambda: list(iter_npy(path, chunk_events=50))) == expected
    np.save(path, np.zeros(5, dtype=[("x", "f4"), ("y", "u2"), ("t", "i8"), ("p", "u1")]))
    assert error_of(lambda: next(iter_npy(path))) == error_of(lambda: read_npy(path)) is not None
    # .npz, 2-D and truncated files are read whole by read_npy: the same errors and events
    good = np.zeros(10, dtype=[("x", "u2"), ("y", "u2"), ("t", "i8"), ("p", "u1")])
    good["t"] = np.arange(10)
    np.savez(tmp_path / "z.npz", ev=good)
    np.testing.assert_array_equal(concat(list(iter_npy(tmp_path / "z.npz", chunk_events=3))),
                                  read_npy(tmp_path / "z.npz"))
    np.save(path, good)
    path.write_bytes(path.read_bytes()[:-5])
    assert error_of(lambda: list(iter_npy(path))) == error_of(lambda: read_npy(path)) is not None


def peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt", ["dat", "aedat2", "npy"])
def test_memory_follows_the_chunk(tmp_path, fmt):
    """400 k events (5 MiB as EVENT_DTYPE): chunks of 10 k keep the heap peak at a small
    fraction of reading the file whole."""
    rng = np.random.default_rng(0)
    n = 400_000
    ev = make_events(rng.integers(0, 128, n), rng.integers(0, 128, n), np.sort(rng.integers(0, 2**31, n)),
                     rng.integers(0, 2, n))
    path = tmp_path / f"m.{fmt}"
    if fmt == "dat":
        write_dat(path, ev["t"].astype(np.int64), ev["x"].astype(np.int64), ev["y"].astype(np.int64),
                  ev["p"].astype(np.int64))
    elif fmt == "aedat2":
        write_aedat2(path, ev)
    else:
        np.save(path, ev)
    whole = peak_bytes(lambda: read_events(path))
    chunked = peak_bytes(lambda: sum(c.size for c in iter_events(path, chunk_events=10_000)))
    assert whole > n * EVENT_DTYPE.itemsize
    assert chunked < 0.1 * whole, (chunked, whole)
