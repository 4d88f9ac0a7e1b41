# SPDX-License-Identifier: MIT
"""Speed of an imported network (version 2 .sgm, `pysg convert`) in the C runtime, on the
bundled recording (pysg/data/samples, 26.7 s of DVS128 events, the whole file as one
sample): wall time through cffi (best of --repeat) and instructions of the C runtime
alone under valgrind's callgrind (bench/sg_drive.c, packets of 1024 events, as
bench/runtime_speed.py counts the SpikingGamma model), per step and per synaptic op,
with the functions that take them. The C runtime's per-step logits are checked equal to
the Python reference pysg.qnet.QnetRef's first.

    OMP_NUM_THREADS=1 python -m bench.qnet_speed MODEL.sgm [--repeat 3] [--no-callgrind]
    (MODEL.sgm: e.g. `pysg convert ~/.cache/pysg-bench/gesture_cnn_*.tflite -o cnn.sgm --sensor 128x128`)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from pysg.datasets.binning import bin_events
from pysg.qnet import QnetRef
from pysg.recipes import BUNDLED_SAMPLES
from pysg.runtime import Runtime, as_sg_events
from tests.support.measure import best, callgrind


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="a version 2 .sgm with event-count input")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-callgrind", action="store_true")
    args = ap.parse_args(argv)
    from pysg.io.aedat31 import read_aedat31

    sgm = args.model.read_bytes()
    rt = Runtime(sgm)
    if rt.kind.name != "qnet" or rt.tensor_input:
        raise SystemExit("qnet_speed: the model must be an imported network with event-count input")
    rec = next(BUNDLED_SAMPLES.glob("*.aedat"))
    ev = read_aedat31(rec)
    t = ev["t"].astype(np.int64)
    t0 = int(t.min())
    n_steps = (int(t.max()) - t0) // rt.dt_us + 1
    seconds = n_steps * rt.dt_us / 1e6
    print(f"recording {rec.name}: {len(ev)} events, {n_steps} steps of {rt.dt_us} us; model {len(sgm)} B, "
          f"arena {rt.arena_bytes} B", flush=True)

    # correctness first: per-step logits of the C runtime = the Python reference's
    logits = rt.run_events(ev, t0_us=t0, n_steps=n_steps)
    ref = QnetRef(sgm)
    ev0 = ev.copy()
    ev0["t"] = t - t0
    counts = bin_events(ev0, duration_us=n_steps * rt.dt_us, dt_us=rt.dt_us, sensor_size=rt.sensor_size,
                        downsample=rt.downsample, channels=ref.model.polarities)
    want = np.stack([ref.step_counts(c) for c in counts[:n_steps]])
    if not np.array_equal(logits, want):
        print(f"C runtime differs from pysg.qnet.QnetRef in {int((logits != want).sum())} logits", file=sys.stderr)
        return 1
    sg_ev = as_sg_events(ev)
    wall, pred = best(lambda: rt.classify_events(sg_ev, t0_us=t0, n_steps=n_steps, warmup=0.0), args.repeat)
    st = rt.stats
    print(f"C feed (cffi): {1e3 * wall:.1f} ms = {1e3 * wall / seconds:.2f} ms per s of input, "
          f"{1e6 * wall / n_steps:.1f} us per step; {st['synops']:,} synaptic ops "
          f"({st['synops'] / n_steps:,.0f} per step), deltas per entry {st['spikes']}; prediction {pred}; "
          f"per-step logits equal pysg.qnet.QnetRef ({logits.size:,})")
    if args.no_callgrind:
        return 0
    with tempfile.TemporaryDirectory() as d:
        cg = callgrind(sgm, ev, Path(d))
    n = cg["instructions"]
    print(f"callgrind: {n:,} instructions = {n / n_steps:,.0f} per step, {n / st['synops']:.1f} per synaptic op, "
          f"{n / seconds / 1e6:.1f} M per s of input; top: "
          + ", ".join(f"{name} {pct:.1f} %" for name, _, pct in cg["top"]))
    print(f"  ({cg['compile']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
