# SPDX-License-Identifier: MIT
"""int8 TFLite layer cases for the kernel tests and their C golden data: random
one-operator models (conv, depthwise, fully connected, average pool) written with
pysg.converters.tflite_writer with inputs spread like real activations, TFLite Micro as
the bit-exact reference, and the real intermediate activations of the pymicro-wakeword
models on a speech-like signal."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pysg.converters.tflite_graph import Conv2D, DepthwiseConv2D, FullyConnected
from pysg.converters.tflite_writer import OpSpec, TensorSpec, write_tflite


def _tflm():
    from tflite_micro.python.tflite_micro import runtime

    return runtime


def run_tflm(model: bytes, inputs: list[np.ndarray]) -> np.ndarray:
    """TFLite Micro's first output for ``inputs`` (one invoke)."""
    it = _tflm().Interpreter.from_bytes(model, arena_size=4 * len(model) + (1 << 20))
    for i, x in enumerate(inputs):
        it.set_input(x, i)
    it.invoke()
    return it.get_output(0)


def run_tflm_each(model: bytes, xs: np.ndarray) -> np.ndarray:
    """TFLite Micro's first output for each sample of ``xs`` (axis 0) as the model's one
    input of batch 1, through one interpreter."""
    it = _tflm().Interpreter.from_bytes(model, arena_size=4 * len(model) + (1 << 20))
    out = []
    for k in range(len(xs)):
        it.set_input(xs[k:k + 1], 0)
        it.invoke()
        out.append(it.get_output(0)[0])
    return np.array(out)


def scales(rng, n, lo=1e-3, hi=3e-2) -> np.ndarray:
    """``n`` random float32 quantisation scales in [lo, hi)."""
    return rng.uniform(lo, hi, n).astype(np.float32)


def out_scale(rng, s_in, s_w, fan_in: int) -> np.float32:
    """An output scale that maps the accumulator's spread (about 5400 * sqrt(fan_in) for
    uniform int8 data) onto a few dozen int8 steps, so outputs rarely saturate."""
    return np.float32(s_in * float(s_w.mean()) * 5400 * math.sqrt(fan_in) / rng.uniform(15, 80))


def random_bias(rng, fan_in: int, n: int) -> np.ndarray:
    """int32 biases small against the accumulator spread of ``fan_in`` taps."""
    b = int(2700 * math.sqrt(fan_in))
    return rng.integers(-b, b + 1, n).astype(np.int32)


def activations(rng, shape, zero_point: int) -> np.ndarray:
    """int8 inputs spread around the zero point (as real activations are), both tails
    clipped so the extremes -128 and 127 occur too."""
    return np.clip(np.round(rng.normal(zero_point, 60, shape)), -128, 127).astype(np.int8)


