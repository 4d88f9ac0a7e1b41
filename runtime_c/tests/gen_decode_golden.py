# SPDX-License-Identifier: MIT
"""Golden cases for the C event decoders and filters (runtime_c/tests/test_decode.c),
from the Python/numpy references (never from the C code):

* EVT 3.0 / EVT 2.0 words: pysg.io.evt._decode_evt3 / _decode_evt2 (events, final state);
* AEDAT 3.1 polarity packets: pysg.io.aedat31.read_aedat31 with the C path disabled
  (events, or the index of the first negative timestamp from its error offset);
* AEDAT 4 event packets: pysg.io.aedat4._decode_packet (events, or the flatbuffer offset
  / invalid event index of its error);
* filters: pysg.preprocess crop, downsample, RefractoryFilter, BackgroundActivityFilter
  (the stateful ones over two batches, state carried).

OUT_DIR/decode.golden is a sequence of cases, all little-endian, each:
  int64[24] header: kind, in_bytes, out_len, status, aux, params[8], state[8], 0, 0, 0
  in_bytes of input, zero-padded to 8; then out_len records of 13 bytes (EVENT_DTYPE:
  x u2, y u2, t i8, p u1), zero-padded to 8.
kind: 1 EVT 3.0, 2 EVT 2.0, 3 AEDAT 3.1, 4 AEDAT 4 packet (uncompressed), 5 crop,
6 downsample, 7 refractory, 8 background activity. status: the exact sg_status expected.
aux: error offset / index, or -1.
params: EVT t0, split word, output capacity per call | AEDAT 3.1 ts_overflow,
include_invalid | filters: x0, y0, w, h / factor / us, r, width, height, split event.

OUT_DIR/fuzz_decode_seeds/: the decoder inputs as seeds of fuzz/fuzz_decode.c.

Usage, from the repository root (runtime_c/Makefile's `golden` rule does this):
    python -m runtime_c.tests.gen_decode_golden OUT_DIR
"""
from __future__ import annotations

import dataclasses
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

from pysg import preprocess as pp
from pysg.events import EVENT_DTYPE, EventFileError, make_events
from pysg.io import aedat4, aedat31, evt

SG_ERR_BLOB, SG_ERR_VALUE = -9, -10
MAX_IN = 1 << 16          # test_decode.c buffer sizes
MAX_OUT = 24_000          # records
K_EVT3, K_EVT2, K_AEDAT31, K_AEDAT4, K_CROP, K_DOWNSAMPLE, K_REFRACTORY, K_BAF = range(1, 9)


def case(kind: int, data: bytes, out: bytes, out_len: int, status: int = 0, aux: int = -1,
         params: tuple[int, ...] = (), state: tuple[int, ...] = ()) -> bytes:
    if len(data) > MAX_IN or out_len > MAX_OUT:
        raise ValueError(f"case of kind {kind} exceeds test_decode.c's buffers")
    head = [kind, len(data), out_len, status, aux, *params, *[0] * (8 - len(params)),
            *state, *[0] * (8 - len(state)), 0, 0, 0]
    pad = lambda b: b + b"\0" * (-len(b) % 8)  # noqa: E731
    return struct.pack("<24q", *head) + pad(data) + pad(out)


def records(ev: np.ndarray) -> bytes:
    return np.ascontiguousarray(ev, dtype=EVENT_DTYPE).tobytes()


