# SPDX-License-Identifier: MIT
"""The float model against closed forms and brute force."""
import math

import numpy as np
import pytest

from pysg.model import Conv2d, Dense, Flatten, Network, NetworkConfig, SumPool2d
from pysg.model.layers import layer_from_dict


def brute_conv(x, w, stride, pad):
    c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((o, ho, wo))
    for oc in range(o):
        for r in range(ho):
            for q in range(wo):
                out[oc, r, q] = np.sum(xp[:, r * stride:r * stride + k, q * stride:q * stride + k] * w[oc])
    return out


@pytest.mark.parametrize("stride,pad,k,h", [(1, 0, 3, 7), (2, 1, 3, 8), (2, 2, 5, 9), (3, 0, 2, 7)])
def test_conv_matches_brute_force_and_transpose_is_adjoint(stride, pad, k, h):
    rng = np.random.default_rng(stride * 10 + pad)
    op = Conv2d(4, k, stride, pad).bind((3, h, h + 1))
    w = rng.normal(size=op.weight_shape)
    a = rng.normal(size=(2, op.n_in))
    out = op.forward(w, a)
    for m in range(2):
        ref = brute_conv(a[m].reshape(3, h, h + 1), w, stride, pad)
        np.testing.assert_allclose(out[m], ref.ravel(), rtol=1e-10, atol=1e-10)
    g = rng.normal(size=out.shape)
    # <forward(a), g> = <a, transpose(g)> and the weight gradient is d<forward, g>/dW.
    assert np.sum(out * g) == pytest.approx(np.sum(a * op.transpose(w, g)), rel=1e-10)
    assert np.sum(out * g) == pytest.approx(np.sum(w * op.weight_grad(g, a)), rel=1e-10)


def test_sumpool_and_dense_adjoints():
    rng = np.random.default_rng(0)
    pool = SumPool2d(2).bind((2, 5, 6))
    a = rng.normal(size=(3, 60))
    out = pool.forward(a)
    assert out.shape == (3, 2 * 2 * 3)
    assert out[0, 0] == pytest.approx(a[0, 0] + a[0, 1] + a[0, 6] + a[0, 7])
    g = rng.normal(size=out.shape)
    assert np.sum(out * g) == pytest.approx(np.sum(a * pool.transpose(g)))
    d = Dense(4).bind((7,))
    w = rng.normal(size=d.weight_shape)
    assert np.sum(d.forward(w, a[:, :7]) * g[:, :4]) == pytest.approx(np.sum(a[:, :7] * d.transpose(w, g[:, :4])))


def test_layer_specs_round_trip_and_reject_unknown():
    for spec in (Dense(3), Conv2d(2, 3, 2, 1), SumPool2d(2), Flatten()):
        assert layer_from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="unknown layer kind"):
        layer_from_dict({"kind": "lstm"})
    with pytest.raises(ValueError, match="after the last synaptic"):
        Network(NetworkConfig((1, 4, 4), [Dense(2), Flatten()]))


def one_neuron(alpha_tau_ms, k, dt_us=1000):
    cfg = NetworkConfig((1, 1, 1), [Dense(1)], n_buckets=k, dt_us=dt_us, tau_ms=[alpha_tau_ms])
    net = Network(cfg)
    net.params["0.W"][:] = 1.0
    net.params["0.b"][:] = 0.0
    return net


def test_gamma_bucket_impulse_response_closed_form():
    # One input spike at t = 0: z^k(t) = C(t, k) (1 - a)^k a^(t - k), a shared decay.
    k, tau = 4, 7.0
    net = one_neuron([tau] * k, k)
    a = math.exp(-1.0 / tau)
    state = net.init_state(1, dtype=np.float64)
    frames = np.zeros((60, 1, 1))
    frames[0] = 1
    for t in range(60):
        net.step(state, frames[t])
        for kk in range(k):
            expect = math.comb(t, kk) * (1 - a) ** kk * a ** (t - kk)
            assert state.z[0][kk, 0, 0] == pytest.approx(expect, rel=1e-12, abs=1e-15)


def test_sigma_delta_tracks_constant_output_and_rate():
    # A hidden neuron with constant output y: the next layer's bucket 0 (the encoder
    # state e) stays within theta of y, and the rate is (1 - a0') y / (2 theta) per step.
    cfg = NetworkConfig((1, 1, 1), [Dense(1), Dense(1)], n_buckets=2, dt_us=1000, tau_ms=[[5, 5], [20, 20]])
    net = Network(cfg)
    y, theta = 3.0, 0.25
    net.params["0.W"][:] = 0.0
    net.params["0.b"][:] = y
    net.params["0.theta"][:] = theta
    state = net.init_state(1, dtype=np.float64)
    a0 = net.alphas(1)[0]
    n = 4000
    for t in range(n):
        net.step(state, np.zeros((1, 1)))
        if t > 200:
            assert y - theta < state.enc[0][0, 0] <= y + theta
    rate = state.spikes[0][0] / n
    assert rate == pytest.approx((1 - a0) * y / (2 * theta), rel=0.02)


