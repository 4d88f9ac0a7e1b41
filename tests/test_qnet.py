# SPDX-License-Identifier: MIT
"""pysg.qnet.DeltaNetwork (imported int8 networks run event-driven) against independent truth.

(a) random small int8 networks written with pysg.converters.tflite_writer (conv with padding,
    stride, dilation and groups; depthwise with a depth multiplier; average pool; reshape;
    fully connected; NONE / RELU / RELU6), fed frame sequences with sparse changes: every
    step's output equals TFLite Micro's output for that frame and pysg.qkernels' dense pass.
(b) counters: each layer's input events, synaptic ops and output events equal counts made
    from the dense pass's tensors (elements that changed since the previous frame) and a
    brute-force fan-out of every input element; a repeated frame costs nothing.
(c) the bench's gesture CNN architecture (bench/cnn_baseline) on real event frames of the
    bundled recording (pysg/data/samples): a deterministic, untrained-but-quantised CNN
    built in the test, and the cached trained one when ~/.cache/pysg-bench holds it.
Also: reset(), a batch of 2 with a fully connected layer over every pixel, and refusals.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

tflm = pytest.importorskip("tflite_micro.python.tflite_micro.runtime",
                           reason="tflite-micro (pip install --pre tflite-micro) is the reference")
pytest.importorskip("tflite", reason="the tflite package reads and writes the models")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from pysg.converters.tflite_graph import (AveragePool2D, Conv2D, DepthwiseConv2D, FullyConnected,  # noqa: E402
                                     Quantize, Quantization, Reshape, Tensor, TfliteGraph, TfliteGraphError,
                                     UnsupportedOpError, read_tflite)
from pysg.converters.tflite_writer import OpSpec, TensorSpec, write_tflite  # noqa: E402
from pysg import qkernels as qk  # noqa: E402
from pysg.converters.tflite_sgm import delta_network  # noqa: E402

ACTS = ("NONE", "RELU", "RELU6")


class Tflm:
    """One TFLite Micro interpreter, invoked frame by frame."""

    def __init__(self, model: bytes) -> None:
        self.it = tflm.Interpreter.from_bytes(model, arena_size=4 * len(model) + (1 << 20))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.it.set_input(x, 0)
        self.it.invoke()
        return np.array(self.it.get_output(0))


# ---------------------------------------------------------------- dense reference and fan-out

def dense_tensors(graph: TfliteGraph, x: np.ndarray) -> dict[int, np.ndarray]:
    """Every activation tensor of one frame, by pysg.qkernels' numpy kernels."""
    vals = {graph.inputs[0]: x}
    for op in graph.ops:
        src = vals[op.inputs[0]]
        w = graph.tensors[op.inputs[1]].data if len(op.inputs) > 1 else None
        bias = graph.tensors[op.inputs[2]].data if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        if isinstance(op, Conv2D):
            y = qk.conv2d(src, w, bias, op.params)
        elif isinstance(op, DepthwiseConv2D):
            y = qk.depthwise_conv2d(src, w, bias, op.params)
        elif isinstance(op, FullyConnected):
            y = qk.fully_connected(src.reshape(-1, w.shape[1]), w, bias, op.params)
        elif isinstance(op, AveragePool2D):
            y = qk.average_pool2d(src, op.params)
        elif isinstance(op, Reshape):
            y = src
        else:
            raise AssertionError(f"unexpected {op}")
        vals[op.outputs[0]] = y.reshape(graph.tensors[op.outputs[0]].shape)
    return vals


def brute_fan_out(graph: TfliteGraph, op) -> np.ndarray:
    """Synaptic fan-out of every element of the op's input (flat NHWC order), counted by
    walking every output position and filter tap."""
    shape = graph.tensors[op.inputs[0]].shape
    if isinstance(op, FullyConnected):
        return np.full(int(np.prod(shape)), graph.tensors[op.inputs[1]].shape[0], np.int64)
    n, h, w, c = shape
    p = op.params
    if isinstance(op, AveragePool2D):
        (kh, kw), dil, per_tap = p.filter_hw, (1, 1), 1
    else:
        filt = graph.tensors[op.inputs[1]].shape
        kh, kw, dil = filt[1], filt[2], p.dilation
        per_tap = p.depth_multiplier if isinstance(op, DepthwiseConv2D) else filt[0] // (c // filt[3])
    hits = np.zeros((n, h, w), np.int64)
    for b in range(n):
        for oy in range(p.output_hw[0]):
            for ox in range(p.output_hw[1]):
                for ky in range(kh):
                    for kx in range(kw):
                        y = oy * p.stride[0] - p.padding[0] + ky * dil[0]
                        xx = ox * p.stride[1] - p.padding[1] + kx * dil[1]
                        if 0 <= y < h and 0 <= xx < w:
                            hits[b, y, xx] += 1
    return np.repeat(hits.ravel(), c) * per_tap


