# SPDX-License-Identifier: MIT
"""Peak memory of `pysg run`, `eval` and `stream` against the recording's size: each reads
the file in chunks (pysg.io.iter_events) and feeds the engine or the device as they pass
(pysg.jobs.run_file; pysg.jobs.evaluate over pysg.chunked.stream_gestures;
pysg.chunked.MappedRecording + pysg.device.stream.Streams.stream_events), so its peak RSS
should not grow with the number of events.

Writes recordings (128 x 128, ``--rate`` events/s, written chunk by chunk) of each
``--events`` size into a temporary directory: an .npy (EVENT_DTYPE, memory-mapped) for
run and stream, and an AEDAT 3.1 file in a DVS128-Gesture-layout folder for eval (its
labels: consecutive 2 s gestures over the whole recording, every class in turn); exports
the bundled gesture model to .sgm, and runs each command in a fresh subprocess, which
reports its resident high-water mark (``VmHWM`` of /proc/self/status; ``ru_maxrss`` is not
used: Linux carries it over from the parent). stream: windows of 500 ms to the POSIX
emulated device (its own process, not counted: the host's memory is measured). The check:
per command, the peak for the largest recording is at most 2x the peak for the smallest.

    OMP_NUM_THREADS=1 python -m bench.run_memory [--events 1000000 50000000] [--engine c]
        [--commands run eval stream] [--json]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from tests.support.measure import status_kib

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMANDS = ("run", "eval", "stream")
GESTURE_US = 2_000_000


def child_run(model: str, path: str, engine: str) -> dict:
    from pysg.jobs import run_file

    r = run_file(model, path, engine=engine)
    return {"events_in": r["events_in"], "steps": r["steps"]}


def child_eval(model: str, folder: str, engine: str) -> dict:
    from pysg.jobs import evaluate

    ev = evaluate(model, folder, engine=engine, split="test")
    return {"events_in": ev.summary["events_in"], "steps": sum(r.steps for r in ev.samples), "gestures": len(ev.samples)}


def child_stream(model: str, path: str, engine: str) -> dict:
    from pysg.chunked import MappedRecording
    from pysg.device.client import Device
    from pysg.device.posix import start_posix_device

    with tempfile.TemporaryDirectory(prefix="pysg-streammem-") as tmp:
        with start_posix_device(pathlib.Path(tmp) / "flash.bin") as posix, Device(posix.url) as dev:
            dev.upload_model(pathlib.Path(model).read_bytes())
            rec = MappedRecording(path, dev.model_header())
            windows = list(dev.stream_events(rec.chunks(), window_ms=500.0))
    return {"events_in": rec.events_in, "steps": len(windows) * 50, "windows": len(windows)}


CHILDREN = {"run": child_run, "eval": child_eval, "stream": child_stream}


def child(command: str, model: str, path: str, engine: str) -> dict:
    t = time.perf_counter()
    r = CHILDREN[command](model, path, engine)
    return {**r, "seconds": time.perf_counter() - t, "peak_rss_kib": status_kib("VmHWM")}


def _chunks(n: int, rate: float, chunk: int = 1_000_000):
    """n events in chunks, x, y uniform on 128 x 128, times uniform at `rate` events/s (sorted)."""
    import numpy as np

    from pysg.events import EVENT_DTYPE

    rng = np.random.default_rng(0)
    per_us = rate / 1e6
    t0 = 0
    for a in range(0, n, chunk):
        k = min(chunk, n - a)
        span = int(k / per_us)
        ev = np.empty(k, EVENT_DTYPE)
        ev["x"] = rng.integers(0, 128, k)
        ev["y"] = rng.integers(0, 128, k)
        ev["t"] = t0 + np.sort(rng.integers(0, span, k))
        ev["p"] = rng.integers(0, 2, k)
        t0 += span
        yield ev


def write_recording(path: pathlib.Path, n: int, rate: float) -> None:
    """The .npy recording, written chunk by chunk into a memory-mapped file."""
    import numpy as np

    from pysg.events import EVENT_DTYPE

    out = np.lib.format.open_memmap(path, mode="w+", dtype=EVENT_DTYPE, shape=(n,))
    a = 0
    for ev in _chunks(n, rate):
        out[a:a + ev.size] = ev
        a += ev.size
    out.flush()
    del out


def write_gesture_folder(root: pathlib.Path, n: int, rate: float) -> None:
    """The same events as one AEDAT 3.1 test recording (packets written chunk by chunk)
    with consecutive 2 s gestures as its labels."""
    from pysg.datasets.gesture import write_labels_csv, write_trials
    from pysg.io.aedat31 import write_aedat31

    root.mkdir()
    name = "user01_lab.aedat"
    part = root / "part.aedat"
    end_header = b"#!END-HEADER\r\n"
    t_end = 0
    with open(root / name, "wb") as out:
        for i, ev in enumerate(_chunks(n, rate)):
            write_aedat31(part, ev, start_time=datetime.datetime(2020, 1, 1))
            data = part.read_bytes()
            out.write(data if i == 0 else data[data.index(end_header) + len(end_header):])
            t_end = int(ev["t"][-1]) + 1
    part.unlink()
    write_labels_csv(root / "user01_lab_labels.csv",
                     [(1 + k % 11, t, t + GESTURE_US) for k, t in enumerate(range(0, t_end, GESTURE_US))])
    write_trials(root, [], [name])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, nargs="+", default=[1_000_000, 50_000_000])
    ap.add_argument("--rate", type=float, default=1e6, help="events per second of recording (default 1e6)")
    ap.add_argument("--engine", choices=("c", "ref"), default="c", help="the engine of run and eval")
    ap.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS))
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--child", nargs=4, metavar=("COMMAND", "MODEL", "PATH", "ENGINE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    from pysg.converters.sgm import export_network
    from pysg.model.network import Network
    from pysg.recipes import BUNDLED_MODEL

    rows = []
    with tempfile.TemporaryDirectory(prefix="pysg-runmem-") as tmp:
        model = pathlib.Path(tmp) / "gesture.sgm"
        model.write_bytes(export_network(Network.load(BUNDLED_MODEL)))
        for n in sorted(args.events):
            npy, folder = pathlib.Path(tmp) / f"rec{n}.npy", pathlib.Path(tmp) / f"gestures{n}"
            if {"run", "stream"} & set(args.commands):
                write_recording(npy, n, args.rate)
            if "eval" in args.commands:
                write_gesture_folder(folder, n, args.rate)
            for command in args.commands:
                path = folder if command == "eval" else npy
                out = subprocess.run([sys.executable, "-m", "bench.run_memory", "--child", command, str(model),
                                      str(path), args.engine], cwd=ROOT, capture_output=True, text=True,
                                     env={**os.environ, "OMP_NUM_THREADS": "1"})
                if out.returncode != 0:
                    raise RuntimeError(f"{command} on {n} events failed:\n{out.stderr[-3000:]}")
                r = json.loads(out.stdout.strip().splitlines()[-1])
                size = sum(f.stat().st_size for f in folder.iterdir()) if command == "eval" else npy.stat().st_size
                rows.append({"command": command, "events": n, "file_bytes": size, **r})
            npy.unlink(missing_ok=True)
            if folder.exists():
                for f in folder.iterdir():
                    f.unlink()
                folder.rmdir()
    ratios = {}
    for command in args.commands:
        mine = [r for r in rows if r["command"] == command]
        ratios[command] = mine[-1]["peak_rss_kib"] / mine[0]["peak_rss_kib"]
    if args.json:
        print(json.dumps({"engine": args.engine, "rows": rows, "ratios": ratios}))
    else:
        print(f"peak RSS by recording size (run and eval: engine {args.engine}; stream: the POSIX device)")
        print(f"{'command':>8} {'events':>12} {'file MB':>9} {'seconds':>8} {'peak RSS MB':>12}")
        for r in rows:
            print(f"{r['command']:>8} {r['events']:>12,} {r['file_bytes'] / 1e6:>9.1f} {r['seconds']:>8.1f} "
                  f"{r['peak_rss_kib'] / 1024:>12.1f}")
        for command, ratio in ratios.items():
            print(f"{command}: largest / smallest peak {ratio:.2f} (bounded if <= 2)")
    return 0 if all(r <= 2 for r in ratios.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
