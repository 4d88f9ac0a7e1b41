# SPDX-License-Identifier: MIT
"""An int8 TFLite network -> a version 2 ``.sgm`` file (docs/FORMAT.md sections 7-10).

The layers' int8 weights, int32 biases, zero points and TFLite Micro's requantisation
multipliers and shifts (computed by :mod:`pysg.converters.tflite_graph`) are stored unchanged;
only the weight order is the one the event-driven scatter reads (conv OHWI -> HWIO,
fully connected [o][i] -> [i][o]; depthwise as TFLite stores it). RESHAPE disappears
(NHWC flat order is unchanged); a QUANTIZE first and a DEQUANTIZE last (a float model
edge) are dropped: the file runs the int8 network between them.

The input entry says how input becomes the int8 input tensor:

* ``input="events"``: the tensor is a frame of event counts over the last ``window_steps``
  steps of ``dt_us``, split into ``slices`` time slices x ``polarities`` channels
  (channel ``k P + p``), each count mapped through a LUT onto the tensor's int8 scale:
  ``count_map="log2"`` (real value log2(1 + count)) or ``"count"`` (real value = count);
  events are pooled from a ``sensor`` of (width, height) by ``sensor_w / in_w``;
* ``input="tensor"``: the host sets the whole int8 tensor every step.
"""
from __future__ import annotations

import math
import os

import numpy as np

from pysg.sgm import (FORMAT_VERSION_QNET, LUT_MAX, QKIND_CONV, QKIND_DEPTHWISE, QKIND_FC, QKIND_INPUT, QKIND_POOL,
                      SgmQLayer, SgmQModel, encode_qmodel, inspect_sgm, qarena_bytes_for)

from .tflite_graph import (AveragePool2D, Conv2D, DepthwiseConv2D, Dequantize, FullyConnected, Quantize, Reshape,
                           TfliteGraph, TfliteGraphError, UnsupportedOpError, read_tflite)

__all__ = ["count_lut", "graph_to_qmodel", "tflite_to_sgm", "delta_network", "convert_file"]

COUNT_MAPS = ("log2", "count")


def count_lut(scale: float, zero_point: int, count_map: str = "log2") -> np.ndarray:
    """int8 code of counts 0.. until the code saturates at 127 (the last entry serves
    every larger count): ``min(127, zero_point + floor(f(n) / scale + 1/2))`` with
    f(n) = log2(1 + n) or n. Monotone, so the first 127 ends the table."""
    if count_map not in COUNT_MAPS:
        raise ValueError(f"count_map must be one of {COUNT_MAPS}, got {count_map!r}")
    if not scale > 0:
        raise ValueError(f"the input tensor's scale must be > 0, got {scale}")
    n = np.arange(LUT_MAX, dtype=np.float64)
    real = np.log2(1.0 + n) if count_map == "log2" else n
    code = np.minimum(127, zero_point + np.floor(real / scale + 0.5)).astype(np.int64)
    if code[0] < -128:
        raise ValueError(f"count 0 maps below -128 (zero point {zero_point})")
    full = np.flatnonzero(code == 127)
    return code[: int(full[0]) + 1 if full.size else LUT_MAX].astype(np.int8)


def _chain(graph: TfliteGraph) -> tuple[int, int, list]:
    """(int8 input tensor, int8 output tensor, layer ops in order) of a chain graph."""
    if graph.skipped:
        i, name = graph.skipped[0]
        raise UnsupportedOpError(name, i)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise TfliteGraphError(f"need one input and one output tensor, got {len(graph.inputs)} and "
                               f"{len(graph.outputs)}")
    ops = list(graph.ops)
    cur, out = graph.inputs[0], graph.outputs[0]
    # a float model's edges: QUANTIZE float -> int8 first, DEQUANTIZE int8 -> float last
    # (an int8 -> int8 QUANTIZE is a requantisation inside the network: not converted)
    if ops and isinstance(ops[0], Quantize) and ops[0].inputs[0] == cur and graph.tensors[cur].dtype == "float32":
        cur = ops.pop(0).outputs[0]
    first = cur
    if ops and isinstance(ops[-1], Dequantize) and ops[-1].outputs[0] == out:
        out = ops.pop().inputs[0]
    layers = []
    for op in ops:
        if isinstance(op, (Quantize, Dequantize)):
            raise UnsupportedOpError(type(op).__name__.upper(), op.index,
                                     "only at a float model's edges (first QUANTIZE, last DEQUANTIZE)")
        if op.inputs[0] != cur:
            raise TfliteGraphError(f"operator {op.index} reads tensor {op.inputs[0]}, not the previous "
                                   f"operator's output {cur}: only a chain of layers converts")
        cur = op.outputs[0]
        if not isinstance(op, Reshape):
            layers.append(op)
    if cur != out:
        raise TfliteGraphError(f"the output tensor {out} is not the end of the operator chain ({cur})")
    if not layers:
        raise TfliteGraphError("the graph has no conv, depthwise, fully connected or pool layer")
    return first, out, layers


