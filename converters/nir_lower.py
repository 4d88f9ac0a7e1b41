# SPDX-License-Identifier: MIT
"""A NIR chain (:mod:`.nir_graph`) lowered to float entries, the same layered network
pysg's .sgm version 3 runs, still in float (docs/NIR.md "Lowering"): every weight
node folds its neighbouring Scale / AvgPool factors, every neuron its discrete-time
update under a :class:`Convention` (dt, integration, reset, comparison: how the source
framework steps the network). :class:`FloatSnn` simulates it in float64 numpy: the
quantisation's oracle."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pysg.sgm.snn import (ACT_MAX, NEURON_CUBALIF, NEURON_IF, NEURON_INTEGRATOR, NEURON_LI, NEURON_LIF,
                          NEURON_NONE, NEURON_THRESHOLD, RESET_NONE, RESET_SUBTRACT, RESET_SUBTRACT_NEXT, SKIND_CONV2D,
                          SKIND_DENSE, SKIND_IDENTITY, SKIND_SUMPOOL, SPIKING)

from pysg.engines.snn import windows

from .nir_graph import ChainNode, NirImportError, arr

__all__ = ["Convention", "CONVENTIONS", "FloatEntry", "lower_chain", "FloatSnn", "float_synaptic", "input_shape_of"]


@dataclass(frozen=True)
class Convention:
    """How a source framework steps NIR's continuous-time neurons (docs/NIR.md "Time").
    ``integration``: "euler" (v += dt/tau (v_leak - v + r I): snnTorch's) or "exp" (exact
    for an input held over the step: sinabs'); ``reset``: a RESET_* of pysg.sgm.snn."""
    name: str
    dt: float
    integration: str
    reset: int
    fire_ge: bool


CONVENTIONS = {
    "snntorch": Convention("snntorch", 1e-4, "euler", RESET_SUBTRACT_NEXT, False),
    "sinabs": Convention("sinabs", 1.0, "exp", RESET_SUBTRACT, True),
    "nir": Convention("nir", 1.0, "exp", RESET_SUBTRACT, False),
}
NEURON_OF = {"LIF": NEURON_LIF, "CubaLIF": NEURON_CUBALIF, "IF": NEURON_IF, "LI": NEURON_LI, "I": NEURON_INTEGRATOR,
             "Threshold": NEURON_THRESHOLD}


@dataclass
class FloatEntry:
    """One entry in float: ``acc = W x + b (+ R a_prev)``, ``I = gain acc`` (gain per output
    channel), then the neuron with per-neuron float parameters (FORMAT.md 12 in float)."""
    kind: int
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    gain: np.ndarray | None = None          # (out_c,)
    neuron: int = NEURON_NONE
    params: dict = field(default_factory=dict)  # beta_mem, beta_syn, syn_gain, threshold, v_reset, v_bias: (n_out,)
    reset: int = RESET_NONE
    fire_ge: bool = False
    logits_v: bool = False
    rec_weights: np.ndarray | None = None
    delays: np.ndarray | None = None
    names: list[str] = field(default_factory=list)  # the NIR nodes folded into it

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))

    def per_neuron(self, per_channel: np.ndarray) -> np.ndarray:
        return np.repeat(np.asarray(per_channel, np.float64), self.out_shape[1] * self.out_shape[2])


def _pair(v, what: str, name: str) -> tuple[int, int]:
    a = np.asarray(v).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, 2)
    if a.size != 2 or np.any(a != np.round(a)) or np.any(a < 0):
        raise NirImportError(f"NIR node {name!r}: {what} {v!r} must be one or two non-negative integers")
    return int(a[0]), int(a[1])


def input_shape_of(node, name: str) -> tuple[int, int, int]:
    """(C, H, W) of the Input node (a leading batch dimension of 1 dropped; a flat (n,)
    input is (1, 1, n))."""
    shape = [int(x) for x in np.asarray(node.input_type["input"]).reshape(-1)]
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) == 2 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) == 1:
        return (1, 1, shape[0])
    if len(shape) != 3:
        raise NirImportError(f"NIR node {name!r} (Input): input shape {shape} is neither (C, H, W) nor (n,)")
    return tuple(shape)


