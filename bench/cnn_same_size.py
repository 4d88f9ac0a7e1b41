# SPDX-License-Identifier: MIT
"""A frame CNN of the SpikingGamma default's size under the anchor's training recipe.

Is the strong CNN anchor ahead of `pysg train`'s network because it is a frame CNN, or
because it is a bigger network? This trains, with the anchor's whole recipe
(tests/support/cnn_anchor: 8 time bins x 2 polarities x 32x32 of the gesture, prefix and
crop windows, event dropout, shifts, AdamW, label smoothing, dropout, batch norm, its
epochs, one thread, seeded), a CNN with the default SpikingGamma network's topology:

    conv 16 filters 4x4 stride 4 (+ batch norm, ReLU) -> 96 (ReLU) -> 11

(the anchor: three 3x3 conv layers of 32, 64, 64 channels with pooling, 11.8 M MACs per
gesture). Reported: float accuracy on the test split (unseen people) for the whole
gesture and for its first 300 and 1000 ms (one inference on that window), and its MACs.

    OMP_NUM_THREADS=1 python -m bench.cnn_same_size --data /tmp/hardrun/g_hard [--epochs N] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ONSETS_MS = (300, 1000)


def same_size_net(cfg):
    from torch import nn

    return nn.Sequential(nn.Conv2d(2 * cfg.n_bins, 16, 4, stride=4, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Flatten(), nn.Dropout(cfg.dropout), nn.Linear(16 * 8 * 8, 96), nn.ReLU(),
                         nn.Linear(96, cfg.n_classes))


def macs(cfg) -> int:
    """Multiply-accumulates of one inference: the conv's 8x8x16 outputs of 4x4x(2 n_bins), the two dense."""
    return 8 * 8 * 16 * 4 * 4 * 2 * cfg.n_bins + 1024 * 96 + 96 * cfg.n_classes


def main(argv=None) -> int:
    from tests.support.cnn_anchor.data import bin_windows, load_events, to_float
    from tests.support.cnn_anchor.model import AnchorConfig, float_logits, train_anchor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a DVS128-Gesture-layout folder")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: AnchorConfig's, the anchor's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        ap.error("--epochs must be positive")
    cfg = AnchorConfig(seed=args.seed, **({} if args.epochs is None else {"epochs": args.epochs}))
    train, test = load_events(args.data, "train"), load_events(args.data, "test")
    t0 = time.perf_counter()
    net = train_anchor(train, cfg, log=lambda s: None, build=same_size_net)
    seconds = time.perf_counter() - t0
    idx, zero = np.arange(len(test)), np.zeros(len(test), np.int64)
    report = {"date": time.strftime("%Y-%m-%d"), "data": args.data, "epochs": cfg.epochs, "seed": args.seed,
              "train_seconds": round(seconds, 1), "macs_per_inference": macs(cfg), "accuracy": {}}
    for t in (None, *ONSETS_MS):
        end = test.durations if t is None else np.minimum(test.durations, t * 1000)
        x = to_float(bin_windows(test, idx, zero, end, cfg.n_bins))
        acc = float((float_logits(net, x).argmax(1) == test.labels).mean())
        report["accuracy"]["whole" if t is None else f"{t} ms"] = acc
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
