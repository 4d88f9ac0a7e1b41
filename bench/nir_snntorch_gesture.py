# SPDX-License-Identifier: MIT
"""A LIF gesture network trained in snnTorch (or sinabs), exported to NIR, imported by pysg.

On a DVS128-Gesture-layout folder (`pysg synth`; the benches' /tmp/gd3), binned like
pysg's default gesture model (10 ms steps, ON/OFF counts, 128x128 sensor / 8 = 2x16x16,
counts saturating at 255):

1. train `Flatten -> Linear(512, H) -> Leaky -> Linear(H, 11) -> Leaky` in snnTorch 1.0.0
   (BPTT through the spikes on random 1 s crops, fast-sigmoid surrogate, cross-entropy on
   the output spike counts, Adam, batches of 64), torch on 2 threads;
2. export it with snnTorch's own `export_to_nir` (tests/support/nir_frameworks.py: the
   nir 1.0.4 compatibility of docs/NIR.md section 5), `pysg convert`'s importer;
3. on the test split (people not seen in training), one step at a time: snnTorch's float
   accuracy, pysg's float lowering and int8 integer reference (`pysg.engines.snn.SnnRef`)
   accuracy, their agreement with snnTorch (final decisions, running decisions per step,
   the largest output spike-count difference), synaptic operations per second of input
   (SnnRef's count: nonzero inputs x fan-out, FORMAT.md 12) and the file / arena sizes.

    OMP_NUM_THREADS=2 python -m bench.nir_snntorch_gesture [--data /tmp/gd3] [--epochs 10] [--json out]

`--framework sinabs`: the same network in sinabs 3.1.3 (`LIFSqueeze`, tau 10 steps,
`SingleSpike`, periodic-exponential surrogate), exported with sinabs' `to_nir`.

The Cortex-M4 instruction count of the imported model: `python -m bench.device_cost --model
OUT/gesture_snntorch.sgm --kind frames events` (BENCHMARKS, "NIR: LIF gesture networks").
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tests.support.gesture_split import DEFAULT_DATA

DT_US = 10_000
DOWNSAMPLE = 8
SHAPE = (2, 16, 16)
CLASSES = 11


def _frames(data: str, split: str, limit: int | None = None) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(per-gesture (T, cells) uint8 count frames, labels, seconds of input) of a split
    (its first ``limit`` gestures)."""
    from pysg.datasets.binning import bin_events
    from pysg.datasets.gesture import GestureDataset

    frames, labels, secs = [], [], []
    ds = GestureDataset(data, split)
    for i in range(len(ds) if limit is None else min(limit, len(ds))):
        s = ds[i]
        f = bin_events(s.events, duration_us=int(s.duration_us), dt_us=DT_US, sensor_size=(128, 128),
                       downsample=DOWNSAMPLE, channels=2)
        frames.append(np.minimum(f.reshape(len(f), -1), 255).astype(np.uint8))
        labels.append(s.label)
        secs.append(s.duration_us / 1e6)
    return frames, np.array(labels), np.array(secs)


def _net(framework: str, hidden: int, seed: int):
    import torch

    torch.manual_seed(seed)
    n_in = int(np.prod(SHAPE))
    if framework == "sinabs":
        import sinabs.layers as sl
        from sinabs.activation import PeriodicExponential, SingleSpike

        def lif():
            return sl.LIFSqueeze(tau_mem=10.0, batch_size=1, spike_fn=SingleSpike,
                                 surrogate_grad_fn=PeriodicExponential())

        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(n_in, hidden), lif(),
                                   torch.nn.Linear(hidden, CLASSES), lif())
    import snntorch as snn
    from snntorch import surrogate

    grad = surrogate.fast_sigmoid(slope=10)
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(n_in, hidden),
        snn.Leaky(beta=0.9, spike_grad=grad, init_hidden=True), torch.nn.Linear(hidden, CLASSES),
        snn.Leaky(beta=0.9, spike_grad=grad, init_hidden=True, output=True))


def _run(net, x) -> "object":
    """(T, B, classes) output spikes of a batch (T, B, C, H, W), from a fresh state."""
    import torch

    squeeze = [m for m in net.modules() if hasattr(m, "batch_size") and hasattr(m, "reset_states")]
    if squeeze:  # sinabs: the batch and time flattened into one dimension, batch-major
        t, b = x.shape[:2]
        for m in squeeze:
            m.batch_size = b
            m.reset_states()
        y = net(x.transpose(0, 1).reshape((b * t,) + tuple(x.shape[2:])))
        return y.reshape(b, t, -1).transpose(0, 1)
    from snntorch import utils

    utils.reset(net)
    return torch.stack([net(x[t])[0] for t in range(x.shape[0])])