def _uniform_per_channel(values: np.ndarray, shape: tuple[int, int, int], what: str, name: str) -> np.ndarray:
    """(C,) of a per-element array over ``shape`` that is uniform within each channel."""
    per = np.asarray(values, np.float64).reshape(shape[0], -1)
    if np.any(per != per[:, :1]):
        raise NirImportError(f"NIR node {name!r}: {what} varies within a channel; pysg folds it per output channel")
    return per[:, 0].copy()


def _elementwise(values, shape: tuple[int, int, int], name: str, what: str) -> np.ndarray:
    """(n,) of a parameter given as a scalar, per channel (C,) / (C, 1, 1), or per element."""
    v = arr(values)
    n = int(np.prod(shape))
    if v.size == 1:
        return np.full(n, float(v.reshape(-1)[0]))
    if v.size == n:
        return v.reshape(-1).copy()
    if v.size == shape[0]:
        return np.repeat(v.reshape(-1), shape[1] * shape[2])
    raise NirImportError(f"NIR node {name!r}: {what} has {v.size} values for a signal of shape {shape}")


def _neuron_params(cn: ChainNode, shape, conv: Convention) -> tuple[int, dict, np.ndarray]:
    """(neuron kind, per-neuron params, per-neuron input gain) of a neuron node."""
    t, nd, name = cn.type, cn.node, cn.name
    n = int(np.prod(shape))

    def el(attr):
        return _elementwise(getattr(nd, attr), shape, name, attr)

    def disc(tau):
        if np.any(tau <= 0):
            raise NirImportError(f"NIR node {name!r} ({t}): tau must be > 0")
        if conv.integration == "euler":
            a = 1.0 - conv.dt / tau
            if np.any(a < 0):
                raise NirImportError(f"NIR node {name!r} ({t}): tau {tau.min():g} < dt {conv.dt:g}: the Euler step "
                                     f"is unstable (choose --nir-dt or --nir-from)")
            return a, conv.dt / tau
        a = np.exp(-conv.dt / tau)
        return a, 1.0 - a

    zero = np.zeros(n)
    p = {k: zero.copy() for k in ("beta_mem", "beta_syn", "syn_gain", "threshold", "v_reset", "v_bias")}
    if t in ("LIF", "LI"):
        a, k = disc(el("tau"))
        p["beta_mem"], p["v_bias"] = a, k * el("v_leak")
        gain = k * el("r")
    elif t == "CubaLIF":
        a_s, k_s = disc(el("tau_syn"))
        a_m, k_m = disc(el("tau_mem"))
        p["beta_mem"], p["beta_syn"], p["syn_gain"] = a_m, a_s, k_m * el("r")
        p["v_bias"] = k_m * el("v_leak")
        gain = k_s * el("w_in")
    elif t in ("IF", "I"):
        p["beta_mem"] = np.ones(n)
        gain = conv.dt * el("r")
    else:  # Threshold
        gain = np.ones(n)
    if t in ("LIF", "CubaLIF", "IF"):
        p["threshold"] = el("v_threshold")
    elif t == "Threshold":
        p["threshold"] = el("threshold")
    return NEURON_OF[t], p, gain


