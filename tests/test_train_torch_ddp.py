# SPDX-License-Identifier: MIT
"""Data-parallel training: 2 CPU processes (gloo, DistributedDataParallel) give the
weights of one process on the global batch; each rank reads only its recordings;
rank 0 alone writes checkpoints, and the job resumes from them."""
import json
import os
import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pysg.cli import main  # noqa: E402
from pysg.datasets.gesture import GESTURE_CLASSES, mirror_labels  # noqa: E402
from pysg.recipes import default_network, load_split  # noqa: E402
from pysg.train import torch_trainer as tt  # noqa: E402
from pysg.train.trainer import TrainConfig, Trainer, calibrate  # noqa: E402

# 11 gestures: batches of 5, 5, 1; the ranks get 3+2, then 1+0 (rank 1 has an empty share)
CFG = dict(epochs=2, batch_size=5, dtype="float64", stretch_max=1.3, keep_min=0.7,
           mirror=mirror_labels(GESTURE_CLASSES))  # augmented: the ranks draw alike
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, port: int, data_dir: str, out_dir: str) -> None:
    """One rank: epoch 1 with checkpoints (interrupted after it), then resume for epoch 2."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    writes = []
    base_save = Trainer.save_checkpoint

    def spy(self, path):  # the numpy writer every backend ends in
        writes.append(str(path))
        base_save(self, path)

    Trainer.save_checkpoint = spy
    ctx = tt.DistContext.from_env("cpu")
    net = default_network()
    source = tt.GestureSource(data_dir, "train", net)
    if rank == 0:
        calibrate(net, tt.GestureSource(data_dir, "train", net).sequence_data(32))  # the recipe's calibration
    tt.broadcast_params(net, ctx)
    ckpt = os.path.join(out_dir, "c.ckpt")

    class Stop(Exception):
        pass

    def stop(tr):
        raise Stop

    try:
        tt.TorchTrainer(net, TrainConfig(**CFG), ctx=ctx).fit(source, checkpoint=ckpt, on_epoch=stop)
    except Stop:
        pass
    read_epoch1 = sorted(source.cache)
    dist.barrier()  # rank 0's checkpoint is on disk
    tr = tt.TorchTrainer.resume_on(ckpt, ctx=ctx)
    tr.fit(tt.GestureSource(data_dir, "train", tr.net), checkpoint=ckpt)
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **tr.net.params)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"writes": writes, "read_epoch1": read_epoch1, "loss": tr.history.loss}, f)
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp") / "data"
    assert main(["--quiet", "synth", str(d), "--train-users", "1", "--test-users", "1", "--lightings-per-user",
                 "1", "--seconds", "0.6", "--workers", "1"]) == 0
    return d


def test_two_ranks_equal_one_process_on_the_global_batch(data_dir, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_rank, args=(_free_port(), str(data_dir), str(tmp_path)), nprocs=WORLD, join=True)
    torch.set_num_threads(1)
    data = load_split(data_dir, "train", default_network())
    net = default_network()
    calibrate(net, data)
    one = tt.TorchTrainer(net, TrainConfig(**CFG))
    one.fit(data)
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(WORLD)]
    info = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    for k, v in net.params.items():
        assert np.array_equal(ranks[0][k], ranks[1][k]), k  # the ranks stay in step exactly
        err = np.abs(ranks[0][k] - v).max() / np.abs(v).max()
        assert err <= 1e-9, (k, err)  # only the order of the gradient sums differs
    assert info[0]["loss"] == pytest.approx(one.history.loss, rel=1e-12)
    # rank 0 alone wrote the checkpoint (after epoch 1, and after epoch 2 of the resumed run)
    assert [len(i["writes"]) for i in info] == [2, 0]
    # sharding: in epoch 1 each rank read exactly its positions of each global batch
    order = np.random.default_rng(0).permutation(len(data))
    batches = [order[i:i + CFG["batch_size"]] for i in range(0, len(order), CFG["batch_size"])]
    for r in range(WORLD):
        assert info[r]["read_epoch1"] == sorted(int(i) for b in batches for i in b[r::WORLD])


def _arrays(path) -> dict:
    import io
    import zipfile

    with zipfile.ZipFile(path) as zf:
        return {n[:-4]: np.load(io.BytesIO(zf.read(n))) for n in zf.namelist() if n.endswith(".npy")}


def test_torchrun_launches_the_cli(data_dir, tmp_path):
    """The documented launch: torchrun -m pysg.train ... --ddp (float32, the CLI's dtype)."""
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD), "--master_port",
           str(_free_port()), "-m", "pysg.train", str(data_dir), "-o", str(tmp_path / "d.npz"), "--backend", "torch",
           "--ddp", "--epochs", "1", "--threads", "1", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1 and lines[0]["epochs"] == 1  # rank 0 reports, alone
    assert (tmp_path / "d.npz.ckpt").is_file()
    torch.set_num_threads(1)
    assert main(["--quiet", "train", str(data_dir), "-o", str(tmp_path / "one.npz"), "--backend", "torch",
                 "--epochs", "1"]) == 0
    ddp, one = _arrays(tmp_path / "d.npz"), _arrays(tmp_path / "one.npz")
    for k in one:  # float32 sums in another order: rounding apart
        assert np.abs(ddp[k] - one[k]).max() <= 1e-4 * np.abs(one[k]).max(), k
