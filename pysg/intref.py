# SPDX-License-Identifier: MIT
"""The integer ("golden") reference of the .sgm runtime.

Runs an `SgmModel` on binned input events with exactly the integer arithmetic of
docs/FORMAT.md ("Arithmetic"), vectorised over neurons and over a batch of samples.
Values are held in int64 numpy arrays; every quantity the specification declares int32
is wrapped (bucket-0 scatter, modular) or saturated (x, encoder) to int32 where the
specification says so, so the C runtime must reproduce these numbers bit for bit.

Per step t (FORMAT.md, "Order of one time step"):
  A. every stage: taps k = K-1 .. 1:  z^k <- D(z^k, a_k, z^(k-1))   (previous step's z^(k-1))
                  bucket 0:            z^0 <- D(z^0, a_0, 0)
  B. stage 0 input: counts per raw input (those below stage 0's min_count dropped) -> sum
     pooling -> (delay ring) -> z^0 += Wq count
  C. every stage in order: x = sat32(b + rshr(sum_k vq_k z^k, n)); hidden: spikes, encoder,
     scatter of the spikes into the next stage's z^0 (through its pooling / delays).
with D(z, a, t) = round_half_up((a z + (32768 - a) t) / 2^15), moved one unit towards t
when the rounding left z unchanged although z != t (so states decay to exactly 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .scoring import WARMUP
from . import scoring as _scoring
from .model.layers import Conv2d, Dense, SumPool2d
from .model.network import input_counts
from .sgm import KIND_DENSE, Q15_ONE, SgmModel, SgmStage

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
ROUND_Q15 = 1 << 14


def decay_q15(z: np.ndarray, a, target) -> np.ndarray:
    """D(z, a, target): one bucket update (int64 in, int64 out, values in int32 range).

    r = (a*z + (32768-a)*target + 2^14) >> 15   (64-bit, arithmetic shift: round half up)
    if r == z and z != target: r = z + sign(target - z)   (progress rule)
    The result lies between z and target, so it never overflows int32."""
    z = np.asarray(z, np.int64)
    target = np.asarray(target, np.int64)
    a = np.asarray(a, np.int64)
    r = (a * z + (Q15_ONE - a) * target + ROUND_Q15) >> 15
    stuck = (r == z) & (target != z)
    return np.where(stuck, z + np.sign(target - z), r)


def wrap32(v: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of int64 values to int32 (the C uint32 add)."""
    return ((np.asarray(v, np.int64) + 2**31) & 0xFFFFFFFF) - 2**31


def sat32(v: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(v, np.int64), INT32_MIN, INT32_MAX)


def rshift_round(acc: np.ndarray, n: np.ndarray) -> np.ndarray:
    """(acc + 2^(n-1)) >> n for n >= 1, acc for n = 0 (arithmetic shift: round half up)."""
    acc = np.asarray(acc, np.int64)
    n = np.asarray(n, np.int64)
    half = np.where(n > 0, np.left_shift(np.int64(1), np.maximum(n - 1, 0)), 0)
    return (acc + half) >> n


class _StageRun:
    """Bound operators and per-neuron parameters of one stage (int64)."""

    def __init__(self, st: SgmStage):
        self.st = st
        self.pool = SumPool2d(st.pool).bind(st.in_shape) if st.pool > 1 else None
        if st.kind == KIND_DENSE:
            self.syn = Dense(st.out_shape[0]).bind(st.syn_shape)
        else:
            self.syn = Conv2d(st.out_shape[0], st.kernel, st.stride, st.padding).bind(st.syn_shape)
        if tuple(self.syn.out_shape) != tuple(st.out_shape) and st.kind != KIND_DENSE:
            raise ValueError(f"conv geometry {self.syn.out_shape} != {st.out_shape}")
        sp = st.spatial
        self.w = st.weights.astype(np.float64)  # exact: int8 values, sums < 2^53
        self.b = np.repeat(st.bias.astype(np.int64), sp)
        self.vq = np.repeat(st.vweights.astype(np.int64), sp, axis=0)  # (N, K)
        self.vshift = np.repeat(st.vshift.astype(np.int64), sp)
        self.alpha = st.alpha.astype(np.int64)
        self.theta = None if st.theta is None else np.repeat(st.theta.astype(np.int64), sp)
        self.delays = None if st.delays is None else st.delays.astype(np.int64)
        ones = np.ones((1, st.n_out))
        g = self.syn.transpose(np.ones(self.syn.weight_shape), ones)
        self.fanout = (self.pool.transpose(g) if self.pool is not None else g)[0].astype(np.int64)

    def pooled(self, counts: np.ndarray) -> np.ndarray:
        return counts if self.pool is None else self.pool.forward(counts)

    def scatter(self, counts: np.ndarray) -> np.ndarray:
        """sum_i Wq[:, i] * count_i, exact (float64 holds these integers exactly)."""
        return np.rint(self.syn.forward(self.w, counts.astype(np.float64))).astype(np.int64)


@dataclass
class RefResult:
    logits: np.ndarray  # (T, B, n_classes) int32, output x in units of 2^-F of the last stage
    spikes: list[np.ndarray]  # per hidden stage: (T, B) spikes per step
    synops: np.ndarray  # (T, B) synaptic events per step (input events x fan-out + spikes x fan-out)
    x: list[np.ndarray] | None = None  # per stage (T, B, N_out) int32 if recorded


