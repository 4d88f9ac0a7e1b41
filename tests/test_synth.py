# SPDX-License-Identifier: MIT
"""Tests of the synthetic gesture generator: DVS emulator, renderer, dataset writer."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

from pysg.datasets.gesture import GESTURE_CLASSES, GestureDataset, read_labels_csv, read_trials
from pysg.events import EVENT_DTYPE
from pysg.io.aedat31 import read_aedat31
from pysg.synth.dataset import synthesize_dataset
from pysg.synth.dvs import DVSConfig, DVSEmulator
from pysg.synth.gestures import Renderer, Repetition, UserStyle, frames, pose, render, rest_pose

C = 0.2


def _emulator(cfg: DVSConfig, width: int = 4, height: int = 2, seed: int = 0) -> DVSEmulator:
    return DVSEmulator(width, height, cfg, np.random.default_rng(seed))


def _log_frame(level: float, shape=(2, 4), eps: float = 0.01) -> np.ndarray:
    """A uniform frame whose log(I + eps) equals ``level``."""
    return np.full(shape, math.exp(level) - eps)


# --------------------------------------------------------------------------- emulator


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_log_ramp_gives_exactly_n_on_events_at_interpolated_times(n):
    emu = _emulator(DVSConfig.ideal(C))
    base = math.log(0.1 + 0.01)
    emu.reset(_log_frame(base), 10_000)
    ev = emu.step(_log_frame(base + n * C), 11_000)
    assert ev.dtype == EVENT_DTYPE
    assert len(ev) == n * 8
    assert np.all(ev["p"] == 1)
    for x in range(4):
        for y in range(2):
            t = ev["t"][(ev["x"] == x) & (ev["y"] == y)]
            expected = np.rint(10_000 + 1000.0 * np.arange(1, n + 1) / n)
            np.testing.assert_array_equal(t, expected)
    assert np.all(np.diff(ev["t"]) >= 0)


def test_exponential_intensity_ramp_over_many_frames():
    # I(t) = exp(a + b t) - eps: log(I + eps) rises linearly, 6 C over 6 ms, sampled
    # at 7 uneven frame times; every crossing time is exact (linear in each interval).
    emu = _emulator(DVSConfig.ideal(C), 1, 1)
    a, rate = math.log(0.05 + 0.01), 6 * C / 6000.0
    times = [0, 700, 1500, 2600, 3000, 4100, 5200, 6000]
    emu.reset(_log_frame(a, (1, 1)), times[0])
    ev = np.concatenate([emu.step(_log_frame(a + rate * t, (1, 1)), t) for t in times[1:]])
    np.testing.assert_array_equal(ev["t"], [1000, 2000, 3000, 4000, 5000, 6000])
    assert np.all(ev["p"] == 1)


def test_darkening_pixel_gives_off_events():
    emu = _emulator(DVSConfig.ideal(C))
    base = math.log(0.5 + 0.01)
    emu.reset(_log_frame(base), 0)
    ev = emu.step(_log_frame(base - 3 * C), 3000)
    assert len(ev) == 3 * 8
    assert np.all(ev["p"] == 0)
    np.testing.assert_array_equal(np.unique(ev["t"]), [1000, 2000, 3000])
    # Going back up gives ON events again.
    ev = emu.step(_log_frame(base), 6000)
    assert len(ev) == 3 * 8 and np.all(ev["p"] == 1)


def test_below_threshold_change_accumulates_across_frames():
    emu = _emulator(DVSConfig.ideal(C), 1, 1)
    base = math.log(0.3 + 0.01)
    emu.reset(_log_frame(base, (1, 1)), 0)
    assert len(emu.step(_log_frame(base + 0.6 * C, (1, 1)), 1000)) == 0
    ev = emu.step(_log_frame(base + 1.2 * C, (1, 1)), 2000)
    # Crossing at D = C, reached at 0.4 C of the 0.6 C rise of the second interval.
    np.testing.assert_array_equal(ev["t"], [1000 + round(1000 * 0.4 / 0.6)])


def test_static_scene_without_noise_is_silent():
    cfg = DVSConfig(sigma_c=0.03, leak_rate_hz=0.0, shot_rate_hz=0.0, cutoff_hz=300.0)
    emu = _emulator(cfg, 32, 24)
    img = np.random.default_rng(1).random((24, 32))
    emu.reset(img, 0)
    for k in range(1, 200):
        assert len(emu.step(img, k * 4000)) == 0


def test_refractory_period_drops_events():
    # 10 crossings at 100 µs spacing; refractory 250 µs keeps every third one.
    cfg = DVSConfig.ideal(C, refractory_us=250.0)
    emu = _emulator(cfg, 1, 1)
    base = math.log(0.1 + 0.01)
    emu.reset(_log_frame(base, (1, 1)), 0)
    ev = emu.step(_log_frame(base + 10 * C, (1, 1)), 1000)
    np.testing.assert_array_equal(ev["t"], [100, 400, 700, 1000])
    # The next interval continues from the last kept event (1000 µs): 1100 and 1200
    # are inside the refractory period, 1300 is the first one kept.
    ev = emu.step(_log_frame(base + 20 * C, (1, 1)), 2000)
    np.testing.assert_array_equal(ev["t"], [1300, 1600, 1900])
    # Without the refractory period all 20 are emitted.
    emu = _emulator(DVSConfig.ideal(C), 1, 1)
    emu.reset(_log_frame(base, (1, 1)), 0)
    assert len(emu.step(_log_frame(base + 20 * C, (1, 1)), 2000)) == 20


def test_threshold_mismatch_spreads_event_counts():
    cfg = DVSConfig.ideal(C, sigma_c=0.05)
    emu = _emulator(cfg, 64, 64)
    base = math.log(0.1 + 0.01)
    emu.reset(_log_frame(base, (64, 64)), 0)
    ev = emu.step(_log_frame(base + 10 * C, (64, 64)), 1000)
    counts = np.bincount(ev["y"].astype(np.int64) * 64 + ev["x"], minlength=64 * 64)
    assert counts.min() < 10 < counts.max()
    assert abs(counts.mean() - 10) < 0.5


def test_leak_noise_rate_matches_configuration():
    rate, seconds, n_pix = 2.0, 10.0, 32 * 32
    cfg = DVSConfig(sigma_c=0.0, leak_rate_hz=rate, leak_jitter=0.1, shot_rate_hz=0.0)
    emu = _emulator(cfg, 32, 32, seed=3)
    img = np.full((32, 32), 0.4)
    emu.reset(img, 0)
    ev = np.concatenate([emu.step(img, k * 10_000) for k in range(1, int(seconds * 100) + 1)])
    expected = rate * seconds * n_pix
    assert abs(len(ev) - expected) < 0.03 * expected
    assert np.all(ev["p"] == 1)  # leak events are ON events


def test_shot_noise_rate_matches_configuration_and_is_higher_in_the_dark():
    rate, bright, seconds, n_pix = 2.0, 0.25, 10.0, 32 * 32
    cfg = DVSConfig(sigma_c=0.0, leak_rate_hz=0.0, shot_rate_hz=rate, shot_bright_factor=bright,
                    refractory_us=0.0)
    counts = {}
    for level in (0.0, 0.5, 1.0):
        emu = _emulator(cfg, 32, 32, seed=4)
        img = np.full((32, 32), level)
        emu.reset(img, 0)
        ev = np.concatenate([emu.step(img, k * 10_000) for k in range(1, int(seconds * 100) + 1)])
        expected = rate * (1 + (bright - 1) * level) * seconds * n_pix
        sd = math.sqrt(expected)
        assert abs(len(ev) - expected) < 5 * sd, (level, len(ev), expected)
        assert abs(ev["p"].mean() - 0.5) < 0.03
        assert np.all(np.diff(ev["t"]) >= 0)
        counts[level] = len(ev)
    assert counts[0.0] > counts[0.5] > counts[1.0]


def test_emulator_is_reproducible_from_rng():
    cfg = DVSConfig(leak_rate_hz=1.0, shot_rate_hz=1.0, cutoff_hz=200.0)
    out = []
    for _ in range(2):
        emu = _emulator(cfg, 16, 16, seed=11)
        rng = np.random.default_rng(2)
        emu.reset(rng.random((16, 16)), 0)
        out.append(np.concatenate([emu.step(rng.random((16, 16)), k * 4000) for k in range(1, 50)]))
    np.testing.assert_array_equal(out[0], out[1])
    assert len(out[0]) > 0


def test_emulator_rejects_bad_input():
    emu = _emulator(DVSConfig.ideal(C))
    with pytest.raises(RuntimeError):
        emu.step(np.ones((2, 4)), 10)
    emu.reset(np.ones((2, 4)), 100)
    with pytest.raises(ValueError):
        emu.step(np.ones((2, 4)), 100)
    with pytest.raises(ValueError):
        emu.step(np.ones((4, 2)), 200)
    with pytest.raises(ValueError):
        DVSConfig(c_on=0.0)
    with pytest.raises(TypeError):
        DVSEmulator(4, 2, DVSConfig(), None)


# --------------------------------------------------------------------------- renderer


def _gesture_events(cls: int, style: UserStyle, rep: Repetition, seconds: float = 1.2,
                    cfg: DVSConfig | None = None) -> np.ndarray:
    emu = DVSEmulator(128, 128, cfg or DVSConfig(leak_rate_hz=0.0, shot_rate_hz=0.0),
                      np.random.default_rng(cls))
    out = []
    for i, (t, img) in enumerate(frames(cls, style, seconds, fps=250.0, rep=rep)):
        if i == 0:
            emu.reset(img, t)
        else:
            out.append(emu.step(img, t))
    return np.concatenate(out)


@pytest.fixture(scope="module")
def style() -> UserStyle:
    return UserStyle.draw(np.random.default_rng(7), "lab")


def test_style_and_frames_are_deterministic_from_seed():
    a = UserStyle.draw(np.random.default_rng(5), "fluorescent")
    b = UserStyle.draw(np.random.default_rng(5), "fluorescent")
    c = UserStyle.draw(np.random.default_rng(6), "fluorescent")
    assert a == b and a != c
    ra, rb = Repetition.draw(np.random.default_rng(1)), Repetition.draw(np.random.default_rng(1))
    assert ra == rb
    for cls in range(len(GESTURE_CLASSES)):
        fa = Renderer(a).render(cls, 0.37, ra, 2.0)
        fb = render(cls, b, 0.37, rb, 2.0)
        assert fa.shape == (128, 128) and fa.dtype == np.float32
        np.testing.assert_array_equal(fa, fb)
        assert 0.0 <= fa.min() and fa.max() <= 1.1
    assert not np.array_equal(render(0, a, 0.3), render(0, c, 0.3))


def test_gesture_blends_from_and_to_rest(style):
    rest = rest_pose(style).joints
    rep = Repetition.draw(np.random.default_rng(0))
    for cls in range(len(GESTURE_CLASSES)):
        np.testing.assert_allclose(pose(cls, style, 0.0, rep, 2.0).joints, rest, atol=1e-9)
        np.testing.assert_allclose(pose(cls, style, 2.0, rep, 2.0).joints, rest, atol=1e-9)
        # Limb lengths are preserved at every time.
        j = pose(cls, style, 0.77, rep, 2.0).joints
        upper = np.linalg.norm(j[:, 1] - j[:, 0], axis=1)
        fore = np.linalg.norm(j[:, 2] - j[:, 1], axis=1)
        np.testing.assert_allclose(upper, 24.0 * style.scale)
        np.testing.assert_allclose(fore, 22.0 * style.scale)


def test_render_rejects_bad_class(style):
    with pytest.raises(ValueError):
        render(11, style, 0.0)
    with pytest.raises(ValueError):
        UserStyle.draw(np.random.default_rng(0), "moonlight")


def test_every_class_produces_events(style):
    rng = np.random.default_rng(3)
    for cls in range(len(GESTURE_CLASSES)):
        ev = _gesture_events(cls, style, Repetition.draw(rng), seconds=1.2)
        mid = ev[(ev["t"] >= 300_000) & (ev["t"] < 900_000)]
        rate = len(mid) / 0.6
        assert 2_000 < rate < 150_000, (GESTURE_CLASSES[cls], rate)
        assert 0.2 < mid["p"].mean() < 0.8


def test_subject_right_arm_is_on_the_image_left(style):
    rep = Repetition()
    right = _gesture_events(GESTURE_CLASSES.index("right_hand_wave"), style, rep)
    left = _gesture_events(GESTURE_CLASSES.index("left_hand_wave"), style, rep)
    assert np.mean(right["x"] < style.cx) > 0.9
    assert np.mean(left["x"] > style.cx) > 0.9


@pytest.mark.parametrize("arm", ["right", "left"])
def test_rotation_direction_shows_in_event_centroid(style, arm):
    # The centroid of the events of 40 ms bins circles clockwise (positive
    # x*dy - y*dx in image coordinates, y down) for "clockwise", the other way
    # for "counter_clockwise".
    rep = Repetition()
    signs = {}
    for d in ("clockwise", "counter_clockwise"):
        cls = GESTURE_CLASSES.index(f"{arm}_arm_{d}")
        ev = _gesture_events(cls, style, rep, seconds=2.0)
        ev = ev[(ev["t"] >= 300_000) & (ev["t"] < 1_700_000)]
        b = ev["t"] // 40_000
        cx = np.bincount(b, ev["x"]) / np.maximum(np.bincount(b), 1)
        cy = np.bincount(b, ev["y"]) / np.maximum(np.bincount(b), 1)
        ok = np.bincount(b) > 50
        cx, cy = cx[ok] - cx[ok].mean(), cy[ok] - cy[ok].mean()
        signs[d] = np.sum(cx[:-1] * np.diff(cy) - cy[:-1] * np.diff(cx))
    assert signs["clockwise"] > 0 > signs["counter_clockwise"]


# --------------------------------------------------------------------------- dataset


def _digest(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    calls = []
    summary = synthesize_dataset(root, train_users=2, test_users=1, seconds=0.4, seed=3,
                                 lightings_per_user=1, workers=1,
                                 progress=lambda done, total, name: calls.append((done, total, name)))
    return root, summary, calls


def test_dataset_layout_is_written_and_readable(small_dataset):
    root, summary, calls = small_dataset
    train, test = read_trials(root, "train"), read_trials(root, "test")
    assert len(train) == 2 and len(test) == 1
    assert {n.split("_")[0] for n in train} == {"user01", "user02"}
    assert {n.split("_")[0] for n in test} == {"user03"}
    assert summary["files"] == 3 and summary["samples"] == 33
    assert [c[:2] for c in calls] == [(1, 3), (2, 3), (3, 3)]
    n_events, n_bytes = 0, 0
    for name in train + test:
        ev = read_aedat31(root / name)
        labels = read_labels_csv(root / name.replace(".aedat", "_labels.csv"))
        assert sorted(labels["cls"]) == list(range(1, 12))
        np.testing.assert_array_equal(labels["t_end"] - labels["t_start"], 400_000)
        assert np.all(labels["t_start"][1:] > labels["t_end"][:-1])  # pauses between gestures
        assert np.all(np.diff(ev["t"]) >= 0)
        assert ev["t"][0] >= 2_000_000  # starts at a random offset, not at zero
        assert ev["t"][0] < labels["t_start"][0] and ev["t"][-1] > labels["t_end"][-1]
        assert ev["x"].max() < 128 and ev["y"].max() < 128
        # More events inside the labelled gestures than in the still pauses.
        inside = np.zeros(len(ev), bool)
        for _, a, b in labels:
            inside |= (ev["t"] >= a) & (ev["t"] < b)
        dur_in = labels.size * 0.4
        dur_out = (ev["t"][-1] - ev["t"][0]) / 1e6 - dur_in
        assert inside.sum() / dur_in > 3 * (~inside).sum() / dur_out
        n_events += len(ev)
        n_bytes += (root / name).stat().st_size + (root / name.replace(".aedat", "_labels.csv")).stat().st_size
    assert summary["events"] == n_events
    assert summary["bytes"] == n_bytes + sum((root / f).stat().st_size
                                             for f in ("trials_to_train.txt", "trials_to_test.txt"))
    ds = GestureDataset(root, "train")
    assert len(ds) == 22
    assert {s.label for s in ds} == set(range(11))


def test_dataset_is_byte_reproducible_and_independent_of_workers(small_dataset, tmp_path):
    root, _, _ = small_dataset
    again = tmp_path / "again"
    synthesize_dataset(again, train_users=2, test_users=1, seconds=0.4, seed=3,
                       lightings_per_user=1, workers=2)
    assert _digest(root) == _digest(again)
    other = tmp_path / "other"
    synthesize_dataset(other, train_users=1, test_users=0, seconds=0.4, seed=4,
                       lightings_per_user=1, workers=1)
    first = [next(d.glob("user01_*.aedat")).read_bytes() for d in (root, other)]
    assert first[0] != first[1]


def test_dataset_rejects_bad_arguments(tmp_path):
    for kwargs in ({"train_users": -1}, {"train_users": 0, "test_users": 0}, {"lightings_per_user": 6},
                   {"seconds": 0}, {"workers": 0}):
        with pytest.raises(ValueError):
            synthesize_dataset(tmp_path, **kwargs)
