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

"traced" credit (`FirstStageTraces`): the first stage's parameters theta_0 reach the
loss through the second stage's delays and buckets, which hold the first stage's past.
Forward-mode traces carry that past exactly: per second-stage input i and first-stage
parameter p (of i's channel),

    J_ip(t)   = dy_i(t)/dtheta_p                     (local: 1[x_i > 0] x V, z, 1)
    E^0_ip(t) = J_ip(t - d_i)                        (d_i: the input's axonal delay)
    E^k_ip(t) = alpha_k E^k_ip(t-1) + (1 - alpha_k) E^(k-1)_ip(t-1)
    dtheta_p += sum_k sum_i [syn^T(delta V_k)]_i E^k_ip(t)

the second stage's bucket recursion applied to derivatives. Given the second stage's
delta this is the exact gradient of the analog network (for two stages: the whole
exact gradient); the second stage and above keep the online rule. The traces take
K x B x (fan-in + K + 1) x N_in floats (plus a ring for the delays): O(1) in T, but
the fan-in must be small (a convolution's shared kernel), so only the first stage
is traced.

Exact reference: back-propagation through time of the same loss through the analog
network (float64), with the adjoint of the bucket recursion

    lam^k(t) = syn^T(delta(t) V_k) + alpha_k lam^k(t+1) + (1 - alpha_(k+1)) lam^(k+1)(t+1)

(the alpha_0 term is absent where bucket 0 is set rather than accumulated).
"""
from __future__ import annotations

import numpy as np

from ..model.network import Network

CREDIT_MODES = ("all", "bucket0", "traced")


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


class FirstStageTraces:
    """Forward-mode traces of the first stage's parameters through the second stage's
    delays and input buckets (the "traced" credit, see the module doc). Call `advance`
    after every `net.step` (loss or not), `accumulate` where the loss counts.

    Laid out as K arrays (N_in, B, P): one second-stage input's traces are one contiguous
    block, so the delay ring moves whole blocks. Every per-step array is allocated once:
    fresh arrays of this size cost their page faults every step."""

    def __init__(self, net: Network, batch: int, dtype=np.float32):
        if len(net.stages) < 2:
            raise ValueError("traced credit needs at least two synaptic layers")
        first, second = net.stages[0], net.stages[1]
        k = net.config.n_buckets
        self.net, self.k, self.dtype = net, k, dtype
        self.fan_in = first.syn.fan_in
        self.n_par = self.fan_in + k + 1  # per channel: kernel, V, b
        self.n_in = second.n_in
        c, sp = first.syn.channels, first.syn.spatial
        block = (self.n_in, batch, self.n_par)
        self.e = [np.zeros(block, dtype) for _ in range(k)]
        self.scratch = np.empty(block, dtype)
        self.jac = np.empty((c, sp, batch, self.n_par), dtype)  # this step's, before pooling
        self.kernel = np.empty((c, sp * batch * self.fan_in), dtype)
        d = net.params.get("1.delays")
        self.delays = None if d is None else d.astype(np.intp)
        # Input i's Jacobian of step t is written to slot (t + d_i) % n and read at t + d_i,
        # before anything else can land there (d_i < n): plain stores, no clearing.
        self.ring = None if d is None else np.zeros((int(d.max()) + 1, *block), dtype)
        self.cols = np.arange(self.n_in)
        self.t = 0

    def advance(self, state) -> None:
        """Take the first stage's local Jacobian of this step into the traces."""
        first, second = self.net.stages[0], self.net.stages[1]
        syn, c, sp, f, k = first.syn, first.syn.channels, first.syn.spatial, self.fan_in, self.k
        u, z, v = state.u[0], state.z[0], state.v[0]
        b = u.shape[1]
        # 1. the recursion of buckets 1..K-1, reading last step's e[0] (a ring slot this
        # step's stores may overwrite)
        alpha = state.alpha[1]
        for i in range(k - 1, 0, -1):
            self.e[i] *= alpha[i]
            np.multiply(self.e[i - 1], 1.0 - alpha[i], out=self.scratch)
            self.e[i] += self.scratch
        # 2. this step's Jacobian (C, S, B, P): kernel taps, bucket weights, bias
        patches = syn.patches(u.reshape(k * b, -1)).reshape(k, b, sp, f)
        patches = np.ascontiguousarray(patches.transpose(0, 2, 1, 3)).reshape(k, -1)  # (K, S B F)
        v_c = v.reshape(c, sp, k)[:, 0]  # per channel (C, K)
        np.matmul(v_c.astype(self.dtype, copy=False), patches, out=self.kernel)
        mask = (state.x[0] > 0).reshape(b, c, sp).transpose(1, 2, 0).astype(self.dtype)[..., None]
        jac = self.jac
        np.multiply(self.kernel.reshape(c, sp, b, f), mask, out=jac[..., :f])
        np.multiply(z.reshape(k, b, c, sp).transpose(2, 3, 1, 0), mask, out=jac[..., f:-1])
        jac[..., -1:] = mask
        flat = jac.reshape(c * sp, b * self.n_par)
        if second.pre:  # pooling acts on the neuron axis
            flat = second.pre_forward(flat.T).T
        jac = flat.reshape(self.n_in, b, self.n_par)
        # 3. through the delays: bucket 0's trace is this step's slot of the ring
        if self.ring is not None:
            n = self.ring.shape[0]
            self.ring[(self.t + self.delays) % n, self.cols] = jac
            jac = self.ring[self.t % n]
        self.e[0] = jac
        self.t += 1

    def accumulate(self, state, delta: np.ndarray, grads: dict[str, np.ndarray]) -> None:
        """Add the first stage's gradient given the second stage's delta (B, N_out)."""
        first, second = self.net.stages[0], self.net.stages[1]
        v, w = state.v[1], state.w[1]
        g = np.zeros((self.n_in, self.n_par))
        for k in range(self.k):  # per input n: its (1, B) credit times its (B, P) traces
            g_u = second.syn.transpose(w, delta * v[:, k]).astype(self.dtype, copy=False)  # (B, N)
            g += np.matmul(g_u.T[:, None, :], self.e[k])[:, 0]
        per_channel = g.reshape(first.syn.channels, -1, self.n_par).sum(axis=1)  # (C, P)
        grads["0.W"] += per_channel[:, : self.fan_in].reshape(first.syn.weight_shape)
        grads["0.V"] += per_channel[:, self.fan_in: -1]
        grads["0.b"] += per_channel[:, -1]


def traces_for(net, batch: int, credit: str, dtype=np.float32, *, make=FirstStageTraces):
    """What `credit` needs besides the network state: the first stage's traces for
    "traced" (None for a single-stage network, which has no stage below to trace).
    `make` builds them: this module's class, or the torch backend's for a TorchNet."""
    return make(net, batch, dtype) if credit == "traced" and len(net.stages) > 1 else None


def check_traces(credit: str, traces, n_stages: int) -> None:
    if credit not in CREDIT_MODES:
        raise ValueError(f"credit must be one of {CREDIT_MODES}, got {credit!r}")
    if (traces is not None) != (credit == "traced" and n_stages > 1):
        raise ValueError("credit 'traced' on a multi-stage network goes with its first stage's traces "
                         "(traces_for), and only it")


def online_step_grads(net: Network, state, g_logits: np.ndarray, w: np.ndarray,
                      grads: dict[str, np.ndarray], *, credit: str = "all",
                      act_reg: float = 0.0, traces: FirstStageTraces | None = None) -> float:
    """Accumulate this step's online gradient into `grads`; returns the activity loss.

    `state` must come from `net.init_state(..., traces=True)` and have just been
    advanced by `net.step`. g_logits: dL(t)/dlogits (B, classes); w: (B,) loss weights.
    credit "traced" needs `traces` (`traces_for`), advanced with the same step.
    """
    check_traces(credit, traces, len(net.stages))
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
        if traces is not None and l == 1:
            traces.accumulate(state, delta, grads)
            delta = np.zeros_like(state.x[0])  # the first stage's own term: the activity penalty
            continue
        v = state.v[l]
        c = v[:, 0] if credit == "bucket0" else v.sum(axis=1)  # "traced" is "all" above the first stage
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
    traces = traces_for(net, batch, credit, dtype)
    grads = zero_grads(net)
    total = 0.0
    for t in range(t_steps):
        logits = net.step(state, flat[t], spiking=spiking)
        if traces is not None:
            traces.advance(state)
        w = weights[t]
        if not w.any():
            continue
        loss, g = cross_entropy(logits, labels, w)
        total += loss + online_step_grads(net, state, g, w, grads, credit=credit, act_reg=act_reg,
                                          traces=traces)
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
