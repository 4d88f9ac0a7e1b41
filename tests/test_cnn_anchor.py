# SPDX-License-Identifier: MIT
"""The strong frame-CNN anchor's pieces (tests/support/cnn_anchor) against independent truth.

* binning: bin_windows over [0, 8 dt) equals pysg.datasets.binning.bin_events at dt;
* batch-norm folding: the numpy folded net equals the torch model in eval mode;
* the int8 .tflite of the anchor's architecture (conv 3x3 -> average pool x 3 -> dense,
  random weights and batch-norm statistics, calibrated on random inputs): TFLite Micro
  (reference kernels) gives exactly pysg.qkernels' logits, LiteRT's default (XNNPACK)
  path is within 2 LSB of them, and the dequantised int8 logits are within the
  quantisation bound of the float ones (3 output LSB; measured 1.6);
* MACs counted from the graph equal the closed form.
"""
from __future__ import annotations

import numpy as np
import pytest

from pysg.datasets.binning import bin_events
from tests.support.cnn_anchor.data import CELLS, SplitEvents, bin_windows, to_float, to_int8

torch = pytest.importorskip("torch", reason='pip install "pysg[torch]"')


def _events(rng: np.random.Generator, n: int, duration_us: int) -> np.ndarray:
    ev = np.zeros(n, dtype=[("x", "<u2"), ("y", "<u2"), ("t", "<i8"), ("p", "u1")])
    ev["x"], ev["y"] = rng.integers(0, 128, n), rng.integers(0, 128, n)
    ev["t"] = np.sort(rng.integers(0, duration_us, n))
    ev["p"] = rng.integers(0, 2, n)
    return ev


def _split(rng: np.random.Generator, sizes: list[int], duration_us: int) -> tuple[SplitEvents, list[np.ndarray]]:
    raw = [_events(rng, n, duration_us) for n in sizes]
    cell = [(e["p"].astype(np.uint16) << 10) | ((e["y"] >> 2) << 5) | (e["x"] >> 2) for e in raw]
    return SplitEvents(np.concatenate([e["t"] for e in raw]).astype(np.uint32), np.concatenate(cell).astype(np.uint16),
                       np.cumsum([0] + sizes), np.full(len(sizes), duration_us, np.int64),
                       np.arange(len(sizes)) % 11), raw


def test_bin_windows_match_bin_events():
    rng = np.random.default_rng(5)
    ev, raw = _split(rng, [30_000, 5_000, 1], 800_000)
    for dt_ms, g in ((100, 0), (50, 1), (20, 2)):
        got = bin_windows(ev, np.array([g]), np.array([0]), np.array([8 * dt_ms * 1000]))[0]
        inside = raw[g][raw[g]["t"] < 8 * dt_ms * 1000]
        want = bin_events(inside, duration_us=8 * dt_ms * 1000, dt_us=dt_ms * 1000, downsample=4)
        np.testing.assert_array_equal(got, want.reshape(16, 32, 32))
    # a window starting later drops the earlier events and re-bases the bins on its start
    got = bin_windows(ev, np.array([0]), np.array([200_000]), np.array([600_000]))[0]
    shifted = raw[0][(raw[0]["t"] >= 200_000) & (raw[0]["t"] < 600_000)].copy()
    shifted["t"] -= 200_000
    np.testing.assert_array_equal(got, bin_events(shifted, duration_us=400_000, dt_us=50_000).reshape(16, 32, 32))
    assert got.sum() == len(shifted) and CELLS == 2048


def test_input_codes_are_the_log_code():
    c = np.array([0, 1, 3, 255, 60_000], np.uint16)
    np.testing.assert_array_equal(to_int8(c), [-128, -96, -64, 127, 127])
    np.testing.assert_allclose(to_float(c[:3]), np.log2(1 + c[:3].astype(float)))


