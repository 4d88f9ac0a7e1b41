# SPDX-License-Identifier: MIT
"""Issue 15's one table: the SpikingGamma recipe against the strong frame CNN on the hard
set, every row from this one run.

    OMP_NUM_THREADS=1 python -m bench.hard_table --sg MODEL.npz [--sg-old OLD.npz]
        [--hard /tmp/hardrun/g_hard] [--easy /tmp/gd3] [--at-ms 100 200 300 500 1000]
        [--m4-gestures 11] [--plot docs/img/onset.png] [--json out.json]

Per SpikingGamma model (a float .npz, exported to int8 .sgm as `pysg export` does):
  - accuracy on the hard set's unseen people, float and int8 (the C runtime), and on the
    easy set (int8);
  - the int8 model's decision t ms after each gesture's onset (`pysg eval --at-ms`);
  - operations per second of input on the hard set, two kinds, both counted:
    synaptic events (the runtime's synops) and state updates (every state word of the
    arena, K buckets per neuron plus a hidden neuron's encoder, is updated every step);
  - arena and file bytes (the STM32 port: arena <= 32 KiB, a slot 128 KiB);
  - Cortex-M4 instructions per second of input (bench.device_cost: QEMU mps2-an386, insn
    plugin, -O2; frames through sg_step and events through sg_feed) on the first
    --m4-gestures gestures of the hard test split, checked against pysg.intref.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pysg.converters.sgm import export_network
from pysg.jobs import evaluate
from pysg.model.network import Network
from pysg.sgm import load_sgm

AT_MS = (100.0, 200.0, 300.0, 500.0, 1000.0)
STM32_ARENA = 32 * 1024
STM32_SLOT = 128 * 1024


def state_words_per_step(m) -> int:
    """State words the runtime updates each step: K buckets per neuron, plus the encoder of
    a hidden neuron (FORMAT.md's arena formula without the delay rings)."""
    return sum(m.n_buckets * st.n_out + (0 if st.is_output else st.n_out) for st in m.stages)


def activity(ev, dt_us: int) -> dict:
    seconds = sum(r.steps for r in ev.samples) * dt_us / 1e6
    synops = sum(r.synops for r in ev.samples)
    return {"seconds": seconds, "synops_per_s": synops / seconds}


def sg_rows(path: Path, hard: str, easy: str | None, at_ms, log=print) -> dict:
    """Accuracy, earlier decisions, operations and sizes of one SpikingGamma model."""
    net = Network.load(path)
    sgm = export_network(net)
    m = load_sgm(sgm)
    out = {"model": str(path), "sgm_bytes": len(sgm), "arena_bytes": m.arena_bytes, "dt_us": m.dt_us,
           "n_buckets": m.n_buckets,
           "layers": [{"in": list(st.in_shape), "pool": st.pool, "out": list(st.out_shape), "kind": st.kind_name}
                      for st in m.stages]}
    t = time.perf_counter()
    f = evaluate(net, hard, engine="float")
    out["hard_float"] = f.summary["accuracy"]
    q = evaluate(sgm, hard, engine="c", at_ms=at_ms)
    out["hard_int8"] = q.summary["accuracy"]
    out["at_onset"] = q.summary["at_onset"]
    act = activity(q, m.dt_us)
    out["synops_per_s"] = act["synops_per_s"]
    out["state_updates_per_s"] = state_words_per_step(m) * 1e6 / m.dt_us
    out["ops_per_s"] = out["synops_per_s"] + out["state_updates_per_s"]
    out["hard_gestures"], out["hard_seconds"] = q.summary["n"], act["seconds"]
    if easy:
        e = evaluate(sgm, easy, engine="c")
        out["easy_int8"] = e.summary["accuracy"]
    out["eval_s"] = time.perf_counter() - t
    log(f"{path}: hard float {out['hard_float']:.4f} int8 {out['hard_int8']:.4f} easy {out.get('easy_int8')}; "
        f"{out['synops_per_s'] / 1e6:.3f} M synops/s + {out['state_updates_per_s'] / 1e6:.3f} M state updates/s; "
        f"arena {m.arena_bytes} B, file {len(sgm)} B")
    return out, sgm


def m4_rows(sgm: bytes, hard: str, n_gestures: int, work: Path, log=print) -> dict:
    """Cortex-M4 instructions per second of hard-set input, -O2, frames and events."""
    from bench import device_cost as dc

    m = load_sgm(sgm)
    plugin, _ = dc.build_plugin("insn")
    elves = dc.build_driver(work / "build", m.arena_bytes)
    gestures = dc.load_gestures(m, n_gestures, Path(hard))
    ref = dc.reference(m, gestures)
    for r in ref:
        r.pop("logits", None)
        r.pop("tensors", None)
    result_path = str(work / "result.bin")
    meta = {"correct": sum(r["prediction"] == g.label for r, g in zip(ref, gestures))}
    args = argparse.Namespace(repeat=1, no_icount=True, profile=False, json=True)  # device_cost.measure quiet
    out = {"gestures": len(gestures), "seconds": sum(g.seconds for g in gestures)}
    for kind in ("frames", "events"):
        jobs = {flags: dc.encode_job(sgm, gestures, flags, result_path, kind, 0.2)
                for flags in (dc.FLAG_RUN, 0, dc.FLAG_RUN | dc.FLAG_SYSTICK, dc.FLAG_SYSTICK)}
        case = dc.measure(kind, "O2", m.dt_us / 1000, elves["O2"], jobs, gestures, ref, work, plugin, args, meta, {})
        out[f"{kind}_insn_per_s"] = case.insns / out["seconds"]
        log(f"  M4 {kind}: {out[f'{kind}_insn_per_s'] / 1e6:.2f} M instructions per s of input")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sg", type=Path, required=True, help="the SpikingGamma recipe's float model (.npz)")
    ap.add_argument("--sg-old", type=Path, default=None, help="another SpikingGamma model for comparison (.npz)")
    ap.add_argument("--hard", default="/tmp/hardrun/g_hard")
    ap.add_argument("--easy", default="/tmp/gd3")
    ap.add_argument("--at-ms", type=float, nargs="+", default=list(AT_MS))
    ap.add_argument("--m4-gestures", type=int, default=11, help="hard test gestures run on the M4 (0: none)")
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    result = {"date": time.strftime("%Y-%m-%d"), "machine": {"uname_m": platform.machine(), "nproc": 2},
              "hard": args.hard, "easy": args.easy}
    work = Path(tempfile.mkdtemp(prefix="pysg-hard-table-"))
    result["sg"], sgm = sg_rows(args.sg, args.hard, args.easy, args.at_ms, log)
    if args.m4_gestures:
        result["sg"]["m4"] = m4_rows(sgm, args.hard, args.m4_gestures, work, log)
    if args.sg_old:
        result["sg_old"], _ = sg_rows(args.sg_old, args.hard, args.easy, args.at_ms, log)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
