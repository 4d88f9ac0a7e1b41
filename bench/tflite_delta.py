# SPDX-License-Identifier: MIT
"""The TFLite baseline's int8 gesture CNN run event-driven vs TFLite, in Python and in C.

Input: every labelled gesture of a DVS128-Gesture-layout folder's test split, framed
exactly as bench/tflite_baseline.py frames it (tests/support/cnn_baseline/frames.py: the last
200 ms in 2 time slices x 2 polarities, a frame every ``hop`` ms), at each hop.
Per gesture, the Python delta network (pysg.qnet.DeltaNetwork) is reset (the
all-zero-point response) and then stepped frame by frame; TFLite Micro (reference
kernels, exact) and LiteRT's default XNNPACK path run the same frames. The CNN converted
by `pysg convert` (version 2 .sgm, a step per hop, the window in steps) runs in pysg's C
runtime fed the gesture's raw events: it builds the frames itself, and its logits after
step W - 1 + k are compared with TFLite Micro's on frame k (the 200 ms hop cannot be
converted: a 100 ms slice is not a whole number of 200 ms steps). Decision per gesture:
argmax of the summed int8 logits (the baseline's rule). Reported per hop: accuracies,
decision agreement with TFLite Micro and XNNPACK, logits differing from TFLite Micro
(must be 0), operations per second of input (dense MACs per frame x frames per second vs
synaptic ops), requantisations, the Python delta step's time and the C runtime's wall
time per second of input. pysg's own SpikingGamma runtime's synaptic ops per second of
input on the same split are measured by bench/tflite_baseline.py's worker in a subprocess.

    OMP_NUM_THREADS=1 python -m bench.tflite_delta [--data /tmp/gd3] [--hops 10,50,100,200] [--json out]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from pysg.recipes import BUNDLED_MODEL
from tests.support.gesture_split import DEFAULT_DATA, DEFAULT_HOPS, export_split, load_split
from tests.support.measure import run_worker


def run_hop(model: bytes, samples, hop: int, window: int, slices: int) -> dict:
    """Every figure of one hop over the split's (events, duration, label) samples."""
    from tflite_micro.python.tflite_micro.runtime import Interpreter as Tflm

    from pysg.converters.tflite_interpreter import interpreter_module
    from pysg.converters.tflite_sgm import delta_network
    from tests.support.cnn_baseline.frames import event_frames

    net = delta_network(model)
    rt = None
    if (window // hop) % slices == 0 and window % hop == 0:  # representable as a version 2 file
        from pysg.converters.tflite_sgm import tflite_to_sgm
        from pysg.runtime import Runtime

        rt = Runtime(tflite_to_sgm(model, dt_ms=hop, window_steps=window // hop, sensor=(128, 128)))
        w_steps = window // hop
    c_differing = 0
    c_s = 0.0
    c_synops = 0
    micro = Tflm.from_bytes(model, arena_size=1 << 20)
    xnn = interpreter_module().Interpreter(model_content=model, num_threads=1)
    xnn.allocate_tensors()
    x_in, x_out = xnn.get_input_details()[0]["index"], xnn.get_output_details()[0]["index"]
    n_cls = int(net.output_shape[-1])
    labels = np.array([lab for _, _, lab in samples])
    sums = {k: np.zeros((len(samples), n_cls), np.int64) for k in ("micro", "delta", "xnn", "c")}
    frames = differing = frame_agree = 0
    n_frames = np.zeros(len(samples), np.int64)
    synops = first_synops = requants = in_events = events = 0
    delta_s = micro_s = 0.0
    per_layer = np.zeros((len(net.layers), 3), np.int64)  # in events, synops, requants
    for g, (ev, duration, _) in enumerate(samples):
        x = event_frames(ev, duration, window_ms=window, hop_ms=hop, slices=slices)
        if rt is not None:  # the converted file in the C runtime, fed the raw events
            t0 = time.perf_counter()
            c_logits = rt.run_events(ev, t0_us=0, n_steps=-(-duration // (hop * 1000)))[w_steps - 1:]
            c_s += time.perf_counter() - t0
            c_synops += rt.stats["synops"]
            sums["c"][g] = c_logits.sum(axis=0)
        net.reset()
        for k in range(len(x)):
            f = x[k:k + 1]
            t0 = time.perf_counter()
            out = net.step(f)
            t1 = time.perf_counter()
            micro.set_input(f, 0)
            micro.invoke()
            ref = np.array(micro.get_output(0))
            t2 = time.perf_counter()
            xnn.set_tensor(x_in, f)
            xnn.invoke()
            fast = xnn.get_tensor(x_out)
            delta_s += t1 - t0
            micro_s += t2 - t1
            c = net.last
            synops += c.synops
            first_synops += c.synops if k == 0 else 0
            requants += c.requants
            in_events += c.input_events
            events += c.events
            per_layer += [(lc.in_events, lc.synops, lc.requants) for lc in c.layers]
            differing += int(np.count_nonzero(out != ref))
            if rt is not None:
                c_differing += int(np.count_nonzero(c_logits[k] != ref[0]))
            frame_agree += int(out[0].argmax() == ref[0].argmax())
            sums["delta"][g] += out[0]
            sums["micro"][g] += ref[0]
            sums["xnn"][g] += fast[0]
        frames += len(x)
        n_frames[g] = len(x)
    have = n_frames > 0  # a gesture without a frame counts as wrong (the baseline's rule)
    dec = {k: v.argmax(1) for k, v in sums.items()}
    fps = 1000.0 / hop
    gestures_with_frames = int(have.sum())
    return {
        "hop_ms": hop, "gestures": len(samples), "frames": frames, "frames_per_s_input": fps,
        "accuracy_tflite_micro": float(np.mean((dec["micro"] == labels) & have)),
        "accuracy_delta": float(np.mean((dec["delta"] == labels) & have)),
        "accuracy_litert_xnnpack": float(np.mean((dec["xnn"] == labels) & have)),
        "decision_agreement_delta_vs_micro": float(np.mean(dec["delta"] == dec["micro"])),
        "decision_agreement_delta_vs_xnnpack": float(np.mean(dec["delta"] == dec["xnn"])),
        "frame_argmax_agreement_delta_vs_micro": frame_agree / frames,
        "logits_differing_delta_vs_micro": differing, "logits_compared": frames * n_cls,
        "dense_macs_per_frame": net.dense_macs_per_frame,
        "dense_macs_per_s_input": net.dense_macs_per_frame * fps,
        "dense_synops_per_frame": net.dense_synops_per_frame,
        "synops_per_frame": synops / frames,
        "synops_per_frame_after_first": (synops - first_synops) / max(1, frames - gestures_with_frames),
        "synops_per_s_input": synops / frames * fps,
        "requants_per_frame": requants / frames, "dense_requants_per_frame": net.dense_requants_per_frame,
        "input_events_per_frame": in_events / frames, "events_per_frame": events / frames,
        "per_layer_per_frame": {name: dict(zip(("in_events", "synops", "requants"), (v / frames).tolist()))
                                for name, v in zip(net.layers, per_layer)},
        "state_bytes": net.state_bytes,
        "c_runtime": None if rt is None else {
            "logits_differing_vs_micro": c_differing, "accuracy": float(np.mean((dec["c"] == labels) & have)),
            "decision_agreement_vs_micro": float(np.mean(dec["c"] == dec["micro"])),
            "decision_agreement_vs_xnnpack": float(np.mean(dec["c"] == dec["xnn"])),
            "synops_per_s_input": c_synops / (sum(d for _, d, _ in samples) / 1e6),
            "wall_per_s_input": c_s / (sum(d for _, d, _ in samples) / 1e6),
            "arena_bytes": rt.arena_bytes, "model_bytes": rt.model_bytes},
        "us_per_delta_step": 1e6 * delta_s / frames, "us_per_tflite_micro_invoke": 1e6 * micro_s / frames,
    }


def _table(rows: list[dict], pysg: dict | None) -> str:
    out = [("| hop | frames / s | TFLite Micro acc. | delta acc. | decisions agree (vs Micro; vs XNNPACK) | "
            "logits differing | dense MACs / s | delta synaptic ops / s (per frame) | ratio | "
            "requants / frame (dense) | delta step (Micro invoke) |"),
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['hop_ms']} ms | {r['frames_per_s_input']:g} | {100 * r['accuracy_tflite_micro']:.2f} % | "
            f"{100 * r['accuracy_delta']:.2f} % | {100 * r['decision_agreement_delta_vs_micro']:.1f} %; "
            f"{100 * r['decision_agreement_delta_vs_xnnpack']:.1f} % | {r['logits_differing_delta_vs_micro']} of "
            f"{r['logits_compared']:,} | {r['dense_macs_per_s_input'] / 1e6:.3f} M | "
            f"{r['synops_per_s_input'] / 1e6:.3f} M ({r['synops_per_frame']:,.0f}) | "
            f"{r['dense_macs_per_s_input'] / r['synops_per_s_input']:.1f}x | "
            f"{r['requants_per_frame']:,.0f} ({r['dense_requants_per_frame']:,}) | "
            f"{r['us_per_delta_step']:.0f} us ({r['us_per_tflite_micro_invoke']:.0f} us) |")
    out.append("")
    out.append("The converted file (`pysg convert`, version 2 .sgm, a step per hop) in pysg's C runtime, fed the "
               "raw events (it builds the frames itself):")
    out.append("")
    out.append("| hop | logits differing from TFLite Micro | accuracy | decisions agree (vs Micro; vs XNNPACK) | "
               "synaptic ops / s | wall / s of input | file + arena |")
    out.append("|---|---|---|---|---|---|---|")
    for r in rows:
        c = r["c_runtime"]
        if c is None:
            out.append(f"| {r['hop_ms']} ms | not representable (the {r['hop_ms']} ms step does not divide a slice) "
                       f"| | | | | |")
            continue
        out.append(f"| {r['hop_ms']} ms | {c['logits_differing_vs_micro']} of {r['logits_compared']:,} | "
                   f"{100 * c['accuracy']:.2f} % | {100 * c['decision_agreement_vs_micro']:.1f} %; "
                   f"{100 * c['decision_agreement_vs_xnnpack']:.1f} % | {c['synops_per_s_input'] / 1e6:.3f} M | "
                   f"{1e3 * c['wall_per_s_input']:.2f} ms | {c['model_bytes']:,} B + {c['arena_bytes']:,} B |")
    if pysg is not None:
        out.append("")
        out.append(f"pysg SpikingGamma C runtime on the same split (raw events, dt {pysg['dt_ms']:g} ms): "
                   f"{pysg['ops_per_s_input'] / 1e6:.3f} M synaptic ops / s of input, "
                   f"accuracy {100 * pysg['accuracy']:.2f} %")
    return "\n".join(out)


def run(data: str, hops: list[int], *, with_pysg: bool = True, model_path: str = str(BUNDLED_MODEL),
        log=print) -> dict:
    from tests.support.cnn_baseline import BaselineConfig, build_baseline

    cfg = BaselineConfig()
    base = build_baseline(data, cfg, log=log)
    split_path = str(export_split(data, "test"))
    samples = load_split(split_path)
    model = base.model_bytes
    rows = []
    for hop in hops:
        t0 = time.perf_counter()
        rows.append(run_hop(model, samples, hop, cfg.window_ms, cfg.slices))
        log(f"hop {hop} ms: {rows[-1]['frames']} frames in {time.perf_counter() - t0:.0f} s")
    # the SpikingGamma runtime's figures: bench.tflite_baseline's worker, in its own process
    pysg = run_worker("bench.tflite_baseline", ["pysg", split_path, model_path, "events", "1"]) if with_pysg else None
    return {"baseline": base.meta, "baseline_path": str(base.path), "hops": rows, "pysg": pysg,
            "table": _table(rows, pysg)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA, help="DVS128-Gesture-layout folder (its test split is run)")
    ap.add_argument("--hops", default=",".join(map(str, DEFAULT_HOPS)), help="frame hops in ms")
    ap.add_argument("--model", default=str(BUNDLED_MODEL), help="pysg model for the SpikingGamma comparison")
    ap.add_argument("--no-pysg", action="store_true", help="skip the SpikingGamma runtime's run")
    ap.add_argument("--json", help="write every figure to this file")
    a = ap.parse_args(argv)
    res = run(a.data, [int(h) for h in a.hops.split(",")], with_pysg=not a.no_pysg, model_path=a.model)
    print(res["table"])
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    bad = [r["hop_ms"] for r in res["hops"] if r["logits_differing_delta_vs_micro"]
           or (r["c_runtime"] or {}).get("logits_differing_vs_micro")]
    if bad:
        print(f"delta network differs from TFLite Micro at hops {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
