# SPDX-License-Identifier: MIT
"""Stage 0's input gate (`NetworkConfig.input_min_count`, the .sgm's stage-0 `min_count`):
an input's count of one step below the gate is dropped. Checked against the thresholded
input fed to an ungated network (float and integer), the C runtime against the integer
reference through raw events, frames and both in one step (runtime_c's golden cases do
the same on host, ASan, aarch64 and the Cortex-M4), the file's field and arena, retiming,
the refusals (NIR, a gate on a later stage), the torch twin and bench.input_gate;
`pysg train --min-count` and its resume check are in tests/test_cli.py."""
import struct

import numpy as np
import pytest

import pysg.runtime as runtime
from pysg import intref
from pysg.converters.sgm import export_network
from pysg.events import make_events
from pysg.model import Conv2d, Dense, Flatten, Network, NetworkConfig, input_counts
from pysg.recipes import DEFAULT_INPUT_MIN_COUNT, default_min_count, default_network
from pysg.sgm import LAYER_FIELDS, SgmFormatError, field_offset, load_sgm, resign
from pysg.train.trainer import SequenceData, calibrate
from tests.test_runtime_parity import check_dataset


def small_config(min_count: int) -> NetworkConfig:
    return NetworkConfig(input_shape=(2, 8, 8), layers=[Conv2d(4, 2, 2, 0), Flatten(), Dense(6), Dense(3)],
                         n_buckets=3, dt_us=20_000, classes=list("abc"), sensor_size=(16, 16), downsample=2,
                         input_min_count=min_count)


