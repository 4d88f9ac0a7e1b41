# SPDX-License-Identifier: MIT
"""`pysg convert MODEL.nir -o MODEL.sgm`: a NIR graph (nir 1.0.x) -> .sgm version 3
(docs/NIR.md). The graph becomes a chain (:mod:`.nir_graph`), the chain float entries
under the source framework's time convention (:mod:`.nir_lower`), and those int8
weights with per-channel requantisation and fixed-point neuron state (here). A graph
written by `pysg export --nir` (a SpikingGamma network) goes to its own importer,
`pysg.converters.nir_sg`, when that module is installed."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from pysg.sgm import encode_snn, load_sgm
from pysg.sgm.snn import (DECAY_ONE, FORMAT_VERSION_SNN, NEURON_NONE, NEURON_PARAMS, RESET_SUBTRACT,
                          RESET_SUBTRACT_NEXT, SHIFT_MAX, SKIND_CONV2D, SKIND_DENSE, SKIND_SUMPOOL, SPIKING,
                          SYN_GAIN_SHIFT, SgmSnnLayer, SgmSnnModel)

from .nir_graph import NirImportError, arr, chain_of
from .nir_lower import CONVENTIONS, Convention, FloatEntry, FloatSnn, lower_chain

__all__ = ["NirImport", "NirImportError", "detect_convention", "quantize_entries", "nir_to_sgm", "convert_file",
           "read_graph", "calibration_frames", "STATE_BITS"]

STATE_BITS = 16      # a spiking entry's largest threshold is 2^16 state LSBs
SNNTORCH_DT = 1e-4   # snnTorch 1.0's export writes tau = dt / (1 - beta), r = tau / dt with this dt


def read_graph(src: Any) -> Any:
    """A NIR graph from a path (nir.read) or the graph itself."""
    if isinstance(src, (str, os.PathLike)):
        try:
            import nir
        except ImportError:
            raise NirImportError('reading .nir files needs the nir package: pip install "pysg[nir]"') from None
        if not os.path.exists(src):
            raise FileNotFoundError(f"{src}: no such file")
        try:
            return nir.read(str(src))
        except (OSError, KeyError, ValueError, TypeError) as e:
            raise NirImportError(f"{src}: not a NIR graph nir.read can load ({type(e).__name__}: {e})") from None
    return src


def _neurons(graph: Any) -> list[tuple[str, Any]]:
    from .nir_graph import flatten_graph

    nodes, _ = flatten_graph(graph)
    return [(n, v) for n, v in nodes.items() if type(v).__name__ in ("LIF", "CubaLIF", "IF", "LI", "I")]


def detect_convention(graph: Any) -> Convention:
    """snnTorch if every neuron with a time constant has r = tau / 1e-4 (and CubaLIF
    w_in = tau_syn / 1e-4), as snnTorch 1.0's export writes; sinabs if every neuron has
    r = 1 and v_leak = 0 (sinabs 3.1's export: tau in steps); else NIR's own equations
    with dt = 1 (docs/NIR.md "Time")."""
    neurons = _neurons(graph)

    def close(a, b):
        return np.allclose(arr(a), arr(b), rtol=1e-3, atol=0)

    timed = [(n, v) for n, v in neurons if type(v).__name__ in ("LIF", "LI", "CubaLIF")]
    if timed and all(close(v.r, arr(v.tau_mem if type(v).__name__ == "CubaLIF" else v.tau) / SNNTORCH_DT)
                     and (type(v).__name__ != "CubaLIF" or close(v.w_in, arr(v.tau_syn) / SNNTORCH_DT))
                     for _, v in timed):
        return CONVENTIONS["snntorch"]
    if neurons and all(np.all(arr(v.r) == 1) and np.all(arr(getattr(v, "v_leak", 0)) == 0) for _, v in neurons):
        return CONVENTIONS["sinabs"]
    return CONVENTIONS["nir"]


def _requant(ratio: float, where: str) -> tuple[int, int]:
    """(mult, shift) with mult / 2^shift = ratio, mult in [2^30, 2^31) where the shift allows."""
    if ratio == 0:
        return 1, SHIFT_MAX
    e = math.floor(math.log2(ratio))
    shift = min(30 - e, SHIFT_MAX)
    if shift < 0:
        raise NirImportError(f"{where}: gain {ratio:g} state LSBs per accumulator unit is too large (>= 2^31)")
    mult = round(ratio * 2.0 ** shift)
    if mult >= 1 << 31:
        mult, shift = mult // 2, shift - 1
    return max(1, mult), shift


def _state_unit(e: FloatEntry, is_output: bool, peak: float | None) -> float:
    """Float value of one state LSB of an entry (docs/NIR.md "Fixed point")."""
    thr = np.abs(e.params.get("threshold", np.zeros(1)))
    if e.neuron == NEURON_NONE and not is_output:
        return 1.0  # a hidden count entry passes counts unchanged
    if e.neuron in SPIKING and thr.max(initial=0) > 0:
        s = float(thr.max()) / 2 ** STATE_BITS
    else:
        if e.kind == SKIND_SUMPOOL:
            per = np.full(e.n_out, float(e.kernel[0] * e.kernel[1]))
        elif e.weights is None:
            per = np.ones(e.n_out)
        else:
            w = np.abs(e.weights).reshape(e.weights.shape[0], -1).sum(axis=1)
            per = e.per_neuron(w + np.abs(e.bias if e.bias is not None else 0))
        if e.rec_weights is not None:
            per = per + np.abs(e.rec_weights).sum(axis=1)
        bound = float((per * np.abs(e.per_neuron(e.gain))).max(initial=0))
        if e.neuron != NEURON_NONE:
            bound *= float(np.max(np.abs(e.params["syn_gain"]), initial=0)) or 1.0
        s = bound / 2 ** STATE_BITS if bound > 0 else 1.0
    if peak is not None and peak > 0:
        s = max(s, peak / 2 ** 28)  # calibration: the observed state fits with 2^3 headroom
    return s


def _channel_rows(e: FloatEntry, a: np.ndarray) -> np.ndarray:
    """(out_c, ...) rows of a per-neuron matrix (rec weights) grouped by channel."""
    return a.reshape(e.out_shape[0], -1)


def _quantize_entry(e: FloatEntry, is_output: bool, peak: float | None) -> SgmSnnLayer:
    oc, where = e.out_shape[0], f"NIR nodes {', '.join(repr(n) for n in e.names)}"
    gain = np.asarray(e.gain, np.float64)
    w, b, r = e.weights, e.bias, e.rec_weights
    if np.any(gain < 0):
        if e.kind not in (SKIND_DENSE, SKIND_CONV2D):
            raise NirImportError(f"{where}: a negative gain in front of a neuron without weights")
        sign = np.where(gain < 0, -1.0, 1.0)
        w = w * sign.reshape((-1,) + (1,) * (w.ndim - 1))
        b = b * sign if b is not None else None
        r = r * e.per_neuron(sign)[:, None] if r is not None else None
        gain = np.abs(gain)
    sw = np.ones(oc)
    wq = bq = rq = None
    if w is not None:
        m = np.abs(w).reshape(oc, -1).max(axis=1)
        if r is not None:
            m = np.maximum(m, np.abs(_channel_rows(e, r)).max(axis=1))
        sw = np.where(m > 0, m / 127.0, 1.0)
        wq = np.clip(np.round(w / sw.reshape((-1,) + (1,) * (w.ndim - 1))), -127, 127).astype(np.int8)
        if b is not None and np.any(b != 0):
            bq = np.clip(np.round(b / sw), -(2 ** 31), 2 ** 31 - 1).astype(np.int32)
        if r is not None:
            rq = np.clip(np.round(r / e.per_neuron(sw)[:, None]), -127, 127).astype(np.int8)
    s = _state_unit(e, is_output, peak)
    rq_pairs = [_requant(float(sw[c] * gain[c] / s), where) for c in range(oc)]
    mult = np.array([p[0] for p in rq_pairs], np.int64)
    shift = np.array([p[1] for p in rq_pairs], np.int64)
    if np.all(mult == mult[0]) and np.all(shift == shift[0]):
        mult, shift = mult[:1], shift[:1]
    neuron = None
    if e.neuron != NEURON_NONE:
        p = e.params
        rec = np.zeros((e.n_out, len(NEURON_PARAMS)), np.int64)
        col = {k: i for i, k in enumerate(NEURON_PARAMS)}
        rec[:, col["beta_mem"]] = np.clip(np.round(p["beta_mem"] * DECAY_ONE), 0, DECAY_ONE)
        rec[:, col["beta_syn"]] = np.clip(np.round(p["beta_syn"] * DECAY_ONE), 0, DECAY_ONE)
        g = np.round(p["syn_gain"] * 2 ** SYN_GAIN_SHIFT)
        if np.any(np.abs(g) >= 2 ** 31):
            raise NirImportError(f"{where}: CubaLIF current gain {np.abs(p['syn_gain']).max():g} is too large")
        rec[:, col["syn_gain"]] = g
        for k in ("threshold", "v_reset", "v_bias"):
            v = np.round(p[k] / s)
            if np.any(np.abs(v) >= 2 ** 31):
                raise NirImportError(f"{where}: {k} {np.abs(p[k]).max():g} does not fit the state's int32")
            rec[:, col[k]] = v
        if e.reset in (RESET_SUBTRACT, RESET_SUBTRACT_NEXT) and np.any(rec[:, col["threshold"]] < 1):
            raise NirImportError(f"{where}: a threshold <= 0 with a subtracting reset")
        neuron = rec[:1] if np.all(rec == rec[:1]) else rec
    delays = None
    if e.delays is not None and int(e.delays.max()) > 0:
        delays = e.delays.astype(np.uint8)
    return SgmSnnLayer(kind=e.kind, neuron_kind=e.neuron, is_output=is_output, in_shape=e.in_shape,
                       out_shape=e.out_shape, mult=mult.astype(np.int32), shift=shift.astype(np.uint8), reset=e.reset,
                       kernel=e.kernel, stride=e.stride, padding=e.padding, groups=e.groups, fire_ge=e.fire_ge,
                       logits_v=e.logits_v, weights=wq, bias=bq, rec_weights=rq, delays=delays,
                       max_delay=int(delays.max()) if delays is not None else 0,
                       neuron=None if neuron is None else neuron.astype(np.int32))


def _peaks(entries: list[FloatEntry], input_shape, frames: np.ndarray) -> list[float]:
    """Largest |state| (v, i or the output current) per entry of the float network over
    calibration frames (N, T, cells)."""
    net = FloatSnn(entries, input_shape)
    peaks = [0.0] * len(entries)
    for sample in frames:
        net.reset()
        for x in sample:
            net.step(x)
            for k in range(len(entries)):
                peaks[k] = max(peaks[k], float(np.abs(net.v[k]).max(initial=0)),
                               float(np.abs(net.i[k]).max(initial=0)))
    return peaks


def quantize_entries(entries: list[FloatEntry], input_shape, calibrate: np.ndarray | None = None) -> list[SgmSnnLayer]:
    """int8 / fixed-point layers of float entries (docs/NIR.md "Quantisation")."""
    peaks = _peaks(entries, input_shape, calibrate) if calibrate is not None else [None] * len(entries)
    return [_quantize_entry(e, k == len(entries) - 1, peaks[k]) for k, e in enumerate(entries)]


@dataclass
class NirImport:
    """An imported graph: the .sgm model and bytes, the float network (the oracle), and
    the time convention it was stepped with."""
    model: SgmSnnModel
    data: bytes
    float_net: FloatSnn
    convention: Convention
    entries: list[FloatEntry]


def calibration_frames(root: str | os.PathLike, model: SgmSnnModel, n_samples: int = 16) -> np.ndarray:
    """(N, T, cells) count frames of the first ``n_samples`` training gestures of a
    dataset folder (`pysg synth`, DVS128 Gesture's layout), binned as the model bins."""
    from pysg.datasets.gesture import GestureDataset
    from pysg.engines.base import bin_sample
    from pysg.engines.snn import describe

    info = describe(model)
    data = GestureDataset(root, "train")
    if len(data) == 0:
        raise NirImportError(f"--calibrate {root}: no training gestures")
    samples = [data[i] for i in range(min(n_samples, len(data)))]
    steps = [-(-int(s.duration_us) // info.dt_us) for s in samples]
    frames = np.zeros((len(samples), max(steps), int(np.prod(info.input_shape))), np.uint16)
    for i, s in enumerate(samples):
        frames[i, :steps[i]] = bin_sample(info, s.events, steps[i])
    return frames


def _convention(graph, name: str, dt: float | None) -> Convention:
    if name == "auto":
        conv = detect_convention(graph)
    elif name in CONVENTIONS:
        conv = CONVENTIONS[name]
    else:
        raise NirImportError(f"--nir-from {name!r}: one of auto, {', '.join(CONVENTIONS)}")
    if dt is not None:
        if not dt > 0:
            raise NirImportError(f"--nir-dt {dt!r} must be > 0 (seconds per step in the graph's time unit)")
        conv = Convention(conv.name, float(dt), conv.integration, conv.reset, conv.fire_ge)
    return conv


def nir_to_sgm(src: Any, *, dt_ms: float = 10.0, convention: str = "auto", nir_dt: float | None = None,
               logits: str = "spikes", sensor: tuple[int, int] | None = None, labels: list[str] | None = None,
               input_shape: tuple[int, int, int] | None = None, calibrate: np.ndarray | None = None) -> NirImport:
    """Import a NIR graph (a path or a graph object). ``dt_ms``: one step of event input;
    ``convention``: auto, snntorch, sinabs or nir (docs/NIR.md "Time"); ``nir_dt``: the
    graph's dt (its time unit per step) instead of the convention's; ``logits``: spikes or
    membrane of a spiking output; ``sensor``: (width, height), a whole multiple of the input;
    ``calibrate``: (N, T, cells) count frames to size the state unit from."""
    graph = read_graph(src)
    if logits not in ("spikes", "membrane"):
        raise NirImportError(f"--logits {logits!r}: spikes or membrane")
    conv = _convention(graph, convention, nir_dt)
    chain = chain_of(graph)
    shape, entries = lower_chain(chain, conv, logits=logits, input_shape=input_shape)
    c, h, w = shape
    if c not in (1, 2):
        raise NirImportError(f"NIR node {chain[0].name!r} (Input): {c} channels; pysg feeds event counts of 1 or 2 "
                             f"polarity channels (C, H, W)")
    sw, sh = sensor or (w, h)
    if sw % w or sh % h or sw // w != sh // h:
        raise NirImportError(f"--sensor {sw}x{sh} is not one whole multiple of the input {w}x{h}")
    dt_us = int(round(dt_ms * 1000))
    if dt_us < 1:
        raise NirImportError(f"--dt-ms {dt_ms} is below 1 us")
    if isinstance(calibrate, (str, os.PathLike)):
        first = SgmSnnModel(FORMAT_VERSION_SNN, dt_us, shape, (sw, sh), sw // w, ["x"] * entries[-1].n_out,
                            quantize_entries(entries, shape))
        calibrate = calibration_frames(calibrate, first)
    layers = quantize_entries(entries, shape, calibrate)
    n = layers[-1].n_out
    labels = labels or [str(i) for i in range(n)]
    if len(labels) != n:
        raise NirImportError(f"--labels: {len(labels)} names for {n} outputs")
    model = SgmSnnModel(FORMAT_VERSION_SNN, dt_us, shape, (sw, sh), sw // w, labels, layers)
    data = encode_snn(model)
    return NirImport(load_sgm(data), data, FloatSnn(entries, shape), conv, entries)


def _sg_graph_bytes(graph: Any, dt_ms: float | None) -> bytes | None:
    """A SpikingGamma graph (`pysg export --nir`) through its own importer, if installed."""
    try:
        from . import nir_sg
    except ImportError:
        return None
    if not nir_sg.is_sg_graph(graph):
        return None
    from .sgm import export_network

    return export_network(nir_sg.sg_from_nir(graph), dt_us=None if dt_ms is None else int(round(dt_ms * 1000)))


def convert_file(src, dst, **options) -> dict:
    """Import ``src`` (.nir) and write ``dst`` (.sgm); the `inspect` description plus the
    time convention used."""
    from pysg.sgm import inspect_sgm

    graph = read_graph(src)
    data = _sg_graph_bytes(graph, options.get("dt_ms"))
    convention = None
    if data is None:
        imp = nir_to_sgm(graph, **options)
        data, convention = imp.data, imp.convention
    with open(dst, "wb") as f:
        f.write(data)
    info = inspect_sgm(data)
    if convention is not None:
        info["nir"] = {"convention": convention.name, "dt": convention.dt, "integration": convention.integration}
    return info

