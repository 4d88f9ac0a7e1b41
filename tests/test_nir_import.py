# SPDX-License-Identifier: MIT
"""`pysg convert MODEL.nir`: NIR graphs built by hand with the nir package (every node
type pysg runs), checked against closed-form results, the time conventions of
docs/NIR.md, and refusals that name the node and its type (exit 2, one line)."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from pysg import sgm  # noqa: E402
from pysg.cli import main  # noqa: E402
from pysg.converters.nir_import import NirImportError, detect_convention, nir_to_sgm  # noqa: E402
from pysg.engines.snn import SnnRef  # noqa: E402
from pysg.sgm.snn import DECAY_ONE, RESET_SUBTRACT, RESET_SUBTRACT_NEXT  # noqa: E402


def _graph(nodes: dict, shape=(1, 1, 1)) -> "nir.NIRGraph":
    """Input -> nodes (in order) -> Output."""
    names = list(nodes)
    all_nodes = {"input": nir.Input(input_type=np.array(shape)), **nodes,
                 "output": nir.Output(output_type=np.array([1]))}
    chain = ["input", *names, "output"]
    return nir.NIRGraph(nodes=all_nodes, edges=list(zip(chain[:-1], chain[1:])))


def _a(*v) -> np.ndarray:
    return np.array(v, np.float64)


def _run(imp, inputs) -> np.ndarray:
    ref = SnnRef(imp.model)
    return np.array([ref.step(np.atleast_1d(np.asarray(x, np.int64)))[0] for x in inputs])


def _float(imp, inputs) -> np.ndarray:
    imp.float_net.reset()
    return np.array([imp.float_net.step(np.atleast_1d(np.asarray(x, np.float64))) for x in inputs])


# ------------------------------------------------------------------ closed forms


def test_affine_if_counts_by_hand():
    # v += 1.27 x + 0.23 per step (dt 1, r 1; int8-exact: weight 127 x 0.01, bias 23 x 0.01), threshold 3,
    # subtract: x = 1 every step -> v 1.5, 3 (3 > 3 is false), 4.5 (spike, 1.5), 3, 4.5 (spike) ...
    g = _graph({"fc": nir.Affine(weight=np.array([[1.27]]), bias=_a(0.23)),
                "if": nir.IF(r=_a(1.0), v_threshold=_a(3.0))})
    imp = nir_to_sgm(g, convention="nir")
    want = [0, 0, 1, 0, 1, 0, 1]
    assert _float(imp, [1] * 7)[:, 0].tolist() == want
    assert _run(imp, [1] * 7)[:, 0].tolist() == want
    assert imp.model.layers[0].reset == RESET_SUBTRACT and not imp.model.layers[0].fire_ge
    ge = nir_to_sgm(g, convention="sinabs")    # sinabs fires at v >= threshold
    assert _run(ge, [1] * 7)[:, 0].tolist() == [0, 1, 0, 1, 0, 1, 0]


def test_time_conventions_write_the_decay_each_framework_steps_with():
    lif = {"fc": nir.Linear(weight=np.array([[1.0]])),
           "lif": nir.LIF(tau=_a(2.0), r=_a(1.0), v_leak=_a(0.0), v_threshold=_a(1.0))}
    exact = nir_to_sgm(_graph(lif), convention="nir").model.layers[0]
    assert exact.neuron[0, 0] == round(np.exp(-0.5) * DECAY_ONE)        # exp(-dt / tau), dt 1
    euler = nir_to_sgm(_graph(lif), convention="nir", nir_dt=0.5).model.layers[0]
    assert euler.neuron[0, 0] == round(np.exp(-0.25) * DECAY_ONE)
    snt = nir_to_sgm(_graph(lif), convention="snntorch", nir_dt=1.0).model.layers[0]
    assert snt.neuron[0, 0] == DECAY_ONE // 2 and snt.reset == RESET_SUBTRACT_NEXT   # 1 - dt / tau
    # snnTorch's export: tau = dt / (1 - beta), r = tau / dt with dt = 1e-4
    tau = 1e-4 / (1 - 0.9)
    g = _graph({"fc": nir.Linear(weight=np.array([[1.0]])),
                "lif": nir.LIF(tau=_a(tau), r=_a(tau / 1e-4), v_leak=_a(0.0), v_threshold=_a(1.0))})
    assert detect_convention(g).name == "snntorch"
    layer = nir_to_sgm(g).model.layers[0]
    assert abs(layer.neuron[0, 0] / DECAY_ONE - 0.9) < 1e-9 and layer.reset == RESET_SUBTRACT_NEXT
    assert detect_convention(_graph(lif)).name == "sinabs"      # r = 1, v_leak = 0: tau in steps
    lif["lif"] = nir.LIF(tau=_a(2.0), r=_a(3.0), v_leak=_a(0.0), v_threshold=_a(1.0))
    assert detect_convention(_graph(lif)).name == "nir"


def test_snntorch_convention_steps_like_snntorch_by_hand():
    # beta 0.5, threshold 1, input current 0.6 per step: v = 0.5 v + 0.6 - s_prev
    tau = 1e-4 / 0.5
    g = _graph({"fc": nir.Linear(weight=np.array([[0.6]])),
                "lif": nir.LIF(tau=_a(tau), r=_a(tau / 1e-4), v_leak=_a(0.0), v_threshold=_a(1.0))})
    imp = nir_to_sgm(g, logits="membrane")
    v, s, want = 0.0, 0.0, []
    for _ in range(8):
        v = 0.5 * v + 0.6 - s
        s = float(v > 1.0)
        want.append(v)
    got = _run(imp, [1] * 8)[:, 0] * (1.0 / 2 ** 16)   # threshold 1.0 is 2^16 state LSBs
    assert np.allclose(got, want, atol=1e-4)
    assert np.allclose(_float(imp, [1] * 8)[:, 0], want)


def test_delay_node_shifts_the_input_by_whole_steps():
    g = _graph({"d": nir.Delay(delay=_a(3.0)), "w": nir.Linear(weight=np.array([[4.0]])),
                "i": nir.I(r=_a(1.0))})
    imp = nir_to_sgm(g, convention="nir")
    ly = imp.model.layers[0]
    assert ly.max_delay == 3 and ly.delays.tolist() == [3]
    out = _run(imp, [1, 0, 2, 0, 0, 0])[:, 0]
    scale = out[3] / 4
    assert (out / scale).tolist() == [0, 0, 0, 4, 4, 12]


def test_avgpool_scale_and_flatten_fold_into_the_weights():
    g = _graph({"pool": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
                "flat": nir.Flatten(input_type=None, start_dim=0),
                "s": nir.Scale(scale=_a(3.0)),
                "fc": nir.Affine(weight=np.ones((2, 4)), bias=np.zeros(2)),
                "s2": nir.Scale(scale=_a(1.0, -2.0)),
                "li": nir.LI(tau=_a(1.0, 1.0), r=_a(1.0, 1.0), v_leak=_a(0.0, 0.0))}, shape=(1, 4, 4))
    imp = nir_to_sgm(g, convention="nir")
    pool, fc = imp.entries
    assert pool.kind == sgm.snn.SKIND_SUMPOOL and pool.neuron == sgm.snn.NEURON_NONE
    assert np.allclose(fc.weights, np.array([[0.75] * 4, [-1.5] * 4]))    # 1/4 x 3, then x (1, -2)
    x = np.zeros(16)
    x[[0, 1, 4, 5]] = 2     # the top-left window sums to 8
    li_gain = 1 - np.exp(-1.0)
    assert np.allclose(_float(imp, [x])[0], np.array([6.0, -12.0]) * li_gain)


def test_every_node_type_through_one_graph():
    rng = np.random.default_rng(0)
    g = _graph({
        "delay": nir.Delay(delay=np.ones(2 * 6 * 6)),
        "conv": nir.Conv2d(input_shape=(6, 6), weight=rng.normal(0, 1, (4, 1, 3, 3)), stride=1, padding=1,
                           dilation=1, groups=2, bias=np.zeros(4)),
        "lif": nir.LIF(tau=np.full((4, 6, 6), 4.0), r=np.ones((4, 6, 6)), v_leak=np.zeros((4, 6, 6)),
                       v_threshold=np.full((4, 6, 6), 0.3)),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "conv2": nir.Conv2d(input_shape=(3, 3), weight=rng.normal(0, 1, (3, 4, 2, 2)), stride=1, padding=0,
                            dilation=1, groups=1, bias=np.zeros(3)),
        "cuba": nir.CubaLIF(tau_syn=np.full((3, 2, 2), 2.0), tau_mem=np.full((3, 2, 2), 4.0),
                            r=np.ones((3, 2, 2)), v_leak=np.zeros((3, 2, 2)), v_threshold=np.full((3, 2, 2), 0.2)),
        "flat": nir.Flatten(input_type=None, start_dim=0),
        "fc": nir.Affine(weight=rng.normal(0, 1, (8, 12)), bias=np.zeros(8)),
        "thr": nir.Threshold(threshold=np.full(8, 0.1)),
        "fc2": nir.Linear(weight=rng.normal(0, 1, (5, 8))),
        "lif2": nir.LIF(tau=np.full(5, 3.0), r=np.ones(5), v_leak=np.zeros(5), v_threshold=np.full(5, 0.2)),
    }, shape=(2, 6, 6))
    imp = nir_to_sgm(g, convention="nir")
    kinds = [(ly.kind_name, ly.neuron_name) for ly in imp.model.layers]
    assert kinds == [("conv2d", "lif"), ("sumpool2d", "none"), ("conv2d", "cubalif"), ("dense", "threshold"),
                     ("dense", "lif")]
    assert imp.model.layers[0].max_delay == 1 and imp.model.layers[0].groups == 2
    frames = rng.poisson(1.0, (40, 72))
    q, f = _run(imp, frames), _float(imp, frames)
    assert q.sum() > 10 and (q == f).mean() > 0.9      # int8 tracks the float oracle
    data = sgm.encode_snn(imp.model)
    assert sgm.load_sgm(data).layers[2].neuron_kind == sgm.snn.NEURON_CUBALIF


def _rleaky_graph(w_rec: np.ndarray) -> "nir.NIRGraph":
    """snnTorch's RLeaky layout: a nested graph input -> lif -> w_rec -> lif -> output."""
    n = w_rec.shape[0]
    lif = nir.LIF(tau=np.full(n, 2.0), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n))
    sub = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([n])), "lif": lif,
                              "w_rec": nir.Linear(weight=w_rec), "output": nir.Output(output_type=np.array([n]))},
                       edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    return _graph({"fc": nir.Linear(weight=np.eye(n, 2)), "rleaky": sub}, shape=(2,))


