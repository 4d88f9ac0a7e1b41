# SPDX-License-Identifier: MIT
"""Fidelity of the NIR import against the source frameworks' own simulation
(docs/NIR.md "Fidelity"): networks built in snnTorch 1.0.0 and sinabs 3.1.3, exported
with their own NIR export, imported by `pysg convert`'s converter, run on recorded
gestures (the bundled DVS128-Gesture-layout recording) one step at a time:

* the float lowering (pysg's oracle) reproduces the framework's output spikes;
* pysg's int8 integer reference agrees with the framework's float simulation on the
  decisions and, at every step, on every class's output spike count within the
  documented tolerance (COUNT_TOL: the int8 weights move a spike by a step now and then).
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("nir")
snn = pytest.importorskip("snntorch")
sl = pytest.importorskip("sinabs.layers")

from pysg.converters.nir_import import nir_to_sgm  # noqa: E402
from pysg.engines.snn import SnnRef  # noqa: E402
from tests.support.bundled import gesture_frames  # noqa: E402
from tests.support.nir_frameworks import (decisions, run_sinabs, run_snntorch, sinabs_to_nir,  # noqa: E402
                                          snntorch_to_nir)

H = 16                      # 128 x 128 sensor / 8
SHAPE = (2, H, H)
SMALL = (2, 4, 4)           # 128 x 128 sensor / 32, for the dense networks
N_GESTURES = 5
COUNT_TOL = 4               # docs/NIR.md: every step, each class's output spike count so far is within
COUNT_REL = 0.05            # COUNT_TOL + COUNT_REL x the framework's count
DECISION_MIN = 0.99         # of the steps where the framework leads by more than COUNT_TOL


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # per-step torch calls on a shared 2-core machine
    yield
    torch.set_num_threads(n)


def _gestures(model) -> list[np.ndarray]:
    return [f.reshape(len(f), -1).astype(np.int64) for f, _, _ in gesture_frames(model, N_GESTURES)]


def _pysg(imp, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 reference, float oracle) output spikes (T, n_classes)."""
    ref = SnnRef(imp.model)
    iq = np.array([ref.step(x)[0] for x in frames])
    imp.float_net.reset()
    fl = np.array([imp.float_net.step(x) for x in frames])
    return iq, fl


def _check(run_framework, imp) -> dict:
    steps = agree = decided = decided_agree = final = 0
    worst = -np.inf  # the largest count difference beyond the tolerance (<= 0: within)
    spikes = 0
    gestures = _gestures(imp.model)
    for frames in gestures:
        fw = run_framework(frames)
        iq, fl = _pysg(imp, frames)
        # the oracle: the same discrete update in float64 as the framework's in float32
        assert (fl == fw).mean() >= 0.999, f"float lowering differs from the framework: {(fl != fw).sum()} spikes"
        cum_fw, cum_q = np.cumsum(fw, axis=0), np.cumsum(iq, axis=0)
        excess = np.abs(cum_fw - cum_q) - (COUNT_TOL + COUNT_REL * cum_fw)
        worst = max(worst, float(excess.max()))
        d_fw, d_q = decisions(fw), decisions(iq)
        top2 = np.sort(cum_fw, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > COUNT_TOL
        steps += len(frames)
        agree += int((d_fw == d_q).sum())
        decided += int(clear.sum())
        decided_agree += int((d_fw == d_q)[clear].sum())
        final += int(d_fw[-1] == d_q[-1])
        spikes += int(fw.sum())
    stats = {"steps": steps, "agree": agree / steps, "decided": decided,
             "decided_agree": decided_agree / max(1, decided),
             "final": final / len(gestures), "worst_excess": worst, "spikes": spikes}
    assert spikes > 10 * len(gestures), f"the output hardly spikes: {stats}"
    assert decided > steps // 4, f"the framework rarely decides: {stats}"
    assert worst <= 0, f"an output spike count differs by more than {COUNT_TOL} + {COUNT_REL:.0%}: {stats}"
    assert stats["decided_agree"] >= DECISION_MIN and stats["final"] >= DECISION_MIN, stats
    print(stats)
    return stats


# ------------------------------------------------------------------ snnTorch


def _snntorch_conv(seed: int):
    torch.manual_seed(seed)
    shape = (8, 8, 8)  # snnTorch's export needs per-neuron beta/threshold to give a conv layer's shape
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 8, 3, stride=2, padding=1),
        snn.Leaky(beta=torch.full(shape, 0.9), threshold=torch.ones(shape), init_hidden=True),
        torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 11),
        snn.Leaky(beta=0.85, init_hidden=True, output=True))
    with torch.no_grad():
        net[0].weight.mul_(2.0)
        net[4].weight.mul_(4.0)
    return net


