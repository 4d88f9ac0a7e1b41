# SPDX-License-Identifier: MIT
"""int8 TFLite layers: our C kernels (runtime_c/src/engines/qnet/sg_qkernels.c via cffi) and their numpy
twin (pysg.qkernels) against TFLite Micro (the `tflite-micro` wheel, reference kernels),
element by element, 0 mismatches allowed.

(a) random one-operator models written without TensorFlow (pysg.converters.tflite_writer):
    conv per-channel / per-tensor, padding SAME/VALID, stride, dilation, groups;
    depthwise with depth multiplier; fully connected per-tensor / per-channel;
    average pool; fused RELU / RELU6 / RELU_N1_TO_1; many seeds.
(b) real models: every CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED layer of the four
    int8 wake-word models shipped in pymicro-wakeword 2.5.0, cut out one by one into a
    one-operator model with the same tensors and quantisation (pysg.converters.tflite_writer.
    single_op_model), fed random int8 inputs and the real intermediate activations of the
    whole model (run by TFLite Micro on a feature stream); each layer also converted to a
    version 2 .sgm (`pysg convert --input tensor`) and run by the C runtime's delta
    execution, one step per input.
"""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

tflm = pytest.importorskip("tflite_micro.python.tflite_micro.runtime",
                           reason="tflite-micro (pip install --pre tflite-micro) is the reference")
pytest.importorskip("tflite", reason="the tflite package reads and writes the models")

from pysg.converters.tflite_graph import (AveragePool2D, Conv2D, DepthwiseConv2D, FullyConnected,  # noqa: E402
                                     Reshape, TfliteGraphError, UnsupportedOpError, activation_range,
                                     quantize_multiplier, read_tflite)
from pysg.converters.tflite_writer import OpSpec, TensorSpec, single_op_model, write_tflite  # noqa: E402
from pysg import qkernels as qk  # noqa: E402
from pysg.converters.tflite_sgm import tflite_to_sgm  # noqa: E402
from pysg.runtime import Runtime, SgRuntimeError, lib  # noqa: E402
from tests.support.qkernel_cases import (CONV_CASES, activations, conv_case, fc_case, layer_inputs,  # noqa: E402
                                         pool_case, real_activations, random_bias, run_tflm, scales)

if not hasattr(lib, "sg_q_conv2d"):
    pytest.skip("pysg._sg_runtime was built without sg_qkernels.h", allow_module_level=True)


# ---------------------------------------------------------------- MultiplyByQuantizedMultiplier

def mbqm_exact(x: int, m: int, shift: int) -> int:
    """The definition with exact rationals: high = floor(x' * m / 2^31 + 1/2) (gemmlowp's
    nudge-and-truncate rounds ties upwards: -0.5 -> 0; saturating), then
    round(high / 2^right) with ties away from zero (RoundingDivideByPOT)."""
    left, right = max(shift, 0), max(-shift, 0)
    xl = ((x << left) + (1 << 31)) % (1 << 32) - (1 << 31)

    def round_away(f: Fraction) -> int:
        a = abs(f)
        r = math.floor(a) + (1 if a - math.floor(a) >= Fraction(1, 2) else 0)
        return r if f >= 0 else -r

    high = min(math.floor(Fraction(xl * m, 1 << 31) + Fraction(1, 2)), (1 << 31) - 1)
    return round_away(Fraction(high, 1 << right))


def test_mbqm_matches_exact_definition():
    rng = np.random.default_rng(7)
    edge_x = [0, 1, -1, 2, -2, 3, -3, (1 << 31) - 1, -(1 << 31), 1 << 30, -(1 << 30), 12345, -12345]
    xs = edge_x + [int(v) for v in rng.integers(-(1 << 31), 1 << 31, 400)] \
        + [int(v) for v in rng.integers(-5000, 5000, 400)]
    ms = [0, 1, (1 << 30), (1 << 31) - 1] + [int(v) for v in rng.integers(1 << 30, 1 << 31, 200)]
    cases = [(x, m, s) for x in xs[:40] for m in ms[:8] for s in (-31, -17, -1, 0, 1, 5, 30)]
    cases += [(x, int(rng.choice(ms)), int(rng.integers(-31, 31))) for x in xs]
    cases += [(-(1 << 31), (1 << 31) - 1, 0), ((1 << 31) - 1, (1 << 31) - 1, 0)]
    x, m, s = (np.array(v, dtype=np.int64) for v in zip(*cases))
    want = np.array([mbqm_exact(*c) for c in cases], dtype=np.int64)
    np.testing.assert_array_equal(qk.mbqm(x, m, s), want)
    np.testing.assert_array_equal(qk.mbqm_c(x, m, s), want)


