# SPDX-License-Identifier: MIT
"""The device anchor: pysg's SpikingGamma model against an int8 CNN run by CMSIS-NN on
the Cortex-M4, in one run: instructions per second of gesture input (QEMU mps2-an386,
TCG insn plugin, as bench.device_cost), code (flash) and RAM, and the ratios.

    OMP_NUM_THREADS=1 python -m bench.device_anchor --cmsis-nn DIR --cmsis-core DIR
        [--model cnn.tflite|cnn.sgm ...] [--data /tmp/gd3] [--opt O2 Os] [--dt-ms 10]
        [--cnn-hop-ms 10 50 100 200]
        [--gestures N] [--plugin libinsn.so] [--repeat 2] [--icount] [--json]

--cmsis-nn: a checkout of ARM-software/CMSIS-NN (or its bare git mirror);
--cmsis-core: a checkout of ARM-software/CMSIS_6 (or its CMSIS/Core/Include, or its bare
git mirror). Both are compiled at bench time (bench/device_cost/Makefile `cmsis`), never
kept in this repository.

Rows, on the bundled recording's 11 test gestures (bench.device_cost's input):
  - pysg's bundled SpikingGamma model at --dt-ms: frames (sg_step) and events (sg_feed),
    by the runtime as built for the M4 (its DSP-extension paths, execution "sg") and
    with -DSG_NO_DSP (the portable C, "sg-nodsp"): the before/after of those paths;
  - per CNN (default: the baseline CNN of tests/support/cnn_baseline, trained on --data
    on first use and cached; --model takes any int8 .tflite, converted as `pysg convert`
    does with the 128 x 128 sensor, or a version 2 .sgm): the converted network
    delta-executed by pysg's runtime (frames, events), its layers per frame by the
    TFLite-exact reference loops (dense), and by CMSIS-NN's kernels (cmsis; what TFLite
    Micro runs on a Cortex-M4) with a frame every --cnn-hop-ms (10, 50, 100, 200 ms: the
    frame rates at which the CNN is compared in the TFLite baseline bench; every h-th of
    the 10 ms frames, the window unchanged).
Every row's outputs are checked against pysg's integer references as bench.device_cost
checks them (the SpikingGamma steps' logits against pysg.intref; the CNN's against
pysg.qnet.QnetRef, which equals TFLite Micro); a mismatch stops the bench.

Code: the row's own objects in the link map (SpikingGamma: sg_gamma_*.o; delta:
sg_qnet_*.o and sg_qkernels.o; both plus the runtime core, sg_* otherwise; dense:
sg_qkernels.o + dc_dense.o; CMSIS-NN: arm_*.o + dc_cmsis.o), plus the model file (its
weights). RAM: the runtime's arena for the pysg rows; for dense and CMSIS-NN the largest
input + output tensor pair of one layer (CMSIS-NN: plus its scratch buffer), as the
driver reports it. The dense and CMSIS-NN rows are handed each frame's input tensor
ready-made: building it from events (the window of counts) is neither counted nor in
their RAM, in their favour.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import device_cost as dc
from pysg.converters.sgm import export_network
from pysg.model.network import Network
from pysg.recipes import BUNDLED_MODEL
from pysg.sgm import SgmQModel, load_sgm

# objects of each row's code (elf_sizes' by_object names)
CORE = ("sg_status.o", "sg_engines.o", "sg_model.o", "sg_runtime.o", "sg_time.o", "sg_crc32.o", "sg_load.o",
        "sg_utf8.o")
CODE = {"sg": lambda k: k.startswith("sg_gamma_") or k in CORE,
        "sg-nodsp": lambda k: k.startswith("sg_gamma_") or k in CORE,
        "delta": lambda k: k.startswith("sg_qnet_") or k == "sg_qkernels.o" or k in CORE,
        "dense": lambda k: k in ("sg_qkernels.o", "dc_dense.o"),
        "cmsis": lambda k: k.startswith("arm_") or k == "dc_cmsis.o"}


class AnchorError(dc.BenchError):
    """Bad input to the anchor bench (a model file it cannot run)."""


@dataclass
class Row:
    model: str
    execution: str  # sg, delta, dense, cmsis
    kind: str       # device_cost kind
    case: dc.Case
    code: int
    model_bytes: int
    ram: int
    hop_ms: float  # the step (frames, events) or the frame hop (dense, cmsis)

    def figures(self) -> dict:
        f = self.case.figures()
        return {"model": self.model, "execution": self.execution, "kind": self.kind, "opt": self.case.opt,
                "hop_ms": self.hop_ms,
                "insns": self.case.insns, "insns_per_s_input": f["insns_per_s_input"],
                "x_realtime_168MHz_cpi1": f["x_realtime_168MHz_cpi1"], "code_bytes": self.code,
                "model_bytes": self.model_bytes, "flash_bytes": self.code + self.model_bytes, "ram_bytes": self.ram,
                "correct": self.case.correct, "seconds": self.case.seconds, "deterministic": f["deterministic"],
                "icount_cross_check": self.case.icount_insns}


def build_portable_driver(build_dir: Path, arena_bytes: int) -> dict[str, Path]:
    """make -C bench/device_cost portable: the runtime with -DSG_NO_DSP, one ELF per level."""
    arena = (arena_bytes + 7) // 8 * 8
    subprocess.run(["make", "-s", "-C", str(dc.DRIVER_DIR), "portable", f"B={build_dir}", f"ARENA={arena}"],
                   check=True)
    return {opt: build_dir / f"dc_portable_{opt}.elf" for opt in ("O2", "Os")}


def baseline_cnn(data: str) -> tuple[Path, dict]:
    """The baseline CNN's .tflite (tests/support/cnn_baseline; trained on first use) and its facts."""
    from tests.support.cnn_baseline import BaselineConfig, build_baseline

    base = build_baseline(data, BaselineConfig(), log=lambda *a: print(*a, file=sys.stderr))
    return Path(base.path), base.meta


