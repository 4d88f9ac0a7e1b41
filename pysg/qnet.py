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

``reset()`` sets the state to the network's response to the input of no input (the zero
point, or an event model's lut[0]: one dense pass through the same scatter code). Because each layer is linear up to the
requantisation and each delta is exact, every ``step(frame)`` returns TFLite's output for
that frame bit for bit; the arithmetic (synaptic ops, requantisations) is proportional to
the changes. This numpy reference also zeroes and scans one dense change buffer per layer
and step (O(outputs) bookkeeping that the C runtime replaces by a touched list). The C
runtime scatters each changed output straight into the next layer's accumulators (no
delta lists: docs/FORMAT.md 9); this reference hands a layer's changes on as one array:
the same adds into the same accumulators, the same requantisations, the same counts.

Layouts as TFLite: NHWC activations of batch 1, flat index ``(y * W + x) * C + c``. A
fully connected layer is a 1 x 1 "conv" over the rows of its [rows, n_in] input. The
network comes from a version 2 .sgm model (docs/FORMAT.md 7-10): a TFLite model goes
through the converter first (``pysg.converters.tflite_sgm.delta_network``), which drops a
float model's QUANTIZE / DEQUANTIZE edges and refuses other operators; this module never
imports the converters. Integer arithmetic throughout in int64 (the accumulators hold int32
values: the loader checks they cannot overflow). :class:`QnetRef` adds the event-count
encoder and the scores: the reference of runtime_c/src/engines/qnet/.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from . import qkernels as qk
from .sgm import COUNT_MAX, QKIND_DEPTHWISE, QKIND_FC, QKIND_POOL, SgmQLayer, SgmQModel, load_sgm
from .sgm.qnet import ring_entries_for

