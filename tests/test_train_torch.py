# SPDX-License-Identifier: MIT
"""The torch training backend against the numpy trainer (the reference), in float64:
the same gradients per batch, the same weights after a short run, checkpoints that
resume across backends, the same .sgm bytes; and the numpy path never imports torch."""
import io
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pysg.cli import main  # noqa: E402
from pysg.datasets.gesture import GESTURE_CLASSES, mirror_labels  # noqa: E402
from pysg.model import Conv2d, Dense, Flatten, Network, NetworkConfig, SumPool2d  # noqa: E402
from pysg.recipes import default_network, load_split  # noqa: E402
from pysg.train import torch_net as tn  # noqa: E402
from pysg.train import torch_trainer as tt  # noqa: E402
from pysg.train.optim import Adam  # noqa: E402
from pysg.train.trainer import TrainConfig, Trainer, adapt_thresholds, calibrate, train_batch  # noqa: E402
from tests.support.tiny import tiny_dataset_and_model  # noqa: E402

ARCHS = {
    "dense": [Flatten(), Dense(6), Dense(3)],
    # 7x7 -> 7x7 -> pooled 3x3 (a row and a column dropped), then a stride-2 conv that leaves an edge unread
    "conv": [Conv2d(3, 3, 1, 1), SumPool2d(2), Flatten(), Dense(5), Dense(3)],
    "conv2": [Conv2d(4, 2, 2, 0), Conv2d(3, 2, 1, 0), Flatten(), Dense(3)],
    "deep": [Flatten(), Dense(8), Dense(6), Dense(3)],
}


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the machine's cores are shared, and spinning intra-op threads
    on a busy core cost more than they give on networks this small."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def problem(arch, delays, seed=1):
    rng = np.random.default_rng(seed)
    net = Network(NetworkConfig((2, 7, 7), ARCHS[arch], n_buckets=3), rng=rng)
    for k in net.params:  # live neurons in every layer: biases and taps away from their init
        if k.endswith(".b"):
            net.params[k] = rng.normal(0.2, 0.3, net.params[k].shape)
        if k.endswith(".V"):
            net.params[k] = rng.normal(0.3, 0.3, net.params[k].shape)
    if delays:
        net.params["1.delays"] = rng.integers(0, 4, net.stages[1].n_in).astype(np.uint8)
    frames = (rng.random((4, 30, 2, 7, 7)) < 0.15).astype(np.uint16) * 2
    return net, frames, rng.integers(0, 3, 4), np.array([30, 22, 30, 17])


@pytest.mark.parametrize("arch,delays,credit", [("dense", False, "all"), ("conv", False, "all"),
                                                ("deep", False, "bucket0"), ("deep", True, "all"),
                                                ("conv", True, "bucket0"), ("conv2", False, "all"),
                                                ("conv", True, "traced"), ("conv2", True, "traced"),
                                                ("dense", True, "traced")])
def test_batch_gradients_equal_numpy(arch, delays, credit):
    net, frames, labels, lengths = problem(arch, delays)
    cfg = TrainConfig(dtype="float64", credit=credit, act_reg=0.05)
    ys = [[] for _ in net.stages[:-1]]
    loss, grads, score = train_batch(net, frames, labels, lengths, cfg, ys)
    r = tt.train_batch(tn.TorchNet(net), frames, labels, lengths, cfg)
    assert set(r.grads) == set(grads)
    for k in grads:
        assert np.abs(grads[k]).max() > 0, k  # every parameter gets credit: the comparison is not vacuous
        assert rel_err(r.grads[k].numpy(), grads[k]) <= 1e-6, k
    assert float(r.loss) == pytest.approx(loss, rel=1e-9)
    assert rel_err(r.score.numpy(), score) <= 1e-9
    for mine, ref in zip(r.ys, ys):  # the threshold samples: the same steps, the same values
        assert rel_err(mine.numpy(), np.stack(ref)) <= 1e-9


