# SPDX-License-Identifier: MIT
"""The SpikingGamma network in numpy (float reference).

Discrete time, step dt. A synaptic layer (stage) l sees its N_in inputs through K
Gamma buckets with decays alpha_k shared by the layer. Because alpha is shared, the
buckets are kept on the postsynaptic side (the event-driven form of DESIGN.md):

    z^0(t) = alpha_0 z^0(t-1) + W a(t)                  a: amplitude-weighted spikes
    z^k(t) = alpha_k z^k(t-1) + (1 - alpha_k) z^(k-1)(t-1)          k >= 1
    x(t)   = b + sum_k V_k * z^k(t)          y(t) = ReLU(x(t))

Hidden neurons code y with sigma-delta spikes. Each keeps the value the next layer's
bucket 0 holds for it, e(t) (the decoder's state), and spikes when the new value is
more than theta above what the decoder already believes:

    p(t) = alpha_0' e(t-1)          (alpha_0' = bucket-0 decay of the next layer)
    s(t) = [y(t) - p(t) > theta]    e(t) = p(t) + 2 theta s(t)     a_next(t) = 2 theta s(t)

Input neurons (event-camera pixel x polarity) spike with a fixed amplitude
`input_gain` per event. The output stage does not spike: x(t) are the logits.

"Analog" mode replaces the sigma-delta pair by the identity (what the trainer's
gradients assume): the next layer's bucket 0 is the signal itself, z^0(t) = W y(t).

Optional integer axonal delays d_i per stage input: a(t) enters the buckets at t + d_i.

Parameters per stage (per output neuron for Dense, per output channel for Conv2d):
W, b, V (channels x K), theta (hidden stages), alpha (K, per stage), delays (optional).
"""
from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..sgm.sg import MIN_COUNT_MAX
from .layers import SYNAPTIC, TRANSFORMS, layer_from_dict

FORMAT_NAME = "pysg-float-model"
FORMAT_VERSION = 1


