# SPDX-License-Identifier: MIT
"""`pysg train --backend torch`: `pysg.recipes.train_folder` on the torch trainer, on
one device or data-parallel under torchrun (`ddp=True`)."""
from __future__ import annotations

from pathlib import Path

from ..recipes import default_network, load_split
from .torch_trainer import DistContext, GestureSource, TorchTrainer, broadcast_params, device_for, torch
from .trainer import TrainConfig, calibrate


def train_folder_torch(data_dir, out_path, *, epochs: int | None = None, dt_ms: float = 10.0, seed: int = 0,
                       resume: bool = False, device: str = "cpu", ddp: bool = False, threads: int | None = None,
                       on_batch=None, on_epoch=None, on_binned=None) -> TorchTrainer:
    """Train the default network with the default recipe on `data_dir`'s train split.

    As `train_folder`: `<out_path>.ckpt` after every epoch (the numpy trainer's format:
    either backend resumes it), the model saved to `out_path`. With `ddp`, this process
    is one rank of a torchrun job: it bins only its own recordings (`GestureSource`),
    rank 0 calibrates and broadcasts the initial parameters, and rank 0 alone writes."""
    device_for(device, DistContext())  # refuse a missing CUDA device before any work
    if ddp and str(data_dir).startswith("tonic:"):
        raise ValueError(f"--ddp: {data_dir}: data-parallel training reads a DVS128-Gesture-layout folder (each rank "
                         f"its own recordings); train a tonic dataset in one process (drop --ddp)")
    if threads:
        torch.set_num_threads(threads)
    ctx = DistContext.from_env(device) if ddp else DistContext()
    out_path = Path(out_path)
    ckpt = out_path.with_name(out_path.name + ".ckpt")
    dt_us = int(round(dt_ms * 1000))
    try:
        if resume and ckpt.exists():
            trainer = TorchTrainer.resume_on(ckpt, epochs=epochs, device=device, ctx=ctx)
            net = trainer.net
            if net.config.dt_us != dt_us:
                raise ValueError(f"{ckpt}: checkpoint runs at dt={net.config.dt_us} us, asked for {dt_us} us")
        else:
            net = default_network(dt_us=dt_us, seed=seed)
            cfg = TrainConfig(seed=seed)
            if epochs is not None:
                cfg.epochs = epochs
            trainer = TorchTrainer(net, cfg, device=device, ctx=ctx)
        train = GestureSource(data_dir, "train", net) if ctx.active else load_split(data_dir, "train", net)
        if on_binned:
            on_binned(train, trainer)
        if trainer.epoch == 0:
            if ctx.rank == 0:
                # under DDP from a source of its own: rank 0's training cache stays its shard
                calibrate(net, GestureSource(data_dir, "train", net).sequence_data(32) if ctx.active else train)
            broadcast_params(net, ctx)
        trainer.fit(train, checkpoint=ckpt, on_batch=on_batch, on_epoch=on_epoch)
        if ctx.rank == 0:
            net.save(out_path)
    finally:
        if ctx.active:
            dist = torch.distributed  # torch came through torch_net.import_torch (the extra named)

            dist.destroy_process_group()
    return trainer
