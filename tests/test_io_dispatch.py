# SPDX-License-Identifier: MIT
"""pysg.io entry point: format detection from bytes, read_events, iter_events
(chunked, incl. the AEDAT 3.1 chunked reader), info."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pysg.events import EventFileError, make_events
from pysg.io import detect_format, info, iter_events, read_events
from pysg.io.aedat2 import write_aedat2
from pysg.io.aedat31 import iter_aedat31, read_aedat31, write_aedat31
from pysg.io.aedat4 import write_aedat4
from pysg.io.evt import write_evt3

START = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)


def events(n=3000, width=128, height=128, seed=0):
    rng = np.random.default_rng(seed)
    return make_events(rng.integers(0, width, n), rng.integers(0, height, n),
                       np.sort(rng.integers(0, 2**33, n)), rng.integers(0, 2, n))


@pytest.mark.parametrize("fmt", ["aedat2", "aedat31", "aedat4", "evt3", "npy"])
def test_detect_and_read_ignore_extension(tmp_path, fmt):
    ev = events()
    if fmt == "aedat2":
        ev["t"] %= 2**31
        ev.sort(order="t")
    path = tmp_path / "misleading.dat"   # the extension lies on purpose
    {"aedat2": lambda: write_aedat2(path, ev),
     "aedat31": lambda: write_aedat31(path, ev, start_time=START),
     "aedat4": lambda: write_aedat4(path, ev, width=128, height=128),
     "evt3": lambda: write_evt3(path, ev, width=128, height=128),
     "npy": lambda: np.save(open(path, "wb"), ev)}[fmt]()
    assert detect_format(path) == fmt
    f = read_events(path)
    assert f.format == fmt
    np.testing.assert_array_equal(f.events, ev)
    if fmt != "npy":
        assert (f.width, f.height) == (128, 128)
    chunks = list(iter_events(path, chunk_events=700))
    np.testing.assert_array_equal(np.concatenate(chunks), ev)
    s = info(path)
    assert (s["format"], s["n_events"], s["n_on"]) == (fmt, ev.size, int(ev["p"].sum()))
    assert (s["t_first"], s["t_last"]) == (int(ev["t"][0]), int(ev["t"][-1]))


def test_unknown_and_empty(tmp_path):
    (tmp_path / "e").write_bytes(b"")
    with pytest.raises(EventFileError, match="empty"):
        read_events(tmp_path / "e")
    (tmp_path / "u").write_bytes(b"RIFF....")
    with pytest.raises(EventFileError, match="unknown event file format"):
        read_events(tmp_path / "u")
    (tmp_path / "p").write_bytes(b"% date today\n\x00\x00")
    with pytest.raises(EventFileError, match="names no format"):
        read_events(tmp_path / "p")
    with pytest.raises(ValueError, match="chunk_events"):
        list(iter_events(tmp_path / "u", chunk_events=0))


@pytest.mark.parametrize("chunk", [1, 100, 4096, 10**6])
def test_iter_aedat31_equals_read(tmp_path, chunk):
    ev = events(20000, seed=chunk)
    path = tmp_path / "a.aedat"
    write_aedat31(path, ev, packet_events=500, start_time=START)
    chunks = list(iter_aedat31(path, chunk_events=chunk))
    assert all(c.size <= max(chunk, 500) + 500 for c in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks), read_aedat31(path))


def test_iter_aedat31_errors_like_read(tmp_path):
    ev = events(1000)
    path = tmp_path / "t.aedat"
    write_aedat31(path, ev, packet_events=100, start_time=START)
    raw = path.read_bytes()
    path.write_bytes(raw[:-5])
    with pytest.raises(EventFileError) as a:
        read_aedat31(path)
    with pytest.raises(EventFileError) as b:
        list(iter_aedat31(path))
    assert a.value.where == b.value.where
