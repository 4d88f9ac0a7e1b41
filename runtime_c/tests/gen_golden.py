# SPDX-License-Identifier: MIT
"""Golden vectors for the C runtime tests, from the Python integer reference.

Writes into OUT_DIR (not committed):
  <name>.sgm     a small random model: exported from a calibrated float network
                 (pysg.converters.sgm.export_network), or random integers over each field's
                 whole valid range (int_* cases: saturation, K = 1 and 16, alpha 0 and
                 32767, shifts up to 62, a one-slot delay ring)
  <name>.case    events, dense frames and the expected per-step logits / spike counts
  <name>.rej     loader mutations with the offset pysg.sgm.load_sgm reports (-1 = loads)
  hand.sgm, hand_sat.sgm   the FORMAT.md §6 worked example (values checked by hand in C);
                 hand.rej its mutations
  cases.txt      the golden case names, one per line

.case layout (little-endian): int64[8] header (1, T, origin_us, n_events, n_raw, n_classes,
n_hidden, 0); n_events x int64[4] (t_us, x, y, p); T x n_raw uint16 frames; T x n_classes
int32 logits; T x n_hidden int64 spikes per hidden stage; T int64 synaptic operations
(pysg.intref's synops: events x fan-out, counted when an event arrives at a stage).
.rej layout: records of (uint32 position, uint8 new byte, uint8 resign, uint16 0,
int64 expected error offset or -1).

Usage, from the repository root (runtime_c/Makefile's `golden` rule does this):
    python -m runtime_c.tests.gen_golden OUT_DIR
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

from pysg.converters.sgm import export_network
from pysg.datasets.binning import bin_events
from pysg.events import make_events
from pysg.intref import run
from pysg.model import Conv2d, Dense, Flatten, Network, NetworkConfig, SumPool2d
from pysg.sgm import (BLOBS, KIND_DENSE, LAYER_ENTRY_SIZE, LAYER_FIELDS, SgmFormatError, SgmModel, SgmStage, encode,
                      load_sgm, resign)
from pysg.train.trainer import SequenceData, calibrate


def make_stream(rng: np.random.Generator, cfg: NetworkConfig, t_steps: int, rate: float):
    """Events on a moving bar plus background; returns (all events incl. out-of-sensor
    ones, origin_us). Timestamps are absolute (origin + offset)."""
    sw, sh = cfg.sensor_size
    dt = cfg.dt_us
    origin = int(rng.integers(10**6, 10**9))
    ts, xs, ys, ps = [], [], [], []
    for t in range(t_steps):
        n = int(rng.poisson(rate))
        bar = (t // 3) % sh
        for _ in range(n):
            if rng.random() < 0.6:
                y = bar
            else:
                y = int(rng.integers(0, sh))
            xs.append(int(rng.integers(0, sw)))
            ys.append(y)
            ps.append(int(rng.integers(0, 2)))
            ts.append(origin + t * dt + int(rng.integers(0, dt)))
        if rng.random() < 0.2:  # outside the sensor: the C runtime must drop it
            xs.append(sw + int(rng.integers(0, 5)))
            ys.append(int(rng.integers(0, sh)))
            ps.append(1)
            ts.append(origin + t * dt + int(rng.integers(0, dt)))
    order = np.argsort(np.array(ts), kind="stable")
    ev = np.array([(ts[i], xs[i], ys[i], ps[i]) for i in order], np.int64).reshape(-1, 4)
    return ev, origin


def build(name: str, cfg: NetworkConfig, delays: dict, seed: int, t_steps: int, rate: float, out: Path):
    rng = np.random.default_rng(seed)
    net = Network(cfg, rng=rng)
    for l, hi in delays.items():
        net.params[f"{l}.delays"] = rng.integers(0, hi + 1, net.stages[l].n_in).astype(np.int64)
    ev, origin = make_stream(rng, cfg, t_steps, rate)
    sw, sh = cfg.sensor_size
    v = ev[(ev[:, 1] < sw) & (ev[:, 2] < sh)]
    frames = bin_events(make_events(v[:, 1], v[:, 2], v[:, 0] - origin, v[:, 3]), duration_us=t_steps * cfg.dt_us,
                        dt_us=cfg.dt_us, sensor_size=cfg.sensor_size, downsample=cfg.downsample,
                        channels=cfg.input_shape[0])
    calibrate(net, SequenceData(frames[None], np.array([t_steps]), np.zeros(1, np.int64), cfg.dt_us))
    blob = export_network(net)
    return emit(name, load_sgm(blob), blob, cfg, rng, t_steps, rate, out, pre=(ev, origin))


def int_stage(rng, kind, is_output, in_shape, pool, out_c, k, kernel=1, stride=1, padding=0, max_delay=None):
    """A stage with random integers over the whole valid range of every field (not from a
    float network): stresses wrap32 / sat32, large shifts, alpha 0 and 32767, theta limits."""
    syn = (in_shape[0], in_shape[1] // pool, in_shape[2] // pool)
    if kind == KIND_DENSE:
        out = (out_c, 1, 1)
        w = rng.integers(-127, 128, (out_c, int(np.prod(syn))))
    else:
        out = (out_c, (syn[1] + 2 * padding - kernel) // stride + 1, (syn[2] + 2 * padding - kernel) // stride + 1)
        w = rng.integers(-127, 128, (out_c, syn[0], kernel, kernel))
    alpha = rng.integers(0, 32768, k)
    alpha[rng.random(k) < 0.2] = 32767
    alpha[rng.random(k) < 0.1] = 0
    vshift = rng.integers(0, 63, out_c)
    vshift[rng.random(out_c) < 0.5] = rng.integers(0, 12)
    delays = None
    if max_delay is not None:
        delays = rng.integers(0, max_delay + 1, int(np.prod(syn))).astype(np.uint8)
    bias = rng.integers(-(2**31), 2**31, out_c).astype(np.int64) // int(rng.choice([1, 2**20]))
    bias[0], vshift[0] = 2**31 - 1000, 0  # saturates at INT32_MAX as soon as x > 1000
    if out_c > 1:
        bias[1], vshift[1] = -(2**31) + 1000, 0
    theta = None
    if not is_output:
        theta = rng.integers(1, 2000, out_c)
        theta[0], theta[-1] = 1, 2**29
    return SgmStage(kind=kind, is_output=is_output, in_shape=in_shape, pool=pool, syn_shape=syn, out_shape=out,
                    kernel=kernel, stride=stride, padding=padding, max_delay=0 if max_delay is None else max_delay,
                    x_frac_bits=int(rng.integers(-32, 33)), weights=w.astype(np.int8),
                    bias=bias.astype(np.int32),
                    vweights=rng.integers(-32768, 32768, (out_c, k)).astype(np.int16),
                    vshift=vshift.astype(np.uint8), alpha=alpha.astype(np.uint16),
                    theta=None if theta is None else theta.astype(np.int32), delays=delays)


def build_int(name: str, seed: int, t_steps: int, rate: float, out: Path, conv: bool):
    """A random integer model (see int_stage) and a stream, golden through pysg.intref."""
    from types import SimpleNamespace

    rng = np.random.default_rng(seed)
    if conv:  # K = 16, big strided/padded conv, pool 3 that drops rows, delays with D = 0
        k, shape, sensor, ds = 16, (2, 11, 11), (22, 22), 2
        s0 = int_stage(rng, 2, False, shape, 1, 3, k, kernel=5, stride=3, padding=4, max_delay=0)
        s1 = int_stage(rng, 2, False, s0.out_shape, 2, 4, k, kernel=2, stride=1, padding=1, max_delay=6)
        s2 = int_stage(rng, KIND_DENSE, True, s1.out_shape, 3, 3, k)
        stages = [s0, s1, s2]
    else:  # K = 1 (no taps), 4 stages, one input channel
        k, shape, sensor, ds = 1, (1, 5, 7), (7, 5), 1
        s0 = int_stage(rng, KIND_DENSE, False, shape, 1, 9, k, max_delay=3)
        s1 = int_stage(rng, KIND_DENSE, False, s0.out_shape, 1, 7, k)
        s2 = int_stage(rng, KIND_DENSE, False, s1.out_shape, 1, 5, k, max_delay=255)
        s3 = int_stage(rng, KIND_DENSE, True, s2.out_shape, 1, 2, k)
        stages = [s0, s1, s2, s3]
    n_classes = int(np.prod(stages[-1].out_shape))
    m = SgmModel(1, 3000, k, shape, sensor, ds, [f"c{i}" for i in range(n_classes)], stages, 0, 0)
    blob = encode(m)
    m = load_sgm(blob)
    cfg = SimpleNamespace(sensor_size=sensor, dt_us=3000)
    return emit(name, m, blob, cfg, rng, t_steps, rate, out)


def emit(name, m, blob, cfg, rng, t_steps, rate, out, pre=None):
    """Run the reference on a stream (drawn here unless given as `pre`) and write the
    .sgm, .case and .rej files of one golden case."""
    ev, origin = make_stream(rng, cfg, t_steps, rate) if pre is None else pre
    sw, sh = cfg.sensor_size
    v = ev[(ev[:, 1] < sw) & (ev[:, 2] < sh)]
    frames = bin_events(make_events(v[:, 1], v[:, 2], v[:, 0] - origin, v[:, 3]), duration_us=t_steps * m.dt_us,
                        dt_us=m.dt_us, sensor_size=m.sensor_size, downsample=m.downsample, channels=m.input_shape[0])
    r = run(m, frames[:, None])
    n_raw = int(np.prod(m.input_shape))
    hidden = len(m.stages) - 1
    spikes = np.stack([s[:, 0] for s in r.spikes], axis=1) if hidden else np.zeros((t_steps, 0), np.int64)
    (out / f"{name}.sgm").write_bytes(blob)
    with open(out / f"{name}.case", "wb") as f:
        f.write(struct.pack("<8q", 1, t_steps, origin, len(ev), n_raw, m.n_classes, hidden, 0))
        f.write(ev.astype("<i8").tobytes())
        f.write(frames.reshape(t_steps, n_raw).astype("<u2").tobytes())
        f.write(r.logits[:, 0].astype("<i4").tobytes())
        f.write(spikes.astype("<i8").tobytes())
        f.write(r.synops[:, 0].astype("<i8").tobytes())
    write_rejects(name, blob, rng, out)
    return int(spikes.sum()), int(np.abs(r.logits.astype(np.int64)).max())


def write_rejects(name: str, blob: bytes, rng: np.random.Generator, out: Path, n: int = 400):
    """Random single-byte changes, re-signed (so they reach the field checks) or not."""
    recs = []
    for _ in range(n):
        pos = int(rng.integers(0, len(blob)))
        val = int(rng.integers(0, 256))
        sign = int(rng.random() < 0.9)
        b = bytearray(blob)
        b[pos] = val
        data = resign(b) if sign else bytes(b)
        try:
            load_sgm(data)
            off = -1
        except SgmFormatError as e:
            off = e.offset
        recs.append(struct.pack("<IBBHq", pos, val, sign, 0, off))
    for pos, val in blob_overruns(blob):
        data = bytearray(blob)
        data[pos] = val
        try:
            load_sgm(resign(data))
            off = -1
        except SgmFormatError as e:
            off = e.offset
        recs.append(struct.pack("<IBBHq", pos, val, 1, 0, off))
    (out / f"{name}.rej").write_bytes(b"".join(recs))


def blob_overruns(blob: bytes) -> list[tuple[int, int]]:
    """Single-byte changes that move a blob 8 bytes later (its offset's low byte + 8, still
    aligned) or make it 1-8 bytes longer: near the end of the file they run past it by a
    few bytes, the case an off-by-a-few bounds check lets through."""
    m = load_sgm(blob)
    layers_at = struct.unpack_from("<I", blob, 52)[0]
    fields = {name: off for name, off, _ in LAYER_FIELDS}
    out = []
    for li in range(len(m.stages)):
        base = layers_at + li * LAYER_ENTRY_SIZE
        for b in BLOBS:
            o_at, z_at = base + fields[f"{b}_offset"], base + fields[f"{b}_size"]
            if struct.unpack_from("<I", blob, z_at)[0] == 0:
                continue
            if blob[o_at] + 8 <= 0xFF:
                out.append((o_at, blob[o_at] + 8))
            out += [(z_at, blob[z_at] + d) for d in range(1, 9) if blob[z_at] + d <= 0xFF]
    return out


def hand_model(bias1: int = -1) -> SgmModel:
    """FORMAT.md §6: 1 pixel -> 1 hidden (w 100, theta 150, vq [1, 0]) -> 1 output
    (w 7, vq [2, 1], n 1, bias -1); K = 2, every alpha 1/2."""
    half = np.array([16384, 16384], np.uint16)
    s0 = SgmStage(kind=KIND_DENSE, is_output=False, in_shape=(1, 1, 1), pool=1, syn_shape=(1, 1, 1),
                  out_shape=(1, 1, 1), kernel=1, stride=1, padding=0, max_delay=0, x_frac_bits=0,
                  weights=np.array([[100]], np.int8), bias=np.array([0], np.int32),
                  vweights=np.array([[1, 0]], np.int16), vshift=np.array([0], np.uint8), alpha=half,
                  theta=np.array([150], np.int32))
    s1 = SgmStage(kind=KIND_DENSE, is_output=True, in_shape=(1, 1, 1), pool=1, syn_shape=(1, 1, 1),
                  out_shape=(1, 1, 1), kernel=1, stride=1, padding=0, max_delay=0, x_frac_bits=0,
                  weights=np.array([[7]], np.int8), bias=np.array([bias1], np.int32),
                  vweights=np.array([[2, 1]], np.int16), vshift=np.array([1], np.uint8), alpha=half)
    return SgmModel(1, 1000, 2, (1, 1, 1), (1, 1), 1, ["only"], [s0, s1], 0, 0)


CASES = {
    # dense with pooling: (2, 8, 8) input, pool 2, 16 hidden, 4 classes
    "dense_pool": (NetworkConfig(input_shape=(2, 8, 8), layers=[SumPool2d(2), Flatten(), Dense(16), Dense(4)],
                                 n_buckets=3, dt_us=1000, classes=list("abcd"), sensor_size=(16, 16), downsample=2),
                   {}, 1, 120, 40.0),
    # conv with pooling and delays (also on the input stage), 3 stages
    "conv_pool_delays": (NetworkConfig(input_shape=(2, 8, 8),
                                       layers=[Conv2d(4, 3, 1, 1), SumPool2d(2), Conv2d(6, 3, 1, 0), Flatten(),
                                               Dense(3)],
                                       n_buckets=3, dt_us=5000, classes=list("abc"), sensor_size=(16, 16),
                                       downsample=2),
                         {0: 2, 1: 3, 2: 2}, 2, 120, 40.0),
    # 3-stage dense, one polarity channel, K = 4, delays on stage 1
    "dense3": (NetworkConfig(input_shape=(1, 6, 6), layers=[Flatten(), Dense(12), Dense(8), Dense(5)], n_buckets=4,
                             dt_us=2000, classes=["up", "down", "left", "right", "none"], sensor_size=(12, 12),
                             downsample=2), {1: 4}, 3, 150, 20.0),
    # strided, padded conv with floor pooling that drops a row/column, K = 2
    "conv_stride": (NetworkConfig(input_shape=(2, 9, 9),
                                  layers=[Conv2d(3, 3, 2, 1), SumPool2d(2), Flatten(), Dense(2)],
                                  n_buckets=2, dt_us=10000, classes=["x", "y"], sensor_size=(9, 9), downsample=1),
                    {}, 4, 100, 30.0),
    # patch convs (stride = kernel, padding 0; the runtime's SG_FLAG_PATCH kernels): 9 x 9
    # leaves a row and a column no patch covers, 5 channels run past the unroll by 4,
    # the second conv has delays (the ring's scatter), K = 4 as the gesture model
    "conv_patch": (NetworkConfig(input_shape=(2, 9, 9),
                                 layers=[Conv2d(5, 2, 2, 0), Conv2d(4, 2, 2, 0), Flatten(), Dense(3)],
                                 n_buckets=4, dt_us=4000, classes=["p", "q", "r"], sensor_size=(9, 9),
                                 downsample=1),
                   {1: 3}, 5, 120, 40.0),
    # the gesture model's shape, smaller: a 3 x 3 patch conv into a dense stage
    "conv_patch_dense": (NetworkConfig(input_shape=(2, 12, 12),
                                       layers=[Conv2d(8, 3, 3, 0), Flatten(), Dense(6), Dense(3)],
                                       n_buckets=4, dt_us=5000, classes=["a", "b", "c"], sensor_size=(24, 24),
                                       downsample=2),
                         {}, 6, 120, 60.0),
    # the gesture model's 4 x 4 patches (their two-load row test), odd widths (unaligned
    # rows), two rows and a column no patch covers
    "conv_patch_k4": (NetworkConfig(input_shape=(2, 18, 17),
                                    layers=[Conv2d(6, 4, 4, 0), Flatten(), Dense(5), Dense(3)],
                                    n_buckets=4, dt_us=5000, classes=["a", "b", "c"], sensor_size=(34, 36),
                                    downsample=2),
                      {}, 7, 120, 80.0),
    # stage 0's gate (input_min_count): the patch conv's frame walk, with two and more
    # events per input and step on the moving bar
    "gate_patch_k4": (NetworkConfig(input_shape=(2, 18, 17),
                                    layers=[Conv2d(6, 4, 4, 0), Flatten(), Dense(5), Dense(3)],
                                    n_buckets=4, dt_us=5000, classes=["a", "b", "c"], sensor_size=(34, 36),
                                    downsample=2, input_min_count=3),
                      {}, 8, 120, 200.0),
    # the gate before pooling (a pooled window sums the counts that passed it) into a dense
    # stage: sg_feed's pending table, the frame's pairs of rows
    "gate_dense_pool": (NetworkConfig(input_shape=(2, 8, 8), layers=[SumPool2d(2), Flatten(), Dense(16), Dense(4)],
                                      n_buckets=3, dt_us=1000, classes=list("abcd"), sensor_size=(16, 16),
                                      downsample=2, input_min_count=2),
                        {}, 9, 120, 60.0),
    # the gate into stage 0's delay ring (a generic conv with padding, pooling of 3)
    "gate_conv_ring": (NetworkConfig(input_shape=(1, 10, 10),
                                     layers=[SumPool2d(3), Conv2d(3, 2, 1, 1), Flatten(), Dense(3)],
                                     n_buckets=2, dt_us=3000, classes=list("xyz"), sensor_size=(20, 20),
                                     downsample=2, input_min_count=2),
                       {0: 3}, 10, 100, 50.0),
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "build/golden")
    out.mkdir(parents=True, exist_ok=True)
    for name, (cfg, delays, seed, t_steps, rate) in CASES.items():
        n_spikes, lmax = build(name, cfg, delays, seed, t_steps, rate, out)
        print(f"{name}: {n_spikes} hidden spikes, max |logit| {lmax}")
    for name, seed, conv in (("int_dense_k1", 21, False), ("int_conv_k16", 22, True)):
        n_spikes, lmax = build_int(name, seed, 90, 25.0, out, conv)
        print(f"{name}: {n_spikes} hidden spikes, max |logit| {lmax}")
    hand = encode(hand_model())
    (out / "hand.sgm").write_bytes(hand)
    write_rejects("hand", hand, np.random.default_rng(99), out)
    (out / "hand_sat.sgm").write_bytes(encode(hand_model(2**31 - 3)))
    (out / "cases.txt").write_text("".join(f"{n}\n" for n in (*CASES, "int_dense_k1", "int_conv_k16")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
