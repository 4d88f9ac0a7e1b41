# SPDX-License-Identifier: MIT
"""tonic-layout .npy/.npz event arrays."""
from __future__ import annotations

import numpy as np
import pytest

from pysg.events import EVENT_DTYPE, EventFileError, make_events
from pysg.io import read_events
from pysg.io.npy import read_npy


@pytest.mark.parametrize("dtype", [
    [("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "<i1")],          # tonic DVSGesture
    [("t", "<u8"), ("x", "<u4"), ("y", "<u4"), ("p", "?")],            # bool polarity
    [("x", "<i8"), ("y", "<i8"), ("p", "<i4"), ("t", "<f8")],          # float t: refused
])
def test_npy_layouts(tmp_path, dtype):
    arr = np.zeros(3, dtype=dtype)
    arr["x"], arr["y"], arr["t"], arr["p"] = [1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 0, 1]
    path = tmp_path / "e.npy"
    np.save(path, arr)
    if np.dtype(dtype)["t"].kind == "f":
        with pytest.raises(EventFileError, match="field t"):
            read_npy(path)
        return
    got = read_npy(path)
    assert got.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(got, make_events([1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 0, 1]))
    assert read_events(path).format == "npy"


def test_npz_and_ranges(tmp_path):
    ev = make_events([1], [2], [3], [1])
    path = tmp_path / "e.npz"
    np.savez(path, events=ev, labels=np.arange(3))
    np.testing.assert_array_equal(read_npy(path), ev)
    bad = np.zeros(2, dtype=[("x", "<i4"), ("y", "<i4"), ("t", "<i8"), ("p", "<i1")])
    bad["x"][1] = -1
    np.save(tmp_path / "neg.npy", bad)
    with pytest.raises(EventFileError, match="x=-1"):
        read_npy(tmp_path / "neg.npy")
    bad["x"][1] = 0
    bad["p"][0] = 2
    np.save(tmp_path / "p.npy", bad)
    with pytest.raises(EventFileError, match="p=2"):
        read_npy(tmp_path / "p.npy")
    np.save(tmp_path / "plain.npy", np.arange(4))
    with pytest.raises(EventFileError, match="lacks fields"):
        read_npy(tmp_path / "plain.npy")
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    with pytest.raises(EventFileError, match="cannot load"):
        read_npy(tmp_path / "junk.npy")
