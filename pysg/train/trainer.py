# SPDX-License-Identifier: MIT
"""Online training and evaluation of a SpikingGamma network on event sequences.

The recipe (the defaults of `TrainConfig`, used by `pysg train`):
* spikes in the loop: the forward pass is the deployed spiking network; gradients
  use the online rule of `gradients.py` (sigma-delta pair = identity, no surrogate),
  with the first stage credited through forward traces of the second stage's delays and
  buckets ("traced": exact where the rule credits it only for the present step);
* cross-entropy at every step after the first `warmup` fraction of each sample: the
  device reports a running prediction, so every step's logits should be right; the
  first steps are skipped because the buckets still fill up there;
* a sample's prediction is the argmax of its logits summed over the same steps;
* Adam with a cosine learning-rate decay, mini-batches, random spatial shifts;
* an activity penalty on hidden outputs keeps spike rates low.
"""
from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..model.network import Network
from .gradients import LossSchedule, cross_entropy, online_step_grads, traces_for, zero_grads
from .optim import Adam

LOSS_WARMUP = 0.05  # see TrainConfig.warmup


@dataclass
class SequenceData:
    """Binned samples ready for the network: frames (N, T, C, H, W) uint16 counts
    (zero-padded past each sample's length), lengths (N,) in steps, labels (N,)."""

    frames: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    dt_us: int
    # what the samples' recordings held and the sensor mapping left out (pysg.recipes.load_split
    # fills them; None where unknown)
    events_in: int | None = None
    events_dropped: int | None = None
    mapping: Any = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def seconds(self) -> np.ndarray:
        return self.lengths * (self.dt_us / 1e6)


def bin_samples(samples: Sequence, *, dt_us: int, sensor_size=(128, 128), downsample: int = 4,
                channels: int = 2, max_duration_us: int | None = None,
                progress: Callable[[int], None] | None = None) -> SequenceData:
    """Bin a sequence of dataset samples (with .events relative to the interval start,
    .duration_us, .label) into one padded array."""
    from ..datasets.binning import bin_events

    frames, labels = [], []
    for s in samples:
        dur = int(s.duration_us) if max_duration_us is None else min(int(s.duration_us), max_duration_us)
        ev = s.events[s.events["t"] < dur]
        frames.append(bin_events(ev, duration_us=dur, dt_us=dt_us, sensor_size=sensor_size,
                                 downsample=downsample, channels=channels))
        labels.append(s.label)
        if progress:
            progress(1)
    if not frames:
        raise ValueError("no samples to bin")
    lengths = np.array([f.shape[0] for f in frames])
    out = np.zeros((len(frames), lengths.max(), *frames[0].shape[1:]), dtype=np.uint16)
    for i, f in enumerate(frames):
        out[i, : len(f)] = f
    return SequenceData(out, lengths, np.asarray(labels, dtype=np.int64), dt_us)


def data_for(net: Network, samples: Sequence, *, dt_us: int | None = None,
             progress: Callable[[int], None] | None = None) -> SequenceData:
    """Bin samples for this network's input geometry (at its dt unless given)."""
    cfg = net.config
    return bin_samples(samples, dt_us=dt_us or cfg.dt_us, sensor_size=cfg.sensor_size,
                       downsample=cfg.downsample, channels=cfg.input_shape[0], progress=progress)


@dataclass
class TrainConfig:
    epochs: int = 60
    batch_size: int = 16
    lr: float = 3e-3
    lr_final: float = 1e-4
    # the loss skips the first 5 % of each sample's steps, fewer than the scoring rule's 20 %
    # (pysg.scoring.WARMUP): asked to be right from ~100 ms on, the network decides earlier
    # (hard set, 300 ms after onset: 49 % against 37 %) at the same final accuracy (BENCHMARKS.md)
    warmup: float = LOSS_WARMUP
    # "traced": hard set, 60 epochs, three seeds 85.5 / 86.4 / 83.2 % against 82.7 / 80.5 / 81.4 %
    # with "all" (float, spikes), for about 3x the training time (BENCHMARKS.md, "Traced credit")
    credit: str = "traced"
    spiking: bool = True
    act_reg: float = 0.01
    max_shift: int = 3
    # augmentation (`augment`): each training sample is played at a tempo drawn log-uniformly
    # from [1 / stretch_max, stretch_max] (1.0: as recorded) and keeps a fraction of its events
    # drawn uniformly from [keep_min, 1] (1.0: all)
    stretch_max: float = 1.0
    keep_min: float = 1.0
    # half the samples flipped left-right, a flipped sample's label i becoming mirror[i]
    # (pysg.datasets.gesture.mirror_labels); None: no flips
    mirror: list[int] | None = None
    theta_quantile: float = 99.0
    theta_momentum: float = 0.5
    seed: int = 0
    dtype: str = "float32"  # the forward state's dtype ("float64" for parity tests across backends)


