# SPDX-License-Identifier: MIT
"""The C runtime through cffi (pysg.runtime) against the Python integer reference
(pysg.intref): per-step logits bit-exact on real recordings (synthetic dataset, the
bundled recording) and on random conv / pooling / delay networks, through both input
grains (raw events with `feed`, binned frames with `step`); plus the status -> exception
mapping, input checks, and the header <-> cdef sync."""
import json
import re

import numpy as np
import pytest

from pysg.converters.sgm import export_network
import pysg.runtime as runtime  # an ImportError naming the fix when the extension is not built
from pysg import intref
from pysg._build_runtime import HEADER, cdef_from_header, function_names
from pysg.datasets.gesture import GestureDataset
from pysg.events import EVENT_DTYPE, make_events
from pysg.model import Conv2d, Dense, Flatten, Network, NetworkConfig, SumPool2d
from pysg.recipes import BUNDLED_MODEL, BUNDLED_SAMPLES
from pysg.sgm import encode, load_sgm, resign
from pysg.train.trainer import SequenceData, bin_samples, calibrate
from tests.support.loader_verdicts import verdicts

Runtime, SgRuntimeError, SgModelError = runtime.Runtime, runtime.SgRuntimeError, runtime.SgModelError
ffi, lib = runtime.ffi, runtime.lib


# ------------------------------------------------------------------ helpers