def noisy_frames(rng, t_steps=40, batch=3):
    """Counts of 0-2 (noise) everywhere, and a bar of 3-12 per input moving down."""
    f = rng.poisson(0.4, size=(t_steps, batch, 2, 8, 8))
    for t in range(t_steps):
        f[t, :, :, (t // 3) % 8, :] += rng.integers(3, 13, size=(batch, 2, 8))
    return f.astype(np.uint16)


def calibrated(cfg: NetworkConfig, frames: np.ndarray, seed=0) -> Network:
    net = Network(cfg, rng=np.random.default_rng(seed))
    lengths = np.full(frames.shape[1], frames.shape[0])
    calibrate(net, SequenceData(np.moveaxis(frames, 0, 1), lengths, np.zeros(len(lengths), np.int64), cfg.dt_us))
    return net


def test_input_counts_keeps_whole_counts_at_or_above_the_gate():
    c = np.array([0, 1, 2, 3, 4, 40, 65535], np.uint16)
    assert input_counts(c, 3).tolist() == [0, 0, 0, 3, 4, 40, 65535]
    assert input_counts(c, 3).dtype == np.uint16
    for off in (0, 1):
        assert input_counts(c, off) is c


def test_the_float_and_integer_networks_gate_as_the_thresholded_input():
    rng = np.random.default_rng(0)
    frames = noisy_frames(rng)
    gated = calibrated(small_config(3), frames)
    plain = Network(small_config(0), {k: v.copy() for k, v in gated.params.items()})
    cut = np.where(frames >= 3, frames, 0)
    a, b = gated.run(frames, dtype=np.float64), plain.run(cut, dtype=np.float64)
    np.testing.assert_array_equal(a.logits, b.logits)
    np.testing.assert_array_equal(a.synops, b.synops)
    assert (plain.run(frames, dtype=np.float64).synops > a.synops).all()  # the noise was dropped
    m_gated, m_plain = load_sgm(export_network(gated)), load_sgm(export_network(plain))
    assert m_gated.stages[0].min_count == 3 and m_plain.stages[0].min_count == 0
    r, q = intref.run(m_gated, frames), intref.run(m_plain, cut)
    np.testing.assert_array_equal(r.logits, q.logits)
    np.testing.assert_array_equal(r.synops, q.synops)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from pysg.synth.dataset import synthesize_dataset

    root = tmp_path_factory.mktemp("gate") / "data"
    synthesize_dataset(root, train_users=1, test_users=1, lightings_per_user=1, seconds=0.6, workers=1,
                       difficulty="hard")
    return root


def test_the_c_runtime_gates_events_and_frames_as_the_reference(synth):
    """The recipe's network (gate 3 at 40 ms) on hard recordings: C fed the raw events
    (every event accepted, the gated ones included), C stepped through frames and the
    integer reference agree bit for bit, synaptic operations too."""
    from pysg.datasets.gesture import GestureDataset

    from pysg.train.trainer import bin_samples

    net = default_network()
    assert net.config.input_min_count == DEFAULT_INPUT_MIN_COUNT
    samples = list(GestureDataset(synth, "train"))
    data = bin_samples(samples, dt_us=net.config.dt_us, sensor_size=(128, 128), downsample=4, channels=2)
    calibrate(net, data)
    sgm = export_network(net)
    counter = {"samples": 0, "steps": 0}
    check_dataset(sgm, samples, counter)
    assert counter["samples"] == len(samples) > 0
    # the gate dropped events (background activity): the same weights without it do more
    # synaptic operations
    assert input_counts(data.frames, DEFAULT_INPUT_MIN_COUNT).sum() < 0.85 * data.frames.sum()
    plain = Network(NetworkConfig.from_dict({**net.config.to_dict(), "input_min_count": 0}), net.params)
    m, m0 = load_sgm(sgm), load_sgm(export_network(plain))
    flat = np.moveaxis(data.frames, 1, 0)
    assert intref.run(m0, flat).synops.sum() > intref.run(m, flat).synops.sum()


def test_one_step_from_events_and_frames_gates_their_sum():
    """Two events through feed, then a frame of two counts at the same input, in one step:
    with a gate of 3 the input's four events reach the convolution (as the reference's
    frame of 4); two events alone, or the frame's two alone, do not."""
    rng = np.random.default_rng(1)
    net = calibrated(small_config(3), noisy_frames(rng))
    sgm = export_network(net)
    m = load_sgm(sgm)
    rt = runtime.Runtime(sgm)
    x, y, p = 5, 6, 1  # raw input (p, y // 2, x // 2)
    raw = (p * 8 + y // 2) * 8 + x // 2
    for n_events, n_frame, kept in ((2, 2, 4), (2, 0, 0), (0, 2, 0)):
        rt.reset()
        rt.set_origin(0)
        rt.feed(make_events(np.full(n_events, x), np.full(n_events, y), 100 * np.arange(1, n_events + 1),
                            np.full(n_events, p)))
        counts = np.zeros(2 * 8 * 8, np.uint16)
        counts[raw] = n_frame
        got = np.stack([rt.step(counts)] + [rt.step() for _ in range(5)])  # and its echo
        frames = np.zeros((6, 1, 2 * 8 * 8), np.int64)
        frames[0, 0, raw] = n_events + n_frame
        want = intref.run(m, frames)
        np.testing.assert_array_equal(got, want.logits[:, 0])
        st = rt.stats
        assert st["events_in"] == n_events + n_frame and st["synops"] == int(want.synops.sum())
        assert (st["synops"] > 0) == (kept > 0)
        # a 2x2 patch conv of 4 channels: 4 per event taken, plus the spikes they cause x 6
        assert int(want.synops[0, 0]) - 4 * kept == 6 * int(want.spikes[0][0, 0])


def test_retiming_scales_the_gate_with_the_step():
    net = calibrated(small_config(3), noisy_frames(np.random.default_rng(2)))
    assert [net.retarget_dt(dt).config.input_min_count for dt in (10_000, 5_000, 40_000)] == [2, 1, 6]
    assert small_config(0).input_min_count == 0 and net.retarget_dt(5_000).config.input_min_count == 1
    assert [default_min_count(dt) for dt in (40_000, 20_000, 10_000, 80_000)] == [3, 2, 1, 6]
    with pytest.raises(ValueError, match="input_min_count 256 outside"):
        small_config(256)


def test_the_field_and_the_arena_in_the_file_and_the_c_loader():
    net = calibrated(small_config(3), noisy_frames(np.random.default_rng(3)))
    buf = export_network(net)
    m = load_sgm(buf)
    plain = load_sgm(export_network(Network(small_config(0), net.params)))
    assert m.arena_bytes - plain.arena_bytes == 4 * -(-(2 * 8 * 8) // 4)  # a byte per raw input
    rt = runtime.Runtime(buf)
    assert rt.arena_bytes == m.arena_bytes
    base1 = struct.unpack_from("<I", buf, 52)[0] + 96  # stage 1's entry
    off = base1 + field_offset(LAYER_FIELDS, "min_count")
    bad = bytearray(buf)
    struct.pack_into("<I", bad, off, 2)
    bad = resign(bytes(bad))
    with pytest.raises(SgmFormatError) as e:
        load_sgm(bad)
    assert e.value.offset == off and "after the first stage" in e.value.what
    with pytest.raises(runtime.SgModelError) as c:
        runtime.Runtime(bad)
    assert c.value.offset == off


def test_nir_export_refuses_a_gated_network():
    pytest.importorskip("nir")
    from converters.nir_export import NirExportError, network_to_nir

    net = calibrated(small_config(3), noisy_frames(np.random.default_rng(4)))
    with pytest.raises(NirExportError, match="input_min_count 3"):
        network_to_nir(net)


def test_the_torch_twin_gates_as_numpy():
    torch = pytest.importorskip("torch")
    from pysg.train.torch_net import TorchNet

    rng = np.random.default_rng(5)
    frames = noisy_frames(rng, t_steps=12)
    net = calibrated(small_config(3), frames)
    tnet = TorchNet(net)
    st_t, st_n = tnet.init_state(frames.shape[1], torch.float64), net.init_state(frames.shape[1], dtype=np.float64)
    flat = frames.reshape(frames.shape[0], frames.shape[1], -1)
    for t in range(frames.shape[0]):
        got = tnet.step(st_t, torch.from_numpy(flat[t].astype(np.float64))).numpy()
        want = net.step(st_n, flat[t])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)


def test_bench_input_gate_counts_what_a_recording_keeps(tmp_path):
    """bench.input_gate on a 128x128 recording (no mapping) of one 40 ms step: input A (a
    4x4 block, ON) gets 5 events, B 2, C 1 (OFF): a gate of 3 keeps 5 of 8 events and one
    of three active cells; a gate of 0 keeps everything."""
    from bench.input_gate import gate_report

    xs = [1, 2, 3, 0, 1, 40, 41, 100]  # A: x // 4 = 0 (5 events), B: 10 (2), C: 25 (1)
    ev = make_events(np.array(xs), np.array([2] * 5 + [9, 9] + [127]), np.arange(8) * 1000,
                     np.array([1] * 7 + [0]))
    path = tmp_path / "three.npy"
    np.save(path, ev)
    kw = dict(sensor=(128, 128), downsample=4, channels=2, dt_us=40_000)
    r = gate_report(str(path), min_count=3, **kw)
    assert (r["events"], r["active_cells"]) == (8, 3)
    assert r["events_kept"] == 5 / 8 and r["cells_kept"] == 1 / 3 and r["cells_with_one_event"] == 1 / 3
    r0 = gate_report(str(path), min_count=0, **kw)
    assert r0["events_kept"] == 1.0 and r0["cells_kept"] == 1.0
