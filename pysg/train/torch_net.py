# SPDX-License-Identifier: MIT
"""The SpikingGamma network and its online gradient in PyTorch: a port of
`pysg.model.network` (forward, spikes in the loop), `gradients.online_step_grads`,
`optim.Adam` and `trainer.adapt_thresholds`, op for op, so the two backends agree to
rounding (tests/test_train_torch.py: 1e-6 relative in float64).

No autograd: the online rule is written out, as in numpy. The bucket states are the
eligibility traces and nothing of length T is kept, so memory is O(1) in the sequence
length (bench/train_memory.py --backend torch).

Parameters live on the device in float64 (as numpy's); a batch runs in the config's
dtype (float32 by default), its gradients accumulate in float64.

torch is an extra: `import_torch()` names it when missing.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from ..model.layers import ConvOp, DenseOp, _FlattenOp, _SumPoolOp
from ..model.network import Network
from .gradients import check_traces

EXTRA_HINT = 'pip install "pysg[torch]"'


def import_torch():
    """torch, or an ImportError that names the extra to install."""
    try:
        import torch
    except ImportError:
        raise ImportError(f"the torch training backend needs PyTorch: {EXTRA_HINT} "
                          f"(or use the numpy backend, --backend numpy)") from None
    return torch


torch = import_torch()
F = torch.nn.functional


# ---------------------------------------------------------------- operators
# Each numpy operator (pysg.model.layers) has a torch twin with the same three maps on
# flattened (M, N) activity: forward, transpose (credit to the input) and weight_grad.

class _TDense:
    def __init__(self, op: DenseOp):
        self.op = op

    def forward(self, w, a):
        return a @ w.T

    def transpose(self, w, g):
        return g @ w

    def weight_grad(self, g, a):
        return g.T @ a

    def patches(self, a):
        return a[:, None, :]


class _TConv:
    def __init__(self, op: ConvOp):
        self.op = op

    def _in4(self, a):
        return a.reshape(a.shape[0], *self.op.in_shape)

    def forward(self, w, a):
        out = F.conv2d(self._in4(a), w, stride=self.op.s, padding=self.op.p)
        return out.reshape(a.shape[0], -1)

    def transpose(self, w, g):
        m = g.shape[0]
        gin = torch.nn.grad.conv2d_input((m, *self.op.in_shape), w, g.reshape(m, *self.op.out_shape),
                                         stride=self.op.s, padding=self.op.p)
        return gin.reshape(m, -1)

    def weight_grad(self, g, a):
        m = g.shape[0]
        return torch.nn.grad.conv2d_weight(self._in4(a), self.op.weight_shape, g.reshape(m, *self.op.out_shape),
                                           stride=self.op.s, padding=self.op.p)

    def patches(self, a):
        """(M, Ho*Wo, C*k*k), ordered like numpy's ConvOp.patches (unfold's (c, i, j))."""
        return F.unfold(self._in4(a), self.op.k, padding=self.op.p, stride=self.op.s).transpose(1, 2)


class _TFlatten:
    def __init__(self, op: _FlattenOp):
        self.op = op

    def forward(self, a):
        return a

    def transpose(self, g):
        return g


class _TSumPool:
    def __init__(self, op: _SumPoolOp):
        self.op = op

    def forward(self, a):
        m = a.shape[0]
        c, h, w = self.op.in_shape
        # a sum (divisor 1) over whole windows; partial ones dropped, as numpy's
        return F.avg_pool2d(a.reshape(m, c, h, w), self.op.k, divisor_override=1).reshape(m, -1)

    def transpose(self, g):
        m = g.shape[0]
        c, h, w = self.op.in_shape
        _, ho, wo = self.op.out_shape
        k = self.op.k
        up = g.reshape(m, c, ho, wo).repeat_interleave(k, dim=2).repeat_interleave(k, dim=3)
        if up.shape[2:] == (h, w):
            return up.reshape(m, -1)
        out = g.new_zeros((m, c, h, w))
        out[:, :, : ho * k, : wo * k] = up
        return out.reshape(m, -1)


TORCH_OPS: dict[type, Callable[[Any], Any]] = {DenseOp: _TDense, ConvOp: _TConv, _FlattenOp: _TFlatten,
                                              _SumPoolOp: _TSumPool}


def torch_op(op):
    try:
        return TORCH_OPS[type(op)](op)
    except KeyError:
        raise ValueError(f"the torch backend has no operator for {type(op).__name__}; "
                         f"add one to pysg.train.torch_net.TORCH_OPS") from None


class TorchStage:
    """A numpy `Stage` with its operators bound to torch."""

    def __init__(self, st):
        self.st = st
        self.index, self.is_output = st.index, st.is_output
        self.n_in, self.n_out = st.n_in, st.n_out
        self.channels, self.spatial = st.syn.channels, st.syn.spatial
        self.pre = [torch_op(op) for op in st.pre]
        self.syn = torch_op(st.syn)

    def pre_forward(self, a):
        for op in self.pre:
            a = op.forward(a)
        return a

    def pre_transpose(self, g):
        for op in reversed(self.pre):
            g = op.transpose(g)
        return g

    def expand(self, p):
        return p if self.spatial == 1 else p.repeat_interleave(self.spatial, dim=0)

    def reduce(self, g):
        if self.spatial == 1:
            return g
        return g.reshape(self.channels, self.spatial, *g.shape[1:]).sum(dim=1)


# ---------------------------------------------------------------- the network


class TorchNet:
    """A `Network`'s parameters on a device (float64) and its simulation with traces."""

    def __init__(self, net: Network, device="cpu"):
        self.net = net
        self.device = torch.device(device)
        self.stages = [TorchStage(st) for st in net.stages]
        # copies: on the CPU as_tensor would alias the numpy arrays, and updates would leak into them
        self.params = {k: torch.tensor(v, device=self.device) for k, v in net.params.items()}
        self.n_buckets = net.config.n_buckets
        self.input_gain = net.config.input_gain
        self.input_min_count = net.config.input_min_count
        self.alphas64 = [torch.as_tensor(net.alphas(st.index), device=self.device) for st in net.stages]

    @property
    def trainable(self) -> list[str]:
        """The names `zero_grads` gives gradients for, in the numpy order."""
        return [k for k in self.params if not k.endswith((".theta", ".delays"))]

    def to_numpy(self) -> None:
        """Copy the device parameters into the numpy network (same dtypes)."""
        for k, v in self.params.items():
            self.net.params[k] = v.detach().cpu().numpy().astype(self.net.params[k].dtype, copy=True)

    def from_numpy(self) -> None:
        self.params = {k: torch.tensor(v, device=self.device) for k, v in self.net.params.items()}

    def init_state(self, batch: int, dtype) -> "TorchState":
        return TorchState(self, batch, dtype)

    def step(self, state: "TorchState", frame, *, spiking: bool = True):
        """`Network.step` with traces: frame (B, C*H*W) counts; returns the logits."""
        if self.input_min_count > 1:  # pysg.model.network.input_counts
            frame = torch.where(frame >= self.input_min_count, frame, torch.zeros_like(frame))
        drive = frame.to(state.dtype) * state.input_gain
        for ts in self.stages:
            l = ts.index
            a = ts.pre_forward(drive)
            if state.ring[l] is not None:
                a = state.delay(l, a)
            accumulate = l == 0 or spiking
            decay = state.decay[l]
            state.z[l] = _bucket_update(state.z[l], decay, ts.syn.forward(state.w[l], a), accumulate)
            state.u[l] = _bucket_update(state.u[l], decay, a, accumulate)
            x = state.b[l] + (state.z[l] * state.vt[l]).sum(dim=0)
            state.x[l] = x
            if ts.is_output:
                state.t += 1
                return x
            y = torch.clamp_min(x, 0.0)
            if spiking:
                p = state.alpha[l + 1][0] * state.enc[l]
                s = (y - p) > state.theta[l]
                amp = s * state.two_theta[l]
                state.enc[l] = p + amp
                drive = amp
            else:
                drive = y
        raise AssertionError("unreachable: the last stage is the output")


