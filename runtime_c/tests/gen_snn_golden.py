# SPDX-License-Identifier: MIT
"""Golden data of version 3 `.sgm` models (layered spiking networks, NIR's) for the C
engine's test.

Usage (from the repository root):
    python -m runtime_c.tests.gen_snn_golden OUTDIR

Small random networks (:func:`sample_models`, seeded) that together cover every
synaptic kind (dense, conv2d with groups/stride/padding, sum pooling, identity), every
neuron kind (LIF, CubaLIF, IF, LI, Integrator, Threshold, none), every reset (subtract,
to value, snnTorch's subtract at the next step), fire-on-equal, membrane and spike
logits, recurrence, per-input delays, per-channel and single requantisation and neuron
records, input counts that saturate (> 255 and 65535) and int32 state that saturates
(case "saturate": current, membrane and integrator at both ends). For every step the expected
outputs are `pysg.engines.snn.SnnRef`'s, the definition of the arithmetic
(docs/FORMAT.md section 12).

Writes snn_cases.txt (one line per case: name, steps, input cells per step, classes,
entries), and per case snn_NAME.sgm, snn_NAME.in (u16 counts C x H x W per step),
snn_NAME.out (int32 logits per step) and snn_NAME.stats (per step: u32 synops, then u32
nonzero activations per entry), all little-endian.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pysg.engines.snn import SnnRef
from pysg.sgm import encode_snn, load_sgm
from pysg.sgm.snn import (DECAY_ONE, FORMAT_VERSION_SNN, NEURON_CUBALIF, NEURON_IF, NEURON_INTEGRATOR, NEURON_LI,
                          NEURON_LIF, NEURON_NONE, NEURON_PARAMS, NEURON_THRESHOLD, RESET_NONE, RESET_SUBTRACT,
                          RESET_SUBTRACT_NEXT, RESET_TO_VALUE, SKIND_CONV2D, SKIND_DENSE, SKIND_IDENTITY,
                          SKIND_SUMPOOL, SgmSnnLayer, SgmSnnModel)

STEPS = 24
THR = 4096


def _records(rng, n: int, neuron: int, reset: int, per_neuron: bool) -> np.ndarray:
    """int32 neuron records (1 or n rows) with values valid for the kind."""
    rows = n if per_neuron else 1
    rec = np.zeros((rows, len(NEURON_PARAMS)), np.int64)
    col = {k: i for i, k in enumerate(NEURON_PARAMS)}
    beta = {NEURON_IF: DECAY_ONE, NEURON_INTEGRATOR: DECAY_ONE, NEURON_THRESHOLD: 0}.get(neuron)
    rec[:, col["beta_mem"]] = beta if beta is not None else rng.integers(DECAY_ONE // 2, DECAY_ONE, rows)
    if neuron == NEURON_CUBALIF:
        rec[:, col["beta_syn"]] = rng.integers(DECAY_ONE // 4, DECAY_ONE * 3 // 4, rows)
        rec[:, col["syn_gain"]] = rng.integers(20000, 90000, rows)
    if neuron in (NEURON_LIF, NEURON_CUBALIF, NEURON_IF, NEURON_THRESHOLD):
        rec[:, col["threshold"]] = rng.integers(THR // 2, 2 * THR, rows)
    if reset == RESET_TO_VALUE:
        rec[:, col["v_reset"]] = rng.integers(-THR // 2, THR // 4, rows)
    rec[:, col["v_bias"]] = rng.integers(-64, 128, rows)
    return rec.astype(np.int32)


def _layer(rng, kind, neuron, in_shape, out_shape, *, reset=RESET_NONE, kernel=(1, 1), stride=(1, 1),
           padding=(0, 0), groups=1, per_channel=True, per_neuron=False, bias=True, recurrent=False,
           max_delay=0, fire_ge=False, logits_v=False, gain_shift=26) -> SgmSnnLayer:
    n_in, n_out, oc = int(np.prod(in_shape)), int(np.prod(out_shape)), out_shape[0]
    w = None
    if kind == SKIND_DENSE:
        w = rng.integers(-90, 110, (n_out, n_in))
    elif kind == SKIND_CONV2D:
        w = rng.integers(-90, 110, (oc, in_shape[0] // groups, *kernel))
    n_rq = oc if per_channel else 1
    return SgmSnnLayer(
        kind=kind, neuron_kind=neuron, is_output=False, in_shape=in_shape, out_shape=out_shape,
        mult=rng.integers(1 << 29, 1 << 31, n_rq).astype(np.int32), shift=np.full(n_rq, gain_shift, np.uint8),
        reset=reset, kernel=kernel, stride=stride, padding=padding, groups=groups, fire_ge=fire_ge,
        logits_v=logits_v, weights=None if w is None else w.astype(np.int8),
        bias=rng.integers(-300, 600, oc).astype(np.int32) if bias and w is not None else None,
        rec_weights=rng.integers(-100, 100, (n_out, n_out)).astype(np.int8) if recurrent else None,
        delays=rng.integers(0, max_delay + 1, n_in).astype(np.uint8) if max_delay else None, max_delay=max_delay,
        neuron=None if neuron == NEURON_NONE else _records(rng, n_out, neuron, reset, per_neuron))


def _model(layers: list[SgmSnnLayer], input_shape, labels=None) -> SgmSnnModel:
    layers[-1].is_output = True
    c, h, w = input_shape
    labels = labels or [f"c{i}" for i in range(layers[-1].n_out)]
    return SgmSnnModel(FORMAT_VERSION_SNN, 1000, input_shape, (w * 2, h * 2), 2, labels, layers)


def sample_models(seed: int = 20261205) -> dict[str, SgmSnnModel]:
    """The golden cases: name -> model (every field documented in FORMAT.md 11 used)."""
    rng = np.random.default_rng(seed)
    L = _layer
    dense = _model([
        L(rng, SKIND_DENSE, NEURON_LIF, (2, 4, 4), (16, 1, 1), reset=RESET_SUBTRACT, recurrent=True),
        L(rng, SKIND_DENSE, NEURON_LIF, (16, 1, 1), (12, 1, 1), reset=RESET_SUBTRACT_NEXT, per_neuron=True),
        L(rng, SKIND_DENSE, NEURON_LIF, (12, 1, 1), (4, 1, 1), reset=RESET_SUBTRACT_NEXT, per_channel=False,
          bias=False)],
        (2, 4, 4))
    conv = _model([
        L(rng, SKIND_CONV2D, NEURON_CUBALIF, (2, 8, 8), (4, 8, 8), reset=RESET_TO_VALUE, kernel=(3, 3),
          padding=(1, 1), groups=2, per_neuron=True),
        L(rng, SKIND_SUMPOOL, NEURON_NONE, (4, 8, 8), (4, 4, 4), kernel=(2, 2), stride=(2, 2), per_channel=False,
          gain_shift=30),
        L(rng, SKIND_CONV2D, NEURON_IF, (4, 4, 4), (6, 2, 1), reset=RESET_SUBTRACT, kernel=(3, 2), stride=(1, 3),
          fire_ge=True),
        L(rng, SKIND_DENSE, NEURON_LI, (6, 2, 1), (3, 1, 1), per_channel=False, gain_shift=24)],
        (2, 8, 8))
    delays = _model([
        L(rng, SKIND_IDENTITY, NEURON_THRESHOLD, (1, 6, 6), (1, 6, 6), max_delay=3, per_channel=False,
          gain_shift=19),
        L(rng, SKIND_SUMPOOL, NEURON_LIF, (1, 6, 6), (1, 3, 3), kernel=(3, 3), stride=(2, 2), padding=(1, 1),
          reset=RESET_SUBTRACT, per_neuron=True, gain_shift=20),
        L(rng, SKIND_DENSE, NEURON_LIF, (1, 3, 3), (8, 1, 1), max_delay=5, reset=RESET_SUBTRACT, recurrent=True,
          bias=False),
        L(rng, SKIND_DENSE, NEURON_INTEGRATOR, (8, 1, 1), (5, 1, 1), gain_shift=28)],
        (1, 6, 6))
    logits = _model([
        L(rng, SKIND_SUMPOOL, NEURON_NONE, (2, 4, 4), (2, 3, 3), kernel=(2, 2), stride=(2, 2), padding=(1, 1),
          gain_shift=30),
        L(rng, SKIND_CONV2D, NEURON_LIF, (2, 3, 3), (4, 3, 3), kernel=(1, 1), reset=RESET_TO_VALUE),
        L(rng, SKIND_DENSE, NEURON_LIF, (4, 3, 3), (6, 1, 1), reset=RESET_SUBTRACT, logits_v=True)],
        (2, 4, 4))
    affine = _model([
        L(rng, SKIND_DENSE, NEURON_IF, (2, 4, 4), (10, 1, 1), reset=RESET_SUBTRACT),
        L(rng, SKIND_DENSE, NEURON_NONE, (10, 1, 1), (3, 1, 1), gain_shift=20)], (2, 4, 4))
    sat = _model([
        L(rng, SKIND_DENSE, NEURON_CUBALIF, (2, 4, 4), (6, 1, 1), reset=RESET_SUBTRACT, gain_shift=2),
        L(rng, SKIND_DENSE, NEURON_INTEGRATOR, (6, 1, 1), (3, 1, 1), gain_shift=10)], (2, 4, 4))
    col = {k: i for i, k in enumerate(NEURON_PARAMS)}
    rec = sat.layers[0].neuron
    rec[:, col["beta_syn"]] = DECAY_ONE                 # the current integrates and saturates
    rec[:, col["syn_gain"]] = 3 << 16
    rec[:, col["threshold"]] = 1 << 30
    rec[:, col["v_bias"]] = -(1 << 29)
    return {"dense": dense, "conv": conv, "delays": delays, "logits": logits, "affine": affine, "saturate": sat}


def sample_counts(rng: np.random.Generator, shape: tuple[int, int, int], steps: int = STEPS) -> np.ndarray:
    """(steps, C*H*W) uint16 counts: sparse Poisson-like input with a silent step, a burst
    and saturating cells (> 255, 65535)."""
    lam = np.full(steps, 0.8)
    lam[5] = 0.0
    lam[9] = 4.0
    c = rng.poisson(lam[:, None], (steps, int(np.prod(shape)))).astype(np.uint16)
    c[11, 0] = 300
    c[12, -1] = 65535
    return c


def run_case(model: SgmSnnModel, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logits (T, n_classes) int32, stats (T, 1 + entries) uint32) of the reference."""
    ref = SnnRef(model)
    outs, stats = [], []
    for c in counts:
        logits, spikes, synops = ref.step(c)
        outs.append(logits)
        stats.append([synops] + spikes)
    return np.asarray(outs, np.int64).astype(np.int32), np.asarray(stats, np.uint32)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261205)
    lines = []
    for name, model in sample_models().items():
        data = encode_snn(model)
        model = load_sgm(data)
        counts = sample_counts(rng, model.input_shape)
        logits, stats = run_case(model, counts)
        if len(np.unique(logits, axis=0)) < 3 or stats[:, 1:].sum() == 0:
            raise AssertionError(f"{name}: the logits hardly change; the golden data would test little")
        (out / f"snn_{name}.sgm").write_bytes(data)
        (out / f"snn_{name}.in").write_bytes(counts.astype("<u2").tobytes())
        (out / f"snn_{name}.out").write_bytes(logits.astype("<i4").tobytes())
        (out / f"snn_{name}.stats").write_bytes(stats.astype("<u4").tobytes())
        print(f"snn {name}: {len(data)} B model, {len(counts)} steps, {logits.shape[1]} classes, "
              f"{int(stats[:, 0].sum())} synops, spikes per entry {stats[:, 1:].sum(axis=0).tolist()}")
        lines.append(f"{name} {len(counts)} {counts.shape[1]} {logits.shape[1]} {len(model.layers)}")
    (out / "snn_cases.txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
