# SPDX-License-Identifier: MIT
"""`pysg convert`: int8 TFLite networks -> version 2 .sgm files, their loader and the
Python reference that runs them (pysg.qnet.QnetRef), against independent truth:
TFLite Micro's output for the same input frames, the baseline's own event framing
(tests/support/cnn_baseline/frames.py), and the .tflite's own parameters."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

pytest.importorskip("tflite", reason="the tflite package reads and writes the models")
tflm = pytest.importorskip("tflite_micro.python.tflite_micro.runtime",
                           reason="tflite-micro is the bit-exact reference (pinned in requirements-ci.txt)")

from pysg.converters.tflite_graph import Conv2D, FullyConnected, UnsupportedOpError, read_tflite  # noqa: E402
from pysg.converters.tflite_sgm import count_lut, graph_to_qmodel, tflite_to_sgm  # noqa: E402
from pysg.converters.tflite_writer import OpSpec, TensorSpec, write_tflite  # noqa: E402
from pysg.cli import main  # noqa: E402
from pysg.qnet import QnetRef  # noqa: E402
from pysg.runtime import Runtime  # noqa: E402
from pysg.sgm import (QBLOBS, QLAYER_FIELDS, SgmFormatError, SgmQModel, encode_qmodel, encode_sgm,  # noqa: E402
                      load_sgm, pack_sgm, qarena_bytes_for, resign)
from tests.support.cnn_baseline.frames import count_lut as frames_lut  # noqa: E402
from tests.support.cnn_baseline.frames import event_frames  # noqa: E402
from tests.support.qnet_models import Tflm, built_cnn, int8_act, random_network, sparse_sequence  # noqa: E402

WINDOW, SLICES, DT_US = 20, 2, 10_000


def _entry_base(data: bytes, entry: int) -> int:
    return struct.unpack_from("<I", data, 52)[0] + 96 * entry


def _field(name: str) -> tuple[int, str]:
    return next((off, code) for n, off, code in QLAYER_FIELDS if n == name)


def _patch(data: bytes, entry: int, name: str, value: int) -> bytes:
    off, code = _field(name)
    b = bytearray(data)
    struct.pack_into("<" + code, b, _entry_base(data, entry) + off, value)
    return resign(b)


# ---------------------------------------------------------------- the file keeps TFLite's parameters

@pytest.mark.parametrize("seed", range(6))
def test_parameters_stored_unchanged(seed):
    """Weights (in scatter order), biases, zero points, multipliers and shifts read back
    from the file equal the .tflite's (read by pysg.converters.tflite_graph)."""
    model = random_network(np.random.default_rng([seed, 7]))
    graph = read_tflite(model)
    q = load_sgm(tflite_to_sgm(model, input="tensor"))
    assert isinstance(q, SgmQModel) and q.slices == 0
    ops = [op for op in graph.ops if hasattr(op, "params") and op.params is not None]
    assert len(ops) == len(q.layers)
    for op, ly in zip(ops, q.layers):
        p = op.params
        if isinstance(op, FullyConnected):
            np.testing.assert_array_equal(ly.weights, graph.tensors[op.inputs[1]].data.T)
        elif isinstance(op, Conv2D):
            np.testing.assert_array_equal(ly.weights, graph.tensors[op.inputs[1]].data.transpose(1, 2, 3, 0))
        elif ly.weights is not None:  # depthwise: TFLite's own layout
            np.testing.assert_array_equal(ly.weights.reshape(-1), graph.tensors[op.inputs[1]].data.reshape(-1))
        if ly.weights is None:  # average pool
            assert (ly.kernel, ly.stride, ly.padding) == (p.filter_hw, p.stride, p.padding)
            continue
        rq = p.requant
        np.testing.assert_array_equal(ly.multiplier, rq.multiplier)
        np.testing.assert_array_equal(ly.shift, rq.shift)
        assert (ly.input_offset, ly.output_offset, ly.act_min, ly.act_max) == \
            (p.input_offset, rq.output_offset, rq.act_min, rq.act_max)
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            np.testing.assert_array_equal(ly.bias, graph.tensors[op.inputs[2]].data)


