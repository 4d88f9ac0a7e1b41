# SPDX-License-Identifier: MIT
"""Decode throughput (events/s) of pysg.io vs faery / dv-processing / evutils
on the same files: AEDAT 3.1, AEDAT 4 (LZ4), EVT 3.0, EVT 2.0 and DAT.

Files: the real recordings of faery's sdist (tests/data, fetched by
tests/support/realdata.py, e.g. by running tests/test_io_realdata.py, into
~/.cache/pysg-tests) and larger synthetic files
written by third-party writers (faery for EVT 3.0, EVT 2.0 and AEDAT 4 LZ4; AEDAT
3.1 has no third-party writer, so pysg writes it and evutils reads it). AEDAT 4
packets are decompressed by python-lz4 (one lz4.frame.decompress call per packet) and
decoded by C; dv-processing reads the same AEDAT 4 files. The last column is pysg's
throughput over each reader's (best of --repeat runs each).

    OMP_NUM_THREADS=1 python -m bench.decode_throughput [--events 5000000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import datetime as dt
import pathlib
import tempfile

import numpy as np

from pysg.events import make_events
from pysg.io.aedat31 import read_aedat31, write_aedat31
from pysg.io.aedat4 import read_aedat4
from pysg.io.evt import read_dat, read_evt
from tests.support.measure import best
from tests.support.realdata import CACHE

REAL_DATA = CACHE / "data"  # where the tests keep faery's real recordings


def faery_count(path) -> int:
    import faery
    return faery.events_stream_from_file(str(path)).to_array().size


def dv_count(path) -> int:
    import dv_processing as dv
    rec = dv.io.MonoCameraRecording(str(path))
    n = 0
    while rec.isRunning():
        b = rec.getNextEventBatch()
        if b is None:
            break
        n += b.numpy().size
    return n


def evutils_count(path) -> int:
    import evutils.io
    ev, _ = evutils.io.EventReader(str(path), mode="all", ext_trigger=True).read_all()
    return len(ev.t)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=5_000_000, help="events in the synthetic files")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--real", default=str(REAL_DATA))
    args = ap.parse_args(argv)
    import faery

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="pysg-bench-"))
    rng = np.random.default_rng(0)
    n = args.events
    ev = make_events(rng.integers(0, 1280, n), rng.integers(0, 720, n),
                     np.sort(rng.integers(10**6, 10**6 + 60 * 10**6, n)), rng.integers(0, 2, n))
    arr = np.zeros(n, dtype=faery.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"]
    stream = faery.events_stream_from_array(arr, dimensions=(1280, 720))
    stream.to_file(str(tmp / "big.raw"), version="evt3", zero_t0=False)
    faery.events_stream_from_array(arr, dimensions=(1280, 720)).to_file(str(tmp / "big2.raw"), version="evt2",
                                                                          zero_t0=False)
    faery.events_stream_from_array(arr, dimensions=(1280, 720)).to_file(str(tmp / "big.aedat4"),
                                                                          compression=faery.aedat.LZ4_DEFAULT)
    ev128 = ev.copy()
    ev128["x"] %= 128
    ev128["y"] %= 128
    write_aedat31(tmp / "big.aedat", ev128, start_time=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))

    real = pathlib.Path(args.real)
    cases = []
    if (real / "evt3.raw").is_file():
        cases += [("EVT 3.0 real IMX636", real / "evt3.raw", read_evt, [("faery", faery_count)])]
        cases += [("AEDAT4 LZ4 real DAVIS346", real / "davis346.aedat4", read_aedat4,
                   [("faery", faery_count), ("dv-processing", dv_count)])]
        cases += [("EVT 2.0 real Gen3", real / "evt2.raw", read_evt, [("faery", faery_count)])]
        cases += [("DAT real Gen4", real / "gen4.dat", read_dat, [("faery", faery_count)])]
    else:
        print(f"(real files not found in {real}: run `python -m pytest tests/test_io_realdata.py` first)")
    cases += [
        (f"EVT 3.0 faery-written {n/1e6:g}M", tmp / "big.raw", read_evt, [("faery", faery_count)]),
        (f"EVT 2.0 faery-written {n/1e6:g}M", tmp / "big2.raw", read_evt, [("faery", faery_count)]),
        (f"AEDAT4 LZ4 faery-written {n/1e6:g}M", tmp / "big.aedat4", read_aedat4,
         [("faery", faery_count), ("dv-processing", dv_count)]),
        (f"AEDAT 3.1 pysg-written {n/1e6:g}M", tmp / "big.aedat", read_aedat31, [("evutils", evutils_count)]),
    ]
    print(f"{'file':34s} {'reader':14s} {'events':>10s} {'s':>8s} {'Mev/s':>8s} {'pysg/this':>10s}")
    for name, path, ours, others in cases:
        ours_secs = 0.0
        for reader, fn in [("pysg", lambda p=path, r=ours: r(p).size), *others]:
            secs, count = best(lambda fn=fn, p=path: fn(p), args.repeat)
            ours_secs = ours_secs or secs
            # pysg/this: pysg's throughput over this reader's (> 1: pysg is faster)
            print(f"{name:34s} {reader:14s} {count:10d} {secs:8.3f} {count / secs / 1e6:8.2f} "
                  f"{secs / ours_secs:10.2f}")
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()


if __name__ == "__main__":
    main()
