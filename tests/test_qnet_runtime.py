# SPDX-License-Identifier: MIT
"""Version 2 `.sgm` files (imported int8 networks) in the C runtime (runtime_c/src/engines/qnet/,
through pysg.runtime / cffi) against TFLite Micro and pysg.qnet.QnetRef.

(a) random one-operator models (pysg.converters.tflite_writer, batch 1): conv with groups,
    stride, dilation and SAME / VALID padding, per-channel and per-tensor; depthwise with a
    depth multiplier; fully connected per-tensor and per-channel; average pool. Converted
    by pysg.converters.tflite_sgm with tensor input and with event-count input; every step's
    logits equal TFLite Micro's output for that step's input tensor (rebuilt here from
    the count history for event input, straight from docs/FORMAT.md 7.2) and QnetRef's,
    and the runtime's counters (synaptic ops, deltas per entry) equal QnetRef's.
(b) random small networks (conv -> depthwise -> pool -> reshape -> FC, tests/support/qnet_models.py),
    both input kinds; events fed through sg_feed (run_events) give the logits of their
    counts binned here and stepped through sg_step.
(c) loader: every single-byte corruption (CRCs re-signed, so the field checks see it) and
    every truncation of a v2 file: the C loader and pysg.sgm.load_sgm accept and reject the
    same files, at the same byte offset; nothing crashes.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

tflm = pytest.importorskip("tflite_micro.python.tflite_micro.runtime",
                           reason="tflite-micro (pip install --pre tflite-micro) is the reference")
pytest.importorskip("tflite", reason="the tflite package reads and writes the models")

from pysg.converters.tflite_graph import read_tflite  # noqa: E402
from pysg.converters.tflite_sgm import tflite_to_sgm  # noqa: E402
from pysg.converters.tflite_writer import OpSpec, TensorSpec, write_tflite  # noqa: E402
from pysg.qnet import QnetRef  # noqa: E402
from pysg.runtime import Runtime, SgModelError, SgRuntimeError, lib  # noqa: E402
from pysg.sgm import SgmFormatError, load_sgm, resign  # noqa: E402
from tests.support.qnet_models import int8_act, out_scale, out_size, random_network, window_tensor  # noqa: E402

if not hasattr(lib, "sg_step_tensor"):
    pytest.skip("pysg._sg_runtime was built without version 2 support", allow_module_level=True)


class Tflm:
    """TFLite Micro on one model, one frame per call; returns the flat output as int32."""

    def __init__(self, model: bytes) -> None:
        self.it = tflm.Interpreter.from_bytes(model, arena_size=4 * len(model) + (1 << 20))
        g = read_tflite(model)
        self.shape = tuple(g.tensors[g.inputs[0]].shape)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.it.set_input(np.ascontiguousarray(x).reshape(self.shape), 0)
        self.it.invoke()
        return np.array(self.it.get_output(0)).reshape(-1).astype(np.int32)


# ---------------------------------------------------------------- one-operator models

def conv_model(rng, *, depthwise=False, padding="SAME", stride=1, dilation=1, act="NONE", per_channel=True,
               mult=1, groups=1, cin=None) -> bytes:
    kh, kw = (int(v) for v in rng.integers(1, 4, 2))
    h, w = (max(int(v), (k - 1) * dilation + 1) for v, k in zip(rng.integers(3, 7, 2), (kh, kw)))
    if depthwise:
        cin = cin or int(rng.integers(1, 4))
        cout = cin * mult
        filt = rng.integers(-127, 128, (1, kh, kw, cout), dtype=np.int8)
        qdim, fan_in = 3, kh * kw
    else:
        cin = cin or groups * int(rng.integers(1, 3))
        cout = groups * int(rng.integers(1, 4))
        filt = rng.integers(-127, 128, (cout, kh, kw, cin // groups), dtype=np.int8)
        qdim, fan_in = 0, kh * kw * cin // groups
    oh, ow = out_size(padding, h, kh, stride, dilation), out_size(padding, w, kw, stride, dilation)
    s_in = float(rng.uniform(0.005, 0.1))
    s_w = rng.uniform(1e-3, 3e-2, cout if per_channel else 1).astype(np.float32)
    zp_in, zp_out = (int(v) for v in rng.integers(-128, 128, 2))
    b = int(2700 * math.sqrt(fan_in))
    tensors = [int8_act("x", (1, h, w, cin), s_in, zp_in),
               TensorSpec("w", filt.shape, "int8", s_w, np.zeros(s_w.size, np.int64), qdim, filt),
               TensorSpec("b", (cout,), "int32", (np.float32(s_in) * s_w).astype(np.float32),
                          np.zeros(s_w.size, np.int64), 0, rng.integers(-b, b + 1, cout).astype(np.int32)),
               int8_act("y", (1, oh, ow, cout), out_scale(rng, s_in, s_w, fan_in), zp_out)]
    opts = dict(padding=padding, stride_h=stride, stride_w=stride, dilation_h=dilation, dilation_w=dilation,
                activation=act)
    if depthwise:
        opts["depth_multiplier"] = mult
    op = OpSpec("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [0, 1, 2], [3], opts)
    return write_tflite(tensors, [op], [0], [3])


def fc_model(rng, *, per_channel=True, act="NONE", n_in=None) -> bytes:
    n_in, n_out = n_in or int(rng.integers(2, 40)), int(rng.integers(1, 12))
    wts = rng.integers(-127, 128, (n_out, n_in), dtype=np.int8)
    s_in = float(rng.uniform(0.005, 0.1))
    s_w = rng.uniform(1e-3, 3e-2, n_out if per_channel else 1).astype(np.float32)
    zp_in, zp_out = (int(v) for v in rng.integers(-128, 128, 2))
    b = int(2700 * math.sqrt(n_in))
    tensors = [int8_act("x", (1, n_in), s_in, zp_in),
               TensorSpec("w", wts.shape, "int8", s_w, np.zeros(s_w.size, np.int64), 0, wts),
               TensorSpec("b", (n_out,), "int32", (np.float32(s_in) * s_w).astype(np.float32),
                          np.zeros(s_w.size, np.int64), 0, rng.integers(-b, b + 1, n_out).astype(np.int32)),
               int8_act("y", (1, n_out), out_scale(rng, s_in, s_w, n_in), zp_out)]
    return write_tflite(tensors, [OpSpec("FULLY_CONNECTED", [0, 1, 2], [3], dict(activation=act))], [0], [3])


def pool_model(rng, *, padding="SAME", act="NONE", cin=None) -> bytes:
    c = cin or int(rng.integers(1, 4))
    h, w = (int(v) for v in rng.integers(3, 7, 2))
    fh, fw = int(rng.integers(1, min(h, 3) + 1)), int(rng.integers(1, min(w, 3) + 1))
    sh, sw = (int(v) for v in rng.integers(1, 3, 2))
    oh, ow = out_size(padding, h, fh, sh, 1), out_size(padding, w, fw, sw, 1)
    s, zp = float(rng.uniform(0.005, 0.1)), int(rng.integers(-128, 128))
    tensors = [int8_act("x", (1, h, w, c), s, zp), int8_act("y", (1, oh, ow, c), s, zp)]
    op = OpSpec("AVERAGE_POOL_2D", [0], [1], dict(padding=padding, stride_h=sh, stride_w=sw, filter_h=fh,
                                                   filter_w=fw, activation=act))
    return write_tflite(tensors, [op], [0], [1])


def small(build):
    """The builder redrawn (same generator) until the output fits the runtime's logits
    (SG_MAX_CLASSES: a version 2 file's logits are its whole output tensor)."""
    def make(rng, **kw):
        for _ in range(100):
            tfl = build(rng, **kw)
            g = read_tflite(tfl)
            if int(np.prod(g.tensors[g.outputs[0]].shape)) <= lib.SG_MAX_CLASSES:
                return tfl
        raise AssertionError("no small enough model drawn")
    return make


ONE_OP = {
    "conv_valid": small(lambda r, **k: conv_model(r, padding="VALID", **k)),
    "conv_same_stride2_relu": small(lambda r, **k: conv_model(r, stride=2, act="RELU", **k)),
    "conv_same_dil2_relu6_per_tensor": small(lambda r, **k: conv_model(r, dilation=2, act="RELU6",
                                                                       per_channel=False, **k)),
    "conv_valid_stride3_dil2": small(lambda r, **k: conv_model(r, padding="VALID", stride=3, dilation=2, **k)),
    "conv_groups2": small(lambda r, **k: conv_model(r, groups=2, act="RELU", **k)),
    "dw_m1_valid": small(lambda r, **k: conv_model(r, depthwise=True, padding="VALID", **k)),
    "dw_m2_stride2_relu6": small(lambda r, **k: conv_model(r, depthwise=True, mult=2, stride=2, act="RELU6", **k)),
    "dw_m3_dil2": small(lambda r, **k: conv_model(r, depthwise=True, mult=3, dilation=2, **k)),
    "fc_per_channel": small(lambda r, **k: fc_model(r, per_channel=True, **k)),
    "fc_per_tensor_relu": small(lambda r, **k: fc_model(r, per_channel=False, act="RELU", **k)),
    "pool_same": small(lambda r, **k: pool_model(r, padding="SAME", **k)),
    "pool_valid_relu": small(lambda r, **k: pool_model(r, padding="VALID", act="RELU", **k)),
}


# ---------------------------------------------------------------- drivers

def sparse_tensors(rng, shape, zp: int, n: int) -> list[np.ndarray]:
    """Frames changing in a few elements; frame 3 repeats frame 2, frame 5 is all new."""
    x = np.clip(np.round(rng.normal(zp, 60, shape)), -128, 127).astype(np.int8)
    out = [x.copy()]
    for k in range(1, n):
        frac = 0.0 if k == 3 else 1.0 if k == 5 else float(rng.choice([0.02, 0.1, 0.3]))
        flat = x.reshape(-1)
        idx = rng.choice(flat.size, int(round(frac * flat.size)), replace=False)
        flat[idx] = rng.integers(-128, 128, idx.size)
        out.append(x.copy())
    return out


def check_counters(rt: Runtime, ref: QnetRef, synops: int, deltas: np.ndarray, where: str) -> None:
    st = rt.stats
    assert st["synops"] == synops, f"{where}: synops {st['synops']} != QnetRef {synops}"
    assert st["spikes"] == deltas.tolist(), f"{where}: deltas per entry {st['spikes']} != QnetRef {deltas}"


def run_tensor_model(tfl: bytes, rng, n_steps: int = 8) -> None:
    data = tflite_to_sgm(tfl, input="tensor")
    rt, ref, truth = Runtime(data), QnetRef(data), Tflm(tfl)
    assert rt.tensor_input and rt.format_version == 2
    zp = int(load_sgm(data).input.output_offset)
    synops, deltas = 0, np.zeros(rt.n_stages, np.int64)
    seen = set()
    for t, x in enumerate(sparse_tensors(rng, rt.tensor_shape, zp, n_steps)):
        got, want_ref, want = rt.step_tensor(x), ref.step_tensor(x), truth(x[None])
        np.testing.assert_array_equal(got, want, err_msg=f"step {t}: C vs TFLite Micro")
        np.testing.assert_array_equal(got, want_ref, err_msg=f"step {t}: C vs QnetRef")
        synops += ref.net.last.synops
        deltas += [ref.net.last.input_events] + [c.out_events for c in ref.net.last.layers]
        seen.add(want.tobytes())
        if t == 3:  # a repeated tensor: no delta, no work
            assert rt.stats["synops"] == synops and ref.net.last.synops == 0
    check_counters(rt, ref, synops, deltas, "tensor")
    assert len(seen) >= 2, "the output never changed: the comparison tested a constant"


def run_event_model(tfl: bytes, rng, *, slices: int, window: int, polarities: int, n_steps: int = 10) -> None:
    data = tflite_to_sgm(tfl, input="events", window_steps=window, slices=slices, polarities=polarities,
                         count_map="count")
    m = load_sgm(data)
    rt, ref, truth = Runtime(data), QnetRef(data), Tflm(tfl)
    assert rt.input_shape == (polarities, m.input_shape[0], m.input_shape[1]) and rt.window == window
    lut = m.input.weights.astype(np.int64)
    history = []
    synops, deltas = 0, np.zeros(rt.n_stages, np.int64)
    seen = set()
    for t in range(n_steps):
        dens = 0.0 if t == 4 else float(rng.choice([0.1, 0.4]))
        c = (rng.integers(1, 5, rt.input_shape) * (rng.random(rt.input_shape) < dens)).astype(np.uint16)
        if t == 6:
            c[-1, -1, -1] = 65535
        history.append(c.astype(np.int64))
        got, want_ref = rt.step(c), ref.step_counts(c)
        want = truth(window_tensor(history, slices, window, lut)[None])
        np.testing.assert_array_equal(got, want, err_msg=f"step {t}: C vs TFLite Micro")
        np.testing.assert_array_equal(got, want_ref, err_msg=f"step {t}: C vs QnetRef")
        synops += ref.net.last.synops
        deltas += [ref.net.last.input_events] + [c_.out_events for c_ in ref.net.last.layers]
        seen.add(want.tobytes())
    check_counters(rt, ref, synops, deltas, "events")
    assert rt.stats["events_in"] == int(sum(h.sum() for h in history))
    assert len(seen) >= 2, "the output never changed: the comparison tested a constant"
    # scores from the first whole window: the prediction is the argmax of those logits
    rt2 = Runtime(data)
    logits = np.stack([rt2.step(h.astype(np.uint16)) for h in history]).astype(np.int64)
    np.testing.assert_array_equal(rt2.scores, logits[window - 1:].sum(axis=0))
    assert rt2.prediction == int(np.argmax(logits[window - 1:].sum(axis=0)))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("case", sorted(ONE_OP))
def test_one_op_tensor_input_bit_exact(case, seed):
    run_tensor_model(ONE_OP[case](np.random.default_rng([seed, 71])), np.random.default_rng([seed, 72]))


EVENT_INPUTS = {  # (slices, window, polarities): input channels = slices x polarities
    "s1_w1_p1": (1, 1, 1), "s1_w3_p2": (1, 3, 2), "s2_w4_p1": (2, 4, 1), "s2_w6_p2": (2, 6, 2),
    "s3_w3_p2": (3, 3, 2), "s4_w8_p1": (4, 8, 1),
}


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("case,inp", [(c, i) for c in ("conv_groups2", "dw_m2_stride2_relu6", "pool_same",
                                                        "conv_valid_stride3_dil2") for i in sorted(EVENT_INPUTS)
                                      # two groups need an even channel count
                                      if not (c == "conv_groups2" and np.prod(EVENT_INPUTS[i][::2]) % 2)])
def test_one_op_event_input_bit_exact(case, inp, seed):
    s, w, p = EVENT_INPUTS[inp]
    cin = s * p
    tfl = ONE_OP[case](np.random.default_rng([seed, 81]), cin=cin)
    run_event_model(tfl, np.random.default_rng([seed, 82]), slices=s, window=w, polarities=p)


def test_fc_event_input_bit_exact():
    """A fully connected layer straight on the event tensor ((1, N) input: one row)."""
    rng = np.random.default_rng(5)
    tfl = fc_model(rng, n_in=4)
    run_event_model(tfl, rng, slices=2, window=2, polarities=2)


@pytest.mark.parametrize("seed", range(6))
def test_random_network_both_inputs_bit_exact(seed):
    tfl = random_network(np.random.default_rng([seed, 1107]))
    run_tensor_model(tfl, np.random.default_rng([seed, 1]), n_steps=10)
    c = int(Runtime(tflite_to_sgm(tfl, input="tensor")).tensor_shape[2])
    p = 2 if c % 2 == 0 else 1
    run_event_model(tfl, np.random.default_rng([seed, 2]), slices=c // p, window=2 * (c // p), polarities=p,
                    n_steps=12)


@pytest.mark.parametrize("seed", range(4))
def test_events_through_feed_equal_binned_counts(seed):
    """run_events (sg_feed + sg_advance_to) == the same events binned here, through sg_step."""
    rng = np.random.default_rng([seed, 9])
    tfl = random_network(rng)
    c = int(Runtime(tflite_to_sgm(tfl, input="tensor")).tensor_shape[2])
    p = 2 if c % 2 == 0 else 1
    data = tflite_to_sgm(tfl, input="events", window_steps=2 * (c // p), polarities=p)
    rt = Runtime(data)
    m = load_sgm(data)
    (sw, sh), ds, dt = m.sensor_size, m.downsample, m.dt_us
    n, t_steps, t0 = 3000, 14, 5_000
    ev = np.zeros(n + 3, dtype=[("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    ev["t"][:n] = np.sort(rng.integers(t0, t0 + t_steps * dt, n))
    ev["x"][:n], ev["y"][:n], ev["p"][:n] = rng.integers(0, sw, n), rng.integers(0, sh, n), rng.integers(0, 2, n)
    ev[n:] = [(t0 + dt, sw, 0, 0), (t0 + dt, 0, sh, 1), (t0 + 2 * dt, 0, 0, 2)]  # outside the sensor
    ev = ev[np.argsort(ev["t"], kind="stable")]
    fed = rt.run_events(ev, t0_us=t0, n_steps=t_steps)
    assert rt.stats["events_in"] == n and rt.stats["events_dropped"] == 3
    keep = (ev["x"] < sw) & (ev["y"] < sh) & (ev["p"] <= 1)
    k = ev[keep]
    counts = np.zeros((t_steps, p, sh // ds, sw // ds), np.uint16)
    np.add.at(counts, ((k["t"] - t0) // dt, k["p"] if p == 2 else 0, k["y"] // ds, k["x"] // ds), 1)
    stepped = rt.run_frames(counts)
    ref = QnetRef(data)
    np.testing.assert_array_equal(fed, stepped)
    np.testing.assert_array_equal(stepped, np.stack([ref.step_counts(f) for f in counts]))
    assert len({r.tobytes() for r in stepped}) >= 3


# ---------------------------------------------------------------- API

def test_runtime_api_on_v2_files():
    rng = np.random.default_rng(3)
    tfl = random_network(rng)
    tens, evs = Runtime(tflite_to_sgm(tfl, input="tensor")), Runtime(tflite_to_sgm(tfl, input="events",
                                                                                   window_steps=4))
    assert tens.labels == [str(i) for i in range(tens.n_classes)] and tens.prediction == -1
    assert "version 2" in repr(tens) and tens.arena_used == tens.arena_bytes == load_sgm(
        tflite_to_sgm(tfl, input="tensor")).arena_bytes
    with pytest.raises(ValueError, match="step_tensor"):
        tens.step(None)
    with pytest.raises(ValueError, match="event counts"):
        evs.step_tensor(np.zeros(evs.tensor_shape, np.int8))
    with pytest.raises(ValueError, match="int8"):
        tens.step_tensor(np.zeros(tens.tensor_shape, np.int16))
    with pytest.raises(ValueError, match="shape"):
        tens.step_tensor(np.zeros((1, 2, 3), np.int8))
    with pytest.raises(SgRuntimeError) as e:  # the C side refuses too (SG_ERR_UNSUPPORTED)
        tens.set_origin(0)
        tens.advance_to(10 ** 6)
    assert e.value.name == "SG_ERR_UNSUPPORTED"
    x = np.ones(tens.tensor_shape, np.int8)
    first = tens.step_tensor(x)
    tens.reset()
    np.testing.assert_array_equal(tens.step_tensor(x), first)  # reset: the zero-point state again


# ---------------------------------------------------------------- loader

def _c_load(data: bytes) -> tuple[bool, int | None]:
    try:
        Runtime(data)
    except SgModelError as e:
        return False, e.offset
    return True, None


def _py_load(data: bytes) -> tuple[bool, int | None]:
    try:
        load_sgm(data)
    except SgmFormatError as e:
        return False, e.offset
    return True, None


@pytest.mark.parametrize("mode", ["events", "tensor"])
def test_loader_every_byte_and_truncation_like_python(mode):
    rng = np.random.default_rng(17)
    tfl = random_network(rng)
    data = tflite_to_sgm(tfl, input=mode, **({"window_steps": 4} if mode == "events" else {}))
    assert _c_load(data) == (True, None)
    rejected = 0
    for i in range(len(data)):
        if i in range(16, 20) or i in range(60, 64):
            continue  # the CRCs themselves: re-signing would undo the change
        for v in (data[i] ^ 0xFF, data[i] ^ 0x01):
            b = bytearray(data)
            b[i] = v
            b = resign(b)
            c, py = _c_load(b), _py_load(b)
            assert c == py, f"byte {i} -> {v}: C {c} vs pysg.sgm {py}"
            rejected += not c[0]
        b = bytearray(data)
        b[i] ^= 0x10
        assert not _c_load(bytes(b))[0], f"byte {i} changed without re-signing was accepted"
    assert rejected > len(data) // 2
    for n in range(len(data)):
        assert _c_load(data[:n]) == _py_load(data[:n]) == (False, n if n < 64 else 12)


# ---------------------------------------------------------------- a real recording

def test_gesture_cnn_on_a_real_recording():
    """The bench's gesture CNN (tests/support/qnet_models.py builds it with seeded weights, quantised
    on real frames) converted with event input (2 slices x 2 polarities over 20 steps,
    128 x 128 sensor): one gesture of the bundled recording fed as raw events through
    sg_feed gives, at every step, TFLite Micro's output for the window tensor of the
    events binned here, and QnetRef's logits."""
    from tests.support.qnet_models import built_cnn
    from pysg.datasets.gesture import GestureDataset
    from pysg.recipes import BUNDLED_SAMPLES

    tfl = built_cnn()
    data = tflite_to_sgm(tfl, input="events", window_steps=20, slices=2, polarities=2, sensor=(128, 128))
    rt, ref, truth = Runtime(data), QnetRef(data), Tflm(tfl)
    m = load_sgm(data)
    s = GestureDataset(BUNDLED_SAMPLES, "test")[0]
    ev = s.events
    t_steps = -(-int(s.duration_us) // rt.dt_us)
    got = rt.run_events(ev, t0_us=0, n_steps=t_steps)
    assert rt.stats["events_in"] == len(ev) and rt.stats["events_dropped"] == 0
    counts = np.zeros((t_steps, *rt.input_shape), np.int64)
    np.add.at(counts, (ev["t"] // rt.dt_us, ev["p"], ev["y"] // m.downsample, ev["x"] // m.downsample), 1)
    history, lut = [], m.input.weights.astype(np.int64)
    for t in range(t_steps):
        history.append(counts[t])
        np.testing.assert_array_equal(got[t], ref.step_counts(counts[t].astype(np.uint16)), err_msg=f"step {t}")
        np.testing.assert_array_equal(got[t], truth(window_tensor(history, 2, 20, lut)[None]),
                                      err_msg=f"step {t}: C vs TFLite Micro")
    assert len({r.tobytes() for r in got}) > t_steps // 2
    assert 0 < rt.stats["synops"] < t_steps * Runtime(data).dense_macs_per_step()
