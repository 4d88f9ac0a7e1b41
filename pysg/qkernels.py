# SPDX-License-Identifier: MIT
"""int8 layers of imported TFLite models, bit-exact with TFLite (Micro)'s reference kernels.

Two implementations with one signature each:

* the numpy twin (:func:`conv2d`, :func:`depthwise_conv2d`, :func:`fully_connected`,
  :func:`average_pool2d`, :func:`mbqm`): exact integer arithmetic in int64;
* the C kernels of ``runtime_c/src/engines/qnet/sg_qkernels.c`` through cffi (the same names with a
  ``_c`` suffix).

Every conv / fully connected output element is::

    acc = sum (input + input_offset) * (filter + filter_offset)  [+ bias]   (int32)
    out = clamp(mbqm(acc, multiplier[c], shift[c]) + output_offset, act_min, act_max)

where :func:`mbqm` is TFLite's double-rounding MultiplyByQuantizedMultiplier
(``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc << left, multiplier), right)``).
Window points outside the image are skipped (zero padding). The parameters come from
:mod:`pysg.converters.tflite_graph`, which computes them exactly as TFLite's Prepare does.
Layouts: activations NHWC, conv filters OHWI, depthwise filters 1HW(C*M), fully connected
weights [out, in].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "AveragePool2DParams", "Conv2DParams", "FullyConnectedParams", "Requant",
    "average_pool2d", "average_pool2d_c", "conv2d", "conv2d_c", "depthwise_conv2d",
    "depthwise_conv2d_c", "fully_connected", "fully_connected_c", "mbqm", "mbqm_c",
]

_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1


@dataclass(frozen=True)
class Requant:
    """Requantisation of the int32 accumulator: per output channel (len = channels) or
    per tensor (len 1) ``multiplier`` in [0, 2^31) and ``shift`` in [-31, 30] (positive:
    left), then ``+ output_offset`` (the output zero point) and the clamp
    [``act_min``, ``act_max``] of the fused activation."""
    multiplier: np.ndarray
    shift: np.ndarray
    output_offset: int
    act_min: int = -128
    act_max: int = 127

    def __post_init__(self) -> None:
        m = np.atleast_1d(np.asarray(self.multiplier, dtype=np.int64))
        s = np.atleast_1d(np.asarray(self.shift, dtype=np.int64))
        if m.ndim != 1 or m.shape != s.shape or m.size == 0:
            raise ValueError(f"multiplier and shift must be equal-length 1-D, got {m.shape} and {s.shape}")
        if m.min() < 0 or m.max() > _I32_MAX:
            raise ValueError(f"multipliers must be in [0, 2^31), got [{m.min()}, {m.max()}]")
        if s.min() < -31 or s.max() > 30:
            raise ValueError(f"shifts must be in [-31, 30], got [{s.min()}, {s.max()}]")
        if not -128 <= self.output_offset <= 127:
            raise ValueError(f"output_offset must be an int8 zero point, got {self.output_offset}")
        if not -128 <= self.act_min <= self.act_max <= 127:
            raise ValueError(f"need -128 <= act_min <= act_max <= 127, got [{self.act_min}, {self.act_max}]")
        object.__setattr__(self, "multiplier", m.astype(np.int32))
        object.__setattr__(self, "shift", s.astype(np.int32))

    def channels_ok(self, channels: int) -> bool:
        return self.multiplier.size in (1, channels)


@dataclass(frozen=True)
class Conv2DParams:
    """Conv2d / depthwise geometry: ``output_hw`` is the output size (TFLite's, from
    SAME/VALID), ``padding`` the rows/columns of zeros before the image (top, left);
    ``input_offset`` is minus the input zero point; ``depth_multiplier`` is used by the
    depthwise kernel only."""
    input_offset: int
    requant: Requant
    output_hw: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    depth_multiplier: int = 1

    def __post_init__(self) -> None:
        if not -127 <= self.input_offset <= 128:
            raise ValueError(f"input_offset must be minus an int8 zero point, got {self.input_offset}")
        for name, pair, lo in (("output_hw", self.output_hw, 1), ("stride", self.stride, 1),
                               ("dilation", self.dilation, 1), ("padding", self.padding, 0)):
            if len(pair) != 2 or min(pair) < lo or max(pair) > 32767:
                raise ValueError(f"{name} must be two integers in [{lo}, 32767], got {pair}")
        if self.depth_multiplier < 1:
            raise ValueError(f"depth_multiplier must be >= 1, got {self.depth_multiplier}")


@dataclass(frozen=True)
class FullyConnectedParams:
    """``input_offset`` / ``filter_offset``: minus the input / weights zero points."""
    input_offset: int
    requant: Requant
    filter_offset: int = 0

    def __post_init__(self) -> None:
        for name, v in (("input_offset", self.input_offset), ("filter_offset", self.filter_offset)):
            if not -127 <= v <= 128:
                raise ValueError(f"{name} must be minus an int8 zero point, got {v}")


@dataclass(frozen=True)
class AveragePool2DParams:
    """Average pool: mean over the window's points inside the image (padding not
    counted), rounded half away from zero, clamped to [act_min, act_max]."""
    filter_hw: tuple[int, int]
    output_hw: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    act_min: int = -128
    act_max: int = 127

    def __post_init__(self) -> None:
        for name, pair, lo in (("filter_hw", self.filter_hw, 1), ("output_hw", self.output_hw, 1),
                               ("stride", self.stride, 1), ("padding", self.padding, 0)):
            if len(pair) != 2 or min(pair) < lo or max(pair) > 32767:
                raise ValueError(f"{name} must be two integers in [{lo}, 32767], got {pair}")
        if not -128 <= self.act_min <= self.act_max <= 127:
            raise ValueError(f"need -128 <= act_min <= act_max <= 127, got [{self.act_min}, {self.act_max}]")


# ---------------------------------------------------------------- numpy twin

def _wrap32(v: np.ndarray) -> np.ndarray:
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def mbqm(x: np.ndarray | int, multiplier: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier (double rounding), elementwise with
    broadcasting; ``x`` holds int32 values, the result is int64 holding int32 values."""
    x = np.asarray(x, dtype=np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    left, right = np.maximum(s, 0), np.maximum(-s, 0)
    xl = _wrap32(x << left)  # TFLite's int32 product x * 2^left wraps
    ab = xl * m
    t = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(t >= 0, t >> 31, -((-t) >> 31))  # division truncating toward zero
    high = np.where((xl == _I32_MIN) & (m == _I32_MIN), _I32_MAX, high)
    mask = (np.int64(1) << right) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + ((high & mask) > threshold)


def _requant(acc: np.ndarray, rq: Requant, what: str) -> np.ndarray:
    """acc [..., C] int64 -> int8, checking the accumulator stayed inside int32."""
    if acc.size and (acc.min() < _I32_MIN or acc.max() > _I32_MAX):
        raise OverflowError(f"{what}: int32 accumulator overflow ({acc.min()}..{acc.max()})")
    out = mbqm(acc, rq.multiplier, rq.shift) + rq.output_offset
    return np.clip(out, rq.act_min, rq.act_max).astype(np.int8)


def _int8(name: str, a: np.ndarray, ndim: int) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.int8 or a.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D int8 array, got {a.dtype} {a.shape}")
    return a


def _bias(bias: np.ndarray | None, n: int) -> np.ndarray | None:
    if bias is None:
        return None
    b = np.asarray(bias)
    if b.dtype != np.int32 or b.shape != (n,):
        raise ValueError(f"bias must be int32 of shape ({n},), got {b.dtype} {b.shape}")
    return b


def _windows(x: np.ndarray, kh: int, kw: int, p: Conv2DParams | AveragePool2DParams,
             dilation: tuple[int, int]):
    """Yield (ky, kx, view [N, OH, OW, C]) of the zero-padded x for each filter tap."""
    n, h, w, c = x.shape
    oh, ow = p.output_hw
    (sh, sw), (dh, dw), (ph, pw) = p.stride, dilation, p.padding
    hp = max(ph + h, (oh - 1) * sh + (kh - 1) * dh + 1)
    wp = max(pw + w, (ow - 1) * sw + (kw - 1) * dw + 1)
    xp = np.zeros((n, hp, wp, c), dtype=x.dtype)
    xp[:, ph:ph + h, pw:pw + w] = x
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dh, kx * dw
            yield ky, kx, xp[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw]


def conv2d(x: np.ndarray, filt: np.ndarray, bias: np.ndarray | None, p: Conv2DParams) -> np.ndarray:
    """TFLite CONV_2D int8: x [N, H, W, C_in], filt [C_out, KH, KW, C_in / groups]."""
    x, filt = _int8("input", x, 4), _int8("filter", filt, 4)
    cout, kh, kw, cig = filt.shape
    cin = x.shape[3]
    if cin % cig or cout % (cin // cig) or not p.requant.channels_ok(cout):
        raise ValueError(f"inconsistent conv shapes: input {x.shape}, filter {filt.shape}, "
                         f"{p.requant.multiplier.size} multipliers")
    groups = cin // cig
    bias = _bias(bias, cout)
    xo = x.astype(np.int64) + p.input_offset
    wg = filt.astype(np.int64).reshape(groups, cout // groups, kh, kw, cig)
    n, (oh, ow) = x.shape[0], p.output_hw
    acc = np.zeros((n, oh, ow, groups, cout // groups), dtype=np.int64)
    for ky, kx, v in _windows(xo, kh, kw, p, p.dilation):
        acc += np.einsum("nhwgi,goi->nhwgo", v.reshape(n, oh, ow, groups, cig), wg[:, :, ky, kx, :])
    acc = acc.reshape(n, oh, ow, cout)
    if bias is not None:
        acc += bias.astype(np.int64)
    return _requant(acc, p.requant, "conv2d")


def depthwise_conv2d(x: np.ndarray, filt: np.ndarray, bias: np.ndarray | None,
                     p: Conv2DParams) -> np.ndarray:
    """TFLite DEPTHWISE_CONV_2D int8: x [N, H, W, C], filt [1, KH, KW, C * M]; output
    channel c * M + m reads input channel c (M = ``p.depth_multiplier``)."""
    x, filt = _int8("input", x, 4), _int8("filter", filt, 4)
    _, kh, kw, cout = filt.shape
    m = p.depth_multiplier
    if filt.shape[0] != 1 or x.shape[3] * m != cout or not p.requant.channels_ok(cout):
        raise ValueError(f"inconsistent depthwise shapes: input {x.shape}, filter {filt.shape}, "
                         f"depth multiplier {m}, {p.requant.multiplier.size} multipliers")
    bias = _bias(bias, cout)
    xo = x.astype(np.int64) + p.input_offset
    wv = filt.astype(np.int64)
    n, (oh, ow) = x.shape[0], p.output_hw
    acc = np.zeros((n, oh, ow, cout), dtype=np.int64)
    for ky, kx, v in _windows(xo, kh, kw, p, p.dilation):
        acc += np.repeat(v, m, axis=3) * wv[0, ky, kx]
    if bias is not None:
        acc += bias.astype(np.int64)
    return _requant(acc, p.requant, "depthwise_conv2d")


def fully_connected(x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None,
                    p: FullyConnectedParams) -> np.ndarray:
    """TFLite FULLY_CONNECTED int8: x [B, n_in], weights [n_out, n_in] -> [B, n_out]."""
    x, weights = _int8("input", x, 2), _int8("weights", weights, 2)
    n_out, n_in = weights.shape
    if x.shape[1] != n_in or not p.requant.channels_ok(n_out):
        raise ValueError(f"inconsistent fully connected shapes: input {x.shape}, weights "
                         f"{weights.shape}, {p.requant.multiplier.size} multipliers")
    bias = _bias(bias, n_out)
    acc = (x.astype(np.int64) + p.input_offset) @ (weights.astype(np.int64) + p.filter_offset).T
    if bias is not None:
        acc += bias.astype(np.int64)
    return _requant(acc, p.requant, "fully_connected")


def average_pool2d(x: np.ndarray, p: AveragePool2DParams) -> np.ndarray:
    """TFLite AVERAGE_POOL_2D int8: x [N, H, W, C] -> [N, OH, OW, C]."""
    x = _int8("input", x, 4)
    kh, kw = p.filter_hw
    n, (oh, ow), c = x.shape[0], p.output_hw, x.shape[3]
    acc = np.zeros((n, oh, ow, c), dtype=np.int64)
    count = np.zeros((1, oh, ow, 1), dtype=np.int64)
    inside = np.ones((1,) + x.shape[1:3] + (1,), dtype=np.int64)
    for (_, _, v), (_, _, m) in zip(_windows(x.astype(np.int64), kh, kw, p, (1, 1)),
                                    _windows(inside, kh, kw, p, (1, 1))):
        acc += v
        count += m
    if count.min() == 0:
        raise ValueError("average_pool2d: a window lies entirely in the padding")
    half = count // 2
    mean = np.where(acc > 0, (acc + half) // count, -((half - acc) // count))
    return np.clip(mean, p.act_min, p.act_max).astype(np.int8)


# ---------------------------------------------------------------- C kernels (cffi)

def _lib():
    from . import _native

    ffi, lib = _native.require("the C int8 kernels (pysg.qkernels)", "sg_q_conv2d")
    return ffi, lib, _native.check


def _c_array(ffi, ctype: str, a: np.ndarray, dtype) -> tuple[object, np.ndarray]:
    a = np.ascontiguousarray(a, dtype=dtype)
    return ffi.from_buffer(ctype, a), a


def _c_requant(ffi, rq: Requant, keep: list):
    m_ptr, m = _c_array(ffi, "int32_t[]", rq.multiplier, np.int32)
    s_ptr, s = _c_array(ffi, "int32_t[]", rq.shift, np.int32)
    keep += [m, s, m_ptr, s_ptr]
    return ffi.new("sg_qrequant *", {"multiplier": m_ptr, "shift": s_ptr, "count": rq.multiplier.size})


def _c_dims(ffi, shape: tuple[int, ...]):
    n, h, w, c = (int(v) for v in shape)
    return ffi.new("sg_qdims *", {"n": n, "h": h, "w": w, "c": c})


def _c_conv(kind: str, x: np.ndarray, filt: np.ndarray, bias: np.ndarray | None,
            p: Conv2DParams, cout: int) -> np.ndarray:
    ffi, lib, check = _lib()
    x, filt = _int8("input", x, 4), _int8("filter", filt, 4)
    bias = _bias(bias, cout)
    keep: list = []
    rq = p.requant
    params = ffi.new("sg_qconv_params *", {
        "stride_h": p.stride[0], "stride_w": p.stride[1], "dilation_h": p.dilation[0],
        "dilation_w": p.dilation[1], "pad_h": p.padding[0], "pad_w": p.padding[1],
        "depth_multiplier": p.depth_multiplier, "input_offset": p.input_offset,
        "output_offset": rq.output_offset, "act_min": rq.act_min, "act_max": rq.act_max})
    out = np.empty((x.shape[0],) + tuple(p.output_hw) + (cout,), dtype=np.int8)
    x_ptr, x = _c_array(ffi, "int8_t[]", x, np.int8)
    f_ptr, filt = _c_array(ffi, "int8_t[]", filt, np.int8)
    b_ptr = ffi.NULL
    if bias is not None:
        b_ptr, bias = _c_array(ffi, "int32_t[]", bias, np.int32)
    fn = lib.sg_q_conv2d if kind == "conv2d" else lib.sg_q_depthwise_conv2d
    check(fn(params, _c_requant(ffi, rq, keep), _c_dims(ffi, x.shape), x_ptr, _c_dims(ffi, filt.shape),
             f_ptr, b_ptr, _c_dims(ffi, out.shape), ffi.from_buffer("int8_t[]", out)), what=f"sg_q_{kind}")
    return out


def conv2d_c(x: np.ndarray, filt: np.ndarray, bias: np.ndarray | None, p: Conv2DParams) -> np.ndarray:
    """:func:`conv2d` in C (``sg_q_conv2d``)."""
    return _c_conv("conv2d", x, filt, bias, p, int(np.shape(filt)[0]))


def depthwise_conv2d_c(x: np.ndarray, filt: np.ndarray, bias: np.ndarray | None,
                       p: Conv2DParams) -> np.ndarray:
    """:func:`depthwise_conv2d` in C (``sg_q_depthwise_conv2d``)."""
    return _c_conv("depthwise_conv2d", x, filt, bias, p, int(np.shape(filt)[3]))


def fully_connected_c(x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None,
                      p: FullyConnectedParams) -> np.ndarray:
    """:func:`fully_connected` in C (``sg_q_fully_connected``)."""
    ffi, lib, check = _lib()
    x, weights = _int8("input", x, 2), _int8("weights", weights, 2)
    n_out, n_in = weights.shape
    if x.shape[1] != n_in:
        raise ValueError(f"input {x.shape} does not match weights {weights.shape}")
    bias = _bias(bias, n_out)
    keep: list = []
    rq = p.requant
    params = ffi.new("sg_qfc_params *", {
        "input_offset": p.input_offset, "filter_offset": p.filter_offset,
        "output_offset": rq.output_offset, "act_min": rq.act_min, "act_max": rq.act_max})
    out = np.empty((x.shape[0], n_out), dtype=np.int8)
    x_ptr, x = _c_array(ffi, "int8_t[]", x, np.int8)
    w_ptr, weights = _c_array(ffi, "int8_t[]", weights, np.int8)
    b_ptr = ffi.NULL
    if bias is not None:
        b_ptr, bias = _c_array(ffi, "int32_t[]", bias, np.int32)
    check(lib.sg_q_fully_connected(params, _c_requant(ffi, rq, keep), x.shape[0], n_in, n_out, x_ptr,
                                   w_ptr, b_ptr, ffi.from_buffer("int8_t[]", out)),
          what="sg_q_fully_connected")
    return out


def average_pool2d_c(x: np.ndarray, p: AveragePool2DParams) -> np.ndarray:
    """:func:`average_pool2d` in C (``sg_q_average_pool2d``)."""
    ffi, lib, check = _lib()
    x = _int8("input", x, 4)
    params = ffi.new("sg_qpool_params *", {
        "stride_h": p.stride[0], "stride_w": p.stride[1], "filter_h": p.filter_hw[0],
        "filter_w": p.filter_hw[1], "pad_h": p.padding[0], "pad_w": p.padding[1],
        "act_min": p.act_min, "act_max": p.act_max})
    out = np.empty((x.shape[0],) + tuple(p.output_hw) + (x.shape[3],), dtype=np.int8)
    x_ptr, x = _c_array(ffi, "int8_t[]", x, np.int8)
    check(lib.sg_q_average_pool2d(params, _c_dims(ffi, x.shape), x_ptr, _c_dims(ffi, out.shape),
                                  ffi.from_buffer("int8_t[]", out)), what="sg_q_average_pool2d")
    return out


def mbqm_c(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """:func:`mbqm` in C (``sg_q_mbqm``), elementwise over equal-shape int32 arrays."""
    ffi, lib, _ = _lib()
    x, m, s = (np.asarray(a, dtype=np.int64).ravel() for a in (x, multiplier, shift))
    if not x.shape == m.shape == s.shape:
        raise ValueError(f"x, multiplier and shift must have one shape, got {x.shape}, {m.shape}, {s.shape}")
    if s.size and (s.min() < -31 or s.max() > 30):
        raise ValueError("shift must be in [-31, 30]")
    return np.array([lib.sg_q_mbqm(int(a), int(b), int(c)) for a, b, c in zip(x, m, s)], dtype=np.int64)
