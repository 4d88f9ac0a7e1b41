# SPDX-License-Identifier: MIT
"""AEDAT 4.0 recordings as DV makes them, for the readers' tests (Python and C): random
events at DV's absolute µs timestamps, and files written by dv-processing (the
reference AEDAT 4.0 writer; the tests that need it skip without it)."""
from __future__ import annotations

import numpy as np
import pytest

from pysg.events import make_events

T0 = 1_600_000_000_000_000  # DV writes absolute µs timestamps


def random_events(seed: int, n: int, width: int = 640, height: int = 480, span: int = 10**8) -> np.ndarray:
    """``n`` sorted random events over ``span`` µs from :data:`T0` on a width x height sensor."""
    rng = np.random.default_rng(seed)
    return make_events(rng.integers(0, width, n), rng.integers(0, height, n),
                       np.sort(rng.integers(T0, T0 + span, n)), rng.integers(0, 2, n))


def dv_write(path, ev, compression: str, width=640, height=480, batch=7000):
    """Write ``ev`` with dv-processing's MonoCameraWriter (``compression``: a dv.CompressionType name)."""
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