__all__ = ["DeltaNetwork", "LayerCounts", "QnetRef", "StepCounts"]

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
          padding) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (ptr, tap_q, tap_t) from input positions to (output position, tap) pairs."""
    (h, w), (oh, ow), (kh, kw) = in_hw, out_hw, k_hw
    oy, ox, ky, kx = np.meshgrid(np.arange(oh), np.arange(ow), np.arange(kh), np.arange(kw), indexing="ij")
    y = oy * stride[0] - padding[0] + ky * dilation[0]
    x = ox * stride[1] - padding[1] + kx * dilation[1]
    inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    p = (y * w + x)[inside]
    q = (oy * ow + ox)[inside]
    t = (ky * kw + kx)[inside]
    order = np.argsort(p, kind="stable")
    ptr = np.zeros(h * w + 1, np.int64)
    np.cumsum(np.bincount(p, minlength=h * w), out=ptr[1:])
    return ptr, q[order].astype(np.int64), t[order].astype(np.int64)


def _layer_scatter(ly: SgmQLayer, index: int) -> tuple[_Scatter, int]:
    """The scatter table of one version 2 layer entry, and its dense MACs per frame
    (every filter tap, padding included, as TFLite's reference kernels loop)."""
    (h, w, cin), (oh, ow, cout) = ly.in_shape, ly.out_shape
    name = f"{ly.kind_name} {index}"
    bias = (ly.bias.astype(np.int64) if ly.bias is not None else np.zeros(cout, np.int64))
    rq = (qk.Requant(ly.multiplier, ly.shift, ly.output_offset, ly.act_min, ly.act_max)
          if ly.multiplier is not None else None)
    n_out = oh * ow * cout
    if ly.kind == QKIND_FC:
        # rows b of the [rows, n_in] input reach output row b through one "tap"
        ptr = np.arange(h + 1, dtype=np.int64)
        sc = _Scatter(name, cin, cout, n_out, ptr, np.arange(h, dtype=np.int64), np.zeros(h, np.int64),
                      np.ascontiguousarray(ly.weights.astype(np.int64)[None]), np.zeros(cin, np.int64), bias,
                      -ly.input_offset, requant=rq)
        return sc, h * cout * cin
    kh, kw = ly.kernel
    ptr, tq, tt = _taps((h, w), (oh, ow), (kh, kw), ly.stride, ly.dilation, ly.padding)
    if ly.kind == QKIND_POOL:
        count = np.bincount(tq, minlength=oh * ow).astype(np.int64)
        if count.min() == 0:
            raise ValueError(f"{name}: a window lies entirely in the padding")
        sc = _Scatter(name, cin, cin, n_out, ptr, tq, tt, np.ones((kh * kw, cin, 1), np.int64),
                      np.arange(cin, dtype=np.int64), np.zeros(cin, np.int64), 0, pool_count=count,
                      pool_range=(ly.act_min, ly.act_max))
        return sc, 0
    wts = ly.weights.astype(np.int64)
    if ly.kind == QKIND_DEPTHWISE:
        m = ly.depth_multiplier
        wt = wts.reshape(kh * kw, cin, m)                  # channel c M + k reads input channel c
        base = np.arange(cin, dtype=np.int64) * m
        macs = oh * ow * cout * kh * kw
    else:
        cig = ly.filter_c
        groups = cin // cig
        cpg = cout // groups
        # HWIO [t][ci][o]: input channel g cig + ci feeds its group's outputs g cpg + k
        wt = wts.reshape(kh * kw, cig, groups, cpg).transpose(0, 2, 1, 3).reshape(kh * kw, cin, cpg)
        base = (np.arange(cin, dtype=np.int64) // cig) * cpg
        macs = oh * ow * cout * kh * kw * cig
    sc = _Scatter(name, cin, cout, n_out, ptr, tq, tt, np.ascontiguousarray(wt), base, bias,
                  -ly.input_offset, requant=rq)
    return sc, macs


class DeltaNetwork:
    """An int8 network run event-driven on its input tensor; see the module docstring.

    Built from a version 2 model (:class:`pysg.sgm.SgmQModel`, what ``pysg convert``
    writes; a TFLite model through ``pysg.converters.tflite_sgm.delta_network``). ``reset()``
    then ``step(frame)`` per input frame. After each step ``last`` holds its
    :class:`StepCounts`; ``dense_macs_per_frame`` is the multiply-accumulates of one dense
    frame (every conv / FC filter tap, padding included, as TFLite's reference kernels
    loop) and ``dense_synops_per_frame`` the synaptic ops of a step where every element of
    every tensor changes (taps in the padding excluded); ``dense_requants_per_frame`` the
    layer outputs a dense frame requantises; ``state_bytes`` the state a device would keep
    (int32 accumulator + int8 output per layer output, plus the previous input frame)."""

    def __init__(self, model: SgmQModel) -> None:
        if not isinstance(model, SgmQModel):
            raise TypeError(f"DeltaNetwork runs a version 2 model (SgmQModel), got {type(model).__name__}; "
                            "convert a TFLite model with pysg.converters.tflite_sgm.delta_network")
        self.model = model
        h, w, c = model.input_shape
        self.input_shape = (1, h, w, c)
        last = model.layers[-1].out_shape
        # TFLite's shapes: a fully connected output is [rows, n], anything else NHWC
        fc_last = model.layers[-1].kind == QKIND_FC
        self.output_shape = (last[0], last[2]) if fc_last else (1,) + tuple(last)
        self.zero_input = model.input.output_offset   # the tensor of no input
        built = [_layer_scatter(ly, i) for i, ly in enumerate(model.layers, start=1)]
        self._layers = [sc for sc, _ in built]
        self.dense_macs_per_frame = sum(m for _, m in built)
        self.dense_synops_per_frame = sum(int(sc.fan_out.sum()) for sc in self._layers)
        self.dense_requants_per_frame = sum(sc.n_out for sc in self._layers)
        self.state_bytes = 5 * self.dense_requants_per_frame + h * w * c
        self._x = np.zeros(h * w * c, np.int64)
        self.last: StepCounts | None = None
        self.reset()

    @property
    def layers(self) -> list[str]:
        return [s.name for s in self._layers]

    def reset(self) -> None:
        """State: the response to the input tensor of no input (a dense pass)."""
        self._x[:] = self.zero_input
        x = self._x
        for layer in self._layers:
            layer.reset(x)
            x = layer.q
        self.last = None

    def step_deltas(self, idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Set input elements ``idx`` (flat NHWC) to ``values`` and run one step."""
        old = self._x[idx]
        moved = values != old
        idx, d = idx[moved], values[moved] - old[moved]
        self._x[idx] = values[moved]
        counts = []
        for layer in self._layers:
            (idx, d), c = layer.apply(idx, d)
            counts.append(c)
        self.last = StepCounts(int(moved.sum()), tuple(counts))
        return self.output()

    def step(self, frame: np.ndarray) -> np.ndarray:
        """TFLite's int8 output for ``frame`` (int8, the input tensor's shape, or without
        its leading batch of 1), computed from the changes since the previous frame."""
        f = np.asarray(frame)
        if f.dtype != np.int8 or (f.shape != self.input_shape and (1,) + f.shape != self.input_shape):
            raise ValueError(f"frame must be int8 of shape {self.input_shape}, got {f.dtype} {f.shape}")
        x = f.reshape(-1).astype(np.int64)
        idx = np.flatnonzero(x != self._x)
        return self.step_deltas(idx, x[idx])

    def output(self) -> np.ndarray:
        """The current int8 output tensor (a copy, in the output tensor's shape)."""
        return self._layers[-1].q.astype(np.int8).reshape(self.output_shape)


class QnetRef:
    """The integer reference of a version 2 file, step for step what the C runtime does
    (docs/FORMAT.md sections 7.2 and 8): the input entry's event-count encoder (the
    bounded event ring of the last W + 1 steps' (cell, count) entries, slice sums, the
    LUT) or tensor input, then :class:`DeltaNetwork`; logits = the last layer's int8
    outputs as int32; scores summed from step ``max(score_start, W - 1)``.

    Ring overflow: a step's entries are its cells with a count, in ascending cell order;
    those that do not fit in the E entries left by the W previous steps are lost, their
    events counted in ``last_lost`` (this step) and ``ring_lost`` (since reset)."""

    def __init__(self, model: SgmQModel | bytes | bytearray | str | os.PathLike) -> None:
        if not isinstance(model, SgmQModel):
            if isinstance(model, (str, os.PathLike)):
                with open(model, "rb") as f:
                    model = f.read()
            model = load_sgm(model)
            if not isinstance(model, SgmQModel):
                raise ValueError("not a version 2 (imported network) .sgm file")
        self.model = model
        self.net = DeltaNetwork(model)
        h, w, _ = model.input_shape
        self.slices, self.window, self.polarities = model.slices, model.window, model.polarities
        self._lut = model.input.weights.astype(np.int64) if self.slices else None
        self.ring_entries = ring_entries_for(model.input, model.layers)
        if self.slices:
            # tensor element (y, x, k P + p) of cell (p, y, x) and slice k
            p, y, x = np.meshgrid(np.arange(self.polarities), np.arange(h), np.arange(w), indexing="ij")
            self._elem = np.stack([((y * w + x) * (self.slices * self.polarities) + k * self.polarities + p).ravel()
                                   for k in range(self.slices)])          # (S, cells)
        self.score_start = 0
        self.reset()

    def reset(self) -> None:
        self.net.reset()
        self.step_index = 0
        self._held: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # step -> (cells, counts) in the ring
        self.last_lost = 0
        self.ring_lost = 0
        self.logits = np.zeros(self.model.n_classes, np.int64)
        self.scores = np.zeros(self.model.n_classes, np.int64)
        self.score_start = 0

    def score_from(self, step: int) -> None:
        self.score_start = int(step)
        self.scores[:] = 0

    def _finish(self, out: np.ndarray) -> np.ndarray:
        self.logits = out.reshape(-1).astype(np.int64)
        if self.step_index >= max(self.score_start, self.window - 1):
            self.scores += self.logits
        self.step_index += 1
        return self.logits.copy()

    def step_counts(self, counts: np.ndarray | None) -> np.ndarray:
        """One step of event counts per cell (P, in_h, in_w) (None: no events); the logits."""
        if not self.slices:
            raise ValueError("this model takes its input tensor directly (step_tensor)")
        s, W = self.step_index, self.window
        cells = self.model.cells
        row = np.zeros(cells, np.int64) if counts is None else \
            np.minimum(np.asarray(counts, np.int64).reshape(-1), COUNT_MAX)
        nz = np.flatnonzero(row)
        free = self.ring_entries - sum(c.size for c, _ in self._held.values())  # steps s - W .. s - 1
        self.last_lost = int(row[nz[free:]].sum())
        self.ring_lost += self.last_lost
        keep = nz[:free]
        self._held[s] = (keep, row[keep])
        ls = W // self.slices
        idx, vals = [], []
        for k in range(self.slices):
            total = np.zeros(cells, np.int64)
            for step in range(s - W + 1 + k * ls, s - W + 1 + (k + 1) * ls):
                if step in self._held:
                    c, n = self._held[step]
                    total[c] += n
            idx.append(self._elem[k])
            vals.append(self._lut[np.minimum(total, self._lut.size - 1)])
        self._held.pop(s - W, None)  # the oldest step has left every slice
        return self._finish(self.net.step_deltas(np.concatenate(idx), np.concatenate(vals)))

    def step_tensor(self, x: np.ndarray) -> np.ndarray:
        """One step from the whole int8 input tensor (tensor-input models); the logits."""
        if self.slices:
            raise ValueError("this model builds its input tensor from event counts (step_counts)")
        return self._finish(self.net.step(x))

    def prediction(self) -> int:
        return int(np.argmax(self.scores)) if self.step_index else -1