def test_nested_recurrent_graph_becomes_a_recurrent_entry():
    w_rec = np.array([[0.0, 2.0], [0.0, 0.0]])      # neuron 1's spike drives neuron 0 a step later
    imp = nir_to_sgm(_rleaky_graph(w_rec), convention="nir", nir_dt=100.0)  # dt >> tau: beta ~ 0, gain 1
    ly = imp.model.layers[0]
    assert ly.rec_weights is not None and ly.rec_weights[0, 1] == 127 and ly.rec_weights[1, 0] == 0
    out = _run(imp, [[0, 2], [0, 0], [0, 0]])
    assert out.tolist() == [[0, 1], [1, 0], [0, 0]]


# ------------------------------------------------------------------ refusals


def test_unsupported_node_is_refused_by_name_and_type(tmp_path, capsys):
    g = _graph({"conv1d": nir.Conv1d(input_shape=4, weight=np.ones((1, 1, 2)), stride=1, padding=0, dilation=1,
                                     groups=1, bias=np.zeros(1))}, shape=(1, 4))
    with pytest.raises(NirImportError, match=r"'conv1d' has type Conv1d, which pysg does not run"):
        nir_to_sgm(g)
    nir.write(str(tmp_path / "bad.nir"), g)
    assert main(["convert", str(tmp_path / "bad.nir"), "-o", str(tmp_path / "bad.sgm")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "conv1d" in err[0] and "Conv1d" in err[0]
    assert not (tmp_path / "bad.sgm").exists()


@pytest.mark.parametrize("nodes,shape,match", [
    ({"fc": nir.Linear(weight=np.ones((2, 1))), "d": nir.Delay(delay=_a(1.0, 1.0)),
      "if": nir.IF(r=np.ones(2), v_threshold=np.ones(2))}, (1, 1, 1), r"'d' \(Delay\) between 'fc' and its neuron"),
    ({"c": nir.Conv2d(input_shape=(4, 4), weight=np.ones((1, 1, 3, 3)), stride=1, padding=0, dilation=2, groups=1,
                      bias=np.zeros(1))}, (1, 4, 4), r"'c' \(Conv2d\): dilation"),
    ({"fc": nir.Linear(weight=np.ones((1, 3)))}, (3, 1, 1), r"'input' \(Input\): 3 channels"),
    ({"fc": nir.Linear(weight=np.ones((2, 5)))}, (1, 1, 4), r"'fc' \(Linear\): weight \(2, 5\) does not take"),
    ({"d": nir.Delay(delay=_a(0.5)), "i": nir.IF(r=_a(1.0), v_threshold=_a(1.0))}, (1, 1, 1), "whole steps"),
])
def test_graphs_pysg_cannot_run_are_refused_with_the_node(nodes, shape, match):
    with pytest.raises(NirImportError, match=match):
        nir_to_sgm(_graph(nodes, shape=shape), convention="nir")


def test_a_branching_graph_is_refused():
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([1])), "a": nir.Linear(weight=np.ones((1, 1))),
                            "b": nir.Linear(weight=np.ones((1, 1))), "output": nir.Output(output_type=np.array([1]))},
                     edges=[("input", "a"), ("input", "b"), ("a", "output"), ("b", "output")])
    with pytest.raises(NirImportError, match=r"'input' \(Input\): the graph branches into a, b"):
        nir_to_sgm(g)