def _bucket_update(z, decay: tuple, inp, accumulate: bool):
    """Out of place: z (K, B, N). Tap k >= 1 reads tap k-1 of the previous step;
    decay = (alpha_0, alpha_k>=1, 1 - alpha_k>=1) (see TorchState.decay)."""
    a0, a, one_minus_a = decay
    upper = torch.addcmul(z[1:] * a, one_minus_a, z[:-1])
    first = torch.add(inp, z[0], alpha=a0) if accumulate else inp
    return torch.cat([first[None], upper], dim=0)


class TorchState:
    """`pysg.model.network.State` with traces, on the device."""

    def __init__(self, tnet: TorchNet, batch: int, dtype):
        k, dev, p = tnet.n_buckets, tnet.device, tnet.params
        self.dtype = dtype
        self.t = 0
        self.input_gain = tnet.input_gain
        st = tnet.stages
        self.w = [p[f"{s.index}.W"].to(dtype) for s in st]
        self.b = [s.expand(p[f"{s.index}.b"]).to(dtype) for s in st]
        self.v = [s.expand(p[f"{s.index}.V"]).to(dtype) for s in st]
        self.vt = [v.T[:, None, :].contiguous() for v in self.v]  # (K, 1, N) for x = b + sum_k V_k z^k
        self.alpha = [a.to(dtype) for a in tnet.alphas64]
        # per stage: alpha_0 (a Python number), alpha_k and 1 - alpha_k for k >= 1, shaped (K-1, 1, 1)
        self.decay = [(float(a[0]), a[1:, None, None], (1.0 - a[1:])[:, None, None]) for a in self.alpha]
        self.theta = [None if s.is_output else s.expand(p[f"{s.index}.theta"]).to(dtype) for s in st]
        self.two_theta = [None if t is None else 2 * t for t in self.theta]
        self.z = [torch.zeros((k, batch, s.n_out), dtype=dtype, device=dev) for s in st]
        self.u = [torch.zeros((k, batch, s.n_in), dtype=dtype, device=dev) for s in st]
        self.x = [None] * len(st)
        self.enc = [torch.zeros((batch, s.n_out), dtype=dtype, device=dev) for s in st[:-1]]
        self.delays = [p.get(f"{s.index}.delays") for s in st]
        self.delays = [None if d is None else d.to(torch.long) for d in self.delays]
        self.ring = [None if d is None else torch.zeros((int(d.max()) + 1, batch, s.n_in), dtype=dtype, device=dev)
                     for d, s in zip(self.delays, st)]

    def delay(self, l: int, a):
        ring, d = self.ring[l], self.delays[l]
        n = ring.shape[0]
        cols = torch.arange(ring.shape[2], device=ring.device)
        ring[(self.t + d) % n, :, cols] += a.T
        out = ring[self.t % n].clone()
        ring[self.t % n] = 0
        return out


