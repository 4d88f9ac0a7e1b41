# SPDX-License-Identifier: MIT
"""Layer specifications and their linear operators.

A network is written as a list of layer specs (NIR style: small frozen dataclasses,
serialised with `to_dict`/`from_dict` through a registry keyed on the type name).
Two kinds:

* synaptic layers (`Dense`, `Conv2d`) own weights and SpikingGamma neurons;
* transforms (`SumPool2d`, `Flatten`) are linear, have no parameters and fold into
  the next synaptic layer's input (sum pooling of amplitude-weighted spikes equals
  pooling of the bucket states, because the buckets are linear).

Every operator here acts on flattened batches: an activity of shape (M, N) where
N = C*H*W in channel-major order (c, row, col). Each one has a forward map and its
transpose (used to send credit to the layer below).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Shape = tuple[int, ...]

_REGISTRY: dict[str, type] = {}


def _register(cls):
    _REGISTRY[cls.kind] = cls
    return cls


def layer_from_dict(d: dict):
    """Rebuild a layer spec from `to_dict()` output."""
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in _REGISTRY:
        raise ValueError(f"unknown layer kind {kind!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[kind](**d)


class _Spec:
    kind: ClassVar[str]

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}


# ---------------------------------------------------------------- transforms


@_register
@dataclass(frozen=True)
class Flatten(_Spec):
    """(C, H, W) -> (C*H*W,). A no-op on the flattened data; it only changes the shape."""

    kind: ClassVar[str] = "flatten"

    def out_shape(self, in_shape: Shape) -> Shape:
        return (int(np.prod(in_shape)),)

    def bind(self, in_shape: Shape) -> "_FlattenOp":
        return _FlattenOp(in_shape, self.out_shape(in_shape))


@_register
@dataclass(frozen=True)
class SumPool2d(_Spec):
    """Sum over non-overlapping kernel x kernel windows (stride = kernel).

    out[c, r, q] = sum_{i,j < k} in[c, k*r + i, k*q + j]; rows/cols that do not fill a
    whole window are dropped (floor), as in PyTorch's pooling.
    """

    kind: ClassVar[str] = "sumpool2d"
    kernel_size: int

    def __post_init__(self):
        if self.kernel_size < 1:
            raise ValueError(f"SumPool2d: kernel_size must be >= 1, got {self.kernel_size}")

    def out_shape(self, in_shape: Shape) -> Shape:
        if len(in_shape) != 3:
            raise ValueError(f"SumPool2d needs a (C, H, W) input, got shape {in_shape}")
        c, h, w = in_shape
        k = self.kernel_size
        if h < k or w < k:
            raise ValueError(f"SumPool2d({k}) does not fit input {in_shape}")
        return (c, h // k, w // k)

    def bind(self, in_shape: Shape) -> "_SumPoolOp":
        return _SumPoolOp(in_shape, self.out_shape(in_shape), self.kernel_size)


class _FlattenOp:
    def __init__(self, in_shape: Shape, out_shape: Shape):
        self.in_shape, self.out_shape = in_shape, out_shape

    def forward(self, a: np.ndarray) -> np.ndarray:
        return a

    def transpose(self, g: np.ndarray) -> np.ndarray:
        return g


class _SumPoolOp:
    def __init__(self, in_shape: Shape, out_shape: Shape, k: int):
        self.in_shape, self.out_shape, self.k = in_shape, out_shape, k

    def forward(self, a: np.ndarray) -> np.ndarray:
        m = a.shape[0]
        c, h, w = self.in_shape
        _, ho, wo = self.out_shape
        k = self.k
        x = a.reshape(m, c, h, w)[:, :, : ho * k, : wo * k]
        return x.reshape(m, c, ho, k, wo, k).sum(axis=(3, 5)).reshape(m, -1)

    def transpose(self, g: np.ndarray) -> np.ndarray:
        m = g.shape[0]
        c, h, w = self.in_shape
        _, ho, wo = self.out_shape
        k = self.k
        up = np.repeat(np.repeat(g.reshape(m, c, ho, wo), k, axis=2), k, axis=3)
        if up.shape[2:] == (h, w):
            return up.reshape(m, -1)
        out = np.zeros((m, c, h, w), dtype=g.dtype)
        out[:, :, : ho * k, : wo * k] = up
        return out.reshape(m, -1)


# ---------------------------------------------------------------- synaptic layers


@_register
@dataclass(frozen=True)
class Dense(_Spec):
    """Fully connected: x_j = sum_i W[j, i] * in_i. W has shape (out_features, in_features);
    neuron parameters (bias, bucket weights V, threshold) are per output neuron."""

    kind: ClassVar[str] = "dense"
    out_features: int

    def __post_init__(self):
        if self.out_features < 1:
            raise ValueError(f"Dense: out_features must be >= 1, got {self.out_features}")

    def out_shape(self, in_shape: Shape) -> Shape:
        return (self.out_features,)

    def bind(self, in_shape: Shape) -> "DenseOp":
        return DenseOp(in_shape, self.out_shape(in_shape))


@_register
@dataclass(frozen=True)
class Conv2d(_Spec):
    """2-D convolution (cross-correlation, as in PyTorch), zero padding.

    out[o, r, q] = sum_{c,i,j} W[o, c, i, j] * in_pad[c, stride*r + i, stride*q + j].
    W has shape (out_channels, in_channels, k, k); neuron parameters are per output
    channel (shared over positions, like the weights).
    """

    kind: ClassVar[str] = "conv2d"
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0

    def __post_init__(self):
        if self.out_channels < 1 or self.kernel_size < 1 or self.stride < 1 or self.padding < 0:
            raise ValueError(f"Conv2d: invalid arguments {self}")

    def out_shape(self, in_shape: Shape) -> Shape:
        if len(in_shape) != 3:
            raise ValueError(f"Conv2d needs a (C, H, W) input, got shape {in_shape}")
        _, h, w = in_shape
        k, s, p = self.kernel_size, self.stride, self.padding
        ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        if ho < 1 or wo < 1:
            raise ValueError(f"Conv2d kernel {k} does not fit input {in_shape} with padding {p}")
        return (self.out_channels, ho, wo)

    def bind(self, in_shape: Shape) -> "ConvOp":
        return ConvOp(in_shape, self.out_shape(in_shape), self)


class DenseOp:
    """Bound dense operator: forward a @ W.T, transpose g @ W."""

    def __init__(self, in_shape: Shape, out_shape: Shape):
        self.in_shape, self.out_shape = in_shape, out_shape
        self.n_in, self.n_out = int(np.prod(in_shape)), out_shape[0]
        self.channels, self.spatial = self.n_out, 1
        self.weight_shape = (self.n_out, self.n_in)
        self.fan_in = self.n_in

    def forward(self, w: np.ndarray, a: np.ndarray) -> np.ndarray:
        return a @ w.T

    def transpose(self, w: np.ndarray, g: np.ndarray) -> np.ndarray:
        return g @ w

    def weight_grad(self, g: np.ndarray, a: np.ndarray) -> np.ndarray:
        """sum over the batch of outer(g, a): the gradient of sum(g * forward(W, a))."""
        return g.T @ a

    def patches(self, a: np.ndarray) -> np.ndarray:
        """(M, 1, n_in): what each output neuron's weight row multiplies (every input)."""
        return a[:, None, :]


