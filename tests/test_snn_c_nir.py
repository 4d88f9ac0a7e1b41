# SPDX-License-Identifier: MIT
"""Networks built in snnTorch and sinabs, exported with their own NIR export and imported
by `pysg convert MODEL.nir`, on the C engine: per-step logits, synops and spikes per entry
equal the integer reference (pysg.engines.snn.SnnRef) on the bundled recording's
gestures; `pysg run --engine c` equals `--engine ref` on the converted file."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("nir")
snn = pytest.importorskip("snntorch")
sl = pytest.importorskip("sinabs.layers")

from pysg import jobs  # noqa: E402
from pysg.cli import main  # noqa: E402
from pysg.engines import create_engine  # noqa: E402
from pysg.engines.snn import SnnRef  # noqa: E402
from pysg.recipes import BUNDLED_SAMPLES  # noqa: E402
from tests.support.bundled import gesture_frames  # noqa: E402
from tests.support.nir_frameworks import sinabs_to_nir, snntorch_to_nir  # noqa: E402

RECORDING = next(BUNDLED_SAMPLES.glob("*.aedat"))
SHAPE = (2, 16, 16)  # 128 x 128 sensor / 8


def _snntorch_graph(path):
    torch.manual_seed(0)
    shape = (8, 8, 8)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 8, 3, stride=2, padding=1),
        snn.Leaky(beta=torch.full(shape, 0.9), threshold=torch.ones(shape), init_hidden=True),
        torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 24),
        snn.RLeaky(beta=0.9, linear_features=24, init_hidden=True), torch.nn.Linear(24, 11),
        snn.Synaptic(alpha=0.6, beta=0.85, init_hidden=True, output=True))
    with torch.no_grad():
        net[0].weight.mul_(2.0)
        net[4].weight.mul_(2.0)
        net[6].weight.mul_(3.0)
    snntorch_to_nir(net, torch.zeros(1, *SHAPE), path)


def _sinabs_graph(path):
    from sinabs.activation import SingleSpike

    torch.manual_seed(3)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 6, 3, stride=2, padding=1, bias=False), sl.IAFSqueeze(batch_size=1, spike_fn=SingleSpike),
        sl.SumPool2d(2), torch.nn.Flatten(), torch.nn.Linear(6 * 4 * 4, 11, bias=False),
        sl.LIFSqueeze(tau_mem=8.0, batch_size=1, spike_fn=SingleSpike))
    with torch.no_grad():
        net[0].weight.mul_(1.5)
        net[4].weight.mul_(8.0)
    sinabs_to_nir(net, torch.zeros(1, *SHAPE), path)


@pytest.mark.parametrize("framework", ["snntorch", "sinabs"])
def test_imported_network_c_equals_reference(framework, tmp_path, capsys):
    graph = tmp_path / f"{framework}.nir"
    {"snntorch": _snntorch_graph, "sinabs": _sinabs_graph}[framework](graph)
    sgm = tmp_path / f"{framework}.sgm"
    assert main(["--quiet", "convert", str(graph), "-o", str(sgm), "--sensor", "128x128"]) == 0
    capsys.readouterr()
    lm = jobs.load_model(sgm)
    model = lm.obj
    spiking_out = 0
    for frames, _, _ in gesture_frames(model, 3):
        ref, c = SnnRef(model), create_engine("c", lm)
        c.reset()
        spikes = np.zeros(len(model.layers), np.int64)
        synops = 0
        for t, x in enumerate(frames.reshape(len(frames), -1)):
            logits, sp, so = ref.step(x)
            np.testing.assert_array_equal(c.step(x), logits, err_msg=f"{framework} step {t}")
            spikes += sp
            synops += so
            spiking_out += int(np.count_nonzero(logits))
        assert c.stats["spikes"] == spikes.tolist() and c.stats["synops"] == synops
    assert spiking_out > 0 and spikes[:-1].sum() > 0  # the comparison is not of silence
    out = {}
    for e in ("ref", "c"):
        dump = tmp_path / f"{e}.npy"
        assert main(["run", str(sgm), str(RECORDING), "--one-sample", "--engine", e, "--json",
                     "--dump-logits", str(dump)]) == 0
        out[e] = json.loads(capsys.readouterr().out), np.load(dump)
    assert out["ref"][0] == out["c"][0]
    np.testing.assert_array_equal(out["ref"][1], out["c"][1])
