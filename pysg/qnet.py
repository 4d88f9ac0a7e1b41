# SPDX-License-Identifier: MIT
"""Imported int8 TFLite networks run event-driven (sigma-delta coding), bit-exact with TFLite.

A ReLU network becomes a spiking one by sending, instead of each frame, only the changes
of every tensor ("spikes" carrying integer payloads). With a threshold of one int8 step the
coding is exact:

* every conv / depthwise / fully connected layer keeps its accumulator
  ``acc[o] = bias[o] + sum_i w[o, i] * (x[i] - zp_in)`` (TFLite's int32 accumulator) and
  its last output ``q[o] = clamp(mbqm(acc[o], M[o], S[o]) + zp_out, act_min, act_max)``;
* an input element that changes by ``d = x_new - x_old`` adds ``d * w[o, i]`` to the
  accumulator of each output it reaches (one synaptic operation per output);
* only the outputs whose accumulator changed are requantised, and only the outputs whose
  int8 value changed send their delta on;
* AVERAGE_POOL_2D keeps its window sums the same way (weights 1) and re-divides the
  changed windows; RESHAPE passes deltas through (NHWC flat order is unchanged).

``reset()`` sets the state to the network's response to the all-zero-point input (one
dense pass through the same scatter code). Because each layer is linear up to the
requantisation and each delta is exact, every ``step(frame)`` returns TFLite's output for
that frame bit for bit; the arithmetic (synaptic ops, requantisations) is proportional to
the changes. This numpy reference also zeroes and scans one dense change buffer per layer
and step (O(outputs) bookkeeping that a C version would replace by a touched list).

Layouts as TFLite: NHWC activations, flat index ``((n * H + y) * W + x) * C + c``. A fully
connected layer is a 1 x 1 "conv" over the rows of its [B, n_in] input. Integer
arithmetic throughout in int64 (the accumulators hold int32 values: the reader proves
they cannot overflow). QUANTIZE / DEQUANTIZE have no event-driven form here and are
refused (a float model edge is not int8 deltas).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from converters.tflite_graph import (AveragePool2D, Conv2D, DepthwiseConv2D, FullyConnected, Reshape,
                                     TfliteGraph, TfliteGraphError, UnsupportedOpError, read_tflite)

from . import qkernels as qk

__all__ = ["DeltaNetwork", "LayerCounts", "StepCounts"]

_Deltas = tuple[np.ndarray, np.ndarray]  # (flat indices int64, deltas int64)


@dataclass(frozen=True)
class LayerCounts:
    """One layer's work in one step: ``in_events`` input deltas received, ``synops``
    accumulator updates (the fan-out of those deltas), ``requants`` outputs whose
    accumulator changed (requantised or re-divided), ``out_events`` outputs whose int8
    value changed (the deltas sent on)."""
    name: str
    in_events: int
    synops: int
    requants: int
    out_events: int


@dataclass(frozen=True)
class StepCounts:
    """The counts of one step, per layer (in operator order; RESHAPE not listed)."""
    input_events: int
    layers: tuple[LayerCounts, ...]

    @property
    def synops(self) -> int:
        return sum(c.synops for c in self.layers)

    @property
    def requants(self) -> int:
        return sum(c.requants for c in self.layers)

    @property
    def events(self) -> int:
        """Delta events sent: the input's plus every layer's output deltas."""
        return self.input_events + sum(c.out_events for c in self.layers)


@dataclass
class _Scatter:
    """One linear layer as a scatter table. An input flat index i is split into a
    position p = i // c_in and a channel c = i % c_in; position p reaches the output
    positions ``tap_q[ptr[p]:ptr[p + 1]]`` through filter taps ``tap_t[...]``; channel c
    of it adds ``d * w[t, c, k]`` to output channel ``base[c] + k`` (k < K)."""
    name: str
    c_in: int
    c_out: int
    n_out: int
    ptr: np.ndarray      # (positions + 1,) int64
    tap_q: np.ndarray    # int64 output positions
    tap_t: np.ndarray    # int64 tap indices
    w: np.ndarray        # (taps, c_in, K) int64
    base: np.ndarray     # (c_in,) int64
    acc0: np.ndarray     # (c_out,) int64: the bias (0 for a pool)
    in_base: int         # input value that contributes nothing (zero point; 0 for a pool)
    requant: qk.Requant | None = None           # conv / FC
    pool_count: np.ndarray | None = None        # pool: points inside the image per output position
    pool_range: tuple[int, int] = (-128, 127)   # pool: activation clamp
    acc: np.ndarray = field(init=False)
    q: np.ndarray = field(init=False)

    @property
    def fan_out(self) -> np.ndarray:
        """Synaptic fan-out of every input flat index (padding taps have none)."""
        return np.repeat(np.diff(self.ptr), self.c_in) * self.w.shape[2]

    def output(self, idx: np.ndarray) -> np.ndarray:
        """int8 values (as int64) of outputs ``idx`` from their accumulators."""
        a = self.acc[idx]
        if self.requant is not None:
            ch = idx % self.c_out
            rq = self.requant
            m = rq.multiplier if rq.multiplier.size == 1 else rq.multiplier[ch]
            s = rq.shift if rq.shift.size == 1 else rq.shift[ch]
            return np.clip(qk.mbqm(a, m, s) + rq.output_offset, rq.act_min, rq.act_max)
        cnt = self.pool_count[idx // self.c_out]
        half = cnt // 2
        mean = np.where(a > 0, (a + half) // cnt, -((half - a) // cnt))  # TFLite: half away from zero
        return np.clip(mean, *self.pool_range)

    def scatter(self, idx: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, int]:
        """Dense accumulator change (n_out,) of input deltas (idx, d), and the synaptic ops."""
        p, c = np.divmod(idx, self.c_in)
        cnt = self.ptr[p + 1] - self.ptr[p]
        total = int(cnt.sum())
        dacc = np.zeros(self.n_out, np.int64)  # dense buffer: add.at sums repeated targets exactly
        if total == 0:
            return dacc, 0
        src = np.repeat(np.arange(idx.size), cnt)
        first = np.cumsum(cnt) - cnt                     # where each event's taps start in src
        j = np.repeat(self.ptr[p], cnt) + (np.arange(total) - first[src])
        cs = c[src]
        contrib = d[src, None] * self.w[self.tap_t[j], cs]                       # (E, K)
        out = (self.tap_q[j] * self.c_out + self.base[cs])[:, None] + np.arange(self.w.shape[2])
        np.add.at(dacc, out.ravel(), contrib.ravel())
        return dacc, contrib.size

    def apply(self, idx: np.ndarray, d: np.ndarray) -> tuple[_Deltas, LayerCounts]:
        dacc, synops = self.scatter(idx, d)
        changed = np.flatnonzero(dacc)
        self.acc[changed] += dacc[changed]
        q_new = self.output(changed)
        dq = q_new - self.q[changed]
        moved = dq != 0
        out_idx, out_d = changed[moved], dq[moved]
        self.q[out_idx] = q_new[moved]
        return (out_idx, out_d), LayerCounts(self.name, idx.size, synops, changed.size, out_idx.size)

    def reset(self, x0: np.ndarray) -> None:
        """State for input values x0 (flat int64): the scatter of every element from in_base."""
        self.acc = np.tile(self.acc0, self.n_out // self.acc0.size)  # the bias of every position
        nz = np.flatnonzero(x0 != self.in_base)
        dacc, _ = self.scatter(nz, x0[nz] - self.in_base)
        self.acc += dacc
        self.q = self.output(np.arange(self.n_out))


def _taps(in_hw: tuple[int, int], out_hw: tuple[int, int], k_hw: tuple[int, int], stride, dilation,
          padding, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (ptr, tap_q, tap_t) from input positions to (output position, tap) pairs."""
    (h, w), (oh, ow), (kh, kw) = in_hw, out_hw, k_hw
    n, oy, ox, ky, kx = np.meshgrid(np.arange(batch), np.arange(oh), np.arange(ow), np.arange(kh), np.arange(kw),
                                    indexing="ij")
    y = oy * stride[0] - padding[0] + ky * dilation[0]
    x = ox * stride[1] - padding[1] + kx * dilation[1]
    inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    p = ((n * h + y) * w + x)[inside]
    q = ((n * oh + oy) * ow + ox)[inside]
    t = (ky * kw + kx)[inside]
    order = np.argsort(p, kind="stable")
    ptr = np.zeros(batch * h * w + 1, np.int64)
    np.cumsum(np.bincount(p, minlength=batch * h * w), out=ptr[1:])
    return ptr, q[order].astype(np.int64), t[order].astype(np.int64)


