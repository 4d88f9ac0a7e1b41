# SPDX-License-Identifier: MIT
"""The version 2 arena before and after the bounded event ring and the straight scatter
(docs/FORMAT.md 7.2 and 9), per converted model, and what the ring loses on real input.

Before: the dense u16 count ring of W + 1 steps and the 21 n_max scratch (two delta
lists, the touched list and flags), the rule until 2026-12-05 (written out here). After:
the file's arena_bytes (pysg.sgm.qnet.qarena_bytes_for, checked by the C loader).

With ``--data`` (a DVS128-Gesture-layout folder) and ``--model`` (the baseline int8
.tflite, bench.tflite_baseline's cache), the baseline CNN converted as ``pysg convert``
does is run by the C runtime over the test split's gestures twice: with its default ring
(<= 64 KiB of arena) and with a lossless one (E = (W + 1) cells); the events the ring
lost, and how many decisions differ.

    python -m bench.qnet_arena [--model ~/.cache/pysg-bench/gesture_cnn_*.tflite] [--data /tmp/gd3 ...]
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np


def _c4(v: int) -> int:
    return -(-v // 4) * 4


def old_arena(q) -> int:
    """The rule before the event ring (FORMAT.md section 9 until 2026-12-05)."""
    n_in = q.input.n_out
    total = _c4(n_in)
    if q.slices:
        total += _c4(2 * (q.window + 1) * q.cells) + 4 * q.slices * q.cells
    total += sum(4 * ly.n_out + _c4(ly.n_out) for ly in q.layers)
    n_max = max([n_in] + [ly.n_out for ly in q.layers])
    return total + 20 * n_max + _c4(n_max)


def models(model_path: str | None) -> list[tuple[str, bytes]]:
    from pysg.converters.tflite_sgm import tflite_to_sgm
    from pysg.datasets.gesture import GESTURE_CLASSES
    from tests.support.qnet_models import built_cnn, random_network

    cnn = Path(model_path).read_bytes() if model_path else built_cnn()
    name = "baseline CNN" + ("" if model_path else " (built_cnn, untrained)")
    out = [(f"{name}, 10 ms x 20 steps (as bench.tflite_baseline)",
            tflite_to_sgm(cnn, dt_ms=10, window_steps=20, sensor=(128, 128), labels=list(GESTURE_CLASSES))),
           (f"{name}, 10 ms x 200 steps (2 s window)",
            tflite_to_sgm(cnn, dt_ms=10, window_steps=200, sensor=(128, 128), labels=list(GESTURE_CLASSES))),
           (f"{name}, tensor input", tflite_to_sgm(cnn, input="tensor"))]
    for seed in range(3):
        tfl = random_network(np.random.default_rng(seed))
        out.append((f"random_network({seed}) (tests/support/qnet_models.py), tensor input",
                    tflite_to_sgm(tfl, input="tensor")))
    return out


def arena_table(model_path: str | None) -> list[dict]:
    from pysg.sgm import load_sgm

    rows = []
    for name, data in models(model_path):
        q = load_sgm(data)
        rows.append({"model": name, "before": old_arena(q), "after": q.arena_bytes,
                     "ring_entries": q.input.ring_entries,
                     "lossless_entries": (q.window + 1) * q.cells if q.slices else 0})
    return rows


def ring_losses(model_path: str, data_dir: str) -> dict:
    """The converted baseline CNN with its default ring and a lossless one on the test split."""
    from pysg.converters.tflite_sgm import tflite_to_sgm
    from pysg.datasets.gesture import GESTURE_CLASSES
    from pysg.runtime import WARMUP, Runtime
    from pysg.sgm import encode_qmodel, load_sgm
    from tests.support.gesture_split import export_split, load_split

    data = tflite_to_sgm(Path(model_path).read_bytes(), dt_ms=10, window_steps=20, sensor=(128, 128),
                         labels=list(GESTURE_CLASSES))
    q = load_sgm(data)
    q.input.ring_entries = (q.window + 1) * q.cells
    lossless = encode_qmodel(q)
    samples = load_split(export_split(data_dir, "test"))
    out = {"gestures": len(samples), "events": 0, "ring_entries": load_sgm(data).input.ring_entries}
    for tag, blob in (("bounded", data), ("lossless", lossless)):
        rt = Runtime(blob)
        preds, lost, worst = [], 0, 0.0
        for events, duration, _ in samples:
            n_steps = -(-duration // rt.dt_us)
            preds.append(rt.classify_events(events, t0_us=0, n_steps=n_steps, warmup=WARMUP))
            d = int(rt.stats["events_dropped"])
            lost += d
            worst = max(worst, d / max(len(events), 1))
        labels = np.array([lab for _, _, lab in samples])
        out[tag] = {"arena_bytes": rt.arena_bytes, "accuracy": float(np.mean(np.array(preds) == labels)),
                    "events_dropped": lost, "worst_gesture_fraction": worst, "predictions": preds}
    out["events"] = int(sum(len(e) for e, _, _ in samples))
    out["decisions_differ"] = int(sum(a != b for a, b in zip(out["bounded"]["predictions"],
                                                             out["lossless"]["predictions"])))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="the baseline int8 .tflite (default: tests/support's untrained built_cnn)")
    ap.add_argument("--data", action="append", default=[], help="DVS128-Gesture-layout folder(s) (needs --model)")
    args = ap.parse_args(argv)
    print("| model | arena before | arena after | ring entries (lossless) |")
    print("|---|---|---|---|")
    for r in arena_table(args.model):
        ring = f"{r['ring_entries']:,} ({r['lossless_entries']:,})" if r["lossless_entries"] else "- (tensor input)"
        print(f"| {r['model']} | {r['before']:,} B | {r['after']:,} B | {ring} |")
    for d in args.data:
        if not args.model:
            raise SystemExit("--data needs --model (the trained baseline .tflite)")
        r = ring_losses(args.model, d)
        print(f"\n{d}: {r['gestures']} test gestures, {r['events']:,} events")
        for tag in ("bounded", "lossless"):
            x = r[tag]
            print(f"  {tag:8s}: arena {x['arena_bytes']:,} B, accuracy {100 * x['accuracy']:.2f} %, events lost "
                  f"(dropped) {x['events_dropped']:,} ({100 * x['events_dropped'] / max(r['events'], 1):.3f} %), "
                  f"worst gesture {100 * x['worst_gesture_fraction']:.2f} %")
        print(f"  decisions that differ: {r['decisions_differ']} of {r['gestures']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