def test_axonal_delay_shifts_input_exactly():
    cfg = NetworkConfig((1, 1, 3), [Flatten(), Dense(3)], n_buckets=1, dt_us=1000, tau_ms=[[1e9]])
    net = Network(cfg)
    net.params["0.W"] = np.eye(3)
    net.params["0.delays"] = np.array([0, 2, 5], dtype=np.uint8)
    state = net.init_state(1, dtype=np.float64)
    seen = []
    for t in range(8):
        frame = np.ones((1, 3)) if t == 0 else np.zeros((1, 3))
        net.step(state, frame)
        seen.append(state.z[0][0, 0].copy())
    seen = np.round(np.array(seen), 6)  # bucket 0 with no decay: a step at the arrival time
    assert [int(np.argmax(seen[:, i] > 0.5)) for i in range(3)] == [0, 2, 5]


def test_retarget_dt_keeps_time_constants_and_dc_response():
    net = one_neuron([20.0, 50.0], 2, dt_us=10_000)
    fine = net.retarget_dt(1000)
    np.testing.assert_allclose(fine.alphas(0), net.alphas(0) ** 0.1, rtol=1e-12)
    # A constant event rate (one event per 10 ms) reaches the same bucket-0 level.
    for model, every in ((net, 1), (fine, 10)):
        state = model.init_state(1, dtype=np.float64)
        level = []
        for t in range(3000 // every * every):
            model.step(state, np.ones((1, 1)) if t % every == 0 else np.zeros((1, 1)))
            level.append(state.z[0][1, 0, 0])
        model.level = np.mean(level[len(level) // 2:])
    assert fine.level == pytest.approx(net.level, rel=0.01)


def test_save_load_round_trip_is_exact(tmp_path):
    cfg = NetworkConfig((2, 8, 8), [Conv2d(3, 3, 2, 1), SumPool2d(2), Flatten(), Dense(5), Dense(4)],
                        classes=["a", "b", "c", "d"])
    net = Network(cfg, rng=np.random.default_rng(3))
    net.params["1.delays"] = np.arange(12, dtype=np.uint8) % 3
    net.save(tmp_path / "m.npz")
    back = Network.load(tmp_path / "m.npz")
    assert back.config.to_dict() == net.config.to_dict()
    assert set(back.params) == set(net.params)
    for k in net.params:
        assert back.params[k].dtype == net.params[k].dtype
        assert np.array_equal(back.params[k], net.params[k])
    frames = (np.random.default_rng(0).random((30, 2, 2, 8, 8)) < 0.1).astype(np.uint16)
    assert np.array_equal(net.run(frames).logits, back.run(frames).logits)


def test_load_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not a pysg model"):
        Network.load(bad)
    with pytest.raises(FileNotFoundError):
        Network.load(tmp_path / "missing.npz")


def test_spiking_run_counts_spikes_and_synops():
    cfg = NetworkConfig((1, 2, 2), [Flatten(), Dense(3), Dense(2)], n_buckets=2)
    net = Network(cfg, rng=np.random.default_rng(0))
    frames = np.zeros((5, 1, 1, 2, 2), dtype=np.uint16)
    frames[0, 0, 0, 0, 0] = 2  # two input events, each reaching 3 hidden neurons
    r = net.run(frames)
    hidden = int(r.spikes[0][0])
    assert r.synops[0] == 2 * 3 + hidden * 2


def test_delay_ring_reads_each_input_d_steps_late_past_255_steps():
    # the stored delays are uint8: t + d must not wrap at 256 (steps 248.. then 256.. of a
    # 40 ms model are 10 s into a recording)
    rng = np.random.default_rng(0)
    net = Network(NetworkConfig((1, 4, 4), [Flatten(), Dense(5), Dense(3)], n_buckets=2), rng=rng)
    d = rng.integers(0, 9, net.stages[1].n_in).astype(np.uint8)
    net.params["1.delays"] = d
    state = net.init_state(2, dtype=np.float64)
    sent = rng.random((300, 2, net.stages[1].n_in))
    for t in range(300):
        out = state.delay(1, sent[t])
        past = t - d.astype(int)
        want = np.where(past >= 0, sent[np.maximum(past, 0), :, np.arange(d.size)].T, 0.0)
        np.testing.assert_array_equal(out, want, err_msg=f"step {t}")
        state.t += 1
