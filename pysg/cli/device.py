# SPDX-License-Identifier: MIT
"""Devices: `pysg flash`, `stream`, `device info|list|reset|stats|slots|activate|read-model`,
`emulate`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import _bar, check_output, crc_hex, print_window, write_atomic


def _device_call(args, fn) -> int:
    """Run fn(device) on `--port`; device and link errors end in one line that says what to
    do next (exit status 2, as every other error)."""
    from ..device.client import Device
    from ..device.protocol import ProtocolError
    from ..device.replies import UnsupportedError

    from ..device.link import DEFAULT_BAUD

    baud = getattr(args, "baud", None)
    if args.port.startswith("socket://") and not args.port.rpartition(":")[2].isdigit():
        raise ValueError(f"--port {args.port}: a socket URL needs a port (socket://HOST:PORT, as `pysg emulate` "
                         "prints it)")
    if baud is not None and baud <= 0:
        raise ValueError(f"--baud {baud}: give a positive rate such as 921600")
    try:
        dev = _connect(Device, args.port, baud)
        try:
            if baud is not None and dev.baudrate != baud:
                try:
                    dev.set_baud(baud)  # esptool-style: connect at the default rate, then switch
                except UnsupportedError as e:
                    raise UnsupportedError(f"{e} (SET_BAUD); leave out --baud or use --baud {DEFAULT_BAUD}") from None
            return fn(dev)
        finally:
            dev.close()
    except ProtocolError as e:
        sub = getattr(args, "device_command", None)
        print(f"pysg {args.command}{' ' + sub if sub else ''}: device error: {e}", file=sys.stderr)
        return 2


QUICK_HELLO_TRIES = 4   # HELLO tries at one rate before the next one is tried (about 1 s)


def _connect(device_cls, port: str, baud: int | None):
    """A connected device: at the default rate; with --baud, a device still at that rate
    from an earlier command (SET_BAUD lasts until a reset) is found too. Tries the default
    rate briefly, then the --baud rate briefly, then the default rate with every retry."""
    from ..device.link import DEFAULT_BAUD, LinkError

    tries = [(DEFAULT_BAUD, None)]
    if baud is not None and baud != DEFAULT_BAUD:
        tries = [(DEFAULT_BAUD, QUICK_HELLO_TRIES), (baud, QUICK_HELLO_TRIES)] + tries
    for i, (rate, retries) in enumerate(tries):
        dev = device_cls(port, baudrate=rate)
        dev.boot_baudrate = DEFAULT_BAUD  # what a reset device answers at
        try:
            dev.connect(**({} if retries is None else {"hello_retries": retries}))
            return dev
        except LinkError:
            dev.close()
            if i == len(tries) - 1:
                raise
    raise AssertionError("unreachable")


def _model_bytes(path, dt_ms: float | None) -> bytes:
    """An .sgm file's bytes (validated here first), or a float .npz model exported as
    `pysg export` does."""
    from ..io.model_file import read_model_head
    from ..jobs import load_model

    if dt_ms is not None and read_model_head(path) != b"PK\x03\x04":
        raise ValueError(f"{path}: an .sgm model runs at its own dt; --dt-ms applies to a float .npz model")
    return load_model(path, engine="c", dt_ms=dt_ms).data


def cmd_flash(args) -> int:
    if (args.model is None) == (args.firmware is None):
        raise ValueError("give either MODEL (.sgm or float .npz) or --firmware APP.img")
    if args.firmware:
        from ..device.image import read_image_file

        data, what = read_image_file(args.firmware), "firmware"
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
        out = _upload_dict(r.to_dict()) | {"what": what, "device": dev.hello_info.name, "port": args.port}
        if args.firmware:  # no model slot; the version as HELLO's fw_version reads ("0.1.0")
            from ..device.client import fw_version_text

            out |= {"slot": None, "generation": None, "version": fw_version_text(r.version)}
        if args.json:
            print(json.dumps(out))
        elif args.firmware:
            from ..device.client import fw_version_text

            print(f"{dev.hello_info.name}: firmware {fw_version_text(r.version)} running ({r.size} bytes in "
                  f"{r.seconds:.1f} s)")
        else:
            print(f"{dev.hello_info.name}: model active in slot {r.slot}, generation {r.generation} "
                  f"({r.size} bytes, CRC-32 {crc_hex(r.crc)}, read back identical, {r.seconds:.1f} s"
                  f"{f', resumed at byte {r.resumed_from}' if r.resumed_from else ''}"
                  f"{f', {r.reconnects} reconnects' if r.reconnects else ''}"
                  f"{f', {r.retries} retries on a lossy link, frames of {r.frame_bytes} B' if r.retries else ''})")
        return 0

    return _device_call(args, run)


def cmd_stream(args) -> int:
    from ..datasets.gesture import read_labels_csv

    if args.speed is not None:
        from ..device.stream import Pacer

        Pacer(0, args.speed)  # a bad --speed ends here (exit 2), before the file is read
    from ..io import detect_format

    detect_format(args.events)  # a missing or unknown file ends here, before the device is opened
    labels_path = args.labels
    if labels_path is None and args.window_ms is None:
        beside = Path(args.events).with_name(Path(args.events).stem + "_labels.csv")
        if beside.is_file():
            labels_path = beside
            print(f"pysg stream: one sample per gesture of {beside.name} (give --window-ms for windows)",
                  file=sys.stderr)
    labels = read_labels_csv(labels_path) if labels_path is not None else None

    def run(dev) -> int:
        events = _mapped(args, dev.model_header())
        if labels is not None:
            hits = 0
            with _bar(len(labels), "streaming gestures", "gesture", args.quiet) as bar:
                for row in dev.stream_gestures(events, labels, progress=lambda *_: bar.update(1), speed=args.speed):
                    hits += row["prediction_index"] == row["truth_index"]
                    if args.json:
                        print(json.dumps(row), flush=True)
                    else:
                        mark = "ok " if row["prediction_index"] == row["truth_index"] else "MISS"
                        bar.write(f"{mark} {row['t_start_us'] / 1e6:8.2f} s  truth {row['truth']:<28} "
                                  f"prediction {row['prediction']}", file=sys.stdout)
            if not args.json:
                print(f"accuracy {hits / max(1, len(labels)) * 100:.1f} % on the {len(labels)} gestures "
                      f"(device {dev.hello_info.name})")
            return 0
        for row in dev.stream_events(events, window_ms=500.0 if args.window_ms is None else args.window_ms,
                                     speed=args.speed):
            print_window(row, args.json)
        return 0

    return _device_call(args, run)


def _mapped(args, header):
    """The recording on the device model's sensor (the one mapping run and eval use), as
    time-ordered chunks read as they are sent (bounded memory: pysg.chunked.MappedRecording);
    its events_in / events_dropped / mapping on stderr, warned past 20 %."""
    from ..chunked import MappedRecording
    from ..preprocess import drop_warning

    rec = MappedRecording(args.events, header, crop=args.crop, downsample=args.downsample)
    if not getattr(args, "said_quiet", args.quiet):
        print("pysg stream: " + json.dumps({"events_in": rec.events_in, "events_dropped": rec.events_dropped,
                                            "mapping": rec.mapping.to_dict()}), file=sys.stderr)
    line = drop_warning(str(args.events), rec.events_in, rec.events_dropped, rec.mapping)
    if line:
        print(line, file=sys.stderr)
    return rec.chunks()


# docs/CLI.md's vocabulary for what the device client returns: sizes *_bytes, CRCs as
# "0x..." strings, truth vs prediction never sharing a name.
def _upload_dict(d: dict) -> dict:
    d = dict(d)
    d["file_bytes"] = d.pop("size")
    d["crc32"] = crc_hex(d.pop("crc"))
    return d


def _info_dict(d: dict) -> dict:
    d = dict(d)
    d["slots"] = [{k: v for k, v in sl.items() if k not in ("size", "crc")}
                  | {"file_bytes": sl["size"], "crc32": crc_hex(sl["crc"])} for sl in d["slots"]]
    d["arena_capacity_bytes"] = d.pop("arena_capacity")
    d["slot_capacity_bytes"] = d.pop("slot_capacity")
    d["fw_crc32"] = crc_hex(d.pop("fw_crc"))
    return d


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
            print(json.dumps({"hello": h.to_dict(), "info": _info_dict(info.to_dict()), "model": model}))
            return 0
        print(f"{h.name} (id {h.device_id}): firmware {fw_version_text(h.fw_version)}, protocol {h.version}, "
              f"max payload {h.max_payload}, capabilities {', '.join(c.name for c in type(h.caps) if c in h.caps)}")
        for i, sl in enumerate(info.slots):
            mark = "*" if i == info.active_slot else " "
            print(f" {mark} slot {i}: " + (f"{sl.size} bytes, CRC-32 {crc_hex(sl.crc)}, generation {sl.generation}"
                                          if sl.valid else "empty"))
        print(f"  arena {info.arena_bytes} of {info.arena_capacity} bytes, slot capacity {info.slot_capacity} "
              f"bytes, uptime {info.uptime_ms / 1000:.1f} s")
        if model:
            print(f"  model: dt {model['dt_us']} us, input {model['input_shape']}, classes {', '.join(model['labels'])}")
        else:
            print("  no model: flash one with `pysg flash --port URL MODEL.sgm`")
        return 0

    return _device_call(args, run)


def cmd_device_list(args) -> int:
    from ..device.session import list_serial_ports

    ports = list_serial_ports()
    if args.json:
        print(json.dumps({"ports": ports}))
        return 0
    if not ports:
        print("no serial ports found (an emulated device: `pysg emulate` prints its URL)")
    for p in ports:
        print(f"{p['port']}  {p['description'] or '-'}" + (f"  [{p['vid_pid']}]" if p["vid_pid"] else ""))
    return 0


def cmd_device_reset(args) -> int:
    def run(dev) -> int:
        h = dev.reset()
        if args.json:
            print(json.dumps({"reset": True, "port": args.port, "hello": h.to_dict()}))
        else:
            print(f"{h.name}: reset, answering again on {args.port}")
        return 0

    return _device_call(args, run)


def stats_dict(st) -> dict:
    """A STATS reply as `pysg device stats --json` prints it (docs/CLI.md)."""
    per_stage = [int(n) for n in st.spikes]
    return {"steps": st.steps, "events": st.events_in, "synops": st.synops, "spikes": sum(per_stage),
            "spikes_per_stage": per_stage, "frames_ok": st.frames_ok, "frames_dropped": st.frames_dropped,
            "busy_us": st.busy_us}


def cmd_device_stats(args) -> int:
    def run(dev) -> int:
        d = stats_dict(dev.stats())
        if args.json:
            print(json.dumps(d | {"device": dev.hello_info.name}))
            return 0
        print(f"{dev.hello_info.name}: {d['steps']} steps, {d['events']} events, {d['synops']} synaptic ops, "
              f"busy {d['busy_us'] / 1e6:.3f} s")
        print(f"  spikes {d['spikes']} (per hidden stage: " + (", ".join(str(n) for n in d["spikes_per_stage"]) or "-")
              + ")")
        print(f"  frames ok {d['frames_ok']}, dropped {d['frames_dropped']}")
        return 0

    return _device_call(args, run)


def slots_list(info) -> list[dict]:
    """Both model slots as `pysg device slots --json` prints them (docs/CLI.md)."""
    from ..device.session import SLOT_NAMES

    return [{"slot": SLOT_NAMES[i], "state": "valid" if sl.valid else "empty", "active": i == info.active_slot,
             "generation": sl.generation if sl.valid else None, "file_bytes": sl.size if sl.valid else None,
             "crc32": crc_hex(sl.crc) if sl.valid else None} for i, sl in enumerate(info.slots)]


def _print_slots(rows: list[dict]) -> None:
    for r in rows:
        mark = "*" if r["active"] else " "
        print(f"{mark} {r['slot']}: " + (f"valid, generation {r['generation']}, {r['file_bytes']} bytes, "
                                         f"CRC-32 {r['crc32']}" + (", active" if r["active"] else "")
                                         if r["state"] == "valid" else "empty"))


def cmd_device_slots(args) -> int:
    def run(dev) -> int:
        rows = slots_list(dev.info())
        if args.json:
            print(json.dumps({"device": dev.hello_info.name, "slots": rows}))
        else:
            _print_slots(rows)
        return 0

    return _device_call(args, run)


def cmd_device_activate(args) -> int:
    from ..device.session import SLOT_NAMES, slot_index

    want = slot_index(args.slot)

    def run(dev) -> int:
        info = dev.info()
        if not info.slots[want].valid:
            print(f"pysg device activate: slot {SLOT_NAMES[want]} of {args.port} holds no valid model; "
                  f"`pysg device slots --port {args.port}` shows which one does", file=sys.stderr)
            return 2
        before = info.active_slot
        slot, generation = dev.select_slot(want)
        rows = slots_list(dev.info())
        if args.json:
            print(json.dumps({"device": dev.hello_info.name, "active": SLOT_NAMES[slot], "generation": generation,
                              "changed": before != slot, "slots": rows}))
            return 0
        other = rows[1 - slot]
        kept = (f"slot {other['slot']} keeps its model (generation {other['generation']})" if other["state"] == "valid"
                else f"slot {other['slot']} is empty")
        print(f"{dev.hello_info.name}: slot {SLOT_NAMES[slot]} " + ("was already active" if before == slot else "active")
              + f" (generation {generation}); {kept}")
        _print_slots(rows)
        return 0

    return _device_call(args, run)


def cmd_device_read_model(args) -> int:
    import zlib

    from ..device.session import SLOT_NAMES, slot_index

    want = None if args.slot is None else slot_index(args.slot)
    out = check_output(args.output, "-o")

    def run(dev) -> int:
        with _bar(0, "reading model", "B", args.quiet or args.json) as bar:
            def progress(done, total):
                bar.total = total
                bar.update(done - bar.n)

            slot, data = dev.read_slot_model(want, progress=progress)
        write_atomic(out, lambda f: f.write(data))
        d = {"device": dev.hello_info.name, "slot": SLOT_NAMES[slot], "output": str(out), "file_bytes": len(data),
             "crc32": crc_hex(zlib.crc32(data))}
        if args.json:
            print(json.dumps(d))
        else:
            print(f"{out}: slot {d['slot']}'s model, {d['file_bytes']} bytes, CRC-32 {d['crc32']} "
                  f"(equal to the slot's)")
        return 0

    return _device_call(args, run)


def cmd_emulate(args) -> int:
    from ..device.emulate import run_emulator

    return run_emulator(qemu=args.qemu, tcp_port=args.tcp, pty=args.pty, flash=args.flash)