# ------------------------------------------------------------------ CLI and calibration


def test_cli_convert_writes_a_model_inspect_reads(tmp_path, capsys):
    g = _graph({"fc": nir.Affine(weight=np.array([[2.0], [1.0]]), bias=_a(0.5, 0.0)),
                "if": nir.IF(r=np.ones(2), v_threshold=np.full(2, 3.0))})
    nir.write(str(tmp_path / "m.nir"), g)
    assert main(["convert", str(tmp_path / "m.nir"), "-o", str(tmp_path / "m.sgm"), "--labels", "a,b",
                 "--sensor", "4x4", "--dt-ms", "5"]) == 0
    out = capsys.readouterr().out
    assert "spiking network" in out and "sinabs convention" in out
    m = sgm.read_sgm(tmp_path / "m.sgm")
    assert m.labels == ["a", "b"] and m.dt_us == 5000 and m.downsample == 4 and m.layers[0].fire_ge
    assert main(["inspect", str(tmp_path / "m.sgm")]) == 0


def test_calibration_widens_the_state_unit_to_the_observed_peak():
    g = _graph({"fc": nir.Linear(weight=np.array([[1.0]])), "i": nir.I(r=_a(1.0))})
    plain = nir_to_sgm(g, convention="nir")
    frames = np.full((1, 400, 1), 255)        # the integrator reaches 102000
    calib = nir_to_sgm(g, convention="nir", calibrate=frames)
    out_plain, out_cal = _run(plain, frames[0])[:, 0], _run(calib, frames[0])[:, 0]
    assert out_plain.max() == 2 ** 31 - 1                  # saturated without calibration
    assert out_cal.max() < 2 ** 31 - 1 and np.all(np.diff(out_cal) > 0)


