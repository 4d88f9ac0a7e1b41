# SPDX-License-Identifier: MIT
"""The online trainer learns a task that needs memory, resumes exactly, and keeps
thresholds matched to activity."""
import numpy as np
import pytest

from pysg.model import Dense, Flatten, Network, NetworkConfig
from pysg.train.trainer import (SequenceData, TrainConfig, Trainer, adapt_thresholds, calibrate,
                                evaluate)


def moving_bar_task(n: int, rng: np.random.Generator, t_steps: int = 40) -> SequenceData:
    """A vertical bar sweeping across an 8-pixel row, left-to-right (class 0) or
    right-to-left (class 1), or blinking in place (class 2). Every pixel sees the same
    number of events in classes 0 and 1: only the order tells them apart, so the
    network must use its buckets as memory."""
    frames = np.zeros((n, t_steps, 1, 1, 8), dtype=np.uint16)
    labels = rng.integers(0, 3, n)
    for i, c in enumerate(labels):
        period = int(rng.integers(8, 12))
        phase = int(rng.integers(0, period))
        for t in range(t_steps):
            pos = ((t + phase) % period) * 8 // period
            if c == 0:
                frames[i, t, 0, 0, pos] = 1
            elif c == 1:
                frames[i, t, 0, 0, 7 - pos] = 1
            elif (t + phase) % 2 == 0:
                frames[i, t, 0, 0, int(rng.integers(0, 8))] = 1
    return SequenceData(frames, np.full(n, t_steps), labels, 10_000)


def small_net(seed=0):
    cfg = NetworkConfig((1, 1, 8), [Flatten(), Dense(24), Dense(3)], n_buckets=4, dt_us=10_000,
                        tau_ms=[[10, 20, 30, 40], [60, 30, 40, 50]])
    return Network(cfg, rng=np.random.default_rng(seed))


def test_online_training_learns_direction_of_motion():
    rng = np.random.default_rng(0)
    train, test = moving_bar_task(192, rng), moving_bar_task(96, rng)
    net = small_net()
    calibrate(net, train)
    before = evaluate(net, test)["accuracy"]
    cfg = TrainConfig(epochs=12, batch_size=16, lr=1e-2, max_shift=0, act_reg=0.0)
    Trainer(net, cfg).fit(train)
    after = evaluate(net, test)
    assert before < 0.6
    assert after["accuracy"] >= 0.9, after["confusion"]
    assert after["spikes_per_sample"] > 0


def test_resume_continues_bit_exactly(tmp_path):
    rng = np.random.default_rng(1)
    data = moving_bar_task(48, rng, t_steps=20)
    cfg = TrainConfig(epochs=4, batch_size=16, max_shift=0)
    straight = small_net()
    calibrate(straight, data)
    Trainer(straight, cfg).fit(data)

    class Interrupted(Exception):
        pass

    def stop_after_two(trainer):
        if trainer.epoch == 2:
            raise Interrupted

    first = small_net()
    calibrate(first, data)
    half = Trainer(first, cfg)
    with pytest.raises(Interrupted):
        half.fit(data, checkpoint=tmp_path / "c.ckpt", on_epoch=stop_after_two)
    resumed = Trainer.resume(tmp_path / "c.ckpt")
    assert resumed.epoch == 2
    resumed.fit(data)
    for k in straight.params:
        assert np.array_equal(resumed.net.params[k], straight.params[k]), k
    assert resumed.history.loss[:2] == half.history.loss


def test_resume_rejects_a_non_checkpoint(tmp_path):
    (tmp_path / "x.ckpt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a pysg training checkpoint"):
        Trainer.resume(tmp_path / "x.ckpt")


def test_adapted_thresholds_avoid_saturation():
    # After adaptation, a neuron at its 99th-percentile output needs at most one spike
    # per step: (1 - alpha_0') q / (2 theta) <= 1, with equality where it is not floored.
    net = small_net()
    rng = np.random.default_rng(2)
    y = [[np.abs(rng.normal(0, s, (4, 24))) for s in np.linspace(0.5, 3, 20)]]
    adapt_thresholds(net, y, quantile=99.0)
    q = np.percentile(np.stack(y[0]).reshape(-1, 24), 99.0, axis=0)
    a0 = net.alphas(1)[0]
    np.testing.assert_allclose((1 - a0) * q / (2 * net.params["0.theta"]), 1.0, rtol=1e-12)
    # A silent channel keeps a positive threshold.
    y[0] = [np.where(np.arange(24) == 5, 0.0, a) for a in y[0]]
    adapt_thresholds(net, y)
    assert np.all(net.params["0.theta"] > 0)
