# SPDX-License-Identifier: MIT
"""`pysg export --nir` (docs/NIR.md, "Export"): the file loads with nir's own reader and
holds, node by node, what the docs say (checked against the network's parameters and the
closed-form decays alpha = exp(-dt/tau_ms)); pysg -> NIR -> pysg is exact (logits and the
.sgm bytes); a NIR simulator written from nir's node equations (tests/support/nir_sim.py)
agrees with pysg's float model on a real recording, and differs under the continuous-time
(exponential) reading that docs/NIR.md says the graph does not express."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from pysg.cli import main  # noqa: E402
from pysg.converters.nir_export import network_to_nir  # noqa: E402
from pysg.converters.nir_sg import SgGraphError, is_sg_graph, sg_from_nir  # noqa: E402
from pysg.converters.sgm import export_network  # noqa: E402
from pysg.datasets.binning import bin_events  # noqa: E402
from pysg.io import read_events  # noqa: E402
from pysg.model.layers import Conv2d, Dense, Flatten, SumPool2d  # noqa: E402
from pysg.model.network import Network, NetworkConfig  # noqa: E402
from pysg.preprocess import apply_mapping, sensor_mapping  # noqa: E402
from tests.support.nir_sim import NirSim  # noqa: E402

BUNDLED = Path(__file__).resolve().parents[1] / "pysg" / "data" / "gesture_model.npz"


def _conv_net_with_delays() -> Network:
    """Every layer kind and delays: conv (padding, stride), pooling, flatten, two dense stages."""
    cfg = NetworkConfig(input_shape=(2, 16, 16), sensor_size=(64, 64), downsample=4, n_buckets=3, dt_us=5000,
                        layers=[Conv2d(4, 3, 1, 1), SumPool2d(2), Conv2d(6, 3, 2, 0), Flatten(), Dense(10),
                                Dense(3)], classes=["a", "b", "c"], input_gain=0.7)
    net = Network(cfg, rng=np.random.default_rng(5))
    rng = np.random.default_rng(6)
    for st in net.stages[:-1]:
        net.params[f"{st.index}.theta"] = rng.uniform(0.05, 0.3, net.params[f"{st.index}.theta"].shape)
        net.params[f"{st.index}.b"] = rng.normal(0.0, 0.2, net.params[f"{st.index}.b"].shape)
    net.params["1.delays"] = rng.integers(0, 4, net.stages[1].n_in).astype(np.int32)
    net.params["2.delays"] = rng.integers(1, 3, net.stages[2].n_in).astype(np.uint8)
    return net


def _real_frames(real_data: Path, net: Network, steps: int) -> np.ndarray:
    """The DAVIS346 recording mapped onto the model's sensor, binned into (T, 1, C, H, W) frames."""
    rec = read_events(real_data / "davis346.aedat4")
    ev = apply_mapping(rec.events, sensor_mapping((rec.width, rec.height), net.config.sensor_size))
    ev = ev.copy()
    ev["t"] -= ev["t"][0]
    dt = net.config.dt_us
    ev = ev[ev["t"] < steps * dt]
    frames = bin_events(ev, duration_us=steps * dt, dt_us=dt, sensor_size=net.config.sensor_size,
                        downsample=net.config.downsample, channels=net.config.input_shape[0])
    return frames[:, None].astype(np.float64)


def _write_read(net: Network, tmp_path: Path):
    path = tmp_path / "m.nir"
    nir.write(str(path), network_to_nir(net))
    return nir.read(str(path))


# ---------------------------------------------------------------- the file, by nir's reader