class ConvOp:
    """Bound 2-D convolution over flattened (M, C*H*W) activity."""

    def __init__(self, in_shape: Shape, out_shape: Shape, spec: Conv2d):
        self.in_shape, self.out_shape = in_shape, out_shape
        self.n_in, self.n_out = int(np.prod(in_shape)), int(np.prod(out_shape))
        self.k, self.s, self.p = spec.kernel_size, spec.stride, spec.padding
        self.channels = out_shape[0]
        self.spatial = out_shape[1] * out_shape[2]
        self.weight_shape = (out_shape[0], in_shape[0], self.k, self.k)
        self.fan_in = in_shape[0] * self.k * self.k

    def _windows(self, a: np.ndarray) -> np.ndarray:
        """(M, C, Ho, Wo, k, k) view of the padded input's receptive fields."""
        m = a.shape[0]
        c, h, w = self.in_shape
        _, ho, wo = self.out_shape
        x = a.reshape(m, c, h, w)
        if self.p:
            x = np.pad(x, ((0, 0), (0, 0), (self.p, self.p), (self.p, self.p)))
        win = sliding_window_view(x, (self.k, self.k), axis=(2, 3))
        return win[:, :, :: self.s, :: self.s][:, :, :ho, :wo]

    def forward(self, w: np.ndarray, a: np.ndarray) -> np.ndarray:
        out = np.tensordot(self._windows(a), w, axes=((1, 4, 5), (1, 2, 3)))  # (M, Ho, Wo, O)
        return out.transpose(0, 3, 1, 2).reshape(a.shape[0], -1)

    def transpose(self, w: np.ndarray, g: np.ndarray) -> np.ndarray:
        m = g.shape[0]
        c, h, wd = self.in_shape
        o, ho, wo = self.out_shape
        k, s, p = self.k, self.s, self.p
        g4 = g.reshape(m, o, ho, wo)
        hp, wp = h + 2 * p, wd + 2 * p
        out = np.zeros((m, c, max(hp, s * (ho - 1) + k), max(wp, s * (wo - 1) + k)), dtype=g.dtype)
        for i in range(k):
            for j in range(k):
                contrib = np.tensordot(g4, w[:, :, i, j], axes=((1,), (0,)))  # (M, Ho, Wo, C)
                out[:, :, i : i + s * ho : s, j : j + s * wo : s] += contrib.transpose(0, 3, 1, 2)
        return out[:, :, p : p + h, p : p + wd].reshape(m, -1)

    def weight_grad(self, g: np.ndarray, a: np.ndarray) -> np.ndarray:
        m = g.shape[0]
        g4 = g.reshape(m, *self.out_shape)
        return np.tensordot(g4, self._windows(a), axes=((0, 2, 3), (0, 2, 3)))

    def patches(self, a: np.ndarray) -> np.ndarray:
        """(M, Ho*Wo, C*k*k): each output position's receptive field, ordered like one
        output channel's weights (in_channel, i, j)."""
        win = self._windows(a)  # (M, C, Ho, Wo, k, k)
        m = a.shape[0]
        return win.transpose(0, 2, 3, 1, 4, 5).reshape(m, self.spatial, self.fan_in)


SYNAPTIC = (Dense, Conv2d)
TRANSFORMS = (Flatten, SumPool2d)