def train(frames, labels, *, framework: str, hidden: int, epochs: int, seed: int, window: int, log) -> "object":
    """BPTT on random ``window``-step crops of the training gestures, batches of 64."""
    import torch

    net = _net(framework, hidden, seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    rng = np.random.default_rng(seed)
    for ep in range(epochs):
        t0, correct, total = time.time(), 0, 0
        for idx in np.array_split(rng.permutation(len(frames)), max(1, len(frames) // 64)):
            x = np.zeros((window, len(idx)) + SHAPE, np.float32)
            for j, i in enumerate(idx):
                start = int(rng.integers(0, max(1, len(frames[i]) - window + 1)))
                crop = frames[i][start:start + window]
                x[:len(crop), j] = crop.reshape((len(crop),) + SHAPE)
            y = torch.from_numpy(labels[idx])
            counts = _run(net, torch.from_numpy(x)).sum(0)
            loss = torch.nn.functional.cross_entropy(counts * 0.2, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            correct += int((counts.argmax(1) == y).sum())
            total += len(idx)
        log(f"epoch {ep + 1}/{epochs}: train accuracy {correct / total:.3f}, {time.time() - t0:.1f} s")
    return net


def _decisions(spikes: np.ndarray) -> np.ndarray:
    cum = np.cumsum(spikes, axis=0)
    d = cum.argmax(axis=1)
    d[cum.max(axis=1) == 0] = -1
    return d


def evaluate(net, imp, frames, labels, secs) -> dict:
    """snnTorch (one batch of every test gesture, zero-padded, stepped together) against
    pysg's float lowering and int8 reference (one gesture at a time), each gesture over
    its own steps."""
    import torch

    from pysg.engines.snn import SnnRef

    steps_max = max(len(f) for f in frames)
    x = np.zeros((steps_max, len(frames)) + SHAPE, np.float32)
    for j, f in enumerate(frames):
        x[:len(f), j] = f.reshape((len(f),) + SHAPE)
    with torch.no_grad():
        fw_all = _run(net, torch.from_numpy(x)).numpy()
    fw_pred, fl_pred, q_pred = [], [], []
    steps = agree = 0
    worst = 0
    synops = 0
    for j, f in enumerate(frames):
        fw = fw_all[:len(f), j]
        ref = SnnRef(imp.model)
        q = []
        for c in f:
            logits, _, ops = ref.step(c.astype(np.int64))
            q.append(logits)
            synops += ops
        q = np.array(q)
        imp.float_net.reset()
        fl = np.array([imp.float_net.step(c) for c in f])
        d_fw, d_q = _decisions(fw), _decisions(q)
        fw_pred.append(int(fw.sum(0).argmax()))
        fl_pred.append(int(fl.sum(0).argmax()))
        q_pred.append(int(q.sum(0).argmax()))
        steps += len(f)
        agree += int((d_fw == d_q).sum())
        worst = max(worst, int(np.abs(np.cumsum(fw, 0) - np.cumsum(q, 0)).max()))
    fw_pred, fl_pred, q_pred = map(np.array, (fw_pred, fl_pred, q_pred))
    return {"gestures": len(frames), "seconds_of_input": float(secs.sum()),
            "accuracy_framework": float((fw_pred == labels).mean()),
            "accuracy_pysg_float": float((fl_pred == labels).mean()),
            "accuracy_pysg_int8": float((q_pred == labels).mean()),
            "same_decision_float_vs_framework": float((fl_pred == fw_pred).mean()),
            "same_decision_int8_vs_framework": float((q_pred == fw_pred).mean()),
            "running_decision_agreement_per_step": agree / steps,
            "largest_output_count_difference": worst,
            "synops_per_second_of_input": synops / float(secs.sum()),
            "file_bytes": imp.model.file_bytes, "arena_bytes": imp.model.arena_bytes}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--window", type=int, default=100, help="training crop, steps")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--framework", choices=("snntorch", "sinabs"), default="snntorch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/nir_snntorch_gesture", help="folder for the .nir and .sgm files")
    ap.add_argument("--limit", type=int, default=None, help="gestures per split (a quick check)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import torch

    from pysg.converters.nir_import import nir_to_sgm
    from tests.support.nir_frameworks import sinabs_to_nir, snntorch_to_nir

    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train_f, train_y, _ = _frames(args.data, "train", args.limit)
    test_f, test_y, test_s = _frames(args.data, "test", args.limit)
    print(f"data: {len(train_f)} train / {len(test_f)} test gestures, binned in {time.time() - t0:.0f} s")
    t0 = time.time()
    net = train(train_f, train_y, framework=args.framework, hidden=args.hidden, epochs=args.epochs, seed=args.seed,
                window=args.window, log=print)
    train_s = time.time() - t0
    net.eval()
    nir_path = out / f"gesture_{args.framework}.nir"
    if args.framework == "sinabs":
        _run(net, torch.zeros((1, 1) + SHAPE))  # batch size 1 for the export's trace
        sinabs_to_nir(net, torch.zeros((1,) + SHAPE), nir_path)
    else:
        snntorch_to_nir(net, torch.zeros((1,) + SHAPE), nir_path)
    imp = nir_to_sgm(nir_path, sensor=(128, 128), dt_ms=DT_US / 1000)
    nir_path.with_suffix(".sgm").write_bytes(imp.data)
    t0 = time.time()
    r = evaluate(net, imp, test_f, test_y, test_s)
    r.update(train_seconds=train_s, eval_seconds=time.time() - t0, epochs=args.epochs, hidden=args.hidden,
             window=args.window, framework=args.framework, convention=imp.convention.name)
    for k, v in r.items():
        print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
