# SPDX-License-Identifier: MIT
"""The hard synthetic set (pysg.synth.hard, docs/SYNTH.md): each effect measured alone
against a closed-form or statistical oracle, by switching it off (each effect has its own
random stream, so the rest of the file stays the same), and the easy set unchanged."""
from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pysg.synth.dataset import LEAD_IN_S, OFFSET_US, PAUSE_S, DEFAULT_DVS, synthesize_dataset, user_style
from pysg.synth.dvs import DVSConfig, DVSEmulator
from pysg.synth.hard import (HARD, HardConfig, HardRenderer, background_activity, hard_style, hot_pixel_events,
                             plan_hard_recording, shake_path, synthesize_hard_recording)
from pysg.synth.pose import rest_pose
from pysg.synth.style import UserStyle

SECONDS = 0.3
FPS = 100.0  # the recordings of these tests: a coarser frame grid than the default 250 (speed)
PIX = 128 * 128


def _digest(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


# SHA-256 of `synthesize_dataset(root, train_users=1, test_users=1, seconds=0.3, seed=5,
# lightings_per_user=1, workers=1)` written by the code before the hard set existed.
EASY_GOLDEN = {
    "trials_to_test.txt": "0c0bd993688da68d09e412036dbeab1ca08f3d8a293bf2ce7e90998670ca268c",
    "trials_to_train.txt": "d14fc85bf4a88e44cc839bb4385e1529ad3bb591499b1becb938218a9dc9fac0",
    "user01_led.aedat": "843c0d2ac5e4d68a434ae0a80d2d50aea0ade836d07a4f66534d82e569f7acec",
    "user01_led_labels.csv": "ea4005cab78d459253d75f3d608e862df570182a5d3c310bfc9bb30a2b61ea28",
    "user02_fluorescent.aedat": "f4a50d7f4920b0c3f659965552b9bb4ea0bd9bad975e6886daee624eb8937c1b",
    "user02_fluorescent_labels.csv": "9acf066528309d81c2e1d2222dab288de87140b45b569b162b18f04c7845faae",
}


def test_easy_default_is_byte_identical_to_before(tmp_path):
    synthesize_dataset(tmp_path / "a", train_users=1, test_users=1, seconds=SECONDS, seed=5,
                       lightings_per_user=1, workers=1)
    assert _digest(tmp_path / "a") == EASY_GOLDEN


def test_hard_is_byte_reproducible_from_the_seed(tmp_path):
    kw = dict(train_users=1, test_users=1, seconds=0.2, lightings_per_user=1, difficulty="hard", fps=FPS)
    s1 = synthesize_dataset(tmp_path / "a", seed=5, workers=1, **kw)
    synthesize_dataset(tmp_path / "b", seed=5, workers=2, **kw)
    a = _digest(tmp_path / "a")
    assert a == _digest(tmp_path / "b")
    assert a["user01_led.aedat"] != EASY_GOLDEN["user01_led.aedat"]
    synthesize_dataset(tmp_path / "c", train_users=1, test_users=0, seconds=0.2, lightings_per_user=1,
                       difficulty="hard", fps=FPS, seed=6, workers=1)
    other = next((tmp_path / "c").glob("user01_*.aedat")).read_bytes()
    assert other != (tmp_path / "a" / "user01_led.aedat").read_bytes()
    # the summary's labelled time is the sum of the (varying) windows
    assert 0.6 * 0.2 * 22 - 1e-9 <= s1["gesture_s"] <= 1.4 * 0.2 * 22 + 1e-9


def test_unknown_difficulty_is_refused(tmp_path):
    with pytest.raises(ValueError, match="difficulty 'medium'.*easy, hard"):
        synthesize_dataset(tmp_path, train_users=1, test_users=0, difficulty="medium")
    with pytest.raises(ValueError, match="margin_px"):
        HardConfig(shake_px=(1.0, 6.0))
    with pytest.raises(ValueError, match="HardConfig.noise_hz"):
        HardConfig(noise_hz=(2.0, 1.0))


def _record(cfg: HardConfig, user: int = 2, lighting: str = "lab"):
    ev, labels, _ = synthesize_hard_recording(7, user, lighting, seconds=SECONDS, fps=FPS, dvs_config=DEFAULT_DVS,
                                              base_style=user_style(7, user)[0], offset_us=OFFSET_US,
                                              lead_in_s=LEAD_IN_S, pause_s=PAUSE_S, cfg=cfg)
    return ev, labels


@pytest.fixture(scope="module")
def full():
    return _record(HARD)


def _scene(cfg: HardConfig = HARD, user: int = 2, lighting: str = "lab"):
    """The scene draws of the recording _record(cfg, user, lighting) makes."""
    hp = plan_hard_recording(7, user, lighting, seconds=SECONDS, dvs_config=DEFAULT_DVS,
                             base_style=user_style(7, user)[0], offset_us=OFFSET_US, lead_in_s=LEAD_IN_S,
                             pause_s=PAUSE_S, cfg=cfg)
    return hp.scene, hp.style


def _pixel_counts(ev) -> np.ndarray:
    return np.bincount(ev["y"].astype(np.int64) * 128 + ev["x"], minlength=PIX)


def test_hot_pixels_fire_at_their_configured_rates(full):
    ev, labels = full
    off, labels_off = _record(replace(HARD, hot_pixels=(0, 0)))
    assert labels == labels_off
    extra = _pixel_counts(ev) - _pixel_counts(off)
    scene, _ = _scene()
    span_s = (int(ev["t"].max()) - labels[0][1]) * 1e-6  # lower bound of the recording's span
    assert 2 <= scene.hot_pixels.size <= 8
    # only the hot pixels gain events, each a Poisson count of rate x span (5 sigma)
    assert set(np.flatnonzero(extra)) == set(scene.hot_pixels.tolist())
    t_all = (ev["t"].max() - ev["t"].min()) * 1e-6
    for pix, rate in zip(scene.hot_pixels, scene.hot_rates):
        lam = rate * t_all
        assert 50 <= rate <= 300
        assert abs(extra[pix] - lam) < 5 * math.sqrt(lam) + 0.02 * lam, (pix, extra[pix], lam)
    assert span_s > 0


def test_hot_pixel_train_rate_and_polarity():
    scene, _ = _scene()
    rng = np.random.default_rng(1)
    ev = hot_pixel_events(rng, scene, 5_000_000, 65_000_000)  # 60 s
    counts = _pixel_counts(ev)
    for pix, rate, pol in zip(scene.hot_pixels, scene.hot_rates, scene.hot_polarity):
        lam = rate * 60.0
        assert abs(counts[pix] - lam) < 5 * math.sqrt(lam)
        assert np.all(ev["p"][ev["y"].astype(np.int64) * 128 + ev["x"] == pix] == pol)
    assert ev["t"].min() >= 5_000_000 and ev["t"].max() < 65_000_000


def test_background_activity_matches_the_configured_rate_per_pixel(full):
    ev, labels = full
    off, labels_off = _record(replace(HARD, noise_hz=(0.0, 0.0)))
    assert labels == labels_off
    extra = _pixel_counts(ev) - _pixel_counts(off)
    assert extra.min() >= 0  # noise only adds events
    scene, _ = _scene()
    t_all = (int(ev["t"].max()) - int(ev["t"].min())) * 1e-6
    lam = scene.noise_hz * t_all          # per pixel
    total = extra.sum()
    # the total is Poisson(lam x pixels): 5 sigma, plus the span's edge (< 1 frame each side)
    assert abs(total - lam * PIX) < 5 * math.sqrt(lam * PIX) + scene.noise_hz * PIX * 0.01
    # each pixel is a binomial share of the total: index of dispersion 1 within 6 sigma
    var_ratio = extra.var() / extra.mean()
    assert abs(var_ratio - 1.0) < 6 * math.sqrt(2.0 / PIX)
    # the stream alone, over a long span: rate per pixel within a binomial bound
    sample = background_activity(np.random.default_rng(3), 1.5, 0, 20_000_000)
    n = sample.size
    assert abs(n - 1.5 * 20 * PIX) < 5 * math.sqrt(1.5 * 20 * PIX)
    assert abs(sample["p"].mean() - 0.5) < 5 * 0.5 / math.sqrt(n)


def test_background_fires_only_while_the_camera_moves():
    """A static person in a static cluttered room seen by an ideal sensor: every event
    falls in a frame interval in which the camera offset changed."""
    fps = 250.0
    style = replace(hard_style(user_style(7, 3)[0], 7, 3), flicker_amp=0.0)
    ren = HardRenderer(style)
    rng = np.random.default_rng(11)
    n = 600  # 2.4 s
    offsets, moving = shake_path(rng, n, fps)
    assert 1.0 - 1e-9 <= np.abs(offsets).max() <= 3.0 + 1e-9
    assert moving.any() and (~moving[1:]).any()
    np.testing.assert_array_equal(np.any(offsets[1:] != offsets[:-1], axis=1), moving[1:])
    emu = DVSEmulator(128, 128, DVSConfig.ideal(0.15), np.random.default_rng(0))
    canvas = ren.canvas(rest_pose(style), 0.0)
    t_us = np.rint(np.arange(n) * 1e6 / fps).astype(np.int64)
    per_frame = np.zeros(n, np.int64)
    emu.reset(ren.crop(canvas, offsets[0]), 0)
    for k in range(1, n):
        per_frame[k] = emu.step(ren.crop(canvas, offsets[k]), int(t_us[k])).size
    assert per_frame[~moving].sum() == 0
    assert per_frame[moving].sum() > 20 * moving.sum()   # a textured room fires when it moves
    # and a still camera crop is exactly the canvas
    np.testing.assert_array_equal(ren.crop(canvas, (0.0, 0.0)), canvas[6:134, 6:134])


def test_passersby_change_events_only_where_they_walk():
    base = replace(HARD, shake_px=(0.0, 0.0), hot_pixels=(0, 0), noise_hz=(0.0, 0.0))
    on, labels_on = _record(replace(base, passerby_hz=(1.5, 1.5)))
    off, labels_off = _record(replace(base, passerby_hz=(0.0, 0.0)))
    assert labels_on == labels_off
    scene, _ = _scene(replace(base, passerby_hz=(1.5, 1.5)))
    assert len(scene.passersby) >= 1

    def by_pixel(ev):
        key = ev["y"].astype(np.int64) * 128 + ev["x"]
        order = np.lexsort((ev["p"], ev["t"], key))
        return key[order], ev["t"][order]
    k_on, _ = by_pixel(on)
    k_off, _ = by_pixel(off)
    changed = np.flatnonzero(np.bincount(k_on, minlength=PIX) != np.bincount(k_off, minlength=PIX))
    assert changed.size > 50
    # rows the passers-by cover (centre +- half height + radius + bob + antialiasing)
    rows = np.zeros(128, bool)
    for pb in scene.passersby:
        lo, hi = pb.y - pb.hh - pb.r - 3.0, pb.y + pb.hh + pb.r + 3.0
        rows[max(0, int(math.floor(lo))):min(128, int(math.ceil(hi)) + 1)] = True
    assert rows[changed // 128].all()


def test_threshold_spread_is_the_configured_sensor_mismatch():
    scene, _ = _scene()
    assert HARD.sigma_c[0] <= scene.dvs.sigma_c <= HARD.sigma_c[1]
    assert HARD.c_mean[0] <= scene.dvs.c_on <= HARD.c_mean[1]
    emu = DVSEmulator(128, 128, scene.dvs, np.random.default_rng(2))
    c = emu.c_on.astype(np.float64)
    assert abs(c.mean() - scene.dvs.c_on) < 5 * scene.dvs.sigma_c / math.sqrt(PIX)
    assert abs(c.std() / scene.dvs.sigma_c - 1.0) < 5 * math.sqrt(0.5 / PIX) + 0.01


def test_label_windows_are_unchanged_by_the_noise_effects(full):
    _, labels = full
    off, labels_off = _record(replace(HARD, shake_px=(0.0, 0.0), passerby_hz=(0.0, 0.0), hot_pixels=(0, 0),
                                      noise_hz=(0.0, 0.0), sigma_c=(0.0, 0.0), clutter_items=(0, 0)))
    assert labels == labels_off
    assert sorted(c for c, _, _ in labels) == list(range(1, 12))
    lengths = np.array([b - a for _, a, b in labels])
    assert np.all(lengths >= 0.6 * SECONDS * 1e6 - 1) and np.all(lengths <= 1.4 * SECONDS * 1e6 + 1)
    assert np.all(np.array([a for _, a, _ in labels[1:]]) > np.array([b for _, _, b in labels[:-1]]))


def test_people_spread_wider_than_the_easy_set():
    hard = [hard_style(UserStyle(), 0, u) for u in range(1, 301)]
    easy = [user_style(0, u)[0] for u in range(1, 61)]
    for name, (lo, hi), centre in (("scale", HARD.scale, 0.0), ("period_s", HARD.period_s, 0.0),
                                   ("cx", HARD.cx_px, 64.0), ("shoulder_y", HARD.shoulder_dy, 46.0)):
        h = np.array([getattr(s, name) for s in hard]) - centre
        e = np.array([getattr(s, name) for s in easy]) - centre
        assert lo <= h.min() and h.max() <= hi
        # 300 uniform draws reach within 2 % of both ends (failure odds < 1e-2 each)
        assert h.min() < lo + 0.02 * (hi - lo) + 1e-12 and h.max() > hi - 0.02 * (hi - lo)
        assert h.max() - h.min() > 1.5 * (e.max() - e.min())


def test_cli_difficulty_option(tmp_path, capsys):
    from pysg.cli import main

    out = tmp_path / "hard"
    assert main(["--quiet", "synth", str(out), "--difficulty", "hard", "--train-users", "1", "--test-users", "0",
                 "--lightings-per-user", "1", "--seconds", "0.1", "--workers", "1", "--json"]) == 0
    again = synthesize_dataset(tmp_path / "lib", train_users=1, test_users=0, lightings_per_user=1, seconds=0.1,
                               workers=1, difficulty="hard")
    assert _digest(out) == _digest(tmp_path / "lib") and again["files"] == 1
    with pytest.raises(SystemExit) as e:
        main(["synth", str(tmp_path / "x"), "--difficulty", "medium"])
    assert e.value.code == 2 and "invalid choice: 'medium'" in capsys.readouterr().err
