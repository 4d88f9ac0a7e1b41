# SPDX-License-Identifier: MIT
"""The TFLite baseline: the gesture task as an int8 frame CNN in LiteRT vs pysg's C runtime.

One run, the same input (every labelled gesture of a DVS128-Gesture-layout folder's test
split), side by side:

* LiteRT (ai-edge-litert, default op resolver = int8 through XNNPACK, 1 thread), one
  invoke per frame, frames every ``hop`` ms over the last ``window`` ms
  (tests/support/cnn_baseline/frames.py), decision argmax of the mean logits of the gesture's
  frames. Run at several frame rates: the hop equal to pysg's step (10 ms) and lower rates.
* pysg's C runtime (`pysg.runtime.Runtime` via cffi) fed each gesture's raw events
  (`classify_events`, exactly as `pysg eval --engine c`), and fed numpy-binned count
  frames one `sg_step` per 10 ms step (`run_frames`, the firmware's path).
* the same int8 CNN converted by `pysg convert` (a version 2 .sgm: the runtime builds the
  frames from the events and executes the network on their changes, bit-exact with
  TFLite) in pysg's C runtime, fed the raw events, a step (= a frame) every 10 ms.

Each engine runs in its own fresh subprocess; every subprocess first loads the same test
split (from an .npz the parent writes), then resets the kernel's peak-RSS mark (VmHWM,
/proc/self/clear_refs) and notes its RSS, then imports, loads and runs the engine: the
peak RSS minus that RSS is the engine's own (library, model, buffers, interpreter).
The wall time counts everything from events to decision (the CNN's numpy framing of the
events included; LiteRT's invoke loop alone is also shown).
Operations per second of input: the CNN's MACs per frame x frames per second of a
continuous stream (1000 / hop); pysg's synaptic ops counted by the runtime over the split
/ seconds of input. The int8 .tflite is trained on the train split on first use and
cached under ~/.cache/pysg-bench (tests/support/cnn_baseline).

    OMP_NUM_THREADS=1 python -m bench.tflite_baseline [--data /tmp/gd3] [--model M] [--json out]
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

# numpy and these only: a worker's memory is measured after its input is loaded
from tests.support.gesture_split import DEFAULT_DATA, DEFAULT_HOPS, export_split, load_split
from tests.support.measure import run_worker


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field} (Linux only)")


def _start_peak() -> int:
    """Reset the peak RSS (VmHWM; Linux >= 4.0) to the current RSS, which is returned:
    the input is loaded by then, so the peak that follows is the engine's."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_bytes("VmRSS")


def _peak_bytes() -> int:
    return _status_bytes("VmHWM")


def worker_litert(split_path: str, model_path: str, hop: int, window: int, slices: int,
                  macs_per_frame: int, repeat: int = 3) -> dict:
    import numpy as np

    from tests.support.cnn_baseline.frames import event_frames

    samples = load_split(split_path)
    gc.collect()
    rss0 = _start_peak()
    from pysg.converters.tflite_interpreter import interpreter_module

    it = interpreter_module().Interpreter(model_path=model_path, num_threads=1)  # default resolver: XNNPACK
    it.allocate_tensors()
    i_in, i_out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    n_out = int(it.get_output_details()[0]["shape"][-1])

    preds: list[int] = []

    def one_pass() -> tuple[int, int, float, float]:
        correct = frames = 0
        wall = invoke_s = 0.0
        preds.clear()
        for events, duration, label in samples:
            t0 = time.perf_counter()
            x = event_frames(events, duration, window_ms=window, hop_ms=hop, slices=slices)
            t1 = time.perf_counter()
            total = np.zeros(n_out, np.int64)
            for k in range(len(x)):
                it.set_tensor(i_in, x[k:k + 1])
                it.invoke()
                total += it.get_tensor(i_out)[0]
            t2 = time.perf_counter()
            preds.append(int(total.argmax()) if len(x) else -1)
            correct += int(len(x) > 0 and int(total.argmax()) == label)
            frames += len(x)
            wall += t2 - t0
            invoke_s += t2 - t1
        return correct, frames, wall, invoke_s

    passes = [one_pass() for _ in range(repeat)]
    correct, frames = passes[0][:2]
    wall, invoke_s = min(p[2] for p in passes), min(p[3] for p in passes)
    # the invoke call alone (no Python loop, set_tensor or get_tensor), best of `repeat`
    alone = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(2000):
            it.invoke()
        alone.append((time.perf_counter() - t0) / 2000)
    seconds = sum(d for _, d, _ in samples) / 1e6
    fps = 1000.0 / hop
    act_bytes = sum(int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize for d in it.get_tensor_details()
                    if d["name"] in ("input", "logits") or d["name"].endswith("/relu"))
    return {"engine": "litert", "hop_ms": hop, "window_ms": window, "gestures": len(samples),
            "accuracy": correct / len(samples), "frames": frames, "input_seconds": seconds,
            "frames_per_s_input": fps, "ops_per_frame": macs_per_frame, "ops_per_s_input": macs_per_frame * fps,
            "wall_s": wall, "invoke_s": invoke_s,
            "wall_per_s_input": wall / frames * fps, "invoke_per_s_input": invoke_s / frames * fps,
            "us_per_frame": 1e6 * wall / frames, "us_per_invoke": 1e6 * invoke_s / frames,
            "us_invoke_alone": 1e6 * min(alone), "invoke_alone_per_s_input": min(alone) * fps, "repeat": repeat,
            "rss_before": rss0, "peak_rss": _peak_bytes(), "predictions": preds,
            "model_bytes": os.path.getsize(model_path), "activation_bytes": act_bytes}


