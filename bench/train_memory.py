# SPDX-License-Identifier: MIT
"""Peak memory of online training vs sequence length (and BPTT for contrast).

For each T, a batch of random input events (density like the gesture data) is
allocated first; then tracemalloc's peak is reset and one training pass runs. The
figure reported is the peak of allocations made during the pass (the input array
itself is excluded: it is data, not training state). numpy reports its buffers to
tracemalloc, so this counts every array the trainer creates.

    python -m bench.train_memory [--steps 200 2000] [--batch 16] [--json]
    python -m bench.train_memory --backend torch [--threads 2]

torch's CPU tensors are not seen by tracemalloc: with `--backend torch` each T runs in
a fresh process (`--worker`) that allocates the input, warms up, resets its peak RSS
(/proc/self/clear_refs) and reports peak RSS minus the RSS before the pass.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
import tracemalloc

import numpy as np

from pysg.recipes import default_network
from pysg.train.gradients import bptt_gradients, loss_weights
from pysg.train.trainer import TrainConfig, train_batch


def measure(kind: str, t_steps: int, batch: int) -> dict:
    net = default_network()
    rng = np.random.default_rng(0)
    frames = (rng.random((batch, t_steps, 2, 32, 32)) < 0.02).astype(np.uint16)
    labels = rng.integers(0, 11, batch)
    lengths = np.full(batch, t_steps)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    if kind == "online":
        train_batch(net, frames, labels, lengths, TrainConfig())
    else:
        w = loss_weights(lengths, t_steps, 0.2)
        bptt_gradients(net, frames.transpose(1, 0, 2, 3, 4).astype(np.float64), labels, w)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return {"method": kind, "steps": t_steps, "batch": batch, "peak_bytes": int(peak), "seconds": seconds}


def measure_torch(t_steps: int, batch: int, threads: int) -> dict:
    """One online pass of the torch backend (float32, CPU), peak RSS above the start."""
    import torch

    from pysg.train import torch_trainer as tt
    from pysg.train.torch_net import TorchNet
    from tests.support.measure import status_kib

    torch.set_num_threads(threads)
    net = default_network()
    rng = np.random.default_rng(0)
    frames = (rng.random((batch, t_steps, 2, 32, 32)) < 0.02).astype(np.uint16)
    labels = rng.integers(0, 11, batch)
    tnet = TorchNet(net)
    tt.train_batch(tnet, frames[:, :20], labels, np.full(batch, 20), TrainConfig())  # warm-up: lazy inits
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    base = status_kib("VmRSS")
    t0 = time.perf_counter()
    tt.train_batch(tnet, frames, labels, np.full(batch, t_steps), TrainConfig(), sample=False)  # as numpy's
    seconds = time.perf_counter() - t0
    peak = status_kib("VmHWM")
    return {"method": "online-torch", "steps": t_steps, "batch": batch, "peak_bytes": (peak - base) * 1024,
            "seconds": seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[200, 2000])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--no-bptt", action="store_true")
    ap.add_argument("--backend", choices=("numpy", "torch"), default="numpy")
    ap.add_argument("--threads", type=int, default=1, help="torch: intra-op threads")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.worker:  # one torch measurement in this fresh process
        print(json.dumps(measure_torch(args.steps[0], args.batch, args.threads)))
        return 0
    if args.backend == "torch":
        from tests.support.measure import run_worker

        rows = [run_worker("bench.train_memory", ["--steps", str(t), "--batch", str(args.batch), "--threads",
                                                  str(args.threads)]) for t in args.steps]
    else:
        rows = [measure("online", t, args.batch) for t in args.steps]
    if not args.no_bptt and args.backend == "numpy":
        rows += [measure("bptt", t, args.batch) for t in args.steps]
    if args.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(), "rows": rows}))
        return 0
    print(f"{'method':12} {'T':>6} {'peak MiB':>10} {'s':>7}")
    for r in rows:
        print(f"{r['method']:12} {r['steps']:>6} {r['peak_bytes'] / 2**20:>10.2f} {r['seconds']:>7.2f}")
    for m in ("online", "online-torch", "bptt"):
        sel = [r for r in rows if r["method"] == m]
        if len(sel) >= 2:
            print(f"{m}: peak at T={sel[-1]['steps']} / T={sel[0]['steps']} = "
                  f"{sel[-1]['peak_bytes'] / sel[0]['peak_bytes']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
