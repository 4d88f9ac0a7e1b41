# SPDX-License-Identifier: MIT
"""The baseline's float CNN in numpy (NHWC, OHWI filters: TFLite's layouts).

    x (32, 32, C) -> conv 3x3 /2 SAME + ReLU -> (16, 16, c1)
                  -> conv 3x3 /2 SAME + ReLU -> (8, 8, c2)
                  -> conv 3x3 /2 SAME + ReLU -> (4, 4, c3)
                  -> flatten (NHWC order) -> fully connected -> 11 logits

SAME padding with stride 2 on an even size pads one row/column after the image and none
before (TFLite's rule: pad before = total // 2). Trained with softmax cross-entropy on
single frames (each frame carries its gesture's label), Adam, im2col convolutions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["CnnParams", "TrainConfig", "forward", "init_params", "macs_per_frame", "train"]


@dataclass
class CnnParams:
    """Conv filters ``w[i]`` (O, 3, 3, I) and biases ``b[i]``; fully connected ``wf``
    (n_classes, 4 * 4 * c3) and ``bf``."""
    w: list[np.ndarray]
    b: list[np.ndarray]
    wf: np.ndarray
    bf: np.ndarray

    def arrays(self) -> list[np.ndarray]:
        return [*self.w, *self.b, self.wf, self.bf]


@dataclass(frozen=True)
class TrainConfig:
    channels: tuple[int, int, int] = (8, 16, 32)
    epochs: int = 6
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    shift: int = 0  # augmentation: random translation by up to this many pixels (zero fill)


def init_params(channels: tuple[int, int, int], n_classes: int, rng: np.random.Generator,
                in_channels: int = 2) -> CnnParams:
    ins = (in_channels,) + tuple(channels[:-1])
    w = [rng.normal(0, np.sqrt(2.0 / (9 * i)), (o, 3, 3, i)).astype(np.float32) for i, o in zip(ins, channels)]
    b = [np.zeros(o, np.float32) for o in channels]
    n_in = 16 * channels[-1]
    wf = rng.normal(0, np.sqrt(1.0 / n_in), (n_classes, n_in)).astype(np.float32)
    return CnnParams(w, b, wf, np.zeros(n_classes, np.float32))


def macs_per_frame(channels: tuple[int, int, int], n_classes: int, in_channels: int = 2) -> int:
    """Multiply-accumulates of one frame (every filter tap, padding included)."""
    sizes, ins, total = (16, 8, 4), (in_channels,) + tuple(channels[:-1]), 0
    for s, i, o in zip(sizes, ins, channels):
        total += s * s * o * 9 * i
    return total + 16 * channels[-1] * n_classes


def _im2col(x: np.ndarray) -> np.ndarray:
    """x (N, H, W, C) -> patches (N, H/2, W/2, 3, 3, C) of the stride-2 SAME conv."""
    n, h, w, c = x.shape
    xp = np.zeros((n, h + 1, w + 1, c), x.dtype)
    xp[:, :h, :w] = x
    s = xp.strides
    return as_strided(xp, (n, h // 2, w // 2, 3, 3, c), (s[0], 2 * s[1], 2 * s[2], s[1], s[2], s[3]),
                      writeable=False)


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cols = _im2col(x)
    n, oh, ow = cols.shape[:3]
    cols = cols.reshape(n * oh * ow, -1)
    y = cols @ w.reshape(w.shape[0], -1).T + b
    return y.reshape(n, oh, ow, -1), cols


def _conv_back(dy: np.ndarray, cols: np.ndarray, w: np.ndarray, x_shape: tuple[int, ...]):
    n, oh, ow, o = dy.shape
    dy2 = dy.reshape(-1, o)
    dw = (dy2.T @ cols).reshape(w.shape)
    db = dy2.sum(0)
    dcols = (dy2 @ w.reshape(o, -1)).reshape(n, oh, ow, 3, 3, -1)
    _, h, wd, c = x_shape
    dxp = np.zeros((n, h + 1, wd + 1, c), dy.dtype)
    for ky in range(3):
        for kx in range(3):
            dxp[:, ky:ky + 2 * oh:2, kx:kx + 2 * ow:2] += dcols[:, :, :, ky, kx]
    return dxp[:, :h, :wd], dw, db


def forward(p: CnnParams, x: np.ndarray, *, keep: bool = False):
    """Logits (N, n_classes) of float frames x (N, 32, 32, C); with ``keep`` also the
    per-layer (input, im2col, pre-activation) cache and the ReLU outputs."""
    cache, acts, h = [], [], x
    for w, b in zip(p.w, p.b):
        z, cols = _conv(h, w, b)
        if keep:
            cache.append((h.shape, cols, z))
        h = np.maximum(z, 0)
        acts.append(h)
    flat = h.reshape(h.shape[0], -1)
    logits = flat @ p.wf.T + p.bf
    return (logits, cache, acts) if keep else logits


def _grads(p: CnnParams, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
    logits, cache, acts = forward(p, x, keep=True)
    z = logits - logits.max(1, keepdims=True)
    prob = np.exp(z)
    prob /= prob.sum(1, keepdims=True)
    n = x.shape[0]
    loss = float(-np.log(prob[np.arange(n), y] + 1e-12).mean())
    d = prob
    d[np.arange(n), y] -= 1
    d /= n
    flat = acts[-1].reshape(n, -1)
    dwf, dbf = d.T @ flat, d.sum(0)
    dh = (d @ p.wf).reshape(acts[-1].shape)
    dws, dbs = [None] * 3, [None] * 3
    for i in (2, 1, 0):
        x_shape, cols, zi = cache[i]
        dz = dh * (zi > 0)
        dh, dws[i], dbs[i] = _conv_back(dz, cols, p.w[i], x_shape)
    return loss, [*dws, *dbs, dwf, dbf]


def _shifted(x: np.ndarray, shift: int, rng: np.random.Generator) -> np.ndarray:
    """x translated by one random (dy, dx) in [-shift, shift]^2 per batch, zero fill."""
    dy, dx = (int(v) for v in rng.integers(-shift, shift + 1, 2))
    out = np.zeros_like(x)
    h, w = x.shape[1:3]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def train(x: np.ndarray, y: np.ndarray, cfg: TrainConfig, n_classes: int,
          progress=None) -> CnnParams:
    """Adam on (x float32 (N, 32, 32, C), y int labels); ``progress(epoch, loss)`` after
    each epoch."""
    rng = np.random.default_rng(cfg.seed)
    p = init_params(cfg.channels, n_classes, rng, x.shape[3])
    params = p.arrays()
    m = [np.zeros_like(a) for a in params]
    v = [np.zeros_like(a) for a in params]
    b1, b2, step = 0.9, 0.999, 0
    n = x.shape[0]
    for epoch in range(cfg.epochs):
        order = rng.permutation(n)
        lr = cfg.lr * 0.5 * (1 + np.cos(np.pi * epoch / cfg.epochs))  # cosine schedule
        total = 0.0
        for k in range(0, n, cfg.batch):
            idx = order[k:k + cfg.batch]
            xb = x[idx] if cfg.shift == 0 else _shifted(x[idx], cfg.shift, rng)
            loss, grads = _grads(p, xb, y[idx])
            total += loss * len(idx)
            step += 1
            for a, g, mi, vi in zip(params, grads, m, v):
                if a.ndim > 1:
                    g = g + cfg.weight_decay * a
                mi *= b1
                mi += (1 - b1) * g
                vi *= b2
                vi += (1 - b2) * g * g
                a -= (lr * np.sqrt(1 - b2 ** step) / (1 - b1 ** step)) * mi / (np.sqrt(vi) + 1e-8)
        if progress is not None:
            progress(epoch, total / n)
    return p
