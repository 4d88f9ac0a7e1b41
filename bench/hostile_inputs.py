# SPDX-License-Identifier: MIT
"""Hostile and foreign inputs, measured: peak memory of reading decompression bombs
(AEDAT 4 packets that inflate to 1.25 GiB: LZ4 without and with a content size, ZSTD
without one) and of a deflated 20 M-event `.npz` member (`pysg.io.info` and `read_npy`),
each in a child process under a 3 GiB address-space limit; and the real recordings of
faery's and aermanager's source packages (`tests/support/realdata.py`) run by
`pysg.jobs.run_file` with the C engine and the integer reference: events kept by the
sensor mapping, logits C == ref per step.

    OMP_NUM_THREADS=1 python -m bench.hostile_inputs [--pysg DIR] [--json]

`--pysg DIR` runs the memory children against another checkout's pysg (e.g. a clone of an
older commit with its extension built) for a before/after comparison; the real
recordings use this checkout.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from tests.support.realdata import fetch_aermanager_recordings, fetch_real_recordings

BOMB = textwrap.dedent(r"""
    import json, resource, struct, sys
    import lz4.frame, zstandard
    import numpy as np
    from pysg.events import make_events
    from pysg.io import aedat4

    kind, path = sys.argv[1], sys.argv[2]
    ev = make_events(x=np.arange(10) % 346, y=np.arange(10) % 260, t=np.arange(10), p=np.arange(10) % 2)
    aedat4.write_aedat4(path, ev, compression="lz4" if kind.startswith("lz4") else "zstd")
    raw = open(path, "rb").read()
    first = 18 + struct.unpack_from("<i", raw, 14)[0]
    sid, _ = struct.unpack_from("<ii", raw, first)
    zeros, chunks = bytes(64 << 20), 20
    if kind.startswith("lz4"):
        c = lz4.frame.LZ4FrameCompressor()
        bomb = c.begin(source_size=chunks * len(zeros) if kind == "lz4-sized" else 0)
        bomb += b"".join(c.compress(zeros) for _ in range(chunks)) + c.flush()
    else:
        c = zstandard.ZstdCompressor(write_content_size=False).compressobj()
        bomb = b"".join(c.compress(zeros) for _ in range(chunks)) + c.flush()
    del zeros
    open(path, "wb").write(raw[:first] + struct.pack("<ii", sid, len(bomb)) + bomb)
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        aedat4.read_aedat4(path)
        verdict = "read"
    except MemoryError:
        verdict = "MemoryError"
    except Exception as e:
        verdict = type(e).__name__ + ": " + str(e)[-120:]
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    print(json.dumps({"file_bytes": len(raw[:first]) + 8 + len(bomb), "rss_growth_mb": grew, "verdict": verdict}))
""")

NPZ = textwrap.dedent(r"""
    import json, resource, sys
    from pysg.io import info
    from pysg.io.npy import read_npy
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n = info(sys.argv[1])["n_events"] if sys.argv[2] == "info" else int(read_npy(sys.argv[1]).size)
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    print(json.dumps({"n_events": n, "rss_growth_mb": grew}))
""")


def _child(code: str, args: list[str], pysg_root: str | None) -> dict:
    env = dict(os.environ)
    if pysg_root:
        env["PYTHONPATH"] = pysg_root
    # run outside any checkout: `python -c` puts the working directory first on sys.path
    got = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=900,
                         cwd=tempfile.gettempdir())
    if got.returncode != 0:
        return {"error": got.stderr.strip().splitlines()[-1] if got.stderr.strip() else f"exit {got.returncode}"}
    return json.loads(got.stdout.strip().splitlines()[-1])


def write_npz(path: Path, n: int) -> None:
    """A .npz whose one member holds n identical events, deflated while written."""
    import zipfile

    dtype = np.dtype([("x", "<u2"), ("y", "<u2"), ("t", "<i8"), ("p", "u1")])
    rec = np.array([(1, 2, 3, 0)], dtype).tobytes()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("events.npy", "w", force_zip64=True) as m:
        np.lib.format.write_array_header_1_0(m, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                 "fortran_order": False, "shape": (n,)})
        block = rec * 65536
        for a in range(0, n, 65536):
            m.write(block[:min(65536, n - a) * dtype.itemsize])


def memory(pysg_root: str | None) -> dict:
    out: dict = {"bombs": {}, "npz": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("lz4", "lz4-sized", "zstd"):
            out["bombs"][kind] = _child(BOMB, [kind, str(Path(tmp) / "bomb.aedat4")], pysg_root)
        npz = Path(tmp) / "big.npz"
        write_npz(npz, 20_000_000)
        out["npz"]["file_bytes"] = npz.stat().st_size
        for job in ("info", "read"):
            out["npz"][job] = _child(NPZ, [str(npz), job], pysg_root)
    return out


def real_recordings() -> list[dict]:
    from pysg.converters.sgm import export_network
    from pysg.jobs import run_file
    from pysg.model.network import Network
    from pysg.recipes import BUNDLED_MODEL

    sgm = export_network(Network.load(BUNDLED_MODEL))
    files = []
    for fetch in (fetch_real_recordings, fetch_aermanager_recordings):
        got = fetch()
        if isinstance(got, str):
            print(f"skipped: {got}", file=sys.stderr)
            continue
        files += sorted(p for p in Path(got).iterdir() if p.is_file())
    rows = []
    for path in files:
        c = run_file(sgm, path, engine="c")
        ref = run_file(sgm, path, engine="ref")
        rows.append({"file": path.name, "events_in": c["events_in"], "events_dropped": c["events_dropped"],
                     "mapping": c["mapping"], "steps": c["steps"],
                     "logits_c_equal_ref": bool(np.array_equal(c["logits"], ref["logits"]))})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pysg", default=None, help="checkout whose pysg the memory children import (default: this one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    r = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(), "memory": memory(args.pysg),
         "real_recordings": real_recordings()}
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    for kind, b in r["memory"]["bombs"].items():
        print(f"bomb {kind:<10} {b.get('file_bytes', 0):>9} B file: peak RSS +{b.get('rss_growth_mb', 0):7.1f} MB, "
              f"{b.get('verdict', b.get('error'))}")
    for job in ("info", "read"):
        b = r["memory"]["npz"][job]
        print(f"npz 20 M events, {r['memory']['npz']['file_bytes']} B file, {job}: peak RSS "
              f"+{b.get('rss_growth_mb', 0):.1f} MB {b.get('error', '')}")
    for row in r["real_recordings"]:
        m = row["mapping"]
        print(f"{row['file']:<26} {row['events_in'] - row['events_dropped']:>9} of {row['events_in']:>9} events kept, "
              f"window {m['crop'] if m else None} / {m['downsample'] if m else 1}, C == ref: {row['logits_c_equal_ref']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