@pytest.mark.parametrize("seed", range(10))
def test_converted_file_steps_equal_tflite_micro(seed):
    """The loaded file, run by the reference, gives TFLite Micro's output every step."""
    rng = np.random.default_rng([seed, 8])
    model = random_network(rng)
    data = tflite_to_sgm(model, input="tensor")
    ref, micro = QnetRef(data), Tflm(model)
    x_shape = (1,) + ref.model.input_shape
    zp = ref.model.input.output_offset
    for k, f in enumerate(sparse_sequence(rng, x_shape, zp, 10)):
        got = ref.step_tensor(f)
        np.testing.assert_array_equal(got, micro(f).reshape(-1), err_msg=f"seed {seed} step {k}")
    assert ref.step_index == 10


def test_round_trip_bytes_and_arena_formula():
    model = random_network(np.random.default_rng(11))
    data = tflite_to_sgm(model, dt_ms=5, input="tensor")
    q = load_sgm(data)
    assert q.dt_us == 5000 and q.arena_bytes == qarena_bytes_for(q.input, q.layers)
    # the formula by hand for this file (FORMAT.md 9): input tensor; per layer acc, q, touched
    # flags, touched runs (a run: the output channels one input channel reaches at a position)
    n = [ly.n_out for ly in q.layers]
    n_in = int(np.prod(q.input_shape))
    c4 = lambda v: -(-v // 4) * 4  # noqa: E731
    run = {"conv": lambda ly: ly.out_shape[2] // (ly.in_shape[2] // ly.filter_c), "average_pool": lambda ly: 1,
           "depthwise": lambda ly: ly.depth_multiplier, "fully_connected": lambda ly: ly.out_shape[2]}
    runs = [ly.n_out // run[ly.kind_name](ly) for ly in q.layers]
    assert q.arena_bytes == c4(n_in) + sum(4 * v + 2 * c4(v) + 4 * r for v, r in zip(n, runs))
    assert encode_qmodel(q) == encode_sgm(q) == data


# ---------------------------------------------------------------- event input = the baseline's frames

def _bundled(gestures: int):
    from pysg.datasets.gesture import GestureDataset
    from pysg.recipes import BUNDLED_SAMPLES

    ds = GestureDataset(BUNDLED_SAMPLES, "test")
    return [ds[i] for i in range(min(gestures, len(ds)))]


def _step_counts(events: np.ndarray, duration_us: int) -> np.ndarray:
    """(steps, 2, 32, 32) event counts per 10 ms step of a 128 x 128 recording."""
    n = -(-int(duration_us) // DT_US)
    flat = (events["t"] // DT_US) * 2048 + (events["p"].astype(np.int64) << 10) \
        + ((events["y"] >> 2).astype(np.int64) << 5) + (events["x"] >> 2)
    return np.bincount(flat, minlength=n * 2048).reshape(n, 2, 32, 32)


def test_event_input_equals_the_baseline_frames_through_tflite_micro():
    """An event-count model: after step W - 1 + k the reference's logits are TFLite
    Micro's on frame k of tests/support/cnn_baseline/frames.py (the baseline's own framing of the
    same events: 200 ms window, 2 slices, log2 counts)."""

    model = built_cnn()
    data = tflite_to_sgm(model, dt_ms=10, window_steps=WINDOW, sensor=(128, 128))
    q = load_sgm(data)
    assert (q.slices, q.window, q.polarities, q.downsample) == (SLICES, WINDOW, 2, 4)
    lut = q.input.weights
    np.testing.assert_array_equal(lut, frames_lut()[:lut.size])  # the same codes, to saturation
    assert lut[-1] == 127 and np.all(frames_lut()[lut.size:] == 127)
    micro = Tflm(model)
    ref = QnetRef(q)
    compared = 0
    for s in _bundled(3):
        frames = event_frames(s.events, s.duration_us, window_ms=WINDOW * 10, hop_ms=10, slices=SLICES)
        counts = _step_counts(s.events, s.duration_us)
        ref.reset()
        for step, c in enumerate(counts):
            got = ref.step_counts(c)
            k = step - (WINDOW - 1)
            if k >= 0:
                np.testing.assert_array_equal(got, micro(frames[k][None]).reshape(-1), err_msg=f"step {step}")
                compared += 1
        assert ref.step_index == len(counts) and len(frames) == len(counts) - WINDOW + 1
        # scores: the sum of the logits of every whole window
        want = sum(micro(f[None]).reshape(-1).astype(np.int64) for f in frames)
        np.testing.assert_array_equal(ref.scores, want)
    assert compared > 300


def test_count_lut_maps():
    lut = count_lut(1 / 32, -128, "log2")
    assert lut[0] == -128 and lut[1] == -96 and lut[-1] == 127 and lut[-2] < 127
    raw = count_lut(0.5, -10, "count")  # real = n: code = -10 + 2 n until 127
    np.testing.assert_array_equal(raw, np.minimum(127, -10 + 2 * np.arange(raw.size)))
    assert raw.size == 70
    with pytest.raises(ValueError, match="count_map"):
        count_lut(0.1, 0, "sqrt")


# ---------------------------------------------------------------- refused input, with the place

def _quantize_mid_model() -> bytes:
    """conv -> int8 QUANTIZE (a requantisation: no event form here) -> fully connected."""
    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, (4, 3, 3, 2), dtype=np.int8)
    wf = rng.integers(-127, 128, (5, 64), dtype=np.int8)
    t = [int8_act("x", (1, 4, 4, 2), 0.05, 0), TensorSpec("w", w.shape, "int8", [np.float32(0.01)], [0], 0, w),
         int8_act("h", (1, 4, 4, 4), 0.2, -5), int8_act("h2", (1, 4, 4, 4), 0.3, 2),
         TensorSpec("wf", wf.shape, "int8", [np.float32(0.01)], [0], 0, wf), int8_act("y", (1, 5), 0.5, 0)]
    ops = [OpSpec("CONV_2D", [0, 1, -1], [2], {"padding": "SAME"}), OpSpec("QUANTIZE", [2], [3], {}),
           OpSpec("FULLY_CONNECTED", [3, 4, -1], [5], {})]
    return write_tflite(t, ops, [0], [5])


def test_unsupported_op_named_with_its_index(tmp_path, capsys):
    with pytest.raises(UnsupportedOpError) as e:
        tflite_to_sgm(_quantize_mid_model())
    assert (e.value.op_name, e.value.op_index) == ("QUANTIZE", 1)
    src = tmp_path / "m.tflite"
    src.write_bytes(_quantize_mid_model())
    assert main(["convert", str(src), "-o", str(tmp_path / "m.sgm")]) == 2
    err = capsys.readouterr().err
    assert "QUANTIZE" in err and "1" in err
    assert not (tmp_path / "m.sgm").exists()


def test_bad_options_refused():
    model = built_cnn()
    graph = read_tflite(model)
    with pytest.raises(ValueError, match="multiple of the 2 slices"):
        graph_to_qmodel(graph, window_steps=21)
    with pytest.raises(ValueError, match="sensor"):
        graph_to_qmodel(graph, sensor=(100, 128))
    with pytest.raises(ValueError, match="slices"):
        graph_to_qmodel(graph, slices=3)
    with pytest.raises(ValueError, match="labels"):
        graph_to_qmodel(graph, labels=["a", "b"])


@pytest.mark.parametrize("name,value,field", [
    ("kind", 7, "layers[1].kind"),
    ("flags", 1, "layers[2].flags"),
    ("in_c", 3, "layers[1].in_c"),
    ("stride_h", 0, "layers[1].stride_h"),
    ("pad_top", 9, "layers[1].pad_top"),
    ("filter_c", 3, "layers[1].filter_c"),
    ("input_offset", 200, "layers[1].input_offset"),
    ("act_min", -129, "layers[1].act_min"),
    ("reserved", 1, "layers[1].reserved"),
    ("multiplier_size", 8, "layers[1].multiplier_size"),
])
def test_loader_names_the_bad_field(name, value, field):
    data = tflite_to_sgm(built_cnn(), window_steps=WINDOW)
    entry = int(field.split("[")[1].split("]")[0])
    with pytest.raises(SgmFormatError) as e:
        load_sgm(_patch(data, entry, name, value))
    assert e.value.field == field, str(e.value)
    assert e.value.offset == _entry_base(data, entry) + _field(name)[0]


def test_loader_checks_contents_and_input_entry():
    data = tflite_to_sgm(built_cnn(), window_steps=WINDOW)
    q = load_sgm(data)
    with pytest.raises(SgmFormatError, match="multiple of the 2 slices"):
        load_sgm(_patch(data, 0, "kernel_w", 21))
    with pytest.raises(SgmFormatError, match="lut"):
        load_sgm(_patch(data, 0, "output_offset", 5))
    # a shift outside [-31, 30], at its byte
    off, _ = _field("shift_offset")
    shift_at = struct.unpack_from("<I", data, _entry_base(data, 1) + off)[0]
    b = bytearray(data)
    b[shift_at + 1] = 40
    with pytest.raises(SgmFormatError) as e:
        load_sgm(resign(b))
    assert (e.value.field, e.value.offset) == ("layers[1].shift[1]", shift_at + 1)
    # weights that could overflow the int32 accumulator (bias near 2^31)
    bias_at = struct.unpack_from("<I", data, _entry_base(data, 1) + _field("bias_offset")[0])[0]
    b = bytearray(data)
    struct.pack_into("<i", b, bias_at, 2**31 - 10)
    with pytest.raises(SgmFormatError, match="overflow"):
        load_sgm(resign(b))
    assert q.layers[0].bias is not None


def test_every_truncation_and_byte_flip_is_an_error():
    """Any truncation is refused at file_size or the header (the C loader alike), and any
    single byte changed inside the header or the layer table gets the same verdict, field
    and offset from the Python loader and the C loader (re-signed so the change reaches
    the field checks; the CRC fields themselves left as changed)."""
    from tests.support.loader_verdicts import verdicts

    data = tflite_to_sgm(random_network(np.random.default_rng(5)), input="tensor")
    for n in range(0, len(data), 7):
        py, c = verdicts(data[:n])
        assert py == c and py is not None and py[1] in ("header", "file_size"), (n, py, c)
    table_end = _entry_base(data, len(load_sgm(data).layers) + 1)
    rng = np.random.default_rng(0)
    refused = 0
    for pos in range(table_end):
        b = bytearray(data)
        b[pos] ^= int(rng.integers(1, 256))
        py, c = verdicts(resign(b) if pos not in range(16, 20) and pos not in range(60, 64) else bytes(b))
        assert py == c, f"byte {pos}: python {py}, C {c}"
        refused += py is not None
    assert refused > table_end // 2  # most of the header and table is checked


def test_version_2_needs_its_own_layout():
    """A version 2 header over a version 1 table (and the reverse) is refused."""
    q = load_sgm(tflite_to_sgm(built_cnn(), window_steps=WINDOW))
    b = bytearray(tflite_to_sgm(built_cnn(), window_steps=WINDOW))
    struct.pack_into("<H", b, 30, 3)  # n_buckets: version 2 has none
    with pytest.raises(SgmFormatError) as e:
        load_sgm(resign(b))
    assert e.value.field == "n_buckets"
    assert q.n_classes == 11
    with pytest.raises(SgmFormatError, match="entry 0 must be the input"):
        load_sgm(pack_sgm({"format_version": 2, "arena_bytes": 0, "dt_us": 1, "n_buckets": 0, "in_c": 1,
                           "in_h": 1, "in_w": 1, "sensor_w": 1, "sensor_h": 1, "downsample": 1}, ["a"],
                          [({**{n: 0 for n, _, _ in QLAYER_FIELDS}, "kind": 3}, {}),
                           ({**{n: 0 for n, _, _ in QLAYER_FIELDS}, "kind": 5, "flags": 1}, {})],
                          QLAYER_FIELDS, QBLOBS))


# ---------------------------------------------------------------- the command

def test_convert_and_inspect_commands(tmp_path, capsys):
    src = tmp_path / "cnn.tflite"
    src.write_bytes(built_cnn())
    out = tmp_path / "cnn.sgm"
    labels = ",".join(f"g{i}" for i in range(11))
    assert main(["convert", str(src), "-o", str(out), "--dt-ms", "10", "--steps", "20", "--sensor", "128x128",
                 "--labels", labels, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format_version"] == 2 and info["dt_us"] == 10_000 and info["labels"][3] == "g3"
    assert info["input"] == {"kind": "event_counts", "slices": 2, "window_steps": 20, "polarity_channels": 2,
                             "lut_entries": load_sgm(out.read_bytes()).input.weights.size}
    assert [ly["kind"] for ly in info["layers"]] == ["conv", "conv", "conv", "fully_connected"]
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "imported int8 network" in text and "fully_connected" in text
    assert main(["convert", str(src), "-o", str(out), "--sensor", "12x"]) == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err


def test_eval_command_runs_a_converted_network(tmp_path, capsys):
    """`pysg eval CNN.sgm DATA` (the C runtime, raw events): per-gesture predictions equal
    the reference's argmax of the scores summed over every step with a whole window."""
    from pysg.recipes import BUNDLED_SAMPLES

    out = tmp_path / "cnn.sgm"
    out.write_bytes(tflite_to_sgm(built_cnn(), dt_ms=10, window_steps=WINDOW, sensor=(128, 128)))
    assert main(["eval", str(out), str(BUNDLED_SAMPLES), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["engine"] == "c"
    ref = QnetRef(out.read_bytes())
    want = []
    for s in _bundled(99):
        ref.reset()
        for c in _step_counts(s.events, s.duration_us):
            ref.step_counts(c)
        want.append(ref.prediction())
    assert [s["prediction_index"] for s in got["samples"]] == want and got["n"] == len(want)


def test_float_model_edges_are_dropped():
    """QUANTIZE float -> int8 first and DEQUANTIZE int8 -> float last (a float model's
    edges): the file runs the int8 network between them, and dequantising its output
    gives TFLite Micro's float output for the float input (inputs exactly on the int8
    grid, power-of-two scales: both sides exact)."""
    rng = np.random.default_rng(9)
    w = rng.integers(-127, 128, (3, 3, 3, 2), dtype=np.int8)
    t = [TensorSpec("x", (1, 4, 4, 2), "float32"), int8_act("xq", (1, 4, 4, 2), 0.125, -3),
         TensorSpec("w", w.shape, "int8", [np.float32(1 / 64)], [0], 0, w), int8_act("yq", (1, 4, 4, 3), 0.5, 4),
         TensorSpec("y", (1, 4, 4, 3), "float32")]
    ops = [OpSpec("QUANTIZE", [0], [1], {}), OpSpec("CONV_2D", [1, 2, -1], [3], {"padding": "SAME"}),
           OpSpec("DEQUANTIZE", [3], [4], {})]
    model = write_tflite(t, ops, [0], [4])
    data = tflite_to_sgm(model, input="tensor")
    q = load_sgm(data)
    assert [ly.kind_name for ly in q.layers] == ["conv"] and q.input.output_offset == -3
    ref, micro, rt = QnetRef(q), Tflm(model), Runtime(data)
    for k in range(4):
        xq = rng.integers(-128, 128, (1, 4, 4, 2)).astype(np.int8)
        x = ((xq.astype(np.float32) + 3) * np.float32(0.125)).astype(np.float32)
        y = micro(x)
        got = ref.step_tensor(xq)
        np.testing.assert_array_equal((got.astype(np.float32) - 4) * np.float32(0.5), y.reshape(-1),
                                      err_msg=f"frame {k}")
        np.testing.assert_array_equal(rt.step_tensor(xq), got, err_msg=f"C runtime, frame {k}")
