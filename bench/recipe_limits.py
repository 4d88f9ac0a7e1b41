# SPDX-License-Identifier: MIT
"""What limits the default recipe on the hard set: the learning rule, or the network?

The default network (`pysg.recipes.default_network`: its delays and 40 ms steps) is trained
on a folder's train split by up to three rules, everything else the same (`pysg train`'s
configuration, `pysg.recipes.recipe_config`: seed, calibration, random shifts and mirrored
gestures, Adam, cosine schedule, threshold adaptation):

* ``online``: `pysg train`'s rule (pysg.train.gradients.online_step_grads, with --credit's
  credit to the layers below: TrainConfig's, "traced", unless said), spikes in the loop;
* ``online-analog``: the same rule on the analog network (the sigma-delta pair as identity);
* ``bptt``: the exact gradient of the same loss through the analog network, back-propagated
  through time (pysg.train.gradients.bptt_gradients; memory O(T), a reference, not a recipe).

Each model is scored (pysg.scoring's rule) on the test split (people unseen in training)
and on the train split (no shifts), with spikes and on the analog network. If
the exact gradient fits the train people better but does no better on unseen people, the
rule is not what holds the test accuracy back.

    OMP_NUM_THREADS=1 python -m bench.recipe_limits --data /tmp/hardrun/g_hard \\
        [--rules online online-analog bptt] [--arch default|two-conv] [--credit traced|all|bucket0]
        [--no-mirror] [--epochs 60] [--seed 0] [--save-dir DIR] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from pysg.model import Conv2d, Dense, Flatten, Network, NetworkConfig
from pysg.recipes import default_network, load_split, recipe_config
from pysg.train.gradients import CREDIT_MODES, bptt_gradients, loss_weights
from pysg.train.trainer import THETA_SAMPLE_EVERY, TrainConfig, Trainer, calibrate, evaluate

RULES = ("online", "online-analog", "bptt")
ARCHS = ("default", "two-conv")


def two_conv_network(seed: int = 0) -> Network:
    """The default with a second convolution: 16 channels 4x4 stride 4 -> 32 channels 3x3
    stride 2 (a 32x4x4 map) -> 96 -> 11; the second convolution reads the first's channel c
    through the default's delay of c (pysg.recipes.DEFAULT_DELAYS_MS[c % 4])."""
    base = default_network(seed=seed)
    cfg = NetworkConfig.from_dict(base.config.to_dict())
    cfg.layers = [Conv2d(16, 4, stride=4), Conv2d(32, 3, stride=2, padding=1), Flatten(), Dense(96),
                  Dense(len(cfg.classes))]
    cfg.tau_ms = None  # the default time constants, now for four synaptic layers
    net = Network(cfg, rng=np.random.default_rng(seed))
    net.params["1.delays"] = base.params["1.delays"].copy()  # the same first convolution's map, the same delays
    return net


def network(arch: str, seed: int) -> Network:
    return default_network(seed=seed) if arch == "default" else two_conv_network(seed)


class BpttTrainer(Trainer):
    """The numpy Trainer with the exact gradient of the analog network per batch."""

    def batch_gradients(self, frames, labels, lengths, y_samples):
        net, t_steps, batch = self.net, frames.shape[1], frames.shape[0]
        seq = np.ascontiguousarray(frames.swapaxes(0, 1), dtype=np.float64)  # (T, B, C, H, W)
        weights = loss_weights(lengths, t_steps, self.cfg.warmup)
        loss, grads = bptt_gradients(net, seq, labels, weights, act_reg=self.cfg.act_reg)
        # bptt_gradients keeps no logits: the forward again for the score and the threshold samples
        flat = seq.reshape(t_steps, batch, -1)
        state = net.init_state(batch, dtype=np.float64)
        score = np.zeros((batch, net.n_classes))
        for t in range(t_steps):
            logits = net.step(state, flat[t], spiking=False)
            score += (weights[t] > 0)[:, None] * logits
            if t % THETA_SAMPLE_EVERY == 0:
                for l in range(len(net.stages) - 1):
                    y_samples[l].append(np.maximum(state.x[l], 0.0))
        return loss, grads, score


def run_rule(rule: str, train, test, *, epochs: int, seed: int, arch: str = "default", save=None,
             credit: str = TrainConfig.credit, mirror: bool = True) -> dict:
    net = network(arch, seed)
    calibrate(net, train)
    cfg = recipe_config(net, seed=seed, credit=credit, mirror=mirror, epochs=epochs)
    cfg.spiking = rule == "online"
    trainer = (BpttTrainer if rule == "bptt" else Trainer)(net, cfg)
    t0 = time.perf_counter()
    trainer.fit(train)
    seconds = time.perf_counter() - t0
    name, label = (rule, rule) if rule == "bptt" else (f"{rule}_{credit}", f"{rule} ({credit})")
    if not mirror:
        name, label = name + "_no_mirror", label + ", no mirror"
    if save:
        net.save(Path(save) / f"{arch}_{name}.npz")
    return {
        "rule": label,
        "arch": arch,
        "train_seconds": round(seconds, 1),
        "train_accuracy_spiking": evaluate(net, train)["accuracy"],
        "train_accuracy_analog": evaluate(net, train, spiking=False)["accuracy"],
        "test_accuracy_spiking": evaluate(net, test)["accuracy"],
        "test_accuracy_analog": evaluate(net, test, spiking=False)["accuracy"],
        "final_loss": trainer.history.loss[-1],
    }


def table(report: dict) -> str:
    lines = ["| network, rule | train people, spikes / analog | test people, spikes | test people, analog | training |",
             "|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['arch']}, {r['rule']} | {100 * r['train_accuracy_spiking']:.1f} / {100 * r['train_accuracy_analog']:.1f} % | "
                     f"{100 * r['test_accuracy_spiking']:.1f} % | {100 * r['test_accuracy_analog']:.1f} % | "
                     f"{r['train_seconds']:.0f} s |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a DVS128-Gesture-layout folder (e.g. pysg synth --difficulty hard)")
    ap.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES))
    ap.add_argument("--arch", choices=ARCHS, default="default",
                    help="default: pysg train's network; two-conv: a second convolution before the dense layer")
    ap.add_argument("--credit", choices=CREDIT_MODES, default=TrainConfig.credit,
                    help=f"the online rules' credit to the layers below (default: pysg train's, {TrainConfig.credit})")
    ap.add_argument("--no-mirror", action="store_true", help="train without mirrored gestures (pysg train --no-mirror)")
    ap.add_argument("--save-dir", help="save each trained model here as ARCH_RULE[_CREDIT].npz")
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the report here too")
    args = ap.parse_args(argv)
    if args.epochs < 1:
        ap.error("--epochs must be positive")
    net = default_network(seed=args.seed)
    train, test = load_split(args.data, "train", net), load_split(args.data, "test", net)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {os.cpu_count()} cores",
              "data": args.data, "epochs": args.epochs, "seed": args.seed,
              "train_gestures": len(train), "test_gestures": len(test), "rows": []}
    for rule in args.rules:
        report["rows"].append(run_rule(rule, train, test, epochs=args.epochs, seed=args.seed, arch=args.arch,
                                       save=args.save_dir, credit=args.credit, mirror=not args.no_mirror))
        print(json.dumps(report["rows"][-1]), flush=True)
    print(table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
