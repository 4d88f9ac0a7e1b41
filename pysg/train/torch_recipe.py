# SPDX-License-Identifier: MIT
"""`pysg train --backend torch`: `pysg.recipes.train_folder` on the torch trainer, on
one device or data-parallel under torchrun (`ddp=True`)."""
from __future__ import annotations

from ..recipes import load_split, start_trainer
from .torch_trainer import DistContext, GestureSource, TorchTrainer, broadcast_params, device_for, torch
from .trainer import calibrate


def train_folder_torch(data_dir, out_path, *, epochs: int | None = None, dt_ms: float | None = None, seed: int = 0,
                       resume: bool = False, credit: str | None = None, mirror: bool | None = None,
                       min_count: int | None = None, device: str = "cpu",
                       ddp: bool = False,
                       threads: int | None = None, on_batch=None, on_epoch=None, on_binned=None) -> TorchTrainer:
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
    try:
        trainer, ckpt = start_trainer(
            out_path, dt_ms=dt_ms, seed=seed, epochs=epochs, resume=resume,
            new=lambda net, cfg: TorchTrainer(net, cfg, device=device, ctx=ctx),
            resumed=lambda path, epochs: TorchTrainer.resume_on(path, epochs=epochs, device=device, ctx=ctx),
            credit=credit, mirror=mirror, min_count=min_count)
        net = trainer.net
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
