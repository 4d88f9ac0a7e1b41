# SPDX-License-Identifier: MIT
"""Uploads and streams through a damaged link: pysg.device.faultproxy between the host
and the POSIX emulated device drops and corrupts bytes (or whole frames' bytes) with
given probabilities in both directions.

Per setting and seed: upload the bundled gesture model (MODEL_BEGIN ... ACTIVATE), read
it back, and stream the first gestures of the bundled recording with per-step logits;
a trial succeeds when the model reads back bit-exact and every logit equals
pysg.intref's. Reports trials, successes, injected faults, resends and wall time.

Then (`--upload-table`, or alone with `--only-uploads`) the time `pysg flash` takes
through a per-byte lossy link: the bundled model uploaded with the CLI's defaults (adaptive
resend wait and frame size), read back and activated, at 1e-4, 1e-3 and 5e-3 per byte
dropped plus the same flipped, each way; per seed the seconds, retries, final frame size
and whether it verified.

    OMP_NUM_THREADS=1 python -m bench.device_faults [--seeds 5] [--gestures 3] [--upload-table]
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pysg.converters.sgm import export_network
from pysg import intref
from pysg.device.client import Device
from pysg.device.faultproxy import FaultProxy
from pysg.device.posix import start_posix_device
from pysg.model.network import Network
from pysg.recipes import BUNDLED_MODEL
from pysg.sgm import load_sgm
from tests.support.bundled import gesture_frames

# (unit, drop, corrupt): "frame" draws once per frame and direction, "byte" per byte
SETTINGS = [("frame", 0.01, 0.01), ("byte", 1e-4, 1e-4), ("byte", 3e-4, 3e-4)]


def trial(url: str, data: bytes, refs) -> tuple[bool, int]:
    with Device(url, reply_timeout=0.3) as dev:
        r = dev.upload_model(data)
        ok = dev.read_model(r.slot) == data
        for frames, logits in refs:
            ok &= bool(np.array_equal(dev.stream_frames(frames), logits))
        return ok, dev.link.counters.resends


UPLOAD_RATES = [1e-4, 1e-3, 5e-3]   # per byte, dropped and (the same again) flipped, each way


def upload_table(device_url: str, data: bytes, seeds: int) -> None:
    print(f"\nflash through a per-byte lossy link ({len(data)} B model, CLI defaults; seconds include the read-back)")
    print(f"{'drop+flip':>9} | {'seed':>4} {'ok':>3} {'s':>7} {'retries':>7} {'frame B':>7} {'on wire B':>9}")
    for p in UPLOAD_RATES:
        for seed in range(seeds):
            with FaultProxy(device_url, drop=p, corrupt=p, seed=seed, unit="byte") as px:
                t0 = time.perf_counter()
                try:
                    with Device(px.url) as dev:
                        r = dev.upload_model(data)
                    ok, retries, frame = "yes", r.retries, r.frame_bytes
                except Exception as e:  # a failed upload is a result
                    ok, retries, frame = "no", -1, -1
                    print(f"  {type(e).__name__}: {e}")
                dt = time.perf_counter() - t0
                wire = px.counters.to_device.bytes + px.counters.to_host.bytes
            print(f"{p:9.0e} | {seed:4d} {ok:>3} {dt:7.1f} {retries:7d} {frame:7d} {wire:9d}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--gestures", type=int, default=3)
    ap.add_argument("--upload-table", action="store_true", help="also time uploads at 1e-4, 1e-3, 5e-3 per byte")
    ap.add_argument("--only-uploads", action="store_true", help="only the upload-time table")
    args = ap.parse_args(argv)
    data = export_network(Network.load(BUNDLED_MODEL))
    model = load_sgm(data)
    refs = [(f, intref.run(model, f[:, None]).logits[:, 0]) for f, _, _ in gesture_frames(model, args.gestures)]
    print(f"machine {platform.machine()}, date {time.strftime('%Y-%m-%d')}, model {len(data)} B, "
          f"{args.gestures} gestures ({sum(len(f) for f, _ in refs)} steps) per trial")
    print(f"{'unit':5} {'drop':>7} {'corrupt':>7} | {'trials':>6} {'ok':>3} {'faults->dev':>11} {'faults->host':>12} "
          f"{'resends':>7} {'s/trial':>7}")
    with tempfile.TemporaryDirectory() as tmp, start_posix_device(Path(tmp) / "flash.bin") as dev:
        for unit, drop, corrupt in ([] if args.only_uploads else SETTINGS):
            ok = resends = to_dev = to_host = 0
            t0 = time.perf_counter()
            for seed in range(args.seeds):
                with FaultProxy(dev.url, drop=drop, corrupt=corrupt, seed=seed, unit=unit) as px:
                    try:
                        good, n = trial(px.url, data, refs)
                    except Exception as e:  # a failed trial is a result, not a crash of the bench
                        print(f"  seed {seed}: {type(e).__name__}: {e}")
                        good, n = False, 0
                    c = px.counters
                ok += good
                resends += n
                to_dev += c.to_device.dropped + c.to_device.corrupted
                to_host += c.to_host.dropped + c.to_host.corrupted
            dt = (time.perf_counter() - t0) / args.seeds
            print(f"{unit:5} {drop:7.0e} {corrupt:7.0e} | {args.seeds:6d} {ok:3d} {to_dev:11d} {to_host:12d} "
                  f"{resends:7d} {dt:7.1f}")
        if args.upload_table or args.only_uploads:
            upload_table(dev.url, data, args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
