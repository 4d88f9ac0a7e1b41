# SPDX-License-Identifier: MIT
"""Issue 15's one table: the SpikingGamma recipe against the strong frame CNN on the hard
set, every row from this one run.

    OMP_NUM_THREADS=1 python -m bench.hard_table --sg MODEL.npz [--sg-old OLD.npz]
        [--hard /tmp/hardrun/g_hard] [--easy /tmp/gd3] [--at-ms 100 200 300 500 1000]
        [--m4-gestures 11] [--cmsis-nn DIR --cmsis-core DIR] [--no-cnn]
        [--plot docs/img/onset.png] [--json out.json]

Per SpikingGamma model (a float .npz, exported to int8 .sgm as `pysg export` does):
  - accuracy on the hard set's unseen people, float and int8 (the C runtime), and on the
    easy set (int8; --sg-easy: the same recipe trained on the easy set, as the CNN anchor is
    trained per set);
  - the int8 model's decision t ms after each gesture's onset (`pysg eval --at-ms`);
  - operations per second of input on the hard set, two kinds, both counted:
    synaptic events (the runtime's synops) and state updates (every state word of the
    arena, K buckets per neuron plus a hidden neuron's encoder, is updated every step);
    and the multiply-accumulates the runtime executes for those synaptic events: a pixel's
    events of one step reach its targets as one count x weight each (`input_macs`), a
    hidden neuron spikes at most once a step, so there synops = MACs;
  - arena and file bytes (the STM32 port: arena <= 32 KiB, a slot 128 KiB);
  - Cortex-M4 instructions per second of input (bench.device_cost: QEMU mps2-an386, insn
    plugin, -O2; frames through sg_step and events through sg_feed) on the first
    --m4-gestures gestures of the hard test split, checked against pysg.intref.
The strong frame-CNN anchor (bench.cnn_anchor; trained and cached per dataset on first
use): int8 LiteRT accuracy on the same splits, whole gesture (one inference) and streaming
(a 2 s window every 100/200/500 ms), its decision 300 ms after onset, MACs per s of input,
and with --cmsis-nn/--cmsis-core its CMSIS-NN instructions on the M4 (bench.cnn_anchor_device:
per inference on the first 3 hard test gestures, x inferences per s).
Prints the Markdown table (BENCHMARKS.md "The hard set: one table") on stdout.
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
from pysg.model.network import Network, input_counts
from pysg.recipes import load_split
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
    return {"seconds": seconds, "synops": synops, "synops_per_s": synops / seconds}


def input_macs(net: Network, data) -> dict:
    """The input layer's work over binned samples (`pysg.recipes.load_split`, the binning
    the engines use), after the model's input gate (`input_counts`): events taken x fan-out
    (synops) and (pixel, step) cells whose events are taken x fan-out (the
    multiply-accumulates the runtime executes: one count x weight per target, however many
    events the cell holds)."""
    fanout = net.init_state(1).fanout[0].astype(np.int64)
    frames = input_counts(data.frames.reshape(*data.frames.shape[:2], -1), net.config.input_min_count)
    synops = int(np.einsum("ntp,p->", frames.astype(np.int64), fanout))
    macs = int(np.einsum("ntp,p->", (frames > 0).astype(np.int64), fanout))
    return {"input_synops": synops, "input_macs": macs}


def sg_rows(path: Path, hard: str, easy: str | None, at_ms, log=print, easy_model: Path | None = None) -> dict:
    """Accuracy, earlier decisions, operations and sizes of one SpikingGamma model; the
    easy column is `easy_model`'s (the same recipe trained on the easy set) when given."""
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
    inp = input_macs(net, load_split(hard, "test", net))
    hidden_synops = act["synops"] - inp["input_synops"]  # hidden spikes x fan-out (one MAC each)
    if hidden_synops < 0:
        raise SystemExit(f"hard_table: the binned input holds {inp['input_synops']} synops, the run {act['synops']}")
    out["input_synops_per_s"] = inp["input_synops"] / act["seconds"]
    out["macs_per_s"] = (inp["input_macs"] + hidden_synops) / act["seconds"]
    out["executed_ops_per_s"] = out["macs_per_s"] + out["state_updates_per_s"]
    out["hard_gestures"], out["hard_seconds"] = q.summary["n"], act["seconds"]
    if easy:
        e = evaluate(export_network(Network.load(easy_model)) if easy_model else sgm, easy, engine="c")
        out["easy_int8"], out["easy_model"] = e.summary["accuracy"], str(easy_model or path)
    out["eval_s"] = time.perf_counter() - t
    log(f"{path}: hard float {out['hard_float']:.4f} int8 {out['hard_int8']:.4f} easy {out.get('easy_int8')}; "
        f"{out['synops_per_s'] / 1e6:.3f} M synops/s ({out['macs_per_s'] / 1e6:.3f} M MACs executed) + "
        f"{out['state_updates_per_s'] / 1e6:.3f} M state updates/s; "
        f"arena {m.arena_bytes} B, file {len(sgm)} B")
    return out, sgm


