# SPDX-License-Identifier: MIT
"""Read an int8 TFLite model (``.tflite``) into plain dataclasses, with the requantisation
parameters of every int8 layer computed exactly as TFLite (Micro)'s Prepare computes them.

Reads the flatbuffer with the ``tflite`` package (no TensorFlow). Supported operators:
CONV_2D (per-channel or per-tensor filters, groups), DEPTHWISE_CONV_2D, FULLY_CONNECTED
(per-tensor or per-channel), AVERAGE_POOL_2D, RESHAPE, QUANTIZE, DEQUANTIZE; options
stride, padding SAME/VALID, dilation, depth multiplier, fused activation
NONE/RELU/RELU_N1_TO_1/RELU6. Any other operator raises :class:`UnsupportedOpError`
naming it and its index (or, with ``skip_unsupported=True``, is listed in
``TfliteGraph.skipped``, so the supported layers of a bigger model can still be taken
one by one).

TFLite's arithmetic, reproduced here (kernel_util.cc, quantization_util.cc):

* ``quantize_multiplier(m)``: ``q, e = frexp(m)``; ``q = round(q * 2^31)`` (half away from
  zero); ``q == 2^31`` -> ``q /= 2, e += 1``; ``e < -31`` -> ``q = e = 0``.
* every layer: ``m[c] = double(S_in) * double(S_w[c]) / double(S_out)`` (a per-tensor
  filter scale is broadcast over the channels). For a per-tensor FULLY_CONNECTED,
  TensorFlow's kernel_util.cc (GetQuantizedConvolutionMultipler) multiplies S_in * S_w in
  float32 instead; the tflite-micro build we match (0.dev20261023) uses the double
  product there too, which tests/test_tflite_kernels.py shows on accumulators where the
  two choices requantise differently.
* activation clamp: ``q(f) = zp + round(float32(f) / float32(S_out))``; RELU
  ``[max(-128, q(0)), 127]``, RELU6 ``[max(-128, q(0)), min(127, q(6))]``, RELU_N1_TO_1
  ``[max(-128, q(-1)), min(127, q(1))]``.
* padding: ``out = ceil(in / stride)`` (SAME) or ``(in + stride - eff) // stride``
  (VALID), ``eff = (k - 1) * dilation + 1``, pad before = ``max(0, (out - 1) * stride +
  eff - in) // 2``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from pysg import qkernels as qk

__all__ = [
    "AveragePool2D", "Conv2D", "DepthwiseConv2D", "Dequantize", "FullyConnected", "Op", "Quantization",
    "Quantize", "Reshape", "Tensor", "TfliteGraph", "TfliteGraphError", "UnsupportedOpError",
    "activation_range", "compute_padding", "quantize_multiplier", "read_tflite",
]

ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
PADDINGS = {0: "SAME", 1: "VALID"}
_INT32_LIMIT = 1 << 31


class TfliteGraphError(ValueError):
    """The file is not a model this reader can take (bad structure, types, quantisation)."""


class UnsupportedOpError(TfliteGraphError):
    """An operator outside the supported set; ``op_name`` and ``op_index`` say which."""

    def __init__(self, op_name: str, op_index: int, detail: str = "") -> None:
        self.op_name, self.op_index = op_name, op_index
        extra = f": {detail}" if detail else ""
        super().__init__(f"unsupported operator {op_name} at index {op_index}{extra}")


@dataclass(frozen=True)
class Quantization:
    """Affine quantisation: real = scale * (q - zero_point); per channel along
    ``quantized_dimension`` when ``scale`` has more than one entry."""
    scale: np.ndarray        # float32
    zero_point: np.ndarray   # int64
    quantized_dimension: int = 0

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str                       # numpy dtype name ("int8", "int32", "float32", ...)
    quantization: Quantization | None
    data: np.ndarray | None = None   # constant tensors only, with `shape` and `dtype`
    is_variable: bool = False


@dataclass
class Op:
    index: int                 # position in the subgraph's operator list
    inputs: tuple[int, ...]    # tensor indices (-1: optional input absent)
    outputs: tuple[int, ...]


@dataclass
class Conv2D(Op):
    padding: str = "VALID"
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    activation: str = "NONE"
    params: qk.Conv2DParams | None = None


@dataclass
class DepthwiseConv2D(Op):
    padding: str = "VALID"
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    depth_multiplier: int = 1
    activation: str = "NONE"
    params: qk.Conv2DParams | None = None


@dataclass
class FullyConnected(Op):
    activation: str = "NONE"
    keep_num_dims: bool = False
    params: qk.FullyConnectedParams | None = None


@dataclass
class AveragePool2D(Op):
    padding: str = "VALID"
    stride: tuple[int, int] = (1, 1)
    filter_hw: tuple[int, int] = (1, 1)
    activation: str = "NONE"
    params: qk.AveragePool2DParams | None = None


@dataclass
class Reshape(Op):
    new_shape: tuple[int, ...] = ()


@dataclass
class Quantize(Op):
    pass


@dataclass
class Dequantize(Op):
    pass


@dataclass
class TfliteGraph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (op index, op name)

    def op(self, index: int) -> Op:
        """The supported operator at subgraph position ``index``."""
        for o in self.ops:
            if o.index == index:
                return o
        raise KeyError(f"no supported operator at index {index}")


# ---------------------------------------------------------------- TFLite arithmetic

def _round_half_away(v: float) -> int:
    a = abs(v)
    r = math.floor(a)
    if a - r >= 0.5:
        r += 1
    return int(r) if v >= 0 else -int(r)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: (Q31 multiplier, shift) with real ~ m * 2^(shift - 31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * float(1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def _quantize_float(f: float, scale: float, zero_point: int) -> int:
    return zero_point + _round_half_away(float(np.float32(f) / np.float32(scale)))


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLite's CalculateActivationRangeQuantized for an int8 output."""
    lo, hi = -128, 127
    if activation in ("RELU", "RELU6"):
        lo = max(lo, _quantize_float(0.0, scale, zero_point))
    if activation == "RELU6":
        hi = min(hi, _quantize_float(6.0, scale, zero_point))
    if activation == "RELU_N1_TO_1":
        lo = max(lo, _quantize_float(-1.0, scale, zero_point))
        hi = min(hi, _quantize_float(1.0, scale, zero_point))
    if activation not in ACTIVATIONS.values():
        raise TfliteGraphError(f"unsupported fused activation {activation}")
    return lo, hi


