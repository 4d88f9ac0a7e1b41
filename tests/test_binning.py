# SPDX-License-Identifier: MIT
"""bin_events: hand-computed frames and a loop reference."""
from __future__ import annotations

import numpy as np
import pytest

from pysg.datasets.binning import bin_events
from pysg.events import make_events


def test_single_event_lands_at_row_y_col_x():
    ev = make_events([5], [9], [2500], [1])
    out = bin_events(ev, duration_us=3000, dt_us=1000)
    assert out.shape == (3, 2, 32, 32) and out.dtype == np.uint16
    # bin 2500 // 1000 = 2, channel p = 1, row 9 // 4 = 2, col 5 // 4 = 1
    assert out[2, 1, 2, 1] == 1
    assert out.sum() == 1


def test_row_is_y():
    ev = make_events([0, 127], [127, 0], [0, 0], [0, 0])
    out = bin_events(ev, duration_us=10, dt_us=10)
    assert out[0, 0, 31, 0] == 1   # x=0, y=127: bottom-left
    assert out[0, 0, 0, 31] == 1   # x=127, y=0: top-right
    assert out.sum() == 2


def test_polarity_channels_and_single_channel():
    ev = make_events([8, 8, 9, 10], [4, 4, 5, 6], [0, 1, 2, 3], [0, 1, 1, 1])
    two = bin_events(ev, duration_us=4, dt_us=4)
    assert two[0, 0, 1, 2] == 1      # the OFF event
    assert two[0, 1, 1, 2] == 3      # three ON events in pixel (row 1, col 2)
    one = bin_events(ev, duration_us=4, dt_us=4, channels=1)
    assert one.shape == (1, 1, 32, 32)
    assert one[0, 0, 1, 2] == 4
    np.testing.assert_array_equal(one[:, 0], two.sum(axis=1))


def test_time_bins_ceil_and_last_partial_bin():
    ev = make_events([0, 0, 0, 0], [0, 0, 0, 0], [0, 999, 1000, 2499], [1, 1, 1, 1])
    out = bin_events(ev, duration_us=2500, dt_us=1000, downsample=1)
    assert out.shape == (3, 2, 128, 128)
    assert out[:, 1, 0, 0].tolist() == [2, 1, 1]


def test_non_square_sensor_is_width_height():
    ev = make_events([7], [3], [0], [0])
    out = bin_events(ev, duration_us=1, dt_us=1, sensor_size=(8, 4), downsample=2)
    assert out.shape == (1, 2, 2, 4)  # (T, C, H/2, W/2)
    assert out[0, 0, 1, 3] == 1


def test_empty_events():
    out = bin_events(make_events([], [], [], []), duration_us=100, dt_us=30)
    assert out.shape == (4, 2, 32, 32)
    assert not out.any()


def test_counts_saturate():
    n = 70_000
    ev = make_events(np.zeros(n), np.zeros(n), np.zeros(n), np.ones(n))
    out = bin_events(ev, duration_us=1, dt_us=1)
    assert out[0, 1, 0, 0] == 65535


def test_matches_loop_reference():
    rng = np.random.default_rng(0)
    n = 2000
    ev = make_events(rng.integers(0, 128, n), rng.integers(0, 128, n),
                     np.sort(rng.integers(0, 50_000, n)), rng.integers(0, 2, n))
    for channels in (1, 2):
        ref = np.zeros((5, channels, 16, 16), dtype=np.int64)
        for e in ev:
            c = int(e["p"]) if channels == 2 else 0
            ref[int(e["t"]) // 10_000, c, int(e["y"]) // 8, int(e["x"]) // 8] += 1
        got = bin_events(ev, duration_us=50_000, dt_us=10_000, downsample=8, channels=channels)
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("events, kwargs, match", [
    (make_events([0], [0], [100], [0]), {}, "t=100"),
    (make_events([0], [0], [-1], [0]), {}, "t=-1"),
    (make_events([128], [0], [0], [0]), {}, "x=128"),
    (make_events([0], [128], [0], [0]), {}, "y=128"),
    (make_events([0], [0], [0], [2]), {}, "p=2"),
    (make_events([0], [0], [0], [0]), {"dt_us": 0}, "dt_us"),
    (make_events([0], [0], [0], [0]), {"duration_us": 0}, "duration_us"),
    (make_events([0], [0], [0], [0]), {"channels": 3}, "channels"),
    (make_events([0], [0], [0], [0]), {"downsample": 3}, "divide"),
    (make_events([0], [0], [0], [0]), {"downsample": 0}, "downsample"),
    (make_events([0], [0], [0], [0]), {"sensor_size": (128,)}, "sensor_size"),
    (make_events([0], [0], [0], [0]), {"dt_us": 1.5}, "dt_us"),
    (np.zeros(2, dtype=[("x", "u2"), ("y", "u2"), ("t", "i8")]), {}, "missing p"),
])
def test_rejects(events, kwargs, match):
    args = {"duration_us": 100, "dt_us": 10}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        bin_events(events, **args)
