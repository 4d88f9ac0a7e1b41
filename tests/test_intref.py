# SPDX-License-Identifier: MIT
"""The integer reference: hand-computed arithmetic, decay to exactly zero, a derived
error bound against the float model, and agreement on random spiking networks."""
import math

import numpy as np
import pytest

from pysg.converters.sgm import export_network
from pysg.intref import (INT32_MAX, INT32_MIN, IntRef, decay_q15, rshift_round, run, sat32, scores, wrap32)
from pysg.model import Conv2d, Dense, Flatten, Network, NetworkConfig, SumPool2d
from pysg.sgm import KIND_DENSE, SgmModel, SgmStage, load_sgm
from pysg.train.trainer import SequenceData, calibrate


# ------------------------------------------------------------------ arithmetic


def test_decay_rounding_by_hand():
    # (a z + (32768 - a) t + 2^14) >> 15, round half up
    assert decay_q15(3, 16384, 0) == 2          # 1.5 -> 2
    assert decay_q15(-3, 16384, 0) == -1        # -1.5 -> -1 (half up)
    assert decay_q15(100, 16384, 250) == 175
    assert decay_q15(50, 16384, 250) == 150     # 150 exactly
    assert decay_q15(7, 0, 0) == 0              # alpha 0: jumps to the target
    assert decay_q15(5, 30000, 5) == 5          # at the target: stays
    # progress rule: rounding would leave 1 (0.9 -> 1) and -1 (-0.9 -> -1): step to 0
    assert decay_q15(1, 29491, 0) == 0 and decay_q15(-1, 29491, 0) == 0
    assert decay_q15(10, 32767, 0) == 9 and decay_q15(-10, 32767, 0) == -9
    assert decay_q15(3, 32000, 7) == 4          # moves one unit towards the target
    # extremes stay within [z, t]: no overflow
    assert decay_q15(INT32_MAX, 32767, INT32_MIN) == INT32_MAX - 2**17   # moves 2^32 / 2^15
    assert decay_q15(INT32_MIN, 1, INT32_MAX) == INT32_MAX - 2**17
    assert decay_q15(INT32_MIN, 0, INT32_MAX) == INT32_MAX


def test_every_tap_decays_to_exactly_zero():
    """Columns: (alpha of every tap, initial states). Without the progress rule, 1 would
    stay 1 forever for alpha >= 1/2; with it, every tap reaches 0 and stays there."""
    cases = [(0, 2**31 - 1), (1, -(2**31)), (16384, 2**31 - 1), (19875, -(2**31)), (29650, 2**31 - 1),
             (32000, -(2**31)), (32767, 1000), (32767, -1), (30000, 1)]
    k = 4
    a = np.array([c[0] for c in cases], np.int64)
    z = np.array([[c[1] * s for c in cases] for s in (1, -1, 1, 1)], np.int64)
    steps = 0
    while z.any():
        for j in range(k - 1, 0, -1):
            z[j] = decay_q15(z[j], a, z[j - 1])
        z[0] = decay_q15(z[0], a, 0)
        steps += 1
        assert steps < 20_000
    for j in range(k - 1, 0, -1):  # zero is a fixed point
        z[j] = decay_q15(z[j], a, z[j - 1])
    assert not z.any()


def test_wrap_saturate_and_shift_by_hand():
    assert wrap32(2**31) == -(2**31) and wrap32(-(2**31) - 1) == 2**31 - 1 and wrap32(12) == 12
    assert sat32(2**40) == INT32_MAX and sat32(-(2**40)) == INT32_MIN and sat32(-5) == -5
    assert rshift_round(5, 1) == 3 and rshift_round(-5, 1) == -2 and rshift_round(7, 0) == 7
    assert rshift_round(-6, 2) == -1 and rshift_round(6, 2) == 2 and rshift_round(2**50 + 2**9, 10) == 2**40 + 1


def hand_model(bias1=-1) -> SgmModel:
    """1 input pixel -> 1 hidden neuron (w 100, theta 150) -> 1 output (w 7), K = 2, every alpha 1/2."""
    half = np.array([16384, 16384], np.uint16)
    s0 = SgmStage(kind=KIND_DENSE, is_output=False, in_shape=(1, 1, 1), pool=1, syn_shape=(1, 1, 1),
                  out_shape=(1, 1, 1), kernel=1, stride=1, padding=0, max_delay=0, x_frac_bits=0,
                  weights=np.array([[100]], np.int8), bias=np.array([0], np.int32),
                  vweights=np.array([[1, 0]], np.int16), vshift=np.array([0], np.uint8), alpha=half,
                  theta=np.array([150], np.int32))
    s1 = SgmStage(kind=KIND_DENSE, is_output=True, in_shape=(1, 1, 1), pool=1, syn_shape=(1, 1, 1),
                  out_shape=(1, 1, 1), kernel=1, stride=1, padding=0, max_delay=0, x_frac_bits=0,
                  weights=np.array([[7]], np.int8), bias=np.array([bias1], np.int32),
                  vweights=np.array([[2, 1]], np.int16), vshift=np.array([1], np.uint8), alpha=half)
    return SgmModel(1, 1000, 2, (1, 1, 1), (1, 1), 1, ["only"], [s0, s1], 0, 0)


