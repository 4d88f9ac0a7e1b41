# SPDX-License-Identifier: MIT
"""The C engine of .sgm version 3 (layered spiking networks, NIR's; runtime_c/src/engines/snn)
against the integer reference `pysg.engines.snn.SnnRef` (the definition of FORMAT.md §12):
per-step logits, synops and spikes per entry bit-exact on the golden models, through frames
and through events (sg_feed), through the library and `pysg run --engine c/ref`; the C
loader gives the Python loader's verdict (status field and byte offset) on mutants."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from pysg import jobs
from pysg.cli import main
from pysg.engines import create_engine, engines_for
from pysg.engines.snn import SnnRef
from pysg.events import EVENT_DTYPE
from pysg.recipes import BUNDLED_SAMPLES
from pysg.runtime import Runtime, ffi, lib
from pysg.sgm import encode_snn, load_sgm, resign
from pysg.sgm.layout import HEADER_FIELDS, LAYER_ENTRY_SIZE, field_offset
from pysg.sgm.snn import (NEURON_LIF, NEURON_NONE, NEURON_PARAMS, RESET_SUBTRACT, SBLOB_TABLE_OFFSET, SBLOBS,
                          SKIND_CONV2D,
                          SKIND_DENSE, SKIND_SUMPOOL, SLAYER_FIELDS)
from runtime_c.tests.gen_snn_golden import _layer, _model, run_case, sample_counts, sample_models
from tests.support.loader_verdicts import verdicts

RECORDING = next(BUNDLED_SAMPLES.glob("*.aedat"))
GOLDEN = sample_models()


def _data(name: str) -> bytes:
    return encode_snn(GOLDEN[name])


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_models_bit_exact_per_step(name):
    """Frames through sg_step: each step's logits, synops and spikes per entry are SnnRef's."""
    data = _data(name)
    model = load_sgm(data)
    counts = sample_counts(np.random.default_rng(7), model.input_shape, steps=30)
    logits, stats = run_case(model, counts)
    eng = create_engine("c", jobs.load_model(data))
    assert eng.name == "c" and eng.kind.name == "snn"
    spikes = np.zeros(len(model.layers), np.int64)
    synops = 0
    for t, c in enumerate(counts):
        got = eng.step(c.reshape(model.input_shape))
        np.testing.assert_array_equal(got, logits[t], err_msg=f"{name} step {t}")
        synops += int(stats[t, 0])
        spikes += stats[t, 1:]
        st = eng.stats
        assert st["synops"] == synops and st["spikes"] == spikes.tolist(), (name, t)
    assert len(np.unique(logits, axis=0)) >= 3  # the comparison is not of constants
    # scores: every step summed (whole window), prediction the first largest
    np.testing.assert_array_equal(eng.scores, logits.astype(np.int64).sum(axis=0))
    assert eng.prediction == int(np.argmax(logits.astype(np.int64).sum(axis=0)))
    # reset: the same run again from the zero state
    np.testing.assert_array_equal(eng.run_frames(counts.reshape(len(counts), *model.input_shape)), logits)


@pytest.mark.parametrize("name", ["conv", "delays", "dense"])
def test_events_through_feed_equal_the_reference(name):
    """Raw events (sg_feed, in chunks that split steps; some off the sensor or with p > 1,
    a silent gap of steps) give the reference engine's logits, scores and counters."""
    data = _data(name)
    model = load_sgm(data)
    rng = np.random.default_rng(3)
    (sw, sh), dt = model.sensor_size, model.dt_us
    n = 3000
    ev = np.zeros(n, EVENT_DTYPE)
    t = np.sort(rng.integers(0, 40 * dt, n))
    t[t > 20 * dt] += 6 * dt  # steps without events
    ev["t"] = 1_000_000 + t
    ev["x"] = rng.integers(0, sw + 3, n)
    ev["y"] = rng.integers(0, sh + 2, n)
    ev["p"] = rng.choice([0, 1, 1, 2], n)
    ref, c = create_engine("ref", jobs.load_model(data)), create_engine("c", jobs.load_model(data))
    per_step = {}
    for eng in (ref, c):
        eng.reset()
        rows = []
        for chunk in np.array_split(ev, 17):
            eng.feed(chunk)
            eng.advance_to(int(chunk["t"][-1]))
            rows.append(eng.logits)
        eng.advance_to(int(ev["t"][-1]) + 2 * dt)
        per_step[eng.name] = np.array(rows)
    np.testing.assert_array_equal(per_step["ref"], per_step["c"])
    assert ref.stats == c.stats and ref.stats["events_dropped"] > 0 and ref.stats["steps"] > 40
    np.testing.assert_array_equal(ref.scores, c.scores)
    assert ref.prediction == c.prediction
    np.testing.assert_array_equal(ref.run_events(ev), c.run_events(ev))


