# SPDX-License-Identifier: MIT
"""Peak memory of reading an event file chunk by chunk (pysg.io.iter_events)
vs whole (pysg.io.read_events), for AEDAT 3.1, EVT 3.0, AEDAT 4 (LZ4), DAT,
AEDAT 2.0 and .npy.

The files are written by pysg's own writers (DAT: its 8-byte records directly,
.npy: numpy.save of EVENT_DTYPE) into a temporary directory; each
has ``--events`` events, 10 x ``--chunk`` (default events / 10). Every
measurement runs in a fresh subprocess and reports:

* tracemalloc peak: the largest Python/numpy heap in use while reading;
* RSS peak delta: the process's resident high-water mark (``VmHWM`` of
  /proc/self/status, reset through /proc/self/clear_refs after the imports)
  minus the resident size before reading, in a run without tracemalloc.
  (``ru_maxrss`` is not used: Linux carries it over from the parent.)

    OMP_NUM_THREADS=1 python -m bench.read_memory [--events 4000000] [--chunk N] [--json]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from tests.support.measure import status_kib

ROOT = pathlib.Path(__file__).resolve().parents[1]

FORMATS = ("aedat31", "evt3", "aedat4", "dat", "aedat2", "npy")
SUFFIX = {"dat": "dat", "aedat2": "aedat", "npy": "npy"}


def child(mode: str, path: str, chunk: int) -> dict:
    """Read ``path`` (mode 'iter' or 'whole'); RSS first, then tracemalloc."""
    import tracemalloc

    from pysg.io import iter_events, read_events

    def run() -> int:
        if mode == "iter":
            return sum(c.size for c in iter_events(path, chunk_events=chunk))
        return read_events(path).events.size

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")              # reset VmHWM to the current RSS
    except OSError:
        pass
    base = status_kib("VmRSS")
    t = time.perf_counter()
    n = run()
    seconds = time.perf_counter() - t
    rss = status_kib("VmHWM") - base
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"n": n, "rss_delta_kib": rss, "tracemalloc_peak_bytes": peak, "seconds": seconds}


def make_files(tmp: pathlib.Path, n: int) -> dict[str, pathlib.Path]:
    import numpy as np

    from pysg.events import make_events
    from pysg.io.aedat2 import write_aedat2
    from pysg.io.aedat4 import write_aedat4
    from pysg.io.aedat31 import write_aedat31
    from pysg.io.evt import write_evt3

    rng = np.random.default_rng(0)
    ev = make_events(rng.integers(0, 128, n), rng.integers(0, 128, n),
                     np.sort(rng.integers(0, 60_000_000, n)), rng.integers(0, 2, n))
    paths = {f: tmp / f"bench{f}.{SUFFIX.get(f, f)}" for f in FORMATS}
    write_aedat31(paths["aedat31"], ev, width=128, height=128,
                  start_time=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    write_evt3(paths["evt3"], ev, width=128, height=128)
    write_aedat4(paths["aedat4"], ev, width=128, height=128, compression="lz4")
    write_aedat2(paths["aedat2"], ev)
    np.save(paths["npy"], ev)
    rec = np.empty(n, dtype=[("t", "<u4"), ("d", "<u4")])
    rec["t"] = ev["t"]
    rec["d"] = ev["x"].astype(np.uint32) | (ev["y"].astype(np.uint32) << 14) | (ev["p"].astype(np.uint32) << 28)
    paths["dat"].write_bytes(b"% Version 2\n% Width 128\n% Height 128\n\x0c\x08" + rec.tobytes())
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=4_000_000)
    ap.add_argument("--chunk", type=int, default=None, help="chunk_events (default events / 10)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "PATH", "CHUNK"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        mode, path, chunk = args.child
        print(json.dumps(child(mode, path, int(chunk))))
        return 0
    chunk = args.chunk or max(1, args.events // 10)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pysg-readmem-") as tmp:
        paths = make_files(pathlib.Path(tmp), args.events)
        for fmt in FORMATS:
            for mode in ("iter", "whole"):
                out = subprocess.run([sys.executable, "-m", "bench.read_memory", "--child", mode, str(paths[fmt]),
                                      str(chunk)], cwd=ROOT, capture_output=True, text=True, check=True,
                                     env={**os.environ, "OMP_NUM_THREADS": "1"})
                r = json.loads(out.stdout)
                rows.append({"format": fmt, "mode": mode, "file_bytes": paths[fmt].stat().st_size,
                             "chunk_events": chunk if mode == "iter" else None, **r})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    ev_mib = args.events * 16 / 2**20
    print(f"{args.events} events ({ev_mib:.1f} MiB as EVENT_DTYPE), chunk_events = {chunk}")
    print(f"{'format':8} {'file MiB':>9} {'mode':6} {'tracemalloc peak MiB':>21} {'RSS peak +MiB':>14} {'s':>6}")
    for r in rows:
        print(f"{r['format']:8} {r['file_bytes'] / 2**20:9.1f} {r['mode']:6} "
              f"{r['tracemalloc_peak_bytes'] / 2**20:21.1f} {r['rss_delta_kib'] / 1024:14.1f} {r['seconds']:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
