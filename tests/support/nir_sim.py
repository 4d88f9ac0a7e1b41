# SPDX-License-Identifier: MIT
"""A small discrete-time numpy simulator of NIR graphs, written from the node equations in
nir 1.0.4's docstrings alone (not from pysg's model code), for the export tests.

Discretisation (docs/NIR.md, "Export"): one step of dt seconds; the graph is evaluated in
topological order, a node's input is the sum of its in-edges' values of the same step;
LI is forward Euler on its ODE, tau dv/dt = (v_leak - v) + R I:
    v[t] = v[t-1] + (dt / tau) * (v_leak - v[t-1] + R * I[t]);
Threshold z = [I > threshold]; Delay y[t] = x[t - round(delay / dt)]. `li="exponential"`
instead integrates the LI ODE exactly over each step with the input held (zero-order hold),
the other common reading of a continuous-time NIR graph. A Delay whose every
entry is at least one step breaks cycles (it is evaluated from its history). Values carry a
leading batch axis.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _conv2d(x: np.ndarray, node) -> np.ndarray:
    """Cross-correlation with zero padding, stride, groups (dilation 1), plus bias."""
    w = np.asarray(node.weight)
    stride = np.broadcast_to(np.asarray(node.stride), (2,))
    pad = np.broadcast_to(np.asarray(node.padding), (2,))
    if np.any(np.asarray(node.dilation) != 1):
        raise NotImplementedError("dilation")
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    kh, kw = w.shape[2], w.shape[3]
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, :: stride[0], :: stride[1]]
    groups = int(node.groups)
    cin_g, cout_g = w.shape[1], w.shape[0] // groups
    outs = []
    for g in range(groups):
        part = win[:, g * cin_g:(g + 1) * cin_g]
        wg = w[g * cout_g:(g + 1) * cout_g]
        outs.append(np.einsum("bchwij,ocij->bohw", part, wg))
    return np.concatenate(outs, axis=1) + np.asarray(node.bias)[None, :, None, None]


def _sumpool(x: np.ndarray, node) -> np.ndarray:
    k = np.broadcast_to(np.asarray(node.kernel_size), (2,))
    s = np.broadcast_to(np.asarray(node.stride), (2,))
    if np.any(np.asarray(node.padding) != 0):
        raise NotImplementedError("pool padding")
    win = sliding_window_view(x, (k[0], k[1]), axis=(2, 3))[:, :, :: s[0], :: s[1]]
    return win.sum(axis=(4, 5))


def _flatten(x: np.ndarray, node) -> np.ndarray:
    shape = x.shape[1:]
    start = int(node.start_dim)
    end = int(node.end_dim) % len(shape)
    new = shape[:start] + (int(np.prod(shape[start:end + 1])),) + shape[end + 1:]
    return x.reshape((x.shape[0],) + new)


class NirSim:
    """Step a NIR graph: `step(frame)` with frame (B, *input shape) returns {output: value}."""

    def __init__(self, graph, dt: float, batch: int = 1, li: str = "euler"):
        if li not in ("euler", "exponential"):
            raise ValueError(f"li must be euler or exponential, got {li!r}")
        self.g, self.dt, self.batch, self.li = graph, float(dt), batch, li
        self.values: dict[str, np.ndarray] = {}  # every node's value at the last step
        self.preds: dict[str, list[str]] = defaultdict(list)
        for a, b in graph.edges:
            self.preds[b].append(a)
        self.steps = {n: np.rint(np.asarray(node.delay, np.float64) / self.dt).astype(np.int64)
                      for n, node in graph.nodes.items() if type(node).__name__ == "Delay"}
        self.breakers = {n for n, d in self.steps.items() if d.min() >= 1}
        self.order = self._toposort()
        self.state: dict[str, np.ndarray] = {}
        self.hist = {n: np.zeros((int(d.max()) + 1, batch) + d.shape) for n, d in self.steps.items()}
        self.t = 0

    def _toposort(self) -> list[str]:
        deps = {n: [p for p in self.preds[n] if n not in self.breakers] for n in self.g.nodes}
        order, done = [], set()
        while len(order) < len(deps):
            ready = [n for n in deps if n not in done and all(p in done for p in deps[n])]
            if not ready:
                raise ValueError("cycle without a Delay of at least one step")
            for n in sorted(ready):
                order.append(n)
                done.add(n)
        return order

    def _input(self, name: str, vals: dict) -> np.ndarray:
        out = None
        for p in self.preds[name]:
            out = vals[p] if out is None else out + vals[p]
        return out

    def _delay_read(self, name: str) -> np.ndarray:
        d, h = self.steps[name].reshape(-1), self.hist[name]
        flat = h.reshape(h.shape[0], self.batch, -1)
        got = flat[(self.t - d) % h.shape[0], :, np.arange(d.size)]  # (M, B)
        return got.T.reshape((self.batch,) + self.steps[name].shape)

    def step(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        vals: dict[str, np.ndarray] = {}
        for name in self.order:
            node = self.g.nodes[name]
            kind = type(node).__name__
            if kind == "Input":
                vals[name] = np.asarray(frame, np.float64)
                continue
            if kind == "Delay":
                if name not in self.breakers:
                    self.hist[name][self.t % self.hist[name].shape[0]] = self._input(name, vals)
                vals[name] = self._delay_read(name)
                continue
            x = self._input(name, vals)
            vals[name] = self._apply(name, node, kind, x)
        for name in self.breakers:
            self.hist[name][self.t % self.hist[name].shape[0]] = self._input(name, vals)
        self.t += 1
        self.values = vals
        return {n: vals[n] for n, node in self.g.nodes.items() if type(node).__name__ == "Output"}

    def _apply(self, name: str, node, kind: str, x: np.ndarray) -> np.ndarray:
        if kind == "Output":
            return x
        if kind == "Scale":
            return x * np.asarray(node.scale)
        if kind == "Linear":
            return x @ np.asarray(node.weight).T
        if kind == "Affine":
            return x @ np.asarray(node.weight).T + np.asarray(node.bias)
        if kind == "Conv2d":
            return _conv2d(x, node)
        if kind == "SumPool2d":
            return _sumpool(x, node)
        if kind == "Flatten":
            return _flatten(x, node)
        if kind == "Threshold":
            return (x > np.asarray(node.threshold)).astype(np.float64)
        if kind == "LI":
            v = self.state.get(name, np.zeros_like(x))
            tau, v_leak, r = np.asarray(node.tau), np.asarray(node.v_leak), np.asarray(node.r)
            if self.li == "euler":
                v = v + (self.dt / tau) * (v_leak - v + r * x)
            else:  # the ODE solved exactly over the step with the input held (zero-order hold)
                a = np.exp(-self.dt / tau)
                v = a * v + (1 - a) * (v_leak + r * x)
            self.state[name] = v
            return v
        raise NotImplementedError(f"node {name}: {kind}")