# ---------------------------------------------------------------- the online rule


def cross_entropy(logits64, labels, w):
    """`gradients.cross_entropy` (float64): (loss tensor, dloss/dlogits)."""
    logp = torch.log_softmax(logits64, dim=1)
    picked = labels[:, None]
    loss = -torch.sum(w * logp.gather(1, picked)[:, 0])
    g = torch.exp(logp).scatter_add_(1, picked, torch.full_like(picked, -1.0, dtype=logp.dtype))
    return loss, g * w[:, None]


def zero_grads(tnet: TorchNet) -> dict:
    return {k: torch.zeros_like(tnet.params[k], dtype=torch.float64) for k in tnet.trainable}


class FirstStageTraces:
    """`gradients.FirstStageTraces` on the device: the same layout (K, N_in, B, P) and steps."""

    def __init__(self, tnet: TorchNet, batch: int, dtype):
        if len(tnet.stages) < 2:
            raise ValueError("traced credit needs at least two synaptic layers")
        first, second = tnet.stages[0], tnet.stages[1]
        k, dev = tnet.n_buckets, tnet.device
        self.tnet, self.k = tnet, k
        self.fan_in = first.st.syn.fan_in
        self.n_par = self.fan_in + k + 1
        self.n_in = second.n_in
        self.e = torch.zeros((k, self.n_in, batch, self.n_par), dtype=dtype, device=dev)
        d = tnet.params.get("1.delays")
        self.delays = None if d is None else d.to(torch.long)
        self.ring = None if d is None else torch.zeros((int(d.max()) + 1, self.n_in, batch, self.n_par),
                                                       dtype=dtype, device=dev)
        self.cols = torch.arange(self.n_in, device=dev)
        self.t = 0

    def advance(self, state: TorchState) -> None:
        first, second = self.tnet.stages[0], self.tnet.stages[1]
        c, sp, k = first.channels, first.spatial, self.k
        u, z, v = state.u[0], state.z[0], state.v[0]
        b = u.shape[1]
        patches = torch.stack([first.syn.patches(u[i]) for i in range(k)])  # (K, B, S, F)
        v_c = v.reshape(c, sp, k)[:, 0]
        mask = (state.x[0] > 0).to(u.dtype).reshape(b, c, sp).permute(1, 2, 0)[..., None]
        kernel = torch.matmul(patches.permute(2, 1, 3, 0), v_c.T).permute(3, 0, 1, 2)  # (C, S, B, F)
        zs = z.reshape(k, b, c, sp).permute(2, 3, 1, 0)
        jac = torch.cat([kernel * mask, zs * mask, mask], dim=3).reshape(c * sp, b * self.n_par)
        if second.pre:
            jac = second.pre_forward(jac.T).T
        jac = jac.reshape(self.n_in, b, self.n_par)
        if self.ring is not None:
            n = self.ring.shape[0]
            self.ring[(self.t + self.delays) % n, self.cols] = jac
            jac = self.ring[self.t % n]
        a = state.alpha[1]
        for i in range(k - 1, 0, -1):
            self.e[i].mul_(a[i]).add_(self.e[i - 1], alpha=float(1.0 - a[i]))
        self.e[0] = jac
        self.t += 1

    def accumulate(self, state: TorchState, delta, grads: dict) -> None:
        first, second = self.tnet.stages[0], self.tnet.stages[1]
        v, w = state.v[1], state.w[1]
        g_u = torch.stack([second.syn.transpose(w, delta * v[:, i]) for i in range(self.k)])
        g = torch.einsum("kbn,knbp->np", g_u, self.e)
        per_channel = g.reshape(first.channels, -1, self.n_par).sum(dim=1).to(torch.float64)
        grads["0.W"] += per_channel[:, : self.fan_in].reshape(first.st.syn.weight_shape)
        grads["0.V"] += per_channel[:, self.fan_in: -1]
        grads["0.b"] += per_channel[:, -1]