class _Lowering:
    def __init__(self, conv: Convention, in_shape: tuple[int, int, int], logits: str):
        self.conv, self.logits = conv, logits
        self.shape = in_shape
        self.flat = False
        self.op: FloatEntry | None = None
        self.op_scale: np.ndarray | None = None   # per output element of the pending op
        self.in_scale: np.ndarray | None = None   # per input element of the next op
        self.in_delays: np.ndarray | None = None
        self.entries: list[FloatEntry] = []

    # ---------------------------------------------------------------- ops
    def _start(self, entry: FloatEntry, name: str) -> None:
        entry.delays, self.in_delays = self.in_delays, None
        entry.names.append(name)
        self.op, self.op_scale = entry, np.ones(entry.n_out)
        self.shape = entry.out_shape

    def _close_pool(self, cn: ChainNode) -> None:
        """A pending sum pool / identity without a neuron becomes a counting entry; its
        output factor moves onto the next op's input."""
        if self.op is None:
            return
        if self.op.kind not in (SKIND_SUMPOOL, SKIND_IDENTITY):
            raise NirImportError(f"NIR node {cn.name!r} ({cn.type}) follows weights ({self.op.names[-1]!r}) without "
                                 f"a neuron between them; pysg fuses only Affine/Linear -> Affine/Linear")
        scale, op = self.op_scale, self.op
        op.gain = np.ones(op.out_shape[0])
        self.entries.append(op)
        self.op, self.op_scale = None, None
        self.in_scale = scale if np.any(scale != 1) else None

    def dense(self, cn: ChainNode) -> None:
        w = arr(cn.node.weight)
        b = arr(cn.node.bias) if cn.type == "Affine" else np.zeros(w.shape[0])
        if self.op is not None and self.op.kind == SKIND_DENSE and self.op.rec_weights is None:
            prev, s = self.op, self.op_scale
            w1 = prev.weights * s[:, None]
            prev.weights, prev.bias = w @ w1, w @ (prev.bias * s) + b
            prev.out_shape = (w.shape[0], 1, 1)
            self.op_scale, self.shape = np.ones(w.shape[0]), prev.out_shape
            prev.names.append(cn.name)
            return
        self._close_pool(cn)
        n_in = int(np.prod(self.shape))
        if w.ndim != 2 or w.shape[1] != n_in:
            raise NirImportError(f"NIR node {cn.name!r} ({cn.type}): weight {w.shape} does not take the {n_in} "
                                 f"inputs of shape {self.shape}")
        if self.in_scale is not None:
            w = w * self.in_scale[None, :]
            self.in_scale = None
        self._start(FloatEntry(SKIND_DENSE, self.shape, (w.shape[0], 1, 1), weights=w, bias=b), cn.name)

    def conv2d(self, cn: ChainNode) -> None:
        nd = cn.node
        self._close_pool(cn)
        if self.flat:
            raise NirImportError(f"NIR node {cn.name!r} (Conv2d) after a Flatten: pysg's conv takes (C, H, W)")
        w, c, h, wd = arr(nd.weight), *self.shape
        if w.ndim != 4:
            raise NirImportError(f"NIR node {cn.name!r} (Conv2d): weight of shape {w.shape}, expected (O, I, kh, kw)")
        if _pair(nd.dilation, "dilation", cn.name) != (1, 1):
            raise NirImportError(f"NIR node {cn.name!r} (Conv2d): dilation {nd.dilation} is not supported (only 1)")
        g = int(nd.groups)
        if w.shape[1] * g != c or w.shape[0] % g:
            raise NirImportError(f"NIR node {cn.name!r} (Conv2d): weight {w.shape} with groups {g} does not take "
                                 f"{c} input channels")
        kh, kw = w.shape[2:]
        sh, sw = _pair(nd.stride, "stride", cn.name)
        if isinstance(nd.padding, str):
            if nd.padding == "valid":
                ph, pw = 0, 0
            elif (sh, sw) == (1, 1) and kh % 2 and kw % 2:
                ph, pw = kh // 2, kw // 2
            else:
                raise NirImportError(f"NIR node {cn.name!r} (Conv2d): padding 'same' needs stride 1 and odd kernels")
        else:
            ph, pw = _pair(nd.padding, "padding", cn.name)
        if ph >= kh or pw >= kw:
            raise NirImportError(f"NIR node {cn.name!r} (Conv2d): padding ({ph}, {pw}) must be < the kernel")
        oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
        if oh < 1 or ow < 1:
            raise NirImportError(f"NIR node {cn.name!r} (Conv2d): kernel larger than the padded input {self.shape}")
        if self.in_scale is not None:
            s = _uniform_per_channel(self.in_scale, self.shape, "the input scale", cn.name)
            cg, og = c // g, w.shape[0] // g
            idx = (np.arange(w.shape[0]) // og)[:, None] * cg + np.arange(cg)[None, :]
            w = w * s[idx][:, :, None, None]
            self.in_scale = None
        b = arr(nd.bias) if nd.bias is not None else np.zeros(w.shape[0])
        self._start(FloatEntry(SKIND_CONV2D, self.shape, (w.shape[0], oh, ow), weights=w, bias=np.broadcast_to(
            b, (w.shape[0],)).copy(), kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw), groups=g), cn.name)

    def pool(self, cn: ChainNode) -> None:
        if self.op is not None:
            raise NirImportError(f"NIR node {cn.name!r} ({cn.type}) directly after {self.op.names[-1]!r}: pysg pools "
                                 f"spikes or counts (put a neuron before the pool)")
        if self.flat:
            raise NirImportError(f"NIR node {cn.name!r} ({cn.type}) after a Flatten: pooling takes (C, H, W)")
        kh, kw = _pair(cn.node.kernel_size, "kernel_size", cn.name)
        sh, sw = _pair(cn.node.stride, "stride", cn.name)
        ph, pw = _pair(cn.node.padding, "padding", cn.name)
        c, h, w = self.shape
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        if min(kh, kw, sh, sw) < 1 or ph >= kh or pw >= kw or oh < 1 or ow < 1:
            raise NirImportError(f"NIR node {cn.name!r} ({cn.type}): kernel {kh}x{kw}, stride {sh}x{sw}, padding "
                                 f"{ph}x{pw} do not fit the input {self.shape}")
        pre = self.in_scale
        self.in_scale = None
        self._start(FloatEntry(SKIND_SUMPOOL, self.shape, (c, oh, ow), kernel=(kh, kw), stride=(sh, sw),
                               padding=(ph, pw)), cn.name)
        if pre is not None:  # a per-channel factor commutes with the sum
            self.op_scale *= np.repeat(_uniform_per_channel(pre, self.op.in_shape,
                                                            "the scale before a pool", cn.name), oh * ow)
        if cn.type == "AvgPool2d":
            self.op_scale /= kh * kw

    def scale(self, cn: ChainNode) -> None:
        s = _elementwise(cn.node.scale, self.shape, cn.name, "scale")
        if self.op is not None:
            self.op_scale = self.op_scale * s
        else:
            self.in_scale = s if self.in_scale is None else self.in_scale * s

    def delay(self, cn: ChainNode) -> None:
        if self.op is not None:
            raise NirImportError(f"NIR node {cn.name!r} (Delay) between {self.op.names[-1]!r} and its neuron: pysg "
                                 f"delays an entry's inputs (put the Delay after a neuron or the Input)")
        d = _elementwise(cn.node.delay, self.shape, cn.name, "delay") / self.conv.dt
        steps = np.round(d)
        if np.any(np.abs(d - steps) > 1e-6 * np.maximum(1, d)) or np.any(steps < 0) or np.any(steps > 255):
            raise NirImportError(f"NIR node {cn.name!r} (Delay): delays / dt = {d.min():g}..{d.max():g} must be "
                                 f"whole steps in 0..255 (dt {self.conv.dt:g})")
        self.in_delays = (steps if self.in_delays is None else self.in_delays + steps).astype(np.int64)

    def neuron(self, cn: ChainNode, is_last: bool) -> None:
        if self.op is None:
            self._start(FloatEntry(SKIND_IDENTITY, self.shape, self.shape), "(identity)")
            if self.in_scale is not None:
                self.op_scale, self.in_scale = self.in_scale, None
        e, s = self.op, self.op_scale
        kind, params, gain = _neuron_params(cn, e.out_shape, self.conv)
        total = s * gain
        if e.kind in (SKIND_DENSE, SKIND_CONV2D):
            # the Scale factors after the weights fold into the rows; the neuron's gain stays the entry's
            rows = _uniform_per_channel(s, e.out_shape, "the scale after the weights", cn.name)
            e.weights = e.weights * rows.reshape((-1,) + (1,) * (e.weights.ndim - 1))
            e.bias = e.bias * rows
            total = gain
        e.gain = _uniform_per_channel(total, e.out_shape, "the neuron's input gain", cn.name)
        e.neuron, e.params = kind, params
        if kind in SPIKING and kind != NEURON_THRESHOLD:
            e.reset, e.fire_ge = self.conv.reset, self.conv.fire_ge
        elif kind == NEURON_THRESHOLD:
            e.fire_ge = self.conv.fire_ge
        if cn.recurrent is not None:
            r = arr(cn.recurrent.weight)
            if r.shape != (e.n_out, e.n_out):
                raise NirImportError(f"NIR node {cn.recurrent_name!r} ({type(cn.recurrent).__name__}): recurrent "
                                     f"weight {r.shape} must be ({e.n_out}, {e.n_out})")
            if e.kind not in (SKIND_DENSE, SKIND_CONV2D):
                raise NirImportError(f"NIR node {cn.name!r}: a recurrent loop on a neuron without input weights")
            if type(cn.recurrent).__name__ == "Affine":  # its bias is one more constant input current
                e.bias = e.bias + _uniform_per_channel(arr(cn.recurrent.bias), e.out_shape, "the recurrent bias",
                                                       cn.recurrent_name)
            e.rec_weights = r
        e.names.append(cn.name)
        e.logits_v = is_last and self.logits == "membrane" and kind in SPIKING
        self.entries.append(e)
        self.op = self.op_scale = None
        self.flat = False