def conv_case(rng, *, depthwise: bool, padding: str, stride: int, dilation: int, act: str,
               per_channel: bool = True, mult: int = 1, groups: int = 1):
    """A random (depthwise) conv model: (model bytes, input, filter, bias)."""
    n = int(rng.integers(1, 3))
    h, w = (int(v) for v in rng.integers(4, 10, 2))
    kh, kw = (int(v) for v in rng.integers(1, 4, 2))
    eff_h, eff_w = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
    h, w = max(h, eff_h), max(w, eff_w)
    if depthwise:
        cin = int(rng.integers(1, 6))
        cout = cin * mult
        filt = rng.integers(-127, 128, (1, kh, kw, cout), dtype=np.int8)
        qdim = 3
    else:
        cig = int(rng.integers(1, 5))
        cin, cout = cig * groups, groups * int(rng.integers(1, 4))
        filt = rng.integers(-127, 128, (cout, kh, kw, cig), dtype=np.int8)
        qdim = 0
    oh = (h + stride - 1) // stride if padding == "SAME" else (h + stride - eff_h) // stride
    ow = (w + stride - 1) // stride if padding == "SAME" else (w + stride - eff_w) // stride
    s_in = np.float32(rng.uniform(0.005, 0.1))
    s_w = scales(rng, cout if per_channel else 1)
    fan_in = kh * kw * (1 if depthwise else filt.shape[3])
    s_out = out_scale(rng, s_in, s_w, fan_in)
    zp_in, zp_out = (int(v) for v in rng.integers(-128, 128, 2))
    bias_scale = (s_in * s_w).astype(np.float32)
    bias = random_bias(rng, fan_in, cout)
    tensors = [TensorSpec("x", (n, h, w, cin), "int8", [s_in], [zp_in]),
               TensorSpec("w", filt.shape, "int8", s_w, np.zeros(s_w.size, np.int64), qdim, filt),
               TensorSpec("b", (cout,), "int32", bias_scale, np.zeros(s_w.size, np.int64), 0, bias),
               TensorSpec("y", (n, oh, ow, cout), "int8", [s_out], [zp_out])]
    opts = dict(padding=padding, stride_h=stride, stride_w=stride, dilation_h=dilation,
                dilation_w=dilation, activation=act)
    if depthwise:
        opts["depth_multiplier"] = mult
    op = OpSpec("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [0, 1, 2], [3], opts)
    return write_tflite(tensors, [op], [0], [3]), activations(rng, (n, h, w, cin), zp_in), filt, bias


def fc_case(rng, *, per_channel: bool, act: str):
    """A random fully connected model: (model bytes, input, weights, bias)."""
    b, n_in, n_out = int(rng.integers(1, 4)), int(rng.integers(1, 70)), int(rng.integers(1, 20))
    wts = rng.integers(-127, 128, (n_out, n_in), dtype=np.int8)
    s_in = np.float32(rng.uniform(0.005, 0.1))
    s_w = scales(rng, n_out if per_channel else 1)
    s_out = out_scale(rng, s_in, s_w, n_in)
    zp_in, zp_out = (int(v) for v in rng.integers(-128, 128, 2))
    bias = random_bias(rng, n_in, n_out)
    tensors = [TensorSpec("x", (b, n_in), "int8", [s_in], [zp_in]),
               TensorSpec("w", wts.shape, "int8", s_w, np.zeros(s_w.size, np.int64), 0, wts),
               TensorSpec("b", (n_out,), "int32", (s_in * s_w).astype(np.float32),
                          np.zeros(s_w.size, np.int64), 0, bias),
               TensorSpec("y", (b, n_out), "int8", [s_out], [zp_out])]
    op = OpSpec("FULLY_CONNECTED", [0, 1, 2], [3], dict(activation=act))
    return write_tflite(tensors, [op], [0], [3]), activations(rng, (b, n_in), zp_in), wts, bias


def pool_case(rng, *, padding: str, act: str):
    """A random average pool model: (model bytes, input)."""
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 6))
    h, w = (int(v) for v in rng.integers(3, 10, 2))
    fh, fw = int(rng.integers(1, min(h, 4) + 1)), int(rng.integers(1, min(w, 4) + 1))
    sh, sw = (int(v) for v in rng.integers(1, 3, 2))
    oh = (h + sh - 1) // sh if padding == "SAME" else (h + sh - fh) // sh
    ow = (w + sw - 1) // sw if padding == "SAME" else (w + sw - fw) // sw
    s, zp = np.float32(rng.uniform(0.005, 0.1)), int(rng.integers(-128, 128))
    tensors = [TensorSpec("x", (n, h, w, c), "int8", [s], [zp]),
               TensorSpec("y", (n, oh, ow, c), "int8", [s], [zp])]
    op = OpSpec("AVERAGE_POOL_2D", [0], [1], dict(padding=padding, stride_h=sh, stride_w=sw,
                                                   filter_h=fh, filter_w=fw, activation=act))
    x = rng.integers(-128, 128, (n, h, w, c), dtype=np.int8)
    return write_tflite(tensors, [op], [0], [1]), x


