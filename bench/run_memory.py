# SPDX-License-Identifier: MIT
"""Peak memory of `pysg run MODEL RECORDING` against the recording's size: `run` reads
the file in chunks (pysg.io.iter_events) and feeds the engine step by step
(pysg.jobs.run_file), so its peak RSS should not grow with the number of events.

Writes .npy recordings (EVENT_DTYPE, 128 x 128, ``--rate`` events/s, written chunk by
chunk into a memory-mapped file) of each ``--events`` size into a temporary directory,
exports the bundled gesture model to .sgm, and runs ``pysg run`` on each in a fresh
subprocess, which reports its resident high-water mark (``VmHWM`` of /proc/self/status;
``ru_maxrss`` is not used: Linux carries it over from the parent). The check: the peak
for the largest recording is at most 2x the peak for the smallest.

    OMP_NUM_THREADS=1 python -m bench.run_memory [--events 1000000 50000000] [--engine c] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from tests.support.measure import status_kib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def child(model: str, path: str, engine: str) -> dict:
    from pysg.jobs import run_file

    t = time.perf_counter()
    r = run_file(model, path, engine=engine)
    return {"events_in": r["events_in"], "steps": r["steps"], "seconds": time.perf_counter() - t,
            "peak_rss_kib": status_kib("VmHWM")}


def write_recording(path: pathlib.Path, n: int, rate: float, chunk: int = 1_000_000) -> None:
    """n events, x, y uniform on 128 x 128, times uniform at `rate` events/s (sorted)."""
    import numpy as np

    from pysg.events import EVENT_DTYPE

    rng = np.random.default_rng(0)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=EVENT_DTYPE, shape=(n,))
    per_us = rate / 1e6
    t0 = 0
    for a in range(0, n, chunk):
        k = min(chunk, n - a)
        span = int(k / per_us)
        ev = out[a:a + k]
        ev["x"] = rng.integers(0, 128, k)
        ev["y"] = rng.integers(0, 128, k)
        ev["t"] = t0 + np.sort(rng.integers(0, span, k))
        ev["p"] = rng.integers(0, 2, k)
        t0 += span
    out.flush()
    del out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, nargs="+", default=[1_000_000, 50_000_000])
    ap.add_argument("--rate", type=float, default=1e6, help="events per second of recording (default 1e6)")
    ap.add_argument("--engine", choices=("c", "ref"), default="c")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--child", nargs=3, metavar=("MODEL", "PATH", "ENGINE"), help=argparse.SUPPRESS)
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
            path = pathlib.Path(tmp) / f"rec{n}.npy"
            write_recording(path, n, args.rate)
            out = subprocess.run([sys.executable, "-m", "bench.run_memory", "--child", str(model), str(path),
                                  args.engine], cwd=ROOT, capture_output=True, text=True, check=True,
                                 env={**os.environ, "OMP_NUM_THREADS": "1"})
            r = json.loads(out.stdout)
            rows.append({"events": n, "file_bytes": path.stat().st_size, **r})
            path.unlink()
    ratio = rows[-1]["peak_rss_kib"] / rows[0]["peak_rss_kib"]
    if args.json:
        print(json.dumps({"engine": args.engine, "rows": rows, "ratio": ratio}))
    else:
        print(f"pysg run (engine {args.engine}): peak RSS by recording size")
        print(f"{'events':>12} {'file MB':>9} {'steps':>8} {'seconds':>8} {'peak RSS MB':>12}")
        for r in rows:
            print(f"{r['events']:>12,} {r['file_bytes'] / 1e6:>9.1f} {r['steps']:>8} {r['seconds']:>8.1f} "
                  f"{r['peak_rss_kib'] / 1024:>12.1f}")
        print(f"largest / smallest peak: {ratio:.2f} (bounded if <= 2)")
    return 0 if ratio <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