def test_every_time_step_gradient_equals_numpy():
    """Step by step, both networks side by side: the logits and each step's own online
    gradient (numpy's `online_step_grads` into a fresh dict) agree at every t."""
    from pysg.train.gradients import cross_entropy, online_step_grads, zero_grads

    net, frames, labels, lengths = problem("deep", True)
    w_all = tt.schedule_scale(lengths, 0.2, len(lengths))
    state = net.init_state(len(labels), traces=True, dtype=np.float64)
    tnet = tn.TorchNet(net)
    tstate = tnet.init_state(len(labels), torch.float64)
    flat = frames.reshape(len(labels), frames.shape[1], -1)
    labels_t = torch.as_tensor(labels)
    checked = 0
    for t in range(frames.shape[1]):
        logits = net.step(state, flat[:, t], spiking=True)
        tlogits = tnet.step(tstate, torch.as_tensor(flat[:, t]).double(), spiking=True)
        assert rel_err(tlogits.numpy(), logits) <= 1e-9, t
        w = ((t >= w_all[0]) & (t < lengths)) * w_all[1]
        if not w.any():
            continue
        g_ref = zero_grads(net)
        online_step_grads(net, state, cross_entropy(logits, labels, w)[1], w, g_ref, act_reg=0.05)
        g = tn.zero_grads(tnet)
        wt = torch.as_tensor(w)
        tn.online_step_grads(tnet, tstate, tn.cross_entropy(tlogits, labels_t, wt)[1], wt, g, act_reg=0.05)
        for k in g_ref:
            if np.abs(g_ref[k]).max() > 0:
                assert rel_err(g[k].numpy(), g_ref[k]) <= 1e-6, (t, k)
                checked += 1
    assert checked > 100


def test_adam_and_thresholds_equal_numpy():
    net, *_ = problem("conv", False)
    rng = np.random.default_rng(3)
    grads = {k: rng.normal(0, 3, v.shape) for k, v in net.params.items() if not k.endswith(".theta")}
    tnet = tn.TorchNet(net)
    ref, port = Adam(), tn.TorchAdam(Adam(), "cpu")
    params = {k: v.copy() for k, v in net.params.items()}
    for lr in (3e-3, 1e-3):  # the first step clips (norm > 5), then the moments carry over
        n_ref = ref.step(params, grads, lr=lr)
        n_port = port.step(tnet.params, {k: torch.as_tensor(g) for k, g in grads.items()}, lr=lr)
        assert n_port == pytest.approx(n_ref, rel=1e-12) and n_ref > ref.clip_norm
    for k in grads:
        assert rel_err(tnet.params[k].numpy(), params[k]) <= 1e-12, k
    ys = [[rng.gamma(0.5, 1.0, (4, st.n_out)) * (rng.random((4, st.n_out)) < 0.7) for _ in range(9)]
          for st in net.stages[:-1]]
    ys[0][0][:, : net.stages[0].syn.spatial] = 0.0  # a silent channel: the floor rule
    before = [net.params[f"{l}.theta"].copy() for l in range(len(ys))]
    adapt_thresholds(net, ys, quantile=99.0, momentum=0.5)
    tn.adapt_thresholds(tnet, [torch.as_tensor(np.stack(y)) for y in ys], quantile=99.0, momentum=0.5)
    for l in range(len(ys)):
        assert rel_err(tnet.params[f"{l}.theta"].numpy(), net.params[f"{l}.theta"]) <= 1e-12
        assert rel_err(net.params[f"{l}.theta"], before[l]) > 0.1  # they moved: the comparison is not vacuous
    for n in (1, 2, 7, 100):
        a = rng.normal(size=(3, n))
        for q in (0.0, 37.5, 50.0, 99.0, 100.0):
            assert np.allclose(tn.percentile(torch.as_tensor(a), q).numpy(), np.percentile(a, q, axis=1),
                               rtol=0, atol=1e-14)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The shared tiny CLI dataset (11 train gestures of 60 steps) and its numpy model."""
    return tiny_dataset_and_model(tmp_path_factory.mktemp("tiny"))


CFG = dict(epochs=2, batch_size=4, dtype="float64", stretch_max=1.3, keep_min=0.7,
           mirror=mirror_labels(GESTURE_CLASSES))  # 3 batches an epoch, the last of 3; augmented


def _calibrated(data):
    net = default_network()
    calibrate(net, data)
    return net


@pytest.fixture(scope="module")
def reference(tiny):
    """The numpy trainer's run on the tiny train split (the reference), and the data."""
    data = load_split(tiny[0], "train", default_network())
    tr = Trainer(_calibrated(data), TrainConfig(**CFG))
    tr.fit(data)
    assert not np.allclose(tr.net.params["0.W"], _calibrated(data).params["0.W"])  # it did train
    return tr, data


def test_short_run_gives_numpy_weights(reference):
    ref, data = reference
    tr = tt.TorchTrainer(_calibrated(data), TrainConfig(**CFG))
    tr.fit(data)
    for k, v in ref.net.params.items():
        assert tr.net.params[k].dtype == v.dtype, k
        assert rel_err(tr.net.params[k], v) <= 1e-5, k
    assert tr.history.loss == pytest.approx(ref.history.loss, rel=1e-9)
    assert tr.history.train_accuracy == ref.history.train_accuracy
    assert tr.opt.steps == ref.opt.steps == 6
    assert tr.rng.bit_generator.state == ref.rng.bit_generator.state  # the same draws, no more