def assert_same_logits(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Bit-exact, or fail naming the first differing (step, class)."""
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    diff = np.argwhere(got != want)
    if diff.size:
        t, c = diff[0]
        pytest.fail(f"{what}: first difference at step {t}, class {c}: C {got[t, c]} != reference {want[t, c]} "
                    f"({len(diff)} of {got.size} values differ)")


def ref_logits(m, frames: np.ndarray, lengths) -> list[np.ndarray]:
    """Per-sample (T_i, classes) reference logits of a padded (N, T, ...) batch."""
    r = intref.run(m, np.moveaxis(frames, 1, 0))
    return [r.logits[: int(n), i] for i, n in enumerate(lengths)]


def bin_for(m, samples) -> SequenceData:
    return bin_samples(samples, dt_us=m.dt_us, sensor_size=m.sensor_size, downsample=m.downsample,
                       channels=m.input_shape[0])


def check_dataset(sgm: bytes, samples, counter: dict) -> None:
    """Every sample: reference on binned frames == C fed the raw events with absolute
    timestamps (origin at the interval start) == C stepped through the same frames;
    also the activity counters."""
    m = load_sgm(sgm)
    rt = Runtime(sgm)
    data = bin_for(m, samples)
    want = ref_logits(m, data.frames, data.lengths)
    r = intref.run(m, np.moveaxis(data.frames, 1, 0))
    for i, s in enumerate(samples):
        n = int(data.lengths[i])
        ev = s.events.copy()
        ev["t"] += s.t_start  # absolute times, as a live sensor delivers them
        got = rt.run_events(ev, t0_us=s.t_start, n_steps=n)
        assert_same_logits(got, want[i], f"{s.source}@{s.t_start} feed (dt {m.dt_us} us)")
        st = rt.stats
        assert st["steps"] == n and st["events_in"] == len(ev) and st["events_dropped"] == 0
        assert st["synops"] == int(r.synops[:n, i].sum())
        assert st["spikes"] == [int(sp[:n, i].sum()) for sp in r.spikes]
        got = rt.run_frames(data.frames[i, :n])
        assert_same_logits(got, want[i], f"{s.source}@{s.t_start} step (dt {m.dt_us} us)")
        counter["samples"] += 1
        counter["steps"] += 2 * n


@pytest.fixture(scope="module")
def counter():
    c = {"samples": 0, "steps": 0}
    yield c
    print(f"\nC runtime == integer reference on {c['samples']} sample runs, {c['steps']} steps")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from pysg.synth.dataset import synthesize_dataset

    root = tmp_path_factory.mktemp("runtime") / "data"
    synthesize_dataset(root, train_users=1, test_users=1, lightings_per_user=1, seconds=0.6, workers=1)
    return root


@pytest.fixture(scope="module")
def gesture_net():
    return Network.load(BUNDLED_MODEL)


# ------------------------------------------------------------------ parity on recordings


@pytest.mark.parametrize("dt_us", [10_000, 1_000])
def test_parity_on_the_synthetic_dataset(synth, gesture_net, dt_us, counter):
    sgm = export_network(gesture_net if dt_us == gesture_net.config.dt_us else gesture_net.retarget_dt(dt_us))
    for split in ("train", "test"):
        check_dataset(sgm, list(GestureDataset(synth, split)), counter)


@pytest.mark.parametrize("dt_us", [10_000, 1_000])
def test_parity_on_the_bundled_recording(gesture_net, dt_us, counter):
    sgm = export_network(gesture_net if dt_us == gesture_net.config.dt_us else gesture_net.retarget_dt(dt_us))
    samples = list(GestureDataset(BUNDLED_SAMPLES, "test"))
    check_dataset(sgm, samples, counter)


def test_whole_recording_like_pysg_run(gesture_net):
    """`run_events_c` on the whole bundled file (origin at the first event) == intref.run_events."""
    from pysg.io.aedat31 import read_aedat31

    ev = read_aedat31(next(BUNDLED_SAMPLES.glob("*.aedat")))
    sgm = export_network(gesture_net)
    want = intref.run_events(load_sgm(sgm), ev)
    got = runtime.run_events_c(Runtime(sgm), ev)
    assert_same_logits(got.pop("logits"), want.pop("logits"), "whole recording")
    assert got == want


def test_evaluate_c_equals_evaluate_ref(synth, gesture_net):
    m = load_sgm(export_network(gesture_net))
    data = bin_for(m, list(GestureDataset(synth, "test")))
    want = intref.evaluate_ref(m, data)
    got = runtime.evaluate_c(export_network(gesture_net), data)
    assert got.pop("engine") == "c" and want.pop("engine") == "ref"
    assert got == want


# ------------------------------------------------------------------ random networks


def sequence(rng, n, t_steps, shape, rate):
    frames = rng.poisson(rate, (n, t_steps, *shape)).astype(np.uint16)
    for i in range(n):  # a moving bar so hidden neurons see structure
        for t in range(t_steps):
            frames[i, t, :, (t // 3 + i) % shape[1], :] += rng.poisson(2.0, (shape[0], shape[2])).astype(np.uint16)
    return SequenceData(frames, np.full(n, t_steps), np.zeros(n, np.int64), 10_000)


def events_for(frames: np.ndarray, rng, *, dt_us: int, downsample: int, t0_us: int, channels: int) -> np.ndarray:
    """Raw events (random position inside each pixel's downsample block, random time inside
    the step) that bin exactly to `frames` (T, C, H, W)."""
    idx = np.nonzero(frames)
    reps = frames[idx].astype(np.int64)
    t, c, r, q = (np.repeat(a, reps) for a in idx)
    n = len(t)
    x = q * downsample + rng.integers(0, downsample, n)
    y = r * downsample + rng.integers(0, downsample, n)
    p = c if channels == 2 else rng.integers(0, 2, n)
    ts = t0_us + t * dt_us + rng.integers(0, dt_us, n)
    order = np.argsort(ts, kind="stable")
    return make_events(x[order], y[order], ts[order], p[order])


RANDOM_NETS = {
    "dense_pool": lambda: NetworkConfig(input_shape=(2, 8, 8), layers=[SumPool2d(2), Flatten(), Dense(16), Dense(4)],
                                        n_buckets=3, classes=list("abcd"), sensor_size=(16, 16), downsample=2),
    "conv_pool_delays": lambda: NetworkConfig(input_shape=(2, 8, 8),
                                              layers=[Conv2d(4, 3, 1, 1), SumPool2d(2), Conv2d(6, 3, 1, 0), Flatten(),
                                                      Dense(3)],
                                              n_buckets=3, classes=list("abc"), sensor_size=(16, 16), downsample=2),
    "conv_stride_mono_delays": lambda: NetworkConfig(input_shape=(1, 9, 9),
                                                     layers=[Conv2d(3, 3, 2, 1), Conv2d(5, 2, 1, 0), SumPool2d(2),
                                                             Flatten(), Dense(6), Dense(2)],
                                                     n_buckets=4, classes=["x", "y"], sensor_size=(27, 27),
                                                     downsample=3),
}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kind", list(RANDOM_NETS))
def test_parity_on_random_networks(kind, seed, counter):
    rng = np.random.default_rng(100 + seed)
    cfg = RANDOM_NETS[kind]()
    net = Network(cfg, rng=rng)
    if "delays" in kind:
        for i, st in enumerate(net.stages[1:], start=1):
            net.params[f"{i}.delays"] = rng.integers(0, 4, st.n_in).astype(np.int64)
    data = sequence(rng, 3, 70, cfg.input_shape, 0.3)
    calibrate(net, data)
    sgm = export_network(net)
    m = load_sgm(sgm)
    assert any(st.delays is not None for st in m.stages) == ("delays" in kind)
    rt = Runtime(sgm)
    assert rt.arena_bytes == rt.arena_used == m.arena_bytes
    r = intref.run(m, np.moveaxis(data.frames, 1, 0))
    assert sum(int(sp.sum()) for sp in r.spikes) > 50, "the test network should spike"
    for i in range(len(data)):
        want = r.logits[:, i]
        assert_same_logits(rt.run_frames(data.frames[i]), want, f"{kind} seed {seed} sample {i} step")
        ev = events_for(data.frames[i], rng, dt_us=m.dt_us, downsample=m.downsample, t0_us=5_000_000 + 17 * i,
                        channels=m.input_shape[0])
        assert_same_logits(rt.run_events(ev, t0_us=5_000_000 + 17 * i, n_steps=len(want)), want,
                           f"{kind} seed {seed} sample {i} feed")
        synops_ref = int(r.synops[:, i].sum())
        if "delays" in kind:  # C counts a delayed event when it lands, the reference when it is sent
            assert 0.9 * synops_ref <= rt.stats["synops"] <= synops_ref
        else:
            assert rt.stats["synops"] == synops_ref
        counter["samples"] += 1
        counter["steps"] += 2 * len(want)


def test_feed_in_one_call_and_in_pieces_agree(gesture_net):
    """Feeding every event at once (steps closed inside sg_feed) == per-step feeding; the
    scores and prediction follow the reference's rule from score_from on."""
    sgm = export_network(gesture_net)
    m = load_sgm(sgm)
    s = GestureDataset(BUNDLED_SAMPLES, "test")[3]
    n = -(-s.duration_us // m.dt_us)
    rt = Runtime(sgm)
    want = rt.run_events(s.events, t0_us=0, n_steps=n)
    pred = rt.classify_events(s.events, t0_us=0, n_steps=n)
    assert_same_logits(rt.logits[None], want[-1:], "last step")
    sc = intref.scores(want[:, None], np.array([n]))[0]
    assert rt.scores.tolist() == sc.tolist() and pred == int(np.argmax(sc)) == rt.prediction


def test_events_outside_the_sensor_are_dropped_and_counted(gesture_net):
    sgm = export_network(gesture_net)
    s = GestureDataset(BUNDLED_SAMPLES, "test")[0]
    n = -(-s.duration_us // 10_000)
    rt = Runtime(sgm)
    want = rt.run_events(s.events, t0_us=0, n_steps=n)
    bad = make_events([128, 5, 300], [3, 128, 999], [1000, 2000, 3000], [1, 0, 1])
    ev = np.concatenate([s.events, bad])
    ev = ev[np.argsort(ev["t"], kind="stable")]
    assert_same_logits(rt.run_events(ev, t0_us=0, n_steps=n), want, "with out-of-sensor events")
    assert rt.stats["events_dropped"] == 3 and rt.stats["events_in"] == len(s.events)


# ------------------------------------------------------------------ errors and input checks


def test_truncated_and_corrupted_files_name_the_field(gesture_net):
    sgm = export_network(gesture_net)
    with pytest.raises(SgModelError) as e:
        Runtime(sgm[:-8])
    assert e.value.name == "SG_ERR_TRUNCATED" and isinstance(e.value, RuntimeError)
    assert "byte offset" in str(e.value) and e.value.field in str(e.value)
    with pytest.raises(SgModelError) as e:
        Runtime(sgm[:30])
    assert e.value.name == "SG_ERR_TRUNCATED" and e.value.offset == 30
    flipped = bytearray(sgm)
    flipped[len(sgm) // 2] ^= 0x10
    with pytest.raises(SgModelError) as e:
        Runtime(bytes(flipped))
    assert e.value.name == "SG_ERR_CRC" and "SG_ERR_CRC" in str(e.value)
    with pytest.raises(SgModelError) as e:
        Runtime(b"XXXX" + sgm[4:])
    assert e.value.name == "SG_ERR_MAGIC" and e.value.offset == 0


def test_the_c_loader_reports_the_python_loaders_offset(gesture_net):
    """Random bit flips, re-signed so that the CRCs pass: wherever pysg.sgm.load_sgm
    rejects the file, the C loader rejects it at the same byte offset and field."""
    sgm = export_network(gesture_net)
    rng = np.random.default_rng(7)
    header_end = 64 + 32 * 11 + 96 * 2 + 64  # header, labels, layer table, a few blob bytes
    rejected = 0
    for _ in range(300):
        buf = bytearray(sgm)
        pos = int(rng.integers(0, header_end))
        buf[pos] ^= 1 << int(rng.integers(0, 8))
        buf = resign(buf) if pos >= 4 else bytes(buf)
        py, c = verdicts(buf)
        assert py == c, f"flip at byte {pos}: python {py}, C {c}"
        rejected += py is not None
    assert rejected > 100


def test_wrong_inputs_raise_value_error(gesture_net):
    rt = Runtime(export_network(gesture_net))
    good = np.zeros((2, 32, 32), np.uint16)
    rt.step(good)
    rt.step(good.reshape(-1))
    rt.step(None)
    for bad in (good.astype(np.int32), good.astype(">u2"), np.zeros((2, 32, 31), np.uint16),
                np.zeros((2, 64, 32), np.uint16)[:, ::2], [0] * 2048):
        with pytest.raises(ValueError):
            rt.step(bad)
    with pytest.raises(ValueError):
        rt.run_frames(np.zeros((5, 2048), np.float32))
    with pytest.raises(ValueError):
        rt.run_frames(np.zeros((5, 2047), np.uint16))
    with pytest.raises(ValueError):
        rt.feed(np.zeros(5, np.int64))
    with pytest.raises(ValueError):
        rt.feed(np.zeros(5, [("x", "u2"), ("y", "u2"), ("t", "i8")]))
    with pytest.raises(ValueError):
        rt.feed(np.zeros(5, [("x", "f4"), ("y", "u2"), ("t", "i8"), ("p", "u1")]))
    with pytest.raises(ValueError):
        rt.feed(np.array([(70000, 1, 1, 0)], [("x", "i8"), ("y", "u2"), ("t", "i8"), ("p", "u1")]))


def test_events_going_back_in_time_raise(gesture_net):
    rt = Runtime(export_network(gesture_net))
    rt.feed(make_events([1, 2], [1, 2], [1_000_000, 1_035_000], [0, 1]))  # origin 1 s, now in step 3
    assert rt.step_index == 3
    with pytest.raises(SgRuntimeError) as e:
        rt.feed(make_events([1], [1], [1_005_000], [0]))
    assert e.value.name == "SG_ERR_TIME" and not isinstance(e.value, ValueError)
    with pytest.raises(SgRuntimeError) as e:
        rt.set_origin(0)  # the origin is set already
    assert e.value.name == "SG_ERR_TIME"
    rt.feed(make_events([1], [1], [1_031_000], [0]))  # same step: any order is fine
    rt.reset()
    rt.set_origin(0)
    rt.advance_to(50_000)
    assert rt.stats["steps"] == 5
    with pytest.raises(SgRuntimeError):
        rt.feed(make_events([1], [1], [49_999], [0]))


def test_event_layout_matches_the_c_struct():
    dt = runtime.SG_EVENT_DTYPE
    assert dt.itemsize == ffi.sizeof("sg_event")
    for name, cname in (("t", "t_us"), ("x", "x"), ("y", "y"), ("p", "p")):
        assert dt.fields[name][1] == ffi.offsetof("sg_event", cname)
    ev = make_events([3, 4], [5, 6], [7, 2**40], [1, 0])
    out = runtime.as_sg_events(ev)
    assert ev.dtype == EVENT_DTYPE and out.dtype == dt
    raw = np.frombuffer(ffi.buffer(ffi.from_buffer("sg_event[]", out)), np.uint8).reshape(2, -1)
    c = ffi.cast("sg_event *", ffi.from_buffer(raw))
    assert (c[1].t_us, c[1].x, c[1].y, c[1].p) == (2**40, 4, 6, 0)
    assert runtime.as_sg_events(out) is out  # already in the C layout: no copy


def test_the_extension_is_built_from_the_current_c_sources():
    """A stale in-place build would test old C code: rebuild (pip install -e .)."""
    from pysg._build_runtime import sources_digest

    assert ffi.string(lib.pysg_sources_sha256()).decode() == sources_digest(), \
        "pysg._sg_runtime is stale: run `pip install -e .` or `python pysg/_build_runtime.py`"


def test_the_cdef_is_the_header():
    """One source of truth: the cdef is generated from sg_runtime.h, and every function
    the header declares is in the compiled module."""
    text = open(HEADER, encoding="utf-8").read()
    no_comments = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    declared = set(re.findall(r"\b(sg_\w+)\s*\(", no_comments))
    assert declared == set(function_names(text)) and len(declared) >= 15
    for name in declared:
        assert hasattr(lib, name), name
    for name in re.findall(r"#define\s+(SG_\w+)\s+\d", text):
        assert getattr(lib, name) == int(re.search(rf"#define\s+{name}\s+(\d+)", text)[1])
    for name in re.findall(r"\b(SG_(?:OK|ERR_\w+))\s*=", text):
        assert name in cdef_from_header(text) and runtime.status_name(getattr(lib, name)) == name


# ------------------------------------------------------------------ CLI and demo


def test_cli_run_and_eval_c_equal_ref(synth, gesture_net, tmp_path, capsys):
    from pysg.cli import main

    sgm = tmp_path / "g.sgm"
    sgm.write_bytes(export_network(gesture_net))
    rec = next(synth.glob("*.aedat"))
    out = {}
    for engine in ("c", "ref"):
        capsys.readouterr()
        assert main(["run", str(sgm), str(rec), "--one-sample", "--json", "--engine", engine,
                     "--dump-logits", str(tmp_path / f"{engine}.npy")]) == 0
        out[engine] = json.loads(capsys.readouterr().out)
    assert out["c"] == out["ref"]
    assert np.array_equal(np.load(tmp_path / "c.npy"), np.load(tmp_path / "ref.npy"))
    assert np.load(tmp_path / "c.npy").dtype == np.int32
    capsys.readouterr()
    assert main(["run", str(sgm), str(rec), "--one-sample", "--json"]) == 0  # default engine: c
    assert json.loads(capsys.readouterr().out) == out["ref"]
    for engine in ("c", "ref"):
        assert main(["eval", str(sgm), str(synth), "--json", "--engine", engine]) == 0
        out[engine] = json.loads(capsys.readouterr().out)
    assert out["c"].pop("engine") == "c" and out["ref"].pop("engine") == "ref"
    assert out["c"] == out["ref"]
    assert main(["eval", str(sgm), str(synth), "--json"]) == 0  # default for an .sgm: c
    assert json.loads(capsys.readouterr().out)["engine"] == "c"


def test_cli_reports_a_corrupt_model_in_one_line(synth, gesture_net, tmp_path, capsys):
    from pysg.cli import main

    sgm = tmp_path / "bad.sgm"
    raw = bytearray(export_network(gesture_net))
    raw[200] ^= 1
    sgm.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(["run", str(sgm), str(next(synth.glob("*.aedat"))), "--engine", "c"]) == 2
    err = capsys.readouterr().err
    assert "SG_ERR_CRC" in err and "byte offset" in err and "Traceback" not in err


def test_demo_runs_on_the_c_runtime():
    from pysg.recipes import demo

    r = demo()
    assert r["engine"] == "c" and r["n"] == 11 and r["accuracy"] >= 10 / 11


def test_runtime_takes_a_path_bytes_or_an_sgm_model(gesture_net, tmp_path):
    sgm = export_network(gesture_net)
    path = tmp_path / "g.sgm"
    path.write_bytes(sgm)
    frames = np.random.default_rng(3).poisson(0.05, (30, 2, 32, 32)).astype(np.uint16)
    want = Runtime(sgm).run_frames(frames)
    for model in (path, str(path), bytearray(sgm), memoryview(sgm), load_sgm(sgm), BUNDLED_MODEL):
        rt = Runtime(model)
        assert rt.labels == gesture_net.config.classes and rt.dt_us == 10_000
        assert rt.arena_used == rt.arena_bytes == load_sgm(sgm).arena_bytes
        assert_same_logits(rt.run_frames(frames), want, type(model).__name__)
    assert Runtime(BUNDLED_MODEL, dt_ms=1).dt_us == 1000
    with pytest.raises(ValueError):
        Runtime(path, dt_ms=1)  # an .sgm runs at its own dt
    with pytest.raises(TypeError):
        Runtime(12)


# ------------------------------------------------------------------ the spike ring (FORMAT.md 3, "Delays")


def delayed_net(rng) -> Network:
    """Delays behind a conv stage (pool 1: a spike ring, 75 inputs = 3 words), behind a
    pooled one (int32 counts) and into the output (pool 1: a spike ring)."""
    net = Network(RANDOM_NETS["conv_stride_mono_delays"](), rng=rng)
    for i, st in enumerate(net.stages[1:], start=1):
        net.params[f"{i}.delays"] = rng.integers(0, 6, st.n_in).astype(np.int64)
    return net


def test_spike_ring_and_count_ring_run_alike():
    """The same delays kept as a bit per input (written by export where allowed) and as
    int32 counts (the flag cleared): the same logits step by step, equal to the
    reference, and the arena FORMAT.md's formula worked out by hand."""
    rng = np.random.default_rng(5)
    net = delayed_net(rng)
    data = sequence(rng, 2, 80, net.config.input_shape, 0.3)
    calibrate(net, data)
    m = load_sgm(export_network(net))
    assert [st.spike_ring for st in m.stages] == [False, True, False, True]
    counts = load_sgm(export_network(net))
    for st in counts.stages:
        st.spike_ring = False
    counts = load_sgm(encode(counts))  # arena_bytes follows the flags
    k = m.n_buckets
    base = 4 * sum(k * st.n_out + (0 if st.is_output else st.n_out) for st in m.stages)
    d = [st.max_delay + 1 for st in m.stages]
    assert m.arena_bytes == base + 4 * (d[1] * 3 + d[2] * m.stages[2].n_in + d[3] * 1)  # 75 -> 3 words, 6 -> 1
    assert counts.arena_bytes == base + 4 * sum(d[l] * m.stages[l].n_in for l in (1, 2, 3))
    bits, ints = Runtime(encode(m)), Runtime(encode(counts))
    assert bits.arena_bytes == m.arena_bytes and ints.arena_bytes == counts.arena_bytes
    r = intref.run(m, np.moveaxis(data.frames, 1, 0))
    assert sum(int(sp.sum()) for sp in r.spikes) > 50, "the test network should spike"
    for i in range(len(data)):
        want = r.logits[:, i]
        assert_same_logits(bits.run_frames(data.frames[i]), want, f"spike ring sample {i}")
        assert_same_logits(ints.run_frames(data.frames[i]), want, f"count ring sample {i}")


@pytest.mark.parametrize("stage,why", [(0, "stage 0 takes event counts"), (2, "stage 2 pools"),
                                       (1, "no delays")])
def test_spike_ring_only_behind_unpooled_hidden_neurons(stage, why):
    """Both loaders refuse the flag where a bit cannot hold every event, at the layer's
    flags field."""
    rng = np.random.default_rng(6)
    net = delayed_net(rng)
    net.params["0.delays"] = rng.integers(0, 3, net.stages[0].n_in).astype(np.int64)
    if why == "no delays":
        del net.params["1.delays"]
    m = load_sgm(export_network(net))
    m.stages[stage].spike_ring = True
    buf = encode(m)
    py, c = verdicts(buf)
    assert py is not None and py[1] == "layers[].flags", why
    assert c == py, why