@dataclass
class NetworkConfig:
    """Architecture and time base of a network.

    input_shape: (C, H, W) of the model input (after event preprocessing).
    layers: layer specs; the last synaptic layer is the non-spiking output layer.
    n_buckets: K, the number of Gamma buckets per input.
    dt_us: the simulation step in microseconds.
    input_gain: the bucket-0 increment of one input event.
    tau_ms: per stage, K bucket time constants; alpha_k = exp(-dt / tau_k).
    classes: class names, one per output neuron.
    sensor_size: (width, height) of the event sensor the input was derived from.
    downsample: the sensor-to-input pixel factor.
    input_min_count: an input's count of one step below this is dropped before the first
        stage (0 or 1: every count kept; `input_counts`). On a noisy sensor most active
        inputs of a step hold one or two background events, while an edge that moves
        brings many: dropping the few keeps the signal and skips most of the first
        stage's work.
    """

    input_shape: tuple[int, int, int]
    layers: list
    n_buckets: int = 4
    dt_us: int = 10_000
    input_gain: float = 1.0
    tau_ms: list[list[float]] | None = None
    classes: list[str] = field(default_factory=list)
    sensor_size: tuple[int, int] = (128, 128)
    downsample: int = 4
    input_min_count: int = 0

    def __post_init__(self):
        if not 0 <= int(self.input_min_count) <= MIN_COUNT_MAX:
            raise ValueError(f"input_min_count {self.input_min_count} outside [0, {MIN_COUNT_MAX}]")

    def to_dict(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "layers": [spec.to_dict() for spec in self.layers],
            "n_buckets": self.n_buckets,
            "dt_us": self.dt_us,
            "input_gain": self.input_gain,
            "tau_ms": self.tau_ms,
            "classes": list(self.classes),
            "sensor_size": list(self.sensor_size),
            "downsample": self.downsample,
            "input_min_count": self.input_min_count,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkConfig":
        d = dict(d)
        d["input_shape"] = tuple(d["input_shape"])
        d["sensor_size"] = tuple(d.get("sensor_size", (128, 128)))
        d["layers"] = [layer_from_dict(x) for x in d["layers"]]
        return cls(**d)


@dataclass
class Stage:
    """One synaptic layer with the transforms folded into its input."""

    index: int
    pre: list  # bound transforms, applied in order
    syn: object  # bound DenseOp / ConvOp
    is_output: bool

    @property
    def n_in(self) -> int:
        return self.syn.n_in

    @property
    def n_out(self) -> int:
        return self.syn.n_out

    def pre_forward(self, a: np.ndarray) -> np.ndarray:
        for op in self.pre:
            a = op.forward(a)
        return a

    def pre_transpose(self, g: np.ndarray) -> np.ndarray:
        for op in reversed(self.pre):
            g = op.transpose(g)
        return g

    def expand(self, p: np.ndarray) -> np.ndarray:
        """Per-channel parameter (C, ...) -> per-neuron (N_out, ...)."""
        return p if self.syn.spatial == 1 else np.repeat(p, self.syn.spatial, axis=0)

    def reduce(self, g: np.ndarray) -> np.ndarray:
        """Per-neuron gradient (N_out, ...) -> per-channel (C, ...) (transpose of expand)."""
        if self.syn.spatial == 1:
            return g
        return g.reshape(self.syn.channels, self.syn.spatial, *g.shape[1:]).sum(axis=1)


def input_counts(counts, min_count: int):
    """The counts the first stage takes: an input's count of one step below `min_count`
    becomes 0, any other is kept whole (min_count 0 or 1: unchanged). The one definition
    of `NetworkConfig.input_min_count`: the float and integer networks call it, the C
    runtime does the same per step (docs/FORMAT.md, "Input gate")."""
    if min_count <= 1:
        return counts
    return np.where(counts >= min_count, counts, 0).astype(counts.dtype, copy=False)


def scaled_min_count(min_count: int, dt_us: int, to_dt_us: int) -> int:
    """An input gate of `min_count` events per step of `dt_us` at a step of `to_dt_us`: the
    same events per second, rounded, at least 1 (a gate of 0 or 1 stays as it is)."""
    if min_count <= 1:
        return min_count
    return min(MIN_COUNT_MAX, max(1, round(min_count * to_dt_us / dt_us)))


def compile_stages(input_shape: tuple[int, ...], layers: list) -> list[Stage]:
    """Bind layer specs to shapes and group transforms with the next synaptic layer."""
    shape = tuple(input_shape)
    stages: list[Stage] = []
    pending = []
    for i, spec in enumerate(layers):
        if isinstance(spec, TRANSFORMS):
            op = spec.bind(shape)
            pending.append(op)
            shape = op.out_shape
        elif isinstance(spec, SYNAPTIC):
            op = spec.bind(shape)
            stages.append(Stage(len(stages), pending, op, False))
            pending = []
            shape = op.out_shape
        else:
            raise ValueError(f"layer {i}: not a layer spec: {spec!r}")
    if not stages:
        raise ValueError("a network needs at least one Dense or Conv2d layer")
    if pending:
        raise ValueError("transforms after the last synaptic layer have no effect; remove them")
    stages[-1].is_output = True
    return stages


def default_tau_ms(n_stages: int, k: int) -> list[list[float]]:
    """Bucket time constants (ms) per stage.

    Stage 0 sees input events: a fast bucket 0 (20 ms) smooths them, slower taps give
    delays of roughly 30..200 ms, the time scale of arm movements (gesture periods are
    about 0.6-1.3 s). In later stages bucket 0 is also the decoder of the sigma-delta
    code of the stage below; a slower one (80 ms) lets a neuron code large outputs
    finely at no more than one spike per step (see trainer.adapt_thresholds)."""
    first = [20.0] + [max(25.0, 100.0 * (1 + i) / max(1, k - 1)) for i in range(k - 1)]
    later = [80.0] + [50.0 + 70.0 * i / max(1, k - 2) for i in range(k - 1)]
    return [list(first)] + [list(later) for _ in range(n_stages - 1)]


class Network:
    """A SpikingGamma network: config + parameters + simulation."""

    def __init__(self, config: NetworkConfig, params: dict[str, np.ndarray] | None = None,
                 rng: np.random.Generator | None = None):
        self.config = config
        self.stages = compile_stages(config.input_shape, config.layers)
        if config.tau_ms is None:
            config.tau_ms = default_tau_ms(len(self.stages), config.n_buckets)
        if len(config.tau_ms) != len(self.stages) or any(len(t) != config.n_buckets for t in config.tau_ms):
            raise ValueError("tau_ms must give n_buckets time constants for each synaptic layer")
        if config.classes and len(config.classes) != self.stages[-1].n_out:
            raise ValueError(f"{len(config.classes)} class names for {self.stages[-1].n_out} outputs")
        if params is None:
            params = self.init_params(rng if rng is not None else np.random.default_rng(0))
        self.params = params
        self._check_params()

    # ------------------------------------------------------------ parameters

    def init_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        k = self.config.n_buckets
        p: dict[str, np.ndarray] = {}
        for st in self.stages:
            c = st.syn.channels
            p[f"{st.index}.W"] = rng.normal(0.0, math.sqrt(2.0 / st.syn.fan_in), st.syn.weight_shape)
            p[f"{st.index}.b"] = np.zeros(c)
            # Start with every tap contributing equally (a smooth, broad delay kernel).
            p[f"{st.index}.V"] = np.full((c, k), 1.0 / k) + rng.normal(0.0, 0.1 / k, (c, k))
            if not st.is_output:
                p[f"{st.index}.theta"] = np.full(c, 0.1)
        return p

    def _check_params(self) -> None:
        k = self.config.n_buckets
        for st in self.stages:
            c = st.syn.channels
            want = {"W": st.syn.weight_shape, "b": (c,), "V": (c, k)}
            if not st.is_output:
                want["theta"] = (c,)
            for name, shape in want.items():
                key = f"{st.index}.{name}"
                if key not in self.params:
                    raise ValueError(f"missing parameter {key}")
                if self.params[key].shape != shape:
                    raise ValueError(f"parameter {key} has shape {self.params[key].shape}, expected {shape}")
            if not st.is_output and np.any(self.params[f"{st.index}.theta"] <= 0):
                raise ValueError(f"stage {st.index}: thresholds must be > 0")
            key = f"{st.index}.delays"
            if key in self.params:
                d = self.params[key]
                if d.shape != (st.n_in,) or d.dtype.kind not in "iu" or np.any(d < 0):
                    raise ValueError(f"{key} must be {st.n_in} non-negative integers")

    def alphas(self, stage: int) -> np.ndarray:
        tau = np.asarray(self.config.tau_ms[stage], dtype=np.float64)
        return np.exp(-(self.config.dt_us / 1000.0) / tau)

    @property
    def n_classes(self) -> int:
        return self.stages[-1].n_out

    def n_parameters(self) -> int:
        return int(sum(v.size for k, v in self.params.items() if not k.endswith(".delays")))

    # ------------------------------------------------------------ simulation

    def init_state(self, batch: int, *, traces: bool = False, dtype=np.float32) -> "State":
        return State(self, batch, traces, dtype)

    def step(self, state: "State", frame: np.ndarray, *, spiking: bool = True) -> np.ndarray:
        """Advance one step. frame: (B, C*H*W) input event counts of this step.
        Returns the logits (B, n_classes). Intermediate values stay in `state`."""
        frame = input_counts(frame, self.config.input_min_count).astype(state.dtype, copy=False)
        state.synops += (frame @ state.fanout[0]).astype(np.int64)
        drive = frame * state.input_gain
        for st in self.stages:
            l = st.index
            a = st.pre_forward(drive)
            if state.delays[l] is not None:
                a = state.delay(l, a)
            accumulate = l == 0 or spiking
            al = state.alpha[l]
            syn = st.syn.forward(state.w[l], a)
            _bucket_update(state.z[l], al, syn, accumulate)
            if state.u is not None:
                _bucket_update(state.u[l], al, a, accumulate)
            x = state.b[l] + np.einsum("kbn,nk->bn", state.z[l], state.v[l])
            state.x[l] = x
            if st.is_output:
                state.t += 1
                return x
            y = np.maximum(x, 0.0)
            if spiking:
                p = state.alpha[l + 1][0] * state.enc[l]
                s = (y - p) > state.theta[l]
                amp = s * state.two_theta[l]
                state.enc[l] = p + amp
                state.s[l] = s
                state.spikes[l] += s.sum(axis=1)
                state.synops += (s @ state.fanout[l + 1]).astype(np.int64)
                drive = amp
            else:
                drive = y
        raise AssertionError("unreachable: the last stage is the output")

    def run(self, frames: np.ndarray, *, spiking: bool = True, dtype=np.float32) -> "RunResult":
        """Simulate a batch. frames: (T, B, C, H, W) or (T, B, N) input event counts.
        Returns per-step logits (T, B, n_classes) and spike counts per hidden stage."""
        frames = np.asarray(frames)
        t_steps, batch = frames.shape[:2]
        flat = frames.reshape(t_steps, batch, -1)
        if flat.shape[2] != int(np.prod(self.config.input_shape)):
            raise ValueError(f"frames carry {flat.shape[2]} inputs; the model expects "
                             f"{self.config.input_shape}")
        state = self.init_state(batch, dtype=dtype)
        logits = np.empty((t_steps, batch, self.n_classes), dtype=dtype)
        for t in range(t_steps):
            logits[t] = self.step(state, flat[t], spiking=spiking)
        return RunResult(logits, [s.copy() for s in state.spikes], state.synops.copy())

    # ------------------------------------------------------------ time base

    def retarget_dt(self, dt_us: int) -> "Network":
        """The same network at another step. Time constants are kept, so every decay
        becomes alpha' = alpha^(dt'/dt). The input gain is rescaled so that bucket 0's
        response to a constant event rate (gain*r*dt/(1-alpha_0)) does not change;
        delays are rounded to the new step, and so is the input's minimum count (the
        same rate per input, at least 1: an approximation, as a step's count is not a
        rate)."""
        if dt_us <= 0:
            raise ValueError(f"dt_us must be positive, got {dt_us}")
        cfg = NetworkConfig.from_dict(self.config.to_dict())
        old_a0 = self.alphas(0)[0]
        cfg.dt_us = int(dt_us)
        new_a0 = math.exp(-(dt_us / 1000.0) / cfg.tau_ms[0][0])
        cfg.input_gain = self.config.input_gain * (1 - new_a0) / (1 - old_a0) * (self.config.dt_us / dt_us)
        cfg.input_min_count = scaled_min_count(cfg.input_min_count, self.config.dt_us, dt_us)
        params = {k: v.copy() for k, v in self.params.items()}
        for k in params:
            if k.endswith(".delays"):
                params[k] = np.rint(params[k] * (self.config.dt_us / dt_us)).astype(params[k].dtype)
        return Network(cfg, params)

    # ------------------------------------------------------------ persistence

    def save(self, path) -> None:
        """Write the model as one .npz archive: `config.json` (architecture) + arrays.
        `path` may be a file name or a writable binary file object."""
        path = path if hasattr(path, "write") else Path(path)
        meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "config": self.config.to_dict()}
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("config.json", json.dumps(meta, indent=1))
            for name, arr in self.params.items():
                buf = io.BytesIO()
                np.save(buf, arr, allow_pickle=False)
                zf.writestr(f"{name}.npy", buf.getvalue())

    @classmethod
    def load(cls, path) -> "Network":
        path = path if hasattr(path, "read") else Path(path)
        try:
            zf = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise
        except (zipfile.BadZipFile, OSError) as e:
            raise ValueError(f"{path}: not a pysg model file ({e})") from None
        with zf:
            names = zf.namelist()
            if "config.json" not in names:
                raise ValueError(f"{path}: not a pysg model file (no config.json)")
            try:
                meta = json.loads(zf.read("config.json"))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ValueError(f"{path}: config.json is not valid JSON: {e}") from None
            if meta.get("format") != FORMAT_NAME or meta.get("version") != FORMAT_VERSION:
                raise ValueError(f"{path}: unsupported model format {meta.get('format')!r} "
                                 f"version {meta.get('version')!r}")
            params = {}
            for name in names:
                if name.endswith(".npy"):
                    params[name[:-4]] = np.load(io.BytesIO(zf.read(name)), allow_pickle=False)
        try:
            return cls(NetworkConfig.from_dict(meta["config"]), params)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: invalid model: {e}") from None


