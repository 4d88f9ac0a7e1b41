# SPDX-License-Identifier: MIT
"""The strong frame-CNN anchor (bench.cnn_anchor) on the Cortex-M4 through CMSIS-NN:
instructions per inference in QEMU (mps2-an386, TCG insn plugin), with
bench.device_anchor's machinery (the CMSIS driver of bench/device_cost, CMSIS-NN and
CMSIS_6 compiled at bench time from the checkouts or bare mirrors given, never kept here).

The anchor's int8 .tflite (the hard set's, trained and cached by bench.cnn_anchor) is
converted as `pysg convert` does (dt 10 ms, 8 slices x 10 steps: that conversion only
builds the driver's int8 input tensors from the bundled recording's test gestures; the
network, its weights and its 11.8 M MACs are the anchor's). CMSIS-NN runs one inference
every --hop-ms of those gestures; every inference's int8 logits are checked against
pysg's integer reference (pysg.qnet.QnetRef, equal to TFLite Micro: tests/test_cnn_anchor.py),
a mismatch stops the bench. Instructions per inference = run minus baseline
instructions / inferences; per second of input for the whole-gesture rule = that / the
hard test split's mean gesture duration (one inference per gesture), for a stream at hop
h: that x 1000 / h.

    OMP_NUM_THREADS=1 python -m bench.cnn_anchor_device --cmsis-nn DIR --cmsis-core DIR
        [--data /tmp/hardrun/g_hard] [--gestures 3] [--hop-ms 100] [--opt O2 Os] [--json out.json]
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

from bench import device_cost as dc
from bench.device_anchor import run_model
from pysg.sgm import load_sgm


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cmsis-nn", type=Path, required=True, help="ARM-software/CMSIS-NN checkout or bare mirror")
    ap.add_argument("--cmsis-core", type=Path, required=True, help="ARM-software/CMSIS_6 checkout or bare mirror")
    ap.add_argument("--data", default="/tmp/hardrun/g_hard", help="the anchor's training set (cached model)")
    ap.add_argument("--gestures", type=int, default=3, help="first N of the bundled recording's test gestures")
    ap.add_argument("--hop-ms", type=int, default=100, help="one inference every HOP ms of those gestures")
    ap.add_argument("--opt", nargs="+", default=["O2", "Os"], choices=["O2", "Os"])
    ap.add_argument("--repeat", type=int, default=2, help="runs per case; the counts must be identical")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    if args.gestures < 1 or args.hop_ms < 10 or args.hop_ms % 10 or args.repeat < 1:
        ap.error("--gestures and --repeat must be positive, --hop-ms a multiple of 10")
    args.no_icount, args.profile = True, False
    for path, repo, marker in ((args.cmsis_nn, "ARM-software/CMSIS-NN", "Include/arm_nnfunctions.h"),
                               (args.cmsis_core, "ARM-software/CMSIS_6", "cmsis_compiler.h")):
        dc.cmsis_checkout(path, repo, marker)

    from pysg.converters.tflite_sgm import tflite_to_sgm
    from pysg.datasets.gesture import GESTURE_CLASSES
    from tests.support.cnn_anchor import build_anchor
    from tests.support.cnn_anchor.data import load_events

    anchor = build_anchor(args.data, log=lambda s: print(s, file=sys.stderr))
    sgm = tflite_to_sgm(anchor.tflite, dt_ms=10.0, window_steps=80, sensor=(128, 128), labels=list(GESTURE_CLASSES))
    plugin, pinfo = dc.build_plugin("insn")
    work = Path(tempfile.mkdtemp(prefix="pysg-anchor-dev-"))
    arena = load_sgm(sgm).arena_bytes
    # dc_cmsis.c's static buffers sized for the anchor: 71,168 B of weights, a 32 x 32 x 32 activation
    nn = dc.cmsis_checkout(args.cmsis_nn, "ARM-software/CMSIS-NN", "Include/arm_nnfunctions.h")
    core = dc.cmsis_checkout(args.cmsis_core, "ARM-software/CMSIS_6", "cmsis_compiler.h")
    subprocess.run(["make", "-s", "-C", str(dc.DRIVER_DIR), "cmsis", f"B={work / 'build'}",
                    f"ARENA={(arena + 7) // 8 * 8}", f"CMSIS_NN={nn}", f"CMSIS_CORE={core}",
                    "CMSIS_DEFS=-DDC_CMSIS_WEIGHTS=81920u -DDC_CMSIS_ACT=32768u"], check=True)
    elves = {("cmsis", o): work / "build" / f"dc_cmsis_{o}.elf" for o in args.opt}
    sizes = {k: dc.elf_sizes(e) for k, e in elves.items()}
    rows = run_model("anchor CNN", sgm, [("cmsis", "cmsis", args.hop_ms // 10)], elves, sizes, work, plugin, args,
                     args.gestures)
    mean_s = float(load_events(args.data, "test").durations.mean()) / 1e6
    out = {"machine": {"uname_m": platform.machine(), "nproc": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                       **pinfo},
           "cmsis": {"nn_commit": dc.cmsis_commit(args.cmsis_nn), "core_commit": dc.cmsis_commit(args.cmsis_core)},
           "macs": anchor.meta["macs"], "mean_gesture_s": mean_s, "rows": []}
    for r in rows:
        per = r.case.insns / r.case.steps
        out["rows"].append({"opt": r.case.opt, "inferences": r.case.steps, "insns": r.case.insns,
                            "insns_per_inference": per, "insns_per_mac": per / anchor.meta["macs"],
                            "whole_gesture_insns_per_s_input": per / mean_s,
                            "code_bytes": r.code, "ram_bytes": r.ram, "model_bytes": r.model_bytes,
                            "deterministic": r.case.figures()["deterministic"]})
        print(f"CMSIS-NN -{r.case.opt}: {r.case.steps} inferences, {per / 1e6:.2f} M instructions per inference "
              f"({per / anchor.meta['macs']:.3f} per MAC); whole gesture (1 per {mean_s:.3f} s): "
              f"{per / mean_s / 1e6:.2f} M instructions per s of input; code {r.code:,} B, RAM {r.ram:,} B, "
              f"{'deterministic' if out['rows'][-1]['deterministic'] else 'NOT deterministic'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0 if all(x["deterministic"] for x in out["rows"]) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except dc.BenchError as e:
        print(f"cnn_anchor_device: {e}", file=sys.stderr)
        sys.exit(1)