def test_threshold_crossing_by_hand():
    """Worked by hand (FORMAT.md, "Worked example"):
    t0: 1 event: z0 = 100, x = 100; p = 0, 100 > 150? no.        out: -1 + (0 + 1) >> 1 = -1
    t1: 2 events: z1 = D(0, .5, 100) = 50, z0 = D(100) + 200 = 250; x = 250, p = 0: spike,
        e = 300; out z0 = 7: -1 + (14 + 1) >> 1 = 6
    t2: none: z1 = D(50, .5, 250) = 150, z0 = 125; x = 125, p = D(300) = 150, no spike, e = 150;
        out z1 = D(0, .5, 7) = 4 (3.5 up), z0 = 4: -1 + (8 + 4 + 1) >> 1 = 5"""
    m = hand_model()
    r = run(m, np.array([1, 2, 0]).reshape(3, 1, 1), record_x=True)
    assert r.x[0][:, 0, 0].tolist() == [100, 250, 125]
    assert r.logits[:, 0, 0].tolist() == [-1, 6, 5]
    assert r.spikes[0][:, 0].tolist() == [0, 1, 0]
    assert r.synops[:, 0].tolist() == [1, 2 + 1, 0]


def test_x_saturates_at_int32():
    m = hand_model(bias1=INT32_MAX - 2)
    r = run(m, np.array([1, 2, 0, 0]).reshape(4, 1, 1))
    assert r.logits[:, 0, 0].tolist() == [INT32_MAX - 2, INT32_MAX, INT32_MAX, INT32_MAX]


def test_state_returns_to_all_zero_after_input_stops():
    m = hand_model()
    ref = IntRef(m, 1)
    ref.step(np.array([[50]]))
    for _ in range(200):
        ref.step(np.array([[0]]))
    assert ref.all_zero()


def test_scores_sum_the_same_steps_as_evaluate():
    logits = np.arange(10 * 2 * 3).reshape(10, 2, 3)
    sc = scores(logits, np.array([10, 5]))
    assert sc[0].tolist() == logits[2:10, 0].sum(0).tolist() and sc[1].tolist() == logits[1:5, 1].sum(0).tolist()


# ------------------------------------------------------------------ against the float model


def q15_taus(qs, dt_ms):
    """Time constants whose decays are exactly representable in Q15."""
    return [-dt_ms / math.log(q / 32768) for q in qs]


def test_single_stage_error_within_the_derived_bound():
    """Output-only network: the reference's logits stay within the FORMAT.md bound
    |dx| <= 2^-F + sum_k |V_k| s (E_k + Y_k / 2) + 2^-(F+n+1) |z_k|,  E_k = sum_{m<=k} 1/(1-a_m),
    Y_k = sum_i yhat_i^k (unit-amplitude traces); a_k exactly Q15 here so alpha
    quantisation adds nothing."""
    rng = np.random.default_rng(4)
    qs = [24000, 28000, 31000]
    cfg = NetworkConfig(input_shape=(2, 4, 4), layers=[SumPool2d(2), Flatten(), Dense(4)], n_buckets=3,
                        dt_us=1000, input_gain=0.7, tau_ms=[q15_taus(qs, 1.0)], classes=list("abcd"),
                        sensor_size=(4, 4), downsample=1)
    net = Network(cfg, rng=rng)
    net.params["0.b"] = rng.normal(0, 0.3, 4)
    m = load_sgm(export_network(net))
    st = m.stages[0]
    assert st.alpha.tolist() == qs
    frames = rng.poisson(0.8, (300, 3, 32))
    frames[200:] = 0
    ref = run(m, frames)
    flt = net.run(frames, dtype=np.float64).logits
    f = st.x_frac_bits
    got = ref.logits * 2.0**-f
    # unit traces of the summed input (every input feeds every output, pooling drops none)
    total = frames.sum(axis=2).astype(np.float64)
    a = np.array(qs) / 32768
    y = np.zeros((3, 3))
    e = np.cumsum(1 / (1 - a))
    w = net.params["0.W"] * cfg.input_gain
    s = np.abs(w).max(axis=1) / 127
    v = net.params["0.V"]
    for t in range(len(frames)):
        for k in range(2, 0, -1):
            y[k] = a[k] * y[k] + (1 - a[k]) * y[k - 1]
        y[0] = a[0] * y[0] + total[t]
        zmax = 127 * y + e[:, None]  # (K, B)
        bound = (2.0**-f + np.einsum("jk,j,kb->bj", np.abs(v), s, e[:, None] + y / 2)
                 + np.einsum("jk,kb->bj", 2.0 ** -(f + st.vshift[:, None].astype(float) + 1) * np.ones_like(v), zmax))
        err = np.abs(got[t] - flt[t])
        assert np.all(err <= bound + 1e-9), (t, err, bound)


