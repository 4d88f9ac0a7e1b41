# SPDX-License-Identifier: MIT
"""The gesture recipe end to end: fresh dataset, default training, evaluation.

Runs what `pysg synth`, `pysg train` and `pysg eval` run (the library functions behind
them), with their defaults, and reports:
* test accuracy of the spiking network (users disjoint from training), training time;
* the same model retargeted to other time steps (alpha' = alpha^(dt'/dt)): the spread;
* activity: spikes per hidden neuron per second, synaptic operations per sample vs the
  multiply-accumulates of the equivalent frame-based network.

    python -m bench.gesture_recipe --out /tmp/gesture [--seed 0] [--dts 10 5 2 1] [--json]

An existing dataset folder or model in --out is reused (delete them to start afresh).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from pysg.recipes import evaluate_folder, train_folder
from pysg.synth.dataset import synthesize_dataset


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dts", type=float, nargs="+", default=[10, 5, 2, 1])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    data, model = out / "data", out / "gesture.npz"
    report: dict = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "seed": args.seed}

    if not (data / "trials_to_test.txt").exists():
        t0 = time.perf_counter()
        report["dataset"] = {k: v for k, v in synthesize_dataset(data, seed=args.seed).items()
                             if k not in ("train", "test")}
        report["synth_seconds"] = time.perf_counter() - t0
    if not model.exists():
        t0 = time.perf_counter()
        trainer = train_folder(data, model, seed=args.seed)
        report["train_seconds"] = time.perf_counter() - t0
        report["epochs"] = trainer.epoch
        report["final_train_accuracy"] = trainer.history.train_accuracy[-1]

    rows = []
    for dt in args.dts:
        r = evaluate_folder(model, data, split="test", dt_ms=dt)
        rows.append({k: r[k] for k in ("dt_us", "accuracy", "n", "spikes_per_sample",
                                       "spikes_per_neuron_per_second", "synops_per_sample",
                                       "dense_macs_per_sample")})
    accs = [r["accuracy"] for r in rows]
    report["by_dt"] = rows
    report["dt_spread_points"] = (max(accs) - min(accs)) * 100
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    for k, v in report.items():
        if k != "by_dt":
            print(f"{k}: {v}")
    print(f"{'dt ms':>6} {'accuracy %':>10} {'n':>4} {'spk/neuron/s':>12} {'synops/sample':>14} "
          f"{'dense MACs/sample':>17} {'ratio':>6}")
    for r in rows:
        print(f"{r['dt_us'] / 1000:>6g} {r['accuracy'] * 100:>10.2f} {r['n']:>4} "
              f"{r['spikes_per_neuron_per_second']:>12.1f} {r['synops_per_sample']:>14.3g} "
              f"{r['dense_macs_per_sample']:>17.3g} {r['dense_macs_per_sample'] / r['synops_per_sample']:>6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
