# SPDX-License-Identifier: MIT
"""Real recordings from faery's source distribution (Prophesee EVT 2.0 Gen3,
EVT 3.0 IMX636 crossing the 24-bit time wrap, DAT, DAVIS346 LZ4 AEDAT 4.0):
fetched with pip at test time into a cache dir (never committed; the `real_data`
fixture of tests/conftest.py), decoded by us and by faery, compared event by event."""
from __future__ import annotations

import numpy as np
import pytest

from pysg.events import make_events
from pysg.io import info, iter_events, read_events


def faery_read(path) -> np.ndarray:
    faery = pytest.importorskip("faery", reason="faery's own decoding is the reference")
    a = faery.events_stream_from_file(str(path)).to_array()
    return make_events(a["x"], a["y"], a["t"].astype(np.int64), a["on"])


@pytest.mark.parametrize("name, fmt, size, n", [
    ("evt2.raw", "evt2", (640, 480), 521252),  # no geometry line: its '% plugin_name hal_plugin_gen3_fx3
    ("evt3.raw", "evt3", (1280, 720), 1218618),
    ("gen4.dat", "dat", (1280, 720), 1218618),
    ("davis346.aedat4", "aedat4", (346, 260), 78830),
])
def test_real_file_matches_faery(real_data, name, fmt, size, n):
    path = real_data / name
    f = read_events(path)
    assert f.format == fmt and (f.width, f.height) == size
    assert f.events.size == n
    np.testing.assert_array_equal(f.events, faery_read(path))
    chunks = list(iter_events(path, chunk_events=100_000))
    np.testing.assert_array_equal(np.concatenate(chunks), f.events)
    summary = info(path)
    assert (summary["width"], summary["height"], summary["geometry_source"]) == size + ("file",)
    assert int(f.events["x"].max()) < size[0] and int(f.events["y"].max()) < size[1]
    assert summary["n_events"] == n
    assert summary["t_first"] == int(f.events["t"][0]) and summary["t_last"] == int(f.events["t"][-1])
    assert summary["n_on"] == int(f.events["p"].sum())


def test_real_evt3_crosses_the_wrap(real_data):
    t = read_events(real_data / "evt3.raw").events["t"]
    assert t[0] < 2**24 < t[-1]
    assert np.all(np.diff(t) >= 0)
