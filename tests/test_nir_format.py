# SPDX-License-Identifier: MIT
"""The .sgm version 3 kind (layered spiking networks, docs/FORMAT.md 11-15): round trip,
the validating loader (field and byte offset of the first bad field, written out by hand
from the tables of FORMAT.md 11.1), inspect, and the integer reference's arithmetic
against hand-computed steps (FORMAT.md 12)."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from pysg import sgm
from pysg.engines import LoadedModel, create_engine, kind_of
from pysg.engines.snn import SnnRef, decay, rround
from pysg.sgm.snn import (DECAY_ONE, FORMAT_VERSION_SNN, NEURON_CUBALIF, NEURON_IF, NEURON_INTEGRATOR, NEURON_LIF,
                          NEURON_NONE, RESET_SUBTRACT, RESET_SUBTRACT_NEXT, RESET_TO_VALUE, SKIND_DENSE,
                          SKIND_IDENTITY, SgmSnnLayer, SgmSnnModel)
from runtime_c.tests.gen_snn_golden import run_case, sample_counts, sample_models

HDR = 64


def _layers_offset(data: bytes) -> int:
    return struct.unpack_from("<I", data, 52)[0]


def _patch(data: bytes, offset: int, fmt: str, value) -> bytes:
    buf = bytearray(data)
    struct.pack_into("<" + fmt, buf, offset, value)
    return sgm.resign(buf)


def _rejects(data: bytes, offset: int, field: str, match: str) -> None:
    with pytest.raises(sgm.SgmFormatError, match=match) as e:
        sgm.load_sgm(data)
    assert (e.value.offset, e.value.field) == (offset, field)


def _neuron(beta=DECAY_ONE, thr=0, bias=0, beta_syn=0, gain=0, v_reset=0):
    return np.array([[beta, beta_syn, gain, thr, v_reset, bias]], np.int32)


def _one_neuron(neuron_kind: int, rec: np.ndarray, *, reset=0, weight=1, logits_v=False, fire_ge=False,
                mult=1, shift=0) -> SgmSnnModel:
    """One input cell -> one neuron (dense 1x1), the output."""
    ly = SgmSnnLayer(kind=SKIND_DENSE, neuron_kind=neuron_kind, is_output=True, in_shape=(1, 1, 1),
                     out_shape=(1, 1, 1), mult=np.array([mult], np.int32), shift=np.array([shift], np.uint8),
                     reset=reset, weights=np.array([[weight]], np.int8), logits_v=logits_v, fire_ge=fire_ge,
                     neuron=None if neuron_kind == NEURON_NONE else rec)
    return SgmSnnModel(FORMAT_VERSION_SNN, 1000, (1, 1, 1), (1, 1), 1, ["only"], [ly])


def _run(model: SgmSnnModel, inputs) -> list[int]:
    ref = SnnRef(sgm.load_sgm(sgm.encode_snn(model)))
    return [int(ref.step(np.array([c]))[0][0]) for c in inputs]


# ------------------------------------------------------------------ rounding, by hand


def test_rounding_is_half_up_with_a_flooring_shift():
    assert rround(np.array([-5, -3, -1, 1, 3, 5, 7]), 1).tolist() == [-2, -1, 0, 1, 2, 3, 4]
    assert rround(np.array([-6, 6]), 2).tolist() == [-1, 2]          # -1.5 -> -1, 1.5 -> 2
    assert rround(np.array([-7]), 0).tolist() == [-7]
    assert decay(np.array([1000, -1000, 3]), np.array(3 << 28)).tolist() == [750, -750, 2]  # 2.25 -> 2
    assert decay(np.array([2**31 - 1, -2**31]), DECAY_ONE).tolist() == [2**31 - 1, -2**31]


# ------------------------------------------------------------------ neurons, by hand


def test_if_subtract_reset_by_hand():
    # weight 3, mult/shift 1: v += 3 per input event; threshold 5, subtract
    m = _one_neuron(NEURON_IF, _neuron(thr=5), reset=RESET_SUBTRACT, weight=3)
    # v: 3, 6 -> spike, 1; 4; 7 -> spike, 2; 2 (no input)
    assert _run(m, [1, 1, 1, 1, 0]) == [0, 1, 0, 1, 0]
    m.layers[0].logits_v = True
    assert _run(m, [1, 1, 1, 1, 0]) == [3, 1, 4, 2, 2]


def test_fire_on_equal_and_reset_to_value_by_hand():
    m = _one_neuron(NEURON_IF, _neuron(thr=6, v_reset=-2), reset=RESET_TO_VALUE, weight=3, fire_ge=True,
                    logits_v=True)
    assert _run(m, [1, 1, 1, 1]) == [3, -2, 1, 4]      # 6 >= 6 fires and goes to -2
    m.layers[0].fire_ge = False
    assert _run(m, [1, 1, 1, 1]) == [3, 6, -2, 1]      # 6 > 6 does not; 9 does


def test_lif_decay_and_snntorch_next_step_reset_by_hand():
    # beta 0.5, threshold 10, weight 8; snnTorch: v_t = beta v_{t-1} + I - thr s_{t-1}
    rec = _neuron(beta=DECAY_ONE // 2, thr=10)
    m = _one_neuron(NEURON_LIF, rec, reset=RESET_SUBTRACT_NEXT, weight=8, logits_v=True)
    # v: 8; 4+8=12 (spike); 6+8-10=4; 2+8=10 (no spike, 10 > 10 false); 5
    assert _run(m, [1, 1, 1, 1, 0]) == [8, 12, 4, 10, 5]
    m = _one_neuron(NEURON_LIF, rec, reset=RESET_SUBTRACT, weight=8, logits_v=True)
    # immediate subtract: 8; 12 -> 2; 1+8=9; 4.5+8 = 12.5 -> rnd 13 (4.5 rounds up) -> 3
    assert _run(m, [1, 1, 1, 1]) == [8, 2, 9, 3]


def test_cubalif_current_then_membrane_by_hand():
    # i = 0.5 i + I; u = i * 1.5 (Q16); v = 0.75 v + u; weight 4, mult 1 << 3 / 2^1 = x4
    rec = _neuron(beta=3 * DECAY_ONE // 4, beta_syn=DECAY_ONE // 2, gain=3 << 15, thr=1000)
    m = _one_neuron(NEURON_CUBALIF, rec, reset=RESET_SUBTRACT, weight=4, mult=8, shift=1, logits_v=True)
    # I = 16; i: 16, 24, 12; u: 24, 36, 18; v: 24, 18+36=54, 40.5->41 +18 = 59
    assert _run(m, [1, 1, 0]) == [24, 54, 59]


def test_integrator_saturates_and_none_passes_the_current():
    m = _one_neuron(NEURON_INTEGRATOR, _neuron(), weight=127, mult=(1 << 31) - 1, shift=0)
    assert _run(m, [255, 255, 255]) == [2**31 - 1] * 3
    m = _one_neuron(NEURON_NONE, None, weight=-7, mult=3, shift=1)
    assert _run(m, [5, 0, 300]) == [-52, 0, -2677]   # rnd(-105, 1) = -52; 300 saturates: rnd(-5355, 1)


def test_v_bias_and_threshold_neuron_by_hand():
    from pysg.sgm.snn import NEURON_THRESHOLD
    m = _one_neuron(NEURON_THRESHOLD, _neuron(beta=0, thr=4, bias=-1), weight=2)
    assert _run(m, [1, 2, 3, 0]) == [0, 0, 1, 0]  # v = 2x - 1 > 4


# ------------------------------------------------------------------ format


@pytest.mark.parametrize("name", ["dense", "conv", "delays", "logits", "affine"])
def test_round_trip_and_inspect(name):
    model = sample_models()[name]
    data = sgm.encode_snn(model)
    m = sgm.load_sgm(data)
    assert isinstance(m, SgmSnnModel) and sgm.format_of(m).name == "snn"
    assert sgm.encode_snn(m) == data and m.file_bytes == len(data)
    info = sgm.inspect_sgm(data)
    assert info["format_version"] == 3 and len(info["layers"]) == len(model.layers)
    assert info["layers"][-1]["output"] and info["arena_bytes"] == m.arena_bytes
    assert "spiking network" in sgm.inspect_text("x.sgm", info)


def test_arena_formula_written_out():
    m = sgm.load_sgm(sgm.encode_snn(sample_models()["delays"]))
    # input 1x6x6 = 36 cells; entries: identity 36 (threshold, D=3, ring 4*36), sumpool LIF 9,
    # dense LIF 8 (D=5 over 9 inputs: ring 54 -> 56), integrator 5
    want = 72 + 36 + (36 + 4 * 36 + 144) + (12 + 4 * 9) + (8 + 4 * 8 + 56) + (8 + 4 * 5) + 4 * 36 + 4 * 5
    assert m.arena_bytes == want


def test_engine_runs_events_like_frames():
    model = sgm.load_sgm(sgm.encode_snn(sample_models()["conv"]))
    lm = LoadedModel(kind_of(model), model, sgm.encode_snn(model))
    eng = create_engine("ref", lm)
    counts = sample_counts(np.random.default_rng(3), model.input_shape, 16)
    want, stats = run_case(model, counts)
    got = eng.run_frames(counts)
    assert np.array_equal(got, want)
    st = eng.stats
    assert st["synops"] == int(stats[:, 0].sum()) and st["spikes"] == stats[:, 1:].sum(axis=0).tolist()
    assert np.array_equal(eng.scores, want.astype(np.int64).sum(axis=0))


def _golden() -> bytes:
    return sgm.encode_snn(sample_models()["dense"])


def test_loader_names_the_first_bad_field():
    data = _golden()
    lo = _layers_offset(data)
    _rejects(_patch(data, lo + 0, "H", 9), lo, "layers[0].kind", "unknown layer kind 9")
    _rejects(_patch(data, lo + 2, "H", 0x40), lo + 2, "layers[0].flags", "unknown flag bits")
    _rejects(_patch(data, lo + 4, "H", 3), lo + 4, "layers[0].in_c", "previous entry / model input")
    _rejects(_patch(data, lo + 12, "H", 2), lo + 12, "layers[0].out_h", r"dense: output \(16, 2, 1\)")
    _rejects(_patch(data, lo + 30, "H", 2), lo + 30, "layers[0].max_delay", "must be 0 without")
    _rejects(_patch(data, lo + 32, "H", 7), lo + 32, "layers[0].neuron", "unknown neuron kind 7")
    _rejects(_patch(data, lo + 32, "H", 4), lo + 34, "layers[0].reset", "has no reset")
    _rejects(_patch(data, lo + 36, "I", 1), lo + 36, "layers[0].reserved", "reserved")
    # the mult blob (third in the table: offset at 56, size at 60)
    mult_off = struct.unpack_from("<I", data, lo + 56)[0]
    _rejects(_patch(data, mult_off + 4, "i", 0), mult_off + 4, "layers[0].mult[1]", "mult 0 must be >= 1")
    # the second entry's neuron blob: per-neuron records, record 1 field threshold (index 3)
    e1 = lo + 96
    n_off = struct.unpack_from("<I", data, e1 + 88)[0]
    _rejects(_patch(data, n_off + 4 * (6 + 3), "i", 0), n_off + 4 * 9, "layers[1].neuron[9]",
             "threshold 0 must be >= 1")
    _rejects(_patch(data, n_off, "i", DECAY_ONE + 1), n_off, "layers[1].neuron[0]", "beta_mem")
    _rejects(_patch(data, 20, "I", 4), 20, "arena_bytes", "arena_bytes 4 != ")
    _rejects(_patch(data, 30, "H", 1), 30, "n_buckets", "must be 0 in version 3")


def test_loader_refuses_an_accumulator_that_could_overflow():
    big = SgmSnnLayer(kind=SKIND_IDENTITY, neuron_kind=NEURON_NONE, is_output=False, in_shape=(1, 1, 1),
                      out_shape=(1, 1, 1), mult=np.array([1], np.int32), shift=np.array([0], np.uint8))
    n = 80000  # 127 * 255 * 80000 > 2^31
    dense = SgmSnnLayer(kind=SKIND_DENSE, neuron_kind=NEURON_IF, is_output=True, in_shape=(1, 1, 1),
                        out_shape=(1, 1, 1), mult=np.array([1], np.int32), shift=np.array([0], np.uint8),
                        reset=RESET_SUBTRACT, weights=np.array([[127]], np.int8), neuron=_neuron(thr=5),
                        rec_weights=None)
    m = SgmSnnModel(FORMAT_VERSION_SNN, 1000, (1, 1, 1), (1, 1), 1, ["a"], [big, dense])
    data = sgm.encode_snn(m)  # fine: 127 * 255
    assert sgm.load_sgm(data).layers[1].weights[0, 0] == 127
    wide = SgmSnnLayer(kind=SKIND_DENSE, neuron_kind=NEURON_IF, is_output=True, in_shape=(2, 1, n // 2),
                       out_shape=(1, 1, 1), mult=np.array([1], np.int32), shift=np.array([0], np.uint8),
                       reset=RESET_SUBTRACT, weights=np.full((1, n), 127, np.int8), neuron=_neuron(thr=5))
    with pytest.raises(sgm.SgmFormatError, match="accumulator could overflow") as e:
        sgm.encode_snn(SgmSnnModel(FORMAT_VERSION_SNN, 1000, (2, 1, n // 2), (n // 2, 1), 1, ["a"], [wide]))
    assert e.value.field == "layers[0].kind"


def test_golden_generator_writes_every_case(tmp_path):
    from runtime_c.tests.gen_snn_golden import main
    assert main([str(tmp_path)]) == 0
    lines = (tmp_path / "snn_cases.txt").read_text().split("\n")[:-1]
    assert [ln.split()[0] for ln in lines] == list(sample_models())
    for ln in lines:
        name, steps, cells, classes, entries = ln.split()[0], *map(int, ln.split()[1:])
        m = sgm.read_sgm(tmp_path / f"snn_{name}.sgm")
        counts = np.fromfile(tmp_path / f"snn_{name}.in", "<u2").reshape(steps, cells)
        logits, stats = run_case(m, counts)
        assert np.array_equal(np.fromfile(tmp_path / f"snn_{name}.out", "<i4").reshape(steps, classes), logits)
        assert np.array_equal(np.fromfile(tmp_path / f"snn_{name}.stats", "<u4").reshape(steps, 1 + entries), stats)


@pytest.mark.parametrize("name", ["dense", "conv", "delays"])
def test_random_mutations_raise_only_format_errors(name):
    """Random field and blob bytes changed (CRCs re-signed so the checks behind them run):
    the loader either accepts the file or raises SgmFormatError, never anything else, and
    an accepted file runs a step."""
    data = sgm.encode_snn(sample_models()[name])
    rng = np.random.default_rng(7)
    accepted = 0
    for _ in range(300):
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            buf[int(rng.integers(HDR, len(buf)))] = int(rng.integers(0, 256))
        try:
            m = sgm.load_sgm(sgm.resign(buf))
        except sgm.SgmFormatError as e:
            assert 0 <= e.offset < len(buf) and e.field
            continue
        accepted += 1
        SnnRef(m).step(np.ones(int(np.prod(m.input_shape)), np.int64))
    assert accepted < 300


def test_synops_count_the_connections_of_nonzero_inputs():
    """The reference's per-input fan-out equals FORMAT.md's definition: per output, its
    taps inside the image with a nonzero input (a conv of the nonzero map with ones)."""
    from pysg.engines.snn import fan_out, synaptic
    from pysg.sgm.snn import SKIND_CONV2D, SKIND_SUMPOOL

    rng = np.random.default_rng(0)
    seen = 0
    for m in sample_models().values():
        for ly in m.layers:
            if ly.kind not in (SKIND_CONV2D, SKIND_SUMPOOL):
                continue
            for _ in range(4):
                a = (rng.random(ly.n_in) < 0.3).astype(np.int64)
                ones = None if ly.kind == SKIND_SUMPOOL else np.ones_like(ly.weights)
                assert int(synaptic(ly, a, ones).sum()) == int(fan_out(ly)[a != 0].sum())
                seen += 1
    assert seen >= 16
