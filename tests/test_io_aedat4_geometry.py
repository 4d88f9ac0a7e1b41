# SPDX-License-Identifier: MIT
"""AEDAT 4 events outside the stream's sizeX x sizeY are refused with the packet's byte
offset (the C runtime would drop them while the reference refuses: one file, two verdicts),
by the whole-file reader and the packet iterator alike, compressed or not."""
from __future__ import annotations

import numpy as np
import pytest

from pysg.events import EventFileError, make_events
from pysg.io.aedat4 import iter_aedat4, read_aedat4, read_aedat4_header, write_aedat4


def recording(tmp_path, compression: str, width: int, claimed: int):
    """Events up to x = width - 1, written with sizeX = width, then the XML's sizeX
    rewritten to `claimed` (same number of digits: every offset stays valid)."""
    rng = np.random.default_rng(3)
    n = 5000
    ev = make_events(x=rng.integers(0, width, n), y=rng.integers(0, 100, n), t=np.sort(rng.integers(0, 10**6, n)),
                     p=rng.integers(0, 2, n))
    ev["x"][n // 2] = width - 1  # at least one event beyond a smaller claimed width, mid-file
    path = tmp_path / f"r_{compression}.aedat4"
    write_aedat4(path, ev, width=width, height=100, compression=compression, packet_events=1000)
    raw = path.read_bytes()
    old, new = f'"sizeX" type="int">{width}<'.encode(), f'"sizeX" type="int">{claimed}<'.encode()
    assert len(old) == len(new) and raw.count(old) == 1
    path.write_bytes(raw.replace(old, new))
    return path, ev


@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
def test_events_beyond_size_x_are_refused(tmp_path, compression):
    path, ev = recording(tmp_path, compression, 346, 320)
    assert read_aedat4_header(path).streams[0].width == 320
    for read in (read_aedat4, lambda p: np.concatenate(list(iter_aedat4(p)))):
        with pytest.raises(EventFileError, match=r"x=3[2-4]\d, outside the header's 320x100 geometry") as e:
            read(path)
        assert "byte offset" in str(e.value)


@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_events_inside_are_read_unchanged(tmp_path, compression):
    path, ev = recording(tmp_path, compression, 346, 346)
    got = read_aedat4(path)
    assert np.array_equal(got, ev)
    assert np.array_equal(np.concatenate(list(iter_aedat4(path))), ev)
