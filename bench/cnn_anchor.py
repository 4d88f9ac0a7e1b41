# SPDX-License-Identifier: MIT
"""The strong frame-CNN anchor (issue 15): a CNN a practitioner would train, int8 in LiteRT.

Model (tests/support/cnn_anchor): input 8 time bins x 2 polarities x 32 x 32 (the DVS128
pooled by 4; counts log-coded into int8 like the TFLite baseline), [conv 3x3 SAME ->
batch norm -> ReLU -> average pool 2x2] with 32, 64, 64 channels, dense 11. Trained in
torch (1 thread, seeded) on the train split with augmentation: half of the samples are
prefixes [t0, t0 + T) with T log-uniform in [80, 2000] ms (so the same model decides at
a time since onset), the others the whole gesture cropped by up to 10 % at each end;
binomial event dropout (keep 60-100 %); random shifts of up to 4 pixels. Then int8 post
training: batch norm folded, per-channel filters, activations calibrated on the training
gestures (whole + one training-style window each), written by pysg's own .tflite writer.
Models and decoded splits are cached under ~/.cache/pysg-bench.

Inputs and decision rules (the bins always cut the window into 8 equal parts):
* ``whole``: the window is exactly the labelled interval [t0, t1); one inference per
  gesture, decision argmax of its logits. Ops per second of input = MACs / the mean
  gesture duration (one inference per gesture; the decision comes at t1).
* ``onset`` t in {100, 200, 300, 500, 1000} ms: the window [t0, min(t0 + t, t1)); one
  inference, the decision at time t after onset.
* ``stream`` hop in {100, 200, 500} ms: windows of 8 bins x 250 ms (2 s) ending at
  t0 + hop, t0 + 2 hop, ... <= t1, clipped at t0 (an early window is [t0, end) cut into 8);
  decision argmax of the mean logits of those frames. Ops per second = MACs x 1000 / hop.
Accuracy: float (the torch model, eval mode) and int8 in LiteRT (default op resolver =
XNNPACK, 1 thread; int8 decision = argmax of the summed int8 logits, one scale), on each
dataset's test split (unseen people), each dataset's own model trained on its train split.
MACs per inference are counted from the int8 graph (conv: out_h out_w out_c 9 in_c;
dense: in x out; the pools' 53 k additions not counted).

    OMP_NUM_THREADS=1 python -m bench.cnn_anchor [--data NAME=DIR ...] [--json out.json]
        [--onset-json onset.json] [--seed 0] [--epochs 300]

JSON (``--json``): {"machine", "date", "command", "datasets": {NAME: {"data", "train_seconds",
"train_gestures", "test_gestures", "macs", "pool_adds", "model_bytes", "mean_gesture_s",
"litert_vs_reference_max_lsb" (XNNPACK), "litert_builtin_ref_vs_reference_max_lsb"
(LiteRT's reference kernels), "rows": [{"mode": "whole" | "onset" | "stream", "t_ms" (onset)
or "hop_ms" (stream) or null, "float_accuracy", "int8_accuracy", "inferences_per_gesture",
"ops_per_s_input" (MACs per second of input; onset: null), "macs_per_decision"}]}}}.
``--onset-json``: {NAME: {"t_ms": [...], "float": [...], "int8": [...], "whole_float",
"whole_int8"}} for the README plot.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys

import numpy as np

from tests.support.cnn_anchor import build_anchor, inputs
from tests.support.cnn_anchor.data import SplitEvents, load_events

ONSETS_MS = (100, 200, 300, 500, 1000)
HOPS_MS = (100, 200, 500)
STREAM_BIN_MS = 250
DEFAULT_DATA = ("hard=/tmp/hardrun/g_hard", "easy=/tmp/hardrun/g_easy", "gd3=/tmp/gd3")


def _accuracies(model, ev: SplitEvents, idx, start, end, owner) -> tuple[float, float]:
    """(float, int8 LiteRT) accuracy of argmax of the summed logits of each gesture's inputs."""
    from tests.support.cnn_anchor.model import float_logits
    from tests.support.cnn_baseline import litert_interpreter, litert_logits

    it = litert_interpreter(model.tflite, threads=1)
    n = len(ev)
    sums_f, sums_q = np.zeros((n, 11)), np.zeros((n, 11))
    for k in range(0, len(idx), 512):
        sl = slice(k, k + 512)
        xf, xq = inputs(ev, idx[sl], start[sl], end[sl])
        np.add.at(sums_f, owner[sl], float_logits(model.net, xf))
        np.add.at(sums_q, owner[sl], litert_logits(it, xq).astype(np.float64))
    have = np.bincount(owner, minlength=n) > 0
    return (float(np.mean((sums_f.argmax(1) == ev.labels) & have)),
            float(np.mean((sums_q.argmax(1) == ev.labels) & have)))


def stream_windows(durations: np.ndarray, hop_ms: int, bin_ms: int = STREAM_BIN_MS):
    """(gesture, start, end) µs of the frames ending every hop inside each gesture."""
    owner, start, end = [], [], []
    for g, d in enumerate(durations):
        e = np.arange(hop_ms * 1000, int(d) + 1, hop_ms * 1000, dtype=np.int64)
        owner.append(np.full(len(e), g))
        end.append(e)
        start.append(np.maximum(e - 8 * bin_ms * 1000, 0))
    return np.concatenate(owner), np.concatenate(start), np.concatenate(end)