def online_step_grads(tnet: TorchNet, state: TorchState, g_logits, w, grads: dict, *, credit: str = "all",
                      act_reg: float = 0.0, traces: FirstStageTraces | None = None):
    """`gradients.online_step_grads`: accumulate one step's gradient; returns the
    activity loss (a 0-d tensor, so the device is not synchronised every step)."""
    check_traces(credit, traces, len(tnet.stages))
    act_loss = torch.zeros((), dtype=torch.float64, device=tnet.device)
    delta = g_logits.to(state.dtype)
    wd = w.to(state.dtype)[:, None]
    for ts in reversed(tnet.stages):
        l = ts.index
        if not ts.is_output:
            x = state.x[l]
            act = (act_reg / ts.n_out) * wd
            act_loss = act_loss + torch.sum(act * torch.clamp_min(x, 0.0)).to(torch.float64)
            delta = (delta + act) * (x > 0)
        _stage_param_grads(ts, state, delta, grads)
        if l == 0:
            break
        if traces is not None and l == 1:
            traces.accumulate(state, delta, grads)
            delta = torch.zeros_like(state.x[0])  # the first stage's own term: the activity penalty
            continue
        v = state.v[l]
        c = v[:, 0] if credit == "bucket0" else v.sum(dim=1)  # "traced" is "all" above the first stage
        delta = ts.pre_transpose(ts.syn.transpose(state.w[l], delta * c))
    return act_loss


