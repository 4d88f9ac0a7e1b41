# SPDX-License-Identifier: MIT
"""bench.recipe_limits's BPTT trainer: the exact reference's gradient, in the Trainer's loop."""
import numpy as np
import pytest

from bench.recipe_limits import BpttTrainer
from pysg.model import Dense, Flatten, Network, NetworkConfig
from pysg.train.gradients import analog_loss, bptt_gradients, loss_weights
from pysg.train.trainer import SequenceData, TrainConfig, Trainer


def problem(seed=3):
    rng = np.random.default_rng(seed)
    net = Network(NetworkConfig((2, 4, 4), [Flatten(), Dense(6), Dense(3)], n_buckets=3), rng=rng)
    net.params["1.delays"] = rng.integers(0, 3, net.stages[1].n_in).astype(np.uint8)
    frames = rng.integers(0, 3, (4, 10, 2, 4, 4)).astype(np.uint16)  # (B, T, C, H, W)
    lengths = np.array([10, 7, 10, 5])
    labels = rng.integers(0, 3, 4)
    return net, frames, lengths, labels


def test_bptt_trainer_batch_is_the_exact_gradient_and_the_analog_score():
    net, frames, lengths, labels = problem()
    cfg = TrainConfig(warmup=0.2, act_reg=0.05)
    ys = [[] for _ in net.stages[:-1]]
    loss, grads, score = BpttTrainer(net, cfg).batch_gradients(frames, labels, lengths, ys)

    seq = frames.swapaxes(0, 1).astype(np.float64)
    w = loss_weights(lengths, frames.shape[1], cfg.warmup)
    ref_loss, ref = bptt_gradients(net, seq, labels, w, act_reg=cfg.act_reg)
    assert loss == pytest.approx(analog_loss(net, seq, labels, w, act_reg=cfg.act_reg), rel=1e-12)
    assert loss == ref_loss
    assert set(grads) == set(ref) and all(np.array_equal(grads[k], ref[k]) for k in ref)
    logits = net.run(seq, spiking=False, dtype=np.float64).logits  # (T, B, classes)
    np.testing.assert_allclose(score, np.einsum("tb,tbc->bc", (w > 0).astype(float), logits), rtol=1e-12)
    assert len(ys[0]) == 2  # steps 0 and 8 of 10 (THETA_SAMPLE_EVERY)


def test_fit_takes_each_batch_from_batch_gradients():
    net, frames, lengths, labels = problem()
    calls = []

    class Counting(Trainer):
        def batch_gradients(self, *args):
            calls.append(len(args[1]))
            return super().batch_gradients(*args)

    Counting(net, TrainConfig(epochs=2, batch_size=3, max_shift=0)).fit(SequenceData(frames, lengths, labels, 10_000))
    assert calls == [3, 1, 3, 1]


def test_two_conv_network_is_the_default_with_a_second_convolution():
    from bench.recipe_limits import two_conv_network
    from pysg.recipes import default_network

    base, net = default_network(), two_conv_network()
    assert [(s.n_in, s.n_out) for s in net.stages] == [(2048, 1024), (1024, 512), (512, 96), (96, 11)]
    assert net.config.dt_us == base.config.dt_us and net.config.n_buckets == base.config.n_buckets
    np.testing.assert_array_equal(net.params["1.delays"], base.params["1.delays"])  # channel c at delay c % 4
    assert "2.delays" not in net.params
