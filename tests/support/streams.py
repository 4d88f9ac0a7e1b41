# SPDX-License-Identifier: MIT
"""Random event streams for the event transforms' tests (numpy and C)."""
from __future__ import annotations

import numpy as np

from pysg.events import make_events


def stream(seed: int, n: int, width: int = 12, height: int = 9, span: int = 20_000, sort: bool = True,
           hot: bool = True) -> np.ndarray:
    """Random events on a small sensor (many pixel collisions), a hot pixel, equal timestamps."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, width, n)
    y = rng.integers(0, height, n)
    if hot:
        h = rng.random(n) < 0.2
        x[h], y[h] = 3, 4
    t = rng.integers(0, span, n) // 7 * 7          # many equal timestamps
    if sort:
        t = np.sort(t)
    return make_events(x, y, t, rng.integers(0, 2, n))
