# SPDX-License-Identifier: MIT
"""Serial throughput of the device protocol: model upload and event streaming, on the
POSIX emulated device and on the firmware in QEMU (mps2-an386), side by side.

For each device: the bundled gesture model (.sgm) is uploaded (bytes/s of the upload
alone, then of the read-back), and the gestures of the bundled recording are streamed
as binned steps, with and without per-step logits in the replies (steps/s, input
events/s, wire bytes per event, and the real-time factor: seconds of recording per
second of streaming). Every streamed gesture's prediction is checked against
pysg.intref, so the figures are of correct work.

    OMP_NUM_THREADS=1 python -m bench.device_throughput [--gestures N] [--json]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pysg.converters.sgm import export_network
from pysg import intref
from pysg.device.client import Device
from pysg.device.protocol import encode_steps
from pysg.model.network import Network
from pysg.recipes import BUNDLED_MODEL
from pysg.sgm import load_sgm
from tests.support.bundled import gesture_frames


def measure(name: str, url: str, data: bytes, model, gestures) -> dict:
    row: dict = {"device": name}
    with Device(url) as dev:
        t0 = time.perf_counter()
        r = dev.upload_model(data, verify=False)
        t_up = time.perf_counter() - t0
        t0 = time.perf_counter()
        back = dev.read_model(r.slot, size=len(data))
        t_back = time.perf_counter() - t0
        if back != data:
            raise SystemExit(f"{name}: the model reads back differently")
        row.update(model_bytes=len(data), upload_s=t_up, upload_Bps=len(data) / t_up, readback_s=t_back,
                   readback_Bps=len(data) / t_back)
        refs = [intref.scores(intref.run(model, f[:, None]).logits, np.array([len(f)]))[0] for f, _, _ in gestures]
        for logits in (True, False):
            steps = events = wire = 0
            seconds = 0.0
            t0 = time.perf_counter()
            for (frames, n_ev, dur), ref in zip(gestures, refs):
                pred, lg = dev.classify_frames(frames, logits=logits)
                if pred.index != int(ref.argmax()) or not np.array_equal(pred.scores, ref):
                    raise SystemExit(f"{name}: gesture scores differ from pysg.intref")
                steps += len(frames)
                events += n_ev
                seconds += dur
            t = time.perf_counter() - t0
            wire = sum(len(b) for f, _, _ in gestures for b in encode_steps(f))
            key = "stream_logits" if logits else "stream"
            row[key] = {"steps": steps, "events": events, "recording_s": seconds, "wall_s": t,
                        "steps_per_s": steps / t, "events_per_s": events / t, "step_bytes": wire,
                        "bytes_per_event": wire / max(events, 1), "x_real_time": seconds / t}
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gestures", type=int, default=3, help="gestures of the bundled recording to stream")
    ap.add_argument("--no-qemu", action="store_true", help="only the POSIX device")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    data = export_network(Network.load(BUNDLED_MODEL))
    model = load_sgm(data)
    gestures = gesture_frames(model, args.gestures)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        from pysg.device.posix import start_posix_device

        dev = stack.enter_context(start_posix_device(Path(tmp) / "flash.bin"))
        rows.append(measure("posix (TCP)", dev.url, data, model, gestures))
        if not args.no_qemu and shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc"):
            from pysg.device import qemu as q

            q.build(("qemu",))
            qd = stack.enter_context(q.start(app_image=q.BUILD_DIR / "app.img"))
            rows.append(measure("qemu mps2-an386 (UART over TCP)", qd.url, data, model, gestures))
    machine = {"machine": platform.machine(), "cpus": len(__import__("os").sched_getaffinity(0)),
               "date": time.strftime("%Y-%m-%d"), "gestures": args.gestures}
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=1))
        return 0
    print(f"machine {machine}")
    print(f"{'device':34} {'upload B/s':>11} {'read B/s':>10} | {'stream':>6} {'steps/s':>8} {'events/s':>9} "
          f"{'B/event':>7} {'x real time':>11}")
    for r in rows:
        for key in ("stream", "stream_logits"):
            s = r[key]
            print(f"{r['device']:34} {r['upload_Bps']:11,.0f} {r['readback_Bps']:10,.0f} | "
                  f"{'logits' if key == 'stream_logits' else 'scores':>6} {s['steps_per_s']:8,.0f} "
                  f"{s['events_per_s']:9,.0f} {s['bytes_per_event']:7.2f} {s['x_real_time']:11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
