# SPDX-License-Identifier: MIT
"""AEDAT 3.1: the '#Source' camera gives the sensor size; events outside it are refused
with the packet's byte offset by the reader and the iterator (C and numpy paths), so the
C runtime (which drops them) and the reference (which refuses them) never disagree."""
from __future__ import annotations

import numpy as np
import pytest

from pysg.events import EventFileError, make_events
from pysg.io import aedat31
from pysg.io.aedat31 import iter_aedat31, read_aedat31, sensor_geometry, write_aedat31

BUNDLED = aedat31.__file__.replace("io/aedat31.py", "data/samples/user01_fluorescent.aedat")


@pytest.mark.parametrize("sources, size", [
    ({1: "DVS128"}, (128, 128)), ({1: "DAVIS346B"}, (346, 260)), ({0: "DVXplorer Lite"}, (320, 240)),
    ({1: "DVS 320x240"}, (320, 240)), ({1: "Mystery cam"}, None), ({1: "DVS128", 2: "DAVIS240C"}, None), ({}, None)])
def test_sensor_geometry(sources, size):
    assert sensor_geometry(sources) == size


def recording(tmp_path, claimed: bytes):
    rng = np.random.default_rng(4)
    n = 3000
    ev = make_events(x=rng.integers(0, 320, n), y=rng.integers(0, 240, n), t=np.sort(rng.integers(0, 10**6, n)),
                     p=rng.integers(0, 2, n))
    ev["x"][2000] = 300
    path = tmp_path / "r.aedat"
    write_aedat31(path, ev, width=320, height=240, packet_events=500)
    raw = path.read_bytes()
    assert raw.count(b"DVS 320x240") == 1
    path.write_bytes(raw.replace(b"DVS 320x240", claimed))
    return path, ev


@pytest.mark.parametrize("use_c", [True, False])
def test_events_outside_the_named_camera_are_refused(tmp_path, monkeypatch, use_c):
    if not use_c:
        monkeypatch.setattr(aedat31._evt, "_lib", None)
    elif aedat31._evt._lib is None:
        pytest.skip("the C decoders are not built")
    path, _ = recording(tmp_path, b"DVS 256x240")  # same length: offsets unchanged
    for read in (read_aedat31, lambda p: np.concatenate(list(iter_aedat31(p)))):
        with pytest.raises(EventFileError, match=r"x=\d+, outside the header's 256x240 geometry") as e:
            read(path)
        assert "byte offset" in str(e.value)


def test_inside_or_unknown_camera_reads_unchanged(tmp_path):
    path, ev = recording(tmp_path, b"DVS 320x240")
    assert np.array_equal(read_aedat31(path), ev)
    path, ev = recording(tmp_path, b"Unknown cam")  # no size known: nothing to check against
    assert np.array_equal(read_aedat31(path), ev)


def test_real_dvs128_recording_is_inside_its_sensor():
    ev = read_aedat31(BUNDLED)
    assert ev.size > 600_000 and int(ev["x"].max()) < 128 and int(ev["y"].max()) < 128