def evt_cases(rng: np.random.Generator) -> list[bytes]:
    out = []
    for i in range(60):
        evt3 = i % 2 == 0
        n = int(rng.integers(0, 1500))
        if evt3:
            kinds = rng.choice([0x0, 0x2, 0x3, 0x4, 0x5, 0x6, 0x8, 0x7, 0xA, 0xE, 0xF, 0x1, 0x9],
                               p=[.14, .2, .1, .12, .12, .1, .1, .02, .02, .02, .02, .02, .02], size=n)
            words = ((kinds << 12) | rng.integers(0, 4096, n)).astype("<u2")
            state: object = evt._Evt3State()
        else:
            kinds = rng.choice([0x0, 0x1, 0x8, 0xA, 0xE, 0xF, 0x5], p=[.3, .3, .2, .05, .05, .05, .05], size=n)
            words = ((kinds.astype(np.uint64) << 28) | rng.integers(0, 1 << 28, n).astype(np.uint64)).astype("<u4")
            state = evt._Evt2State()
        t0 = int(rng.choice([0, 17, 123456789, 1 << 40]))
        ref = (evt._decode_evt3 if evt3 else evt._decode_evt2)(words, state, t0)
        st = dataclasses.asdict(state)
        names = ("y", "time_low", "time_high", "raw_high", "base_x", "pol") if evt3 else ("time_high", "raw_high")
        per = 12 if evt3 else 1
        capacity = int(rng.choice([per, per + 5, 100, MAX_OUT]))
        out.append(case(K_EVT3 if evt3 else K_EVT2, words.tobytes(), records(ref), ref.size,
                        params=(t0, int(rng.integers(0, n + 1)), capacity), state=tuple(st[k] for k in names)))
    return out


def aedat31_cases(rng: np.random.Generator) -> list[bytes]:
    # a source of unknown size: the cases test packet decoding (random x, y), which the C
    # decoder does alone; the reader's sensor check sits above it (pysg.io.aedat31)
    header = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: GoldenSource\r\n#!END-HEADER\r\n"
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.aedat"
        for i in range(30):
            n = int(rng.integers(0, 400))
            overflow = int(rng.integers(0, 5))
            include_invalid = i % 3 == 0
            rec = np.empty(n, dtype=[("d", "<u4"), ("ts", "<i4")])
            rec["d"] = rng.integers(0, 1 << 32, n, dtype=np.uint64)
            rec["ts"] = rng.integers(0, 1 << 31, n)
            if i % 2 and n:
                rec["ts"][int(rng.integers(0, n))] = -int(rng.integers(1, 1000))
            path.write_bytes(header + struct.pack("<hhiiiiii", 1, 1, 8, 4, overflow, n, n, n) + rec.tobytes())
            saved, evt._lib = evt._lib, None
            try:
                ref, status, aux = aedat31.read_aedat31(path, include_invalid=include_invalid), 0, -1
            except EventFileError as e:
                bad = (int(e.where.split()[-1]) - len(header) - 28) // 8
                keep = np.ones(n, bool) if include_invalid else (rec["d"] & 1).astype(bool)
                ref = make_events(rec["d"][:bad] >> 17, (rec["d"][:bad] >> 2) & 0x7FFF,
                                  (overflow << 31) | rec["ts"][:bad].astype(np.int64), (rec["d"][:bad] >> 1) & 1)
                ref, status, aux = ref[keep[:bad]], SG_ERR_VALUE, bad
            finally:
                evt._lib = saved
            out.append(case(K_AEDAT31, rec.tobytes(), records(ref), ref.size, status, aux,
                            params=(overflow, int(include_invalid))))
    return out


