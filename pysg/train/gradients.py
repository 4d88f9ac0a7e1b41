# SPDX-License-Identifier: MIT
"""Gradients of a SpikingGamma network: the online rule and the exact reference.

Loss. At every step t of a sample the logits x(t) meet a cross-entropy loss with a
weight w_b(t) (see `loss_weights`), plus an activity penalty act_reg * mean_n y_n(t)
per hidden stage with the same weight, which keeps spike rates down (a sigma-delta
neuron's rate is proportional to its output y).

Online rule (DESIGN.md section 1). At each step, the error of that step's loss is sent
down through the layers at that instant; the bucket states are the eligibility traces:

    delta_j               = dL(t)/dy_j * 1[x_j > 0]       (dL/dx for the output stage)
    dW_ji                += sum_k delta_j V_jk yhat_i^k
    dV_jk                += delta_j z_j^k                 (z^k = W yhat^k)
    db_j                 += delta_j
    dL(t)/dy_i (below)    = sum_j delta_j c_j W_ji

with the credit weight c_j = sum_k V_jk ("all": a slow signal seen through every tap
at once) or c_j = V_j0 ("bucket0": only bucket 0 depends on the present step, so this
is the instantaneous part of the exact gradient). The sigma-delta pair counts as the
identity. Nothing is kept across steps but the network state: memory is O(1) in T.

Exact reference: back-propagation through time of the same loss through the analog
network (float64), with the adjoint of the bucket recursion

    lam^k(t) = syn^T(delta(t) V_k) + alpha_k lam^k(t+1) + (1 - alpha_(k+1)) lam^(k+1)(t+1)

(the alpha_0 term is absent where bucket 0 is set rather than accumulated).
"""
from __future__ import annotations

import numpy as np

from ..model.network import Network

CREDIT_MODES = ("all", "bucket0")


