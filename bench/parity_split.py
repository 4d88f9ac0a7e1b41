# SPDX-License-Identifier: MIT
"""Bit-exactness of the C runtime on a whole dataset split (CI checks a subset).

Every labelled gesture of the split is fed to the C runtime as raw events (origin at
the interval start, through sg_feed / sg_advance_to) and, binned, to the Python
integer reference; the per-step int32 logits must be equal at every step.

    python -m bench.parity_split MODEL.npz|MODEL.sgm DATA_DIR [--split test] [--dt-ms D]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from pysg.datasets.gesture import GestureDataset
from pysg.intref import load_model, run
from pysg.runtime import Runtime
from pysg.train.trainer import bin_samples


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("data_dir")
    ap.add_argument("--split", default="test")
    ap.add_argument("--dt-ms", type=float, default=None)
    args = ap.parse_args(argv)
    model = load_model(args.model, dt_ms=args.dt_ms)
    rt = Runtime(model)
    samples, steps, mismatched = 0, 0, []
    for s in GestureDataset(args.data_dir, args.split):
        data = bin_samples([s], dt_us=model.dt_us, sensor_size=model.sensor_size,
                           downsample=model.downsample, channels=model.input_shape[0])
        t_steps = int(data.lengths[0])
        ref = run(model, np.moveaxis(data.frames[:, :t_steps], 1, 0)).logits[:, 0]
        ev = s.events.copy()
        ev["t"] += s.t_start  # absolute times, as a camera delivers them
        c = rt.run_events(ev, t0_us=s.t_start, n_steps=t_steps)
        samples += 1
        steps += t_steps
        if not np.array_equal(c, ref):
            t, k = np.argwhere(c != ref)[0]
            mismatched.append({"sample": samples - 1, "source": s.source, "step": int(t), "class": int(k),
                               "c": int(c[t, k]), "ref": int(ref[t, k])})
    print(json.dumps({"samples": samples, "steps": steps, "mismatched_samples": len(mismatched),
                      "first_mismatches": mismatched[:5], "dt_us": model.dt_us}))
    return 1 if mismatched else 0


if __name__ == "__main__":
    raise SystemExit(main())
