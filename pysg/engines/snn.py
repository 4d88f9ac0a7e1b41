# SPDX-License-Identifier: MIT
"""Model kind "snn": layered spiking networks (.sgm version 3, NIR's), and its integer
reference engine "ref": :class:`SnnRef` is THE definition of the arithmetic of
docs/FORMAT.md section 12 (the C engine must match it bit for bit; golden vectors come
from it: runtime_c/tests/gen_snn_golden.py).

Logits of a step: the output entry's spikes (0/1) or its membrane v (int32), per the
entry's neuron and flag; scores sum them over every step (WHOLE_WINDOW): spike counts or
the summed membrane. stats["spikes"] has one counter per entry (the output's included):
its nonzero activations of the step."""
from __future__ import annotations

import numpy as np

from ..scoring import WHOLE_WINDOW
from ..sgm.snn import (ACT_MAX, DECAY_SHIFT, FORMAT_VERSION_SNN, NEURON_CUBALIF, NEURON_NONE, RESET_SUBTRACT,
                       RESET_SUBTRACT_NEXT, RESET_TO_VALUE, SKIND_CONV2D, SKIND_DENSE, SKIND_IDENTITY, SKIND_SUMPOOL,
                       SYN_GAIN_SHIFT, SgmSnnLayer, SgmSnnModel)
from .base import PyEngine
from .registry import LoadedModel, ModelInfo, ModelKind, native_engine, register_engine, register_kind

__all__ = ["SNN_KIND", "SnnRef", "SnnRefEngine", "rround", "sat32", "decay", "synaptic", "windows"]

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


def sat32(x: np.ndarray) -> np.ndarray:
    """Saturate int64 values to int32's range."""
    return np.clip(x, I32_MIN, I32_MAX)


def rround(x: np.ndarray, shift) -> np.ndarray:
    """x / 2^shift rounded half up: (x + 2^(shift-1)) >> shift, arithmetic (floor) shift
    on int64; shift 0 leaves x."""
    sh = np.asarray(shift, np.int64)
    half = np.where(sh > 0, np.left_shift(np.int64(1), np.maximum(sh - 1, 0)), 0)
    return (np.asarray(x, np.int64) + half) >> sh


