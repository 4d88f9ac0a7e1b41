# SPDX-License-Identifier: MIT
"""How well the online gradient agrees with the exact one (BPTT, analog network).

For a few architectures and every credit mode, random networks are fed random input
spikes for T steps; the cosine similarity between the online and the exact gradient
of every parameter tensor is reported (mean and minimum over seeds).

    python -m bench.gradient_alignment [--seeds 5] [--steps 60]
"""
from __future__ import annotations

import argparse

import numpy as np

from pysg.model import Conv2d, Dense, Flatten, Network, NetworkConfig, SumPool2d
from pysg.train.gradients import CREDIT_MODES, bptt_gradients, cosine, loss_weights, online_gradients

ARCHS = {
    "dense 2x8x8-32-5": [Flatten(), Dense(32), Dense(5)],
    "dense 2x8x8-32-16-5": [Flatten(), Dense(32), Dense(16), Dense(5)],
    "conv 2x8x8-c4-pool-16-5": [Conv2d(4, 3, 1, 1), SumPool2d(2), Flatten(), Dense(16), Dense(5)],
    # the shape of the two-convolution gesture network: a second convolution, delays into it
    "conv c4s2-c6s2-16-5 delays": [Conv2d(4, 2, 2, 0), Conv2d(6, 3, 2, 1), Flatten(), Dense(16), Dense(5)],
}
DELAYED = {"conv c4s2-c6s2-16-5 delays"}  # stage 1's inputs get per-channel delays 0..3 steps


def run(layers, credit, seed, t_steps, density=0.1, delayed=False):
    rng = np.random.default_rng(seed)
    net = Network(NetworkConfig((2, 8, 8), layers, n_buckets=4, dt_us=10_000), rng=rng)
    for k in net.params:
        if k.endswith(".b"):
            net.params[k] = rng.normal(0.2, 0.3, net.params[k].shape)
    if delayed:
        n_in, per_channel = net.stages[1].n_in, net.stages[0].syn.spatial
        net.params["1.delays"] = (np.arange(n_in) // per_channel % 4).astype(np.uint8)
    frames = (rng.random((t_steps, 4, 2, 8, 8)) < density).astype(np.float64)
    labels = rng.integers(0, 5, 4)
    w = loss_weights(np.full(4, t_steps), t_steps, 0.2)
    _, exact = bptt_gradients(net, frames, labels, w, act_reg=0.02)
    _, online = online_gradients(net, frames, labels, w, credit=credit, act_reg=0.02)
    return {k: cosine(online[k], exact[k]) for k in exact}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args(argv)
    print(f"{'architecture':26} {'credit':8} {'tensor':6} {'mean cos':>9} {'min cos':>8}")
    for name, layers in ARCHS.items():
        for credit in CREDIT_MODES:
            rows = [run(layers, credit, s, args.steps, delayed=name in DELAYED) for s in range(args.seeds)]
            for k in rows[0]:
                cs = np.array([r[k] for r in rows])
                print(f"{name:26} {credit:8} {k:6} {np.nanmean(cs):9.3f} {np.nanmin(cs):8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