def test_qkernels_header_is_in_the_module():
    """Every function sg_qkernels.h declares is compiled into pysg._sg_runtime (the cdef
    is generated from the header: pysg/_build_runtime.py HEADERS)."""
    from pysg._build_runtime import RUNTIME_DIR, function_names

    text = (Path(RUNTIME_DIR) / "include" / "sg_qkernels.h").read_text(encoding="utf-8")
    names = function_names(text)
    assert set(names) == {"sg_q_mbqm", "sg_q_conv2d", "sg_q_depthwise_conv2d", "sg_q_fully_connected",
                          "sg_q_average_pool2d"}
    assert all(hasattr(lib, n) for n in names)


def test_quantize_multiplier_known_values():
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.25) == (1 << 30, -1)
    # q * 2^31 rounding up to 2^31 moves into the exponent
    assert quantize_multiplier(1.0 - 2.0 ** -40) == (1 << 30, 1)
    assert quantize_multiplier(2.0 ** -40) == (0, 0)  # shift < -31 flushes to zero
    m, s = quantize_multiplier(0.0123)
    assert abs(m * 2.0 ** (s - 31) - 0.0123) < 1e-11


def test_activation_range():
    assert activation_range("NONE", 0.1, 3) == (-128, 127)
    assert activation_range("RELU", 0.1, -20) == (-20, 127)
    assert activation_range("RELU6", 0.1, -20) == (-20, 40)
    assert activation_range("RELU6", 0.01, -20) == (-20, 127)
    assert activation_range("RELU_N1_TO_1", 0.1, 0) == (-10, 10)


# ---------------------------------------------------------------- (a) random one-op models

SEEDS = range(30)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_random_conv_layer_bit_exact(case, seed):
    cfg = CONV_CASES[case]
    rng = np.random.default_rng([seed, sorted(CONV_CASES).index(case)])
    model, x, filt, bias = conv_case(rng, **cfg)
    op = read_tflite(model).ops[0]
    assert isinstance(op, DepthwiseConv2D if cfg["depthwise"] else Conv2D)
    ref = run_tflm(model, [x])
    if cfg["depthwise"]:
        ours_np = qk.depthwise_conv2d(x, filt, bias, op.params)
        ours_c = qk.depthwise_conv2d_c(x, filt, bias, op.params)
    else:
        ours_np = qk.conv2d(x, filt, bias, op.params)
        ours_c = qk.conv2d_c(x, filt, bias, op.params)
    assert ref.dtype == np.int8 and ref.shape == ours_c.shape
    np.testing.assert_array_equal(ours_c, ref)
    np.testing.assert_array_equal(ours_np, ref)


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_random_conv_cases_are_not_degenerate(case):
    """Layers whose outputs all sit on the clamp bounds would prove little: over the
    seeds, many outputs of every case lie strictly inside the activation range."""
    inside = total = 0
    for seed in SEEDS:
        rng = np.random.default_rng([seed, sorted(CONV_CASES).index(case)])
        model, x, filt, bias = conv_case(rng, **CONV_CASES[case])
        p = read_tflite(model).ops[0].params
        fn = qk.depthwise_conv2d if CONV_CASES[case]["depthwise"] else qk.conv2d
        y = fn(x, filt, bias, p)
        inside += int(np.count_nonzero((y > p.requant.act_min) & (y < p.requant.act_max)))
        total += y.size
    # RELU halves the range and RELU_N1_TO_1 narrows it to a few steps: a fifth suffices
    assert inside > total // 5, f"{case}: only {inside} of {total} outputs unclamped"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("per_channel, act", [(False, "NONE"), (False, "RELU6"), (True, "RELU"), (True, "NONE")])
def test_random_fully_connected_bit_exact(per_channel, act, seed):
    rng = np.random.default_rng([seed, 100 + per_channel * 2 + (act != "NONE")])
    model, x, wts, bias = fc_case(rng, per_channel=per_channel, act=act)
    op = read_tflite(model).ops[0]
    assert isinstance(op, FullyConnected) and op.params.requant.multiplier.size == (wts.shape[0] if per_channel else 1)
    ref = run_tflm(model, [x])
    np.testing.assert_array_equal(qk.fully_connected_c(x, wts, bias, op.params), ref)
    np.testing.assert_array_equal(qk.fully_connected(x, wts, bias, op.params), ref)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("padding, act", [("VALID", "NONE"), ("SAME", "NONE"), ("SAME", "RELU6"), ("VALID", "RELU")])
