# SPDX-License-Identifier: MIT
"""The version 2 arena (docs/FORMAT.md 7.2 and 9): the bounded event ring and the
straight scatter. The converted baseline CNN fits 64 KiB; with a ring too small for its
input the C runtime and pysg.qnet.QnetRef lose the same events, count them as dropped,
and still give TFLite Micro's output for the tensor of the events kept (rebuilt here
from the documented rule); files written before the ring are refused with a clear
message by both loaders."""
from __future__ import annotations

import numpy as np
import pytest

tflm = pytest.importorskip("tflite_micro.python.tflite_micro.runtime",
                           reason="tflite-micro (pip install --pre tflite-micro) is the reference")
pytest.importorskip("tflite", reason="the tflite package reads and writes the models")

from pysg.converters.tflite_sgm import tflite_to_sgm  # noqa: E402
from pysg.qnet import QnetRef  # noqa: E402
from pysg.runtime import Runtime, SgModelError  # noqa: E402
from pysg.sgm import SgmFormatError, encode_qmodel, load_sgm, resign  # noqa: E402
from pysg.sgm.qnet import ARENA_BUDGET, ring_entries_for  # noqa: E402
from tests.support.qnet_models import built_cnn, random_network, window_tensor  # noqa: E402

c4 = lambda v: -(-v // 4) * 4  # noqa: E731


def _layer_bytes(ly) -> int:
    """acc, q, touched flags, touched runs (FORMAT.md 9), the run by hand per kind."""
    run = {"conv": ly.out_shape[2] // (ly.in_shape[2] // max(ly.filter_c, 1)) if ly.filter_c else 0,
           "depthwise": ly.depth_multiplier, "average_pool": 1,
           "fully_connected": ly.out_shape[2]}[ly.kind_name]
    return 4 * ly.n_out + 2 * c4(ly.n_out) + 4 * (ly.n_out // run)


def test_baseline_cnn_arena_fits_64_kib():
    """The gesture CNN (2 slices x 2 polarities of 32 x 32, 20 steps): 201,528 B of arena
    with the dense count ring and delta lists; now the formula by hand, <= 64 KiB."""
    q = load_sgm(tflite_to_sgm(built_cnn(), dt_ms=10, window_steps=20, sensor=(128, 128)))
    cells = 2 * 32 * 32
    assert q.cells == cells and q.slices == 2 and q.window == 20
    rest = c4(32 * 32 * 4) + c4(2 * cells) + 4 * 2 * cells + 8 * 21 + sum(_layer_bytes(ly) for ly in q.layers)
    e = q.input.ring_entries
    assert e == (ARENA_BUDGET - rest) // 4 and e < 21 * cells       # the budget, not lossless
    assert q.arena_bytes == rest + 4 * e <= 65536
    rt = Runtime(tflite_to_sgm(built_cnn(), dt_ms=10, window_steps=20, sensor=(128, 128)))
    assert rt.arena_used == rt.arena_bytes == q.arena_bytes


@pytest.mark.parametrize("seed", range(3))
def test_small_models_get_a_lossless_ring(seed):
    tfl = random_network(np.random.default_rng([seed, 5]))
    slices, pol = _channels(tfl)
    q = load_sgm(tflite_to_sgm(tfl, input="events", window_steps=3 * slices, slices=slices, polarities=pol,
                               count_map="count"))
    assert q.input.ring_entries == (3 * slices + 1) * q.cells == ring_entries_for(q.input, q.layers)
    assert q.arena_bytes <= ARENA_BUDGET
    t = load_sgm(tflite_to_sgm(tfl, input="tensor"))
    assert t.input.ring_entries == 0
    assert t.arena_bytes == c4(t.input.n_out) + sum(_layer_bytes(ly) for ly in t.layers)


def _channels(tfl: bytes) -> tuple[int, int]:
    """(slices, polarities) that make the random network's input channels."""
    c = int(load_sgm(tflite_to_sgm(tfl, input="tensor")).input_shape[2])
    p = 2 if c % 2 == 0 else 1
    return c // p, p


def _kept(counts: np.ndarray, free: int) -> tuple[np.ndarray, int]:
    """docs/FORMAT.md 7.2: a step's cells with a count, ascending, the first `free` kept."""
    flat = np.minimum(counts.reshape(-1).astype(np.int64), 65535)
    nz = np.flatnonzero(flat)
    kept = np.zeros_like(flat)
    kept[nz[:free]] = flat[nz[:free]]
    return kept.reshape(counts.shape), int(flat[nz[free:]].sum())


@pytest.mark.parametrize("seed", range(3))
def test_ring_overflow_is_counted_and_c_equals_ref_and_tflite(seed):
    rng = np.random.default_rng([seed, 9])
    tfl = random_network(rng)
    slices, pol = _channels(tfl)
    window = 2 * slices
    q = load_sgm(tflite_to_sgm(tfl, input="events", window_steps=window, slices=slices, polarities=pol,
                               count_map="count"))
    cap = q.cells + q.cells // 2          # 1.5 steps of cells for a window of 5 steps
    q.input.ring_entries = cap
    data = encode_qmodel(q)
    rt, ref = Runtime(data), QnetRef(data)
    it = tflm.Interpreter.from_bytes(tfl, arena_size=4 * len(tfl) + (1 << 20))
    lut = q.input.weights.astype(np.int64)
    kept_hist, held, lost_total, n_in = [], [], 0, 0
    for t in range(14):
        dens = float(rng.choice([0.05, 0.3, 0.9]))
        c = (rng.integers(1, 4, rt.input_shape) * (rng.random(rt.input_shape) < dens)).astype(np.uint16)
        free = cap - sum(held[-window:])                   # steps t - W .. t - 1 still held
        kept, lost = _kept(c, free)
        kept_hist.append(kept)
        held.append(int(np.count_nonzero(kept)))
        lost_total += lost
        n_in += int(c.sum())
        got, want_ref = rt.step(c), ref.step_counts(c)
        it.set_input(window_tensor(kept_hist, slices, window, lut)[None], 0)
        it.invoke()
        want = np.array(it.get_output(0)).reshape(-1).astype(np.int32)
        np.testing.assert_array_equal(got, want, err_msg=f"step {t}: C vs TFLite Micro on the kept events")
        np.testing.assert_array_equal(got, want_ref, err_msg=f"step {t}: C vs QnetRef")
        assert ref.last_lost == lost
    assert lost_total > 0, "the ring never overflowed: the test tested nothing"
    assert ref.ring_lost == lost_total
    st = rt.stats
    assert st["events_dropped"] == lost_total and st["events_in"] == n_in - lost_total
    assert st["synops"] >= 0 and int(st["spikes"][0]) > 0


def test_feed_and_frames_lose_the_same_events():
    """sg_feed's events and sg_step's frames of the same counts fill the ring the same way."""
    rng = np.random.default_rng(4)
    tfl = random_network(rng)
    slices, pol = _channels(tfl)
    q = load_sgm(tflite_to_sgm(tfl, input="events", window_steps=2 * slices, slices=slices, polarities=pol,
                               count_map="count"))
    q.input.ring_entries = q.cells
    data = encode_qmodel(q)
    h, w = q.input_shape[:2]
    n, steps, dt = 4000, 6, q.dt_us
    ev = np.zeros(n, dtype=[("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    ev["t"] = np.sort(rng.integers(0, steps * dt, n))
    ev["x"], ev["y"], ev["p"] = rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n)
    fed = Runtime(data)
    a = fed.run_events(ev, t0_us=0, n_steps=steps)
    counts = np.zeros((steps, pol, h, w), np.uint16)
    np.add.at(counts, (ev["t"] // dt, ev["p"] if pol == 2 else 0, ev["y"], ev["x"]), 1)
    stepped = Runtime(data)
    b = stepped.run_frames(counts)
    np.testing.assert_array_equal(a, b)
    assert fed.stats["events_dropped"] == stepped.stats["events_dropped"] > 0
    assert fed.stats["events_in"] + fed.stats["events_dropped"] == n


def test_files_from_before_the_ring_are_refused_by_both_loaders():
    tfl = random_network(np.random.default_rng(3))
    slices, pol = _channels(tfl)
    data = bytearray(tflite_to_sgm(tfl, input="events", window_steps=4 * slices, slices=slices, polarities=pol))
    q = load_sgm(bytes(data))
    assert q.input.ring_entries > 0
    lo = int.from_bytes(data[52:56], "little")  # header layers_offset (FORMAT.md 1.1)
    at = lo + 44                                   # entry 0's reserved word: the ring capacity
    assert int.from_bytes(data[at:at + 4], "little") == q.input.ring_entries
    data[at:at + 4] = (0).to_bytes(4, "little")
    old = resign(bytes(data))
    with pytest.raises(SgmFormatError, match="before the event ring.*convert the .tflite again") as e:
        load_sgm(old)
    assert e.value.offset == at and "layers[0].reserved" in str(e.value)
    with pytest.raises(SgModelError) as c:
        Runtime(old)
    assert c.value.offset == at
    # larger than lossless: refused too, at the same byte
    data[at:at + 4] = ((4 * slices + 1) * q.cells + 1).to_bytes(4, "little")
    with pytest.raises(SgmFormatError, match="lossless"):
        load_sgm(resign(bytes(data)))
    with pytest.raises(SgModelError) as c:
        Runtime(resign(bytes(data)))
    assert c.value.offset == at


def test_ref_and_c_engines_report_the_same_lost_events(tmp_path):
    """Through the one engine interface (pysg.jobs.open_engine): the Python reference and
    the C runtime lose and report the same events (stats events_in / events_dropped)."""
    from pysg import jobs

    rng = np.random.default_rng(8)
    tfl = random_network(rng)
    slices, pol = _channels(tfl)
    q = load_sgm(tflite_to_sgm(tfl, input="events", window_steps=2 * slices, slices=slices, polarities=pol,
                               count_map="count"))
    q.input.ring_entries = q.cells
    path = tmp_path / "ring.sgm"
    path.write_bytes(encode_qmodel(q))
    (sw, sh), n, steps = q.sensor_size, 3000, 8
    ev = np.zeros(n, dtype=[("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    ev["t"] = np.sort(rng.integers(0, steps * q.dt_us, n))
    ev["x"], ev["y"], ev["p"] = rng.integers(0, sw, n), rng.integers(0, sh, n), rng.integers(0, 2, n)
    out = {}
    for name in ("ref", "c"):
        eng = jobs.open_engine(str(path), name)
        logits = eng.run_events(ev, t0_us=0, n_steps=steps)
        out[name] = (logits, eng.stats["events_in"], eng.stats["events_dropped"])
    np.testing.assert_array_equal(out["ref"][0], out["c"][0])
    assert out["ref"][1:] == out["c"][1:]
    assert out["c"][2] > 0 and out["c"][1] + out["c"][2] == n