def run_dataset(name: str, root: str, log=print, cfg=None) -> dict:
    from tests.support.cnn_baseline import reference_logits

    model = build_anchor(root, cfg, log=log)
    ev = load_events(root, "test")
    n, macs = len(ev), model.meta["macs"]
    idx, zero = np.arange(n), np.zeros(n, np.int64)
    mean_s = float(ev.durations.mean()) / 1e6
    rows = []
    f, q = _accuracies(model, ev, idx, zero, ev.durations, idx)
    rows.append({"mode": "whole", "t_ms": None, "hop_ms": None, "float_accuracy": f, "int8_accuracy": q,
                 "inferences_per_gesture": 1.0, "ops_per_s_input": macs / mean_s, "macs_per_decision": macs})
    for t in ONSETS_MS:
        f, q = _accuracies(model, ev, idx, zero, np.minimum(ev.durations, t * 1000), idx)
        rows.append({"mode": "onset", "t_ms": t, "hop_ms": None, "float_accuracy": f, "int8_accuracy": q,
                     "inferences_per_gesture": 1.0, "ops_per_s_input": None, "macs_per_decision": macs})
    for hop in HOPS_MS:
        owner, s, e = stream_windows(ev.durations, hop)
        f, q = _accuracies(model, ev, owner, s, e, owner)
        rows.append({"mode": "stream", "t_ms": None, "hop_ms": hop, "float_accuracy": f, "int8_accuracy": q,
                     "inferences_per_gesture": len(owner) / n, "ops_per_s_input": macs * 1000 / hop,
                     "macs_per_decision": macs * len(owner) / n})
    # LiteRT (XNNPACK) against pysg's integer reference on the whole-gesture inputs
    from tests.support.cnn_baseline import litert_interpreter, litert_logits

    _, xq = inputs(ev, idx, zero, ev.durations)
    ref = reference_logits(model.tflite, xq).astype(np.int64)
    diff = np.abs(litert_logits(litert_interpreter(model.tflite), xq).astype(np.int64) - ref)
    diff_ref = np.abs(litert_logits(litert_interpreter(model.tflite, reference=True), xq).astype(np.int64) - ref)
    return {"data": root, "train_seconds": model.meta["train_seconds"], "train_gestures": model.meta["train_gestures"],
            "test_gestures": n, "macs": macs, "pool_adds": model.meta["pool_adds"],
            "model_bytes": model.meta["model_bytes"], "mean_gesture_s": mean_s,
            "litert_vs_reference_max_lsb": int(diff.max()),
            "litert_builtin_ref_vs_reference_max_lsb": int(diff_ref.max()), "rows": rows}


def table(results: dict) -> str:
    lines = ["| set | input / decision | inferences per gesture | MACs per s of input | float | int8 LiteRT |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        for row in r["rows"]:
            what = {"whole": "whole gesture [t0, t1), 1 inference",
                    "onset": f"first {row['t_ms']} ms after onset",
                    "stream": f"stream, 8 x {STREAM_BIN_MS} ms window every {row['hop_ms']} ms"}[row["mode"]]
            ops = "-" if row["ops_per_s_input"] is None else f"{row['ops_per_s_input'] / 1e6:.2f} M"
            lines.append(f"| {name} | {what} | {row['inferences_per_gesture']:.1f} | {ops} | "
                         f"{100 * row['float_accuracy']:.2f} % | {100 * row['int8_accuracy']:.2f} % |")
    lines.append("")
    for name, r in results.items():
        lines.append(f"- {name}: {r['macs']:,} MACs per inference (+{r['pool_adds']:,} pool additions), "
                     f"{r['model_bytes']:,} B .tflite, trained in {r['train_seconds']:.0f} s on "
                     f"{r['train_gestures']} gestures, {r['test_gestures']} test gestures of mean "
                     f"{r['mean_gesture_s']:.3f} s; whole-gesture int8 logits vs pysg's integer reference: "
                     f"LiteRT XNNPACK max {r['litert_vs_reference_max_lsb']} LSB, LiteRT reference kernels "
                     f"max {r['litert_builtin_ref_vs_reference_max_lsb']} LSB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.cnn_anchor", description=__doc__.split("\n")[0])
    ap.add_argument("--data", action="append", metavar="NAME=DIR", help="dataset(s), default: " + " ".join(DEFAULT_DATA))
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--onset-json", help="write the accuracy vs time since onset here")
    ap.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: AnchorConfig's 300)")
    args = ap.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        ap.error("--epochs must be positive")
    results = {}
    for spec in args.data or DEFAULT_DATA:
        name, sep, root = spec.partition("=")
        if not sep or not os.path.isdir(root):
            print(f"--data {spec}: need NAME=DIR with DIR a DVS128-Gesture-layout folder", file=sys.stderr)
            return 2
        from tests.support.cnn_anchor.model import AnchorConfig

        cfg = AnchorConfig(seed=args.seed, **({} if args.epochs is None else {"epochs": args.epochs}))
        results[name] = run_dataset(name, root, log=lambda s: print(s, file=sys.stderr, flush=True), cfg=cfg)
        print(f"{name}: done", file=sys.stderr, flush=True)
    print(table(results))
    if args.json:
        out = {"machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "command": "python -m bench.cnn_anchor " + " ".join(argv if argv is not None else sys.argv[1:]),
               "datasets": results}
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    if args.onset_json:
        on = {}
        for name, r in results.items():
            rows = [x for x in r["rows"] if x["mode"] == "onset"]
            whole = r["rows"][0]
            on[name] = {"t_ms": [x["t_ms"] for x in rows], "float": [x["float_accuracy"] for x in rows],
                        "int8": [x["int8_accuracy"] for x in rows], "whole_float": whole["float_accuracy"],
                        "whole_int8": whole["int8_accuracy"]}
        with open(args.onset_json, "w") as fh:
            json.dump(on, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