def m4_rows(sgm: bytes, hard: str, n_gestures: int, work: Path, log=print) -> dict:
    """Cortex-M4 instructions per second of hard-set input, -O2, frames and events
    (bench.device_anchor.run_model: checked against pysg.intref)."""
    from bench import device_cost as dc
    from bench.device_anchor import run_model

    plugin, _ = dc.build_plugin("insn")
    elf = dc.build_driver(work / "build", load_sgm(sgm).arena_bytes)["O2"]
    args = argparse.Namespace(opt=["O2"], repeat=1, no_icount=True, profile=False, json=True)  # measure quiet
    rows = run_model("sg", sgm, [("sg", "frames", 1), ("sg", "events", 1)], {("rt", "O2"): elf},
                     {("rt", "O2"): dc.elf_sizes(elf)}, work, plugin, args, n_gestures, Path(hard))
    out = {"gestures": n_gestures, "seconds": rows[0].case.seconds}
    for r in rows:
        out[f"{r.case.kind}_insn_per_s"] = r.case.insns / r.case.seconds
        log(f"  M4 {r.case.kind}: {out[f'{r.case.kind}_insn_per_s'] / 1e6:.2f} M instructions per s of input")
    return out


def cnn_rows(hard: str, easy: str | None, cmsis_nn: Path | None, cmsis_core: Path | None, m4_gestures: int,
             work: Path, log=print) -> dict:
    """The strong frame-CNN anchor (bench.cnn_anchor: trained and cached per dataset) on the
    same splits, and on the M4 through CMSIS-NN (bench.cnn_anchor_device) when given."""
    from bench import cnn_anchor, cnn_anchor_device

    out = {"hard": cnn_anchor.run_dataset("hard", hard, log=log)}
    if easy:
        out["easy"] = cnn_anchor.run_dataset("easy", easy, log=log)
    if cmsis_nn and cmsis_core and m4_gestures:
        path = work / "cnn_m4.json"
        rc = cnn_anchor_device.main(["--cmsis-nn", str(cmsis_nn), "--cmsis-core", str(cmsis_core), "--data", hard,
                                     "--gestures", str(min(3, m4_gestures)), "--opt", "O2", "--repeat", "1",
                                     "--json", str(path)])
        if rc:
            raise SystemExit(f"hard_table: CMSIS-NN run not deterministic (exit {rc})")
        out["m4"] = json.loads(path.read_text())
    return out


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _m(x) -> str:
    return "-" if x is None else f"{x / 1e6:.2f} M"