def test_random_average_pool_bit_exact(padding, act, seed):
    rng = np.random.default_rng([seed, 200 + (padding == "SAME") * 2 + (act != "NONE")])
    model, x = pool_case(rng, padding=padding, act=act)
    op = read_tflite(model).ops[0]
    ref = run_tflm(model, [x])
    np.testing.assert_array_equal(qk.average_pool2d_c(x, op.params), ref)
    np.testing.assert_array_equal(qk.average_pool2d(x, op.params), ref)


def _disagreeing_accumulators(rng, q_a: tuple[int, int], q_b: tuple[int, int], limit: int = 100,
                              n: int = 24) -> np.ndarray:
    """Accumulator values whose requantised outputs differ between two (multiplier, shift)
    pairs: the integers closest to each half-way point (k + 1/2) / M, |k| < limit."""
    m = q_a[0] * 2.0 ** (q_a[1] - 31)
    cand = np.unique(np.concatenate([np.round((np.arange(-limit, limit) + 0.5) / m).astype(np.int64) + d
                                     for d in range(-2, 3)]))
    cand = cand[np.abs(cand) < (1 << 31) - (1 << 20)]
    hit = cand[qk.mbqm(cand, *q_a) != qk.mbqm(cand, *q_b)]
    return rng.permutation(hit)[:n]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["fc_per_tensor", "conv_per_tensor_filter"])
def test_multiplier_precision_matches_tflite(kind, seed):
    """Which product of the scales the multiplier comes from: TensorFlow's kernel_util.cc
    computes the per-tensor fully connected one from the float32 product S_in * S_w, the
    conv ones from double(S_in) * double(S_w). Accumulators picked where the two choices
    requantise differently show that tflite-micro uses the double product for both (and
    that the reader does too)."""
    rng = np.random.default_rng([seed, 300 + (kind == "fc_per_tensor")])
    for _ in range(100):  # scales whose float and double products give different multipliers
        s_in, s_w = np.float32(rng.uniform(0.005, 0.1)), np.float32(rng.uniform(1e-3, 3e-2))
        s_out = np.float32(s_in * s_w * 2.0 ** 20 * rng.uniform(1, 2))
        q_float = quantize_multiplier(float(np.float32(s_in * s_w)) / float(s_out))
        q_double = quantize_multiplier(float(s_in) * float(s_w) / float(s_out))
        if q_float != q_double:
            break
    used, other = q_double, q_float
    bias = _disagreeing_accumulators(rng, used, other).astype(np.int32)
    assert bias.size >= 4
    n, zp_in = bias.size, int(rng.integers(-128, 128))
    q_w = dict(scale=[s_w], zero_point=[0])
    if kind == "fc_per_tensor":
        wts = np.ones((n, 1), np.int8)
        tensors = [TensorSpec("x", (1, 1), "int8", [s_in], [zp_in]), TensorSpec("w", (n, 1), "int8", **q_w, data=wts),
                   TensorSpec("b", (n,), "int32", [np.float32(s_in * s_w)], [0], data=bias),
                   TensorSpec("y", (1, n), "int8", [s_out], [0])]
        op = OpSpec("FULLY_CONNECTED", [0, 1, 2], [3])
        x = np.full((1, 1), zp_in, np.int8)  # the accumulator is the bias alone
    else:
        wts = np.ones((n, 1, 1, 1), np.int8)
        tensors = [TensorSpec("x", (1, 1, 1, 1), "int8", [s_in], [zp_in]),
                   TensorSpec("w", wts.shape, "int8", **q_w, data=wts),
                   TensorSpec("b", (n,), "int32", [np.float32(s_in * s_w)], [0], data=bias),
                   TensorSpec("y", (1, 1, 1, n), "int8", [s_out], [0])]
        op = OpSpec("CONV_2D", [0, 1, 2], [3])
        x = np.full((1, 1, 1, 1), zp_in, np.int8)
    model = write_tflite(tensors, [op], [0], [3])
    layer = read_tflite(model).ops[0]
    rq = layer.params.requant
    assert (int(rq.multiplier[0]), int(rq.shift[0])) == used
    ref = run_tflm(model, [x]).ravel()
    ours = (qk.fully_connected_c if kind == "fc_per_tensor" else qk.conv2d_c)(x, wts, bias, layer.params).ravel()
    np.testing.assert_array_equal(ours, ref)
    assert np.all(ref != np.clip(qk.mbqm(bias, *other), -128, 127))  # the other choice would fail


