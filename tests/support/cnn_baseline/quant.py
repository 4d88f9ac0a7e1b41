# SPDX-License-Identifier: MIT
"""Post-training int8 quantisation of the float CNN into a .tflite (no TensorFlow), and
the same model run by pysg's numpy int8 kernels (bit-exact with TFLite's reference).

Quantisation (TFLite's int8 scheme): filters symmetric per output channel (scale
max|w| / 127), the fully connected weights symmetric per tensor; int32 biases with scale
S_in * S_w; ReLU activations asymmetric with zero point -128 and scale max / 255 where
max is the largest activation seen on the calibration frames; the logits asymmetric over
their calibrated [min, max]. The input tensor's quantisation is fixed by frames.py.
"""
from __future__ import annotations

import numpy as np

from pysg.converters.tflite_graph import AveragePool2D, Conv2D, FullyConnected, read_tflite
from pysg.converters.tflite_writer import OpSpec, TensorSpec, write_tflite
from pysg import qkernels as qk

from .cnn import CnnParams, forward
from .frames import INPUT_SCALE, INPUT_ZERO_POINT

__all__ = ["dense_head", "per_channel", "quantize_to_tflite", "reference_logits"]


def per_channel(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    amax = np.abs(w.reshape(w.shape[0], -1)).max(1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.round(w / scale.reshape((-1,) + (1,) * (w.ndim - 1))), -127, 127).astype(np.int8)
    return q, scale


def quantize_to_tflite(p: CnnParams, calib: np.ndarray) -> bytes:
    """int8 .tflite of ``p``; ``calib`` float frames (N, 32, 32, 2) set the activation ranges."""
    logits, _, acts = forward(p, calib, keep=True)
    tensors = [TensorSpec("input", (1, 32, 32, calib.shape[3]), "int8", [INPUT_SCALE], [INPUT_ZERO_POINT])]
    ops: list[OpSpec] = []
    s_in, x_idx, hw = INPUT_SCALE, 0, 32
    for i, (w, b, a) in enumerate(zip(p.w, p.b, acts)):
        wq, sw = per_channel(w)
        bias_scale = (np.float64(s_in) * sw.astype(np.float64)).astype(np.float32)
        bq = np.round(b / bias_scale).astype(np.int32)
        s_out = float(max(a.max(), 1e-6)) / 255.0
        hw //= 2
        base = len(tensors)
        tensors += [TensorSpec(f"conv{i}/filter", wq.shape, "int8", sw, np.zeros(len(sw), np.int64), 0, wq),
                    TensorSpec(f"conv{i}/bias", bq.shape, "int32", bias_scale, np.zeros(len(sw), np.int64), 0, bq),
                    TensorSpec(f"conv{i}/relu", (1, hw, hw, w.shape[0]), "int8", [s_out], [-128])]
        ops.append(OpSpec("CONV_2D", [x_idx, base, base + 1], [base + 2],
                          {"padding": "SAME", "stride_h": 2, "stride_w": 2, "activation": "RELU"}))
        s_in, x_idx = np.float32(s_out), base + 2
    return dense_head(tensors, ops, x_idx, s_in, p.wf, p.bf, logits)


def dense_head(tensors: list[TensorSpec], ops: list[OpSpec], x_idx: int, s_in: float, wf: np.ndarray,
               bf: np.ndarray, logits: np.ndarray) -> bytes:
    """Append the fully connected logits layer (weights symmetric per tensor, logits over
    their calibrated range ``logits`` with 0 inside it) to the graph and write the .tflite."""
    wq, sw = per_channel(wf[None])  # one scale for the whole matrix
    wq = wq[0]
    bias_scale = np.float32(np.float64(s_in) * np.float64(sw[0]))
    bq = np.round(bf / bias_scale).astype(np.int32)
    lo, hi = min(float(logits.min()), 0.0), max(float(logits.max()), 0.0)
    s_out = (hi - lo) / 255.0
    zp = int(np.clip(np.round(-128 - lo / s_out), -128, 127))
    base = len(tensors)
    tensors += [TensorSpec("fc/weights", wq.shape, "int8", [sw[0]], [0], 0, wq),
                TensorSpec("fc/bias", bq.shape, "int32", [bias_scale], [0], 0, bq),
                TensorSpec("logits", (1, len(bf)), "int8", [s_out], [zp])]
    ops.append(OpSpec("FULLY_CONNECTED", [x_idx, base, base + 1], [base + 2], {"activation": "NONE"}))
    return write_tflite(tensors, ops, [0], [base + 2])


def reference_logits(model: bytes, frames: np.ndarray) -> np.ndarray:
    """int8 logits (N, n_classes) of int8 frames (N, 32, 32, C) by pysg.qkernels' numpy
    kernels (TFLite's reference arithmetic); CONV_2D, AVERAGE_POOL_2D and FULLY_CONNECTED."""
    g = read_tflite(model)
    values = {g.inputs[0]: np.asarray(frames, np.int8)}
    for op in g.ops:
        x = values[op.inputs[0]]
        if isinstance(op, AveragePool2D):
            values[op.outputs[0]] = qk.average_pool2d(x, op.params)
            continue
        w = g.tensors[op.inputs[1]].data
        bias = g.tensors[op.inputs[2]].data if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        if isinstance(op, Conv2D):
            values[op.outputs[0]] = qk.conv2d(x, w, bias, op.params)
        elif isinstance(op, FullyConnected):
            values[op.outputs[0]] = qk.fully_connected(x.reshape(x.shape[0], -1), w, bias, op.params)
        else:
            raise TypeError(f"reference_logits: unexpected operator {type(op).__name__} at {op.index}")
    return values[g.outputs[0]]