def _bucket_update(z: np.ndarray, alpha: np.ndarray, inp: np.ndarray, accumulate: bool) -> None:
    """In place: z (K, B, N). Taps k >= 1 read tap k-1 of the previous step, so update
    from the top down; bucket 0 accumulates the input (or is set to it, analog mode)."""
    for k in range(z.shape[0] - 1, 0, -1):
        z[k] *= alpha[k]
        z[k] += (1.0 - alpha[k]) * z[k - 1]
    if accumulate:
        z[0] *= alpha[0]
        z[0] += inp
    else:
        z[0] = inp


@dataclass
class RunResult:
    logits: np.ndarray  # (T, B, n_classes)
    spikes: list[np.ndarray]  # per hidden stage: (B,) spike counts
    synops: np.ndarray  # (B,) synaptic operations (spikes x fan-out, input events included)


class State:
    """Everything that changes during a simulation, for a batch. Bucket arrays are
    laid out (K, B, N) so each tap is a contiguous (B, N) block."""

    def __init__(self, net: Network, batch: int, traces: bool, dtype):
        k = net.config.n_buckets
        self.dtype = dtype
        self.t = 0
        self.input_gain = dtype(net.config.input_gain)
        p = net.params
        self.w = [p[f"{s.index}.W"].astype(dtype) for s in net.stages]
        self.b = [s.expand(p[f"{s.index}.b"]).astype(dtype) for s in net.stages]
        self.v = [s.expand(p[f"{s.index}.V"]).astype(dtype) for s in net.stages]
        self.alpha = [net.alphas(s.index).astype(dtype) for s in net.stages]
        self.theta = [s.expand(p[f"{s.index}.theta"]).astype(dtype) if not s.is_output else None
                      for s in net.stages]
        self.two_theta = [None if t is None else 2 * t for t in self.theta]
        self.z = [np.zeros((k, batch, s.n_out), dtype) for s in net.stages]
        self.u = [np.zeros((k, batch, s.n_in), dtype) for s in net.stages] if traces else None
        self.x = [None] * len(net.stages)
        self.enc = [np.zeros((batch, s.n_out), dtype) for s in net.stages[:-1]]
        self.spikes = [np.zeros(batch, np.int64) for _ in net.stages[:-1]]
        self.s = [None] * (len(net.stages) - 1)  # the last step's spikes per hidden stage
        self.synops = np.zeros(batch, np.int64)
        # Synapses driven by one spike of each raw input of a stage (through its pooling).
        self.fanout = [s.pre_transpose(s.syn.transpose(np.ones(s.syn.weight_shape),
                                                       np.ones((1, s.n_out))))[0].astype(dtype)
                       for s in net.stages]
        # as indices (the stored uint8 would wrap t + d past 255 and then overflow)
        self.delays = [None if d is None else d.astype(np.intp)
                       for d in (p.get(f"{s.index}.delays") for s in net.stages)]
        self.ring = [None if d is None else np.zeros((int(d.max()) + 1, batch, s.n_in), dtype)
                     for d, s in zip(self.delays, net.stages)]

    def delay(self, l: int, a: np.ndarray) -> np.ndarray:
        """Axonal delays with a ring buffer: input i written now is read d_i steps later."""
        ring, d = self.ring[l], self.delays[l]
        n = ring.shape[0]
        cols = np.arange(ring.shape[2])
        ring[(self.t + d) % n, :, cols] += a.T
        out = ring[self.t % n].copy()
        ring[self.t % n] = 0
        return out