def cnn_sgm(path: Path, dt_ms: float, window_ms: int = 200) -> bytes:
    """A version 2 .sgm as it is, or an int8 .tflite converted as the benches convert the
    baseline (dt, window_ms / dt steps, the DVS128's 128 x 128 sensor, the gesture labels)."""
    if not path.is_file():
        raise AnchorError(f"--model {path}: no such file")
    data = path.read_bytes()
    if path.suffix == ".sgm":
        try:
            model = load_sgm(data)
        except ValueError as e:
            raise AnchorError(f"--model {path}: not a readable .sgm ({e})") from e
        if not isinstance(model, SgmQModel):
            raise AnchorError(f"--model {path}: a SpikingGamma .sgm; give an int8 CNN (.tflite or version 2 .sgm)")
        return data
    from pysg.converters.tflite_sgm import tflite_to_sgm
    from pysg.datasets.gesture import GESTURE_CLASSES

    try:
        return tflite_to_sgm(data, dt_ms=dt_ms, window_steps=int(round(window_ms / dt_ms)), sensor=(128, 128),
                             labels=list(GESTURE_CLASSES))
    except (ValueError, KeyError) as e:
        raise AnchorError(f"--model {path}: cannot convert this .tflite ({e}); give an int8 CNN") from e


def hop_reference(model: SgmQModel, ref: list[dict], step: int) -> list[dict]:
    """dc.dense_reference for a frame CNN run every ``step`` steps (hop = step x dt): the
    reference's frames W - 1, W - 1 + step, ... (the window always the model's)."""
    from pysg.qnet import DeltaNetwork

    macs = DeltaNetwork(model).dense_macs_per_frame
    out = []
    for r in ref:
        lg = r["logits"][model.window - 1::step]
        sc = lg.astype(np.int64).sum(axis=0)
        out.append({"hash": dc.fnv_logits(lg), "scores": sc, "prediction": int(sc.argmax()), "synops": macs * len(lg),
                    "spikes0": 0, "events_in": r["events_in"], "steps": len(lg)})
    return out


