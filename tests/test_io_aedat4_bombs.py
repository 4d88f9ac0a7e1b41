# SPDX-License-Identifier: MIT
"""Decompression bombs in AEDAT 4 packets (frames that inflate far beyond any real event
packet, with and without a content size in their header) are refused with the packet's
byte offset while memory stays bounded: each reader runs in a child process whose peak
RSS is measured, under an address-space limit a full inflation would exceed."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(r"""
    import json, resource, struct, sys
    import lz4.frame, zstandard
    import numpy as np
    from pysg.events import EventFileError, make_events
    from pysg.io import aedat4

    kind, path, reader, use_c = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    ev = make_events(x=np.arange(10) % 346, y=np.arange(10) % 260, t=np.arange(10), p=np.arange(10) % 2)
    aedat4.write_aedat4(path, ev, compression="lz4" if kind.startswith("lz4") else "zstd")
    raw = open(path, "rb").read()
    first = 18 + struct.unpack_from("<i", raw, 14)[0]
    sid, _ = struct.unpack_from("<ii", raw, first)
    zeros, chunks = bytes(64 << 20), 20  # 1.25 GiB of zeros, more than MAX_PACKET_BYTES
    if kind.startswith("lz4"):
        c = lz4.frame.LZ4FrameCompressor()  # the header holds a size only when begin() is given one
        bomb = c.begin(source_size=chunks * len(zeros) if kind == "lz4-sized" else 0)
        bomb += b"".join(c.compress(zeros) for _ in range(chunks)) + c.flush()
    else:
        c = zstandard.ZstdCompressor(write_content_size=False).compressobj()
        bomb = b"".join(c.compress(zeros) for _ in range(chunks)) + c.flush()
    del zeros
    open(path, "wb").write(raw[:first] + struct.pack("<ii", sid, len(bomb)) + bomb)
    if not use_c:
        aedat4._lib = None
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # full inflation + decode would need more
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        (aedat4.read_aedat4 if reader == "read" else lambda p: list(aedat4.iter_aedat4(p)))(path)
        out = {"error": None}
    except EventFileError as e:
        out = {"error": str(e), "where": e.where}
    out["bomb_bytes"], out["first"] = len(bomb), first
    out["rss_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    out["limit_mb"] = aedat4.packet_limit(len(bomb)) / (1 << 20)
    print(json.dumps(out))
""")


@pytest.mark.parametrize("reader", ["read", "iter"])
@pytest.mark.parametrize("use_c", [True, False])
@pytest.mark.parametrize("kind", ["lz4", "lz4-sized", "zstd"])
def test_bomb_is_refused_in_bounded_memory(tmp_path, kind, reader, use_c):
    got = subprocess.run([sys.executable, "-c", CHILD, kind, str(tmp_path / "bomb.aedat4"), reader,
                          "1" if use_c else "0"], capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr[-2000:]
    out = json.loads(got.stdout.strip().splitlines()[-1])
    assert out["bomb_bytes"] < 8 << 20  # a few MB on disk...
    assert out["error"] is not None and "decompression bomb" in out["error"], out
    assert out["where"] == f"byte offset {out['first'] + 8}"
    # ...refused after at most packet_limit() bytes (64 MiB, or 32x a big payload) of the 1.25 GiB
    assert out["limit_mb"] <= 256 and out["rss_growth_mb"] < 2 * out["limit_mb"] + 64, out
