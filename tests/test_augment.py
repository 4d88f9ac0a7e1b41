# SPDX-License-Identifier: MIT
"""Training augmentation (pysg.train.trainer.augment): a stretch plays a gesture slower or
faster with the events a sensor would give, thinning drops events binomially, and the
draws are made so that any subset of a batch (a rank's share) sees the same samples; a
mirrored gesture gets its mirror image's label."""
from dataclasses import replace

import numpy as np
import pytest

from pysg.train.trainer import (SampleDraw, TrainConfig, augment, augment_labels, draw_augmentations,
                                stretch_sample)


def moving_dot(t_steps: int = 12, count: int = 1000) -> np.ndarray:
    """(T, 1, 4, 16): a dot of `count` events per step moving one column per step."""
    f = np.zeros((t_steps, 1, 4, 16), np.uint16)
    for t in range(t_steps):
        f[t, 0, 1, t] = count
    return f


def test_slower_shares_each_source_steps_events_among_its_output_steps():
    f = moving_dot()
    out = stretch_sample(f, 12, 2.0, np.random.default_rng(0))
    assert out.shape == (24, 1, 4, 16)
    # output steps 2u and 2u + 1 show source step u: the dot at column u, its 1,000 events split
    for u in range(12):
        pair = out[2 * u: 2 * u + 2]
        assert np.count_nonzero(pair) == 2 and np.all(pair[:, 0, 1, u] > 0)
        assert int(pair.sum()) == 1000
    n = out[::2].sum(axis=(1, 2, 3))
    assert abs(n.mean() - 500) < 3 * np.sqrt(250 / 12)  # binomial(1000, 1/2)
    assert n.std() == pytest.approx(np.sqrt(250), rel=0.5)
    three = stretch_sample(f, 12, 2.5, np.random.default_rng(1))  # source steps span 2 or 3 outputs
    assert len(three) == 30 and int(three.sum()) == int(f.sum())
    for u in range(12):
        assert int(three[:, 0, 1, u].sum()) == 1000 and np.count_nonzero(three[:, 0, 1, u]) in (2, 3)


def test_faster_adds_source_steps_exactly():
    f = moving_dot(count=7)
    out = stretch_sample(f, 12, 0.5, np.random.default_rng(0))
    assert out.shape == (6, 1, 4, 16)
    for t in range(6):  # output step t holds source steps 2t and 2t + 1, nothing drawn
        assert np.array_equal(out[t], f[2 * t] + f[2 * t + 1])
    assert int(out.sum()) == int(f.sum())


def test_stretch_reads_only_the_sample_and_saturates():
    f = np.zeros((12, 1, 4, 16), np.uint16)
    f[:8, 0, 1, 5] = 40000
    f[8:] = 9  # padding past the sample's 8 steps must not be read
    out = stretch_sample(f, 8, 0.5, np.random.default_rng(0))
    assert out.shape == (4, 1, 4, 16) and out.dtype == np.uint16
    assert np.count_nonzero(out) == 4 and np.all(out[:, 0, 1, 5] == 65535)  # 80,000 events clip, not wrap


def test_thinning_is_a_binomial_draw_per_count():
    f = np.zeros((1, 3, 2, 8, 8), np.uint16)
    f[0, :, :, 2:6, 2:6] = 100
    out, lengths = augment(f, np.array([3]), [SampleDraw((0, 0), keep=0.3, seed=5)])
    assert lengths.tolist() == [3]
    live = f > 0
    assert np.all(out[~live] == 0) and np.all(out <= f)
    kept = out[live].astype(float)
    assert kept.mean() == pytest.approx(30, abs=3 * np.sqrt(21 / kept.size))
    assert kept.var() == pytest.approx(21, rel=0.25)  # n p (1 - p)


def test_shift_and_padding_to_a_batch_length():
    f = np.zeros((2, 4, 1, 6, 6), np.uint16)
    f[:, :, 0, 2, 3] = 1
    out, lengths = augment(f, np.array([4, 2]), [SampleDraw((1, -2)), SampleDraw((0, 0), stretch=2.0, seed=1)])
    assert lengths.tolist() == [4, 4] and out.shape == (2, 4, 1, 6, 6)
    assert np.array_equal(np.argwhere(out[0, 0, 0]), [[3, 1]])
    # the 2-step sample played twice slower fills the batch's 4 steps, only at its pixel
    assert np.count_nonzero(out[1]) == np.count_nonzero(out[1, :, 0, 2, 3]) and out[1].max() <= 1


