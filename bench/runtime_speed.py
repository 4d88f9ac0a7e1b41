# SPDX-License-Identifier: MIT
"""Speed of the C runtime (through cffi) vs the Python integer reference vs the float
model, on the bundled recording (pysg/data/samples, 26.7 s of DVS128 events, the whole
file as one sample like `pysg run`) and the bundled gesture model exported to .sgm;
plus instruction counts of the C runtime alone under valgrind's callgrind (a small C
driver, bench/sg_drive.c, fed the same events in packets of 1024).

    OMP_NUM_THREADS=1 python -m bench.runtime_speed [--repeat 3] [--dt-ms 10] [--no-callgrind]

Columns: wall time (best of --repeat), events/s, real-time factor (wall time per second
of DVS input), ns per synaptic operation (wall / synops), speed-up over the other
engines. "C feed" is the streaming path (every event fed at once, sg_feed closes the
steps); "C per-step" reads the logits of every step (run_events); "C frames" steps
through pre-binned frames (sg_step); the integer reference and the float model include
their binning. All engines must agree: the C and reference predictions, synops and
spikes are checked equal.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from pysg.converters.sgm import export_network
from pysg import intref
from pysg.model.network import Network
from pysg.recipes import BUNDLED_MODEL, BUNDLED_SAMPLES
from pysg.runtime import Runtime, as_sg_events, run_events_c
from pysg.sgm import load_sgm
from tests.support.measure import CHUNK, best, callgrind


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dt-ms", type=float, default=None, help="retarget the model first (default: its own 10 ms)")
    ap.add_argument("--no-callgrind", action="store_true")
    args = ap.parse_args(argv)

    from pysg.io.aedat31 import read_aedat31

    rec = next(BUNDLED_SAMPLES.glob("*.aedat"))
    ev = read_aedat31(rec)
    net = Network.load(BUNDLED_MODEL)
    if args.dt_ms is not None:
        net = net.retarget_dt(int(round(args.dt_ms * 1000)))
    sgm = export_network(net)
    m = load_sgm(sgm)
    rt = Runtime(sgm)
    t = ev["t"]
    t0, seconds = int(t.min()), (int(t.max()) - int(t.min()) + 1) / 1e6
    n_steps = (int(t.max()) - t0) // m.dt_us + 1
    sg_ev = as_sg_events(ev)
    print(f"recording {rec.name}: {len(ev)} events over {seconds:.2f} s, {n_steps} steps of {m.dt_us} us; "
          f"model {len(sgm)} B .sgm, arena {rt.arena_bytes} B", flush=True)

    rows = {}
    # C, streaming: one sg_feed of every event, then close the last step
    wall, pred = best(lambda: rt.classify_events(sg_ev, t0_us=t0, n_steps=n_steps), args.repeat)
    st = rt.stats
    rows["C feed (cffi)"] = wall
    # C, per-step logits (the `pysg run --engine c` path)
    wall, c_run = best(lambda: run_events_c(rt, ev), args.repeat)
    rows["C per-step (cffi)"] = wall
    # C, pre-binned frames through sg_step (binning excluded)
    frames = intref.frames_from_events(m, ev)
    wall, _ = best(lambda: rt.run_frames(frames), args.repeat)
    rows["C frames (cffi)"] = wall
    # the Python integer reference (binning included)
    wall, ref = best(lambda: intref.run_events(m, ev), max(1, min(args.repeat, 2)))
    rows["Python int ref"] = wall
    # the float model (binning included)

    def run_float():
        fr = intref.frames_from_events(m, ev)
        return net.run(fr[:, None].astype(np.float32))

    wall, flt = best(run_float, max(1, min(args.repeat, 2)))
    rows["float model (numpy)"] = wall

    if not (pred == c_run["prediction_index"] == ref["prediction_index"] and st["synops"] == ref["synops"]
            and st["spikes"] == ref["spikes"] and np.array_equal(c_run["logits"], ref["logits"])):
        print(f"MISMATCH: C {pred} {st} vs reference {ref['prediction_index']} {ref['synops']} {ref['spikes']}")
        return 1
    synops = st["synops"]
    print(f"prediction {m.labels[pred]} (all engines agree: C == reference bit-exact; float model predicts "
          f"{m.labels[int(np.argmax(flt.logits[int(0.2 * n_steps):, 0].sum(0)))]}); "
          f"{synops} synaptic ops ({synops / seconds / 1e6:.2f} M/s of input), "
          f"{sum(st['spikes'])} spikes\n")

    base_c = rows["C feed (cffi)"]
    print(f"{'engine':<22}{'wall s':>9}{'Mevents/s':>11}{'RTF':>10}{'x realtime':>12}{'ns/synop':>10}"
          f"{'time / C feed':>15}")
    for name, wall in rows.items():
        print(f"{name:<22}{wall:>9.3f}{len(ev) / wall / 1e6:>11.2f}{wall / seconds:>10.5f}{seconds / wall:>12.0f}"
              f"{wall / synops * 1e9:>10.2f}{wall / base_c:>15.2f}")
    ref_w, flt_w = rows["Python int ref"], rows["float model (numpy)"]
    print(f"\nspeed-up of the C runtime (feed) over the integer reference {ref_w / base_c:.1f}x, over the float "
          f"model {flt_w / base_c:.1f}x; per-step C path: {ref_w / rows['C per-step (cffi)']:.1f}x and "
          f"{flt_w / rows['C per-step (cffi)']:.1f}x")
    print("(RTF = wall time per second of DVS input; ns/synop = wall / synaptic ops of the event-driven run, "
          "the same count for every row)")

    if not args.no_callgrind:
        if not shutil.which("valgrind"):
            print("\nvalgrind not found: no instruction counts")
            return 0
        with tempfile.TemporaryDirectory() as tmp:
            cg = callgrind(sgm, ev, Path(tmp))
        ir = cg["instructions"]
        print(f"\ncallgrind (sg_drive_run only: reset, {len(ev)} events fed in packets of {CHUNK}, "
              f"{n_steps} steps; driver: {cg['driver_stdout']})")
        print(f"  instructions           {ir:>15,d}")
        print(f"  per second of input    {ir / seconds:>15,.0f}")
        print(f"  per event              {ir / len(ev):>15.1f}")
        print(f"  per synaptic op        {ir / synops:>15.2f}")
        print(f"  per step               {ir / n_steps:>15,.0f}")
        for name, n, pct in cg["top"]:
            print(f"    {name:<26}{n:>15,d} ({pct:4.1f} %)")
        print(f"  compile: {cg['compile']}")
        print(f"  run:     {cg['valgrind']}")
        if int(cg["stats"].get("synops", -1)) != synops or int(cg["stats"].get("prediction", -2)) != pred:
            print("  MISMATCH between the driver and the cffi runtime")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
