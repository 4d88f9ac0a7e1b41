# SPDX-License-Identifier: MIT
"""Format version 1: SpikingGamma models (docs/FORMAT.md sections 1-6), the kind "sg".
Everything about its bytes: the layer-entry table and constants, the header rules, the
integer model (:class:`SgmModel` of :class:`SgmStage`) and its arena size, the
validating reader of its layer table, the encoder, the ``inspect`` description and
its macros in sg_format.h; registered with :func:`.kinds.register_format` at the end."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .kinds import CConstants, FormatKind, HeaderError, layer_constants, register_format
from .layout import (FLAG_OUTPUT, HEADER_FIELDS, LAYER_ENTRY_SIZE, EntryReader, SgmFormatError, field_offset)
from .writer import pack_sgm

FORMAT_VERSION = 1
MAX_BUCKETS = 16
Q15_ONE = 32768
THETA_MAX = 1 << 29
VSHIFT_MAX = 62
X_FRAC_BITS_RANGE = (-32, 32)
# stage 0's input gate: an input's count of one step below min_count is dropped; the
# runtime keeps the open step's count per input in a byte (FORMAT.md 3, "Input gate")
MIN_COUNT_MAX = 255
KIND_DENSE = 1
KIND_CONV2D = 2
KIND_NAMES = {KIND_DENSE: "dense", KIND_CONV2D: "conv2d"}
FLAG_DELAYS = 2
# The delay ring keeps one bit per synaptic input and slot (FORMAT.md 3, "Delays"): a
# stage fed by hidden neurons without pooling gets at most one event per input and step.
FLAG_SPIKE_RING = 4
BLOBS = ("weights", "bias", "vweights", "vshift", "theta", "alpha", "delays")
BLOB_DTYPES = {"weights": "<i1", "bias": "<i4", "vweights": "<i2", "vshift": "u1", "theta": "<i4",
               "alpha": "<u2", "delays": "u1"}
BLOB_TABLE_OFFSET = 40
# (name, offset, struct code) -- little-endian
LAYER_FIELDS = (
    ("kind", 0, "H"), ("flags", 2, "H"), ("in_c", 4, "H"), ("in_h", 6, "H"), ("in_w", 8, "H"),
    ("pool", 10, "H"), ("syn_c", 12, "H"), ("syn_h", 14, "H"), ("syn_w", 16, "H"), ("out_c", 18, "H"),
    ("out_h", 20, "H"), ("out_w", 22, "H"), ("kernel", 24, "H"), ("stride", 26, "H"),
    ("padding", 28, "H"), ("max_delay", 30, "H"), ("x_frac_bits", 32, "i"), ("min_count", 36, "I"),
) + tuple(x for i, b in enumerate(BLOBS)
          for x in ((f"{b}_offset", BLOB_TABLE_OFFSET + 8 * i, "I"), (f"{b}_size", BLOB_TABLE_OFFSET + 8 * i + 4, "I")))


@dataclass
class SgmStage:
    """One stage (synaptic layer) of an .sgm model, with its integer parameters.

    Geometry: raw presynaptic input (in_c, in_h, in_w) -> sum pooling by `pool`
    (stride = pool, floor) -> synaptic input (syn_c, syn_h, syn_w) -> output
    (out_c, out_h, out_w). Dense: out_h = out_w = 1, kernel = stride = 1, padding = 0.
    Per output channel j: int8 weights (folded with the presynaptic amplitude), int32
    bias, int16 bucket weights vweights[j, k] with right shift vshift[j], int32 theta
    (hidden stages). alpha: Q15 bucket decays (K,). delays: uint8 per synaptic input;
    spike_ring: the delay ring is one bit per input and slot (FLAG_SPIKE_RING).
    min_count (stage 0 only): an input's count of one step below it is dropped (0, 1: none)."""

    kind: int
    is_output: bool
    in_shape: tuple[int, int, int]
    pool: int
    syn_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: int
    stride: int
    padding: int
    max_delay: int
    x_frac_bits: int
    weights: np.ndarray
    bias: np.ndarray
    vweights: np.ndarray
    vshift: np.ndarray
    alpha: np.ndarray
    theta: np.ndarray | None = None
    delays: np.ndarray | None = None
    spike_ring: bool = False
    min_count: int = 0

    @property
    def gated(self) -> bool:
        """Stage 0 drops small counts (min_count >= 2): the runtime counts each input's
        events of the open step, so events and frames drop the same ones."""
        return self.min_count >= 2

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]

    @property
    def n_in(self) -> int:
        return int(np.prod(self.syn_shape))

    @property
    def n_raw_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def channels(self) -> int:
        return self.out_shape[0]

    @property
    def spatial(self) -> int:
        return self.out_shape[1] * self.out_shape[2]

    def arena_bytes(self, n_buckets: int) -> int:
        words = n_buckets * self.n_out + (0 if self.is_output else self.n_out)
        if self.delays is not None:
            words += (self.max_delay + 1) * ring_words(self.n_in, self.spike_ring)
        if self.gated:  # a byte per raw input: its count in the open step
            words += -(-self.n_raw_in // 4)
        return 4 * words

    def n_parameters(self) -> int:
        return int(sum(a.size for a in (self.weights, self.bias, self.vweights) if a is not None)
                   + (self.theta.size if self.theta is not None else 0))


@dataclass
class SgmModel:
    format_version: int
    dt_us: int
    n_buckets: int
    input_shape: tuple[int, int, int]
    sensor_size: tuple[int, int]
    downsample: int
    labels: list[str]
    stages: list[SgmStage]
    arena_bytes: int
    file_bytes: int
    payload_crc32: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.labels)


