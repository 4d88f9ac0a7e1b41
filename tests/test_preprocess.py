# SPDX-License-Identifier: MIT
"""Event transforms: each filter against a slow pure-Python loop written here
from the rule in its docstring (exact equality on random streams), hand-computed
cases, streaming in random batches == one shot, Compose, to_dict/from_dict."""
from __future__ import annotations

import numpy as np
import pytest

from pysg.datasets.binning import bin_events
from pysg.events import EVENT_DTYPE, make_events
from pysg.preprocess import (
    BackgroundActivityFilter,
    Compose,
    Crop,
    Downsample,
    PolarityChannels,
    RefractoryFilter,
    from_dict,
    to_dict,
)
from tests.support.streams import stream


# --------------------------------------------------------------------------- #
# References: plain loops, one event at a time
# --------------------------------------------------------------------------- #
def ref_refractory(ev, refractory_us):
    last = {}
    keep = []
    for i, e in enumerate(ev):
        q = (int(e["x"]), int(e["y"]))
        t = int(e["t"])
        if q not in last or t - last[q] >= refractory_us:
            keep.append(i)
            last[q] = t
    return ev[keep]


def ref_baf(ev, window_us, r=1):
    last = {}
    keep = []
    for i, e in enumerate(ev):
        x, y, t = int(e["x"]), int(e["y"]), int(e["t"])
        ok = False
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if (dx, dy) == (0, 0):
                    continue
                tn = last.get((x + dx, y + dy))
                if tn is not None and 0 <= t - tn <= window_us:
                    ok = True
        if ok:
            keep.append(i)
        last[(x, y)] = t
    return ev[keep]


def in_batches(transform, ev, rng):
    f = transform.stream()
    cuts = np.sort(rng.integers(0, ev.size + 1, 6))
    parts = [f(p) for p in np.split(ev, cuts)]
    return np.concatenate(parts)


# --------------------------------------------------------------------------- #
# RefractoryFilter
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("refractory_us", [0, 1, 50, 700, 5000])
def test_refractory_matches_reference(seed, refractory_us):
    ev = stream(seed, 1500, sort=seed % 3 != 2)     # every third stream unsorted
    f = RefractoryFilter(refractory_us)
    want = ref_refractory(ev, refractory_us)
    np.testing.assert_array_equal(f(ev), want)
    np.testing.assert_array_equal(in_batches(f, ev, np.random.default_rng(seed)), want)


def test_refractory_hand_cases():
    # same pixel at t = 0, 50, 100, 150, 200 with R = 100: 0 kept, 50 dropped (does
    # not restart the period), 100 kept (difference == R), 150 dropped, 200 kept
    ev = make_events([1] * 5 + [2], [1] * 5 + [1], [0, 50, 100, 150, 200, 60], [1, 0, 1, 0, 1, 1])
    ev = ev[np.argsort(ev["t"], kind="stable")]
    out = RefractoryFilter(100)(ev)
    assert list(zip(out["x"], out["t"])) == [(1, 0), (2, 60), (1, 100), (1, 200)]
    # polarity is ignored; unsorted: going back in time is dropped
    ev = make_events([0, 0, 0], [0, 0, 0], [1000, 1000, 900], [0, 1, 1])
    assert list(RefractoryFilter(10)(ev)["t"]) == [1000]
    assert RefractoryFilter(10)(ev[:0]).dtype == EVENT_DTYPE


def test_refractory_state_survives_growth_of_the_map():
    f = RefractoryFilter(100).stream()
    a = f(make_events([1], [1], [0], [1]))
    b = f(make_events([40, 1], [30, 1], [10, 50], [1, 1]))  # map grows; (1, 1) still refractory
    c = f(make_events([1], [1], [100], [1]))
    assert (a.size, list(b["x"]), c.size) == (1, [40], 1)


# --------------------------------------------------------------------------- #
# BackgroundActivityFilter
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("window_us,r", [(0, 1), (30, 1), (300, 1), (3000, 1), (300, 2)])
def test_baf_matches_reference(seed, window_us, r):
    ev = stream(seed, 1200, sort=seed % 3 != 2, hot=seed % 2 == 0)
    f = BackgroundActivityFilter(window_us, neighbourhood=r)
    want = ref_baf(ev, window_us, r)
    np.testing.assert_array_equal(f(ev), want)
    np.testing.assert_array_equal(in_batches(f, ev, np.random.default_rng(seed)), want)


