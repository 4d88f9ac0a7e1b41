# SPDX-License-Identifier: MIT
""".npz event files: the member is decompressed chunk by chunk (a tiny file holding a
deflated 20 M-event member is summarised in bounded memory, and read in one copy), only
the chosen member is read, and a member whose .npy header disagrees with the zip
directory's size is refused before anything is allocated."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from pysg.events import EventFileError, make_events
from pysg.io.npy import iter_npy, read_npy

DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("t", "<i8"), ("p", "u1")])


def write_npz(path, members: dict[str, tuple[np.dtype, int, bytes]], compression=zipfile.ZIP_DEFLATED) -> None:
    """Each member: a .npy header for (dtype, n) then `body` repeated up to n records,
    streamed through deflate (no big array in memory)."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, (dtype, n, record) in members.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as m:
                np.lib.format.write_array_header_1_0(m, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                         "fortran_order": False, "shape": (n,)})
                block = record * 65536
                for a in range(0, n, 65536):
                    m.write(block[:min(65536, n - a) * dtype.itemsize])


def test_small_member_equals_numpy(tmp_path):
    rng = np.random.default_rng(1)
    ev = np.zeros(1000, DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = rng.integers(0, 128, 1000), rng.integers(0, 128, 1000), np.arange(1000), 1
    np.savez_compressed(tmp_path / "e.npz", events=ev, other=np.arange(5))
    want = make_events(ev["x"], ev["y"], ev["t"], ev["p"])
    assert np.array_equal(read_npy(tmp_path / "e.npz"), want)
    assert np.array_equal(np.concatenate(list(iter_npy(tmp_path / "e.npz", chunk_events=77))), want)


def test_header_disagreeing_with_the_zip_is_refused(tmp_path):
    path = tmp_path / "lie.npz"
    write_npz(path, {"events": (DTYPE, 1000, np.zeros(1, DTYPE).tobytes())}, zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"'shape': (1000,)")
    raw[at:at + 16] = b"'shape': (9999,)"  # same length: the zip stays readable
    path.write_bytes(bytes(raw))
    with pytest.raises(EventFileError, match=r"says 9999 events .* holds 13000 bytes") as e:
        read_npy(path)
    assert "npz member 'events.npy'" in str(e.value)


def test_only_the_chosen_member_is_decompressed(tmp_path):
    path = tmp_path / "two.npz"
    rec = make_events([3], [4], [5], [1]).astype(DTYPE).tobytes()
    write_npz(path, {"events": (DTYPE, 10, rec), "junk": (np.dtype("<u1"), 50_000_000, b"\0")})
    ev = read_npy(path)
    assert ev.size == 10 and int(ev["x"][0]) == 3


CHILD = textwrap.dedent(r"""
    import json, resource, sys
    from pysg.io import info
    from pysg.io.npy import read_npy
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    summary = info(sys.argv[1]) if sys.argv[2] == "info" else {"n_events": int(read_npy(sys.argv[1]).size)}
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    print(json.dumps({"n_events": summary["n_events"], "rss_growth_mb": grew}))
""")


@pytest.mark.slow
def test_deflated_20m_event_member_in_bounded_memory(tmp_path):
    path = tmp_path / "big.npz"
    n = 20_000_000
    write_npz(path, {"events": (DTYPE, n, make_events([1], [2], [3], [0]).astype(DTYPE).tobytes())})
    assert path.stat().st_size < 2 << 20  # 260 MB of records in under 2 MB
    for job, limit_mb in (("info", 120), ("read", 13 * n / 2**20 + 120)):  # info: chunks; read: one copy
        got = subprocess.run([sys.executable, "-c", CHILD, str(path), job], capture_output=True, text=True,
                             timeout=600)
        assert got.returncode == 0, got.stderr[-2000:]
        out = json.loads(got.stdout.splitlines()[-1])
        assert out["n_events"] == n and out["rss_growth_mb"] < limit_mb, (job, out)