def lower_chain(chain: list[ChainNode], conv: Convention, *, logits: str = "spikes",
                input_shape: tuple[int, int, int] | None = None) -> tuple[tuple[int, int, int], list[FloatEntry]]:
    """(input shape, float entries) of a chain from :func:`.nir_graph.chain_of`."""
    shape = input_shape or input_shape_of(chain[0].node, chain[0].name)
    lw = _Lowering(conv, shape, logits)
    body = chain[1:-1]
    for i, cn in enumerate(body):
        t = cn.type
        if t in ("Affine", "Linear"):
            lw.dense(cn)
        elif t == "Conv2d":
            lw.conv2d(cn)
        elif t in ("SumPool2d", "AvgPool2d"):
            lw.pool(cn)
        elif t == "Flatten":
            lw.flat = True  # the stored order is already C-major: only conv and pooling mind
        elif t == "Scale":
            lw.scale(cn)
        elif t == "Delay":
            lw.delay(cn)
        elif t in NEURON_OF:
            lw.neuron(cn, is_last=all(x.type in ("Flatten",) for x in body[i + 1:]))
        else:  # Input / Output inside the chain: nested pass-throughs are dropped by chain_of
            raise NirImportError(f"NIR node {cn.name!r} ({t}) in the middle of the chain")
    if lw.op is not None:  # weights straight into the Output: their currents are the logits
        e = lw.op
        if e.kind in (SKIND_DENSE, SKIND_CONV2D):
            rows = _uniform_per_channel(lw.op_scale, e.out_shape, "the output scale",
                                        chain[-1].name)
            e.weights = e.weights * rows.reshape((-1,) + (1,) * (e.weights.ndim - 1))
            e.bias, e.gain = e.bias * rows, np.ones(e.out_shape[0])
        else:
            e.gain = _uniform_per_channel(lw.op_scale, e.out_shape, "the output scale",
                                          chain[-1].name)
        lw.entries.append(e)
    elif lw.in_scale is not None and np.any(lw.in_scale <= 0) | np.any(lw.in_scale != lw.in_scale[0]):
        raise NirImportError(f"NIR node {chain[-1].name!r}: a Scale after the last neuron that is not one "
                             f"positive factor (it would change the decision)")
    if lw.in_delays is not None:
        raise NirImportError(f"NIR node {chain[-1].name!r}: a Delay right before the Output has no entry to delay")
    if not lw.entries:
        raise NirImportError("NIR graph: no weights and no neurons between Input and Output")
    return shape, lw.entries


