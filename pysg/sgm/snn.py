# SPDX-License-Identifier: MIT
"""Format version 3: layered spiking networks as NIR describes them (docs/FORMAT.md
sections 11-15), the kind "snn". Everything about its bytes: the layer-entry table and
constants, the header rules, the model (:class:`SgmSnnModel` of :class:`SgmSnnLayer`),
its arena size and accumulator bound, the validating reader of its layer table, the
encoder, the ``inspect`` description and its macros in sg_format.h; registered with
:func:`.kinds.register_format` at the end. The arithmetic is `pysg.engines.snn`'s."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kinds import CConstants, FormatKind, HeaderError, layer_constants, register_format
from .layout import FLAG_OUTPUT, HEADER_FIELDS, LAYER_ENTRY_SIZE, EntryReader, SgmFormatError, field_offset
from .loader import load_sgm
from .writer import pack_sgm

FORMAT_VERSION_SNN = 3
# synaptic operation of an entry (field `kind`)
SKIND_DENSE = 1
SKIND_CONV2D = 2
SKIND_SUMPOOL = 3
SKIND_IDENTITY = 4
SKIND_NAMES = {SKIND_DENSE: "dense", SKIND_CONV2D: "conv2d", SKIND_SUMPOOL: "sumpool2d", SKIND_IDENTITY: "identity"}
# neuron model of an entry (field `neuron`)
NEURON_NONE = 0
NEURON_LIF = 1
NEURON_CUBALIF = 2
NEURON_IF = 3
NEURON_LI = 4
NEURON_INTEGRATOR = 5
NEURON_THRESHOLD = 6
NEURON_NAMES = {NEURON_NONE: "none", NEURON_LIF: "lif", NEURON_CUBALIF: "cubalif", NEURON_IF: "if",
                NEURON_LI: "li", NEURON_INTEGRATOR: "integrator", NEURON_THRESHOLD: "threshold"}
SPIKING = frozenset({NEURON_LIF, NEURON_CUBALIF, NEURON_IF, NEURON_THRESHOLD})
# reset after a spike (field `reset`)
RESET_NONE = 0
RESET_SUBTRACT = 1        # v -= threshold at the spike
RESET_TO_VALUE = 2        # v = v_reset at the spike
RESET_SUBTRACT_NEXT = 3   # v -= threshold at the next step, after its decay (snnTorch's reset)
RESET_NAMES = {RESET_NONE: "none", RESET_SUBTRACT: "subtract", RESET_TO_VALUE: "to_value",
               RESET_SUBTRACT_NEXT: "subtract_next_step"}
# entry flags beyond FLAG_OUTPUT
SFLAG_RECURRENT = 2       # rec_weights: the entry's own activations of step t-1 feed back
SFLAG_DELAYS = 4          # delays: a per-input delay in steps through a ring
SFLAG_FIRE_GE = 8         # spike when v >= threshold (default: v > threshold)
SFLAG_LOGITS_V = 16       # output entry: logits are the membrane v, not the spikes
SFLAGS = FLAG_OUTPUT | SFLAG_RECURRENT | SFLAG_DELAYS | SFLAG_FIRE_GE | SFLAG_LOGITS_V
ACT_MAX = 255             # activations between entries are uint8; input counts saturate here
DECAY_SHIFT = 30          # decays are Q30: 1.0 = 2^30
DECAY_ONE = 1 << DECAY_SHIFT
SYN_GAIN_SHIFT = 16       # CubaLIF's current -> membrane gain is Q16
SHIFT_MAX = 62
DELAY_MAX = 255
# the neuron blob: int32 records of these fields, one record (all neurons) or one per neuron
NEURON_PARAMS = ("beta_mem", "beta_syn", "syn_gain", "threshold", "v_reset", "v_bias")
NEURON_RECORD = 4 * len(NEURON_PARAMS)
SBLOBS = ("weights", "bias", "mult", "shift", "rec_weights", "delays", "neuron")
SBLOB_DTYPES = {"weights": "<i1", "bias": "<i4", "mult": "<i4", "shift": "u1", "rec_weights": "<i1",
                "delays": "u1", "neuron": "<i4"}
SBLOB_TABLE_OFFSET = 40
# (name, offset, struct code) -- little-endian (FORMAT.md 11.1)
SLAYER_FIELDS = (
    ("kind", 0, "H"), ("flags", 2, "H"), ("in_c", 4, "H"), ("in_h", 6, "H"), ("in_w", 8, "H"),
    ("out_c", 10, "H"), ("out_h", 12, "H"), ("out_w", 14, "H"), ("kernel_h", 16, "H"), ("kernel_w", 18, "H"),
    ("stride_h", 20, "H"), ("stride_w", 22, "H"), ("pad_h", 24, "H"), ("pad_w", 26, "H"), ("groups", 28, "H"),
    ("max_delay", 30, "H"), ("neuron", 32, "H"), ("reset", 34, "H"), ("reserved", 36, "I"),
) + tuple(x for i, b in enumerate(SBLOBS)
          for x in ((f"{b}_offset", SBLOB_TABLE_OFFSET + 8 * i, "I"),
                    (f"{b}_size", SBLOB_TABLE_OFFSET + 8 * i + 4, "I")))


@dataclass
class SgmSnnLayer:
    """One entry of a version 3 layer table (FORMAT.md 11.1): a synaptic operation then a
    neuron stage. Shapes (C, H, W), activations flat in C-major order (NIR's and torch's).
    ``weights``: dense (n_out, n_in), conv2d (out_c, in_c / groups, kh, kw), else None;
    ``mult``/``shift``: (1,) or (out_c,); ``neuron``: (1, 6) or (n_out, 6) int32 records of
    NEURON_PARAMS (None for NEURON_NONE); ``rec_weights`` (n_out, n_out); ``delays`` (n_in,)."""

    kind: int
    neuron_kind: int
    is_output: bool
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    mult: np.ndarray
    shift: np.ndarray
    reset: int = RESET_NONE
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    fire_ge: bool = False
    logits_v: bool = False
    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    rec_weights: np.ndarray | None = None
    delays: np.ndarray | None = None
    max_delay: int = 0
    neuron: np.ndarray | None = None

    @property
    def kind_name(self) -> str:
        return SKIND_NAMES[self.kind]

    @property
    def neuron_name(self) -> str:
        return NEURON_NAMES[self.neuron_kind]

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def spiking(self) -> bool:
        return self.neuron_kind in SPIKING

    def param(self, name: str) -> np.ndarray:
        """(n_out,) int64 of one NEURON_PARAMS field (broadcast from a single record)."""
        rec = self.neuron[:, NEURON_PARAMS.index(name)].astype(np.int64)
        return np.broadcast_to(rec, (self.n_out,)) if rec.size == 1 else rec

    def arena_bytes(self) -> int:
        """FORMAT.md 14: u8 activations, int32 state, the delay ring."""
        n = self.n_out
        states = {NEURON_NONE: 0, NEURON_CUBALIF: 2}.get(self.neuron_kind, 1)
        ring = _ceil4((self.max_delay + 1) * self.n_in) if self.delays is not None else 0
        return _ceil4(n) + 4 * states * n + ring


@dataclass
class SgmSnnModel:
    """A version 3 file: a layered spiking network. The input is a (C, H, W) event-count
    frame per step (C = polarity channels), counts saturating at ACT_MAX."""

    format_version: int
    dt_us: int
    input_shape: tuple[int, int, int]   # (C, H, W)
    sensor_size: tuple[int, int]
    downsample: int
    labels: list[str]
    layers: list[SgmSnnLayer]
    arena_bytes: int = 0
    file_bytes: int = 0
    payload_crc32: int = 0

    @property
    def n_classes(self) -> int:
        return len(self.labels)


def _ceil4(v: int) -> int:
    return (v + 3) // 4 * 4


def snn_arena_bytes_for(input_shape: tuple[int, int, int], layers: list[SgmSnnLayer]) -> int:
    """docs/FORMAT.md section 14."""
    cells = int(np.prod(input_shape))
    n_max = max(ly.n_out for ly in layers)
    return (_ceil4(2 * cells) + _ceil4(cells) + sum(ly.arena_bytes() for ly in layers)
            + 4 * n_max + 4 * layers[-1].n_out)


def _out_size(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1 if n + 2 * p >= k else 0


def snn_accumulator_bound(ly: SgmSnnLayer) -> int:
    """Largest |int32 accumulator| any uint8 activations give (FORMAT.md 12, step 3)."""
    if ly.kind == SKIND_SUMPOOL:
        per = np.zeros(ly.n_out, np.int64) + ACT_MAX * ly.kernel[0] * ly.kernel[1]
    elif ly.kind == SKIND_IDENTITY:
        per = np.zeros(ly.n_out, np.int64) + ACT_MAX
    else:
        w = np.abs(ly.weights.astype(np.int64))
        per = w.reshape(w.shape[0], -1).sum(axis=1) * ACT_MAX
        if ly.kind == SKIND_CONV2D:
            per = np.repeat(per, ly.out_shape[1] * ly.out_shape[2])
    if ly.bias is not None:
        b = np.abs(ly.bias.astype(np.int64))
        per = per + (np.repeat(b, ly.out_shape[1] * ly.out_shape[2]) if ly.kind in (SKIND_CONV2D, SKIND_SUMPOOL)
                     else b)
    if ly.rec_weights is not None:
        per = per + np.abs(ly.rec_weights.astype(np.int64)).sum(axis=1) * ACT_MAX
    return int(per.max(initial=0))


def _check_geometry(f: dict, kind: int, lerr, want) -> None:
    ins, outs = (f["in_c"], f["in_h"], f["in_w"]), (f["out_c"], f["out_h"], f["out_w"])
    if kind in (SKIND_DENSE, SKIND_IDENTITY):
        for name in ("kernel_h", "kernel_w", "stride_h", "stride_w"):
            want(name, 1)
        for name in ("pad_h", "pad_w"):
            want(name, 0)
        want("groups", 1)
        if kind == SKIND_DENSE and (outs[1], outs[2]) != (1, 1):
            lerr("out_h", f"dense: output {outs} must be (n, 1, 1)")
        if kind == SKIND_IDENTITY and outs != ins:
            lerr("out_c", f"identity: output {outs} must equal the input {ins}")
        return
    for name in ("kernel_h", "kernel_w", "stride_h", "stride_w"):
        if f[name] == 0:
            lerr(name, f"{name} must be >= 1")
    for pname, kname in (("pad_h", "kernel_h"), ("pad_w", "kernel_w")):
        if f[pname] >= f[kname]:
            lerr(pname, f"{pname} {f[pname]} must be < {kname} {f[kname]}")
    g = f["groups"]
    if kind == SKIND_SUMPOOL:
        want("groups", 1)
        if outs[0] != ins[0]:
            lerr("out_c", f"sum pooling keeps channels: out_c {outs[0]} != in_c {ins[0]}")
    elif g == 0 or ins[0] % g or outs[0] % g:
        lerr("groups", f"groups {g} must divide in_c {ins[0]} and out_c {outs[0]}")
    for ax, name in ((1, "out_h"), (2, "out_w")):
        k, s, p = (f[f"{x}_{'h' if ax == 1 else 'w'}"] for x in ("kernel", "stride", "pad"))
        if outs[ax] != (want_n := _out_size(ins[ax], k, s, p)) or want_n == 0:
            lerr(name, f"{name} {outs[ax]} != ({ins[ax]} + 2*{p} - {k}) // {s} + 1 = {want_n}")


def _check_neuron_flags(f: dict, nk: int, is_output: bool, kind: int, lerr) -> None:
    flags, reset = f["flags"], f["reset"]
    if nk not in NEURON_NAMES:
        lerr("neuron", f"unknown neuron kind {nk} (0..{max(NEURON_NAMES)})")
    if reset not in RESET_NAMES:
        lerr("reset", f"unknown reset {reset} (0..{max(RESET_NAMES)})")
    if (nk not in SPIKING or nk == NEURON_THRESHOLD) and reset != RESET_NONE:
        lerr("reset", f"a {NEURON_NAMES[nk]} neuron has no reset: reset must be 0, got {reset}")
    if not is_output and nk not in SPIKING and not (nk == NEURON_NONE and kind in (SKIND_SUMPOOL, SKIND_IDENTITY)):
        lerr("neuron", f"a hidden entry must spike (or be a sum pool / identity without neuron): "
             f"{SKIND_NAMES[kind]} with neuron {NEURON_NAMES[nk]}")
    if flags & SFLAG_FIRE_GE and nk not in SPIKING:
        lerr("flags", f"fire-on-equal flag on a {NEURON_NAMES[nk]} neuron (only spiking neurons)")
    if flags & SFLAG_LOGITS_V and (not is_output or nk == NEURON_NONE):
        lerr("flags", "the membrane-logits flag needs the output entry with a neuron")
    if flags & SFLAG_RECURRENT and nk not in SPIKING:
        lerr("flags", f"a recurrent entry must spike (neuron {NEURON_NAMES[nk]})")


def _check_neuron_values(entry: EntryReader, nk: int, reset: int, recs: np.ndarray) -> None:
    """The neuron blob's contents (FORMAT.md 15, in record then field order)."""
    col = {n: i for i, n in enumerate(NEURON_PARAMS)}
    fixed_beta = {NEURON_IF: DECAY_ONE, NEURON_INTEGRATOR: DECAY_ONE, NEURON_THRESHOLD: 0}.get(nk)
    for r in range(recs.shape[0]):
        rec = recs[r]

        def bad(name: str, what: str) -> None:
            entry.bad_element("neuron", r * len(NEURON_PARAMS) + col[name], what)

        bm, bs, g, thr, vr = (int(rec[col[n]]) for n in ("beta_mem", "beta_syn", "syn_gain", "threshold", "v_reset"))
        if fixed_beta is not None and bm != fixed_beta:
            bad("beta_mem", f"beta_mem {bm} of a {NEURON_NAMES[nk]} neuron must be {fixed_beta}")
        if not 0 <= bm <= DECAY_ONE:
            bad("beta_mem", f"beta_mem {bm} outside [0, 2^{DECAY_SHIFT}]")
        if nk == NEURON_CUBALIF and not 0 <= bs <= DECAY_ONE:
            bad("beta_syn", f"beta_syn {bs} outside [0, 2^{DECAY_SHIFT}]")
        if nk != NEURON_CUBALIF and bs != 0:
            bad("beta_syn", f"beta_syn {bs} must be 0 (only CubaLIF has a synaptic current)")
        if nk != NEURON_CUBALIF and g != 0:
            bad("syn_gain", f"syn_gain {g} must be 0 (only CubaLIF has a synaptic current)")
        if nk not in SPIKING and thr != 0:
            bad("threshold", f"threshold {thr} must be 0 for a non-spiking {NEURON_NAMES[nk]} neuron")
        if reset in (RESET_SUBTRACT, RESET_SUBTRACT_NEXT) and thr < 1:
            bad("threshold", f"threshold {thr} must be >= 1 with a subtracting reset")
        if reset != RESET_TO_VALUE and vr != 0:
            bad("v_reset", f"v_reset {vr} must be 0 unless reset is {RESET_TO_VALUE} (to value)")


