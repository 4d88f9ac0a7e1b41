# SPDX-License-Identifier: MIT
"""Soak test of the emulated device: an hour of recorded input (the bundled 26.7 s DVS128
recording, binned once and looped) streamed as one unbroken sample through the POSIX
device, as fast as the link allows (the steps an hour at 10 ms takes). Every step's
logits are compared with the integer reference run alongside (pysg.intref, one state
carried over the whole hour), the device process's RSS is sampled every block, and the
round-trip latency of each STREAM_STEPS block is recorded. Flat RSS and latency across the
hour and zero mismatching logits are the result.

    OMP_NUM_THREADS=1 python -m bench.soak [--seconds 3600] [--block 50] [--json]
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
import psutil

from pysg.converters.sgm import export_network
from pysg.datasets.binning import bin_events
from pysg.device.client import Device
from pysg.device.posix import start_posix_device
from pysg.intref import IntRef
from pysg.io import read_events
from pysg.model.network import Network
from pysg.recipes import BUNDLED_MODEL, BUNDLED_SAMPLES
from pysg.sgm import load_sgm


def soak(seconds: float, block: int) -> dict:
    sgm = export_network(Network.load(BUNDLED_MODEL))
    model = load_sgm(sgm)
    rec = next(Path(BUNDLED_SAMPLES).glob("*.aedat"))
    ev = read_events(rec).events.copy()
    ev["t"] -= ev["t"][0]
    duration = int(ev["t"][-1]) + 1
    frames = bin_events(ev, duration_us=duration, dt_us=model.dt_us, sensor_size=model.sensor_size,
                        downsample=model.downsample, channels=model.input_shape[0])
    per_loop = len(frames)
    total = int(round(seconds * 1e6 / model.dt_us))
    ref = IntRef(model, 1)
    flat = frames.reshape(per_loop, -1)
    rss, lat, mism = [], [], 0
    with tempfile.TemporaryDirectory() as tmp, start_posix_device(Path(tmp) / "flash.bin") as dev_proc:
        proc = psutil.Process(dev_proc.process.pid)
        with Device(dev_proc.url) as dev:
            dev.connect()
            dev.upload_model(sgm)
            dev.start_stream(logits=True)
            t_start = time.perf_counter()
            done = 0
            while done < total:
                n = min(block, total - done)
                idx = (np.arange(done, done + n)) % per_loop
                t0 = time.perf_counter()
                got = dev.send_steps(frames[idx])
                lat.append(time.perf_counter() - t0)
                for i, j in enumerate(idx):
                    want = ref.step(flat[j:j + 1])[0][0]
                    mism += int(not np.array_equal(got[i], want))
                rss.append(proc.memory_info().rss)
                done += n
            wall = time.perf_counter() - t_start
    lat_ms = np.array(lat) * 1e3 / block
    rss_mb = np.array(rss) / 2**20
    tenth = max(1, len(lat) // 10)
    return {
        "date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
        "input_seconds": total * model.dt_us / 1e6, "steps": total, "block_steps": block, "loops": total / per_loop,
        "wall_s": wall, "x_realtime": total * model.dt_us / 1e6 / wall, "logit_mismatches": mism,
        "device_rss_mb": {"first_10pct_max": float(rss_mb[:tenth].max()), "last_10pct_max": float(rss_mb[-tenth:].max()),
                          "max": float(rss_mb.max())},
        "latency_ms_per_step": {"first_10pct_p50": float(np.median(lat_ms[:tenth])),
                                "last_10pct_p50": float(np.median(lat_ms[-tenth:])),
                                "p99": float(np.percentile(lat_ms, 99)), "max": float(lat_ms.max())},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3600.0, help="seconds of input to stream (default 3600)")
    ap.add_argument("--block", type=int, default=50, help="steps per STREAM_STEPS request (default 50)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    r = soak(args.seconds, args.block)
    if args.json:
        print(json.dumps(r, indent=1))
        return 0 if r["logit_mismatches"] == 0 else 1
    print(f"{r['input_seconds']:.0f} s of input ({r['steps']} steps, {r['loops']:.1f} loops of the recording) in "
          f"{r['wall_s']:.1f} s ({r['x_realtime']:.0f}x real time); logits differing from pysg.intref: "
          f"{r['logit_mismatches']}")
    m = r["device_rss_mb"]
    print(f"device RSS: first 10 % max {m['first_10pct_max']:.1f} MB, last 10 % max {m['last_10pct_max']:.1f} MB, "
          f"max {m['max']:.1f} MB")
    q = r["latency_ms_per_step"]
    print(f"latency per step (block of {r['block_steps']}): first 10 % median {q['first_10pct_p50']:.3f} ms, "
          f"last 10 % median {q['last_10pct_p50']:.3f} ms, p99 {q['p99']:.3f} ms, max {q['max']:.3f} ms")
    return 0 if r["logit_mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
