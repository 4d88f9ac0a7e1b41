# SPDX-License-Identifier: MIT
"""The `pysg` command: a thin layer over library functions.

Every subcommand parses its arguments, calls one library function and prints the
result (a human summary, or JSON with --json). Errors in user input end with a one-line
message and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np


def _bar(total: int, desc: str, unit: str = "it", quiet: bool = False):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=quiet or None, leave=False, file=sys.stderr)


# ------------------------------------------------------------------ synth


def cmd_synth(args) -> int:
    from .synth.dataset import synthesize_dataset

    n_files = (args.train_users + args.test_users) * args.lightings_per_user
    with _bar(n_files, "synthesising", "file", args.quiet) as bar:
        summary = synthesize_dataset(args.out_dir, train_users=args.train_users, test_users=args.test_users,
                                     seconds=args.seconds, seed=args.seed,
                                     lightings_per_user=args.lightings_per_user, workers=args.workers,
                                     progress=lambda *_: bar.update(1))
    print(json.dumps(summary, indent=1, default=str) if args.json else
          f"wrote {args.out_dir}: " + ", ".join(f"{k}={v}" for k, v in summary.items()
                                                 if not isinstance(v, (list, dict))))
    return 0


# ------------------------------------------------------------------ train


def cmd_train(args) -> int:
    from .recipes import train_folder

    bar = None

    def on_binned(train, trainer):
        nonlocal bar
        remaining = trainer.cfg.epochs - trainer.epoch
        bar = _bar(len(train) * remaining, "training", "sample", args.quiet)

    def on_epoch(tr):
        h = tr.history
        msg = (f"epoch {h.epoch[-1]}/{tr.cfg.epochs}: loss {h.loss[-1]:.4f} "
               f"train accuracy {h.train_accuracy[-1]:.3f} ({h.seconds[-1]:.1f} s)")
        if bar is not None:
            bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr)

    trainer = train_folder(args.data_dir, args.output, epochs=args.epochs, dt_ms=args.dt_ms, seed=args.seed,
                           resume=args.resume, on_binned=on_binned, on_epoch=on_epoch,
                           on_batch=lambda n, loss: bar.update(n) if bar is not None else None)
    if bar is not None:
        bar.close()
    h = trainer.history
    out = {"model": str(args.output), "epochs": trainer.epoch, "seconds": float(sum(h.seconds)),
           "final_loss": h.loss[-1] if h.loss else None,
           "train_accuracy": h.train_accuracy[-1] if h.train_accuracy else None}
    if args.history:
        Path(args.history).write_text(json.dumps(asdict(h)))
    print(json.dumps(out) if args.json else
          f"saved {args.output} after {out['epochs']} epochs ({out['seconds']:.0f} s), "
          f"train accuracy {out['train_accuracy']:.3f}")
    return 0


# ------------------------------------------------------------------ eval


def _eval_summary(r: dict) -> str:
    return (f"accuracy {r['accuracy'] * 100:.2f} % on {r['n']} samples ({r['split']} split, dt {r['dt_us']} us); "
            f"{r['spikes_per_sample']:.0f} spikes/sample, "
            f"{r['spikes_per_neuron_per_second']:.1f} spikes/neuron/s, "
            f"{r['synops_per_sample']:.3g} synaptic ops/sample vs {r['dense_macs_per_sample']:.3g} dense MACs")


def _engine(requested: str | None, model) -> str:
    """--engine default: the C runtime for an .sgm model (the integer reference, with a
    warning, when the extension is not built), the float model otherwise."""
    if requested is not None:
        return requested
    if Path(model).suffix.lower() != ".sgm":
        return "float"
    return _c_or_ref()


def _c_or_ref() -> str:
    from . import _native

    try:
        _native.require("--engine c")
    except ImportError as e:
        print(f"pysg: warning: {e}; falling back to --engine ref", file=sys.stderr)
        return "ref"
    return "c"


def _jobs():
    """pysg.jobs; a missing C extension becomes a one-line error (ValueError) in the CLI."""
    from . import jobs

    return jobs


def cmd_eval(args) -> int:
    try:
        result = _jobs().evaluate(args.model, args.data_dir, engine=_engine(args.engine, args.model),
                                  split=args.split, dt_ms=args.dt_ms).summary
    except ImportError as e:
        raise ValueError(str(e)) from None
    if args.plot:
        from .plots import plot_confusion

        plot_confusion(np.array(result["confusion"]), result["classes"], args.plot)
    result.pop("predictions", None) if not args.json else None
    print(json.dumps(result) if args.json else _eval_summary(result))
    return 0


# ------------------------------------------------------------------ export / inspect / run


def cmd_export(args) -> int:
    from pysg.converters.sgm import export_file

    info = export_file(args.model, args.output, dt_ms=args.dt_ms)
    print(json.dumps(info) if args.json else
          f"wrote {args.output}: {info['file_bytes']} bytes, arena {info['arena_bytes']} bytes, "
          f"{info['parameters']} parameters, dt {info['dt_us']} us")
    return 0


def _size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 1 or int(h) < 1:
        raise ValueError(f"--sensor must be WIDTHxHEIGHT, e.g. 128x128, got {text!r}")
    return int(w), int(h)


def cmd_convert(args) -> int:
    from pysg.converters.tflite_sgm import convert_file

    from .sgm import inspect_text

    labels = None
    if args.labels:
        labels = [x.strip() for x in args.labels.split(",")]
    info = convert_file(args.model, args.output, dt_ms=args.dt_ms, input=args.input, window_steps=args.steps,
                        slices=args.slices, polarities=args.polarities, count_map=args.count_map,
                        sensor=_size(args.sensor) if args.sensor else None, labels=labels)
    if info["n_classes"] > 64:  # SG_MAX_CLASSES: a valid file the C runtime and devices refuse
        print(f"pysg convert: warning: {info['n_classes']} outputs; the C runtime and the firmware keep at most "
              f"64 (the Python reference pysg.qnet runs it)", file=sys.stderr)
    if args.json:
        print(json.dumps(info))
        return 0
    print(inspect_text(args.output, info))
    return 0


def cmd_inspect(args) -> int:
    from .sgm import inspect_sgm, inspect_text

    info = inspect_sgm(str(args.model))
    if args.json:
        print(json.dumps(info))
        return 0
    print(inspect_text(args.model, info))
    return 0


def cmd_run(args) -> int:
    if args.source:
        return _run_live(args)
    if not args.events:
        raise ValueError("give an EVENTS file, or --source SPEC for live input")
    try:
        r = _jobs().run_file(args.model, args.events, engine=args.engine or _c_or_ref())
    except ImportError as e:
        raise ValueError(str(e)) from None
    logits = r.pop("logits")
    if args.dump_logits:
        np.save(args.dump_logits, logits)
    print(json.dumps(r) if args.json else
          f"prediction {r['prediction']} (class {r['label_index']}) after {r['steps']} steps; "
          f"spikes per hidden stage {r['spikes']}, {r['synops']} synaptic events")
    return 0


def _run_live(args) -> int:
    from .io.sources import open_source
    from .live import live_predictions

    if args.dump_logits:
        raise ValueError("--source prints one prediction per window (no --dump-logits)")
    kwargs = {"speed": args.speed} if not args.source.startswith(("tcp:", "camera")) else {}
    with open_source(args.source, **kwargs) as source:
        for row in live_predictions(args.model, source, window_ms=args.window_ms, engine=args.engine or _c_or_ref()):
            print(json.dumps(row) if args.json else
                  f"{row['t_start_us'] / 1e6:10.3f} s  {row['prediction'] or '-':<28} "
                  f"{row['events']:>7} events {row['spikes']:>6} spikes", flush=True)
    return 0


# ------------------------------------------------------------------ info


def cmd_info(args) -> int:
    from .io import info

    r = info(args.events)
    print(json.dumps(r) if args.json else
          f"{args.events}: {r['format']}, {r['width']}x{r['height']}, {r['n_events']} events "
          f"({r['n_on']} ON), t {r['t_first']} .. {r['t_last']} us")
    return 0


# ------------------------------------------------------------------ demo


def cmd_demo(args) -> int:
    from .recipes import BUNDLED_MODEL, BUNDLED_SAMPLES, demo

    result = demo(BUNDLED_MODEL, BUNDLED_SAMPLES, engine=args.engine)
    if args.json:
        print(json.dumps(result))
        return 0
    for row in result["samples"]:
        mark = "ok " if row["predicted"] == row["label"] else "MISS"
        print(f"{mark} {row['file']} {row['t_start_us'] / 1e6:8.2f} s  true {row['label']:<28} "
              f"predicted {row['predicted']}")
    print(f"accuracy {result['accuracy'] * 100:.1f} % on the {result['n']} gestures of the bundled recordings "
          f"(engine: {result['engine']})")
    return 0


# ------------------------------------------------------------------ plot


def cmd_plot(args) -> int:
    from . import plots

    if args.what == "curves":
        plots.plot_history(json.loads(Path(args.input).read_text()), args.output)
    elif args.what == "confusion":
        r = json.loads(Path(args.input).read_text())
        plots.plot_confusion(np.array(r["confusion"]), r["classes"], args.output)
    elif args.what == "events":
        plots.plot_event_strip(args.input, args.output, sample=args.sample)
    elif args.what == "raster":
        if not args.model:
            raise ValueError("pysg plot raster needs --model MODEL")
        plots.plot_raster(args.model, args.input, args.output, sample=args.sample)
    print(f"wrote {args.output}")
    return 0


# ------------------------------------------------------------------ device: flash / stream / device info / emulate


def _device_call(args, fn) -> int:
    """Run fn(device) on `--port`; device and link errors end in one line that says what to
    do next (exit status 1)."""
    from .device.client import Device
    from .device.protocol import ProtocolError

    try:
        with Device(args.port) as dev:
            return fn(dev)
    except ProtocolError as e:
        sub = getattr(args, "device_command", None)
        print(f"pysg {args.command}{' ' + sub if sub else ''}: device error: {e}", file=sys.stderr)
        return 1


def _model_bytes(path, dt_ms: float | None) -> bytes:
    """An .sgm file's bytes (validated here first), or a float .npz model exported as
    `pysg export` does."""
    from .jobs import load_model

    if dt_ms is not None and Path(path).read_bytes()[:4] != b"PK\x03\x04":
        raise ValueError(f"{path}: an .sgm model runs at its own dt; --dt-ms applies to a float .npz model")
    return load_model(path, engine="c", dt_ms=dt_ms).data


def cmd_flash(args) -> int:
    if (args.model is None) == (args.firmware is None):
        raise ValueError("give either MODEL (.sgm or float .npz) or --firmware APP.img")
    if args.firmware:
        data, what = Path(args.firmware).read_bytes(), "firmware"
    else:
        data, what = _model_bytes(args.model, args.dt_ms), "model"

    def run(dev) -> int:
        with _bar(len(data), f"flashing {what}", "B", args.quiet) as bar:
            def progress(done, total):
                bar.update(done - bar.n)

            if args.firmware:
                r = dev.upload_firmware(data, progress=progress)
            else:
                r = dev.upload_model(data, progress=progress)
        out = r.to_dict() | {"what": what, "device": dev.hello_info.name, "port": args.port}
        if args.json:
            print(json.dumps(out))
        elif args.firmware:
            from .device.client import fw_version_text

            print(f"{dev.hello_info.name}: firmware {fw_version_text(r.version)} running ({r.size} bytes in "
                  f"{r.seconds:.1f} s)")
        else:
            print(f"{dev.hello_info.name}: model active in slot {r.slot}, generation {r.generation} "
                  f"({r.size} bytes, CRC-32 {r.crc:08x}, read back identical, {r.seconds:.1f} s"
                  f"{f', resumed at byte {r.resumed_from}' if r.resumed_from else ''}"
                  f"{f', {r.reconnects} reconnects' if r.reconnects else ''})")
        return 0

    return _device_call(args, run)


def cmd_stream(args) -> int:
    from .datasets.gesture import read_labels_csv
    from .io import read_events

    events = read_events(args.events).events
    labels_path = args.labels
    if labels_path is None and args.window_ms is None:
        beside = Path(args.events).with_name(Path(args.events).stem + "_labels.csv")
        if beside.is_file():
            labels_path = beside
            print(f"pysg stream: one sample per gesture of {beside.name} (give --window-ms for windows)",
                  file=sys.stderr)
    labels = read_labels_csv(labels_path) if labels_path is not None else None

    def run(dev) -> int:
        if labels is not None:
            hits = 0
            with _bar(len(labels), "streaming gestures", "gesture", args.quiet) as bar:
                for row in dev.stream_gestures(events, labels, progress=lambda *_: bar.update(1)):
                    hits += row["prediction_index"] == row["label_index"]
                    if args.json:
                        print(json.dumps(row), flush=True)
                    else:
                        mark = "ok " if row["prediction_index"] == row["label_index"] else "MISS"
                        bar.write(f"{mark} {row['t_start_us'] / 1e6:8.2f} s  true {row['label']:<28} "
                                  f"predicted {row['prediction']}", file=sys.stdout)
            if not args.json:
                print(f"accuracy {hits / max(1, len(labels)) * 100:.1f} % on the {len(labels)} gestures "
                      f"(device {dev.hello_info.name})")
            return 0
        for row in dev.stream_events(events, window_ms=500.0 if args.window_ms is None else args.window_ms):
            print(json.dumps(row) if args.json else
                  f"{row['t_start_us'] / 1e6:10.3f} s  {row['prediction'] or '-':<28} "
                  f"{row['events']:>7} events {row['spikes']:>6} spikes", flush=True)
        return 0

    return _device_call(args, run)


def cmd_device_info(args) -> int:
    def run(dev) -> int:
        from .device.client import fw_version_text

        h, info = dev.hello_info, dev.info()
        model = None
        if info.active_slot is not None:
            mh = dev.model_header()
            model = {"dt_us": mh.dt_us, "input_shape": list(mh.input_shape), "labels": mh.labels,
                     "file_bytes": mh.file_bytes}
        if args.json:
            print(json.dumps({"hello": h.to_dict(), "info": info.to_dict(), "model": model}))
            return 0
        print(f"{h.name} (id {h.device_id}): firmware {fw_version_text(h.fw_version)}, protocol {h.version}, "
              f"max payload {h.max_payload}, capabilities {', '.join(c.name for c in type(h.caps) if c in h.caps)}")
        for i, sl in enumerate(info.slots):
            mark = "*" if i == info.active_slot else " "
            print(f" {mark} slot {i}: " + (f"{sl.size} bytes, CRC-32 {sl.crc:08x}, generation {sl.generation}"
                                          if sl.valid else "empty"))
        print(f"  arena {info.arena_bytes} of {info.arena_capacity} bytes, slot capacity {info.slot_capacity} "
              f"bytes, uptime {info.uptime_ms / 1000:.1f} s")
        if model:
            print(f"  model: dt {model['dt_us']} us, input {model['input_shape']}, classes {', '.join(model['labels'])}")
        else:
            print("  no model: flash one with `pysg flash --port URL MODEL.sgm`")
        return 0

    return _device_call(args, run)


def cmd_emulate(args) -> int:
    from .device.emulate import run_emulator

    return run_emulator(qemu=args.qemu, tcp_port=args.tcp, pty=args.pty, flash=args.flash)


# ------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pysg", description="SpikingGamma edge inference: train, convert, run.")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="generate a synthetic DVS128-Gesture-layout dataset")
    s.add_argument("out_dir")
    s.add_argument("--train-users", type=int, default=20)
    s.add_argument("--test-users", type=int, default=6)
    s.add_argument("--lightings-per-user", type=int, default=3)
    s.add_argument("--seconds", type=float, default=2.0, help="duration of each gesture")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("train", help="train the default gesture network online")
    s.add_argument("data_dir")
    s.add_argument("-o", "--output", required=True, help="model file to write (.npz)")
    s.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    s.add_argument("--dt-ms", type=float, default=10.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--resume", action="store_true", help="continue from OUTPUT.ckpt")
    s.add_argument("--history", help="write the training curves (JSON) here")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="evaluate a model on a dataset split")
    s.add_argument("model")
    s.add_argument("data_dir")
    s.add_argument("--split", default="test", choices=("train", "test"))
    s.add_argument("--dt-ms", type=float, default=None, help="retarget the model to this step first")
    s.add_argument("--plot", help="write the confusion matrix as PNG here")
    s.add_argument("--engine", choices=("float", "ref", "c"), default=None,
                   help="float: the float model (.npz); ref: the Python int8 integer reference; c: the C "
                        "runtime (both take an .sgm, or an .npz quantised first). Default: c for an .sgm, "
                        "float otherwise")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("export", help="quantise a float model (.npz) into an int8 .sgm model file")
    s.add_argument("model")
    s.add_argument("-o", "--output", required=True, help=".sgm file to write")
    s.add_argument("--dt-ms", type=float, default=None, help="retarget the model to this step first")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("convert", help="convert an int8 TFLite network (.tflite) into an .sgm file run "
                                       "event-driven (delta execution, bit-exact with TFLite)")
    s.add_argument("model", help="int8 .tflite: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, AVERAGE_POOL_2D, "
                                 "RESHAPE, fused ReLU/ReLU6; QUANTIZE / DEQUANTIZE at a float model's edges")
    s.add_argument("-o", "--output", required=True, help=".sgm file to write")
    s.add_argument("--dt-ms", type=float, default=10.0, help="one step (one input frame), ms (default 10)")
    s.add_argument("--steps", type=int, default=20,
                   help="event input: the frame counts the events of the last STEPS steps (default 20)")
    s.add_argument("--input", choices=("events", "tensor"), default="events",
                   help="events: the input tensor is built from event counts on the device; tensor: the host "
                        "sets the whole int8 tensor each step")
    s.add_argument("--slices", type=int, default=None,
                   help="time slices of the window (default: input channels / polarity channels)")
    s.add_argument("--polarities", type=int, choices=(1, 2), default=None,
                   help="polarity channels (default 2 if the input channels are even)")
    s.add_argument("--count-map", choices=("log2", "count"), default="log2",
                   help="the real value of a count n on the input tensor's scale: log2(1 + n) or n")
    s.add_argument("--sensor", default=None, help="sensor WIDTHxHEIGHT, a multiple of the input (default: the input)")
    s.add_argument("--labels", default=None, help="comma-separated class names (default 0..N-1)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_convert)

    s = sub.add_parser("inspect", help="validate an .sgm model file and describe it")
    s.add_argument("model")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("run", help="run an .sgm model on a recording, or live on an event source")
    s.add_argument("model")
    s.add_argument("events", nargs="?", help="event file, any supported format (the whole file is one sample)")
    s.add_argument("--source", help="live input: tcp://HOST:PORT (DV network stream), camera[:SERIAL], "
                                    "or a file replayed at --speed; prints a prediction per --window-ms")
    s.add_argument("--window-ms", type=float, default=500.0)
    s.add_argument("--speed", type=float, default=None,
                   help="file replay speed (1 = recorded speed; default: as fast as possible)")
    s.add_argument("--engine", choices=("c", "ref"), default=None,
                   help="c (default): the C runtime; ref: the Python integer reference of the model's kind "
                        "(bit-exact twins)")
    s.add_argument("--dump-logits", help="save the per-step int32 logits (steps x classes) as .npy")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("info", help="describe an event file (any supported format)")
    s.add_argument("events")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("demo", help="recognise gestures in the bundled sample recordings")
    s.add_argument("--engine", choices=("c", "ref", "float"), default="c",
                   help="c (default): the bundled model exported to .sgm in memory and run by the C runtime; "
                        "ref: the same on the Python integer reference; float: the float model")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("plot", help="PNG plots: training curves, confusion, event frames, spike raster")
    s.add_argument("what", choices=("curves", "confusion", "events", "raster"))
    s.add_argument("input", help="history JSON (curves), eval JSON (confusion), or a dataset folder")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--model", help="model for the spike raster")
    s.add_argument("--sample", type=int, default=0, help="sample index in the folder's test split")
    s.set_defaults(func=cmd_plot)

    s = sub.add_parser("flash", help="upload a model (or, with --firmware, a firmware image) to a device")
    s.add_argument("model", nargs="?", help=".sgm model, or a float .npz model (exported as `pysg export` does)")
    s.add_argument("--port", required=True, help="device path, pty, or pyserial URL (socket://HOST:PORT)")
    s.add_argument("--firmware", help="firmware image (.img, from `python -m pysg.device.image`) instead of a model")
    s.add_argument("--dt-ms", type=float, default=None, help="retarget a float model to this step first")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_flash)

    s = sub.add_parser("stream", help="stream a recording to a device: a prediction per gesture or per window")
    s.add_argument("events", help="event file, any supported format")
    s.add_argument("--port", required=True, help="device path, pty, or pyserial URL (socket://HOST:PORT)")
    s.add_argument("--labels", help="DVS128-Gesture labels CSV: one sample per labelled gesture (default when "
                                    "<stem>_labels.csv is beside the recording and --window-ms is not given)")
    s.add_argument("--window-ms", type=float, default=None, help="a prediction per window (default 500)")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.set_defaults(func=cmd_stream)

    s = sub.add_parser("device", help="talk to a device")
    dsub = s.add_subparsers(dest="device_command", required=True)
    d = dsub.add_parser("info", help="identity, capabilities, model slots and the active model")
    d.add_argument("--port", required=True, help="device path, pty, or pyserial URL (socket://HOST:PORT)")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_device_info)

    s = sub.add_parser("emulate", help="run an emulated device (POSIX, or the firmware in QEMU) and print its URL")
    s.add_argument("--qemu", action="store_true", help="the real firmware in qemu-system-arm (mps2-an386)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--tcp", type=int, default=None, metavar="PORT", help="serve on TCP PORT (0: any free port; default)")
    g.add_argument("--pty", action="store_true", help="a pseudo-terminal (POSIX device only)")
    s.add_argument("--flash", help="flash image file (kept across runs; default: a temporary file)")
    s.set_defaults(func=cmd_emulate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        print(f"pysg {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