def _run_graph(graph, x: np.ndarray, impl: str) -> np.ndarray:
    """Our kernels over a whole graph of supported layers, in operator order."""
    vals = {graph.inputs[0]: x}
    sfx = "_c" if impl == "c" else ""
    for op in graph.ops:
        src = vals[op.inputs[0]]
        consts = [graph.tensors[i].data if i >= 0 else None for i in op.inputs[1:3]] + [None, None]
        if isinstance(op, Conv2D):
            y = getattr(qk, "conv2d" + sfx)(src, consts[0], consts[1], op.params)
        elif isinstance(op, DepthwiseConv2D):
            y = getattr(qk, "depthwise_conv2d" + sfx)(src, consts[0], consts[1], op.params)
        elif isinstance(op, FullyConnected):
            y = getattr(qk, "fully_connected" + sfx)(src.reshape(-1, consts[0].shape[1]), consts[0], consts[1],
                                                     op.params)
        elif isinstance(op, AveragePool2D):
            y = getattr(qk, "average_pool2d" + sfx)(src, op.params)
        elif isinstance(op, Reshape):
            y = src
        else:
            raise AssertionError(f"unexpected {op}")
        vals[op.outputs[0]] = y.reshape(graph.tensors[op.outputs[0]].shape)
    return vals[graph.outputs[0]]


@pytest.mark.parametrize("seed", range(10))
def test_random_network_frame_bit_exact(seed):
    """A small int8 CNN (conv -> depthwise -> average pool -> reshape -> fully connected),
    run whole by TFLite Micro and layer by layer by our kernels: the same frame out."""
    rng = np.random.default_rng([seed, 600])

    def act(shape, s, zp):
        return TensorSpec(f"a{len(shape)}_{s:.4f}", shape, "int8", [np.float32(s)], [zp])

    def weights(name, data, s_w, s_in, qdim, n_out, fan_in):
        return [TensorSpec(name, data.shape, "int8", s_w, np.zeros(s_w.size, np.int64), qdim, data),
                TensorSpec(name + "_b", (n_out,), "int32", (np.float32(s_in) * s_w).astype(np.float32),
                           np.zeros(s_w.size, np.int64), 0, random_bias(rng, fan_in, n_out))]

    s0, s1, s2, s3 = (float(rng.uniform(0.02, 0.06)) for _ in range(4))
    zps = [int(v) for v in rng.integers(-100, 100, 4)]
    w1 = rng.integers(-127, 128, (6, 3, 3, 3), dtype=np.int8)
    w2 = rng.integers(-127, 128, (1, 3, 3, 12), dtype=np.int8)
    w3 = rng.integers(-127, 128, (10, 48), dtype=np.int8)
    sw1, sw2, sw3 = scales(rng, 6, 2e-3, 4e-3), scales(rng, 12, 5e-3, 1e-2), scales(rng, 1, 1e-3, 2e-3)
    tensors = [act((1, 8, 8, 3), s0, zps[0]), *weights("w1", w1, sw1, s0, 0, 6, 27), act((1, 8, 8, 6), s1, zps[1]),
               *weights("w2", w2, sw2, s1, 3, 12, 9), act((1, 4, 4, 12), s2, zps[2]), act((1, 2, 2, 12), s2, zps[2]),
               TensorSpec("shape", (2,), "int32", data=np.array([1, 48], np.int32)), act((1, 48), s2, zps[2]),
               *weights("w3", w3, sw3, s2, 0, 10, 48), act((1, 10), s3, zps[3])]
    ops = [OpSpec("CONV_2D", [0, 1, 2], [3], dict(padding="SAME", activation="RELU")),
           OpSpec("DEPTHWISE_CONV_2D", [3, 4, 5], [6], dict(padding="SAME", stride_h=2, stride_w=2,
                                                            depth_multiplier=2, activation="RELU6")),
           OpSpec("AVERAGE_POOL_2D", [6], [7], dict(filter_h=2, filter_w=2, stride_h=2, stride_w=2)),
           OpSpec("RESHAPE", [7, 8], [9], dict(new_shape=[1, 48])),
           OpSpec("FULLY_CONNECTED", [9, 10, 11], [12])]
    model = write_tflite(tensors, ops, [0], [12])
    graph = read_tflite(model)
    assert [type(o).__name__ for o in graph.ops] == ["Conv2D", "DepthwiseConv2D", "AveragePool2D", "Reshape",
                                                     "FullyConnected"]
    for k in range(3):
        x = activations(rng, (1, 8, 8, 3), zps[0])
        ref = run_tflm(model, [x])
        assert len(np.unique(ref)) > 2
        np.testing.assert_array_equal(_run_graph(graph, x, "c"), ref)
        np.testing.assert_array_equal(_run_graph(graph, x, "numpy"), ref)