def test_cli_export_nir_read_by_nir_matches_docs(tmp_path, capsys):
    net = Network.load(BUNDLED)
    out = tmp_path / "gesture.nir"
    assert main(["export", str(BUNDLED), "--nir", str(out)]) == 0
    assert f"wrote {out}: NIR graph" in capsys.readouterr().out
    g = nir.read(str(out))
    p, cfg, dt = net.params, net.config, 0.01
    alpha = [np.exp(-10.0 / np.asarray(t)) for t in cfg.tau_ms]  # closed form: dt 10 ms
    types = {n: type(v).__name__ for n, v in g.nodes.items()}
    assert types["input"] == "Input" and list(g.nodes["input"].input_type["input"]) == [2, 32, 32]
    assert types["output"] == "Output" and list(g.nodes["output"].output_type["output"]) == [11]
    assert np.all(g.nodes["input_gain"].scale == 1.0)
    pool = g.nodes["s0.pool0"]
    assert types["s0.pool0"] == "SumPool2d" and list(pool.kernel_size) == [2, 2] and list(pool.stride) == [2, 2]
    assert types["s0.flatten1"] == "Flatten"
    for l, n_out in ((0, 128), (1, 11)):
        assert types[f"s{l}.syn"] == "Linear" and np.array_equal(g.nodes[f"s{l}.syn"].weight, p[f"{l}.W"])
        r0 = g.nodes[f"s{l}.readout0"]
        assert types[f"s{l}.readout0"] == "Affine"
        assert np.array_equal(r0.weight, np.diag(p[f"{l}.V"][:, 0])) and np.array_equal(r0.bias, p[f"{l}.b"])
        for k in range(4):
            li = g.nodes[f"s{l}.bucket{k}"]
            assert types[f"s{l}.bucket{k}"] == "LI" and li.tau.shape == (n_out,)
            # Euler at dt: v <- (1 - dt/tau) v + (dt/tau) R I, i.e. alpha v + I (k = 0), alpha v + (1-alpha) I
            np.testing.assert_allclose(1 - dt / li.tau, alpha[l][k], rtol=0, atol=1e-12)
            np.testing.assert_allclose(dt / li.tau * li.r, 1.0 if k == 0 else 1 - alpha[l][k], atol=1e-12)
            assert np.all(li.v_leak == 0)
            if k:
                assert types[f"s{l}.tap{k}"] == "Delay" and np.all(g.nodes[f"s{l}.tap{k}"].delay == dt)
                assert types[f"s{l}.readout{k}"] == "Scale"
                assert np.array_equal(g.nodes[f"s{l}.readout{k}"].scale, p[f"{l}.V"][:, k])
    theta = p["0.theta"]
    assert types["s0.spike"] == "Threshold" and np.array_equal(g.nodes["s0.spike"].threshold, theta)
    assert np.array_equal(g.nodes["s0.amp"].scale, 2 * theta)
    np.testing.assert_allclose(1 - dt / g.nodes["s0.enc"].tau, alpha[1][0], atol=1e-12)
    np.testing.assert_allclose(g.nodes["s0.enc_pred"].scale, -alpha[1][0], atol=1e-15)
    assert np.all(g.nodes["s0.enc_delay"].delay == dt)
    want_edges = {("input", "input_gain"), ("input_gain", "s0.pool0"), ("s0.pool0", "s0.flatten1"),
                  ("s0.flatten1", "s0.syn"), ("s0.syn", "s0.bucket0"), ("s0.spike", "s0.amp"),
                  ("s0.amp", "s0.enc"), ("s0.enc", "s0.enc_delay"), ("s0.enc_delay", "s0.enc_pred"),
                  ("s0.enc_pred", "s0.spike"), ("s0.amp", "s1.syn"), ("s1.syn", "s1.bucket0")}
    for l, target in ((0, "s0.spike"), (1, "output")):
        for k in range(4):
            want_edges |= {(f"s{l}.bucket{k}", f"s{l}.readout{k}"), (f"s{l}.readout{k}", target)}
            if k:
                want_edges |= {(f"s{l}.bucket{k - 1}", f"s{l}.tap{k}"), (f"s{l}.tap{k}", f"s{l}.bucket{k}")}
    assert {tuple(e) for e in g.edges} == want_edges and len(g.edges) == len(want_edges)
    g.infer_types()  # nir's own shape inference and type check accept the graph
    assert g._check_types() and list(g.nodes["s0.pool0"].output_type["output"]) == [2, 16, 16]
    meta = g.metadata
    assert meta["pysg_format"] == "pysg-float-model" and int(meta["pysg_version"]) == 1
    assert json.loads(meta["pysg_config"])["tau_ms"] == cfg.tau_ms and float(meta["dt"]) == dt


