# SPDX-License-Identifier: MIT
"""bench.hard_table's executed-MAC count: the input layer's synops and multiply-accumulates
worked out by hand on small frames, and what is left of a float run's synops is exactly
its hidden spikes times their fan-out (one MAC each: a neuron spikes at most once a step)."""
from __future__ import annotations

import numpy as np

from bench.hard_table import input_macs
from pysg.model import Conv2d, Dense, Flatten, Network, NetworkConfig
from pysg.train.trainer import SequenceData


def net_of(layers, shape=(1, 4, 4)) -> Network:
    cfg = NetworkConfig(input_shape=shape, layers=layers, n_buckets=2, dt_us=10_000, input_gain=1.0)
    return Network(cfg, rng=np.random.default_rng(3))


def data(frames: np.ndarray) -> SequenceData:
    return SequenceData(frames.astype(np.uint16), np.full(len(frames), frames.shape[1]), np.zeros(len(frames), int),
                        10_000)


def test_patch_conv_counts_cells_not_events():
    # 2x2 patches at stride 2: every pixel reaches exactly one position x 3 channels.
    net = net_of([Conv2d(3, 2, stride=2), Flatten(), Dense(2)])
    f = np.zeros((2, 3, 1, 4, 4))
    f[0, 0, 0, 1, 2] = 5   # 5 events in one cell: 15 synops, 3 MACs
    f[0, 2, 0, 3, 3] = 1
    f[1, 1, 0, 0, 0] = 2
    f[1, 1, 0, 0, 1] = 7
    got = input_macs(net, data(f))
    assert got == {"input_synops": 3 * (5 + 1 + 2 + 7), "input_macs": 3 * 4}


def test_padded_conv_fanout_at_the_border():
    # 3x3 kernel, stride 1, padding 1 on 4x4: a corner pixel reaches 2x2 positions, an inner one 3x3.
    net = net_of([Conv2d(2, 3, stride=1, padding=1), Flatten(), Dense(2)])
    f = np.zeros((1, 2, 1, 4, 4))
    f[0, 0, 0, 0, 0] = 4   # corner: fan-out 2 channels x 4 positions
    f[0, 1, 0, 1, 1] = 3   # inner: 2 x 9
    got = input_macs(net, data(f))
    assert got == {"input_synops": 4 * 8 + 3 * 18, "input_macs": 8 + 18}


def test_rest_of_the_synops_is_hidden_spikes_times_fanout():
    net = net_of([Flatten(), Dense(5), Dense(3)], shape=(2, 3, 3))
    rng = np.random.default_rng(0)
    f = rng.poisson(0.8, size=(4, 30, 2, 3, 3))
    r = net.run(f.reshape(4, 30, -1).transpose(1, 0, 2))
    inp = input_macs(net, data(f))
    assert inp["input_synops"] == int(f.sum()) * 5
    hidden = int(r.synops.sum()) - inp["input_synops"]
    assert int(r.spikes[0].sum()) > 0
    assert hidden == int(r.spikes[0].sum()) * 3