def test_baf_hand_cases():
    # (5,5)@0 no support; (6,6)@10 supported by (5,5) (diagonal, 10 <= 20);
    # (5,5)@15: its own old event does not count, (6,6)@10 does; (9,9)@20 isolated;
    # (6,5)@40: newest neighbour events at 15 and 10 -> 25, 30 > 20: dropped
    ev = make_events([5, 6, 5, 9, 6], [5, 6, 5, 9, 5], [0, 10, 15, 20, 40], [1, 0, 1, 1, 0])
    out = BackgroundActivityFilter(20)(ev)
    assert list(out["t"]) == [10, 15]
    # window boundary is inclusive; a pixel at the sensor edge (x = 0) works
    ev = make_events([0, 1], [0, 0], [100, 120], [1, 1])
    assert list(BackgroundActivityFilter(20)(ev)["t"]) == [120]
    assert list(BackgroundActivityFilter(19)(ev)["t"]) == []
    # the map is updated by dropped events too: (0,0) dropped still supports (1,1)
    ev = make_events([0, 1], [0, 1], [0, 5], [0, 0])
    assert list(BackgroundActivityFilter(10)(ev)["x"]) == [1]
    # neighbourhood 2 reaches two pixels away
    ev = make_events([0, 2], [0, 2], [0, 5], [0, 0])
    assert BackgroundActivityFilter(10)(ev).size == 0
    assert BackgroundActivityFilter(10, neighbourhood=2)(ev).size == 1


def test_large_sensor_corner_and_map_limit():
    ev = make_events([1279, 1278, 0], [719, 719, 0], [0, 3, 4], [1, 1, 1])
    np.testing.assert_array_equal(BackgroundActivityFilter(10)(ev), ev[1:2])
    np.testing.assert_array_equal(RefractoryFilter(10)(ev), ev)
    far = make_events([65535], [65535], [0], [1])
    for f in (BackgroundActivityFilter(10), RefractoryFilter(10)):
        with pytest.raises(ValueError, match="crop the events first"):
            f(far)


# --------------------------------------------------------------------------- #
# Crop, Downsample, PolarityChannels, Compose
# --------------------------------------------------------------------------- #
def test_crop_downsample_polarity():
    ev = make_events([0, 10, 19, 20, 15], [5, 5, 5, 5, 4], [1, 2, 3, 4, 5], [0, 1, 0, 1, 1])
    out = Crop(10, 5, 10, 3)(ev)
    assert list(zip(out["x"], out["y"], out["t"])) == [(0, 0, 2), (9, 0, 3)]
    out = Downsample(4)(ev)
    assert list(out["x"]) == [0, 2, 4, 5, 3] and list(out["y"]) == [1, 1, 1, 1, 1]
    assert list(PolarityChannels(1)(ev)["p"]) == [0] * 5
    np.testing.assert_array_equal(PolarityChannels()(ev), ev)
    assert ev["x"][1] == 10   # inputs are never modified


def test_downsample_and_polarity_match_binning():
    ev = stream(1, 2000, width=32, height=16, hot=False)
    for channels in (1, 2):
        direct = bin_events(ev, duration_us=20_000, dt_us=1000, sensor_size=(32, 16), downsample=4,
                            channels=channels)
        pre = Compose([Downsample(4), PolarityChannels(channels)])(ev)
        via = bin_events(pre, duration_us=20_000, dt_us=1000, sensor_size=(8, 4), downsample=1, channels=2)
        np.testing.assert_array_equal(via[:, :channels], direct)


def test_compose_streaming_equals_one_shot():
    ev = stream(3, 3000, width=40, height=30, hot=True)
    pipe = Compose((RefractoryFilter(200), BackgroundActivityFilter(500), Crop(4, 2, 30, 20), Downsample(2),
                    PolarityChannels(2)))
    one = pipe(ev)
    want = ref_baf(ref_refractory(ev, 200), 500)
    want = Downsample(2)(Crop(4, 2, 30, 20)(want))
    np.testing.assert_array_equal(one, want)
    np.testing.assert_array_equal(in_batches(pipe, ev, np.random.default_rng(0)), one)
    f = pipe.stream()
    f(ev)
    f.reset()
    np.testing.assert_array_equal(f(ev), one)


def test_to_dict_round_trip_and_validation():
    pipe = Compose((Crop(1, 2, 3, 4), RefractoryFilter(100), BackgroundActivityFilter(500, 2), Downsample(4),
                    PolarityChannels(1)))
    d = to_dict(pipe)
    assert d["transforms"][2] == {"type": "BackgroundActivityFilter", "window_us": 500, "neighbourhood": 2}
    assert from_dict(d) == pipe
    for bad in (lambda: Crop(-1, 0, 1, 1), lambda: Crop(0, 0, 0, 1), lambda: Downsample(0),
                lambda: Downsample(1.5), lambda: PolarityChannels(3), lambda: RefractoryFilter(-1),
                lambda: BackgroundActivityFilter(10, 0), lambda: from_dict({"type": "Nope"})):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(TypeError):
        Compose((lambda e: e,))
    with pytest.raises(ValueError, match="fields"):
        RefractoryFilter(10)(np.zeros(3))