def test_conv_and_delay_nodes_match_docs(tmp_path):
    net = _conv_net_with_delays()
    g = _write_read(net, tmp_path)
    p, dt = net.params, 0.005
    conv = g.nodes["s0.syn"]
    assert type(conv).__name__ == "Conv2d" and np.array_equal(conv.weight, p["0.W"])
    assert list(conv.stride) == [1, 1] and list(conv.padding) == [1, 1] and int(conv.groups) == 1
    assert np.all(conv.bias == 0)
    assert list(g.nodes["s1.syn"].stride) == [2, 2] and list(g.nodes["s1.syn"].padding) == [0, 0]
    for k in range(3):  # per-channel read-out: depthwise 1x1 convolution, bias on tap 0
        r = g.nodes[f"s1.readout{k}"]
        assert type(r).__name__ == "Conv2d" and int(r.groups) == 6 and r.weight.shape == (6, 1, 1, 1)
        assert np.array_equal(r.weight[:, 0, 0, 0], p["1.V"][:, k])
        assert np.array_equal(r.bias, p["1.b"] if k == 0 else np.zeros(6))
    th = g.nodes["s1.spike"].threshold
    assert th.shape == (6, 3, 3) and np.array_equal(th, np.broadcast_to(p["1.theta"][:, None, None], th.shape))
    d1 = g.nodes["s1.delay"].delay
    assert d1.shape == (4, 8, 8) and np.array_equal(np.rint(d1 / dt).reshape(-1), p["1.delays"])
    assert ("s1.delay", "s1.syn") in {tuple(e) for e in g.edges}
    assert ("s0.amp", "s1.pool0") in {tuple(e) for e in g.edges}
    assert g.nodes["s2.delay"].delay.shape == (54,) and type(g.nodes["s2.flatten0"]).__name__ == "Flatten"
    assert np.all(g.nodes["input_gain"].scale == 0.7)
    g.infer_types()
    assert g._check_types() and list(g.nodes["s1.readout0"].output_type["output"]) == [6, 3, 3]


# ---------------------------------------------------------------- round trip


@pytest.mark.parametrize("which", ["bundled", "conv"])
def test_round_trip_identical_logits_and_sgm_bytes(which, tmp_path):
    net = Network.load(BUNDLED) if which == "bundled" else _conv_net_with_delays()
    back = sg_from_nir(_write_read(net, tmp_path))
    assert back.config.to_dict() == net.config.to_dict()
    assert list(back.params) == list(net.params)
    for k, v in net.params.items():
        assert back.params[k].dtype == v.dtype and np.array_equal(back.params[k], v), k
    shape = net.config.input_shape
    frames = np.random.default_rng(1).poisson(0.4, (60, 2, *shape))
    for dtype in (np.float32, np.float64):
        a, b = net.run(frames, dtype=dtype), back.run(frames, dtype=dtype)
        assert np.array_equal(a.logits, b.logits)
        assert all(np.array_equal(x, y) for x, y in zip(a.spikes, b.spikes))
    assert export_network(back) == export_network(net)


def test_round_trip_through_the_cli_files(tmp_path):
    nir_path, sgm_path = tmp_path / "m.nir", tmp_path / "m.sgm"
    assert main(["export", str(BUNDLED), "--nir", str(nir_path), "-o", str(sgm_path)]) == 0
    back = sg_from_nir(nir.read(str(nir_path)))
    assert export_network(back) == sgm_path.read_bytes()


def test_not_a_pysg_graph_and_edited_graphs_refused(tmp_path):
    other = nir.NIRGraph.from_list(nir.Linear(weight=np.ones((2, 3))), nir.LI(tau=np.ones(2), r=np.ones(2),
                                                                               v_leak=np.zeros(2)))
    assert not is_sg_graph(other)
    with pytest.raises(SgGraphError, match="not a pysg NIR export"):
        sg_from_nir(other)
    path = tmp_path / "m.nir"
    nir.write(str(path), network_to_nir(Network.load(BUNDLED)))
    g = nir.read(str(path))
    assert is_sg_graph(g)
    g.nodes["s0.bucket2"].tau = g.nodes["s0.bucket2"].tau * 1.01
    with pytest.raises(SgGraphError, match=r"node 's0.bucket2' field 'tau'"):
        sg_from_nir(g)
    g = nir.read(str(path))
    g.edges = [e for e in g.edges if tuple(e) != ("s0.enc_pred", "s0.spike")]
    with pytest.raises(SgGraphError, match="edge s0.enc_pred -> s0.spike is missing"):
        sg_from_nir(g)
    g = nir.read(str(path))
    del g.nodes["s1.readout3"]
    with pytest.raises(SgGraphError, match="node 's1.readout3' is missing"):
        sg_from_nir(g)


