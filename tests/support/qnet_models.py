# SPDX-License-Identifier: MIT
"""int8 TFLite networks for the tests of imported networks (and their golden data):
random small networks written with pysg.converters.tflite_writer, frame sequences with
sparse changes, TFLite Micro as the bit-exact reference, the baseline gesture CNN built
with seeded weights, and the event-count input tensor of docs/FORMAT.md 7.2 computed
independently of pysg.qnet."""
from __future__ import annotations

import functools
import math

import numpy as np

from pysg.converters.tflite_writer import OpSpec, TensorSpec, write_tflite

ACTS = ("NONE", "RELU", "RELU6")


class Tflm:
    """One TFLite Micro interpreter (the tflite-micro wheel), invoked frame by frame."""

    def __init__(self, model: bytes) -> None:
        from tflite_micro.python.tflite_micro.runtime import Interpreter

        self.it = Interpreter.from_bytes(model, arena_size=4 * len(model) + (1 << 20))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.it.set_input(x, 0)
        self.it.invoke()
        return np.array(self.it.get_output(0))


def int8_act(name: str, shape, s: float, zp: int) -> TensorSpec:
    """An int8 activation tensor with per-tensor scale ``s`` and zero point ``zp``."""
    return TensorSpec(name, tuple(shape), "int8", [np.float32(s)], [zp])


def out_scale(rng, s_in: float, s_w: np.ndarray, fan_in: int) -> float:
    """Maps the accumulator's spread onto a few dozen int8 steps (outputs rarely saturate)."""
    return float(s_in * float(s_w.mean()) * 5400 * math.sqrt(fan_in) / rng.uniform(15, 60))


def out_size(padding: str, size: int, k: int, stride: int, dil: int) -> int:
    """Output length of a TFLite SAME / VALID window of ``k`` taps, ``stride``, dilation ``dil``."""
    eff = (k - 1) * dil + 1
    return (size + stride - 1) // stride if padding == "SAME" else (size + stride - eff) // stride


