# SPDX-License-Identifier: MIT
"""`pysg train --backend torch`: the numpy trainer's recipe (pysg.train.trainer) on
PyTorch, on a CPU or a GPU, and data-parallel with DistributedDataParallel.

The same run as numpy's, draw for draw: the sample order and the augmentations
(`trainer.draw_augmentations`) come from the trainer's numpy Generator, the loss schedule,
Adam, the cosine schedule and the threshold adaptation are ports of numpy's, and
checkpoints are numpy's format (`Trainer.save_checkpoint`), so a run resumes on either
backend.

Data-parallel (`torchrun --nproc_per_node N -m pysg.train DATA ... --ddp`): every rank
draws the same global batch (the same Generator), keeps the positions rank, rank+N, ...
of it (DistributedSampler's split) and reads, bins and simulates only those recordings.
Normalisation: each rank's loss weights divide by the *global* batch size and its
gradient is multiplied by N before DDP averages it, so the average is the gradient of
the global batch, the one a single process computes. The steps that count and the
threshold samples are those of the global batch too (every rank simulates the global
batch's length; the sampled outputs are all-gathered), so the thresholds agree. Rank 0
alone writes checkpoints and the model.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ..model.network import Network
from .gradients import CREDIT_MODES, traces_for
from .torch_net import (FirstStageTraces, TorchAdam, TorchNet, adapt_thresholds, cross_entropy,
                        online_step_grads, torch, zero_grads)
from .trainer import (THETA_SAMPLE_EVERY, SequenceData, Trainer, augment, augment_labels, augmented_lengths,
                      draw_augmentations, lr_at)

DEVICES = ("cpu", "cuda")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


# ---------------------------------------------------------------- data


class FrameSource(Protocol):
    """Samples by index: lengths and labels up front, frames on demand."""

    lengths: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int: ...

    def frames(self, idx: np.ndarray, t_steps: int) -> np.ndarray:
        """(len(idx), t_steps, C, H, W) uint16 counts, zero past each sample's length."""
        ...


class ArraySource:
    """Binned samples already in memory (a `SequenceData`)."""

    def __init__(self, data: SequenceData):
        self.data, self.lengths, self.labels = data, data.lengths, data.labels

    def __len__(self) -> int:
        return len(self.labels)

    def frames(self, idx: np.ndarray, t_steps: int) -> np.ndarray:
        return self.data.frames[idx, :t_steps]