def _nhwc(shape: tuple[int, ...], what: str) -> tuple[int, int, int]:
    if len(shape) == 4 and shape[0] == 1:
        return tuple(int(v) for v in shape[1:])
    if len(shape) == 2 and shape[0] == 1:
        return 1, 1, int(shape[1])
    raise TfliteGraphError(f"{what} shape {shape} must be (1, H, W, C) or (1, N) (batch 1)")


def _bias(graph: TfliteGraph, op) -> np.ndarray | None:
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        return graph.tensors[op.inputs[2]].data.astype("<i4").ravel()
    return None


def _requant_fields(rq) -> dict:
    return {"output_offset": int(rq.output_offset), "act_min": int(rq.act_min), "act_max": int(rq.act_max),
            "multiplier": np.asarray(rq.multiplier, "<i4"), "shift": np.asarray(rq.shift, np.int8)}


def _layer(graph: TfliteGraph, op, last: bool) -> SgmQLayer:
    t = graph.tensors
    if isinstance(op, (Conv2D, DepthwiseConv2D)):
        x_t, y_t = t[op.inputs[0]], t[op.outputs[0]]
        p = op.params
        ins, outs = _nhwc(x_t.shape, f"operator {op.index} input"), _nhwc(y_t.shape, f"operator {op.index} output")
        filt = t[op.inputs[1]].data
        kh, kw = int(filt.shape[1]), int(filt.shape[2])
        if isinstance(op, DepthwiseConv2D):
            m = p.depth_multiplier
            kind, w, fc_, dm = QKIND_DEPTHWISE, filt[0].reshape(kh, kw, ins[2], m), 0, m
        else:
            kind, w, fc_, dm = QKIND_CONV, filt.transpose(1, 2, 3, 0), int(filt.shape[3]), 1
        return SgmQLayer(kind, last, ins, outs, (kh, kw), tuple(p.stride), tuple(p.dilation), tuple(p.padding),
                         dm, fc_, int(p.input_offset), weights=np.ascontiguousarray(w, np.int8),
                         bias=_bias(graph, op), **_requant_fields(p.requant))
    if isinstance(op, FullyConnected):
        p = op.params
        if p.filter_offset != 0:
            raise TfliteGraphError(f"FULLY_CONNECTED {op.index}: weights zero point {-p.filter_offset} != 0 "
                                   f"(int8 weights must be symmetric to be stored unchanged)")
        wts = t[op.inputs[1]].data
        n_out, n_in = wts.shape
        rows = int(np.prod(t[op.inputs[0]].shape)) // n_in
        return SgmQLayer(QKIND_FC, last, (rows, 1, n_in), (rows, 1, n_out), filter_c=n_in,
                         input_offset=int(p.input_offset), weights=np.ascontiguousarray(wts.T, np.int8),
                         bias=_bias(graph, op), **_requant_fields(p.requant))
    if isinstance(op, AveragePool2D):
        p = op.params
        ins, outs = _nhwc(t[op.inputs[0]].shape, f"operator {op.index} input"), \
            _nhwc(t[op.outputs[0]].shape, f"operator {op.index} output")
        return SgmQLayer(QKIND_POOL, last, ins, outs, tuple(p.filter_hw), tuple(p.stride), (1, 1),
                         tuple(p.padding), act_min=int(p.act_min), act_max=int(p.act_max))
    raise UnsupportedOpError(type(op).__name__.upper(), op.index)