def run_model(name: str, sgm: bytes, executions: list[tuple[str, str, int]], elves: dict, sizes: dict, work: Path,
              plugin: Path, args, n_gestures: int | None, data: Path = dc.BUNDLED_SAMPLES) -> list[Row]:
    """Every (execution, kind, hop in steps) of one model at every --opt, checked against
    the reference (a dense kind at a hop of h steps runs every h-th frame), on the first
    `n_gestures` of `data`'s test split."""
    m = load_sgm(sgm)
    gestures = dc.load_gestures(m, n_gestures, data)
    ref = dc.reference(m, gestures)
    refs = {step: hop_reference(m, ref, step) for _, kind, step in executions if kind in dc.DENSE_KINDS}
    tensors = [r.pop("tensors", None) for r in ref]
    for r in ref:
        r.pop("logits", None)
    warm = 0.0 if isinstance(m, SgmQModel) else 0.2
    rows = []
    result_path = str(work / "result.bin")
    for execution, kind, step in executions:
        want = refs[step] if kind in dc.DENSE_KINDS else ref
        meta = {"correct": sum(r["prediction"] == g.label for r, g in zip(want, gestures))}
        frames = [t[::step] for t in tensors] if kind in dc.DENSE_KINDS else tensors
        jobs = {flags: dc.encode_job(sgm, gestures, flags, result_path, kind, warm, frames)
                for flags in (dc.FLAG_RUN, 0, dc.FLAG_RUN | dc.FLAG_SYSTICK, dc.FLAG_SYSTICK)}
        for opt in args.opt:
            build = "cmsis" if kind == "cmsis" else "portable" if execution == "sg-nodsp" else "rt"
            elf = elves[(build, opt)]
            case = dc.measure(kind, opt, m.dt_us / 1000, elf, jobs, gestures, want, work, plugin, args, meta, {})
            by_obj = sizes[(build, opt)]["by_object"]
            code = sum(v for k, v in by_obj.items() if CODE[execution](k))
            if kind in dc.DENSE_KINDS:  # the driver's figure: largest in + out pair (+ CMSIS-NN's scratch)
                ram = _dense_ram(m) if kind == "dense" else _cmsis_ram(elf, jobs[dc.FLAG_RUN], work)
            else:
                ram = m.arena_bytes
            rows.append(Row(name, execution, kind, case, code, len(sgm), ram, step * m.dt_us / 1000))
    return rows


def _dense_ram(m: SgmQModel) -> int:
    """The dense loops' RAM: the largest input + output tensor pair of one layer (int8)."""
    return max(int(np.prod(q.in_shape)) + int(np.prod(q.out_shape)) for q in m.layers)


def _cmsis_ram(elf: Path, job: bytes, work: Path) -> int:
    res, _, _ = dc.run_qemu(elf, job, work, plugin=None, icount=False)
    return int(res["gestures"][0]["ram"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cmsis-nn", type=Path, required=True,
                    help="a checkout of ARM-software/CMSIS-NN (or its bare git mirror)")
    ap.add_argument("--cmsis-core", type=Path, required=True,
                    help="a checkout of ARM-software/CMSIS_6 (or its CMSIS/Core/Include, or its bare git mirror)")
    ap.add_argument("--model", type=Path, nargs="+", default=None,
                    help="int8 CNNs (.tflite or version 2 .sgm); default: the baseline CNN "
                         "(tests/support/cnn_baseline)")
    ap.add_argument("--data", default=None, help="the baseline CNN's training set (default: the benches' /tmp/gd3)")
    ap.add_argument("--dt-ms", type=float, default=10.0, help="the SpikingGamma model's step and the CNNs' frame hop")
    ap.add_argument("--cnn-hop-ms", type=float, nargs="+", default=[10.0, 50.0, 100.0, 200.0],
                    help="CMSIS-NN rows: a frame every HOP ms (the CNN's frame rate; the first is the ratio's base)")
    ap.add_argument("--opt", nargs="+", default=["O2", "Os"], choices=["O2", "Os"])
    ap.add_argument("--gestures", type=int, default=None, help="first N gestures (default: all 11)")
    ap.add_argument("--plugin", type=Path, default=None, help="a built libinsn.so (default: build and cache)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per case; the counts must be identical")
    ap.add_argument("--icount", action="store_true", help="also the -icount shift=0 + SysTick cross-check")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.repeat < 1 or (args.gestures is not None and args.gestures < 1) or min(args.cnn_hop_ms) <= 0:
        ap.error("--repeat, --gestures and --cnn-hop-ms must be positive")
    args.no_icount, args.profile = not args.icount, False
    for path, repo, marker in ((args.cmsis_nn, "ARM-software/CMSIS-NN", "Include/arm_nnfunctions.h"),
                               (args.cmsis_core, "ARM-software/CMSIS_6", "cmsis_compiler.h")):
        dc.cmsis_checkout(path, repo, marker)  # a wrong folder stops here, before any build

    sg = export_network(Network.load(BUNDLED_MODEL), dt_us=int(round(args.dt_ms * 1000)))
    cnns: list[tuple[str, bytes]] = []
    baseline_meta = None
    if args.model is None:
        from tests.support.gesture_split import DEFAULT_DATA

        path, baseline_meta = baseline_cnn(args.data or DEFAULT_DATA)
        cnns.append(("baseline CNN", cnn_sgm(path, args.dt_ms)))
        baseline_meta = baseline_meta | {"path": str(path)}
    else:
        cnns += [(p.name, cnn_sgm(p, args.dt_ms)) for p in args.model]

    plugin, pinfo = (args.plugin, {"plugin": str(args.plugin)}) if args.plugin else dc.build_plugin("insn")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="pysg-anchor-"))
    work.mkdir(parents=True, exist_ok=True)
    arena = max(load_sgm(d).arena_bytes for d in [sg] + [c for _, c in cnns])
    built = dc.build_driver(work / "build", arena)
    built_c = dc.build_cmsis_driver(work / "build", arena, args.cmsis_nn, args.cmsis_core)
    built_p = build_portable_driver(work / "build", arena)
    elves = {(b, o): e[o] for b, e in (("rt", built), ("cmsis", built_c), ("portable", built_p)) for o in args.opt}
    sizes = {key: dc.elf_sizes(elf) for key, elf in elves.items()}

    sg_runs = [(e, k, 1) for e in ("sg", "sg-nodsp") for k in ("frames", "events")]
    rows = run_model("SpikingGamma (bundled)", sg, sg_runs, elves, sizes, work, plugin, args, args.gestures)
    for name, data in cnns:
        hops = [max(1, int(round(h * 1000 / load_sgm(data).dt_us))) for h in args.cnn_hop_ms]
        rows += run_model(name, data, [("delta", "frames", 1), ("delta", "events", 1), ("dense", "dense", 1)]
                          + [("cmsis", "cmsis", h) for h in dict.fromkeys(hops)], elves, sizes, work, plugin, args,
                          args.gestures)
    out = {"machine": {"uname_m": platform.machine(), "nproc": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                       **pinfo},
           "cmsis": {"nn": str(args.cmsis_nn), "nn_commit": dc.cmsis_commit(args.cmsis_nn),
                     "core": str(args.cmsis_core), "core_commit": dc.cmsis_commit(args.cmsis_core)},
           "baseline": baseline_meta, "rows": [r.figures() for r in rows]}
    for f, r in zip(out["rows"], rows):  # the same model's CMSIS-NN row (same level, first hop), else the first CNN's
        cm = [x for x in rows if x.model == r.model and x.execution == "cmsis" and x.case.opt == r.case.opt] or \
             [x for x in rows if x.execution == "cmsis" and x.case.opt == r.case.opt]
        f["vs_cmsis_hop_ms"] = cm[0].hop_ms if cm else None
        f["vs_cmsis"] = r.case.insns / cm[0].case.insns if cm else None
    deterministic = all(r.case.figures()["deterministic"] for r in rows)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print_table(out, rows)
        print(f"work files in {work}")
    return 0 if deterministic else 1


