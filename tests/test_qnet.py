# SPDX-License-Identifier: MIT
"""pysg.qnet.DeltaNetwork (imported int8 networks run event-driven) against independent truth.

(a) random small int8 networks written with pysg.converters.tflite_writer (conv with padding,
    stride, dilation and groups; depthwise with a depth multiplier; average pool; reshape;
    fully connected; NONE / RELU / RELU6), fed frame sequences with sparse changes: every
    step's output equals TFLite Micro's output for that frame and pysg.qkernels' dense pass.
(b) counters: each layer's input events, synaptic ops and output events equal counts made
    from the dense pass's tensors (elements that changed since the previous frame) and a
    brute-force fan-out of every input element; a repeated frame costs nothing.
(c) the bench's gesture CNN architecture (tests/support/cnn_baseline) on real event frames of the
    bundled recording (pysg/data/samples): a deterministic, untrained-but-quantised CNN
    built in the test, and the cached trained one when ~/.cache/pysg-bench holds it.
Also: reset(), a batch of 2 with a fully connected layer over every pixel, and refusals.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

tflm = pytest.importorskip("tflite_micro.python.tflite_micro.runtime",
                           reason="tflite-micro (pip install --pre tflite-micro) is the reference")
pytest.importorskip("tflite", reason="the tflite package reads and writes the models")

from pysg.converters.tflite_graph import (AveragePool2D, Conv2D, DepthwiseConv2D, FullyConnected,  # noqa: E402
                                     Quantize, Quantization, Reshape, Tensor, TfliteGraph, TfliteGraphError,
                                     UnsupportedOpError, read_tflite)
from pysg.converters.tflite_writer import OpSpec, TensorSpec, write_tflite  # noqa: E402
from pysg import qkernels as qk  # noqa: E402
from tests.support.cnn_baseline import CACHE_DIR  # noqa: E402
from tests.support.cnn_baseline.cnn import macs_per_frame  # noqa: E402
from tests.support.qnet_models import (Tflm, built_cnn, bundled_frames, int8_act, random_network,  # noqa: E402
                                       sparse_sequence)
from pysg.converters.tflite_sgm import delta_network  # noqa: E402


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

def _cached_cnn() -> bytes:
    found = sorted(CACHE_DIR.glob("gesture_cnn_*.tflite")) if CACHE_DIR.is_dir() else []
    for path in found:  # the baseline's default configuration only (its MACs are asserted)
        meta = path.with_suffix(".json")
        cfg = json.loads(meta.read_text()).get("config", {}) if meta.is_file() else {}
        if cfg.get("channels") == [4, 8, 16] and cfg.get("slices") == 2:
            return path.read_bytes()
    pytest.skip("no trained gesture CNN cached (python -m bench.tflite_baseline trains one)")


@pytest.mark.parametrize("which", ["built", "cached"])
def test_gesture_cnn_on_real_frames(which):
    model = built_cnn() if which == "built" else _cached_cnn()
    net = delta_network(model)
    ref = Tflm(model)
    assert net.dense_macs_per_frame == macs_per_frame((4, 8, 16), 11, 4) == 76_544
    steps = synops = 0
    logits = set()
    for seq in bundled_frames(10, 3):
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
        tensors = [int8_act("x", (batch, 5, 5, 3), 0.03, -20),
                   TensorSpec("w1", w1.shape, "int8", s_w1, np.zeros(4, np.int64), 0, w1),
                   TensorSpec("b1", (4,), "int32", (np.float32(0.03) * s_w1).astype(np.float32),
                              np.zeros(4, np.int64), 0, np.arange(-1500, 1500, 750).astype(np.int32)),
                   int8_act("h", (batch, 5, 5, 4), 0.5, -128),
                   TensorSpec("w2", w2.shape, "int8", s_w2, [0], 0, w2),
                   int8_act("y", (25 * batch, 6), 0.05, 3)]
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
