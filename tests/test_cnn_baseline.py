# SPDX-License-Identifier: MIT
"""The TFLite baseline's pieces (tests/support/cnn_baseline) against independent truth.

* frames: event_frames against pysg.datasets.binning.bin_events summed window by window;
* the numpy CNN's gradients against central finite differences (float64);
* the int8 .tflite written by quant.py: TFLite Micro (reference kernels) gives exactly the
  logits of pysg.qkernels' numpy twin, and LiteRT's default (XNNPACK) path is within
  2 LSB of them. Measured: XNNPACK differs by at most 1 LSB on random models (10-17 % of
  the logits) and at most 2 LSB on the trained gesture CNN (8.7 % of 35,838 x 11 logits).
"""
from __future__ import annotations

import numpy as np
import pytest

from pysg.datasets.binning import bin_events
from tests.support.cnn_baseline.cnn import CnnParams, _grads, init_params, macs_per_frame
from tests.support.cnn_baseline.frames import count_lut, event_frames, frame_count


def _events(rng: np.random.Generator, n: int, duration_us: int) -> np.ndarray:
    ev = np.zeros(n, dtype=[("x", "<u2"), ("y", "<u2"), ("t", "<i8"), ("p", "u1")])
    ev["x"] = rng.integers(0, 128, n)
    ev["y"] = rng.integers(0, 128, n)
    ev["t"] = np.sort(rng.integers(0, duration_us, n))
    ev["p"] = rng.integers(0, 2, n)
    # a hot pixel so that some counts pass the log code's 255 saturation
    ev["x"][: n // 4], ev["y"][: n // 4] = 5, 9
    return ev


@pytest.mark.parametrize("window, hop, slices", [(200, 10, 2), (200, 200, 2), (400, 100, 4), (200, 30, 1)])
def test_event_frames_match_bin_events(window, hop, slices):
    rng = np.random.default_rng(window + hop + slices)
    duration = 1_234_567
    ev = _events(rng, 40_000, duration)
    got = event_frames(ev, duration, window_ms=window, hop_ms=hop, slices=slices)
    bins = bin_events(ev, duration_us=duration, dt_us=10_000, downsample=4).astype(np.int64)
    wb, hb, lut = window // 10, hop // 10, count_lut()
    sb = wb // slices
    want = []
    for end in range(wb, bins.shape[0] + 1, hb):
        parts = [bins[end - wb + k * sb:end - wb + (k + 1) * sb].sum(0) for k in range(slices)]
        want.append(lut[np.stack(parts).reshape(2 * slices, 32, 32)].transpose(1, 2, 0))
    assert got.shape == (frame_count(duration, window, hop), 32, 32, 2 * slices) == np.shape(want)
    np.testing.assert_array_equal(got, np.array(want))
    assert got.max() == 127 and got.min() == -128


def test_count_lut_is_log2_code():
    lut = count_lut().astype(np.int64)
    assert lut[0] == -128 and lut[1] == -96 and lut[3] == -64 and lut[255] == 127
    c = np.arange(1, 200)
    np.testing.assert_allclose((lut[c] + 128) / 32, np.log2(1 + c), atol=1 / 64 + 1e-12)


def test_event_frames_rejects_bad_arguments():
    ev = _events(np.random.default_rng(0), 10, 100_000)
    with pytest.raises(ValueError, match="hop_ms"):
        event_frames(ev, 100_000, window_ms=50, hop_ms=15)
    with pytest.raises(ValueError, match="slices"):
        event_frames(ev, 100_000, window_ms=50, hop_ms=10, slices=2)
    with pytest.raises(ValueError, match="outside"):
        event_frames(ev, 50_000, window_ms=50, hop_ms=10)


def test_cnn_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    p = init_params((3, 4, 5), 11, rng, in_channels=4)
    p = CnnParams([w.astype(np.float64) for w in p.w], [rng.normal(0, 0.1, b.shape) for b in p.b],
                  p.wf.astype(np.float64), rng.normal(0, 0.1, 11))
    x, y = rng.normal(size=(3, 32, 32, 4)), np.array([1, 5, 10])
    _, grads = _grads(p, x, y)
    for a, g in zip(p.arrays(), grads):
        for _ in range(3):
            i = np.unravel_index(rng.integers(a.size), a.shape)
            old, eps = a[i], 1e-6
            a[i] = old + eps
            up, _ = _grads(p, x, y)
            a[i] = old - eps
            down, _ = _grads(p, x, y)
            a[i] = old
            assert abs((up - down) / (2 * eps) - g[i]) <= 1e-6 + 1e-5 * abs(g[i])


def test_macs_per_frame():
    # 16x16x4 outputs x 9 taps x 4 inputs + 8x8x8 x 9 x 4 + 4x4x16 x 9 x 8 + 256 x 11
    assert macs_per_frame((4, 8, 16), 11, 4) == 36864 + 18432 + 18432 + 2816


@pytest.fixture(scope="module")
def int8_model():
    pytest.importorskip("tflite", reason="the tflite package writes the model")
    from tests.support.cnn_baseline import dequantize_frames
    from tests.support.cnn_baseline.quant import quantize_to_tflite

    rng = np.random.default_rng(11)
    p = init_params((4, 8, 16), 11, rng, in_channels=4)
    for b in p.b:
        b[:] = rng.normal(0, 0.1, b.shape)
    p.bf[:] = rng.normal(0, 0.1, 11)
    counts = rng.poisson(rng.uniform(0, 3, (48, 1, 1, 1)), (48, 32, 32, 4))
    frames = (np.minimum(255, np.round(32 * np.log2(1 + counts))) - 128).astype(np.int8)
    return quantize_to_tflite(p, dequantize_frames(frames[:24])), frames


def test_int8_tflite_is_bit_exact_with_tflite_micro(int8_model):
    pytest.importorskip("tflite_micro.python.tflite_micro.runtime", reason="pip install --pre tflite-micro")
    from tests.support.cnn_baseline import reference_logits
    from tests.support.qkernel_cases import run_tflm_each

    model, frames = int8_model
    ref = reference_logits(model, frames)
    np.testing.assert_array_equal(run_tflm_each(model, frames), ref)
    assert ref.std() > 5  # the logits are spread, not stuck at a clamp


def test_int8_tflite_in_litert_xnnpack_within_2_lsb(int8_model):
    pytest.importorskip("ai_edge_litert", reason="pip install ai-edge-litert==2.3.0")
    from tests.support.cnn_baseline import litert_interpreter, litert_logits, reference_logits

    model, frames = int8_model
    ref = reference_logits(model, frames).astype(np.int64)
    got = litert_logits(litert_interpreter(model, threads=1), frames).astype(np.int64)
    assert np.abs(got - ref).max() <= 2
    assert np.mean(got != ref) < 0.3
