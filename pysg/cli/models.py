# SPDX-License-Identifier: MIT
"""Model files: `pysg export` (float .npz -> .sgm), `convert` (.tflite -> .sgm), `inspect`."""
from __future__ import annotations

import json
import sys


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
    _print_qnet(args.output, info)
    return 0


def _print_qnet(name, info: dict) -> None:
    enc = info["input"]
    src = (f"event counts over {enc['window_steps']} steps in {enc['slices']} slices x "
           f"{enc['polarity_channels']} polarities from sensor {info['sensor_size']} / {info['downsample']}"
           if enc["kind"] == "event_counts" else "the int8 tensor, set by the host")
    print(f"{name}: .sgm version {info['format_version']} (imported int8 network), {info['file_bytes']} bytes, "
          f"arena {info['arena_bytes']} bytes, dt {info['dt_us']} us, input {info['input_shape']} (HWC) from {src}")
    for ly in info["layers"]:
        print(f"  {ly['index']}: {ly['kind']:<15} {ly['in_shape']} -> {ly['out_shape']}"
              f"{' (output)' if ly['output'] else ''}: {ly['parameters']} parameters, kernel {ly['kernel']}, "
              f"stride {ly['stride']}, {'per-channel' if ly['per_channel'] else 'per-tensor'} requantisation, "
              f"arena {ly['arena_bytes']} B")
    print("  labels: " + ", ".join(info["labels"]))


def _print_sg(name, info: dict) -> None:
    print(f"{name}: .sgm version {info['format_version']}, {info['file_bytes']} bytes, "
          f"arena {info['arena_bytes']} bytes, dt {info['dt_us']} us, K = {info['n_buckets']}, "
          f"input {info['input_shape']} from sensor {info['sensor_size']} / {info['downsample']}")
    for l in info["layers"]:
        print(f"  {l['index']}: {l['kind']:<6} {l['in_shape']} pool {l['pool']} -> {l['out_shape']}"
              f"{' (output)' if l['output'] else ''}: {l['parameters']} parameters, "
              f"weights {l['weight_bytes']} B, arena {l['arena_bytes']} B, alpha_q15 {l['alpha_q15']}"
              f"{', delays <= ' + str(l['max_delay']) if l['delays'] else ''}")
    print("  labels: " + ", ".join(info["labels"]))


_INSPECT = {"sg": _print_sg, "qnet": _print_qnet}  # model kind -> its description


def cmd_inspect(args) -> int:
    from ..engines import kind_of_version
    from ..sgm import inspect_sgm

    info = inspect_sgm(str(args.model))
    if args.json:
        print(json.dumps(info))
        return 0
    _INSPECT[kind_of_version(info["format_version"]).name](args.model, info)
    return 0