def test_gesture_source_bins_like_load_split(tiny):
    data_dir, _ = tiny
    data = load_split(data_dir, "train", default_network())
    src = tt.GestureSource(data_dir, "train", default_network())
    assert np.array_equal(src.lengths, data.lengths) and np.array_equal(src.labels, data.labels)
    idx = np.array([7, 2, 9])
    t = data.frames.shape[1] * 3 // 4  # a prefix of the gestures (22 of 30 steps at the recipe's 20 ms)
    assert 0 < t < data.frames.shape[1] and data.frames[idx, :t].any()
    assert np.array_equal(src.frames(idx, t), data.frames[idx, :t])
    assert sorted(src.cache) == [2, 7, 9] and src.reads == 3  # only what was asked for


@pytest.mark.parametrize("first,second", [("numpy", "torch"), ("torch", "numpy")])
def test_checkpoints_resume_across_backends(reference, tmp_path, first, second):
    straight, data = reference

    class Stop(Exception):
        pass

    def stop(tr):
        raise Stop

    make = {"numpy": Trainer, "torch": tt.TorchTrainer}
    with pytest.raises(Stop):
        make[first](_calibrated(data), TrainConfig(**CFG)).fit(data, checkpoint=tmp_path / "c.ckpt", on_epoch=stop)
    resumed = (Trainer.resume(tmp_path / "c.ckpt") if second == "numpy" else
               tt.TorchTrainer.resume_on(tmp_path / "c.ckpt"))
    assert resumed.epoch == 1 and type(resumed) is make[second]
    resumed.fit(data)
    for k, v in straight.net.params.items():
        assert rel_err(resumed.net.params[k], v) <= 1e-5, k
    assert resumed.history.loss == pytest.approx(straight.history.loss, rel=1e-9)


def _npz_arrays(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return {n[:-4]: np.load(io.BytesIO(zf.read(n))) for n in zf.namelist() if n.endswith(".npy")}


def test_cli_torch_model_exports_like_numpy(tiny, tmp_path):
    data_dir, numpy_model = tiny
    model = tmp_path / "t.npz"
    assert main(["--quiet", "train", str(data_dir), "-o", str(model), "--epochs", "1", "--backend", "torch"]) == 0
    assert (tmp_path / "t.npz.ckpt").is_file()
    arrays = _npz_arrays(model)
    ref = _npz_arrays(numpy_model)
    assert {k: (v.dtype, v.shape) for k, v in arrays.items()} == {k: (v.dtype, v.shape) for k, v in ref.items()}
    # the same weights in a network built by the numpy recipe, exported by the same path
    net = default_network()
    net.params.update({k: v.copy() for k, v in arrays.items()})
    net.save(tmp_path / "n.npz")
    for name in ("t", "n"):
        assert main(["--quiet", "export", str(tmp_path / f"{name}.npz"), "-o", str(tmp_path / f"{name}.sgm")]) == 0
    assert (tmp_path / "t.sgm").read_bytes() == (tmp_path / "n.sgm").read_bytes()
    # float32 on both backends: the same run up to rounding (a loose check: a flipped spike may differ)
    assert rel_err(arrays["1.W"], ref["1.W"]) <= 1e-3


def test_numpy_path_never_imports_torch(tiny, tmp_path):
    data_dir, _ = tiny
    code = textwrap.dedent(f"""
        import sys
        import pysg.train.trainer, pysg.train.gradients, pysg.recipes
        from pysg.cli import main
        assert main(["--quiet", "train", {str(data_dir)!r}, "-o", {str(tmp_path / "m.npz")!r}, "--epochs", "1"]) == 0
        print("torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_missing_torch_names_the_extra(tiny, tmp_path):
    data_dir, _ = tiny
    code = textwrap.dedent(f"""
        import sys
        class NoTorch:  # as if torch were not installed
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ModuleNotFoundError("No module named 'torch'")
        sys.meta_path.insert(0, NoTorch())
        from pysg.cli import main
        sys.exit(main(["--quiet", "train", {str(data_dir)!r}, "-o", {str(tmp_path / "m.npz")!r}, "--backend",
                       "torch"]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert 'pip install "pysg[torch]"' in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args,says", [
    (["--device", "cuda"], "options of --backend torch"),
    (["--ddp"], "options of --backend torch"),
    (["--backend", "torch", "--threads", "0"], "--threads 0"),
    (["--backend", "torch", "--ddp"], "torchrun --nproc_per_node"),
    (["--backend", "torch", "--device", "cuda"], "no CUDA device"),
])
def test_cli_refusals_name_the_fix(tiny, tmp_path, capsys, monkeypatch, args, says):
    if "cuda" in args and "torch" in args and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert main(["--quiet", "train", str(tiny[0]), "-o", str(tmp_path / "m.npz"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "m.npz.ckpt").exists()