def compute_padding(padding: str, in_size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """(output size, padding before) as TFLite's ComputePaddingHeightWidth."""
    eff = (k - 1) * dilation + 1
    if padding == "SAME":
        out = (in_size + stride - 1) // stride
    elif padding == "VALID":
        out = (in_size + stride - eff) // stride
    else:
        raise TfliteGraphError(f"unknown padding {padding}")
    return out, max(0, (out - 1) * stride + eff - in_size) // 2


# ---------------------------------------------------------------- reading

def _load_tflite():
    try:
        import tflite
    except ImportError as e:  # a core dependency: only a broken install lacks it
        raise ImportError("reading .tflite files needs the `tflite` package, a dependency of pysg: reinstall pysg (pip install .)") from e
    return tflite


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _read_tensor(model, raw: bytes, t, index: int, type_names: dict[int, str]) -> Tensor:
    shape = tuple(int(v) for v in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    tname = type_names.get(t.Type(), str(t.Type()))
    dtype = {"FLOAT32": "float32", "INT32": "int32", "UINT8": "uint8", "INT64": "int64", "INT16": "int16",
             "INT8": "int8", "BOOL": "bool", "FLOAT16": "float16"}.get(tname, tname.lower())
    q = t.Quantization()
    quant = None
    if q is not None and q.ScaleLength() > 0:
        zp = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(q.ScaleLength(), np.int64)
        quant = Quantization(np.asarray(q.ScaleAsNumpy(), np.float32), np.asarray(zp, np.int64),
                             int(q.QuantizedDimension()))
    data = None
    buf = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
    if buf is not None:
        blob = None
        if buf.Offset() > 1:  # large models keep buffers after the flatbuffer
            blob = raw[buf.Offset():buf.Offset() + buf.Size()]
        elif buf.DataLength() > 0:
            blob = buf.DataAsNumpy().tobytes()
        if blob is not None:
            try:
                arr = np.frombuffer(blob, dtype=np.dtype(dtype).newbyteorder("<"))
                data = arr.astype(np.dtype(dtype)).reshape(shape)
            except (TypeError, ValueError) as e:
                raise TfliteGraphError(f"tensor {index} ({t.Name().decode(errors='replace')}): "
                                       f"{len(blob)} bytes do not make a {dtype} {shape}") from e
    return Tensor(index, t.Name().decode(errors="replace") if t.Name() else "", shape, dtype, quant, data,
                  bool(t.IsVariable()))


def read_tflite(source: bytes | bytearray | str | os.PathLike, *, subgraph: int = 0,
                skip_unsupported: bool = False) -> TfliteGraph:
    """Read subgraph ``subgraph`` of a .tflite model (bytes or a path) into a
    :class:`TfliteGraph`, with the int8 kernel parameters of every supported layer.

    Raises UnsupportedOpError at the first operator outside the supported set (unless
    ``skip_unsupported``), TfliteGraphError for a malformed or non-int8 layer."""
    tfl = _load_tflite()
    if isinstance(source, (bytes, bytearray)):
        raw = bytes(source)
    else:
        with open(source, "rb") as f:
            raw = f.read()
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise TfliteGraphError("not a TFLite flatbuffer (no TFL3 identifier)")
    model = tfl.Model.GetRootAs(raw, 0)
    if not 0 <= subgraph < model.SubgraphsLength():
        raise TfliteGraphError(f"subgraph {subgraph} out of range (model has {model.SubgraphsLength()})")
    g = model.Subgraphs(subgraph)
    type_names = _enum_names(tfl.TensorType)
    op_names = _enum_names(tfl.BuiltinOperator)
    tensors = [_read_tensor(model, raw, g.Tensors(i), i, type_names) for i in range(g.TensorsLength())]
    graph = TfliteGraph(tensors, [], tuple(int(v) for v in g.InputsAsNumpy()) if g.InputsLength() else (),
                        tuple(int(v) for v in g.OutputsAsNumpy()) if g.OutputsLength() else ())
    for i in range(g.OperatorsLength()):
        o = g.Operators(i)
        oc = model.OperatorCodes(o.OpcodeIndex())
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        name = op_names.get(code, f"BUILTIN_{code}")
        if name == "CUSTOM":
            name = f"CUSTOM({oc.CustomCode().decode(errors='replace')})"
        ins = tuple(int(v) for v in o.InputsAsNumpy()) if o.InputsLength() else ()
        outs = tuple(int(v) for v in o.OutputsAsNumpy()) if o.OutputsLength() else ()
        reader = _READERS.get(name)
        if reader is None:
            if not skip_unsupported:
                raise UnsupportedOpError(name, i)
            graph.skipped.append((i, name))
            continue
        graph.ops.append(reader(tfl, o, i, ins, outs, tensors))
    return graph


def _options(tfl, o, cls_name: str):
    table = o.BuiltinOptions()
    opts = getattr(tfl, cls_name)()
    if table is None:
        return None
    opts.Init(table.Bytes, table.Pos)
    return opts


def _activation(code: int, op_name: str, index: int) -> str:
    if code not in ACTIVATIONS:
        raise UnsupportedOpError(op_name, index, f"fused activation code {code}")
    return ACTIVATIONS[code]


def _padding(code: int, op_name: str, index: int) -> str:
    if code not in PADDINGS:
        raise UnsupportedOpError(op_name, index, f"padding code {code}")
    return PADDINGS[code]


def _int8_tensor(t: Tensor, what: str, op: str, index: int, const: bool | None = None) -> Quantization:
    if t.dtype != "int8" or t.quantization is None:
        raise TfliteGraphError(f"{op} {index}: {what} tensor {t.index} must be quantised int8, got {t.dtype}")
    if const is True and t.data is None:
        raise TfliteGraphError(f"{op} {index}: {what} tensor {t.index} must be constant")
    if what in ("input", "output") and t.quantization.per_channel:
        raise TfliteGraphError(f"{op} {index}: {what} tensor {t.index} must be quantised per tensor")
    return t.quantization


def _bias_check(tensors: list[Tensor], ins: tuple[int, ...], n: int, op: str, index: int) -> np.ndarray | None:
    if len(ins) < 3 or ins[2] < 0:
        return None
    b = tensors[ins[2]]
    if b.dtype != "int32" or b.data is None or b.data.size != n:
        raise TfliteGraphError(f"{op} {index}: bias tensor {b.index} must be a constant int32[{n}], "
                               f"got {b.dtype}{list(b.shape)}")
    return b.data.reshape(n)


def _requant(in_q: Quantization, w_q: Quantization, out_q: Quantization, channels: int,
             activation: str, op: str, index: int) -> qk.Requant:
    """Per-channel multipliers and shifts (one pair when the filter is per tensor)."""
    s_in, s_out = np.float32(in_q.scale[0]), np.float32(out_q.scale[0])
    if w_q.per_channel and w_q.scale.size != channels:
        raise TfliteGraphError(f"{op} {index}: {w_q.scale.size} filter scales for {channels} output channels")
    reals = [float(s_in) * float(np.float32(s)) / float(s_out) for s in w_q.scale]
    pairs = [quantize_multiplier(r) for r in reals]
    bad = [(m, s) for m, s in pairs if not -31 <= s <= 30]
    if bad:
        raise TfliteGraphError(f"{op} {index}: requantisation shift {bad[0][1]} out of [-31, 30]")
    zp_out = int(out_q.zero_point[0])
    lo, hi = activation_range(activation, float(s_out), zp_out)
    return qk.Requant(np.array([m for m, _ in pairs], np.int32), np.array([s for _, s in pairs], np.int32),
                      zp_out, lo, hi)


def _check_accumulator(w: np.ndarray, zp_w: int, in_offset: int, bias: np.ndarray | None, op: str,
                       index: int) -> None:
    """The int32 accumulator cannot overflow for any int8 input (TFLite assumes it too)."""
    per_out = np.abs(w.astype(np.int64) - zp_w).sum(axis=1)
    bound = per_out * max(abs(-128 + in_offset), abs(127 + in_offset))
    if bias is not None:
        bound = bound + np.abs(bias.astype(np.int64))
    if bound.max(initial=0) >= _INT32_LIMIT:
        raise TfliteGraphError(f"{op} {index}: int32 accumulator could overflow (bound {bound.max()})")


def _geometry(op: str, index: int, in_t: Tensor, out_t: Tensor, kh: int, kw: int, padding: str,
              stride: tuple[int, int], dilation: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    if len(in_t.shape) != 4 or len(out_t.shape) != 4:
        raise TfliteGraphError(f"{op} {index}: input and output must be 4-D NHWC, got {in_t.shape}, {out_t.shape}")
    if min(stride) < 1 or min(dilation) < 1:
        raise TfliteGraphError(f"{op} {index}: stride {stride} and dilation {dilation} must be >= 1")
    oh, ph = compute_padding(padding, in_t.shape[1], kh, stride[0], dilation[0])
    ow, pw = compute_padding(padding, in_t.shape[2], kw, stride[1], dilation[1])
    if (oh, ow) != tuple(out_t.shape[1:3]) or in_t.shape[0] != out_t.shape[0]:
        raise TfliteGraphError(f"{op} {index}: output shape {out_t.shape} does not match {padding} padding "
                               f"of {in_t.shape} (expected {oh}x{ow})")
    return (oh, ow), (ph, pw)


def _read_conv(tfl, o, index, ins, outs, tensors, depthwise: bool):
    name = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
    opts = _options(tfl, o, "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions")
    if opts is None or len(ins) < 2 or len(outs) != 1:
        raise TfliteGraphError(f"{name} {index}: needs options, input, filter and one output")
    padding = _padding(opts.Padding(), name, index)
    stride = (int(opts.StrideH()), int(opts.StrideW()))
    dilation = (int(opts.DilationHFactor()), int(opts.DilationWFactor()))
    act = _activation(opts.FusedActivationFunction(), name, index)
    x_t, w_t, y_t = tensors[ins[0]], tensors[ins[1]], tensors[outs[0]]
    in_q = _int8_tensor(x_t, "input", name, index)
    w_q = _int8_tensor(w_t, "filter", name, index, const=True)
    out_q = _int8_tensor(y_t, "output", name, index)
    if w_t.data.ndim != 4:
        raise TfliteGraphError(f"{name} {index}: filter must be 4-D, got {w_t.shape}")
    (oh, ow), pad = _geometry(name, index, x_t, y_t, w_t.shape[1], w_t.shape[2], padding, stride, dilation)
    cin, cout = x_t.shape[3], y_t.shape[3]
    if depthwise:
        if w_t.shape[0] != 1 or w_t.shape[3] != cout or cout % cin:
            raise TfliteGraphError(f"{name} {index}: filter {w_t.shape} does not fit input {x_t.shape} "
                                   f"and output {y_t.shape}")
        mult = cout // cin  # TFLite derives it from the shapes as well
        w_rows = w_t.data.reshape(-1, cout).T
    else:
        if w_t.shape[0] != cout or cin % w_t.shape[3] or cout % (cin // w_t.shape[3]):
            raise TfliteGraphError(f"{name} {index}: filter {w_t.shape} does not fit input {x_t.shape} "
                                   f"and output {y_t.shape}")
        mult = 1
        w_rows = w_t.data.reshape(cout, -1)
    if w_q.per_channel and w_q.quantized_dimension != (3 if depthwise else 0):
        raise TfliteGraphError(f"{name} {index}: per-channel filter quantised along dimension "
                               f"{w_q.quantized_dimension}")
    if np.any(w_q.zero_point != 0):
        raise TfliteGraphError(f"{name} {index}: int8 filters must be symmetric (zero point 0)")
    bias = _bias_check(tensors, ins, cout, name, index)
    in_offset = -int(in_q.zero_point[0])
    _check_accumulator(w_rows, 0, in_offset, bias, name, index)
    rq = _requant(in_q, w_q, out_q, cout, act, name, index)
    params = qk.Conv2DParams(in_offset, rq, (oh, ow), stride, dilation, pad, mult)
    if depthwise:
        return DepthwiseConv2D(index, ins, outs, padding, stride, dilation, mult, act, params)
    return Conv2D(index, ins, outs, padding, stride, dilation, act, params)


def _read_fc(tfl, o, index, ins, outs, tensors):
    name = "FULLY_CONNECTED"
    opts = _options(tfl, o, "FullyConnectedOptions")
    if len(ins) < 2 or len(outs) != 1:
        raise TfliteGraphError(f"{name} {index}: needs input, weights and one output")
    act = _activation(opts.FusedActivationFunction() if opts else 0, name, index)
    if opts is not None and opts.WeightsFormat() != 0:
        raise UnsupportedOpError(name, index, f"weights format {opts.WeightsFormat()}")
    x_t, w_t, y_t = tensors[ins[0]], tensors[ins[1]], tensors[outs[0]]
    in_q = _int8_tensor(x_t, "input", name, index)
    w_q = _int8_tensor(w_t, "weights", name, index, const=True)
    out_q = _int8_tensor(y_t, "output", name, index)
    if w_t.data.ndim != 2:
        raise TfliteGraphError(f"{name} {index}: weights must be 2-D, got {w_t.shape}")
    n_out, n_in = w_t.shape
    if int(np.prod(x_t.shape)) % n_in or y_t.shape[-1] != n_out:
        raise TfliteGraphError(f"{name} {index}: input {x_t.shape} / output {y_t.shape} do not fit weights {w_t.shape}")
    bias = _bias_check(tensors, ins, n_out, name, index)
    zp_w = int(w_q.zero_point[0])
    if w_q.per_channel and (np.any(w_q.zero_point != 0) or w_q.quantized_dimension != 0):
        raise TfliteGraphError(f"{name} {index}: per-channel weights must be symmetric along dimension 0")
    in_offset = -int(in_q.zero_point[0])
    _check_accumulator(w_t.data.reshape(n_out, n_in), zp_w, in_offset, bias, name, index)
    rq = _requant(in_q, w_q, out_q, n_out, act, name, index)
    params = qk.FullyConnectedParams(in_offset, rq, -zp_w)
    return FullyConnected(index, ins, outs, act, bool(opts.KeepNumDims()) if opts else False, params)


def _read_avgpool(tfl, o, index, ins, outs, tensors):
    name = "AVERAGE_POOL_2D"
    opts = _options(tfl, o, "Pool2DOptions")
    if opts is None or len(ins) != 1 or len(outs) != 1:
        raise TfliteGraphError(f"{name} {index}: needs options, one input and one output")
    padding = _padding(opts.Padding(), name, index)
    stride = (int(opts.StrideH()), int(opts.StrideW()))
    fhw = (int(opts.FilterHeight()), int(opts.FilterWidth()))
    act = _activation(opts.FusedActivationFunction(), name, index)
    x_t, y_t = tensors[ins[0]], tensors[outs[0]]
    in_q = _int8_tensor(x_t, "input", name, index)
    out_q = _int8_tensor(y_t, "output", name, index)
    if (in_q.scale[0], in_q.zero_point[0]) != (out_q.scale[0], out_q.zero_point[0]):
        raise TfliteGraphError(f"{name} {index}: input and output quantisation must be equal (TFLite requires it)")
    if min(fhw) < 1:
        raise TfliteGraphError(f"{name} {index}: filter size {fhw} must be >= 1")
    (oh, ow), pad = _geometry(name, index, x_t, y_t, fhw[0], fhw[1], padding, stride, (1, 1))
    lo, hi = activation_range(act, float(out_q.scale[0]), int(out_q.zero_point[0]))
    params = qk.AveragePool2DParams(fhw, (oh, ow), stride, pad, lo, hi)
    return AveragePool2D(index, ins, outs, padding, stride, fhw, act, params)


def _read_reshape(tfl, o, index, ins, outs, tensors):
    if not ins or len(outs) != 1:
        raise TfliteGraphError(f"RESHAPE {index}: needs an input and one output")
    return Reshape(index, ins, outs, tensors[outs[0]].shape)


def _read_plain(cls):
    def read(tfl, o, index, ins, outs, tensors):
        if len(ins) != 1 or len(outs) != 1:
            raise TfliteGraphError(f"{cls.__name__.upper()} {index}: needs one input and one output")
        return cls(index, ins, outs)
    return read


_READERS = {
    "CONV_2D": lambda *a: _read_conv(*a, depthwise=False),
    "DEPTHWISE_CONV_2D": lambda *a: _read_conv(*a, depthwise=True),
    "FULLY_CONNECTED": _read_fc,
    "AVERAGE_POOL_2D": _read_avgpool,
    "RESHAPE": _read_reshape,
    "QUANTIZE": _read_plain(Quantize),
    "DEQUANTIZE": _read_plain(Dequantize),
}