@dataclass
class History:
    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class SampleDraw:
    """One training sample's augmentation: a whole-pixel shift (dy, dx), zero-filled
    (robustness to where the person stands); a tempo factor (None: as recorded; s > 1
    plays the gesture s times slower); the fraction of its events kept (None: all); the
    seed of the stretch's and the thinning's binomial draws; a left-right flip."""

    shift: tuple[int, int]
    stretch: float | None = None
    keep: float | None = None
    seed: int | None = None
    mirror: bool = False  # flipped left-right, its label mapped by TrainConfig.mirror

    def length(self, steps: int) -> int:
        """The sample's length in steps after the stretch."""
        return int(steps) if self.stretch is None else max(1, int(round(steps * self.stretch)))

    @property
    def changes_nothing(self) -> bool:
        return self.shift == (0, 0) and self.stretch is None and self.keep is None and not self.mirror


def augmented_lengths(lengths: np.ndarray, draws: Sequence[SampleDraw]) -> np.ndarray:
    """The samples' lengths in steps after their draws (a stretch changes them)."""
    lengths = np.asarray(lengths)
    return np.array([d.length(n) for d, n in zip(draws, lengths)], dtype=lengths.dtype)


def draw_augmentations(rng: np.random.Generator, n: int, cfg: "TrainConfig") -> list[SampleDraw]:
    """A batch's random draws in one fixed order, so that every backend and every rank of a
    distributed run sees the same samples: each sample's shift in [-max_shift, max_shift]^2
    (nothing drawn when max_shift is 0); then, when stretch_max > 1 or keep_min < 1, each
    sample's tempo factor (log-uniform in [1 / stretch_max, stretch_max]), kept fraction
    (uniform in [keep_min, 1]) and seed; then, when `mirror` is set, whether each sample is
    flipped (probability 1/2)."""
    m = cfg.max_shift
    draws = [SampleDraw(tuple(int(v) for v in rng.integers(-m, m + 1, size=2)) if m > 0 else (0, 0))
             for _ in range(n)]
    if cfg.stretch_max > 1.0 or cfg.keep_min < 1.0:
        log_s = math.log(max(cfg.stretch_max, 1.0))
        stretches = np.exp(rng.uniform(-log_s, log_s, size=n))
        keeps = rng.uniform(min(cfg.keep_min, 1.0), 1.0, size=n)
        seeds = rng.integers(0, 2**63, size=n)
        draws = [replace(d, stretch=float(st) if cfg.stretch_max > 1.0 else None,
                         keep=float(k) if cfg.keep_min < 1.0 else None, seed=int(z))
                 for d, st, k, z in zip(draws, stretches, keeps, seeds)]
    if cfg.mirror is not None:
        draws = [replace(d, mirror=bool(f)) for d, f in zip(draws, rng.random(n) < 0.5)]
    return draws


def augment_labels(labels: np.ndarray, draws: Sequence[SampleDraw], mirror: Sequence[int] | None) -> np.ndarray:
    """The labels of augmented samples: a mirrored sample's is its class's mirror image."""
    if mirror is None or not any(d.mirror for d in draws):
        return labels
    flip = np.array([d.mirror for d in draws])
    return np.where(flip, np.asarray(mirror)[labels], labels)