def float_synaptic(e: FloatEntry, x: np.ndarray) -> np.ndarray:
    """(n_out,) float64 ``sum_i w_ji x_i`` of an entry's synaptic kind (FORMAT.md 12 step 3)."""
    if e.kind == SKIND_IDENTITY:
        return x.copy()
    if e.kind == SKIND_DENSE:
        return e.weights @ x
    c, oh, ow = e.out_shape
    out = np.zeros((c, oh, ow))
    win = windows(x.reshape(e.in_shape), *e.kernel, *e.stride, *e.padding, oh, ow)
    if e.kind == SKIND_SUMPOOL:
        for _, _, patch in win:
            out += patch
        return out.reshape(-1)
    g = e.groups
    cg, og = e.in_shape[0] // g, c // g
    for ky, kx, patch in win:
        for gi in range(g):
            out[gi * og:(gi + 1) * og] += np.einsum("oc,chw->ohw", e.weights[gi * og:(gi + 1) * og, :, ky, kx],
                                                    patch[gi * cg:(gi + 1) * cg])
    return out.reshape(-1)


class FloatSnn:
    """The lowered network stepped in float64 (FORMAT.md 12 without rounding, saturation
    or int8 weights): ``step(counts)`` -> (logits, activations per entry)."""

    def __init__(self, entries: list[FloatEntry], input_shape: tuple[int, int, int]):
        self.entries, self.input_shape = entries, input_shape
        self.reset()

    def reset(self) -> None:
        self.t = 0
        self.act = [np.zeros(e.n_out) for e in self.entries]
        self.v = [np.zeros(e.n_out) for e in self.entries]
        self.i = [np.zeros(e.n_out) for e in self.entries]
        self.ring = [np.zeros((int(e.delays.max()) + 1, e.n_in)) if e.delays is not None else None
                     for e in self.entries]

    def step(self, counts: np.ndarray | None) -> np.ndarray:
        x = np.minimum(np.zeros(int(np.prod(self.input_shape))) if counts is None
                       else np.asarray(counts, np.float64).reshape(-1), ACT_MAX)
        logits = None
        for k, e in enumerate(self.entries):
            if e.delays is not None:
                slots = self.ring[k].shape[0]
                self.ring[k][self.t % slots] = x
                x = self.ring[k][(self.t - e.delays) % slots, np.arange(e.n_in)]
            acc = float_synaptic(e, x)
            if e.bias is not None:
                acc = acc + e.per_neuron(e.bias)
            prev = self.act[k]
            if e.rec_weights is not None:
                acc = acc + e.rec_weights @ prev
            cur = acc * e.per_neuron(e.gain)
            if e.neuron == NEURON_NONE:
                self.act[k] = np.zeros(e.n_out) if k == len(self.entries) - 1 else np.clip(cur, 0, ACT_MAX)
                x, logits = self.act[k], cur
                continue
            p = e.params
            u = cur
            if e.neuron == NEURON_CUBALIF:
                self.i[k] = p["beta_syn"] * self.i[k] + cur
                u = p["syn_gain"] * self.i[k]
            v = p["beta_mem"] * self.v[k] + u + p["v_bias"]
            if e.reset == RESET_SUBTRACT_NEXT:
                v = v - p["threshold"] * (prev != 0)
            s = np.zeros(e.n_out)
            if e.neuron in SPIKING:
                s = ((v >= p["threshold"]) if e.fire_ge else (v > p["threshold"])).astype(np.float64)
                if e.reset == RESET_SUBTRACT:
                    v = v - p["threshold"] * s
                elif e.reset != RESET_NONE and e.reset != RESET_SUBTRACT_NEXT:
                    v = np.where(s > 0, p["v_reset"], v)
            self.v[k], self.act[k] = v, s
            x = s
            logits = v if (e.logits_v or e.neuron not in SPIKING) else s
        self.t += 1
        return logits