class LossSchedule:
    """Per-step loss weights of a batch: the steps from `warmup` x length to the end of
    each sample count, each with 1 / (steps counted x batch), so every sample weighs the
    same and the total is the batch mean of each sample's time-averaged loss. Computed
    per step (`at`), so nothing of size T is held."""

    def __init__(self, lengths: np.ndarray, warmup: float):
        if not 0.0 <= warmup < 1.0:
            raise ValueError(f"warmup must be in [0, 1), got {warmup}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.start = np.floor(warmup * self.lengths).astype(np.int64)
        self.scale = 1.0 / (np.maximum(self.lengths - self.start, 1) * len(self.lengths))

    def at(self, t: int) -> np.ndarray:
        return ((t >= self.start) & (t < self.lengths)) * self.scale


def loss_weights(lengths: np.ndarray, t_steps: int, warmup: float) -> np.ndarray:
    """(T, B) matrix of `LossSchedule` weights (for the reference and tests)."""
    sched = LossSchedule(lengths, warmup)
    return np.stack([sched.at(t) for t in range(t_steps)])


def cross_entropy(logits: np.ndarray, labels: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
    """Weighted softmax cross-entropy of one step: (loss, dloss/dlogits)."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n = len(labels)
    loss = -float(np.sum(w * logp[np.arange(n), labels]))
    g = np.exp(logp)
    g[np.arange(n), labels] -= 1.0
    return loss, g * w[:, None]


def zero_grads(net: Network) -> dict[str, np.ndarray]:
    return {k: np.zeros_like(v, dtype=np.float64) for k, v in net.params.items()
            if not k.endswith((".theta", ".delays"))}


def _stage_param_grads(net, st, state, delta, u, z, grads) -> None:
    """Accumulate dW, dV, db of one stage from its delta and its traces u, z (K, B, N)."""
    l, v = st.index, state.v[st.index]
    k, b = u.shape[0], u.shape[1]
    g = delta[None, :, :] * v.T[:, None, :]
    grads[f"{l}.W"] += st.syn.weight_grad(g.reshape(k * b, -1), u.reshape(k * b, -1))
    grads[f"{l}.V"] += st.reduce(np.einsum("bn,kbn->nk", delta, z))
    grads[f"{l}.b"] += st.reduce(delta.sum(axis=0))


def online_step_grads(net: Network, state, g_logits: np.ndarray, w: np.ndarray,
                      grads: dict[str, np.ndarray], *, credit: str = "all",
                      act_reg: float = 0.0) -> float:
    """Accumulate this step's online gradient into `grads`; returns the activity loss.

    `state` must come from `net.init_state(..., traces=True)` and have just been
    advanced by `net.step`. g_logits: dL(t)/dlogits (B, classes); w: (B,) loss weights.
    """
    if credit not in CREDIT_MODES:
        raise ValueError(f"credit must be one of {CREDIT_MODES}, got {credit!r}")
    act_loss = 0.0
    delta = g_logits.astype(state.dtype, copy=False)
    for st in reversed(net.stages):
        l = st.index
        if not st.is_output:
            x = state.x[l]
            act = (act_reg / st.n_out) * w.astype(state.dtype)[:, None]
            act_loss += float(np.sum(act * np.maximum(x, 0.0)))
            delta = (delta + act) * (x > 0)
        _stage_param_grads(net, st, state, delta, state.u[l], state.z[l], grads)
        if l == 0:
            break
        v = state.v[l]
        c = v.sum(axis=1) if credit == "all" else v[:, 0]
        delta = st.pre_transpose(st.syn.transpose(state.w[l], delta * c))
    return act_loss


def analog_loss(net: Network, frames: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                act_reg: float = 0.0) -> float:
    """The training loss of the analog network in float64 (used for finite differences)."""
    t_steps, batch = frames.shape[:2]
    flat = frames.reshape(t_steps, batch, -1)
    state = net.init_state(batch, dtype=np.float64)
    total = 0.0
    for t in range(t_steps):
        logits = net.step(state, flat[t], spiking=False)
        total += cross_entropy(logits, labels, weights[t])[0]
        for st in net.stages[:-1]:
            y = np.maximum(state.x[st.index], 0.0)
            total += act_reg * float(np.sum(weights[t][:, None] * y)) / st.n_out
    return total


def online_gradients(net: Network, frames: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                     *, credit: str = "all", act_reg: float = 0.0, spiking: bool = False,
                     dtype=np.float64) -> tuple[float, dict[str, np.ndarray]]:
    """Run a batch forward and accumulate the online gradient at every step.
    frames: (T, B, ...) input counts; weights: (T, B) from `loss_weights`."""
    t_steps, batch = frames.shape[:2]
    flat = frames.reshape(t_steps, batch, -1)
    state = net.init_state(batch, traces=True, dtype=dtype)
    grads = zero_grads(net)
    total = 0.0
    for t in range(t_steps):
        logits = net.step(state, flat[t], spiking=spiking)
        w = weights[t]
        if not w.any():
            continue
        loss, g = cross_entropy(logits, labels, w)
        total += loss + online_step_grads(net, state, g, w, grads, credit=credit, act_reg=act_reg)
    return total, grads


def bptt_gradients(net: Network, frames: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                   act_reg: float = 0.0) -> tuple[float, dict[str, np.ndarray]]:
    """Exact gradient of `analog_loss` by back-propagation through time (float64).
    Memory is O(T): meant as a reference on small networks and short sequences."""
    t_steps, batch = frames.shape[:2]
    flat = frames.reshape(t_steps, batch, -1)
    state = net.init_state(batch, traces=True, dtype=np.float64)
    stages = net.stages
    us, xs, glog = [], [], []
    total = 0.0
    for t in range(t_steps):
        logits = net.step(state, flat[t], spiking=False)
        loss, g = cross_entropy(logits, labels, weights[t])
        total += loss
        for st in stages[:-1]:
            total += act_reg * float(np.sum(weights[t][:, None] * np.maximum(state.x[st.index], 0.0))) / st.n_out
        us.append([u.copy() for u in state.u])
        xs.append([x.copy() for x in state.x])
        glog.append(g)

    grads = zero_grads(net)
    k_b = net.config.n_buckets
    lam = [np.zeros((k_b, batch, st.n_in)) for st in stages]
    delays = state.delays
    dmax = [0 if d is None else int(d.max()) for d in delays]
    lam0_hist = [np.zeros((t_steps + dmax[st.index] + 1, batch, st.n_in)) for st in stages]
    for t in range(t_steps - 1, -1, -1):
        delta = glog[t]
        g_y = None  # dL/dy of the stage below, set by the stage above it
        for st in reversed(stages):
            l = st.index
            if not st.is_output:
                x = xs[t][l]
                act = (act_reg / st.n_out) * weights[t][:, None]
                delta = (g_y + act) * (x > 0)
            # z^k = W u^k: recompute from the traces (exact in float64).
            u = us[t][l]
            z = np.stack([st.syn.forward(state.w[l], u[k]) for k in range(k_b)])
            _stage_param_grads(net, st, state, delta, u, z, grads)
            if l == 0:
                break
            # Adjoint of stage l's input buckets, then credit for the layer below.
            alpha = state.alpha[l]
            v = state.v[l]
            new = np.stack([st.syn.transpose(state.w[l], delta * v[:, k]) for k in range(k_b)])
            for k in range(k_b):
                if k > 0:  # stages above the input set bucket 0 in analog mode
                    new[k] += alpha[k] * lam[l][k]
                if k + 1 < k_b:
                    new[k] += (1.0 - alpha[k + 1]) * lam[l][k + 1]
            lam[l] = new
            if delays[l] is None:
                g_pre = new[0]
            else:
                lam0_hist[l][t] = new[0]
                cols = np.arange(st.n_in)
                g_pre = lam0_hist[l][t + delays[l], :, cols].T
            g_y = st.pre_transpose(g_pre)
    return total, grads


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.sum(a * b) / (na * nb))