def print_table(out: dict, rows: list[Row]) -> None:
    print()
    print(f"machine {out['machine']}")
    print(f"CMSIS-NN {out['cmsis']['nn_commit'][:12]}, CMSIS_6 {out['cmsis']['core_commit'][:12]}")
    if out["baseline"]:
        b = out["baseline"]
        print(f"baseline CNN {b['path']}: {b['macs_per_frame']:,} MACs per frame; LiteRT int8 test accuracy "
              f"{b['int8_litert_accuracy']:.4f} ({b['test_gestures']} gestures)")
    hdr = (f"{'model':<24}{'execution':<10}{'input':<8}{'hop ms':>7} {'opt':<4}{'insns':>15}{'M insn/s in':>13}"
           f"{'x CMSIS-NN':>11}{'xRT@168':>9}{'code B':>8}{'model B':>9}{'RAM B':>8}{'right':>7}{'same':>6}")
    print(hdr)
    for f, r in zip(out["rows"], rows):
        vs = f"{f['vs_cmsis']:.3f}" if f["vs_cmsis"] is not None else "-"
        print(f"{r.model[:23]:<24}{r.execution:<10}{r.kind:<8}{r.hop_ms:>7g} {r.case.opt:<4}{r.case.insns:>15,}"
              f"{f['insns_per_s_input'] / 1e6:>13.2f}{vs:>11}{f['x_realtime_168MHz_cpi1']:>9.1f}"
              f"{r.code:>8,}{r.model_bytes:>9,}{r.ram:>8,}{r.case.correct:>7}"
              f"{'yes' if f['deterministic'] else 'NO':>6}")
    for r in rows:  # the DSP paths' before/after
        if r.execution == "sg":
            p = [x for x in rows if x.execution == "sg-nodsp" and x.kind == r.kind and x.case.opt == r.case.opt]
            if p:
                print(f"SpikingGamma {r.kind} -{r.case.opt}: DSP paths {r.case.insns:,} / portable C "
                      f"{p[0].case.insns:,} instructions = {r.case.insns / p[0].case.insns:.4f}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except dc.BenchError as e:
        print(f"device_anchor: {e}", file=sys.stderr)
        sys.exit(1)