CONV_CASES = {
    "conv_valid": dict(depthwise=False, padding="VALID", stride=1, dilation=1, act="NONE"),
    "conv_same_stride2_relu": dict(depthwise=False, padding="SAME", stride=2, dilation=1, act="RELU"),
    "conv_same_dilation2_relu6": dict(depthwise=False, padding="SAME", stride=1, dilation=2, act="RELU6"),
    "conv_valid_stride3_dil2": dict(depthwise=False, padding="VALID", stride=3, dilation=2, act="RELU_N1_TO_1"),
    "conv_per_tensor_filter": dict(depthwise=False, padding="SAME", stride=1, dilation=1, act="NONE",
                                   per_channel=False),
    "conv_groups2": dict(depthwise=False, padding="SAME", stride=1, dilation=1, act="RELU", groups=2),
    "dw_valid_m1": dict(depthwise=True, padding="VALID", stride=1, dilation=1, act="NONE"),
    "dw_same_m2_stride2_relu6": dict(depthwise=True, padding="SAME", stride=2, dilation=1, act="RELU6", mult=2),
    "dw_same_m3_dil2_relu": dict(depthwise=True, padding="SAME", stride=1, dilation=2, act="RELU", mult=3),
}


def speech_like_pcm(rng, seconds: float = 2.0, sr: int = 16000) -> bytes:
    """16 kHz int16 mono: a voiced, vowel-like signal (24 harmonics of a gliding pitch,
    syllable-rate envelope) plus noise. No real recording ships with the test deps."""
    t = np.arange(int(sr * seconds)) / sr
    phase = 2 * np.pi * np.cumsum(120 + 40 * np.sin(2 * np.pi * 0.7 * t)) / sr
    sig = sum(np.sin(k * phase) / k for k in range(1, 25)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)) ** 2
    sig = sig / np.abs(sig).max() * 12000 + rng.normal(0, 300, t.size)
    return np.clip(sig, -32768, 32767).astype(np.int16).tobytes()


def real_activations(path: Path, graph, rng) -> dict[int, list[np.ndarray]]:
    """Intermediate tensors of the whole model run by TFLite Micro on the output of the
    real feature front end (pymicro-features, as pymicro-wakeword feeds it), keyed by
    tensor index; only the inputs of the layers under test are kept. The model is
    streaming (ring buffers in resource variables), so states evolve across frames."""
    from pymicro_wakeword import MicroWakeWordFeatures

    tflm = _tflm()
    it = tflm.Interpreter.from_file(str(path), intrepreter_config=tflm.InterpreterConfig.kPreserveAllTensors)
    wanted = {op.inputs[0] for op in graph.ops if isinstance(op, (Conv2D, DepthwiseConv2D, FullyConnected))}
    details = it.get_input_details(0)
    shape = tuple(int(v) for v in details["shape"])
    scale = float(details["quantization_parameters"]["scales"][0])
    zp = int(details["quantization_parameters"]["zero_points"][0])
    feats = np.concatenate(list(MicroWakeWordFeatures().process_streaming(speech_like_pcm(rng))), axis=1)
    got: dict[int, list[np.ndarray]] = {i: [] for i in wanted}
    stride = shape[1]
    n_windows = feats.shape[1] // stride
    for k in range(n_windows):  # pymicro-wakeword's own quantisation of the features
        q = np.clip(np.round(feats[:, k * stride:(k + 1) * stride] / scale + zp), -128, 127)
        it.set_input(q.reshape(shape).astype(np.int8), 0)
        it.invoke()
        if k >= n_windows // 2 and k % 4 == 0:  # ring buffers filled; a sample of frames
            for i in wanted:
                got[i].append(np.array(it.GetTensor(i, 0)["tensor_data"]))
    return got


def layer_inputs(op, graph, real: list[np.ndarray], rng, n_random: int) -> list[np.ndarray]:
    """``n_random`` uniform int8 inputs of the op's input shape, then the real ones."""
    shape = graph.tensors[op.inputs[0]].shape
    xs = [rng.integers(-128, 128, shape, dtype=np.int8) for _ in range(n_random)]
    return xs + [r.reshape(shape).astype(np.int8) for r in real]