def table(result: dict) -> str:
    """Issue 15's table (Markdown) from one run's results."""
    lines = ["| model | hard: int8 (float) | easy: int8 | hard, 300 ms after onset | operations per s of input | "
             "Cortex-M4 instructions per s of input | state / model bytes |",
             "|---|---|---|---|---|---|---|"]
    for key, name in (("sg", "SpikingGamma, `pysg train` default"), ("sg_old", "SpikingGamma, previous default")):
        r = result.get(key)
        if not r:
            continue
        at300 = next((a["accuracy"] for a in r["at_onset"] if a["ms"] == 300.0), None)
        m4 = r.get("m4", {})
        lines.append(f"| {name} (dt {r['dt_us'] // 1000} ms) | {_pct(r['hard_int8'])} ({_pct(r['hard_float'])}) | "
                     f"{_pct(r.get('easy_int8'))} | {_pct(at300)} | {_m(r['ops_per_s'])} = {_m(r['synops_per_s'])} "
                     f"synops + {_m(r['state_updates_per_s'])} state updates; executed: "
                     f"{_m(r['executed_ops_per_s'])} = {_m(r['macs_per_s'])} MACs + state | "
                     f"{_m(m4.get('frames_insn_per_s'))} frames, {_m(m4.get('events_insn_per_s'))} events | "
                     f"{r['arena_bytes']:,} / {r['sgm_bytes']:,} |")
    cnn = result.get("cnn")
    if cnn:
        h = cnn["hard"]
        e = {row["mode"] + str(row["hop_ms"]): row for row in cnn.get("easy", {}).get("rows", [])}
        at300 = next(row for row in h["rows"] if row["mode"] == "onset" and row["t_ms"] == 300)
        m4 = next((r for r in cnn.get("m4", {}).get("rows", []) if r["opt"] == "O2"), None)
        for row in h["rows"]:
            if row["mode"] == "onset":
                continue
            per_s = row["ops_per_s_input"]
            insn = None if m4 is None else m4["insns_per_inference"] * per_s / h["macs"]
            what = ("whole gesture, 1 inference" if row["mode"] == "whole"
                    else f"stream, a 2 s window every {row['hop_ms']} ms")
            ee = e.get(row["mode"] + str(row["hop_ms"]))
            lines.append(f"| CNN anchor int8 LiteRT, {what} | {_pct(row['int8_accuracy'])} "
                         f"({_pct(row['float_accuracy'])}) | {_pct(ee['int8_accuracy'] if ee else None)} | "
                         f"{_pct(at300['int8_accuracy']) if row['mode'] == 'whole' else '-'} | {_m(per_s)} MACs | "
                         f"{_m(insn)} (CMSIS-NN) | - / {h['model_bytes']:,} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sg", type=Path, required=True, help="the SpikingGamma recipe's float model (.npz)")
    ap.add_argument("--sg-easy", type=Path, default=None,
                    help="the same recipe trained on the easy set (.npz; default: --sg's easy accuracy)")
    ap.add_argument("--sg-old", type=Path, default=None, help="another SpikingGamma model for comparison (.npz)")
    ap.add_argument("--hard", default="/tmp/hardrun/g_hard")
    ap.add_argument("--easy", default="/tmp/gd3")
    ap.add_argument("--at-ms", type=float, nargs="+", default=list(AT_MS))
    ap.add_argument("--m4-gestures", type=int, default=11, help="hard test gestures run on the M4 (0: none)")
    ap.add_argument("--cmsis-nn", type=Path, default=None, help="ARM-software/CMSIS-NN checkout or bare mirror "
                    "(the CNN on the M4; default: not run)")
    ap.add_argument("--cmsis-core", type=Path, default=None, help="ARM-software/CMSIS_6 checkout or bare mirror")
    ap.add_argument("--no-cnn", action="store_true", help="the SpikingGamma rows only")
    ap.add_argument("--plot", type=Path, default=None, help="accuracy against time since onset (PNG)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    result = {"date": time.strftime("%Y-%m-%d"), "machine": {"uname_m": platform.machine(), "nproc": 2},
              "hard": args.hard, "easy": args.easy}
    work = Path(tempfile.mkdtemp(prefix="pysg-hard-table-"))
    result["sg"], sgm = sg_rows(args.sg, args.hard, args.easy, args.at_ms, log, args.sg_easy)
    if args.m4_gestures:
        result["sg"]["m4"] = m4_rows(sgm, args.hard, args.m4_gestures, work, log)
    if args.sg_old:
        result["sg_old"], _ = sg_rows(args.sg_old, args.hard, args.easy, args.at_ms, log)
    if not args.no_cnn:
        result["cnn"] = cnn_rows(args.hard, args.easy, args.cmsis_nn, args.cmsis_core, args.m4_gestures, work, log)
    if args.plot:
        from pysg.plots import plot_onset_accuracy

        curves = {f"SpikingGamma int8 ({_pct(result['sg']['hard_int8'])} at the end)": {
            "at_onset": result["sg"]["at_onset"], "accuracy": result["sg"]["hard_int8"]}}
        if "cnn" in result:
            h = result["cnn"]["hard"]
            whole = h["rows"][0]
            curves[f"CNN anchor int8 ({_pct(whole['int8_accuracy'])} whole gesture)"] = {
                "at_onset": [{"ms": float(r["t_ms"]), "accuracy": r["int8_accuracy"]} for r in h["rows"]
                             if r["mode"] == "onset"], "accuracy": whole["int8_accuracy"]}
        plot_onset_accuracy(curves, args.plot, title="hard set, unseen people: the decision t ms after onset")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
