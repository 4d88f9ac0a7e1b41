# SPDX-License-Identifier: MIT
"""Training speed, numpy vs torch (CPU), side by side: the same recipe (the default
network and TrainConfig, batch 16, float32) on the same binned data, each epoch timed
in a fresh process with a given number of threads (OMP/BLAS and torch intra-op).
Backends alternate, `--repeat` rounds, the best epoch time of each is kept (the
machine is shared). Binning and calibration are not timed.

    python -m bench.train_backends [--data DIR] [--threads 1 2] [--epochs 2] [--repeat 2] [--json]

Without --data a dataset is synthesised (`pysg synth`: 2 people, 3 lightings, 2 s
gestures: 66 training gestures of 200 steps) into a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(backend: str, data_dir: str, epochs: int, threads: int) -> dict:
    """Train `epochs` epochs from the calibrated default network; seconds per epoch."""
    import numpy as np

    from pysg.recipes import default_network, load_split
    from pysg.train.trainer import TrainConfig, Trainer, calibrate

    net = default_network()
    data = load_split(data_dir, "train", net)
    calibrate(net, data)
    cfg = TrainConfig(epochs=epochs)
    if backend == "torch":
        import torch

        from pysg.train.torch_trainer import TorchTrainer

        torch.set_num_threads(threads)
        tr = TorchTrainer(net, cfg)
    else:
        tr = Trainer(net, cfg)
    t0 = time.perf_counter()
    tr.fit(data)
    wall = time.perf_counter() - t0
    return {"backend": backend, "threads": threads, "epochs": epochs, "samples": len(data),
            "steps_per_sample": float(np.mean(data.lengths)), "epoch_seconds": min(tr.history.seconds),
            "wall_seconds": wall, "final_loss": tr.history.loss[-1]}


def run(backend: str, data_dir: str, epochs: int, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-m", "bench.train_backends", "--worker", backend, data_dir, str(epochs),
                          str(threads)], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{backend} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="a DVS128-Gesture-layout folder (default: synthesise one)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.worker:
        b, d, e, t = args.worker
        print(json.dumps(worker(b, d, int(e), int(t))))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from contextlib import redirect_stdout

            from pysg.cli import main as pysg_main

            data = str(Path(tmp) / "data")
            with redirect_stdout(sys.stderr):  # synth's summary line is not this bench's output
                pysg_main(["--quiet", "synth", data, "--train-users", "2", "--test-users", "1", "--lightings-per-user",
                           "3", "--seconds", "2", "--workers", "1"])
        best: dict[tuple[str, int], dict] = {}
        for _ in range(args.repeat):
            for threads in args.threads:
                for backend in ("numpy", "torch"):
                    r = run(backend, data, args.epochs, threads)
                    key = (backend, threads)
                    if key not in best or r["epoch_seconds"] < best[key]["epoch_seconds"]:
                        best[key] = r
    rows = list(best.values())
    for r in rows:
        r["epochs_per_minute"] = 60.0 / r["epoch_seconds"]
    if args.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                          "rows": rows}))
        return 0
    print(f"{rows[0]['samples']} gestures x {rows[0]['steps_per_sample']:.0f} steps, batch 16, float32, "
          f"best epoch of {args.repeat} x {args.epochs}")
    print(f"{'backend':8} {'threads':>7} {'s/epoch':>8} {'epochs/min':>11} {'final loss':>11}")
    for r in rows:
        print(f"{r['backend']:8} {r['threads']:>7} {r['epoch_seconds']:>8.2f} {r['epochs_per_minute']:>11.2f} "
              f"{r['final_loss']:>11.5f}")
    for threads in args.threads:
        n, t = best[("numpy", threads)], best[("torch", threads)]
        print(f"{threads} thread(s): torch / numpy epochs per minute = "
              f"{n['epoch_seconds'] / t['epoch_seconds']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
