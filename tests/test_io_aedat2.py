# SPDX-License-Identifier: MIT
"""AEDAT 2.0: files built by hand per the jAER layout, writer round trips, fuzzing."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysg.events import EVENT_DTYPE, EventFileError, make_events
from pysg.io.aedat2 import read_aedat2, read_aedat2_header, write_aedat2

HEADER = b"#!AER-DAT2.0\r\n# This is a raw AE data file\r\n#\r\n"


def be(addr: int, ts: int) -> bytes:
    return struct.pack(">Ii", addr, ts)


def test_hand_built_dvs128(tmp_path):
    # raw x 5 -> jAER x 122; raw polarity 0 = ON; bit 15 = external event.
    body = be((9 << 8) | (5 << 1) | 0, 100) + be((1 << 8) | (127 << 1) | 1, 200) + be(0x8000, 250) \
        + be((127 << 8) | (0 << 1) | 1, -2**31 + 5)    # timestamp wrapped past 2**31
    path = tmp_path / "dvs.aedat"
    path.write_bytes(HEADER + body)
    assert read_aedat2_header(path)["data_offset"] == len(HEADER)
    np.testing.assert_array_equal(read_aedat2(path), make_events([122, 0, 127], [9, 1, 127],
                                                                  [100, 200, 2**31 + 5], [1, 0, 0]))
    np.testing.assert_array_equal(read_aedat2(path, flip_x=False, on_polarity=1),
                                  make_events([5, 127, 0], [9, 1, 127], [100, 200, 2**31 + 5], [0, 1, 1]))


def test_hand_built_davis(tmp_path):
    dvs = (200 << 22) | (300 << 12) | (1 << 11)
    aps = (1 << 31) | (10 << 22) | (20 << 12)
    ext = (1 << 10)
    path = tmp_path / "davis.aedat"
    path.write_bytes(HEADER + be(dvs, 7) + be(aps, 8) + be(ext, 9) + be((3 << 22) | (4 << 12), 10))
    np.testing.assert_array_equal(read_aedat2(path, layout="davis"),
                                  make_events([300, 4], [200, 3], [7, 10], [1, 0]))


@pytest.mark.parametrize("layout, width, height", [("dvs128", 128, 128), ("davis", 346, 260)])
def test_round_trip(tmp_path, layout, width, height):
    rng = np.random.default_rng(0)
    n = 5000
    ev = make_events(rng.integers(0, width, n), rng.integers(0, height, n),
                     np.sort(rng.integers(0, 2**32, n)), rng.integers(0, 2, n))
    path = tmp_path / "rt.aedat"
    write_aedat2(path, ev, layout=layout)
    got = read_aedat2(path, layout=layout)
    assert got.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(got, ev)


def test_errors(tmp_path):
    path = tmp_path / "bad.aedat"
    path.write_bytes(b"#!AER-DAT3.1\r\n")
    with pytest.raises(EventFileError, match="not an AEDAT 2.0"):
        read_aedat2(path)
    path.write_bytes(HEADER + be(0, 0) + b"\x01\x02")
    with pytest.raises(EventFileError, match="inside an 8-byte") as info:
        read_aedat2(path)
    assert info.value.where == f"byte offset {len(HEADER) + 8}"
    with pytest.raises(ValueError, match="layout"):
        read_aedat2(path, layout="dvs640")


_FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(body=st.binary(max_size=200), layout=st.sampled_from(["dvs128", "davis"]))
def test_fuzz(tmp_path, body, layout):
    path = tmp_path / "f.aedat"
    path.write_bytes(HEADER + body)
    try:
        out = read_aedat2(path, layout=layout)
    except EventFileError as e:
        assert e.where.startswith("byte offset ")
        return
    assert out.dtype == EVENT_DTYPE
