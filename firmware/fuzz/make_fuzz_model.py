# SPDX-License-Identifier: MIT
"""Write the small .sgm the protocol fuzzer boots with (conv, pooling, axonal delays, dense
output: every runtime path a stream can reach, in a few KB so each input boots fast).

    python firmware/fuzz/make_fuzz_model.py OUT.sgm [SEED_DIR]

With SEED_DIR, also write starting inputs for the fuzzer there (fuzz_proto.c's request
records: a stream, an upload of the model itself, HELLO/INFO/STATS).
"""
from __future__ import annotations

import os
import struct
import sys
import zlib

import numpy as np

from pysg.converters.sgm import export_network
from pysg.model import Conv2d, Dense, Flatten, Network, NetworkConfig, SumPool2d


def fuzz_model(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    cfg = NetworkConfig(input_shape=(2, 8, 8),
                        layers=[Conv2d(4, 3, 1, 1), SumPool2d(2), Flatten(), Dense(8), Dense(3)],
                        n_buckets=3, classes=["a", "b", "c"], sensor_size=(16, 16), downsample=2)
    net = Network(cfg, rng=rng)
    for i, st in enumerate(net.stages[1:], start=1):
        net.params[f"{i}.delays"] = rng.integers(0, 4, st.n_in).astype(np.int64)
    return export_network(net)


def _record(op: int, seq: int, payload: bytes = b"") -> bytes:
    """One request record of fuzz_proto.c: op, seq, flags, u16 len, payload."""
    return struct.pack("<BBBH", op, seq, 0, len(payload)) + payload


def seeds(model: bytes) -> dict[str, bytes]:
    # step blocks (PROTOCOL.md 3.3, pairs of index_delta, count): inputs 5, 6 and 66 once,
    # empty, input 0 three times and 127 twice, input 2 once
    steps = bytes([3, 5, 1, 1, 1, 60, 1, 0, 2, 0, 3, 127, 2, 1, 2, 1])
    stream = (_record(0x30, 1, b"\x01") + _record(0x32, 2, struct.pack("<I", 1)) + _record(0x31, 3, steps)
              + _record(0x33, 4) + _record(0x03, 5))
    upload = _record(0x10, 1, struct.pack("<II", len(model), zlib.crc32(model)))
    for seq, off in enumerate(range(0, len(model), 1000), start=2):
        upload += _record(0x11, seq, struct.pack("<I", off) + model[off : off + 1000])
    upload += _record(0x12, 100) + _record(0x13, 101) + _record(0x14, 102, struct.pack("<BIH", 1, 0, 64))
    hello = _record(0x01, 1, b"\x01\x00") + _record(0x02, 2) + _record(0x03, 3) + _record(0x20, 4, bytes(8))
    return {"stream": b"\0" + stream, "upload": b"\0" + upload, "hello": b"\0" + hello}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print(__doc__, file=sys.stderr)
        return 2
    model = fuzz_model()
    with open(args[0], "wb") as f:
        f.write(model)
    if len(args) == 2:
        os.makedirs(args[1], exist_ok=True)
        for name, data in seeds(model).items():
            with open(os.path.join(args[1], f"seed-{name}"), "wb") as f:
                f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