def random_network(rng: np.random.Generator) -> bytes:
    """input -> conv (groups, stride or dilation) -> depthwise (multiplier) -> average pool
    -> reshape -> fully connected, random padding, activations and quantisation."""
    tensors: list[TensorSpec] = []
    ops: list[OpSpec] = []

    def add(t: TensorSpec) -> int:
        tensors.append(t)
        return len(tensors) - 1

    def layer(kind: str, x: int, filt: np.ndarray, qdim: int, out_shape, fan_in: int, opts: dict,
              gain: float = 1.0, act: str | None = None) -> int:
        s_in = float(tensors[x].scale[0])
        n_out = filt.shape[qdim]
        s_w = rng.uniform(2e-3, 2e-2, n_out if rng.random() < 0.7 else 1).astype(np.float32)
        b = int(600 * math.sqrt(fan_in))  # small against the spread: ReLUs neither all on nor all off
        bias = rng.integers(-b, b + 1, n_out).astype(np.int32)
        wi = add(TensorSpec(f"w{x}", filt.shape, "int8", s_w, np.zeros(s_w.size, np.int64), qdim, filt))
        bi = add(TensorSpec(f"b{x}", (n_out,), "int32", (np.float32(s_in) * s_w).astype(np.float32),
                            np.zeros(s_w.size, np.int64), 0, bias))
        act = str(rng.choice(ACTS)) if act is None else act
        s_out = out_scale(rng, s_in, s_w, fan_in) / gain
        if act == "RELU6":  # keep dozens of int8 steps below 6.0, or the layer saturates
            s_out = min(s_out, 6.0 / 60)
        zp = int(rng.integers(-100, 100)) if act == "NONE" else int(rng.integers(-128, -60))
        y = add(int8_act(f"a{len(tensors)}", out_shape, s_out, zp))
        ops.append(OpSpec(kind, [x, wi, bi], [y], dict(opts, activation=act)))
        return y

    groups = int(rng.integers(1, 3))
    h, w, cin = int(rng.integers(6, 11)), int(rng.integers(6, 11)), groups * int(rng.integers(1, 3))
    x = add(int8_act("input", (1, h, w, cin), rng.uniform(0.01, 0.05), int(rng.integers(-128, 100))))
    # conv: stride 2 or dilation 2 (TFLite allows both; one keeps the model small)
    k, stride = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    dil = 1 if stride == 2 else int(rng.integers(1, 3))
    pad = str(rng.choice(["SAME", "VALID"]))
    cout = groups * int(rng.integers(2, 4))
    oh, ow = (out_size(pad, s, k, stride, dil) for s in (h, w))
    filt = rng.integers(-127, 128, (cout, k, k, cin // groups), dtype=np.int8)
    x = layer("CONV_2D", x, filt, 0, (1, oh, ow, cout), k * k * cin // groups,
              dict(padding=pad, stride_h=stride, stride_w=stride, dilation_h=dil, dilation_w=dil))
    # depthwise with a multiplier
    mult, k, stride = int(rng.integers(1, 3)), int(rng.integers(2, 4)), int(rng.integers(1, 3))
    pad = str(rng.choice(["SAME", "VALID"]))
    h, w = oh, ow
    if min(out_size(pad, s, k, stride, 1) for s in (h, w)) < 1:
        pad = "SAME"
    oh, ow = (out_size(pad, s, k, stride, 1) for s in (h, w))
    filt = rng.integers(-127, 128, (1, k, k, cout * mult), dtype=np.int8)
    x = layer("DEPTHWISE_CONV_2D", x, filt, 3, (1, oh, ow, cout * mult), k * k,
              dict(padding=pad, stride_h=stride, stride_w=stride, depth_multiplier=mult), gain=3.0)
    c = cout * mult
    # average pool: same quantisation in and out (TFLite requires it)
    fh, fw = min(2, oh), min(2, ow)
    pad = str(rng.choice(["SAME", "VALID"]))
    ph, pw = out_size(pad, oh, fh, 1, 1), out_size(pad, ow, fw, 1, 1)
    t = tensors[x]
    x_pool = add(TensorSpec("pool", (1, ph, pw, c), "int8", t.scale, t.zero_point))
    ops.append(OpSpec("AVERAGE_POOL_2D", [x], [x_pool], dict(padding=pad, filter_h=fh, filter_w=fw,
                                                              activation=str(rng.choice(ACTS)))))
    n_flat = ph * pw * c
    shape_t = add(TensorSpec("shape", (2,), "int32", data=np.array([1, n_flat], np.int32)))
    x_flat = add(TensorSpec("flat", (1, n_flat), "int8", t.scale, t.zero_point))
    ops.append(OpSpec("RESHAPE", [x_pool, shape_t], [x_flat], dict(new_shape=[1, n_flat])))
    n_cls = int(rng.integers(3, 12))
    wts = rng.integers(-127, 128, (n_cls, n_flat), dtype=np.int8)
    # pooled ReLU outputs spread less than the uniform inputs _out_scale assumes
    y = layer("FULLY_CONNECTED", x_flat, wts, 0, (1, n_cls), n_flat, {}, gain=12.0,
              act="NONE")
    return write_tflite(tensors, ops, [0], [y])


def sparse_sequence(rng: np.random.Generator, shape, zp: int, n: int) -> list[np.ndarray]:
    """Frames that change in a few elements from one to the next; frame 3 repeats frame 2
    and frame 5 is redrawn entirely."""
    frames = [np.clip(np.round(rng.normal(zp, 60, shape)), -128, 127).astype(np.int8)]
    for k in range(1, n):
        f = frames[-1].copy()
        frac = 0.0 if k == 3 else 1.0 if k == 5 else float(rng.choice([0.01, 0.05, 0.2]))
        flat = f.reshape(-1)
        idx = rng.choice(flat.size, max(1, int(frac * flat.size)) if frac else 0, replace=False)
        flat[idx] = rng.integers(-128, 128, idx.size)
        frames.append(f)
    return frames


def bundled_frames(hop_ms: int, gestures: int) -> list[np.ndarray]:
    """The baseline's int8 frames (200 ms, 2 slices) every ``hop_ms`` of the first
    ``gestures`` gestures of the bundled recording's test split."""
    from pysg.datasets.gesture import GestureDataset
    from pysg.recipes import BUNDLED_SAMPLES

    from .cnn_baseline.frames import event_frames

    ds = GestureDataset(BUNDLED_SAMPLES, "test")
    out = []
    for i in range(min(gestures, len(ds))):
        s = ds[i]
        out.append(event_frames(s.events, s.duration_us, window_ms=200, hop_ms=hop_ms, slices=2))
    return out


@functools.cache
def built_cnn() -> bytes:
    """The baseline's architecture with seeded random weights, quantised by its own code
    on real frames (no training: the test needs the arithmetic, not the accuracy).
    Deterministic, so built once per process."""
    from .cnn_baseline import dequantize_frames
    from .cnn_baseline.cnn import init_params
    from .cnn_baseline.quant import quantize_to_tflite

    params = init_params((4, 8, 16), 11, np.random.default_rng(5), in_channels=4)
    params.b = [np.random.default_rng(6 + i).normal(0, 0.1, b.shape).astype(np.float32)
                for i, b in enumerate(params.b)]
    calib = np.concatenate(bundled_frames(50, 11))
    return quantize_to_tflite(params, dequantize_frames(calib))


def window_tensor(history: list[np.ndarray], slices: int, window: int, lut: np.ndarray) -> np.ndarray:
    """The int8 input tensor (H, W, S P) after the last step of `history` ((P, H, W) counts
    per step), from docs/FORMAT.md 7.2: slice k sums the counts of steps
    s - W + 1 + k L .. s - W + (k + 1) L (L = W / S, steps < 0 count 0), through the LUT."""
    s = len(history) - 1
    p_ch, h, w = history[0].shape
    ls = window // slices
    x = np.empty((h, w, slices * p_ch), np.int8)
    for k in range(slices):
        n = np.zeros((p_ch, h, w), np.int64)
        for t in range(max(0, s - window + 1 + k * ls), s - window + 1 + (k + 1) * ls):
            n += np.minimum(history[t], 65535)
        for p in range(p_ch):
            x[:, :, k * p_ch + p] = lut[np.minimum(n[p], lut.size - 1)]
    return x