class GestureSource:
    """A DVS128-Gesture-layout split binned lazily for one network: lengths and labels
    from the labels files alone; a gesture's recording is decoded and binned the first
    time this process needs it (then kept, binned), so a rank reads only its recordings."""

    def __init__(self, root, split: str, net: Network, dt_us: int | None = None):
        from ..datasets.gesture import GestureDataset, labels_name, read_labels_csv, read_trials

        self.ds = GestureDataset(root, split)
        self.dt_us = int(dt_us or net.config.dt_us)
        self.cfg = net.config
        rows = [r for name in read_trials(root, split) for r in read_labels_csv(Path(root) / labels_name(name))]
        durations = np.array([int(r["t_end"]) - int(r["t_start"]) for r in rows], dtype=np.int64)
        self.lengths = -(-durations // self.dt_us)  # bin_events: ceil(duration / dt) steps
        self.labels = np.array([int(r["cls"]) - 1 for r in rows], dtype=np.int64)
        if len(self.labels) != len(self.ds):
            raise ValueError(f"{root}: {len(self.ds)} gestures in the {split} split, {len(self.labels)} label rows")
        if not len(self.labels):
            raise ValueError(f"{root}: no samples in the {split} split")
        self.cache: dict[int, np.ndarray] = {}
        self.reads = 0

    def __len__(self) -> int:
        return len(self.labels)

    def _binned(self, i: int) -> np.ndarray:
        if i not in self.cache:
            from ..datasets.binning import bin_events

            s = self.ds[i]
            cfg = self.cfg
            self.cache[i] = bin_events(s.events, duration_us=int(s.duration_us), dt_us=self.dt_us,
                                       sensor_size=cfg.sensor_size, downsample=cfg.downsample,
                                       channels=cfg.input_shape[0])
            self.reads += 1
        return self.cache[i]

    def frames(self, idx: np.ndarray, t_steps: int) -> np.ndarray:
        out = np.zeros((len(idx), t_steps, *self.cfg.input_shape), dtype=np.uint16)
        for j, i in enumerate(idx):
            f = self._binned(int(i))[:t_steps]
            out[j, : len(f)] = f
        return out

    def sequence_data(self, n: int) -> SequenceData:
        """The first n samples as one padded array (what `calibrate` reads)."""
        idx = np.arange(min(n, len(self)))
        return SequenceData(self.frames(idx, int(self.lengths[idx].max())), self.lengths[idx], self.labels[idx],
                            self.dt_us)


# ---------------------------------------------------------------- one batch


@dataclass
class BatchResult:
    loss: object  # 0-d float64 tensor: this rank's share of the global batch's loss
    grads: dict  # float64 tensors: this rank's share of the global batch's gradient
    score: object  # (B_local, classes) summed logits
    ys: list  # per hidden stage: (S, B_local, N) sampled outputs, or None


def schedule_scale(lengths: np.ndarray, warmup: float, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """`gradients.LossSchedule` with the global batch size in the denominator."""
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warmup must be in [0, 1), got {warmup}")
    lengths = np.asarray(lengths, dtype=np.int64)
    start = np.floor(warmup * lengths).astype(np.int64)
    return start, 1.0 / (np.maximum(lengths - start, 1) * batch)


def train_batch(tnet: TorchNet, frames: np.ndarray, labels: np.ndarray, lengths: np.ndarray, cfg, *,
                global_lengths: np.ndarray | None = None, sample: bool = True) -> BatchResult:
    """`trainer.train_batch` on torch for this rank's part (frames (B, T, ...)) of a
    global batch whose lengths are `global_lengths` (default: this batch alone)."""
    glen = lengths if global_lengths is None else global_lengths
    dev, dtype = tnet.device, DTYPES[cfg.dtype]
    batch, t_steps = frames.shape[:2]
    start, scale = schedule_scale(lengths, cfg.warmup, len(glen))
    gstart = np.floor(cfg.warmup * np.asarray(glen, dtype=np.int64)).astype(np.int64)
    grads = zero_grads(tnet)
    total = torch.zeros((), dtype=torch.float64, device=dev)
    score = torch.zeros((batch, tnet.net.n_classes), dtype=torch.float64, device=dev)
    if batch == 0:  # a rank's empty share of a short last batch: nothing to add, same-shaped samples
        n_sampled = sum(1 for t in range(0, t_steps, THETA_SAMPLE_EVERY) if ((t >= gstart) & (t < glen)).any())
        ys = [torch.zeros((n_sampled, 0, ts.n_out), dtype=dtype, device=dev) if sample and n_sampled else None
              for ts in tnet.stages[:-1]]
        return BatchResult(total, grads, score, ys)
    flat = frames.reshape(batch, t_steps, -1)
    state = tnet.init_state(batch, dtype)
    traces = traces_for(tnet, batch, cfg.credit, dtype, make=FirstStageTraces)
    labels_t = torch.as_tensor(labels, device=dev)
    ys = [[] for _ in tnet.stages[:-1]]
    for t in range(t_steps):
        # counts -> the compute dtype on the host: the device never sees uint16
        logits = tnet.step(state, torch.from_numpy(flat[:, t]).to(dtype).to(dev), spiking=cfg.spiking)
        if traces is not None:
            traces.advance(state)
        if not ((t >= gstart) & (t < glen)).any():  # the global batch's rule: no step counts
            continue
        w_np = ((t >= start) & (t < lengths)) * scale
        w = torch.as_tensor(w_np, device=dev)
        loss, g = cross_entropy(logits.to(torch.float64), labels_t, w)
        total += loss + online_step_grads(tnet, state, g, w, grads, credit=cfg.credit, act_reg=cfg.act_reg,
                                          traces=traces)
        score += (w > 0)[:, None] * logits
        if sample and t % THETA_SAMPLE_EVERY == 0:
            for l in range(len(ys)):
                ys[l].append(torch.clamp_min(state.x[l], 0.0))
    stacked = [torch.stack(y) if y else None for y in ys]
    return BatchResult(total, grads, score, stacked)


# ---------------------------------------------------------------- distributed


@dataclass
class DistContext:
    """This process's place in a torch.distributed job (world 1: a plain run)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls, device: str) -> "DistContext":
        """Join the job torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR, ...): gloo
        on CPU, nccl on CUDA."""
        dist = torch.distributed  # torch came through torch_net.import_torch (the extra named)

        if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
            raise ValueError("--ddp: no torch.distributed job here (RANK / WORLD_SIZE unset); launch with "
                             "torchrun --nproc_per_node N -m pysg.train DATA -o MODEL --backend torch --ddp")
        device_for(device, cls())  # refuses cuda without a CUDA device before joining
        if device == "cuda":  # NCCL's object collectives use the current device
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))

    def positions(self, n: int) -> np.ndarray:
        """This rank's positions in a global batch of n (DistributedSampler's split)."""
        return np.arange(self.rank, n, self.world)


class _GradCarrier(torch.nn.Module):
    """The trainable parameters as a module whose output sum(p * g) has gradient g:
    backward through DistributedDataParallel then all-reduces (averages) the online
    gradients with DDP's own bucketed communication."""

    def __init__(self, tnet: TorchNet):
        super().__init__()
        self.names = tnet.trainable
        self.ps = torch.nn.ParameterList([torch.nn.Parameter(tnet.params[k]) for k in self.names])

    def forward(self, grads: list):
        return sum(torch.sum(p * g) for p, g in zip(self.ps, grads))