def gesture_snn() -> bytes:
    """A 128x128-sensor gesture network: (2,16,16) counts -> conv 3x3/2 LIF -> sum pool 2
    -> dense 11 LIF with membrane logits (zero-mean readout without bias: its prediction
    follows where the recording's activity is)."""
    rng = np.random.default_rng(11)
    layers = [_layer(rng, SKIND_CONV2D, NEURON_LIF, (2, 16, 16), (6, 8, 8), reset=RESET_SUBTRACT, kernel=(3, 3),
                     stride=(2, 2), padding=(1, 1), gain_shift=22),
              _layer(rng, SKIND_SUMPOOL, NEURON_NONE, (6, 8, 8), (6, 4, 4), kernel=(2, 2), stride=(2, 2),
                     per_channel=False, gain_shift=30),
              _layer(rng, SKIND_DENSE, NEURON_LIF, (6, 4, 4), (11, 1, 1), reset=RESET_SUBTRACT, logits_v=True,
                     gain_shift=23, bias=False)]
    layers[2].weights[:] = rng.integers(-100, 101, layers[2].weights.shape)
    layers[2].neuron[:, NEURON_PARAMS.index("v_bias")] = 0
    m = _model(layers, (2, 16, 16), labels=[f"g{i}" for i in range(11)])
    m.sensor_size, m.downsample, m.dt_us = (128, 128), 8, 50_000
    return encode_snn(m)


def test_cli_and_library_run_ref_equal_c(tmp_path, capsys):
    """`pysg run --engine c` and `--engine ref` on an snn .sgm and a real recording: the
    same per-step logits, scores, prediction and counters; the library's run_file alike."""
    path = tmp_path / "gesture_snn.sgm"
    path.write_bytes(gesture_snn())
    assert engines_for("snn") == ["c", "ref"]
    out = {}
    for e in ("ref", "c"):
        dump = tmp_path / f"{e}.npy"
        assert main(["run", str(path), str(RECORDING), "--one-sample", "--engine", e, "--json",
                     "--dump-logits", str(dump)]) == 0
        out[e] = json.loads(capsys.readouterr().out), np.load(dump)
    (run_r, lg_r), (run_c, lg_c) = out["ref"], out["c"]
    assert run_r == run_c and run_r["steps"] > 50 and run_r["synops"] > 0
    assert lg_r.dtype == lg_c.dtype == np.int32 and lg_r.shape == (run_r["steps"], 11)
    np.testing.assert_array_equal(lg_r, lg_c)
    assert len(np.unique(lg_r, axis=0)) > 10 and len(set(run_r["scores"])) > 1
    ref, c = (jobs.run_file(path, RECORDING, engine=e) for e in ("ref", "c"))
    np.testing.assert_array_equal(ref.pop("logits"), c.pop("logits"))
    assert ref == c


def test_c_model_queries():
    """What the C side says about a version 3 model: its kind, count channels, window,
    layers (fan-in as sg_runtime.h defines it), arena = FORMAT.md §14 (Python's formula);
    tensor input is refused."""
    data = _data("conv")
    model = load_sgm(data)
    rt = Runtime(data)
    m = rt._model
    assert lib.sg_model_kind(m) == 3 == lib.SG_FORMAT_VERSION_SNN
    assert lib.sg_model_count_channels(m) == 2 and lib.sg_model_window(m) == 1
    assert lib.sg_arena_size(m) == model.arena_bytes == lib.sg_arena_used(rt._rt)
    assert lib.sg_model_n_layers(m) == 4
    info = ffi.new("sg_layer_info *")
    want = [(SKIND_CONV2D, 0, 4 * 8 * 8, 1 * 3 * 3), (SKIND_SUMPOOL, 0, 4 * 4 * 4, 0),
            (SKIND_CONV2D, 0, 6 * 2 * 1, 4 * 3 * 2), (SKIND_DENSE, 1, 3, 12)]
    for i, w in enumerate(want):
        assert lib.sg_model_layer(m, i, info) == 0
        assert (info.kind, info.flags, info.n_out, info.fan_in) == w
    assert lib.sg_step_tensor(rt._rt, ffi.new("int8_t[]", 128)) == lib.SG_ERR_UNSUPPORTED


# ---------------------------------------------------------------- the loader

def _entry(data: bytes, i: int) -> int:
    return struct.unpack_from("<I", data, field_offset(HEADER_FIELDS, "layers_offset"))[0] + i * LAYER_ENTRY_SIZE


def _same(data: bytes, where) -> bool:
    py, c = verdicts(data)
    assert py == c, f"{where}: python {py}, C {c}"
    return py is not None


@pytest.mark.parametrize("name", ["conv", "delays"])
def test_loader_every_header_and_table_byte_like_python(name):
    """Each byte of the header and the layer table changed (re-signed, so that the change
    reaches the field checks), and a sample of blob bytes: the C loader refuses exactly
    what the Python loader refuses, at the same offset and field."""
    data = _data(name)
    n = len(load_sgm(data).layers)
    end = _entry(data, n)
    rng = np.random.default_rng(5)
    positions = list(range(64)) + list(range(_entry(data, 0), end))
    positions += sorted(rng.choice(np.arange(end, len(data)), 150, replace=False).tolist())
    refused = 0
    for pos in positions:
        b = bytearray(data)
        b[pos] ^= int(rng.integers(1, 256))
        crc = pos in range(16, 20) or pos in range(60, 64)
        refused += _same(bytes(b) if crc else resign(b), f"byte {pos}")
    assert refused > (end - _entry(data, 0)) // 2
    for cut in range(0, len(data), 37):
        assert verdicts(data[:cut])[0] is not None and _same(data[:cut], f"truncated to {cut}")