def test_average_pool_rounds_half_away_from_zero():
    # window sums -3 and 3 over 2 points: -1.5 -> -2 and 1.5 -> 2 (truncation would give -1, 1)
    x = np.array([-1, -2, 1, 2], dtype=np.int8).reshape(1, 1, 4, 1)
    p = qk.AveragePool2DParams(filter_hw=(1, 2), output_hw=(1, 2), stride=(1, 2))
    want = np.array([-2, 2], dtype=np.int8).reshape(1, 1, 2, 1)
    np.testing.assert_array_equal(qk.average_pool2d(x, p), want)
    np.testing.assert_array_equal(qk.average_pool2d_c(x, p), want)


def test_c_kernels_reject_bad_arguments():
    rq = qk.Requant(np.array([1 << 30, 1 << 30], np.int32), np.array([-3, -3], np.int32), 0)
    p = qk.Conv2DParams(0, rq, (2, 2))
    x = np.zeros((1, 2, 2, 3), np.int8)
    with pytest.raises(SgRuntimeError) as e:  # 2 multipliers for 4 output channels
        qk.conv2d_c(x, np.zeros((4, 1, 1, 3), np.int8), None, p)
    assert e.value.name == "SG_ERR_ARG"
    with pytest.raises(SgRuntimeError):  # depthwise channels C_in * M != filter channels
        qk.depthwise_conv2d_c(x, np.zeros((1, 1, 1, 2), np.int8), None, p)
    with pytest.raises(SgRuntimeError):  # a window entirely in the padding
        qk.average_pool2d_c(x, qk.AveragePool2DParams((1, 1), (3, 3), padding=(1, 1)))
    with pytest.raises(ValueError):
        qk.Requant(np.array([1 << 30]), np.array([31]), 0)


# ---------------------------------------------------------------- converter errors

def test_unsupported_op_names_op_and_index():
    s = np.float32(0.05)
    tensors = [TensorSpec("x", (1, 4, 4, 2), "int8", [s], [0]), TensorSpec("y", (1, 4, 4, 2), "int8", [s], [0])]
    model = bytearray(write_tflite(tensors, [OpSpec("AVERAGE_POOL_2D", [0], [1], dict(filter_h=1, filter_w=1))],
                                   [0], [1]))
    import tflite

    # patch the opcode in place to MAX_POOL_2D (same options table): must be refused by name
    m = tflite.Model.GetRootAs(bytes(model), 0)
    oc = m.OperatorCodes(0)
    pos = oc._tab.Offset(10)  # builtin_code (int32)
    assert pos
    at = oc._tab.Pos + pos
    model[at:at + 4] = int(tflite.BuiltinOperator.MAX_POOL_2D).to_bytes(4, "little")
    pos = oc._tab.Offset(4)  # deprecated_builtin_code (int8)
    model[oc._tab.Pos + pos] = tflite.BuiltinOperator.MAX_POOL_2D
    with pytest.raises(UnsupportedOpError) as e:
        read_tflite(bytes(model))
    assert e.value.op_name == "MAX_POOL_2D" and e.value.op_index == 0
    assert "MAX_POOL_2D" in str(e.value) and "index 0" in str(e.value)
    g = read_tflite(bytes(model), skip_unsupported=True)
    assert g.ops == [] and g.skipped == [(0, "MAX_POOL_2D")]


def test_reader_refuses_accumulator_overflow():
    n_in = 70000  # |w| 127 * |x - zp| up to 255 * 70000 > 2^31: the int32 accumulator could wrap
    s = np.float32(0.02)
    tensors = [TensorSpec("x", (1, n_in), "int8", [s], [127]),
               TensorSpec("w", (1, n_in), "int8", [s], [0], data=np.full((1, n_in), 127, np.int8)),
               TensorSpec("y", (1, 1), "int8", [s], [0])]
    model = write_tflite(tensors, [OpSpec("FULLY_CONNECTED", [0, 1, -1], [2])], [0], [2])
    with pytest.raises(TfliteGraphError, match="overflow"):
        read_tflite(model)