def sequence(rng, n, t_steps, shape, rate):
    frames = rng.poisson(rate, (n, t_steps, *shape)).astype(np.uint16)
    # a moving blob so hidden neurons see structure
    for i in range(n):
        for t in range(t_steps):
            r = (t // 3 + i) % shape[1]
            frames[i, t, :, r, :] += rng.poisson(2.0, (shape[0], shape[2])).astype(np.uint16)
    return SequenceData(frames, np.full(n, t_steps), np.zeros(n, np.int64), 10000)


def compare(net, data):
    m = load_sgm(export_network(net))
    frames = np.moveaxis(data.frames, 1, 0)
    ref = run(m, frames)
    flt = net.run(frames, dtype=np.float64)
    got = ref.logits * 2.0 ** -m.stages[-1].x_frac_bits
    rel = np.sqrt(np.mean((got - flt.logits) ** 2) / np.mean(flt.logits**2))
    spikes_f = np.array([s.sum() for s in flt.spikes], float)
    spikes_r = np.array([s.sum() for s in ref.spikes], float)
    return rel, spikes_f, spikes_r, ref, flt


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_pool_network_agrees_with_float(seed):
    rng = np.random.default_rng(seed)
    cfg = NetworkConfig(input_shape=(2, 8, 8), layers=[SumPool2d(2), Flatten(), Dense(16), Dense(4)],
                        n_buckets=3, classes=list("abcd"), sensor_size=(16, 16), downsample=2)
    net = Network(cfg, rng=rng)
    data = sequence(rng, 6, 80, (2, 8, 8), 0.3)
    calibrate(net, data)
    rel, sf, sr, ref, flt = compare(net, data)
    assert sf.min() > 100
    assert rel < 0.03, rel
    assert np.all(np.abs(sr - sf) <= 0.03 * sf), (sf, sr)


@pytest.mark.parametrize("seed", [0, 1])
def test_conv_pool_delay_network_agrees_with_float(seed):
    rng = np.random.default_rng(10 + seed)
    cfg = NetworkConfig(input_shape=(2, 8, 8), layers=[Conv2d(4, 3, 1, 1), SumPool2d(2), Conv2d(6, 3, 1, 0),
                                                      Flatten(), Dense(3)],
                        n_buckets=3, classes=list("abc"), sensor_size=(16, 16), downsample=2)
    net = Network(cfg, rng=rng)
    net.params["1.delays"] = rng.integers(0, 4, net.stages[1].n_in).astype(np.int64)
    net.params["2.delays"] = rng.integers(0, 3, net.stages[2].n_in).astype(np.int64)
    data = sequence(rng, 4, 80, (2, 8, 8), 0.3)
    calibrate(net, data)
    rel, sf, sr, ref, flt = compare(net, data)
    assert sf.min() > 100
    assert rel < 0.05, rel
    assert np.all(np.abs(sr - sf) <= 0.05 * sf), (sf, sr)


def test_input_events_with_identical_spikes_give_identical_synops():
    rng = np.random.default_rng(5)
    cfg = NetworkConfig(input_shape=(1, 4, 4), layers=[Flatten(), Dense(3)], n_buckets=2, classes=list("abc"),
                        sensor_size=(4, 4), downsample=1)
    net = Network(cfg, rng=rng)
    frames = rng.poisson(1.0, (20, 2, 16))
    m = load_sgm(export_network(net))
    assert np.array_equal(run(m, frames).synops.sum(0), net.run(frames).synops)


# ------------------------------------------------------------------ CLI


def test_cli_export_inspect_run(tmp_path, capsys):
    import json

    from pysg.cli import main
    from pysg.events import make_events

    net = Network(NetworkConfig(input_shape=(2, 4, 4), layers=[SumPool2d(2), Flatten(), Dense(5), Dense(3)],
                                n_buckets=2, classes=["a", "b", "c"], sensor_size=(8, 8), downsample=2),
                  rng=np.random.default_rng(0))
    npz, sgm = tmp_path / "m.npz", tmp_path / "m.sgm"
    net.save(npz)
    assert main(["export", str(npz), "-o", str(sgm), "--dt-ms", "5"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(sgm), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dt_us"] == 5000 and info["labels"] == ["a", "b", "c"] and info["file_bytes"] == sgm.stat().st_size
    assert {"format_version", "layers", "arena_bytes"} <= set(info)
    # the run subcommand's library function on an event array (AEDAT writing is tested elsewhere)
    from pysg.intref import run_events

    rng = np.random.default_rng(1)
    ev = make_events(rng.integers(0, 8, 500), rng.integers(0, 8, 500), np.sort(rng.integers(10**6, 10**6 + 90_000, 500)),
                     rng.integers(0, 2, 500))
    r = run_events(load_sgm(sgm.read_bytes()), ev)
    assert r["steps"] == len(r["logits"]) == -(-(int(ev["t"].max() - ev["t"].min()) + 1) // 5000)
    assert r["prediction_index"] == int(np.argmax(r["scores"])) and r["prediction"] == "abc"[r["prediction_index"]]
    assert main(["inspect", str(npz)]) == 2
    assert "magic" in capsys.readouterr().err