def test_spikinggamma_graphs_go_to_nir_sg(monkeypatch, tmp_path):
    from pysg.converters import nir_import

    class Handled(Exception):
        pass

    def sg_from_nir(graph):
        raise Handled(graph)

    fake = types.ModuleType("pysg.converters.nir_sg")
    fake.is_sg_graph = lambda graph: True
    fake.sg_from_nir = sg_from_nir
    monkeypatch.setitem(sys.modules, "pysg.converters.nir_sg", fake)
    import pysg.converters as pc
    monkeypatch.setattr(pc, "nir_sg", fake, raising=False)
    g = _graph({"fc": nir.Linear(weight=np.ones((1, 1)))})
    with pytest.raises(Handled):
        nir_import.convert_file(g, tmp_path / "x.sgm")
    fake.is_sg_graph = lambda graph: False
    assert nir_import.convert_file(g, tmp_path / "x.sgm")["format_version"] == 3


def test_cli_convert_json_is_documented(tmp_path, capsys):
    from tests.test_cli_vocabulary import _run as run_json
    from tests.test_cli_vocabulary import _validate

    g = _graph({"fc": nir.Affine(weight=np.array([[2.0], [1.0]]), bias=_a(0.5, 0.0)),
                "lif": nir.LIF(tau=np.full(2, 4.0), r=np.full(2, 2.0), v_leak=np.zeros(2),
                               v_threshold=np.full(2, 3.0))})
    nir.write(str(tmp_path / "m.nir"), g)
    rows = run_json(capsys, "convert", tmp_path / "m.nir", "-o", tmp_path / "m.sgm", "--nir-dt", "0.5")
    _validate("convert", rows)
    assert rows[0]["nir"] == {"convention": "nir", "dt": 0.5, "integration": "exp"}
    _validate("inspect", run_json(capsys, "inspect", tmp_path / "m.sgm"))


def test_pysg_eval_runs_an_imported_model_on_a_gesture_folder(tmp_path):
    """The shared jobs (`pysg eval --engine ref`) run a version 3 model: the same counts as
    stepping SnnRef over the binned gestures."""
    from pysg.engines import create_engine
    from pysg.jobs import evaluate, load_model
    from pysg.recipes import BUNDLED_SAMPLES
    from tests.support.bundled import gesture_frames

    rng = np.random.default_rng(5)
    g = _graph({"fc": nir.Affine(weight=rng.normal(0, 0.05, (11, 2 * 16 * 16)), bias=np.zeros(11)),
                "lif": nir.LIF(tau=np.full(11, 5.0), r=np.ones(11), v_leak=np.zeros(11),
                               v_threshold=np.full(11, 0.5))}, shape=(2, 16, 16))
    imp = nir_to_sgm(g, sensor=(128, 128), dt_ms=10.0)
    model = load_model(imp.data, engine="ref")
    ev = evaluate(model, BUNDLED_SAMPLES, engine="ref", split="train")
    eng = create_engine("ref", model)
    want = []
    for frames, _, _ in gesture_frames(imp.model, len(ev.samples)):
        want.append(eng.run_frames(frames.reshape(len(frames), -1)).sum(axis=0))
    assert [list(s.scores) for s in ev.samples] == [list(w) for w in want]