class _Reducer:
    """Everything a rank shares per batch: DDP for the gradients, all-reduce for the
    loss and the correct count, all-gather for the threshold samples."""

    def __init__(self, tnet: TorchNet, ctx: DistContext):
        dist = torch.distributed  # torch came through torch_net.import_torch (the extra named)

        self.dist, self.ctx, self.tnet = dist, ctx, tnet
        self.carrier = _GradCarrier(tnet)
        ids = [tnet.device.index] if tnet.device.type == "cuda" else None
        self.ddp = torch.nn.parallel.DistributedDataParallel(self.carrier, device_ids=ids)

    def gradients(self, grads: dict) -> dict:
        for p in self.carrier.ps:
            p.grad = None
        self.ddp([grads[k] * self.ctx.world for k in self.carrier.names]).backward()
        return {k: p.grad for k, p in zip(self.carrier.names, self.carrier.ps)}

    def total(self, x: float) -> float:
        t = torch.tensor([x], dtype=torch.float64, device=self.tnet.device)
        self.dist.all_reduce(t)
        return float(t[0])

    def samples(self, ys: list, sizes: list[int]) -> list:
        out = []
        width = max(sizes)
        for y in ys:
            if y is None:
                out.append(None)
                continue
            pad = y.new_zeros((y.shape[0], width, y.shape[2]))
            pad[:, : y.shape[1]] = y
            parts = [torch.empty_like(pad) for _ in range(self.ctx.world)]
            self.dist.all_gather(parts, pad)
            out.append(torch.cat([p[:, :n] for p, n in zip(parts, sizes)], dim=1))
        return out


# ---------------------------------------------------------------- the trainer