def graph_to_qmodel(graph: TfliteGraph, *, dt_us: int = 10_000, input: str = "events", window_steps: int = 20,
                    slices: int | None = None, polarities: int | None = None, count_map: str = "log2",
                    sensor: tuple[int, int] | None = None, labels: list[str] | None = None) -> SgmQModel:
    """The version 2 model of a read TFLite graph (see the module docstring)."""
    x_index, _, ops = _chain(graph)
    x_t = graph.tensors[x_index]
    if x_t.dtype != "int8" or x_t.quantization is None:
        raise TfliteGraphError(f"input tensor {x_t.index} must be quantised int8, got {x_t.dtype}")
    in_shape = _nhwc(x_t.shape, "input tensor")
    zp = int(x_t.quantization.zero_point[0])
    layers: list[SgmQLayer] = []
    prev = in_shape
    for k, op in enumerate(ops):
        ly = _layer(graph, op, k == len(ops) - 1)
        if ly.n_in != int(np.prod(prev)):
            raise TfliteGraphError(f"operator {op.index}: input of {ly.n_in} elements after {int(np.prod(prev))}")
        layers.append(ly)
        prev = ly.out_shape
    h, w, c = in_shape
    if dt_us < 1:
        raise ValueError(f"dt must be >= 1 µs, got {dt_us}")
    if input == "tensor":
        entry = SgmQLayer(QKIND_INPUT, False, in_shape, in_shape, (0, 1), output_offset=zp)
        sensor_wh, ds = (w, h), 1
    elif input == "events":
        p = polarities if polarities is not None else (2 if c % 2 == 0 else 1)
        if p not in (1, 2) or c % p:
            raise ValueError(f"polarity channels must be 1 or 2 and divide the input's {c} channels, got {p}")
        s = slices if slices is not None else c // p
        if s * p != c:
            raise ValueError(f"{s} slices x {p} polarity channels != the input's {c} channels")
        if window_steps < 1 or window_steps % s:
            raise ValueError(f"the window ({window_steps} steps) must be a positive multiple of the {s} slices")
        sensor_wh = tuple(sensor) if sensor is not None else (w, h)
        if sensor_wh[0] % w or sensor_wh[1] % h or sensor_wh[0] // w != sensor_wh[1] // h:
            raise ValueError(f"sensor {sensor_wh[0]}x{sensor_wh[1]} must be the input {w}x{h} times one factor")
        ds = sensor_wh[0] // w
        lut = count_lut(float(x_t.quantization.scale[0]), zp, count_map)
        entry = SgmQLayer(QKIND_INPUT, False, in_shape, in_shape, (s, window_steps), depth_multiplier=p,
                          output_offset=int(lut[0]), weights=lut)
    else:
        raise ValueError(f"input must be 'events' or 'tensor', got {input!r}")
    n_cls = layers[-1].n_out
    labels = list(labels) if labels is not None else [str(i) for i in range(n_cls)]
    if len(labels) != n_cls:
        raise ValueError(f"{len(labels)} labels for {n_cls} outputs")
    return SgmQModel(FORMAT_VERSION_QNET, int(dt_us), in_shape, (int(sensor_wh[0]), int(sensor_wh[1])), int(ds),
                     labels, entry, layers, qarena_bytes_for(entry, layers), 0)


def tflite_to_sgm(model: bytes | bytearray | str | os.PathLike | TfliteGraph, *, dt_ms: float = 10.0,
                  **options) -> bytes:
    """Version 2 .sgm bytes of an int8 .tflite (bytes, path or read graph); ``options``
    as :func:`graph_to_qmodel` (``window_steps``, ``input``, ``slices``, ...)."""
    graph = model if isinstance(model, TfliteGraph) else read_tflite(model)
    dt_us = int(round(dt_ms * 1000))
    if not math.isfinite(dt_ms) or dt_us < 1:
        raise ValueError(f"--dt-ms must give a step of at least 1 µs, got {dt_ms}")
    return encode_qmodel(graph_to_qmodel(graph, dt_us=dt_us, **options))


def delta_network(model: bytes | bytearray | str | os.PathLike | TfliteGraph):
    """A TFLite model (.tflite bytes or path, or a read graph) as a
    :class:`pysg.qnet.DeltaNetwork` with tensor input (converted here; pysg.qnet takes
    only .sgm models)."""
    from pysg.qnet import DeltaNetwork

    graph = model if isinstance(model, TfliteGraph) else read_tflite(model)
    return DeltaNetwork(graph_to_qmodel(graph, input="tensor"))


def convert_file(src, dst, **options) -> dict:
    """``pysg convert``: write the .sgm and return :func:`pysg.sgm.inspect_sgm`'s summary."""
    data = tflite_to_sgm(str(src), **options)
    with open(dst, "wb") as f:
        f.write(data)
    return inspect_sgm(data)