class IntRef:
    """Integer reference state for a batch; `step` advances one time step."""

    def __init__(self, model: SgmModel, batch: int):
        self.model = model
        self.k = model.n_buckets
        self.stages = [_StageRun(st) for st in model.stages]
        self.z = [np.zeros((self.k, batch, st.n_out), np.int64) for st in model.stages]
        self.enc = [np.zeros((batch, st.n_out), np.int64) for st in model.stages[:-1]]
        self.ring = [None if st.delays is None else np.zeros((st.max_delay + 1, batch, st.n_in), np.int64)
                     for st in model.stages]
        self.t = 0
        self.x: list[np.ndarray | None] = [None] * len(model.stages)
        self.s: list[np.ndarray | None] = [None] * (len(model.stages) - 1)

    def step(self, counts: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """counts: (B, C*H*W) input event counts of this step. Returns (logits (B, n_classes)
        int64, spikes per hidden stage (B,), synops (B,))."""
        counts = input_counts(np.asarray(counts, np.int64), self.model.stages[0].min_count)
        # A. bucket decays of every stage (taps from the top down, then bucket 0)
        for z, sr in zip(self.z, self.stages):
            for k in range(self.k - 1, 0, -1):
                z[k] = decay_q15(z[k], sr.alpha[k], z[k - 1])
            z[0] = decay_q15(z[0], sr.alpha[0], 0)
        synops = counts @ self.stages[0].fanout
        spikes = []
        drive = counts
        for l, sr in enumerate(self.stages):
            a = sr.pooled(drive)
            ring = self.ring[l]
            if ring is not None:  # B/C. delay ring of counts: written at t + d_i, read at t
                n = ring.shape[0]
                cols = np.arange(ring.shape[2])
                np.add.at(ring, ((self.t + sr.delays) % n, slice(None), cols), a.T)
                a = ring[self.t % n].copy()
                ring[self.t % n] = 0
            z = self.z[l]
            z[0] = wrap32(z[0] + sr.scatter(a))
            acc = np.einsum("kbn,nk->bn", z, sr.vq)  # int64: |acc| < K 2^15 2^31
            x = sat32(sr.b + rshift_round(acc, sr.vshift))
            self.x[l] = x
            if sr.st.is_output:
                self.t += 1
                return x, spikes, synops
            y = np.maximum(x, 0)
            p = decay_q15(self.enc[l], self.stages[l + 1].alpha[0], 0)
            s = (y - p) > sr.theta
            self.enc[l] = np.where(s, sat32(p + 2 * sr.theta), p)
            self.s[l] = s
            drive = s.astype(np.int64)
            spikes.append(drive.sum(axis=1))
            synops = synops + drive @ self.stages[l + 1].fanout
        raise AssertionError("unreachable: the last stage is the output")

    def all_zero(self) -> bool:
        return all(not z.any() for z in self.z) and all(not e.any() for e in self.enc)


def run(model: SgmModel, frames: np.ndarray, *, record_x: bool = False) -> RefResult:
    """Run a batch. frames: (T, B, C, H, W) or (T, B, N) input event counts per step."""
    frames = np.asarray(frames)
    t_steps, batch = frames.shape[:2]
    flat = frames.reshape(t_steps, batch, -1)
    if flat.shape[2] != int(np.prod(model.input_shape)):
        raise ValueError(f"frames carry {flat.shape[2]} inputs; the model expects {model.input_shape}")
    ref = IntRef(model, batch)
    logits = np.empty((t_steps, batch, model.n_classes), np.int32)
    n_hidden = len(model.stages) - 1
    spikes = [np.zeros((t_steps, batch), np.int64) for _ in range(n_hidden)]
    synops = np.zeros((t_steps, batch), np.int64)
    xs = [np.empty((t_steps, batch, st.n_out), np.int32) for st in model.stages] if record_x else None
    for t in range(t_steps):
        out, sp, so = ref.step(flat[t])
        logits[t] = out
        for l in range(n_hidden):
            spikes[l][t] = sp[l]
        synops[t] = so
        if record_x:
            for l in range(len(model.stages)):
                xs[l][t] = ref.x[l]
    return RefResult(logits, spikes, synops, xs)


def scores(logits: np.ndarray, lengths: np.ndarray, warmup: float = WARMUP) -> np.ndarray:
    """(B, n_classes) int64: logits summed over steps floor(warmup*len) .. len-1
    (`pysg.scoring.scores`, the SpikingGamma rule)."""
    return _scoring.scores(logits, lengths, warmup)


def evaluate_ref(model: SgmModel, data, *, batch_size: int = 64,
                 progress: Callable[[int], None] | None = None) -> dict:
    """Accuracy and activity of the integer reference on binned data (a
    pysg.train.trainer.SequenceData): `pysg.jobs.evaluate` with engine "ref"."""
    from .jobs import evaluate

    return evaluate(model, data, engine="ref", batch_size=batch_size, progress=progress).summary


def frames_from_events(model: SgmModel, events: np.ndarray) -> np.ndarray:
    """One sample's (T, C, H, W) input counts: times relative to the first event,
    T = ceil((t_last - t_first + 1) / dt)."""
    from .datasets.binning import bin_events

    if events.size == 0:
        raise ValueError("no events")
    ev = events.copy()
    ev["t"] = ev["t"] - ev["t"].min()
    return bin_events(ev, duration_us=int(ev["t"].max()) + 1, dt_us=model.dt_us, sensor_size=model.sensor_size,
                      downsample=model.downsample, channels=model.input_shape[0])


def run_events(model: SgmModel, events: np.ndarray) -> dict:
    """One recording (whole file as one sample) through the integer reference
    (`pysg.jobs.run` with engine "ref")."""
    from .jobs import run as run_job

    return run_job(model, events, engine="ref")


def load_model(path, *, dt_ms: float | None = None) -> SgmModel:
    """An .sgm file, or a float .npz model quantised in memory (`pysg.jobs.load_model`)."""
    from .jobs import load_model as load

    return load(path, engine="ref", dt_ms=dt_ms).obj