@pytest.mark.parametrize("name", ["conv", "delays", "dense", "logits"])
def test_loader_field_values_like_python(name):
    """Every u16 field of every entry set to its edge values, every neuron record field to
    the edges of its range, mult / shift / delays past theirs: the same verdicts."""
    data = _data(name)
    model = load_sgm(data)
    refused = 0
    for e, ly in enumerate(model.layers):
        base = _entry(data, e)
        for fname, off, code in SLAYER_FIELDS:
            if code != "H":
                continue
            (v,) = struct.unpack_from("<H", data, base + off)
            for new in {0, 1, 2, 3, 0xFFFF, (v + 1) & 0xFFFF, (v - 1) & 0xFFFF}:
                if new != v:
                    b = bytearray(data)
                    struct.pack_into("<H", b, base + off, new)
                    refused += _same(resign(b), f"layers[{e}].{fname} = {new}")
        blob = {b: struct.unpack_from("<II", data, base + SBLOB_TABLE_OFFSET + 8 * i) for i, b in enumerate(SBLOBS)}
        if blob["neuron"][1]:
            for k in range(min(blob["neuron"][1] // 4, 2 * len(NEURON_PARAMS))):
                for new in (-1, 0, 1, 1 << 30, (1 << 30) + 1, -(1 << 31), (1 << 31) - 1):
                    b = bytearray(data)
                    struct.pack_into("<i", b, blob["neuron"][0] + 4 * k, new)
                    refused += _same(resign(b), f"layers[{e}].neuron[{k}] = {new}")
        for bname, fmt, values in (("mult", "<i", (0, -5, 1)), ("shift", "<B", (62, 63, 255)),
                                   ("delays", "<B", (ly.max_delay, ly.max_delay + 1)), ("bias", "<i", (-(1 << 31),)),
                                   ("weights", "<b", (-128, 127))):
            if blob[bname][1]:
                for new in values:
                    b = bytearray(data)
                    struct.pack_into(fmt, b, blob[bname][0], new)
                    refused += _same(resign(b), f"layers[{e}].{bname}[0] = {new}")
    assert refused > 100


def test_loader_accumulator_bound_like_python():
    """|bias| + 255 sum|w| (+ 255 sum|r| when recurrent) of one output at exactly 2^31 is
    refused at layers[].kind by both loaders; one less loads in both."""
    rng = np.random.default_rng(2)
    for rec in (False, True):
        ly = _layer(rng, SKIND_DENSE, NEURON_LIF, (2, 64, 64), (4, 1, 1), reset=RESET_SUBTRACT, recurrent=rec)
        ly.weights[:] = 127
        ly.bias[:] = 0
        data = encode_snn(_model([ly], (2, 64, 64)))
        r = 255 * int(np.abs(ly.rec_weights[2].astype(np.int64)).sum()) if rec else 0
        bias_off = struct.unpack_from("<I", data, _entry(data, 0) + field_offset(SLAYER_FIELDS, "bias_offset"))[0]
        for bias, refused in (((1 << 31) - 255 * 127 * 8192 - r, True), ((1 << 31) - 1 - 255 * 127 * 8192 - r, False)):
            b = bytearray(data)
            struct.pack_into("<i", b, bias_off + 8, -bias)
            py, c = verdicts(resign(b))
            assert py == c and (py is not None) == refused, (rec, bias, py, c)
            assert refused is False or py[1] == "layers[].kind"


def test_cli_eval_ref_equals_c(tmp_path, capsys):
    """`pysg eval --engine c` and `--engine ref` of an snn .sgm on the bundled gesture
    folder: the same summary (accuracy, spikes, synops), and per sample the same scores."""
    path = tmp_path / "gesture_snn.sgm"
    path.write_bytes(gesture_snn())
    out = {}
    for e in ("ref", "c"):
        assert main(["eval", str(path), str(BUNDLED_SAMPLES), "--engine", e, "--json"]) == 0
        out[e] = json.loads(capsys.readouterr().out)
    assert out["ref"].pop("engine") == "ref" and out["c"].pop("engine") == "c"
    assert out["ref"] == out["c"] and out["ref"]["n"] == 11
    got = {e: jobs.evaluate(path, BUNDLED_SAMPLES, engine=e, keep_logits=True) for e in ("ref", "c")}
    for a, b in zip(got["ref"].samples, got["c"].samples):
        assert a.prediction == b.prediction and (a.spikes, a.synops) == (b.spikes, b.synops)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.logits, b.logits)
    assert len({s.prediction for s in got["c"].samples}) > 1
