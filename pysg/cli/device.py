# SPDX-License-Identifier: MIT
"""Devices: `pysg flash`, `stream`, `device info`, `emulate`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import _bar


def _device_call(args, fn) -> int:
    """Run fn(device) on `--port`; device and link errors end in one line that says what to
    do next (exit status 1)."""
    from ..device.client import Device
    from ..device.protocol import ProtocolError

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
    from ..jobs import load_model

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
                status = getattr(dev, "upload_status", None)  # retries, frame size, throughput
                if status is not None:
                    bar.set_postfix_str(status.line(), refresh=False)

            if args.firmware:
                r = dev.upload_firmware(data, progress=progress)
            else:
                r = dev.upload_model(data, progress=progress)
        out = r.to_dict() | {"what": what, "device": dev.hello_info.name, "port": args.port}
        if args.json:
            print(json.dumps(out))
        elif args.firmware:
            from ..device.client import fw_version_text

            print(f"{dev.hello_info.name}: firmware {fw_version_text(r.version)} running ({r.size} bytes in "
                  f"{r.seconds:.1f} s)")
        else:
            print(f"{dev.hello_info.name}: model active in slot {r.slot}, generation {r.generation} "
                  f"({r.size} bytes, CRC-32 {r.crc:08x}, read back identical, {r.seconds:.1f} s"
                  f"{f', resumed at byte {r.resumed_from}' if r.resumed_from else ''}"
                  f"{f', {r.reconnects} reconnects' if r.reconnects else ''}"
                  f"{f', {r.retries} retries on a lossy link, frames of {r.frame_bytes} B' if r.retries else ''})")
        return 0

    return _device_call(args, run)


def cmd_stream(args) -> int:
    from ..datasets.gesture import read_labels_csv
    from ..io import read_events

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
        from ..device.client import fw_version_text

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
    from ..device.emulate import run_emulator

    return run_emulator(qemu=args.qemu, tcp_port=args.tcp, pty=args.pty, flash=args.flash)
