# SPDX-License-Identifier: MIT
"""Golden data of version 2 `.sgm` models (imported int8 networks) for test_qnet.c.

Usage (from the repository root; needs tflite-micro and the tflite package; runtime_c/Makefile's
`golden` rule does this):
    python -m runtime_c.tests.gen_qnet_golden OUTDIR

Two random conv (groups) -> depthwise (multiplier) -> average pool -> reshape -> fully
connected int8 networks (tests/support/qnet_models.py's generator, pysg.converters.tflite_writer) are
converted with pysg.converters.tflite_sgm: one with event-count input (slices x polarities,
a window of several steps), one with tensor input. For every step the expected logits
are TFLite Micro's output for that step's input tensor (the event-count case rebuilds the
tensor from the counts here, independently of pysg.qnet), and pysg.qnet.QnetRef must
agree; the synaptic-operation and delta totals are QnetRef's.

A third case, events_ring, is the first with an event ring of 1.5 steps of cells: it
overflows, and the expected tensor is rebuilt from the counts the ring keeps (FORMAT.md
7.2, written out here).

Writes qnet_cases.txt (one line per case: name, mode, steps, input items per step,
classes, synops, the deltas sent per table entry, then the events lost to the ring), and per case qnet_NAME.sgm,
qnet_NAME.in (u16 counts P x H x W or int8 tensors H x W x C per step) and qnet_NAME.out
(int32 logits per step), all little-endian.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tflite_micro.python.tflite_micro.runtime import Interpreter

from pysg.converters.tflite_sgm import tflite_to_sgm
from pysg.qnet import QnetRef
from pysg.sgm import encode_qmodel, load_sgm
from tests.support.qnet_models import random_network, window_tensor

STEPS = 16


def _tflm(model: bytes):
    it = Interpreter.from_bytes(model, arena_size=4 * len(model) + (1 << 20))

    def run(x: np.ndarray) -> np.ndarray:
        it.set_input(x, 0)
        it.invoke()
        return np.array(it.get_output(0)).reshape(-1).astype(np.int32)

    return run


def _network(seed: int, want_channels: int) -> bytes:
    """A random network whose input has `want_channels` channels (redrawn until it has)."""
    for k in range(200):
        tfl = random_network(np.random.default_rng([seed, k]))
        from pysg.converters.tflite_graph import read_tflite

        g = read_tflite(tfl)
        if g.tensors[g.inputs[0]].shape[3] == want_channels:
            return tfl
    raise RuntimeError(f"no random network with {want_channels} input channels")


def _kept(counts: np.ndarray, free: int) -> tuple[np.ndarray, int]:
    """FORMAT.md 7.2: a step's cells with a count join the ring in ascending order; those
    beyond the `free` entries are lost. The counts kept, and the events lost."""
    flat = np.minimum(counts.reshape(-1).astype(np.int64), 65535)
    nz = np.flatnonzero(flat)
    kept = np.zeros_like(flat)
    kept[nz[:free]] = flat[nz[:free]]
    return kept.reshape(counts.shape), int(flat[nz[free:]].sum())


def case_events(rng: np.random.Generator, out: Path, ring: bool = False) -> str:
    tfl = _network(11, 4)  # 4 channels: 2 slices x 2 polarities
    data = tflite_to_sgm(tfl, input="events", window_steps=4, count_map="count")
    m = load_sgm(data)
    cap = m.input.ring_entries
    if ring:  # a ring of 1.5 steps of cells for a window of 5: it overflows
        cap = m.cells + m.cells // 2
        m.input.ring_entries = cap
        data = encode_qmodel(m)
    tflm = _tflm(tfl)
    ref = QnetRef(data)
    p_ch, (h, w, _) = m.polarities, m.input_shape
    history, ins, outs, held = [], [], [], []
    synops, deltas, lost = 0, np.zeros(1 + len(m.layers), np.int64), 0
    for t in range(STEPS):
        dens = 0.0 if t == 6 else 0.9 if ring and t % 3 == 0 else 0.3
        c = (rng.integers(0, 4, (p_ch, h, w)) * (rng.random((p_ch, h, w)) < dens))
        c = c.astype(np.uint16)
        if t == 9:
            c[0, 0, 0] = 65535  # saturates the LUT
        kept, n_lost = _kept(c, cap - sum(held[-m.window:]))
        held.append(int(np.count_nonzero(kept)))
        lost += n_lost
        history.append(kept)
        got = ref.step_counts(c).astype(np.int32)
        want = tflm(window_tensor(history, m.slices, m.window, m.input.weights.astype(np.int64))[None])
        if not np.array_equal(got, want):
            raise AssertionError(f"events step {t}: QnetRef {got} != TFLite Micro {want}")
        synops += ref.net.last.synops
        deltas += [ref.net.last.input_events] + [c_.out_events for c_ in ref.net.last.layers]
        ins.append(c)
        outs.append(got)
    if ring and lost == 0:
        raise AssertionError("events_ring: the ring never overflowed")
    return _write(out, "events_ring" if ring else "events", data, np.stack(ins), np.stack(outs), "counts",
                  p_ch * h * w, synops, deltas, lost)


def case_tensor(rng: np.random.Generator, out: Path) -> str:
    tfl = _network(12, 2)
    data = tflite_to_sgm(tfl, input="tensor")
    m = load_sgm(data)
    tflm = _tflm(tfl)
    ref = QnetRef(data)
    shape = m.input_shape
    x = np.full(shape, m.input.output_offset, np.int8)
    ins, outs = [], []
    synops, deltas = 0, np.zeros(1 + len(m.layers), np.int64)
    for t in range(STEPS):
        flat = x.reshape(-1)
        frac = 0.0 if t == 4 else 1.0 if t == 7 else 0.1
        idx = rng.choice(flat.size, int(frac * flat.size), replace=False)
        flat[idx] = rng.integers(-128, 128, idx.size)
        got = ref.step_tensor(x).astype(np.int32)
        want = tflm(x[None])
        if not np.array_equal(got, want):
            raise AssertionError(f"tensor step {t}: QnetRef {got} != TFLite Micro {want}")
        synops += ref.net.last.synops
        deltas += [ref.net.last.input_events] + [c_.out_events for c_ in ref.net.last.layers]
        ins.append(x.copy())
        outs.append(got)
    return _write(out, "tensor", data, np.stack(ins), np.stack(outs), "tensor", flat.size, synops, deltas, 0)


def _write(out: Path, name: str, data: bytes, ins: np.ndarray, outs: np.ndarray, mode: str, n_in: int,
           synops: int, deltas: np.ndarray, lost: int) -> str:
    (out / f"qnet_{name}.sgm").write_bytes(data)
    (out / f"qnet_{name}.in").write_bytes(ins.astype("<u2" if mode == "counts" else np.int8).tobytes())
    (out / f"qnet_{name}.out").write_bytes(outs.astype("<i4").tobytes())
    if len(np.unique(outs, axis=0)) < 3:
        raise AssertionError(f"{name}: the logits hardly change; the golden data would test little")
    print(f"qnet {name}: {len(data)} B model, {outs.shape[0]} steps, {outs.shape[1]} classes, {synops} synops, "
          f"{lost} events lost to the ring")
    return f"{name} {mode} {outs.shape[0]} {n_in} {outs.shape[1]} {synops} {len(deltas)} " + \
        " ".join(str(int(d)) for d in deltas) + f" {lost}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261128)
    lines = [case_events(rng, out), case_tensor(rng, out), case_events(rng, out, ring=True)]
    (out / "qnet_cases.txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