def decay(v: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """v beta / 2^30, rounded half up (beta Q30 in [0, 2^30]: beta = 2^30 leaves v)."""
    return rround(v.astype(np.int64) * beta, DECAY_SHIFT)


def windows(a: np.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, oh: int, ow: int):
    """(ky, kx, a[:, y sh - ph + ky, x sw - pw + kx] over the output grid), zeros outside."""
    ap = np.pad(a, ((0, 0), (ph, ph), (pw, pw)))
    for ky in range(kh):
        for kx in range(kw):
            yield ky, kx, ap[:, ky:ky + sh * (oh - 1) + 1:sh, kx:kx + sw * (ow - 1) + 1:sw]


def synaptic(ly: SgmSnnLayer, a: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(n_out,) int64: sum_i w_ji a_i of one entry's synaptic kind (no bias). ``weights``
    replaces the entry's (all ones: the connection counts, for synops)."""
    w = ly.weights if weights is None else weights
    if ly.kind == SKIND_IDENTITY:
        return a.astype(np.int64)
    if ly.kind == SKIND_DENSE:
        return w.astype(np.int64) @ a.astype(np.int64)
    c, oh, ow = ly.out_shape
    x = a.reshape(ly.in_shape).astype(np.int64)
    out = np.zeros((c, oh, ow), np.int64)
    win = windows(x, *ly.kernel, *ly.stride, *ly.padding, oh, ow)
    if ly.kind == SKIND_SUMPOOL:
        for _, _, patch in win:
            out += patch
        return out.reshape(-1)
    g = ly.groups
    cg, og = ly.in_shape[0] // g, c // g
    w = w.astype(np.int64)
    for ky, kx, patch in win:
        for gi in range(g):
            out[gi * og:(gi + 1) * og] += np.einsum("oc,chw->ohw", w[gi * og:(gi + 1) * og, :, ky, kx],
                                                    patch[gi * cg:(gi + 1) * cg])
    return out.reshape(-1)


def fan_out(ly: SgmSnnLayer) -> np.ndarray:
    """(n_in,) int64: the outputs each input reaches (its taps inside the image, times the
    output channels of its group for a conv, its own channel for a pool)."""
    c, h, w = ly.in_shape
    _, oh, ow = ly.out_shape
    (kh, kw), (sh, sw), (ph, pw) = ly.kernel, ly.stride, ly.padding
    cover = np.zeros((h + 2 * ph, w + 2 * pw), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            cover[ky:ky + sh * (oh - 1) + 1:sh, kx:kx + sw * (ow - 1) + 1:sw] += 1
    per = ly.out_shape[0] // ly.groups if ly.kind == SKIND_CONV2D else 1
    return np.tile(cover[ph:ph + h, pw:pw + w].reshape(-1), c) * per


def synops_of(ly: SgmSnnLayer, a: np.ndarray, fan: np.ndarray | None = None) -> int:
    """(nonzero input, output) connections of a step: FORMAT.md 12 "Statistics"."""
    if ly.kind == SKIND_IDENTITY:
        return 0
    if ly.kind == SKIND_DENSE:
        return int((a != 0).sum()) * ly.n_out
    fan = fan_out(ly) if fan is None else fan
    return int(fan[a != 0].sum())


def per_neuron(ly: SgmSnnLayer, values: np.ndarray) -> np.ndarray:
    """(n_out,) of a per-channel array ((1,) or (out_c,))."""
    v = np.asarray(values, np.int64)
    if v.size == 1:
        return np.broadcast_to(v, (ly.n_out,))
    return np.repeat(v, ly.out_shape[1] * ly.out_shape[2])


class SnnRef:
    """The integer reference of a version 3 model, one sample. ``step(counts)`` runs one
    step from a (C*H*W,) count frame and returns (logits, spikes per entry, synops)."""

    def __init__(self, model: SgmSnnModel):
        self.model = model
        self.reset()

    def reset(self) -> None:
        self.t = 0
        self.act = [np.zeros(ly.n_out, np.int64) for ly in self.model.layers]
        self.v = [np.zeros(ly.n_out, np.int64) for ly in self.model.layers]
        self.isyn = [np.zeros(ly.n_out, np.int64) for ly in self.model.layers]
        self.ring = [np.zeros((ly.max_delay + 1, ly.n_in), np.int64) if ly.delays is not None else None
                     for ly in self.model.layers]
        self.fan = [fan_out(ly) if ly.kind in (SKIND_CONV2D, SKIND_SUMPOOL) else None for ly in self.model.layers]

    def step(self, counts: np.ndarray | None) -> tuple[np.ndarray, list[int], int]:
        m = self.model
        n_cells = int(np.prod(m.input_shape))
        a = np.zeros(n_cells, np.int64) if counts is None else np.minimum(np.asarray(counts, np.int64), ACT_MAX)
        spikes, synops = [], 0
        logits = None
        for e, ly in enumerate(m.layers):
            if ly.delays is not None:  # write this step's input into the ring, read each input d_i steps back
                slots = ly.max_delay + 1
                self.ring[e][self.t % slots] = a
                a = self.ring[e][(self.t - ly.delays.astype(np.int64)) % slots, np.arange(ly.n_in)]
            acc = synaptic(ly, a)
            synops += synops_of(ly, a, self.fan[e])
            if ly.bias is not None:
                acc = acc + per_neuron(ly, ly.bias)
            prev = self.act[e]
            if ly.rec_weights is not None:
                acc = acc + ly.rec_weights.astype(np.int64) @ prev
                synops += int((prev != 0).sum()) * ly.n_out
            cur = sat32(rround(acc * per_neuron(ly, ly.mult), per_neuron(ly, ly.shift)))
            out, logit = self._neuron(e, ly, cur, prev)
            self.act[e] = out
            spikes.append(int((out != 0).sum()))
            a, logits = out, logit
        self.t += 1
        return logits, spikes, synops

    def _neuron(self, e: int, ly: SgmSnnLayer, cur: np.ndarray, prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """FORMAT.md 12, steps 5-9: (activations, logits) of one entry."""
        if ly.neuron_kind == NEURON_NONE:
            out = np.zeros(ly.n_out, np.int64) if ly.is_output else np.clip(cur, 0, ACT_MAX)
            return out, cur
        x = cur
        if ly.neuron_kind == NEURON_CUBALIF:
            self.isyn[e] = sat32(decay(self.isyn[e], ly.param("beta_syn")) + x)
            x = sat32(rround(self.isyn[e] * ly.param("syn_gain"), SYN_GAIN_SHIFT))
        thr = ly.param("threshold")
        v = sat32(decay(self.v[e], ly.param("beta_mem")) + x)
        v = sat32(v + ly.param("v_bias"))
        if ly.reset == RESET_SUBTRACT_NEXT:
            v = sat32(v - thr * (prev != 0))
        if ly.spiking:
            s = (v >= thr) if ly.fire_ge else (v > thr)
            if ly.reset == RESET_SUBTRACT:
                v = sat32(v - thr * s)
            elif ly.reset == RESET_TO_VALUE:
                v = np.where(s, ly.param("v_reset"), v)
            out = s.astype(np.int64)
        else:
            out = np.zeros(ly.n_out, np.int64)
        self.v[e] = v
        return out, (v if ly.logits_v or not ly.spiking else out)


def _macs(ly: SgmSnnLayer) -> int:
    per = {SKIND_DENSE: ly.n_in, SKIND_CONV2D: (ly.in_shape[0] // ly.groups) * ly.kernel[0] * ly.kernel[1],
           SKIND_SUMPOOL: ly.kernel[0] * ly.kernel[1]}.get(ly.kind, 0)
    return ly.n_out * (per + (ly.n_out if ly.rec_weights is not None else 0))


def describe(m: SgmSnnModel) -> ModelInfo:
    return ModelInfo(labels=tuple(m.labels), dt_us=int(m.dt_us), sensor_size=tuple(m.sensor_size),
                     downsample=int(m.downsample), input_shape=tuple(m.input_shape),
                     hidden_neurons=int(sum(ly.n_out for ly in m.layers[:-1])),
                     dense_macs_per_step=int(sum(_macs(ly) for ly in m.layers)), spike_entries=len(m.layers))


SNN_KIND = register_kind(ModelKind("snn", "spiking network (.sgm version 3, NIR)", SgmSnnModel, WHOLE_WINDOW,
                                   describe, format_version=FORMAT_VERSION_SNN, writer="pysg.sgm:encode_snn"))


class SnnRefEngine(PyEngine):
    """:class:`SnnRef` through the common time base."""

    name = "ref"

    def __init__(self, model: LoadedModel):
        self._ref = SnnRef(model.obj)
        super().__init__(model)

    def _reset_state(self) -> None:
        self._ref.reset()

    def _compute(self, counts):
        return self._ref.step(counts)


register_engine("ref", "snn", SnnRefEngine)
register_engine("c", "snn", native_engine)  # runtime_c/src/engines/snn, bit-exact with SnnRef