# ---------------------------------------------------------------- random networks

def _act(name: str, shape, s: float, zp: int) -> TensorSpec:
    return TensorSpec(name, tuple(shape), "int8", [np.float32(s)], [zp])


def _out_scale(rng, s_in: float, s_w: np.ndarray, fan_in: int) -> float:
    """Maps the accumulator's spread onto a few dozen int8 steps (outputs rarely saturate)."""
    return float(s_in * float(s_w.mean()) * 5400 * math.sqrt(fan_in) / rng.uniform(15, 60))


def _out_size(padding: str, size: int, k: int, stride: int, dil: int) -> int:
    eff = (k - 1) * dil + 1
    return (size + stride - 1) // stride if padding == "SAME" else (size + stride - eff) // stride


def random_network(rng: np.random.Generator) -> bytes:
    """input -> conv (groups, stride or dilation) -> depthwise (multiplier) -> average pool
    -> reshape -> fully connected, random padding, activations and quantisation."""
    tensors: list[TensorSpec] = []
    ops: list[OpSpec] = []

    def add(t: TensorSpec) -> int:
        tensors.append(t)
        return len(tensors) - 1

    def layer(kind: str, x: int, filt: np.ndarray, qdim: int, out_shape, fan_in: int, opts: dict,
              gain: float = 1.0, act: str | None = None) -> int:
        s_in = float(tensors[x].scale[0])
        n_out = filt.shape[qdim]
        s_w = rng.uniform(2e-3, 2e-2, n_out if rng.random() < 0.7 else 1).astype(np.float32)
        b = int(600 * math.sqrt(fan_in))  # small against the spread: ReLUs neither all on nor all off
        bias = rng.integers(-b, b + 1, n_out).astype(np.int32)
        wi = add(TensorSpec(f"w{x}", filt.shape, "int8", s_w, np.zeros(s_w.size, np.int64), qdim, filt))
        bi = add(TensorSpec(f"b{x}", (n_out,), "int32", (np.float32(s_in) * s_w).astype(np.float32),
                            np.zeros(s_w.size, np.int64), 0, bias))
        act = str(rng.choice(ACTS)) if act is None else act
        s_out = _out_scale(rng, s_in, s_w, fan_in) / gain
        if act == "RELU6":  # keep dozens of int8 steps below 6.0, or the layer saturates
            s_out = min(s_out, 6.0 / 60)
        zp = int(rng.integers(-100, 100)) if act == "NONE" else int(rng.integers(-128, -60))
        y = add(_act(f"a{len(tensors)}", out_shape, s_out, zp))
        ops.append(OpSpec(kind, [x, wi, bi], [y], dict(opts, activation=act)))
        return y

    groups = int(rng.integers(1, 3))
    h, w, cin = int(rng.integers(6, 11)), int(rng.integers(6, 11)), groups * int(rng.integers(1, 3))
    x = add(_act("input", (1, h, w, cin), rng.uniform(0.01, 0.05), int(rng.integers(-128, 100))))
    # conv: stride 2 or dilation 2 (TFLite allows both; one keeps the model small)
    k, stride = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    dil = 1 if stride == 2 else int(rng.integers(1, 3))
    pad = str(rng.choice(["SAME", "VALID"]))
    cout = groups * int(rng.integers(2, 4))
    oh, ow = (_out_size(pad, s, k, stride, dil) for s in (h, w))
    filt = rng.integers(-127, 128, (cout, k, k, cin // groups), dtype=np.int8)
    x = layer("CONV_2D", x, filt, 0, (1, oh, ow, cout), k * k * cin // groups,
              dict(padding=pad, stride_h=stride, stride_w=stride, dilation_h=dil, dilation_w=dil))
    # depthwise with a multiplier
    mult, k, stride = int(rng.integers(1, 3)), int(rng.integers(2, 4)), int(rng.integers(1, 3))
    pad = str(rng.choice(["SAME", "VALID"]))
    h, w = oh, ow
    if min(_out_size(pad, s, k, stride, 1) for s in (h, w)) < 1:
        pad = "SAME"
    oh, ow = (_out_size(pad, s, k, stride, 1) for s in (h, w))
    filt = rng.integers(-127, 128, (1, k, k, cout * mult), dtype=np.int8)
    x = layer("DEPTHWISE_CONV_2D", x, filt, 3, (1, oh, ow, cout * mult), k * k,
              dict(padding=pad, stride_h=stride, stride_w=stride, depth_multiplier=mult), gain=3.0)
    c = cout * mult
    # average pool: same quantisation in and out (TFLite requires it)
    fh, fw = min(2, oh), min(2, ow)
    pad = str(rng.choice(["SAME", "VALID"]))
    ph, pw = _out_size(pad, oh, fh, 1, 1), _out_size(pad, ow, fw, 1, 1)
    t = tensors[x]
    x_pool = add(TensorSpec("pool", (1, ph, pw, c), "int8", t.scale, t.zero_point))
    ops.append(OpSpec("AVERAGE_POOL_2D", [x], [x_pool], dict(padding=pad, filter_h=fh, filter_w=fw,
                                                              activation=str(rng.choice(ACTS)))))
    n_flat = ph * pw * c
    shape_t = add(TensorSpec("shape", (2,), "int32", data=np.array([1, n_flat], np.int32)))
    x_flat = add(TensorSpec("flat", (1, n_flat), "int8", t.scale, t.zero_point))
    ops.append(OpSpec("RESHAPE", [x_pool, shape_t], [x_flat], dict(new_shape=[1, n_flat])))
    n_cls = int(rng.integers(3, 12))
    wts = rng.integers(-127, 128, (n_cls, n_flat), dtype=np.int8)
    # pooled ReLU outputs spread less than the uniform inputs _out_scale assumes
    y = layer("FULLY_CONNECTED", x_flat, wts, 0, (1, n_cls), n_flat, {}, gain=12.0,
              act="NONE")
    return write_tflite(tensors, ops, [0], [y])


def sparse_sequence(rng: np.random.Generator, shape, zp: int, n: int) -> list[np.ndarray]:
    """Frames that change in a few elements from one to the next; frame 3 repeats frame 2
    and frame 5 is redrawn entirely."""
    frames = [np.clip(np.round(rng.normal(zp, 60, shape)), -128, 127).astype(np.int8)]
    for k in range(1, n):
        f = frames[-1].copy()
        frac = 0.0 if k == 3 else 1.0 if k == 5 else float(rng.choice([0.01, 0.05, 0.2]))
        flat = f.reshape(-1)
        idx = rng.choice(flat.size, max(1, int(frac * flat.size)) if frac else 0, replace=False)
        flat[idx] = rng.integers(-128, 128, idx.size)
        frames.append(f)
    return frames


_KIND = {"Conv2D": "conv", "DepthwiseConv2D": "depthwise", "FullyConnected": "fully_connected",
         "AveragePool2D": "average_pool"}


@pytest.mark.parametrize("seed", range(40))
def test_random_network_steps_bit_exact_and_counted(seed):
    rng = np.random.default_rng([seed, 1107])
    model = random_network(rng)
    graph = read_tflite(model)
    net = delta_network(model)
    ref = Tflm(model)
    x_t = graph.tensors[graph.inputs[0]]
    zp_in = int(x_t.quantization.zero_point[0])
    layers = [op for op in graph.ops if not isinstance(op, Reshape)]
    fan = {op.index: brute_fan_out(graph, op) for op in layers}
    prev = dense_tensors(graph, np.full(x_t.shape, zp_in, np.int8))  # the state reset() must hold
    distinct = set()
    moved = np.zeros(len(layers), np.int64)  # steps in which each layer's output changed
    for k, frame in enumerate(sparse_sequence(rng, x_t.shape, zp_in, 12)):
        out = net.step(frame)
        dense = dense_tensors(graph, frame)
        want = ref(frame)
        np.testing.assert_array_equal(out, want, err_msg=f"seed {seed} step {k}: delta vs TFLite Micro")
        np.testing.assert_array_equal(dense[graph.outputs[0]], want, err_msg=f"step {k}: qkernels vs TFLite Micro")
        distinct.add(want.tobytes())

        def changed(t: int, now=dense, before=prev) -> np.ndarray:
            return (now[t] != before[t]).reshape(-1)

        counts = net.last
        assert counts.input_events == int(changed(graph.inputs[0]).sum())
        # layers are named by kind and layer-table entry (1.., RESHAPE has none)
        assert [c.name for c in counts.layers] == [f"{_KIND[type(op).__name__]} {i}"
                                                   for i, op in enumerate(layers, start=1)]
        for op, c in zip(layers, counts.layers):
            ch_in, ch_out = changed(op.inputs[0]), changed(op.outputs[0])
            assert c.in_events == int(ch_in.sum()), f"step {k} {c.name}"
            assert c.synops == int(fan[op.index][ch_in].sum()), f"step {k} {c.name}"
            assert c.out_events == int(ch_out.sum()), f"step {k} {c.name}"
            assert c.out_events <= c.requants <= ch_out.size
        moved += [c.out_events > 0 for c in counts.layers]
        if k == 3:  # a repeated frame: no event anywhere, no work
            assert counts.events == counts.synops == counts.requants == 0
        if k == 5:  # every input element redrawn: close to the dense synaptic count
            assert counts.synops > 0.9 * fan[layers[0].index].sum()
        prev = dense
    # every layer's output moved: the comparisons were not between constants
    assert len(distinct) >= 3 and moved.min() >= 2, (len(distinct), moved)
    assert net.dense_synops_per_frame == sum(int(f.sum()) for f in fan.values())


def test_reset_restarts_from_the_zero_point_response():
    rng = np.random.default_rng(11)
    model = random_network(rng)
    net = delta_network(model)
    ref = Tflm(model)
    frames = sparse_sequence(rng, net.input_shape, 0, 4)
    first = [net.step(f) for f in frames]
    net.reset()
    again = [net.step(f) for f in frames[::-1]]
    for f, a in zip(frames[::-1], again):
        np.testing.assert_array_equal(a, ref(f))
    np.testing.assert_array_equal(first[0], again[-1])


def test_refuses_ops_without_event_form_and_bad_frames():
    q = Quantization(np.array([0.1], np.float32), np.array([0], np.int64))
    tensors = [Tensor(0, "x", (1, 4), "int8", q), Tensor(1, "y", (1, 4), "int8", q)]
    with pytest.raises(UnsupportedOpError) as e:
        delta_network(TfliteGraph(tensors, [Quantize(0, (0,), (1,))], (0,), (1,)))
    assert (e.value.op_name, e.value.op_index) == ("QUANTIZE", 0)
    net = delta_network(random_network(np.random.default_rng(3)))
    with pytest.raises(ValueError, match="int8"):
        net.step(np.zeros(net.input_shape, np.int16))
    with pytest.raises(ValueError, match="shape"):
        net.step(np.zeros((1, 3, 3, 1), np.int8))


# ---------------------------------------------------------------- (c) the gesture CNN

def _bundled_frames(hop_ms: int, gestures: int) -> list[np.ndarray]:
    from cnn_baseline.frames import event_frames

    from pysg.datasets.gesture import GestureDataset
    from pysg.recipes import BUNDLED_SAMPLES

    ds = GestureDataset(BUNDLED_SAMPLES, "test")
    out = []
    for i in range(min(gestures, len(ds))):
        s = ds[i]
        out.append(event_frames(s.events, s.duration_us, window_ms=200, hop_ms=hop_ms, slices=2))
    return out


def _built_cnn() -> bytes:
    """The baseline's architecture with seeded random weights, quantised by its own code
    on real frames (no training: the test needs the arithmetic, not the accuracy)."""
    from cnn_baseline import dequantize_frames
    from cnn_baseline.cnn import init_params
    from cnn_baseline.quant import quantize_to_tflite

    params = init_params((4, 8, 16), 11, np.random.default_rng(5), in_channels=4)
    params.b = [np.random.default_rng(6 + i).normal(0, 0.1, b.shape).astype(np.float32)
                for i, b in enumerate(params.b)]
    calib = np.concatenate(_bundled_frames(50, 11))
    return quantize_to_tflite(params, dequantize_frames(calib))


def _cached_cnn() -> bytes:
    from cnn_baseline import CACHE_DIR

    found = sorted(CACHE_DIR.glob("gesture_cnn_*.tflite")) if CACHE_DIR.is_dir() else []
    for path in found:  # the baseline's default configuration only (its MACs are asserted)
        meta = path.with_suffix(".json")
        cfg = json.loads(meta.read_text()).get("config", {}) if meta.is_file() else {}
        if cfg.get("channels") == [4, 8, 16] and cfg.get("slices") == 2:
            return path.read_bytes()
    pytest.skip("no trained gesture CNN cached (bench/tflite_baseline.py trains one)")


@pytest.mark.parametrize("which", ["built", "cached"])
def test_gesture_cnn_on_real_frames(which):
    from cnn_baseline.cnn import macs_per_frame

    model = _built_cnn() if which == "built" else _cached_cnn()
    net = delta_network(model)
    ref = Tflm(model)
    assert net.dense_macs_per_frame == macs_per_frame((4, 8, 16), 11, 4) == 76_544
    steps = synops = 0
    logits = set()
    for seq in _bundled_frames(10, 3):
        net.reset()
        for k, f in enumerate(seq):
            out = net.step(f[None])
            want = ref(f[None])
            mism = int(np.count_nonzero(out != want))
            assert mism == 0, f"frame {k}: {mism} of {want.size} logits differ from TFLite Micro"
            logits.add(want.tobytes())
            steps += 1
            synops += net.last.synops
    assert steps > 300 and len(logits) > 50
    # real frames at a 10 ms hop change sparsely: far fewer synaptic ops than dense MACs
    assert 0 < synops / steps < 0.5 * net.dense_macs_per_frame


def test_fully_connected_rows_and_batch_refused():
    """A fully connected layer applied to every pixel (its input [1, 5, 5, 4] read as 25
    rows of 4): flat indices keep position and channel apart. A batch of 2 is refused
    (the file format and the runtime stream one input)."""
    rng = np.random.default_rng(77)
    w1 = rng.integers(-127, 128, (4, 3, 3, 3), dtype=np.int8)
    w2 = rng.integers(-127, 128, (6, 4), dtype=np.int8)
    s_w1, s_w2 = rng.uniform(2e-3, 2e-2, 4).astype(np.float32), np.array([0.01], np.float32)

    def build(batch: int) -> bytes:
        tensors = [_act("x", (batch, 5, 5, 3), 0.03, -20),
                   TensorSpec("w1", w1.shape, "int8", s_w1, np.zeros(4, np.int64), 0, w1),
                   TensorSpec("b1", (4,), "int32", (np.float32(0.03) * s_w1).astype(np.float32),
                              np.zeros(4, np.int64), 0, np.arange(-1500, 1500, 750).astype(np.int32)),
                   _act("h", (batch, 5, 5, 4), 0.5, -128),
                   TensorSpec("w2", w2.shape, "int8", s_w2, [0], 0, w2),
                   _act("y", (25 * batch, 6), 0.05, 3)]
        ops = [OpSpec("CONV_2D", [0, 1, 2], [3], {"padding": "SAME", "activation": "RELU"}),
               OpSpec("FULLY_CONNECTED", [3, 4, -1], [5], {})]
        return write_tflite(tensors, ops, [0], [5])

    with pytest.raises(TfliteGraphError, match="batch 1"):
        delta_network(build(2))
    model = build(1)
    net, ref = delta_network(model), Tflm(model)
    assert net.dense_macs_per_frame == 25 * 4 * 27 + 25 * 6 * 4
    outs = set()
    for f in sparse_sequence(rng, (1, 5, 5, 3), -20, 8):
        out = net.step(f)
        np.testing.assert_array_equal(out, ref(f))
        outs.add(out.tobytes())
    assert len(outs) >= 6