def worker_pysg(split_path: str, model_path: str, feed: str = "events", repeat: int = 3) -> dict:
    """``feed`` "events": raw events (`classify_events`, the C runtime bins them);
    "frames": numpy `bin_events` counts per step, then `sg_step` per step (`run_frames`)."""
    samples = load_split(split_path)
    gc.collect()
    rss0 = _start_peak()
    from pysg.datasets.binning import bin_events
    from pysg.runtime import WARMUP, Runtime

    rt = Runtime(model_path)

    def one_pass() -> tuple[int, int, int, float, float]:
        correct = synops = steps = 0
        wall = step_s = 0.0
        for events, duration, label in samples:
            n_steps = -(-duration // rt.dt_us)
            t0 = time.perf_counter()
            if feed == "events":
                pred = rt.classify_events(events, t0_us=0, n_steps=n_steps, warmup=WARMUP)
                t1 = t0
            else:
                counts = bin_events(events, duration_us=duration, dt_us=rt.dt_us, sensor_size=rt.sensor_size,
                                    downsample=rt.downsample, channels=rt.input_shape[0])
                t1 = time.perf_counter()
                rt.reset()
                rt.score_from(math.floor(WARMUP * n_steps))
                rt.run_frames(counts, reset=False)
                pred = rt.prediction
            t2 = time.perf_counter()
            wall += t2 - t0
            step_s += t2 - t1
            correct += int(pred == label)
            st = rt.stats
            synops += st["synops"]
            steps += st["steps"]
        return correct, synops, steps, wall, step_s

    passes = [one_pass() for _ in range(repeat)]
    correct, synops, steps = passes[0][:3]
    wall, step_s = min(p[3] for p in passes), min(p[4] for p in passes)
    seconds = sum(d for _, d, _ in samples) / 1e6
    return {"engine": "pysg", "feed": feed, "dt_ms": rt.dt_us / 1000, "gestures": len(samples),
            "accuracy": correct / len(samples), "steps": steps, "input_seconds": seconds,
            "steps_per_s_input": steps / seconds, "synops": synops, "ops_per_s_input": synops / seconds,
            "dense_macs_per_step": rt.dense_macs_per_step(),
            "wall_s": wall, "wall_per_s_input": wall / seconds, "us_per_step": 1e6 * wall / steps,
            "step_per_s_input": step_s / seconds, "us_per_sg_step": 1e6 * step_s / steps, "repeat": repeat,
            "rss_before": rss0, "peak_rss": _peak_bytes(),
            "model_bytes": rt.model_bytes, "arena_bytes": rt.arena_bytes}


def worker_imported(split_path: str, sgm_path: str, repeat: int = 3) -> dict:
    """The baseline's int8 CNN converted by `pysg convert` (version 2 .sgm: event-count
    frames built in the runtime, delta execution) in pysg's C runtime, fed each gesture's
    raw events; decision: argmax of the logits summed over the steps with a whole window
    (LiteRT's rule at a hop of one step)."""
    samples = load_split(split_path)
    gc.collect()
    rss0 = _start_peak()
    from pysg.runtime import Runtime

    rt = Runtime(sgm_path)
    preds: list[int] = []

    def one_pass() -> tuple[int, int, int, float]:
        correct = synops = steps = 0
        wall = 0.0
        preds.clear()
        for events, duration, label in samples:
            n_steps = -(-duration // rt.dt_us)
            t0 = time.perf_counter()
            pred = rt.classify_events(events, t0_us=0, n_steps=n_steps, warmup=0.0)
            wall += time.perf_counter() - t0
            preds.append(pred)
            correct += int(pred == label)
            st = rt.stats
            synops += st["synops"]
            steps += st["steps"]
        return correct, synops, steps, wall

    passes = [one_pass() for _ in range(repeat)]
    correct, synops, steps = passes[0][:3]
    wall = min(p[3] for p in passes)
    seconds = sum(d for _, d, _ in samples) / 1e6
    return {"engine": "imported", "feed": "events", "dt_ms": rt.dt_us / 1000, "gestures": len(samples),
            "accuracy": correct / len(samples), "steps": steps, "input_seconds": seconds,
            "steps_per_s_input": steps / seconds, "synops": synops, "ops_per_s_input": synops / seconds,
            "dense_macs_per_step": rt.dense_macs_per_step(), "wall_s": wall, "wall_per_s_input": wall / seconds,
            "us_per_step": 1e6 * wall / steps, "repeat": repeat, "rss_before": rss0, "peak_rss": _peak_bytes(),
            "predictions": preds, "model_bytes": rt.model_bytes, "arena_bytes": rt.arena_bytes}


def convert_baseline(tflite_path: Path, dt_ms: int, window_ms: int) -> Path:
    """The baseline CNN as a version 2 .sgm next to it (pysg convert's defaults plus the
    DVS128's 128 x 128 sensor and the gesture labels)."""
    from pysg.converters.tflite_sgm import tflite_to_sgm
    from pysg.datasets.gesture import GESTURE_CLASSES

    out = tflite_path.with_name(f"{tflite_path.stem}_dt{dt_ms}.sgm")
    out.write_bytes(tflite_to_sgm(str(tflite_path), dt_ms=dt_ms, window_steps=window_ms // dt_ms,
                                  sensor=(128, 128), labels=list(GESTURE_CLASSES)))
    return out


def _spawn(args: list[str]) -> dict:
    return run_worker("bench.tflite_baseline", args)


def _mb(b: float) -> str:
    return f"{b / 2**20:.1f}"


def _table(base: dict, pysgs: list[dict], cnn: list[dict], imported: dict | None = None) -> str:
    pysg = pysgs[0]  # the event-driven feed: the ratios' reference
    step_only = next((q for q in pysgs if q["feed"] == "frames"), pysg)["step_per_s_input"]
    rows = [("| engine | rate (per s of input) | accuracy | ops / s of input | wall / s of input "
             "(invoke loop; invoke alone) | us per frame or step (same) | peak RSS MiB (+ engine) | "
             "model + working memory |"),
            "|---|---|---|---|---|---|---|---|"]
    for q in pysgs:
        how = ("events (`classify_events`)" if q["feed"] == "events"
               else f"numpy-binned frames + `sg_step` ({1e3 * q['step_per_s_input']:.3f} ms / "
                    f"{q['us_per_sg_step']:.2f} us in `sg_step`)")
        rows.append(f"| pysg C runtime, {how} | {q['steps_per_s_input']:.0f} steps "
                    f"(dt {q['dt_ms']:g} ms) | {100 * q['accuracy']:.2f} % | {q['ops_per_s_input'] / 1e6:.3f} M "
                    f"synaptic ops | {1e3 * q['wall_per_s_input']:.3f} ms | {q['us_per_step']:.2f} | "
                    f"{_mb(q['peak_rss'])} (+{_mb(q['peak_rss'] - q['rss_before'])}) | "
                    f"{q['model_bytes']:,} B + arena {q['arena_bytes']:,} B |")
    for r in cnn:
        rows.append(f"| LiteRT XNNPACK 1 thread, int8 CNN, hop {r['hop_ms']} ms | {r['frames_per_s_input']:g} frames "
                    f"| {100 * r['accuracy']:.2f} % | {r['ops_per_s_input'] / 1e6:.3f} M MACs | "
                    f"{1e3 * r['wall_per_s_input']:.3f} ms ({1e3 * r['invoke_per_s_input']:.3f}; "
                    f"{1e3 * r['invoke_alone_per_s_input']:.3f}) | "
                    f"{r['us_per_frame']:.2f} ({r['us_per_invoke']:.2f}; {r['us_invoke_alone']:.2f}) | "
                    f"{_mb(r['peak_rss'])} (+{_mb(r['peak_rss'] - r['rss_before'])}) | "
                    f"{r['model_bytes']:,} B + activations {r['activation_bytes']:,} B |")
    match = next((r for r in cnn if abs(r["hop_ms"] - pysg["dt_ms"]) < 1e-9), None)
    if imported is not None:
        q = imported
        rows.append(f"| the same int8 CNN converted (`pysg convert`), event-driven in pysg's C runtime, events | "
                    f"{q['steps_per_s_input']:.0f} steps (dt {q['dt_ms']:g} ms) | {100 * q['accuracy']:.2f} % | "
                    f"{q['ops_per_s_input'] / 1e6:.3f} M synaptic ops | {1e3 * q['wall_per_s_input']:.3f} ms | "
                    f"{q['us_per_step']:.2f} | {_mb(q['peak_rss'])} (+{_mb(q['peak_rss'] - q['rss_before'])}) | "
                    f"{q['model_bytes']:,} B + arena {q['arena_bytes']:,} B |")
    lines = rows + [""]
    if imported is not None and match is not None:
        same = sum(a == b for a, b in zip(imported["predictions"], match["predictions"]))
        lines.append(f"- converted CNN in pysg's runtime vs LiteRT at hop {match['hop_ms']} ms: decisions agree "
                     f"{same}/{len(match['predictions'])}; LiteRT / converted wall time "
                     f"{match['wall_per_s_input'] / imported['wall_per_s_input']:.2f}x, MACs / synaptic ops "
                     f"{match['ops_per_s_input'] / imported['ops_per_s_input']:.1f}x")
    for r in cnn:
        tag = " (pysg's step rate)" if r is match else ""
        lines.append(f"- hop {r['hop_ms']} ms{tag}: LiteRT / pysg wall time "
                     f"{r['wall_per_s_input'] / pysg['wall_per_s_input']:.2f}x "
                     f"(LiteRT invoke only / pysg `sg_step` only {r['invoke_per_s_input'] / step_only:.2f}x), "
                     f"MACs / synaptic ops {r['ops_per_s_input'] / pysg['ops_per_s_input']:.1f}x, "
                     f"accuracy {100 * (r['accuracy'] - pysg['accuracy']):+.2f} points")
    m = base
    lines.append(f"- CNN: {m['macs_per_frame']:,} MACs per frame, {m['model_bytes']:,} B .tflite, trained "
                 f"{m['train_seconds']} s; test split at hop {m['config']['eval_hop_ms']} ms: float "
                 f"{100 * m['float_accuracy']:.2f} %, int8 LiteRT {100 * m['int8_litert_accuracy']:.2f} %, "
                 f"int8 reference kernels (pysg.qkernels) {100 * m['int8_reference_accuracy']:.2f} %; LiteRT vs "
                 f"reference logits: {100 * m['litert_vs_reference_frac_differing']:.1f} % differ, max "
                 f"{m['litert_vs_reference_max_abs_diff']} LSB")
    lines.append(f"- pysg dense equivalent: {pysg['dense_macs_per_step']:,} MACs per step x "
                 f"{pysg['steps_per_s_input']:.0f} steps = "
                 f"{pysg['dense_macs_per_step'] * pysg['steps_per_s_input'] / 1e6:.2f} M/s")
    return "\n".join(lines)


def run(data: str, model: str, hops: list[int], split: str = "test", repeat: int = 3, log=print) -> dict:
    from tests.support.cnn_baseline import BaselineConfig, build_baseline

    cfg = BaselineConfig()
    base = build_baseline(data, cfg, log=log)
    split_path = str(export_split(data, split))
    pysgs = [_spawn(["pysg", split_path, model, feed, str(repeat)]) for feed in ("events", "frames")]
    sgm = convert_baseline(Path(base.path), 10, cfg.window_ms)
    imported = _spawn(["imported", split_path, str(sgm), str(repeat)])
    cnn = [_spawn(["litert", split_path, str(base.path), str(h), str(cfg.window_ms), str(cfg.slices),
                   str(base.meta["macs_per_frame"]), str(repeat)]) for h in hops]
    return {"baseline": base.meta, "baseline_path": str(base.path), "pysg": pysgs, "imported": imported,
            "litert": cnn, "table": _table(base.meta, pysgs, cnn, imported), "config": asdict(cfg)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        kind, rest = argv[1], argv[2:]
        if kind == "litert":
            sp, m, hop, win, sl, macs, rep = rest
            result = worker_litert(sp, m, int(hop), int(win), int(sl), int(macs), int(rep))
        elif kind == "imported":
            sp, m, rep = rest
            result = worker_imported(sp, m, int(rep))
        else:
            sp, m, feed, rep = rest
            result = worker_pysg(sp, m, feed, int(rep))
        print(json.dumps(result))
        return 0
    from pysg.recipes import BUNDLED_MODEL

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA, help="DVS128-Gesture-layout folder (test split is run)")
    ap.add_argument("--model", default=str(BUNDLED_MODEL), help="pysg model (.npz or .sgm)")
    ap.add_argument("--hops", default=",".join(map(str, DEFAULT_HOPS)), help="CNN frame hops in ms")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes per engine (the fastest is kept)")
    ap.add_argument("--json", help="write every figure to this file")
    a = ap.parse_args(argv)
    hops = [int(h) for h in a.hops.split(",")]
    res = run(a.data, a.model, hops, repeat=a.repeat)
    print(res["table"])
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