def test_cli_export_needs_an_output(capsys):
    assert main(["export", str(BUNDLED)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--nir" in err[0] and "-o" in err[0]


# ---------------------------------------------------------------- simulated as a NIR graph


def _simulate(graph, dt: float, frames: np.ndarray, li: str = "euler"):
    sim = NirSim(graph, dt, batch=frames.shape[1], li=li)
    logits, spikes = [], []
    for f in frames:
        logits.append(sim.step(f)["output"])
        spikes.append([sim.values[n].sum(axis=tuple(range(1, sim.values[n].ndim)))
                       for n in sorted(sim.values) if n.endswith(".spike")])
    return np.stack(logits), np.asarray(spikes)


def _pysg_per_step(net: Network, frames: np.ndarray):
    state = net.init_state(frames.shape[1], dtype=np.float64)
    logits, spikes = [], []
    for f in frames:
        logits.append(net.step(state, f.reshape(f.shape[0], -1)))
        spikes.append([s.sum(axis=1) for s in state.s])
    return np.stack(logits), np.asarray(spikes)


def test_nir_simulation_agrees_on_a_real_recording(real_data, tmp_path):
    """float64 both sides: the same recursions, summed in another order and with the decays
    recovered as 1 - dt/tau (one rounding); decays < 1 keep those errors at ~1e-14 of the
    logits, so 1e-9 is a wide margin. Spike decisions are compared exactly, every step."""
    net = Network.load(BUNDLED)
    frames = _real_frames(real_data, net, 200)
    assert frames.sum() > 10_000
    logits, spikes = _simulate(_write_read(net, tmp_path), 0.01, frames)
    want_logits, want_spikes = _pysg_per_step(net, frames)
    assert want_spikes.sum() > 1000  # the hidden layer is active: the sigma-delta loop is exercised
    assert np.array_equal(spikes, want_spikes)
    scale = max(1.0, float(np.abs(want_logits).max()))
    assert np.abs(logits.reshape(want_logits.shape) - want_logits).max() <= 1e-9 * scale


def test_nir_simulation_agrees_conv_pool_delays(tmp_path):
    net = _conv_net_with_delays()
    frames = np.random.default_rng(3).poisson(0.3, (80, 2, *net.config.input_shape)).astype(np.float64)
    logits, spikes = _simulate(_write_read(net, tmp_path), 0.005, frames)
    want_logits, want_spikes = _pysg_per_step(net, frames)
    assert want_spikes[:, 0].sum() > 100 and want_spikes[:, 1].sum() > 10 and want_spikes[:, 2].sum() > 10
    assert np.array_equal(spikes, want_spikes)
    scale = max(1.0, float(np.abs(want_logits).max()))
    assert np.abs(logits - want_logits).max() <= 1e-9 * scale


def test_exponential_reading_is_not_what_the_graph_means(real_data, tmp_path):
    """docs/NIR.md: the LI time constants are Euler-equivalent (tau = dt/(1 - alpha)); read as a
    continuous-time ODE integrated exactly, each decay becomes exp(-(1 - alpha)) != alpha, and the
    logits move by far more than rounding."""
    net = Network.load(BUNDLED)
    frames = _real_frames(real_data, net, 100)
    g = _write_read(net, tmp_path)
    want, _ = _pysg_per_step(net, frames)
    exact, _ = _simulate(g, 0.01, frames, li="exponential")
    assert np.abs(exact.reshape(want.shape) - want).max() > 1e-3 * max(1.0, float(np.abs(want).max()))


def test_cli_export_nir_json_matches_the_cli_doc(tmp_path, capsys):
    from tests.test_cli_vocabulary import TABLES, _check

    out = tmp_path / "m.nir"
    assert main(["export", str(BUNDLED), "--nir", str(out), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert not _check(row, TABLES["export-nir"])
    g = nir.read(str(out))
    assert row["nodes"] == len(g.nodes) and row["edges"] == len(g.edges) and row["output"] == str(out)
    assert (row["stages"], row["n_buckets"], row["dt_us"]) == (2, 4, 10000)


def test_without_nir_export_is_one_line_naming_the_extra(tmp_path):
    import subprocess
    import sys

    code = (f"import sys; sys.modules['nir'] = None\nfrom pysg.cli import main\n"
            f"sys.exit(main(['export', {str(BUNDLED)!r}, '--nir', {str(tmp_path / 'm.nir')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and 'pip install "pysg[nir]"' in r.stderr
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_a_decay_no_li_can_hold_is_refused():
    net = Network.load(BUNDLED)
    net.config.tau_ms[1][2] = 1e300  # alpha rounds to 1.0: no finite LI time constant
    with pytest.raises(ValueError, match=r"stage 1: bucket decays .* must lie in \(0, 1\)"):
        network_to_nir(net)