def _zp(graph: TfliteGraph, index: int) -> int:
    return int(graph.tensors[index].quantization.zero_point[0])


def _bias(graph: TfliteGraph, op, n: int) -> np.ndarray:
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        return graph.tensors[op.inputs[2]].data.astype(np.int64).reshape(n)
    return np.zeros(n, np.int64)


def _conv_scatter(graph: TfliteGraph, op: Conv2D | DepthwiseConv2D) -> tuple[_Scatter, int]:
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    filt = graph.tensors[op.inputs[1]].data.astype(np.int64)
    p = op.params
    batch, h, w, cin = x_t.shape
    cout = y_t.shape[3]
    kh, kw = filt.shape[1:3]
    ptr, tq, tt = _taps((h, w), p.output_hw, (kh, kw), p.stride, p.dilation, p.padding, batch)
    if isinstance(op, DepthwiseConv2D):
        m = p.depth_multiplier
        wt = filt[0].reshape(kh * kw, cin, m)           # channel c * M + k reads input channel c
        base = np.arange(cin, dtype=np.int64) * m
        macs = batch * p.output_hw[0] * p.output_hw[1] * cout * kh * kw
        name = "DEPTHWISE_CONV_2D"
    else:
        cig = filt.shape[3]
        groups = cin // cig
        cpg = cout // groups
        # (taps, c_in, cpg): input channel c feeds its group's outputs through filter channel c % cig
        wt = filt.reshape(groups, cpg, kh * kw, cig).transpose(2, 0, 3, 1).reshape(kh * kw, cin, cpg)
        base = (np.arange(cin, dtype=np.int64) // cig) * cpg
        macs = batch * p.output_hw[0] * p.output_hw[1] * cout * kh * kw * cig
        name = "CONV_2D"
    n_out = int(np.prod(y_t.shape))
    sc = _Scatter(f"{name} {op.index}", cin, cout, n_out, ptr, tq, tt, np.ascontiguousarray(wt), base,
                  _bias(graph, op, cout), -p.input_offset, requant=p.requant)
    return sc, macs


def _fc_scatter(graph: TfliteGraph, op: FullyConnected) -> tuple[_Scatter, int]:
    wts = graph.tensors[op.inputs[1]].data.astype(np.int64) + op.params.filter_offset
    n_out, n_in = wts.shape
    rows = int(np.prod(graph.tensors[op.inputs[0]].shape)) // n_in
    ptr = np.arange(rows + 1, dtype=np.int64)             # row b reaches output row b, one "tap"
    sc = _Scatter(f"FULLY_CONNECTED {op.index}", n_in, n_out, rows * n_out, ptr, np.arange(rows, dtype=np.int64),
                  np.zeros(rows, np.int64), np.ascontiguousarray(wts.T[None]), np.zeros(n_in, np.int64),
                  _bias(graph, op, n_out), -op.params.input_offset, requant=op.params.requant)
    return sc, rows * n_out * n_in


def _pool_scatter(graph: TfliteGraph, op: AveragePool2D) -> tuple[_Scatter, int]:
    x_t = graph.tensors[op.inputs[0]]
    p = op.params
    batch, h, w, c = x_t.shape
    ptr, tq, tt = _taps((h, w), p.output_hw, p.filter_hw, p.stride, (1, 1), p.padding, batch)
    count = np.bincount(tq, minlength=batch * p.output_hw[0] * p.output_hw[1]).astype(np.int64)
    if count.min() == 0:
        raise TfliteGraphError(f"AVERAGE_POOL_2D {op.index}: a window lies entirely in the padding")
    taps = p.filter_hw[0] * p.filter_hw[1]
    n_out = batch * p.output_hw[0] * p.output_hw[1] * c
    sc = _Scatter(f"AVERAGE_POOL_2D {op.index}", c, c, n_out, ptr, tq, tt, np.ones((taps, c, 1), np.int64),
                  np.arange(c, dtype=np.int64), np.zeros(c, np.int64), 0, pool_count=count,
                  pool_range=(p.act_min, p.act_max))
    return sc, 0


class DeltaNetwork:
    """An int8 TFLite network run event-driven; see the module docstring.

    ``from_tflite(model)`` builds it; ``reset()`` then ``step(frame)`` per input frame.
    After each step ``last`` holds its :class:`StepCounts`; ``dense_macs_per_frame`` is the
    multiply-accumulates of one dense frame (every conv / FC filter tap, padding included,
    as TFLite's reference kernels loop) and ``dense_synops_per_frame`` the synaptic ops of a
    step where every element of every tensor changes (taps in the padding excluded);
    ``dense_requants_per_frame`` the layer outputs a dense frame requantises;
    ``state_bytes`` the state a device would keep (int32 accumulator + int8 output per
    layer output, plus the previous input frame)."""

    def __init__(self, graph: TfliteGraph) -> None:
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise TfliteGraphError(f"need one input and one output tensor, got {len(graph.inputs)} and "
                                   f"{len(graph.outputs)}")
        if graph.skipped:
            i, name = graph.skipped[0]
            raise UnsupportedOpError(name, i)
        self.graph = graph
        self.input_index, self.output_index = graph.inputs[0], graph.outputs[0]
        x_t = graph.tensors[self.input_index]
        if x_t.dtype != "int8" or x_t.quantization is None:
            raise TfliteGraphError(f"input tensor {x_t.index} must be quantised int8, got {x_t.dtype}")
        self.input_shape = x_t.shape
        self.output_shape = graph.tensors[self.output_index].shape
        self._ops: list[tuple[int, int, _Scatter | None]] = []  # (input tensor, output tensor, layer)
        known = {self.input_index}
        self.dense_macs_per_frame = 0
        for op in graph.ops:
            if isinstance(op, (Conv2D, DepthwiseConv2D)):
                layer, macs = _conv_scatter(graph, op)
            elif isinstance(op, FullyConnected):
                layer, macs = _fc_scatter(graph, op)
            elif isinstance(op, AveragePool2D):
                layer, macs = _pool_scatter(graph, op)
            elif isinstance(op, Reshape):
                layer, macs = None, 0
            else:
                raise UnsupportedOpError(type(op).__name__.upper(), op.index, "no event-driven form (int8 only)")
            if op.inputs[0] not in known:
                raise TfliteGraphError(f"operator {op.index} reads tensor {op.inputs[0]} before it is computed")
            known.add(op.outputs[0])
            self.dense_macs_per_frame += macs
            self._ops.append((op.inputs[0], op.outputs[0], layer))
        if self.output_index not in known:
            raise TfliteGraphError(f"output tensor {self.output_index} is not computed by a supported operator")
        self.dense_synops_per_frame = sum(int(s.fan_out.sum()) for _, _, s in self._ops if s is not None)
        self.dense_requants_per_frame = sum(s.n_out for _, _, s in self._ops if s is not None)
        # what a device would keep: an int32 accumulator and the int8 output of every layer
        # output, and the previous input frame
        self.state_bytes = 5 * self.dense_requants_per_frame + int(np.prod(self.input_shape))
        self._state: dict[int, np.ndarray] = {}
        self.last: StepCounts | None = None
        self.reset()

    @classmethod
    def from_tflite(cls, model: bytes | bytearray | str | os.PathLike | TfliteGraph) -> DeltaNetwork:
        """From a .tflite (bytes or path) or an already read :class:`TfliteGraph`."""
        return cls(model if isinstance(model, TfliteGraph) else read_tflite(model))

    @property
    def layers(self) -> list[str]:
        return [s.name for _, _, s in self._ops if s is not None]

    def reset(self) -> None:
        """State: the response to the all-zero-point input (a dense pass)."""
        x0 = np.full(int(np.prod(self.input_shape)), _zp(self.graph, self.input_index), np.int64)
        self._state = {self.input_index: x0}
        for src, dst, layer in self._ops:
            if layer is None:
                self._state[dst] = self._state[src]  # reshape: the same flat values
                continue
            layer.reset(self._state[src])
            self._state[dst] = layer.q
        self.last = None

    def step(self, frame: np.ndarray) -> np.ndarray:
        """TFLite's int8 output for ``frame`` (int8, the input tensor's shape, or without
        its leading batch of 1), computed from the changes since the previous frame."""
        f = np.asarray(frame)
        if f.dtype != np.int8 or (f.shape != self.input_shape and (1,) + f.shape != self.input_shape):
            raise ValueError(f"frame must be int8 of shape {self.input_shape}, got {f.dtype} {f.shape}")
        x = f.reshape(-1).astype(np.int64)
        old = self._state[self.input_index]
        idx = np.flatnonzero(x != old)
        d = x[idx] - old[idx]
        old[idx] = x[idx]
        deltas: dict[int, _Deltas] = {self.input_index: (idx, d)}
        counts = []
        for src, dst, layer in self._ops:
            if layer is None:
                deltas[dst] = deltas[src]
                continue
            deltas[dst], c = layer.apply(*deltas[src])
            counts.append(c)
        self.last = StepCounts(int(idx.size), tuple(counts))
        return self.output()

    def output(self) -> np.ndarray:
        """The current int8 output tensor (a copy, in the output tensor's shape)."""
        return self._state[self.output_index].astype(np.int8).reshape(self.output_shape)