def test_reader_rejects_non_tflite():
    with pytest.raises(TfliteGraphError):
        read_tflite(b"\0" * 64)


# ---------------------------------------------------------------- (b) real wake-word models

def _wakeword_models() -> list[Path]:
    pmw = pytest.importorskip("pymicro_wakeword", reason="pymicro-wakeword 2.5.0 ships the real int8 models")
    models = sorted((Path(pmw.__file__).parent / "models").glob("*.tflite"))
    if not models:
        pytest.skip("no .tflite files inside pymicro_wakeword")
    return models


def _ours(op, graph, x: np.ndarray, impl: str) -> np.ndarray:
    w = graph.tensors[op.inputs[1]].data
    bias = graph.tensors[op.inputs[2]].data if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    suffix = "_c" if impl == "c" else ""
    if isinstance(op, Conv2D):
        return getattr(qk, "conv2d" + suffix)(x, w, bias, op.params)
    if isinstance(op, DepthwiseConv2D):
        return getattr(qk, "depthwise_conv2d" + suffix)(x, w, bias, op.params)
    y = getattr(qk, "fully_connected" + suffix)(x.reshape(-1, w.shape[1]), w, bias, op.params)
    return y.reshape(graph.tensors[op.outputs[0]].shape)


def test_real_wakeword_layers_bit_exact():
    models = _wakeword_models()
    rng = np.random.default_rng(2026)
    layers = elements = real_inputs = 0
    kinds: dict[str, int] = {}
    for path in models:
        with pytest.raises(UnsupportedOpError) as e:
            read_tflite(path)
        assert (e.value.op_name, e.value.op_index) == ("CALL_ONCE", 0)
        graph = read_tflite(path, skip_unsupported=True)
        assert ("CALL_ONCE", "VAR_HANDLE") <= tuple(name for _, name in graph.skipped[:2])
        assert {type(o).__name__ for o in graph.ops} >= {"Reshape", "Quantize", "Conv2D", "FullyConnected"}
        real = real_activations(path, graph, rng)
        for op in graph.ops:
            if not isinstance(op, (Conv2D, DepthwiseConv2D, FullyConnected)):
                continue
            model = single_op_model(graph, op.index)
            cut = read_tflite(model).ops[0]  # the cut-out layer keeps tensors, options, parameters
            assert type(cut) is type(op) and cut.activation == op.activation
            rq, rq_cut = op.params.requant, cut.params.requant
            assert np.array_equal(rq.multiplier, rq_cut.multiplier) and np.array_equal(rq.shift, rq_cut.shift)
            assert (rq.output_offset, rq.act_min, rq.act_max) == (rq_cut.output_offset, rq_cut.act_min, rq_cut.act_max)
            acts = real[op.inputs[0]]
            assert acts, f"{path.name} op {op.index}: no real activations captured"
            # the layer converted (`pysg convert --input tensor`) and run in the C runtime: each
            # input is one step, computed from its changes since the previous one
            rt = Runtime(tflite_to_sgm(model, input="tensor"))
            for k, x in enumerate(layer_inputs(op, graph, acts, rng, n_random=24)):
                ref = run_tflm(model, [x])
                for impl in ("c", "numpy", "runtime"):
                    ours = (rt.step_tensor(np.ascontiguousarray(x).reshape(-1)).reshape(ref.shape) if impl == "runtime"
                            else _ours(op, graph, x, impl))
                    mismatches = int(np.count_nonzero(ours != ref.reshape(ours.shape)))
                    assert mismatches == 0, (f"{path.name} op {op.index} ({type(op).__name__}) input {k} "
                                             f"{impl}: {mismatches} of {ref.size} differ")
                elements += ref.size
            layers += 1
            real_inputs += len(acts)
            kinds[type(op).__name__] = kinds.get(type(op).__name__, 0) + 1
    # the four models hold 45 such layers (21 conv, 20 depthwise, 4 fully connected)
    assert len(models) == 4 and kinds == {"Conv2D": 21, "DepthwiseConv2D": 20, "FullyConnected": 4}
    print(f"\nreal layers checked: {layers} {kinds}; elements compared per implementation: "
          f"{elements}; real activation inputs: {real_inputs}")