class TorchTrainer(Trainer):
    """`Trainer` (same state, history and checkpoint format) whose batches run on torch."""

    def __init__(self, net: Network, cfg, *, device: str = "cpu", ctx: DistContext | None = None):
        super().__init__(net, cfg)
        if cfg.credit not in CREDIT_MODES:
            raise ValueError(f"credit must be one of {CREDIT_MODES}, got {cfg.credit!r}")
        if cfg.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {cfg.dtype!r}")
        self.ctx = ctx or DistContext()
        self.device = device_for(device, self.ctx)
        self._tnet: TorchNet | None = None
        self._adam: TorchAdam | None = None

    @classmethod
    def resume_on(cls, path, *, epochs: int | None = None, device: str = "cpu",
                  ctx: DistContext | None = None) -> "TorchTrainer":
        """Continue a checkpoint written by either backend."""
        tr = Trainer.resume(path, epochs=epochs)
        out = cls(tr.net, tr.cfg, device=device, ctx=ctx)
        out.epoch, out.history, out.opt, out.rng = tr.epoch, tr.history, tr.opt, tr.rng
        return out

    def fit(self, train, val: SequenceData | None = None, *, checkpoint: str | Path | None = None,
            on_batch: Callable[[int, float], None] | None = None,
            on_epoch: Callable[["Trainer"], None] | None = None):
        source: FrameSource = ArraySource(train) if isinstance(train, SequenceData) else train
        cfg, ctx = self.cfg, self.ctx
        self._tnet = tnet = TorchNet(self.net, self.device)
        self._adam = adam = TorchAdam(self.opt, self.device)
        reducer = _Reducer(tnet, ctx) if ctx.active else None
        n = len(source)
        nb = math.ceil(n / cfg.batch_size)
        try:
            while self.epoch < cfg.epochs:
                t0 = time.perf_counter()
                order = self.rng.permutation(n)
                total, correct = 0.0, 0
                for bi in range(nb):
                    idx = order[bi * cfg.batch_size:(bi + 1) * cfg.batch_size]
                    recorded = source.lengths[idx]
                    draws = draw_augmentations(self.rng, len(idx), cfg)
                    glen = augmented_lengths(recorded, draws)  # the global batch's, as every rank sees it
                    mine = ctx.positions(len(idx))
                    my_draws = [draws[i] for i in mine]
                    frames, _ = augment(source.frames(idx[mine], int(recorded.max())), recorded[mine], my_draws,
                                        t_steps=int(glen.max()))
                    labels = augment_labels(source.labels[idx[mine]], my_draws, cfg.mirror)
                    r = train_batch(tnet, frames, labels, glen[mine], cfg, global_lengths=glen)
                    loss = float(r.loss)
                    hits = int(torch.sum(r.score.argmax(1).cpu() == torch.as_tensor(labels)))
                    grads, ys = r.grads, r.ys
                    if reducer is not None:
                        grads = reducer.gradients(grads)
                        loss, hits = reducer.total(loss), int(round(reducer.total(hits)))
                        ys = reducer.samples(ys, [len(range(q, len(idx), ctx.world)) for q in range(ctx.world)])
                    lr = lr_at(cfg, (self.epoch * nb + bi) / (cfg.epochs * nb))
                    adam.step(tnet.params, grads, lr=lr)
                    adapt_thresholds(tnet, ys, quantile=cfg.theta_quantile, momentum=cfg.theta_momentum)
                    total += loss * len(idx)
                    correct += hits
                    if on_batch:
                        on_batch(len(idx), loss)
                self.sync()  # callbacks, evaluation and checkpoints see this epoch's weights in self.net
                self.end_epoch(total, correct, n, t0, val, checkpoint, on_epoch)
        finally:
            self.sync()
        return self.history

    def sync(self) -> None:
        """Bring the device parameters and Adam moments back into the numpy network and
        optimiser (what checkpoints and `net.save` write)."""
        if self._tnet is not None:
            self._tnet.to_numpy()
            self._adam.to_numpy()

    def save_checkpoint(self, path: str | Path) -> None:
        self.sync()
        if self.ctx.rank == 0:
            super().save_checkpoint(path)


def device_for(device: str, ctx: DistContext) -> str:
    if device not in DEVICES:
        raise ValueError(f"--device must be one of {DEVICES}, got {device!r}")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: this PyTorch sees no CUDA device (torch.cuda.is_available() is "
                             "False); use --device cpu, or install a CUDA build of torch")
        return f"cuda:{ctx.local_rank}"
    return "cpu"


def broadcast_params(net: Network, ctx: DistContext) -> None:
    """Rank 0's parameters (after its calibration) to every rank."""
    if not ctx.active:
        return
    dist = torch.distributed  # torch came through torch_net.import_torch (the extra named)

    box = [net.params if ctx.rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    net.params.update(box[0])