def test_snntorch_conv_leaky_avgpool(tmp_path):
    net = _snntorch_conv(0)
    graph = snntorch_to_nir(net, torch.zeros(1, *SHAPE), tmp_path / "conv.nir")
    imp = nir_to_sgm(tmp_path / "conv.nir", sensor=(128, 128))
    assert imp.convention.name == "snntorch"
    assert [(ly.kind_name, ly.neuron_name) for ly in imp.model.layers] == [
        ("conv2d", "lif"), ("sumpool2d", "none"), ("dense", "lif")]
    assert graph is not None
    _check(lambda fr: run_snntorch(net, fr, SHAPE), imp)


def test_snntorch_synaptic_dense(tmp_path):
    torch.manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 24),
        snn.Synaptic(alpha=0.6, beta=0.9, init_hidden=True), torch.nn.Linear(24, 11),
        snn.Leaky(beta=0.8, init_hidden=True, output=True))
    with torch.no_grad():
        net[1].weight.mul_(0.6)
        net[3].weight.mul_(3.0)
    snntorch_to_nir(net, torch.zeros(1, *SMALL), tmp_path / "syn.nir")
    imp = nir_to_sgm(tmp_path / "syn.nir", sensor=(128, 128))
    assert [ly.neuron_name for ly in imp.model.layers] == ["cubalif", "lif"]
    _check(lambda fr: run_snntorch(net, fr, SMALL), imp)


def test_snntorch_recurrent_rleaky(tmp_path):
    torch.manual_seed(2)
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 20),
        snn.RLeaky(beta=0.9, linear_features=20, init_hidden=True), torch.nn.Linear(20, 11),
        snn.Leaky(beta=0.8, init_hidden=True, output=True))
    with torch.no_grad():
        net[1].weight.mul_(0.4)
        net[2].recurrent.weight.mul_(0.8)
        net[3].weight.mul_(3.0)
    snntorch_to_nir(net, torch.zeros(1, *SMALL), tmp_path / "rec.nir")
    imp = nir_to_sgm(tmp_path / "rec.nir", sensor=(128, 128))
    rec = [ly for ly in imp.model.layers if ly.rec_weights is not None]
    assert len(rec) == 1 and rec[0].rec_weights.shape == (20, 20)
    _check(lambda fr: run_snntorch(net, fr, SMALL), imp)


# ------------------------------------------------------------------ sinabs


def test_sinabs_conv_iaf_sumpool_lif(tmp_path):
    from sinabs.activation import SingleSpike

    torch.manual_seed(3)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 6, 3, stride=2, padding=1, bias=False), sl.IAFSqueeze(batch_size=1, spike_fn=SingleSpike),
        sl.SumPool2d(2), torch.nn.Flatten(), torch.nn.Linear(6 * 4 * 4, 11, bias=False),
        sl.LIFSqueeze(tau_mem=8.0, batch_size=1, spike_fn=SingleSpike))
    with torch.no_grad():
        net[0].weight.mul_(1.5)
        net[4].weight.mul_(8.0)
    sinabs_to_nir(net, torch.zeros(1, *SHAPE), tmp_path / "sinabs.nir")
    imp = nir_to_sgm(tmp_path / "sinabs.nir", sensor=(128, 128))
    assert imp.convention.name == "sinabs"
    assert [(ly.kind_name, ly.neuron_name) for ly in imp.model.layers] == [
        ("conv2d", "if"), ("sumpool2d", "none"), ("dense", "lif")]
    _check(lambda fr: run_sinabs(net, fr, SHAPE), imp)


def test_sinabs_dense_lif_iaf(tmp_path):
    from sinabs.activation import SingleSpike

    torch.manual_seed(4)
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 32),
        sl.LIFSqueeze(tau_mem=12.0, batch_size=1, spike_fn=SingleSpike), torch.nn.Linear(32, 11),
        sl.IAFSqueeze(batch_size=1, spike_fn=SingleSpike))
    with torch.no_grad():
        net[1].weight.mul_(0.5)
        net[3].weight.mul_(1.5)
    sinabs_to_nir(net, torch.zeros(1, *SMALL), tmp_path / "dense.nir")
    imp = nir_to_sgm(tmp_path / "dense.nir", sensor=(128, 128))
    _check(lambda fr: run_sinabs(net, fr, SMALL), imp)