@pytest.fixture(scope="module")
def anchor():
    from tests.support.cnn_anchor.export import fold, quantize_anchor
    from tests.support.cnn_anchor.model import AnchorConfig, AnchorNet

    torch.manual_seed(0)
    net = AnchorNet(AnchorConfig(channels=(8, 16, 16)))
    with torch.no_grad():
        for m in net.features:
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    net.eval()
    rng = np.random.default_rng(1)
    counts = rng.poisson(rng.uniform(0, 4, (40, 1, 1, 1)), (40, 16, 32, 32)).astype(np.uint16)
    xf = to_float(counts)
    f = fold(net)
    model = quantize_anchor(f, xf[:20].transpose(0, 2, 3, 1))
    return net, f, model, xf, np.ascontiguousarray(to_int8(counts).transpose(0, 2, 3, 1))


def test_folded_net_equals_torch(anchor):
    from tests.support.cnn_anchor.export import folded_logits
    from tests.support.cnn_anchor.model import float_logits

    net, f, _, xf, _ = anchor
    want = float_logits(net, xf)
    got = folded_logits(f, xf.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())
    assert want.std() > 0.05


def test_int8_anchor_is_bit_exact_with_tflite_micro(anchor):
    pytest.importorskip("tflite_micro.python.tflite_micro.runtime", reason="pip install --pre tflite-micro")
    from tests.support.cnn_baseline import reference_logits
    from tests.support.qkernel_cases import run_tflm_each

    _, _, model, _, xq = anchor
    ref = reference_logits(model, xq)
    np.testing.assert_array_equal(run_tflm_each(model, xq), ref)
    assert ref.std() > 5


def test_int8_anchor_in_litert_near_reference_and_float(anchor):
    pytest.importorskip("ai_edge_litert", reason="pip install ai-edge-litert==2.3.0")
    from pysg.converters.tflite_graph import read_tflite
    from tests.support.cnn_anchor.export import folded_logits
    from tests.support.cnn_baseline import litert_interpreter, litert_logits, reference_logits

    _, f, model, xf, xq = anchor
    ref = reference_logits(model, xq).astype(np.int64)
    got = litert_logits(litert_interpreter(model, threads=1), xq).astype(np.int64)
    assert np.abs(got - ref).max() <= 2 and np.mean(got != ref) < 0.3
    out = read_tflite(model).tensors[-1]
    scale, zp = float(out.quantization.scale[0]), int(out.quantization.zero_point[0])
    real = folded_logits(f, xf.transpose(0, 2, 3, 1))
    err = np.abs((ref - zp) * scale - real).max() / scale
    assert err <= 3.0, f"int8 logits {err:.2f} output LSB from the float ones"


def test_graph_macs_closed_form(anchor):
    from tests.support.cnn_anchor.export import graph_macs

    # conv 32x32x8 x 9 x 16 + 16x16x16 x 9 x 8 + 8x8x16 x 9 x 16 + dense 4x4x16 -> 11
    assert graph_macs(anchor[2]) == {"macs": 32 * 32 * 8 * 9 * 16 + 16 * 16 * 16 * 9 * 8 + 8 * 8 * 16 * 9 * 16
                                     + 256 * 11,
                                     "pool_adds": (16 * 16 * 8 + 8 * 8 * 16 + 4 * 4 * 16) * 4}


def test_stream_windows_end_every_hop_inside_the_gesture():
    from bench.cnn_anchor import stream_windows

    owner, start, end = stream_windows(np.array([2_450_000, 90_000, 500_000]), hop_ms=500, bin_ms=250)
    # gesture 0: ends 0.5 .. 2.0 s; the 2 s window is clipped at t0 until it fits; gesture 1: none
    np.testing.assert_array_equal(owner, [0, 0, 0, 0, 2])
    np.testing.assert_array_equal(end, [500_000, 1_000_000, 1_500_000, 2_000_000, 500_000])
    np.testing.assert_array_equal(start, [0, 0, 0, 0, 0])
    _, start, end = stream_windows(np.array([3_000_000]), hop_ms=1000, bin_ms=250)
    np.testing.assert_array_equal(start, [0, 0, 1_000_000])


def test_bench_rejects_a_missing_dataset(capsys):
    from bench.cnn_anchor import main

    assert main(["--data", "hard=/nonexistent/g_hard"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hard=/nonexistent/g_hard" in err[0] and "NAME=DIR" in err[0]