def stretch_sample(frames: np.ndarray, steps: int, factor: float, rng: np.random.Generator) -> np.ndarray:
    """A sample's first `steps` frames (T, ...) played `factor` times slower, as the counts
    a sensor would give (the events of a movement do not depend on its speed, so each
    source step's events are kept): slower, the m output steps that fall in source step u
    share its counts at random (binomial splits, each event equally likely in each);
    faster, source step u is added into output step floor(u x factor)."""
    n_out = max(1, int(round(steps * factor)))
    src = frames[:steps].astype(np.int64)
    if factor >= 1.0:
        u = np.minimum((np.arange(n_out) / factor).astype(np.int64), steps - 1)
        first = np.flatnonzero(np.diff(u, prepend=-1))  # each source step's first output step
        size = np.diff(np.append(first, n_out))  # and how many output steps it spans
        left = src[u[first]]
        out = np.zeros((n_out, *frames.shape[1:]), np.int64)
        for j in range(int(size.max())):
            last = size == j + 1
            out[first[last] + j] = left[last]  # the last of a source step's outputs: what is left
            split = size > j + 1
            part = left[split]
            live = part > 0  # binomial draws only where there are events
            share = (1.0 / (size[split] - j)).reshape(-1, *[1] * (part.ndim - 1))  # of what is left
            part[live] = rng.binomial(part[live], np.broadcast_to(share, part.shape)[live])
            out[first[split] + j] = part
            left[split] -= part
    else:  # the targets never decrease: one sum per run of source steps
        to = np.minimum((np.arange(steps) * factor).astype(np.int64), n_out - 1)
        first = np.flatnonzero(np.diff(to, prepend=-1))
        out = np.zeros((n_out, *frames.shape[1:]), np.int64)
        out[to[first]] = np.add.reduceat(src, first, axis=0)
    return np.minimum(out, np.iinfo(frames.dtype).max).astype(frames.dtype)