def _stage_param_grads(ts: TorchStage, state: TorchState, delta, grads: dict) -> None:
    l, u, z = ts.index, state.u[ts.index], state.z[ts.index]
    k, b = u.shape[0], u.shape[1]
    g = delta[None, :, :] * state.vt[l]
    grads[f"{l}.W"] += ts.syn.weight_grad(g.reshape(k * b, -1), u.reshape(k * b, -1))
    grads[f"{l}.V"] += ts.reduce((delta[None] * z).sum(dim=1).T)
    grads[f"{l}.b"] += ts.reduce(delta.sum(dim=0))


# ---------------------------------------------------------------- Adam, thresholds


class TorchAdam:
    """`optim.Adam` on device tensors: the same formula, clip and state (m, v, steps)."""

    def __init__(self, opt, device):
        self.opt = opt  # the numpy Adam: its hyper-parameters, and its state for checkpoints
        self.m = {k: torch.tensor(v, device=device) for k, v in opt.m.items()}
        self.v = {k: torch.tensor(v, device=device) for k, v in opt.v.items()}

    def step(self, params: dict, grads: dict, lr: float) -> float:
        o = self.opt
        norm = float(torch.sqrt(sum(torch.sum(g * g) for g in grads.values())))
        scale = 1.0
        if o.clip_norm is not None and norm > o.clip_norm:
            scale = o.clip_norm / norm
        o.steps += 1
        c1 = 1.0 - o.beta1 ** o.steps
        c2 = 1.0 - o.beta2 ** o.steps
        for name, g in grads.items():
            g = g * scale
            m = self.m.setdefault(name, torch.zeros_like(g))
            v = self.v.setdefault(name, torch.zeros_like(g))
            m.mul_(o.beta1).add_((1 - o.beta1) * g)
            v.mul_(o.beta2).add_((1 - o.beta2) * g * g)
            params[name] -= lr * (m / c1) / (torch.sqrt(v / c2) + o.eps)
        return norm

    def to_numpy(self) -> None:
        self.opt.m = {k: t.cpu().numpy().copy() for k, t in self.m.items()}
        self.opt.v = {k: t.cpu().numpy().copy() for k, t in self.v.items()}


def percentile(a, q: float):
    """numpy's default ('linear') percentile along the last axis."""
    s = torch.sort(a, dim=-1).values
    n = s.shape[-1]
    pos = (q / 100.0) * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    t = pos - lo
    low, high = s[..., lo], s[..., hi]
    diff = high - low
    return high - diff * (1 - t) if t >= 0.5 else low + diff * t


def adapt_thresholds(tnet: TorchNet, ys: list, *, quantile: float, momentum: float,
                     floor_frac: float = 0.05) -> None:
    """`trainer.adapt_thresholds`; ys[l]: the sampled hidden outputs of stage l, any
    shape (..., N) (the percentile is over the multiset, so order does not matter)."""
    for l, ts in enumerate(tnet.stages[:-1]):
        if ys[l] is None or ys[l].numel() == 0:
            continue
        c, sp = ts.channels, ts.spatial
        per_channel = ys[l].reshape(-1, c, sp).transpose(0, 1).reshape(c, -1).to(torch.float64)
        q = percentile(per_channel, quantile)
        a0 = float(tnet.net.alphas(l + 1)[0])
        target = (1 - a0) / 2 * q
        live = target[target > 0]
        floor = floor_frac * (float(percentile(live, 50.0)) if live.numel() else 1.0)
        target = torch.clamp_min(target, floor)
        theta = tnet.params[f"{l}.theta"]
        theta += momentum * (target - theta)