def ring_words(n_in: int, spike_ring: bool) -> int:
    """32-bit words of one delay-ring slot: a count per input, or a bit per input."""
    return -(-n_in // 32) if spike_ring else n_in


def spike_ring_allowed(stage_index: int, pool: int) -> bool:
    """A bit per input and slot holds every event only for a stage fed by hidden neurons
    (one spike per neuron and step at most) without pooling (which would add them up)."""
    return stage_index >= 1 and pool == 1


def arena_bytes_for(stages: list[SgmStage], n_buckets: int) -> int:
    """State bytes a runtime needs: sum over stages of 4 x (K*N_out + N_out if hidden
    + (max_delay+1)*N_in if delays, (max_delay+1)*ceil(N_in/32) with the spike ring
    + ceil(raw inputs / 4) if the stage drops small counts)."""
    return int(sum(st.arena_bytes(n_buckets) for st in stages))


def expected_blob_size(name: str, kind: int, syn: tuple, out: tuple, kernel: int, k: int,
                       is_output: bool, has_delays: bool) -> int:
    c_out = out[0]
    n_in = syn[0] * syn[1] * syn[2]
    if name == "weights":
        return c_out * (n_in if kind == KIND_DENSE else syn[0] * kernel * kernel)
    if name == "bias":
        return 4 * c_out
    if name == "vweights":
        return 2 * c_out * k
    if name == "vshift":
        return c_out
    if name == "theta":
        return 0 if is_output else 4 * c_out
    if name == "alpha":
        return 2 * k
    if name == "delays":
        return n_in if has_delays else 0
    raise KeyError(name)


def load_stages(buf: bytes, h: dict, labels: list[str], regions: list, arena_size: int | None) -> SgmModel:
    """Version 1 layer table (docs/FORMAT.md section 6), after the shared header checks.
    ``h``: the header fields; ``regions``: (start, end, described at, name) of every
    region laid out so far (blobs must not overlap them)."""
    n = len(buf)
    k = h["n_buckets"]
    ds = h["downsample"]

    def err(name, what):
        raise SgmFormatError(field_offset(HEADER_FIELDS, name), name, what)

    stages: list[SgmStage] = []
    prev_out = (h["in_c"], h["in_h"], h["in_w"])
    L = LAYER_FIELDS
    for si in range(h["n_stages"]):
        entry = EntryReader(buf, si, h["layers_offset"] + si * LAYER_ENTRY_SIZE, L, regions)
        f, lerr = entry.f, entry.err
        if f["kind"] not in KIND_NAMES:
            lerr("kind", f"unknown layer kind {f['kind']} (known: {sorted(KIND_NAMES)})")
        if f["flags"] & ~(FLAG_OUTPUT | FLAG_DELAYS | FLAG_SPIKE_RING):
            lerr("flags", f"unknown flag bits {f['flags']:#x}")
        is_output = bool(f["flags"] & FLAG_OUTPUT)
        if is_output != (si == h["n_stages"] - 1):
            lerr("flags", "the output flag must be set on the last stage and only there")
        has_delays = bool(f["flags"] & FLAG_DELAYS)
        spike_ring = bool(f["flags"] & FLAG_SPIKE_RING)
        for name, want in zip(("in_c", "in_h", "in_w"), prev_out):
            if f[name] != want:
                lerr(name, f"{name} {f[name]} != output of the previous stage / model input ({want})")
        if f["pool"] == 0:
            lerr("pool", "pool must be >= 1 (1 = no pooling)")
        if f["syn_c"] != f["in_c"]:
            lerr("syn_c", f"syn_c {f['syn_c']} != in_c {f['in_c']} (pooling keeps channels)")
        for name, src in (("syn_h", "in_h"), ("syn_w", "in_w")):
            want = f[src] // f["pool"]
            if f[name] != want or want == 0:
                lerr(name, f"{name} {f[name]}, expected {src} // pool = {want} (and >= 1)")
        if f["out_c"] == 0:
            lerr("out_c", "out_c must be >= 1")
        if f["kind"] == KIND_DENSE:
            for name, want in (("out_h", 1), ("out_w", 1), ("kernel", 1), ("stride", 1), ("padding", 0)):
                if f[name] != want:
                    lerr(name, f"dense layer: {name} must be {want}, got {f[name]}")
        else:
            if f["kernel"] == 0:
                lerr("kernel", "kernel must be >= 1")
            if f["stride"] == 0:
                lerr("stride", "stride must be >= 1")
            if f["padding"] >= f["kernel"]:
                lerr("padding", f"padding {f['padding']} must be < kernel {f['kernel']}")
            for name, src in (("out_h", "syn_h"), ("out_w", "syn_w")):
                span = f[src] + 2 * f["padding"] - f["kernel"]
                want = span // f["stride"] + 1 if span >= 0 else 0
                if f[name] != want or want == 0:
                    lerr(name, f"{name} {f[name]}, expected ({src} + 2 padding - kernel) // stride + 1 = {want} (>= 1)")
        if spike_ring and not (has_delays and spike_ring_allowed(si, f["pool"])):  # after the geometry, as in C
            lerr("flags", "the spike-ring flag needs the delays flag, a stage after the first and pool 1")
        if not has_delays and f["max_delay"] != 0:
            lerr("max_delay", "max_delay must be 0 without the delays flag")
        if has_delays and f["max_delay"] > 255:
            lerr("max_delay", f"max_delay {f['max_delay']} > 255")
        if not X_FRAC_BITS_RANGE[0] <= f["x_frac_bits"] <= X_FRAC_BITS_RANGE[1]:
            lerr("x_frac_bits", f"x_frac_bits {f['x_frac_bits']} outside {list(X_FRAC_BITS_RANGE)}")
        if si > 0 and f["min_count"] != 0:
            lerr("min_count", "min_count must be 0 after the first stage (it gates the model's input)")
        if f["min_count"] > MIN_COUNT_MAX:
            lerr("min_count", f"min_count {f['min_count']} > {MIN_COUNT_MAX}")
        syn = (f["syn_c"], f["syn_h"], f["syn_w"])
        out = (f["out_c"], f["out_h"], f["out_w"])
        arrays = {}
        for b in BLOBS:
            size = f[f"{b}_size"]
            want = expected_blob_size(b, f["kind"], syn, out, f["kernel"], k, is_output, has_delays)
            if size != want:
                lerr(f"{b}_size", f"{b} blob is {size} bytes, expected {want}")
            if (a := entry.blob(b, BLOB_DTYPES[b])) is not None:
                arrays[b] = a
        c_out = out[0]
        bad_element = entry.bad_element
        if (i := np.flatnonzero(arrays["vshift"] > VSHIFT_MAX)).size:
            bad_element("vshift", i[0], f"shift {arrays['vshift'][i[0]]} > {VSHIFT_MAX}")
        if (i := np.flatnonzero(arrays["alpha"] >= Q15_ONE)).size:
            bad_element("alpha", i[0], f"decay {arrays['alpha'][i[0]]} must be < {Q15_ONE} (Q15, < 1)")
        if "theta" in arrays:
            th = arrays["theta"]
            if (i := np.flatnonzero((th < 1) | (th > THETA_MAX))).size:
                bad_element("theta", i[0], f"threshold {th[i[0]]} outside [1, {THETA_MAX}]")
        if "delays" in arrays:
            d = arrays["delays"]
            if (i := np.flatnonzero(d > f["max_delay"])).size:
                bad_element("delays", i[0], f"delay {d[i[0]]} > max_delay {f['max_delay']}")
        wshape = (c_out, syn[0] * syn[1] * syn[2]) if f["kind"] == KIND_DENSE else (c_out, syn[0], f["kernel"], f["kernel"])
        stages.append(SgmStage(
            kind=f["kind"], is_output=is_output, in_shape=(f["in_c"], f["in_h"], f["in_w"]), pool=f["pool"],
            syn_shape=syn, out_shape=out, kernel=f["kernel"], stride=f["stride"], padding=f["padding"],
            max_delay=f["max_delay"], x_frac_bits=f["x_frac_bits"], weights=arrays["weights"].reshape(wshape),
            bias=arrays["bias"], vweights=arrays["vweights"].reshape(c_out, k), vshift=arrays["vshift"],
            alpha=arrays["alpha"], theta=arrays.get("theta"), delays=arrays.get("delays"), spike_ring=spike_ring,
            min_count=f["min_count"]))
        prev_out = out
    last = stages[-1]
    if last.n_out != h["n_classes"]:
        err("n_classes", f"n_classes {h['n_classes']} != {last.n_out} outputs of the last stage")
    need = arena_bytes_for(stages, k)
    if h["arena_bytes"] != need:
        err("arena_bytes", f"arena_bytes {h['arena_bytes']} != {need} required by the layer table")
    if arena_size is not None and arena_size < need:
        err("arena_bytes", f"arena of {arena_size} bytes is too small: the model needs {need}")
    return SgmModel(format_version=h["format_version"], dt_us=h["dt_us"], n_buckets=k,
                    input_shape=(h["in_c"], h["in_h"], h["in_w"]), sensor_size=(h["sensor_w"], h["sensor_h"]),
                    downsample=ds, labels=labels, stages=stages, arena_bytes=need, file_bytes=n,
                    payload_crc32=h["payload_crc32"])


def check_header(h: dict, err: HeaderError) -> None:
    """Version 1's header rules (after n_stages, docs/FORMAT.md section 5)."""
    k = h["n_buckets"]
    if not 1 <= k <= MAX_BUCKETS:
        err("n_buckets", f"n_buckets {k} outside [1, {MAX_BUCKETS}]")
    if h["in_c"] not in (1, 2):
        err("in_c", f"in_c {h['in_c']} must be 1 or 2 (polarity channels)")


def encode(model: SgmModel) -> bytes:
    """Lay out an integer SpikingGamma model as version 1 .sgm bytes."""
    entries = []
    for st in model.stages:
        blobs = {"weights": st.weights, "bias": st.bias, "vweights": st.vweights, "vshift": st.vshift,
                 "theta": st.theta, "alpha": st.alpha, "delays": st.delays}
        f = {"kind": st.kind, "flags": (FLAG_OUTPUT if st.is_output else 0) | (FLAG_DELAYS if st.delays is not None else 0)
             | (FLAG_SPIKE_RING if st.spike_ring else 0),
             "in_c": st.in_shape[0], "in_h": st.in_shape[1], "in_w": st.in_shape[2], "pool": st.pool,
             "syn_c": st.syn_shape[0], "syn_h": st.syn_shape[1], "syn_w": st.syn_shape[2],
             "out_c": st.out_shape[0], "out_h": st.out_shape[1], "out_w": st.out_shape[2],
             "kernel": st.kernel, "stride": st.stride, "padding": st.padding, "max_delay": st.max_delay,
             "x_frac_bits": st.x_frac_bits, "min_count": st.min_count}
        entries.append((f, {k: None if v is None else np.asarray(v, BLOB_DTYPES[k]) for k, v in blobs.items()}))
    header = {"format_version": FORMAT_VERSION, "arena_bytes": arena_bytes_for(model.stages, model.n_buckets),
              "dt_us": model.dt_us, "n_buckets": model.n_buckets, "in_c": model.input_shape[0],
              "in_h": model.input_shape[1], "in_w": model.input_shape[2], "sensor_w": model.sensor_size[0],
              "sensor_h": model.sensor_size[1], "downsample": model.downsample}
    return pack_sgm(header, model.labels, entries, LAYER_FIELDS, BLOBS)


def inspect(model: SgmModel) -> dict:
    """``pysg inspect --json`` of a version 1 model."""
    layers = []
    for i, st in enumerate(model.stages):
        layers.append({
            "index": i, "kind": st.kind_name, "output": st.is_output, "in_shape": list(st.in_shape),
            "pool": st.pool, "syn_shape": list(st.syn_shape), "out_shape": list(st.out_shape),
            "kernel": st.kernel, "stride": st.stride, "padding": st.padding,
            "weights_shape": list(st.weights.shape), "parameters": st.n_parameters(),
            "weight_bytes": int(st.weights.nbytes), "delays": st.delays is not None, "max_delay": st.max_delay,
            "spike_ring": st.spike_ring, "min_count": st.min_count, "x_frac_bits": st.x_frac_bits, "alpha_q15": st.alpha.tolist(),
            "arena_bytes": st.arena_bytes(model.n_buckets)})
    return {"format_version": model.format_version, "file_bytes": model.file_bytes,
            "arena_bytes": model.arena_bytes, "dt_us": model.dt_us, "n_buckets": model.n_buckets,
            "input_shape": list(model.input_shape), "sensor_size": list(model.sensor_size),
            "downsample": model.downsample, "labels": list(model.labels), "n_classes": model.n_classes,
            "parameters": int(sum(st.n_parameters() for st in model.stages)),
            "payload_crc32": model.payload_crc32, "layers": layers}


def summary(name: str, info: dict) -> str:
    """``pysg inspect``'s text of :func:`inspect`'s description."""
    lines = [f"{name}: .sgm version {info['format_version']}, {info['file_bytes']} bytes, "
             f"arena {info['arena_bytes']} bytes, dt {info['dt_us']} us, K = {info['n_buckets']}, "
             f"input {info['input_shape']} from sensor {info['sensor_size']} / {info['downsample']}"]
    for l in info["layers"]:
        lines.append(f"  {l['index']}: {l['kind']:<6} {l['in_shape']} pool {l['pool']} -> {l['out_shape']}"
                     f"{' (output)' if l['output'] else ''}: {l['parameters']} parameters, "
                     f"weights {l['weight_bytes']} B, arena {l['arena_bytes']} B, alpha_q15 {l['alpha_q15']}"
                     f"{', delays <= ' + str(l['max_delay']) if l['delays'] else ''}"
                     f"{' (spike ring)' if l['spike_ring'] else ''}"
                     + (f", input counts below {l['min_count']} dropped" if l["min_count"] >= 2 else ""))
    lines.append("  labels: " + ", ".join(info["labels"]))
    return "\n".join(lines)


C_CONSTANTS = CConstants(
    version="format_version of SpikingGamma models (FORMAT.md 2)",
    limits=(("SG_FMT_MAX_BUCKETS", MAX_BUCKETS, "Gamma buckets per layer"),
            ("SG_FMT_Q15_ONE", Q15_ONE, "1.0 in the Q15 decays (alpha < this)"),
            ("SG_FMT_THETA_MAX", THETA_MAX, "largest threshold, accumulator units"),
            ("SG_FMT_VSHIFT_MAX", VSHIFT_MAX, "largest bucket-weight right shift"),
            ("SG_FMT_X_FRAC_BITS_MIN", X_FRAC_BITS_RANGE[0], "x_frac_bits range, inclusive"),
            ("SG_FMT_X_FRAC_BITS_MAX", X_FRAC_BITS_RANGE[1], ""),
            ("SG_FMT_MIN_COUNT_MAX", MIN_COUNT_MAX, "largest input min_count (a byte per input counts the open step)")),
    kinds=(("SG_KIND_DENSE", KIND_DENSE, "version 1 layer kinds"),
           ("SG_KIND_CONV2D", KIND_CONV2D, "")),
    flags=(("SG_FLAG_DELAYS", FLAG_DELAYS, "version 1: the layer has axonal delays"),
           ("SG_FLAG_SPIKE_RING", FLAG_SPIKE_RING, "version 1: the delay ring is a bit per input and slot")),
    layer=layer_constants(FORMAT_VERSION, LAYER_FIELDS, BLOBS, BLOB_TABLE_OFFSET))

SG_FORMAT = register_format(FormatKind(
    "sg", FORMAT_VERSION, SgmModel, min_stages=1, check_header=check_header, read_layers=load_stages,
    encode=encode, inspect=inspect, summary=summary, c=C_CONSTANTS))