def augment(frames: np.ndarray, lengths: np.ndarray, draws: Sequence[SampleDraw],
            t_steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Apply draws to a batch of frames (B, T, C, H, W), one per sample: the stretch, the
    flip, the shift, then the thinning, which keeps each event of a count with probability
    `keep` (the frames of a recording whose events were dropped at random, without
    re-binning). Returns the frames, padded to `t_steps` steps (default: the longest
    sample's), and the samples' lengths."""
    lengths = np.asarray(lengths)
    new_len = augmented_lengths(lengths, draws)
    t_out = int(new_len.max()) if t_steps is None else int(t_steps)
    if all(d.changes_nothing for d in draws) and t_out == frames.shape[1]:
        return frames, lengths
    out = np.zeros((len(frames), t_out, *frames.shape[2:]), frames.dtype)
    h, w = frames.shape[-2:]
    for i, d in enumerate(draws):
        rng = np.random.default_rng(d.seed) if d.seed is not None else None
        src = frames[i] if d.stretch is None else stretch_sample(frames[i], int(lengths[i]), d.stretch, rng)
        if d.mirror:
            src = src[..., ::-1]
        n = min(len(src), t_out)
        dy, dx = d.shift
        out[i, :n, ..., max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)] = \
            src[:n, ..., max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
        if d.keep is not None:
            sample = out[i]
            live = sample > 0
            sample[live] = rng.binomial(sample[live], d.keep)
    return out, new_len


THETA_SAMPLE_EVERY = 8  # steps between samples of hidden outputs for threshold adaptation


def train_batch(net: Network, frames: np.ndarray, labels: np.ndarray, lengths: np.ndarray,
                cfg: TrainConfig, y_samples: list[list[np.ndarray]] | None = None
                ) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
    """One online pass over a batch (frames (B, T, ...)): returns loss, gradients and
    the summed logits used for the batch's predictions. If `y_samples` is given, every
    THETA_SAMPLE_EVERY-th step's hidden outputs are appended to it (one list per
    hidden stage): a bounded sample, not a history."""
    batch, t_steps = frames.shape[:2]
    flat = frames.reshape(batch, t_steps, -1)
    schedule = LossSchedule(lengths, cfg.warmup)
    dtype = np.dtype(cfg.dtype).type
    state = net.init_state(batch, traces=True, dtype=dtype)
    traces = traces_for(net, batch, cfg.credit, dtype)
    grads = zero_grads(net)
    total = 0.0
    score = np.zeros((batch, net.n_classes))
    for t in range(t_steps):
        logits = net.step(state, flat[:, t], spiking=cfg.spiking)
        if traces is not None:
            traces.advance(state)
        w = schedule.at(t)
        if not w.any():
            continue
        loss, g = cross_entropy(logits.astype(np.float64), labels, w)
        total += loss + online_step_grads(net, state, g, w, grads, credit=cfg.credit, act_reg=cfg.act_reg,
                                          traces=traces)
        score += (w > 0)[:, None] * logits
        if y_samples is not None and t % THETA_SAMPLE_EVERY == 0:
            for l, st in enumerate(net.stages[:-1]):
                y_samples[l].append(np.maximum(state.x[l], 0.0))
    return total, grads, score


def adapt_thresholds(net: Network, y_samples: list[list[np.ndarray]], *, quantile: float = 99.0,
                     momentum: float = 1.0, floor_frac: float = 0.05) -> None:
    """Scale hidden thresholds with activity, so the sigma-delta code neither saturates
    nor coarsens as the weights grow.

    A neuron emits at most one spike per step, and its decoder decays by alpha_0' (the
    next stage's bucket-0 decay), so it can represent outputs up to 2 theta / (1 - alpha_0').
    The threshold is moved (by `momentum`) towards (1 - alpha_0') / 2 x the `quantile`-th
    percentile of the neuron's (channel's) outputs: the finest code that does not
    saturate below that percentile. Silent channels get `floor_frac` x the stage median,
    so every threshold stays positive. The function the network computes (analog) does
    not depend on theta; only the quality and cost of the spike code do."""
    for l, st in enumerate(net.stages[:-1]):
        if not y_samples[l]:
            continue
        y = np.stack(y_samples[l])  # (S, B, N)
        c, sp = st.syn.channels, st.syn.spatial
        per_channel = y.reshape(-1, c, sp).transpose(1, 0, 2).reshape(c, -1)
        q = np.percentile(per_channel, quantile, axis=1)
        a0 = net.alphas(l + 1)[0]
        target = (1 - a0) / 2 * q
        live = target[target > 0]
        floor = floor_frac * (float(np.median(live)) if live.size else 1.0)
        target = np.maximum(target, floor)
        theta = net.params[f"{l}.theta"]
        theta += momentum * (target - theta)


def calibrate(net: Network, data: SequenceData, *, n: int = 32, target_std: float = 1.0,
              quantile: float = 99.0) -> None:
    """Data-dependent initialisation, stage by stage on real input (analog network):
    scale the weights so x(t) has unit spread, then set the hidden thresholds by the
    rule of `adapt_thresholds`."""
    idx = np.arange(min(n, len(data)))
    t_steps = int(data.lengths[idx].max())
    flat = data.frames[idx, :t_steps].reshape(len(idx), t_steps, -1)
    for st in net.stages:
        xs = []
        state = net.init_state(len(idx))
        for t in range(0, t_steps):
            net.step(state, flat[:, t], spiking=False)
            if t % THETA_SAMPLE_EVERY == 0:
                xs.append(state.x[st.index].copy())
        std = float(np.stack(xs).std())
        scale = target_std / std if std > 0 else 1.0
        net.params[f"{st.index}.W"] *= scale
        if not st.is_output:
            samples = [[] for _ in net.stages[:-1]]
            samples[st.index] = [np.maximum(x * scale, 0.0) for x in xs]
            adapt_thresholds(net, samples, quantile=quantile)


def lr_at(cfg: TrainConfig, progress: float) -> float:
    """Cosine decay from lr to lr_final over training (progress in [0, 1])."""
    return cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1 + math.cos(math.pi * min(1.0, progress)))


class Trainer:
    """Owns the optimizer state, the history and checkpoints of one training run."""

    def __init__(self, net: Network, cfg: TrainConfig):
        self.net = net
        self.cfg = cfg
        self.opt = Adam(lr=cfg.lr)
        self.history = History()
        self.epoch = 0
        self.rng = np.random.default_rng(cfg.seed)

    def fit(self, train: SequenceData, val: SequenceData | None = None, *,
            checkpoint: str | Path | None = None,
            on_batch: Callable[[int, float], None] | None = None,
            on_epoch: Callable[["Trainer"], None] | None = None) -> History:
        import time

        n = len(train)
        nb = math.ceil(n / self.cfg.batch_size)
        while self.epoch < self.cfg.epochs:
            t0 = time.perf_counter()
            order = self.rng.permutation(n)
            total, correct = 0.0, 0
            for bi in range(nb):
                idx = order[bi * self.cfg.batch_size:(bi + 1) * self.cfg.batch_size]
                draws = draw_augmentations(self.rng, len(idx), self.cfg)
                lengths = train.lengths[idx]
                frames, lengths = augment(train.frames[idx, : lengths.max()], lengths, draws)
                labels = augment_labels(train.labels[idx], draws, self.cfg.mirror)
                y_samples = [[] for _ in self.net.stages[:-1]]
                loss, grads, score = self.batch_gradients(frames, labels, lengths, y_samples)
                lr = lr_at(self.cfg, (self.epoch * nb + bi) / (self.cfg.epochs * nb))
                self.opt.step(self.net.params, grads, lr=lr)
                adapt_thresholds(self.net, y_samples, quantile=self.cfg.theta_quantile,
                                 momentum=self.cfg.theta_momentum)
                total += loss * len(idx)
                correct += int(np.sum(score.argmax(1) == labels))
                if on_batch:
                    on_batch(len(idx), loss)
            self.end_epoch(total, correct, n, t0, val, checkpoint, on_epoch)
        return self.history

    def batch_gradients(self, frames: np.ndarray, labels: np.ndarray, lengths: np.ndarray,
                        y_samples: list[list[np.ndarray]]) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
        """One batch's loss, gradients and summed logits: the online rule (`train_batch`).
        A subclass can put another rule here (bench.recipe_limits: exact BPTT)."""
        return train_batch(self.net, frames, labels, lengths, self.cfg, y_samples)

    def end_epoch(self, total: float, correct: int, n: int, t0: float, val: SequenceData | None,
                  checkpoint: str | Path | None, on_epoch: Callable[["Trainer"], None] | None) -> None:
        """An epoch's bookkeeping, the same for every backend (the torch one too): the
        history (mean loss, train and validation accuracy, seconds since `t0`), the
        checkpoint, then the callback."""
        import time

        self.epoch += 1
        h = self.history
        h.epoch.append(self.epoch)
        h.loss.append(total / n)
        h.train_accuracy.append(correct / n)
        h.val_accuracy.append(evaluate(self.net, val)["accuracy"] if val is not None else float("nan"))
        h.seconds.append(time.perf_counter() - t0)
        if checkpoint is not None:
            self.save_checkpoint(checkpoint)
        if on_epoch:
            on_epoch(self)

    # -------------------------------------------------------- checkpoints

    def save_checkpoint(self, path: str | Path) -> None:
        """Model, optimizer moments, epoch, history and RNG state in one zip, written
        to a temporary name and renamed, so an interrupted write never loses the last."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        meta = {"epoch": self.epoch, "train_config": asdict(self.cfg), "history": asdict(self.history),
                "adam_steps": self.opt.steps, "rng": self.rng.bit_generator.state}
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("trainer.json", json.dumps(meta))
            model = io.BytesIO()
            self.net.save(model)
            zf.writestr("model.npz", model.getvalue())
            for kind, store in (("m", self.opt.m), ("v", self.opt.v)):
                for name, arr in store.items():
                    buf = io.BytesIO()
                    np.save(buf, arr, allow_pickle=False)
                    zf.writestr(f"adam_{kind}/{name}.npy", buf.getvalue())
        tmp.replace(path)

    @classmethod
    def resume(cls, path: str | Path, epochs: int | None = None) -> "Trainer":
        path = Path(path)
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise ValueError(f"{path}: not a pysg training checkpoint ({e})") from None
        with zf:
            if "trainer.json" not in zf.namelist():
                raise ValueError(f"{path}: not a pysg training checkpoint (no trainer.json)")
            meta = json.loads(zf.read("trainer.json"))
            net = Network.load(io.BytesIO(zf.read("model.npz")))
            cfg = TrainConfig(**meta["train_config"])
            if epochs is not None:
                cfg.epochs = epochs
            tr = cls(net, cfg)
            tr.epoch = meta["epoch"]
            tr.history = History(**meta["history"])
            tr.opt.steps = meta["adam_steps"]
            tr.rng.bit_generator.state = meta["rng"]
            for name in zf.namelist():
                for kind, store in (("m", tr.opt.m), ("v", tr.opt.v)):
                    prefix = f"adam_{kind}/"
                    if name.startswith(prefix):
                        store[name[len(prefix):-4]] = np.load(io.BytesIO(zf.read(name)))
        return tr


def evaluate(net: Network, data: SequenceData, *, batch_size: int = 64, spiking: bool = True,
             progress: Callable[[int], None] | None = None) -> dict:
    """Accuracy, confusion matrix and activity of a network on binned data:
    `pysg.jobs.evaluate` on the float engine. A sample's prediction is the argmax of its
    logits summed over the steps the model kind's scoring rule counts (`pysg.scoring`:
    from floor(0.2 x length) on, the steps the training loss uses by default)."""
    from ..engines import kind_of
    from ..engines.float_net import FloatEngine
    from ..engines.registry import LoadedModel
    from ..jobs import evaluate as evaluate_job

    engine = FloatEngine(LoadedModel(kind_of(net), net))
    engine.spiking = spiking
    return evaluate_job(engine, data, batch_size=batch_size, progress=progress).summary


def dense_macs_per_step(net: Network) -> int:
    """Multiply-accumulates per step of the equivalent frame-based network: every
    synapse evaluated at every step (one tap; a K-tap frame network needs K times more)."""
    total = 0
    for st in net.stages:
        w = st.syn.weight_shape
        total += st.syn.n_out * int(np.prod(w[1:]))
    return total
