# SPDX-License-Identifier: MIT
"""The C event filters (runtime_c sg_preprocess.h, through pysg.preprocess_c) against
the numpy transforms of pysg.preprocess: exact equality (events and their order, and the
per-pixel maps) on random streams with hot pixels, equal and unsorted timestamps,
extreme timestamps, random batch splits (streaming == one shot), a chain of filters,
and the bundled DVS128 recording; plus argument checks at the C boundary."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pysg.events import EVENT_DTYPE, make_events
from pysg.preprocess import BackgroundActivityFilter, Crop, Downsample, RefractoryFilter
from pysg.preprocess_c import (
    BackgroundActivityFilterC,
    RefractoryFilterC,
    crop_c,
    downsample_c,
    from_transform,
)
from pysg.runtime import SG_EVENT_DTYPE, SgRuntimeError, as_sg_events, ffi, lib
from tests.support.streams import stream  # the same random streams as the numpy filters' tests

SAMPLES = Path(__file__).resolve().parents[1] / "pysg" / "data" / "samples"
NONE = np.iinfo(np.int64).min


def same(c: np.ndarray, ref: np.ndarray) -> None:
    """Bit-exact equality of two event arrays; names the first differing index."""
    assert c.dtype == EVENT_DTYPE
    ref = ref.astype(EVENT_DTYPE)
    assert len(c) == len(ref), f"{len(c)} events from C, {len(ref)} from numpy"
    diff = np.flatnonzero(c != ref)
    assert diff.size == 0, f"first difference at index {diff[0]}: C {c[diff[0]]} numpy {ref[diff[0]]}"


def same_map(c_state: np.ndarray, ref_map: np.ndarray) -> None:
    """The C map (sensor sized) equals the numpy PixelTimeMap (grown to the pixels seen)."""
    h, w = ref_map.shape
    assert np.array_equal(c_state[:h, :w], ref_map)
    assert (c_state[h:, :] == NONE).all() and (c_state[:, w:] == NONE).all()


def batches(events: np.ndarray, rng: np.random.Generator, k: int) -> list[np.ndarray]:
    """k random consecutive batches (some empty) covering the stream."""
    cuts = np.sort(rng.integers(0, len(events) + 1, k - 1))
    return np.split(events, cuts)


# --------------------------------------------------------------------------- #
# Stateless: crop, downsample
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("box", [(0, 0, 1, 1), (2, 3, 5, 4), (0, 0, 12, 9), (10, 7, 100, 100),
                                 (50, 0, 3, 3), (0, 0, 65536, 65536), (65535, 0, 4, 4), (3, 4, 2**40, 1)])
def test_crop_equals_numpy(seed, box):
    ev = stream(seed, 500, sort=seed % 2 == 0)
    same(crop_c(ev, *box), Crop(*box)(ev))


def test_crop_full_coordinate_range():
    x = np.array([0, 1, 65534, 65535, 65535, 40000], np.int64)
    ev = make_events(x, x[::-1], np.arange(6), np.ones(6))
    for box in [(0, 0, 65535, 65535), (65535, 0, 1, 65536), (40000, 1, 25536, 65535), (1, 0, 65534, 65536)]:
        same(crop_c(ev, *box), Crop(*box)(ev))
    # an origin beyond the uint16 range keeps nothing (numpy's crop raises OverflowError there)
    assert len(crop_c(ev, 65536, 0, 10, 10)) == 0 == len(crop_c(ev, 0, 2**40, 10, 10))


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 7, 128, 65535])
def test_downsample_equals_numpy(factor):
    ev = stream(factor % 5, 400, width=65536, height=300)
    same(downsample_c(ev, factor), Downsample(factor)(ev))
    # a factor beyond the uint16 range maps every pixel to 0 (numpy's raises OverflowError there)
    for big in (65536, 2**40):
        out = downsample_c(ev, big)
        assert (out["x"] == 0).all() and (out["y"] == 0).all() and np.array_equal(out["t"], ev["t"])


def test_inputs_are_not_modified_and_empty_batches_work():
    ev = stream(0, 300)
    sg = as_sg_events(ev).copy()
    keep_ev, keep_sg = ev.copy(), sg.copy()
    for src in (ev, sg):
        crop_c(src, 2, 2, 3, 3)
        downsample_c(src, 2)
        RefractoryFilterC(500, 12, 9)(src)
        BackgroundActivityFilterC(500, 12, 9)(src)
    assert np.array_equal(ev, keep_ev) and np.array_equal(sg, keep_sg)
    empty = ev[:0]
    for out in (crop_c(empty, 0, 0, 1, 1), downsample_c(empty, 3), RefractoryFilterC(1, 1, 1)(empty),
                BackgroundActivityFilterC(1, 1, 1)(empty)):
        assert out.dtype == EVENT_DTYPE and len(out) == 0


# --------------------------------------------------------------------------- #
# Stateful: refractory, background activity
# --------------------------------------------------------------------------- #
REFRACTORY = [0, 1, 7, 50, 333, 5000, 10**9]
WINDOWS = [(0, 1), (7, 1), (100, 1), (400, 2), (1500, 1), (3000, 3), (10**9, 1)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("refractory_us", REFRACTORY)
def test_refractory_equals_numpy(seed, refractory_us):
    rng = np.random.default_rng(100 + seed)
    ev = stream(seed, 2000, sort=seed != 4)          # seed 4: unsorted timestamps
    f = RefractoryFilter(refractory_us)
    c = RefractoryFilterC(refractory_us, 12, 9)
    same(c(ev), f(ev))
    # streaming in random batches == one shot, and the maps agree after every batch
    s, c = f.stream(), RefractoryFilterC(refractory_us, 16, 10)
    for b in batches(ev, rng, 9):
        same(c(b), s(b))
        same_map(c.state, s.state.t)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("window_us,r", WINDOWS)
def test_background_activity_equals_numpy(seed, window_us, r):
    rng = np.random.default_rng(200 + seed)
    ev = stream(seed, 2000, sort=seed != 4)
    f = BackgroundActivityFilter(window_us, r)
    same(BackgroundActivityFilterC(window_us, 12, 9, r)(ev), f(ev))
    s, c = f.stream(), BackgroundActivityFilterC(window_us, 13, 11, r)
    for b in batches(ev, rng, 9):
        same(c(b), s(b))
        same_map(c.state, s.state.t)


def test_one_event_per_batch_equals_one_shot():
    ev = stream(7, 400)
    for f, c in [(RefractoryFilter(300), RefractoryFilterC(300, 12, 9)),
                 (BackgroundActivityFilter(800, 2), BackgroundActivityFilterC(800, 12, 9, 2))]:
        got = np.concatenate([c(ev[i:i + 1]) for i in range(len(ev))])
        same(got, f(ev))
        c.reset()
        same(c(ev), f(ev))                            # reset: a fresh stream again


def test_hand_cases():
    # refractory: compares with the last KEPT event; t - L >= R keeps (equality included)
    ev = make_events([0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 5, 10, 19, 1], [1, 0, 1, 0, 1])
    assert RefractoryFilterC(10, 2, 1)(ev)["t"].tolist() == [0, 10, 1]
    # BAF: the own pixel never supports; the map takes every event, kept or not
    ev = make_events([0, 0, 1, 1, 3], [0, 0, 0, 0, 0], [0, 1, 2, 100, 101], [1] * 5)
    assert BackgroundActivityFilterC(10, 4, 1)(ev)["t"].tolist() == [2]
    # BAF: a later-timestamped neighbour (negative difference) does not support
    ev = make_events([0, 1], [0, 0], [50, 40], [1, 1])
    assert len(BackgroundActivityFilterC(100, 2, 1)(ev)) == 0


def test_extreme_timestamps_wrap_like_numpy():
    """Differences are int64 and wrap like numpy's; INT64_MIN is 'no event' in both."""
    big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    rng = np.random.default_rng(5)
    t = rng.choice(np.array([small, small + 1, small + 5, -5, 0, 3, big - 3, big], np.int64), 600)
    ev = np.zeros(600, EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = rng.integers(0, 3, 600), rng.integers(0, 2, 600), t, 1
    for r in (0, 1, 4, 2**62, big):
        same(RefractoryFilterC(r, 3, 2)(ev), RefractoryFilter(r)(ev))
    for w in (0, 1, 4, 2**62, big):
        same(BackgroundActivityFilterC(w, 3, 2)(ev), BackgroundActivityFilter(w)(ev))


def test_a_chain_streams_like_numpy():
    """Crop -> Refractory -> Downsample -> BAF, in batches, == the numpy chain one shot."""
    rng = np.random.default_rng(11)
    ev = stream(11, 5000, width=40, height=30, span=200_000)
    chain = [Crop(4, 2, 32, 24), RefractoryFilter(400), Downsample(2), BackgroundActivityFilter(3000)]
    want = ev
    for tr in chain:
        want = tr(want)
    cs = [from_transform(chain[0], 40, 30), from_transform(chain[1], 32, 24), from_transform(chain[2], 32, 24),
          from_transform(chain[3], 16, 12)]
    got = []
    for b in batches(ev, rng, 13):
        for c in cs:
            b = c(b)
        got.append(b)
    same(np.concatenate(got), want)


def test_bundled_recording():
    """The DVS128 sample (128 x 128, ~0.6 M events): every filter, one shot and in batches."""
    from pysg.io import read_events

    paths = sorted(SAMPLES.glob("*.aedat"))
    assert paths, f"no .aedat sample in {SAMPLES}"
    rec = read_events(paths[0])
    ev = rec.events
    w, h = int(rec.width or 128), int(rec.height or 128)
    rng = np.random.default_rng(3)
    same(crop_c(ev, 20, 10, 64, 80), Crop(20, 10, 64, 80)(ev))
    same(downsample_c(ev, 4), Downsample(4)(ev))
    for f, c in [(RefractoryFilter(1000), RefractoryFilterC(1000, w, h)),
                 (BackgroundActivityFilter(2000), BackgroundActivityFilterC(2000, w, h))]:
        ref = f(ev)
        assert 0 < len(ref) < len(ev)
        same(c(ev), ref)
        c.reset()
        got = np.concatenate([c(b) for b in batches(ev, rng, 20)])
        same(got, ref)


# --------------------------------------------------------------------------- #
# Boundaries
# --------------------------------------------------------------------------- #
def test_events_outside_the_map_are_refused_and_change_nothing():
    ev = stream(1, 200)
    for c in (RefractoryFilterC(100, 12, 9), BackgroundActivityFilterC(100, 12, 9)):
        c(ev[:100])
        before = c.state
        bad = ev[100:].copy()
        bad["x"][-1] = 12
        with pytest.raises(ValueError, match="outside the 12 x 9"):
            c(bad)
        assert np.array_equal(c.state, before)


def test_python_arguments_are_checked():
    ev = stream(0, 10)
    for call in (lambda: crop_c(ev, -1, 0, 1, 1), lambda: crop_c(ev, 0, 0, 0, 1), lambda: downsample_c(ev, 0),
                 lambda: downsample_c(ev, True), lambda: RefractoryFilterC(-1, 4, 4),
                 lambda: RefractoryFilterC(1, 0, 4), lambda: RefractoryFilterC(1, 4, 65536),
                 lambda: RefractoryFilterC(2**63, 4, 4), lambda: BackgroundActivityFilterC(1, 4, 4, 0),
                 lambda: BackgroundActivityFilterC(-1, 4, 4), lambda: from_transform(object(), 4, 4)):
        with pytest.raises(ValueError):
            call()


def test_c_boundary_checks():
    assert lib.sg_refractory_state_size(128, 128) == 128 * 128 * 8 == lib.sg_baf_state_size(128, 128)
    assert lib.sg_refractory_state_size(0, 5) == 0 == lib.sg_baf_state_size(5, 0)
    mem = ffi.new("int64_t[]", 17)
    rf, bf = ffi.new("sg_refractory *"), ffi.new("sg_baf *")
    assert lib.sg_refractory_init(rf, 1, 4, 4, mem, 16 * 8) == lib.SG_OK
    assert lib.sg_refractory_init(rf, 1, 4, 4, mem, 16 * 8 - 1) == lib.SG_ERR_ARENA
    assert lib.sg_refractory_init(rf, -1, 4, 4, mem, 16 * 8) == lib.SG_ERR_ARG
    assert lib.sg_refractory_init(rf, 1, 4, 4, ffi.NULL, 16 * 8) == lib.SG_ERR_ARG
    assert lib.sg_refractory_init(rf, 1, 4, 4, ffi.cast("char *", mem) + 4, 16 * 8) == lib.SG_ERR_ARG
    assert lib.sg_baf_init(bf, 1, 1, 4, 4, mem, 16 * 8) == lib.SG_OK
    assert lib.sg_baf_init(bf, 1, 0, 4, 4, mem, 16 * 8) == lib.SG_ERR_ARG
    assert lib.sg_baf_init(bf, 1, 1, 0, 4, mem, 16 * 8) == lib.SG_ERR_ARG
    assert lib.sg_baf_init(bf, 1, 1, 4, 4, mem, 8) == lib.SG_ERR_ARENA
    n = ffi.new("size_t *")
    ev = np.zeros(2, SG_EVENT_DTYPE)
    ev["x"] = [1, 4]
    p = ffi.from_buffer("sg_event[]", ev)
    assert lib.sg_baf_init(bf, 1, 1, 4, 4, mem, 16 * 8) == lib.SG_OK
    n[0] = 99
    assert lib.sg_baf_filter(bf, p, 2, n) == lib.SG_ERR_ARG and n[0] == 0        # x = 4 outside
    assert lib.sg_refractory_filter(rf, p, 2, n) == lib.SG_ERR_ARG and n[0] == 0
    assert lib.sg_refractory_filter(rf, p, 1, n) == lib.SG_OK and n[0] == 1
    assert lib.sg_refractory_filter(rf, ffi.NULL, 0, n) == lib.SG_OK and n[0] == 0
    assert lib.sg_refractory_filter(rf, ffi.NULL, 1, n) == lib.SG_ERR_ARG
    assert lib.sg_refractory_filter(rf, p, 1, ffi.NULL) == lib.SG_ERR_ARG
    assert lib.sg_refractory_filter(ffi.NULL, p, 1, n) == lib.SG_ERR_ARG
    assert lib.sg_crop(0, 0, 0, 1, p, 2, n) == lib.SG_ERR_ARG
    assert lib.sg_crop(0, 0, 1, 1, p, 2, ffi.NULL) == lib.SG_ERR_ARG
    assert lib.sg_downsample(0, p, 2) == lib.SG_ERR_ARG
    assert lib.sg_refractory_reset(ffi.NULL) == lib.SG_ERR_ARG == lib.sg_baf_reset(ffi.NULL)
    assert mem[16] == 0                                 # never written past the map
    with pytest.raises(SgRuntimeError):
        from pysg.runtime import _check
        _check(lib.sg_downsample(0, p, 2), what="sg_downsample")