def load_snn_layers(buf: bytes, h: dict, labels: list[str], regions: list, arena_size: int | None) -> SgmSnnModel:
    """Version 3 layer table (docs/FORMAT.md section 15), after the shared header checks."""
    entries: list[SgmSnnLayer] = []
    prev_out = (h["in_c"], h["in_h"], h["in_w"])
    last = h["n_stages"] - 1
    for si in range(h["n_stages"]):
        entry = EntryReader(buf, si, h["layers_offset"] + si * LAYER_ENTRY_SIZE, SLAYER_FIELDS, regions)
        f, lerr = entry.f, entry.err

        def want(name: str, value: int) -> None:
            if f[name] != value:
                lerr(name, f"{SKIND_NAMES[kind]} entry: {name} must be {value}, got {f[name]}")

        kind = f["kind"]
        if kind not in SKIND_NAMES:
            lerr("kind", f"unknown layer kind {kind} ({min(SKIND_NAMES)}..{max(SKIND_NAMES)})")
        flags = f["flags"]
        if flags & ~SFLAGS:
            lerr("flags", f"unknown flag bits {flags & ~SFLAGS:#x}")
        is_output = bool(flags & FLAG_OUTPUT)
        if is_output != (si == last):
            lerr("flags", "the output flag must be set on the last entry and only there")
        ins, outs = (f["in_c"], f["in_h"], f["in_w"]), (f["out_c"], f["out_h"], f["out_w"])
        for name, v, w in zip(("in_c", "in_h", "in_w"), ins, prev_out):
            if v != w:
                lerr(name, f"{name} {v} != output of the previous entry / model input ({w})")
        for name, v in zip(("out_c", "out_h", "out_w"), outs):
            if v == 0:
                lerr(name, f"{name} must be >= 1")
        _check_geometry(f, kind, lerr, want)
        has_delays = bool(flags & SFLAG_DELAYS)
        md = f["max_delay"]
        if has_delays and not 1 <= md <= DELAY_MAX:
            lerr("max_delay", f"max_delay {md} outside [1, {DELAY_MAX}] with the delays flag")
        if not has_delays and md != 0:
            lerr("max_delay", f"max_delay {md} must be 0 without the delays flag")
        nk, reset = f["neuron"], f["reset"]
        _check_neuron_flags(f, nk, is_output, kind, lerr)
        if f["reserved"] != 0:
            lerr("reserved", "reserved field must be 0")
        n_in, n_out, oc = int(np.prod(ins)), int(np.prod(outs)), outs[0]
        wsize = {SKIND_DENSE: n_out * n_in, SKIND_CONV2D: oc * (ins[0] // max(f["groups"], 1)) * f["kernel_h"]
                 * f["kernel_w"]}.get(kind, 0)
        sizes = {"weights": (wsize,), "bias": (0, 4 * oc) if wsize else (0,), "mult": (4, 4 * oc),
                 "rec_weights": (n_out * n_out,) if flags & SFLAG_RECURRENT else (0,),
                 "delays": (n_in,) if has_delays else (0,),
                 "neuron": (0,) if nk == NEURON_NONE else (NEURON_RECORD, NEURON_RECORD * n_out)}
        arrays: dict[str, np.ndarray] = {}
        for b in SBLOBS:
            size = f[f"{b}_size"]
            allowed = (arrays["mult"].size,) if b == "shift" else sizes[b]
            if size not in allowed:
                lerr(f"{b}_size", f"{b} blob is {size} bytes, expected " + " or ".join(map(str, allowed)))
            if (a := entry.blob(b, SBLOB_DTYPES[b])) is not None:
                arrays[b] = a
        if (i := np.flatnonzero(arrays["mult"] < 1)).size:
            entry.bad_element("mult", i[0], f"mult {arrays['mult'][i[0]]} must be >= 1")
        if (i := np.flatnonzero(arrays["shift"] > SHIFT_MAX)).size:
            entry.bad_element("shift", i[0], f"shift {arrays['shift'][i[0]]} > {SHIFT_MAX}")
        if has_delays and (i := np.flatnonzero(arrays["delays"] > md)).size:
            entry.bad_element("delays", i[0], f"delay {arrays['delays'][i[0]]} > max_delay {md}")
        recs = arrays["neuron"].reshape(-1, len(NEURON_PARAMS)) if "neuron" in arrays else None
        if recs is not None:
            _check_neuron_values(entry, nk, reset, recs)
        w = arrays.get("weights")
        if w is not None:
            w = w.reshape(n_out, n_in) if kind == SKIND_DENSE else w.reshape(oc, ins[0] // f["groups"],
                                                                              f["kernel_h"], f["kernel_w"])
        rec_w = arrays.get("rec_weights")
        ly = SgmSnnLayer(kind=kind, neuron_kind=nk, is_output=is_output, in_shape=ins, out_shape=outs,
                         mult=arrays["mult"], shift=arrays["shift"], reset=reset,
                         kernel=(f["kernel_h"], f["kernel_w"]), stride=(f["stride_h"], f["stride_w"]),
                         padding=(f["pad_h"], f["pad_w"]), groups=f["groups"], fire_ge=bool(flags & SFLAG_FIRE_GE),
                         logits_v=bool(flags & SFLAG_LOGITS_V), weights=w, bias=arrays.get("bias"),
                         rec_weights=None if rec_w is None else rec_w.reshape(n_out, n_out),
                         delays=arrays.get("delays"), max_delay=md, neuron=recs)
        if (bound := snn_accumulator_bound(ly)) >= 1 << 31:
            lerr("kind", f"the int32 accumulator could overflow (bound {bound} >= 2^31)")
        entries.append(ly)
        prev_out = outs
    n_last = entries[-1].n_out
    if n_last != h["n_classes"]:
        raise SgmFormatError(field_offset(HEADER_FIELDS, "n_classes"), "n_classes",
                             f"n_classes {h['n_classes']} != {n_last} outputs of the last entry")
    need = snn_arena_bytes_for(prev_in := (h["in_c"], h["in_h"], h["in_w"]), entries)
    if h["arena_bytes"] != need:
        raise SgmFormatError(field_offset(HEADER_FIELDS, "arena_bytes"), "arena_bytes",
                             f"arena_bytes {h['arena_bytes']} != {need} required by the layer table")
    if arena_size is not None and arena_size < need:
        raise SgmFormatError(field_offset(HEADER_FIELDS, "arena_bytes"), "arena_bytes",
                             f"arena of {arena_size} bytes is too small: the model needs {need}")
    return SgmSnnModel(format_version=h["format_version"], dt_us=h["dt_us"], input_shape=prev_in,
                       sensor_size=(h["sensor_w"], h["sensor_h"]), downsample=h["downsample"], labels=labels,
                       layers=entries, arena_bytes=need, file_bytes=len(buf), payload_crc32=h["payload_crc32"])


def check_header(h: dict, err: HeaderError) -> None:
    """Version 3's header rules (after n_stages, docs/FORMAT.md section 15)."""
    if h["n_buckets"] != 0:
        err("n_buckets", f"n_buckets {h['n_buckets']} must be 0 in version {h['format_version']}")
    if h["in_c"] not in (1, 2):
        err("in_c", f"in_c {h['in_c']} must be 1 or 2 (polarity channels)")


def encode_snn(model: SgmSnnModel) -> bytes:
    """Version 3 .sgm bytes of a spiking network (validated by loading them back)."""
    entries = []
    for ly in model.layers:
        flags = ((FLAG_OUTPUT if ly.is_output else 0) | (SFLAG_RECURRENT if ly.rec_weights is not None else 0)
                 | (SFLAG_DELAYS if ly.delays is not None else 0) | (SFLAG_FIRE_GE if ly.fire_ge else 0)
                 | (SFLAG_LOGITS_V if ly.logits_v else 0))
        f = {"kind": ly.kind, "flags": flags, "in_c": ly.in_shape[0], "in_h": ly.in_shape[1],
             "in_w": ly.in_shape[2], "out_c": ly.out_shape[0], "out_h": ly.out_shape[1], "out_w": ly.out_shape[2],
             "kernel_h": ly.kernel[0], "kernel_w": ly.kernel[1], "stride_h": ly.stride[0], "stride_w": ly.stride[1],
             "pad_h": ly.padding[0], "pad_w": ly.padding[1], "groups": ly.groups,
             "max_delay": ly.max_delay if ly.delays is not None else 0, "neuron": ly.neuron_kind,
             "reset": ly.reset, "reserved": 0}

        def arr(a, dt):
            return None if a is None else np.ascontiguousarray(np.asarray(a).astype(dt).ravel())

        blobs = {"weights": arr(ly.weights, "<i1"), "bias": arr(ly.bias, "<i4"), "mult": arr(ly.mult, "<i4"),
                 "shift": arr(ly.shift, "u1"), "rec_weights": arr(ly.rec_weights, "<i1"),
                 "delays": arr(ly.delays, "u1"), "neuron": arr(ly.neuron, "<i4")}
        entries.append((f, blobs))
    c, hh, w = model.input_shape
    header = {"format_version": FORMAT_VERSION_SNN, "arena_bytes": snn_arena_bytes_for(model.input_shape, model.layers),
              "dt_us": model.dt_us, "n_buckets": 0, "in_c": c, "in_h": hh, "in_w": w,
              "sensor_w": model.sensor_size[0], "sensor_h": model.sensor_size[1], "downsample": model.downsample}
    data = pack_sgm(header, model.labels, entries, SLAYER_FIELDS, SBLOBS)
    load_sgm(data)  # the writer's own output must pass the loader: a failure here is a converter bug
    return data


def _logits_name(ly: SgmSnnLayer) -> str:
    if ly.neuron_kind == NEURON_NONE:
        return "current"
    return "spikes" if ly.spiking and not ly.logits_v else "membrane"


def inspect(model: SgmSnnModel) -> dict:
    """``pysg inspect --json`` of a version 3 model."""
    layers = []
    for i, ly in enumerate(model.layers):
        layers.append({
            "index": i, "kind": ly.kind_name, "neuron": ly.neuron_name, "reset": RESET_NAMES[ly.reset],
            "output": ly.is_output, "in_shape": list(ly.in_shape), "out_shape": list(ly.out_shape),
            "kernel": list(ly.kernel), "stride": list(ly.stride), "padding": list(ly.padding), "groups": ly.groups,
            "recurrent": ly.rec_weights is not None, "max_delay": ly.max_delay, "fire_ge": ly.fire_ge,
            "logits": _logits_name(ly) if ly.is_output else None,
            "parameters": int(sum(a.size for a in (ly.weights, ly.bias, ly.rec_weights) if a is not None)),
            "arena_bytes": ly.arena_bytes()})
    return {"format_version": model.format_version, "file_bytes": model.file_bytes,
            "arena_bytes": model.arena_bytes, "dt_us": model.dt_us, "input_shape": list(model.input_shape),
            "sensor_size": list(model.sensor_size), "downsample": model.downsample, "labels": list(model.labels),
            "n_classes": model.n_classes, "parameters": int(sum(ly["parameters"] for ly in layers)),
            "payload_crc32": model.payload_crc32, "layers": layers}


def summary(name: str, info: dict) -> str:
    """``pysg inspect``'s (and ``pysg convert``'s) text of :func:`inspect`'s description."""
    lines = [f"{name}: .sgm version {info['format_version']} (spiking network), {info['file_bytes']} bytes, "
             f"arena {info['arena_bytes']} bytes, dt {info['dt_us']} us, input {info['input_shape']} (CHW) event "
             f"counts from sensor {info['sensor_size']} / {info['downsample']}"]
    for ly in info["layers"]:
        extra = "".join([", recurrent" if ly["recurrent"] else "", f", delays <= {ly['max_delay']}"
                         if ly["max_delay"] else "", f", logits = {ly['logits']}" if ly["output"] else ""])
        lines.append(f"  {ly['index']}: {ly['kind']:<9} {ly['in_shape']} -> {ly['out_shape']} {ly['neuron']} "
                     f"(reset {ly['reset']}): {ly['parameters']} parameters{extra}, arena {ly['arena_bytes']} B")
    lines.append("  labels: " + ", ".join(info["labels"]))
    return "\n".join(lines)


C_CONSTANTS = CConstants(
    version="format_version of layered spiking networks, NIR's (FORMAT.md 11-15)",
    limits=(("SG_SNN_ACT_MAX", ACT_MAX, "version 3: activations are uint8, input counts saturate here"),
            ("SG_SNN_DECAY_SHIFT", DECAY_SHIFT, "version 3: decays are Q30 (1.0 = 1 << 30)"),
            ("SG_SNN_SYN_GAIN_SHIFT", SYN_GAIN_SHIFT, "version 3: CubaLIF current gain is Q16"),
            ("SG_SNN_SHIFT_MAX", SHIFT_MAX, "version 3: largest requantisation right shift"),
            ("SG_SNN_DELAY_MAX", DELAY_MAX, "version 3: largest max_delay, steps"),
            ("SG_SNN_N_NEURON_PARAMS", len(NEURON_PARAMS), "version 3: int32 fields per neuron record")),
    kinds=(("SG_SKIND_DENSE", SKIND_DENSE, "version 3 synaptic kinds"),
           ("SG_SKIND_CONV2D", SKIND_CONV2D, ""), ("SG_SKIND_SUMPOOL", SKIND_SUMPOOL, ""),
           ("SG_SKIND_IDENTITY", SKIND_IDENTITY, ""),
           ("SG_NEURON_NONE", NEURON_NONE, "version 3 neuron kinds"), ("SG_NEURON_LIF", NEURON_LIF, ""),
           ("SG_NEURON_CUBALIF", NEURON_CUBALIF, ""), ("SG_NEURON_IF", NEURON_IF, ""),
           ("SG_NEURON_LI", NEURON_LI, ""), ("SG_NEURON_INTEGRATOR", NEURON_INTEGRATOR, ""),
           ("SG_NEURON_THRESHOLD", NEURON_THRESHOLD, ""),
           ("SG_RESET_NONE", RESET_NONE, "version 3 resets"), ("SG_RESET_SUBTRACT", RESET_SUBTRACT, ""),
           ("SG_RESET_TO_VALUE", RESET_TO_VALUE, ""), ("SG_RESET_SUBTRACT_NEXT", RESET_SUBTRACT_NEXT, ""))
    + tuple((f"SG_NP_{n.upper()}", i, "version 3 neuron record: int32 field index" if i == 0 else "")
            for i, n in enumerate(NEURON_PARAMS)),
    flags=(("SG_SFLAG_RECURRENT", SFLAG_RECURRENT, "version 3: the entry feeds back its own activations"),
           ("SG_SFLAG_DELAYS", SFLAG_DELAYS, "version 3: per-input delays"),
           ("SG_SFLAG_FIRE_GE", SFLAG_FIRE_GE, "version 3: spike when v >= threshold"),
           ("SG_SFLAG_LOGITS_V", SFLAG_LOGITS_V, "version 3: the output's logits are its membrane")),
    layer=layer_constants(FORMAT_VERSION_SNN, SLAYER_FIELDS, SBLOBS, SBLOB_TABLE_OFFSET))

SNN_FORMAT = register_format(FormatKind(
    "snn", FORMAT_VERSION_SNN, SgmSnnModel, min_stages=1, check_header=check_header, read_layers=load_snn_layers,
    encode=encode_snn, inspect=inspect, summary=summary, c=C_CONSTANTS))