def test_without_augmentation_only_the_shifts_are_drawn():
    """Older checkpoints resume with the same random stream: no stretch and no thinning
    draw nothing beyond the shifts."""
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    draws = draw_augmentations(a, 5, TrainConfig())
    expect = [tuple(int(v) for v in b.integers(-3, 4, size=2)) for _ in range(5)]
    assert [d.shift for d in draws] == expect
    assert all(d.stretch is None and d.keep is None for d in draws)
    assert a.bit_generator.state == b.bit_generator.state


def test_a_share_of_the_batch_sees_the_same_samples():
    rng = np.random.default_rng(0)
    f = rng.poisson(3, (5, 10, 2, 8, 8)).astype(np.uint16)
    lengths = np.array([10, 7, 9, 4, 10])
    draws = draw_augmentations(np.random.default_rng(1), 5, TrainConfig(stretch_max=1.5, keep_min=0.5))
    assert len({d.stretch for d in draws}) == 5 and all(0.5 <= d.keep <= 1 for d in draws)
    assert all(1 / 1.5 <= d.stretch <= 1.5 for d in draws)
    whole, whole_len = augment(f, lengths, draws)
    assert whole_len.tolist() == [d.length(n) for d, n in zip(draws, lengths)]
    mine = [1, 3]
    part, part_len = augment(f[mine], lengths[mine], [draws[i] for i in mine], t_steps=whole.shape[1])
    assert np.array_equal(part, whole[mine]) and np.array_equal(part_len, whole_len[mine])


def _turning(frames: np.ndarray) -> float:
    """Signed area swept by the events' centroid (image coordinates, y down): > 0 for a
    clockwise circle as seen on the image."""
    ys, xs = [], []
    for f in frames:
        y, x = np.nonzero(f.sum(axis=0))
        ys.append(y.mean())
        xs.append(x.mean())
    x, y = np.array(xs) - np.mean(xs), np.array(ys) - np.mean(ys)
    return float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def test_a_mirrored_clockwise_circle_is_counter_clockwise_with_the_mirrored_label():
    from pysg.datasets.gesture import GESTURE_CLASSES, mirror_labels

    t_steps = 16
    f = np.zeros((1, t_steps, 1, 16, 16), np.uint16)
    for t in range(t_steps):  # top -> right -> bottom -> left: clockwise on the image (pysg.synth)
        a = 2 * np.pi * t / t_steps
        f[0, t, 0, int(round(8 - 5 * np.cos(a))), int(round(8 + 5 * np.sin(a)))] = 3
    assert _turning(f[0]) > 0
    mirror = mirror_labels(GESTURE_CLASSES)
    cw = GESTURE_CLASSES.index("right_arm_clockwise")
    out, _ = augment(f, np.array([t_steps]), [SampleDraw((0, 0), mirror=True)])
    assert np.array_equal(out[0], f[0, ..., ::-1])
    assert _turning(out[0]) < 0
    label = augment_labels(np.array([cw]), [SampleDraw((0, 0), mirror=True)], mirror)
    assert GESTURE_CLASSES[label[0]] == "left_arm_counter_clockwise"
    assert [mirror[m] for m in mirror] == list(range(len(mirror)))  # a mirror of a mirror is the original
    assert {GESTURE_CLASSES[i] for i in range(11) if mirror[i] == i} == {
        "hand_clapping", "arm_roll", "air_drums", "air_guitar", "other"}


def test_mirror_labels_refuses_unknown_classes():
    from pysg.datasets.gesture import GESTURE_CLASSES, mirror_labels

    assert mirror_labels(["cat", "dog"]) is None
    assert mirror_labels(GESTURE_CLASSES[:2]) is None  # right_hand_wave without left_hand_wave
    assert mirror_labels(GESTURE_CLASSES[:3]) == [0, 2, 1]


def test_flips_are_drawn_last_and_only_when_asked():
    base = draw_augmentations(np.random.default_rng(2), 6, TrainConfig(keep_min=0.5))
    flipped = draw_augmentations(np.random.default_rng(2), 6, TrainConfig(keep_min=0.5, mirror=list(range(11))))
    assert [replace(d, mirror=False) for d in flipped] == base  # the earlier draws unchanged
    assert 0 < sum(d.mirror for d in flipped) < 6 and not any(d.mirror for d in base)