def aedat4_cases(rng: np.random.Generator) -> list[bytes]:
    out = []
    for i, (field, value) in enumerate((("p", 2), ("p", 255), ("x", -1), ("y", -32768), ("t", -1))):
        rec = np.zeros(5, dtype=aedat4._EVENT)
        rec["t"], rec["x"], rec["y"], rec["p"] = 10, 3, 4, 1
        rec[field][i % 3 + 1] = value
        data = aedat4._flatbuffer(b"EVTS", [("vec", rec.tobytes(), 5)], size_prefix=True)
        try:
            aedat4._decode_packet("<gen>", data, 0)
            raise AssertionError(f"{field}={value} was accepted by the reference")
        except EventFileError:
            out.append(case(K_AEDAT4, data, b"", 0, SG_ERR_VALUE, i % 3 + 1))
    for i in range(200):
        n = int(rng.integers(0, 300))
        ev = make_events(rng.integers(0, 346, n), rng.integers(0, 260, n),
                         np.sort(rng.integers(0, 10**12, n)), rng.integers(0, 2, n))
        rec = np.zeros(n, dtype=aedat4._EVENT)
        rec["t"], rec["x"], rec["y"], rec["p"] = ev["t"], ev["x"], ev["y"], ev["p"]
        data = bytearray(aedat4._flatbuffer(b"EVTS", [("vec", rec.tobytes(), n)], size_prefix=True))
        for _ in range(int(rng.integers(0, 3)) if i >= 20 else 0):
            at = int(rng.integers(0, len(data)))
            if rng.random() < 0.1:
                del data[at:]
            elif at < 40 and len(data) >= at + 4 and rng.random() < 0.5:
                struct.pack_into("<I", data, at, int(rng.integers(0, 64)))
            else:
                data[at] = int(rng.integers(256))
        try:
            ref = aedat4._decode_packet("<gen>", bytes(data), 0)
            out.append(case(K_AEDAT4, bytes(data), records(ref), ref.size))
        except EventFileError as e:
            msg = str(e)
            if "is invalid" in msg:
                out.append(case(K_AEDAT4, bytes(data), b"", 0, SG_ERR_VALUE, int(msg.split("event ")[1].split(" ")[0])))
            else:
                out.append(case(K_AEDAT4, bytes(data), b"", 0, SG_ERR_BLOB,
                                int(msg.split("uncompressed offset ")[1].split(")")[0])))
    return out


def filter_cases(rng: np.random.Generator) -> list[bytes]:
    out = []
    for i in range(40):
        n = int(rng.integers(0, 3000))
        w, h = int(rng.integers(1, 100)), int(rng.integers(1, 80))
        ev = make_events(rng.integers(0, w, n), rng.integers(0, h, n),
                         np.sort(rng.integers(0, int(rng.choice([10**3, 10**5])), n)), rng.integers(0, 2, n))
        split = int(rng.integers(0, n + 1))
        kind = K_CROP + i % 4
        if kind == K_CROP:
            x0, y0, cw, ch = (int(rng.integers(0, 60)), int(rng.integers(0, 60)),
                              int(rng.integers(1, 60)), int(rng.integers(1, 60)))
            ref, params = pp.crop(ev, x0, y0, cw, ch), (x0, y0, cw, ch)
        elif kind == K_DOWNSAMPLE:
            factor = int(rng.integers(1, 6))
            ref, params = pp.downsample(ev, factor), (factor,)
        elif kind == K_REFRACTORY:
            us = int(rng.choice([0, 1, 50, 1000]))
            f = pp.RefractoryFilter(us)
            s = f.init_state()
            a, s = f.apply(ev[:split], s)
            b, s = f.apply(ev[split:], s)
            ref, params = np.concatenate([a, b]), (us, 0, w, h, split)
        else:
            us, r = int(rng.choice([0, 10, 200, 5000])), int(rng.integers(1, 3))
            f = pp.BackgroundActivityFilter(us, r)
            s = f.init_state()
            a, s = f.apply(ev[:split], s)
            b, s = f.apply(ev[split:], s)
            ref, params = np.concatenate([a, b]), (us, r, w, h, split)
        out.append(case(kind, records(ev), records(ref), ref.size, params=params))
    return out


def main(out_dir: str) -> None:
    rng = np.random.default_rng(20261128)
    cases = evt_cases(rng) + aedat31_cases(rng) + aedat4_cases(rng) + filter_cases(rng)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    Path(out_dir, "decode.golden").write_bytes(b"".join(cases))
    # seeds for fuzz/fuzz_decode.c: its selector byte, then a case's input
    seeds = Path(out_dir, "fuzz_decode_seeds")
    seeds.mkdir(exist_ok=True)
    selector = {K_AEDAT4: 0, K_EVT3: 1, K_EVT2: 2, K_AEDAT31: 3}
    for i, c in enumerate(cases):
        kind, n = struct.unpack_from("<2q", c)
        if kind in selector and n <= 1 << 16:
            (seeds / f"{i:04d}").write_bytes(bytes([selector[kind]]) + c[192:192 + n])
    print(f"{len(cases)} decoder/filter cases in {Path(out_dir, 'decode.golden')}, fuzz seeds in {seeds}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: gen_decode_golden.py OUT_DIR")
    main(sys.argv[1])
