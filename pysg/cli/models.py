# SPDX-License-Identifier: MIT
"""Model files: `pysg export` (float .npz -> .sgm), `convert` (.tflite or .nir -> .sgm), `inspect`."""
from __future__ import annotations

import sys

from .common import atomic_path, check_output, crc_hex, dumps, model_info


def cmd_export(args) -> int:
    from pysg.converters.sgm import export_file

    check_output(args.output, "-o")
    with atomic_path(args.output) as tmp:
        info = export_file(args.model, tmp, dt_ms=args.dt_ms)
    info = {**info, "output": str(args.output)} if "output" in info else info
    print(dumps(model_info(info)) if args.json else
          f"wrote {args.output}: {info['file_bytes']} bytes, arena {info['arena_bytes']} bytes, "
          f"{info['parameters']} parameters, dt {info['dt_us']} us, payload CRC-32 {crc_hex(info['payload_crc32'])}")
    return 0


def _size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 1 or int(h) < 1:
        raise ValueError(f"--sensor must be WIDTHxHEIGHT, e.g. 128x128, got {text!r}")
    return int(w), int(h)


def _convert_nir(args, labels: list[str] | None) -> int:
    """`pysg convert MODEL.nir`: a NIR spiking network -> .sgm version 3 (docs/NIR.md)."""
    from pysg.converters.nir_import import convert_file

    from ..sgm import inspect_text

    options = dict(dt_ms=args.dt_ms, convention=args.nir_from, nir_dt=args.nir_dt, logits=args.logits,
                   sensor=_size(args.sensor) if args.sensor else None, labels=labels, calibrate=args.calibrate)
    with atomic_path(args.output) as tmp:
        info = convert_file(args.model, tmp, **options)
    if args.json:
        print(dumps(model_info(info)))
        return 0
    print(inspect_text(args.output, info))
    if "nir" in info:
        n = info["nir"]
        print(f"  time: {n['convention']} convention, dt {n['dt']:g} per step, {n['integration']} integration")
    return 0


def cmd_convert(args) -> int:
    from pysg.converters.tflite_sgm import convert_file

    from ..sgm import inspect_text

    labels = None
    if args.labels:
        labels = [x.strip() for x in args.labels.split(",")]
    check_output(args.output, "-o")
    if str(args.model).lower().endswith(".nir"):
        return _convert_nir(args, labels)
    options = dict(dt_ms=args.dt_ms, window_steps=args.steps, slices=args.slices, polarities=args.polarities,
                   count_map=args.count_map, sensor=_size(args.sensor) if args.sensor else None, labels=labels)
    with atomic_path(args.output) as tmp:
        try:
            info = convert_file(args.model, tmp, input=args.input or "events", **options)
        except ValueError as e:
            if args.input is not None:
                raise
            # no --input: an input that cannot be an event-count frame (e.g. 16x16x3) becomes a tensor input
            try:
                info = convert_file(args.model, tmp, input="tensor", **options)
            except ValueError:
                raise e from None
            print(f"pysg convert: the input cannot be an event-count frame ({e}); converted with --input tensor "
                  f"(the host sets the whole int8 input tensor each step)", file=sys.stderr)
    if info["n_classes"] > 64:  # SG_MAX_CLASSES: a valid file the C runtime and devices refuse
        print(f"pysg convert: warning: {info['n_classes']} outputs; the C runtime and the firmware keep at most "
              f"64 (the Python reference pysg.qnet runs it)", file=sys.stderr)
    if args.json:
        print(dumps(model_info(info)))
        return 0
    print(inspect_text(args.output, info))
    return 0


def cmd_inspect(args) -> int:
    from ..sgm import inspect_sgm, inspect_text

    info = inspect_sgm(str(args.model))
    if args.json:
        print(dumps(model_info(info)))
        return 0
    print(inspect_text(args.model, info))
    return 0
