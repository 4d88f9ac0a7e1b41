# SPDX-License-Identifier: MIT
"""The trained anchor (model.py) as an int8 .tflite, written by pysg's one flatbuffer
writer (converters/tflite_writer.py) with the baseline's quantisation scheme
(cnn_baseline/quant.py): filters symmetric per output channel, int32 biases at
S_in * S_w, each ReLU output asymmetric (zero point -128, scale = its calibrated max /
255), the average pools keep their input's quantisation (TFLite requires it), the
dense weights symmetric per tensor, the logits over their calibrated [min, max]. The
input tensor's quantisation is the baseline's log code (data.py).

Batch norm (eval statistics) is folded into the convolutions first, so the float
reference of the int8 model is :func:`folded_logits` (equal to the torch model in eval
mode up to float rounding). Imports torch: import this module lazily.
"""
from __future__ import annotations

import numpy as np
import torch

from pysg.converters.tflite_graph import AveragePool2D, Conv2D, FullyConnected, read_tflite
from pysg.converters.tflite_writer import OpSpec, TensorSpec

from ..cnn_baseline.frames import INPUT_SCALE, INPUT_ZERO_POINT
from ..cnn_baseline.quant import dense_head, per_channel
from .model import AnchorNet

__all__ = ["FoldedNet", "fold", "folded_logits", "graph_macs", "quantize_anchor"]


class FoldedNet:
    """numpy float twin of the eval-mode net: NHWC, convs with batch norm folded in,
    OHWI filters, dense weights in TFLite's (H, W, C) flatten order."""

    def __init__(self, w: list[np.ndarray], b: list[np.ndarray], wf: np.ndarray, bf: np.ndarray):
        self.w, self.b, self.wf, self.bf = w, b, wf, bf


def fold(net: AnchorNet) -> FoldedNet:
    ws, bs = [], []
    mods = list(net.features)
    for conv, bn in ((m, mods[i + 1]) for i, m in enumerate(mods) if isinstance(m, torch.nn.Conv2d)):
        g = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
        w = conv.weight.detach().double().numpy() * g[:, None, None, None]
        ws.append(w.transpose(0, 2, 3, 1).astype(np.float32))  # OIHW -> OHWI
        bs.append((bn.bias.detach().double().numpy() - bn.running_mean.detach().double().numpy() * g)
                  .astype(np.float32))
    c = ws[-1].shape[0]
    side = int(round((net.fc.in_features // c) ** 0.5))
    wf = net.fc.weight.detach().numpy().reshape(-1, c, side, side).transpose(0, 2, 3, 1).reshape(-1, c * side * side)
    return FoldedNet(ws, bs, np.ascontiguousarray(wf, np.float32), net.fc.bias.detach().numpy().astype(np.float32))


def _conv_same(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    n, h, wd, c = x.shape
    xp = np.zeros((n, h + 2, wd + 2, c), np.float32)
    xp[:, 1:-1, 1:-1] = x
    out = np.zeros((n, h, wd, w.shape[0]), np.float32) + b
    for ky in range(3):
        for kx in range(3):
            out += xp[:, ky:ky + h, kx:kx + wd] @ w[:, ky, kx].T
    return out


def folded_logits(f: FoldedNet, x: np.ndarray, *, keep: bool = False):
    """Float logits of float NHWC inputs; with ``keep`` also each ReLU output."""
    acts, h = [], x
    for w, b in zip(f.w, f.b):
        h = np.maximum(_conv_same(h, w, b), 0)
        acts.append(h)
        n, hh, ww, c = h.shape
        h = h.reshape(n, hh // 2, 2, ww // 2, 2, c).mean((2, 4))
    logits = h.reshape(len(h), -1) @ f.wf.T + f.bf
    return (logits, acts) if keep else logits


def quantize_anchor(f: FoldedNet, calib: np.ndarray) -> bytes:
    """int8 .tflite of ``f``; ``calib`` float NHWC inputs set the activation ranges."""
    logits, acts = folded_logits(f, calib, keep=True)
    c_in, hw = calib.shape[3], calib.shape[1]
    tensors = [TensorSpec("input", (1, hw, hw, c_in), "int8", [INPUT_SCALE], [INPUT_ZERO_POINT])]
    ops: list[OpSpec] = []
    s_in, x_idx = np.float32(INPUT_SCALE), 0
    for i, (w, b, a) in enumerate(zip(f.w, f.b, acts)):
        wq, sw = per_channel(w)
        bias_scale = (np.float64(s_in) * sw.astype(np.float64)).astype(np.float32)
        bq = np.round(b / bias_scale).astype(np.int32)
        s_out = np.float32(max(float(a.max()), 1e-6) / 255.0)
        zeros = np.zeros(len(sw), np.int64)
        base = len(tensors)
        tensors += [TensorSpec(f"conv{i}/filter", wq.shape, "int8", sw, zeros, 0, wq),
                    TensorSpec(f"conv{i}/bias", bq.shape, "int32", bias_scale, zeros, 0, bq),
                    TensorSpec(f"conv{i}/relu", (1, hw, hw, w.shape[0]), "int8", [s_out], [-128]),
                    TensorSpec(f"pool{i}", (1, hw // 2, hw // 2, w.shape[0]), "int8", [s_out], [-128])]
        ops.append(OpSpec("CONV_2D", [x_idx, base, base + 1], [base + 2],
                          {"padding": "SAME", "stride_h": 1, "stride_w": 1, "activation": "RELU"}))
        ops.append(OpSpec("AVERAGE_POOL_2D", [base + 2], [base + 3],
                          {"padding": "VALID", "stride_h": 2, "stride_w": 2, "filter_h": 2, "filter_w": 2}))
        s_in, x_idx, hw = s_out, base + 3, hw // 2
    return dense_head(tensors, ops, x_idx, s_in, f.wf, f.bf, logits)


def graph_macs(model: bytes) -> dict[str, int]:
    """Multiply-accumulates per inference counted from the .tflite's graph: CONV_2D
    out_h x out_w x out_c x k_h x k_w x in_c, FULLY_CONNECTED in x out; the average
    pools' additions are listed apart (``pool_adds``), not counted as MACs."""
    g = read_tflite(model)
    macs = pool_adds = 0
    for op in g.ops:
        out = g.tensors[op.outputs[0]].shape
        if isinstance(op, Conv2D):
            o, kh, kw, i = g.tensors[op.inputs[1]].shape
            macs += int(np.prod(out[1:])) * kh * kw * i
        elif isinstance(op, FullyConnected):
            macs += int(np.prod(g.tensors[op.inputs[1]].shape))
        elif isinstance(op, AveragePool2D):
            pool_adds += int(np.prod(out[1:])) * op.filter_hw[0] * op.filter_hw[1]
        else:
            raise TypeError(f"graph_macs: unexpected operator {type(op).__name__} at {op.index}")
    return {"macs": macs, "pool_adds": pool_adds}
