# SPDX-License-Identifier: MIT
"""Format version 2: imported int8 networks (docs/FORMAT.md sections 7-10), the kind
"qnet". Everything about its bytes: the layer-entry table and constants, the header
rules, the model (:class:`SgmQModel`: the input entry and :class:`SgmQLayer` layers),
its arena size and accumulator bound, the validating reader of its layer table, the
encoder, the ``inspect`` description and its macros in sg_format.h; registered with
:func:`.kinds.register_format` at the end."""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from .kinds import CConstants, FormatKind, HeaderError, layer_constants, register_format
from .layout import FLAG_OUTPUT, HEADER_FIELDS, LAYER_ENTRY_SIZE, EntryReader, SgmFormatError, field_offset
from .loader import load_sgm
from .writer import pack_sgm

FORMAT_VERSION_QNET = 2
QKIND_CONV = 3
QKIND_DEPTHWISE = 4
QKIND_FC = 5
QKIND_POOL = 6
QKIND_INPUT = 16
QKIND_NAMES = {QKIND_CONV: "conv", QKIND_DEPTHWISE: "depthwise", QKIND_FC: "fully_connected",
               QKIND_POOL: "average_pool", QKIND_INPUT: "input"}
COUNT_MAX = 65535          # per-step count of a cell saturates here
RING_CELLS_MAX = 65536     # event input: a ring entry keeps its cell in 16 bits
ARENA_BUDGET = 65536       # the default event ring fills the arena up to this (a microcontroller's 64 KiB)
LUT_MAX = 65536
QBLOBS = ("weights", "bias", "multiplier", "shift", "reserved4", "reserved5")
QBLOB_DTYPES = {"weights": "<i1", "bias": "<i4", "multiplier": "<i4", "shift": "<i1", "reserved4": "u1",
                "reserved5": "u1"}
QBLOB_TABLE_OFFSET = 48
# (name, offset, struct code) -- little-endian; the input entry (table entry 0) reuses them (FORMAT.md 7.2)
QLAYER_FIELDS = (
    ("kind", 0, "H"), ("flags", 2, "H"), ("in_h", 4, "H"), ("in_w", 6, "H"), ("in_c", 8, "H"),
    ("out_h", 10, "H"), ("out_w", 12, "H"), ("out_c", 14, "H"), ("kernel_h", 16, "H"), ("kernel_w", 18, "H"),
    ("stride_h", 20, "H"), ("stride_w", 22, "H"), ("dilation_h", 24, "H"), ("dilation_w", 26, "H"),
    ("pad_top", 28, "H"), ("pad_left", 30, "H"), ("depth_multiplier", 32, "H"), ("filter_c", 34, "H"),
    ("input_offset", 36, "h"), ("output_offset", 38, "h"), ("act_min", 40, "h"), ("act_max", 42, "h"),
    ("reserved", 44, "I"),
) + tuple(x for i, b in enumerate(QBLOBS)
          for x in ((f"{b}_offset", QBLOB_TABLE_OFFSET + 8 * i, "I"), (f"{b}_size", QBLOB_TABLE_OFFSET + 8 * i + 4, "I")))


@dataclass
class SgmQLayer:
    """One entry of a version 2 layer table (docs/FORMAT.md 7.1): geometry NHWC, TFLite's
    int8 parameters. ``weights``: conv (kh, kw, filter_c, out_c), depthwise (kh, kw, in_c, M),
    fully connected (in_c, out_c), pool None; the input entry keeps its count LUT there
    (or None for tensor input). ``multiplier``/``shift``: (out_c,) or (1,) per tensor."""

    kind: int
    is_output: bool
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    depth_multiplier: int = 1
    filter_c: int = 0
    input_offset: int = 0
    output_offset: int = 0
    act_min: int = -128
    act_max: int = 127
    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    multiplier: np.ndarray | None = None
    shift: np.ndarray | None = None
    ring_entries: int = 0   # input entry with S >= 1: event-ring capacity E (0: the default, ring_entries_for)

    @property
    def kind_name(self) -> str:
        return QKIND_NAMES[self.kind]

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def run_length(self) -> int:
        """Accumulators one input delta adds to at one output position: a run of
        consecutive output channels (pool 1, depthwise M, conv / FC a group's)."""
        if self.kind == QKIND_POOL:
            return 1
        if self.kind == QKIND_DEPTHWISE:
            return self.depth_multiplier
        return self.out_shape[2] // (self.in_shape[2] // self.filter_c)

    def arena_bytes(self) -> int:
        """State of a layer (FORMAT.md section 9): int32 accumulators, int8 outputs, a
        touched flag per accumulator and the list of touched runs."""
        return 4 * self.n_out + 2 * _ceil4(self.n_out) + 4 * (self.n_out // self.run_length)


@dataclass
class SgmQModel:
    """A version 2 file: an imported int8 network. ``input`` is entry 0 (slices S =
    ``input.kernel[0]``, window W = ``input.kernel[1]`` steps, polarity channels P =
    ``input.depth_multiplier``, the LUT in ``input.weights``); ``layers`` the rest."""

    format_version: int
    dt_us: int
    input_shape: tuple[int, int, int]   # (in_h, in_w, in_c): the int8 input tensor, NHWC
    sensor_size: tuple[int, int]
    downsample: int
    labels: list[str]
    input: SgmQLayer
    layers: list[SgmQLayer]
    arena_bytes: int
    file_bytes: int
    payload_crc32: int = 0

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def slices(self) -> int:
        return self.input.kernel[0]

    @property
    def window(self) -> int:
        return self.input.kernel[1]

    @property
    def polarities(self) -> int:
        return self.input.depth_multiplier

    @property
    def cells(self) -> int:
        """Count cells of one step: P x in_h x in_w (0 for tensor input)."""
        return self.polarities * self.input_shape[0] * self.input_shape[1] if self.slices else 0


def _ceil4(v: int) -> int:
    return (v + 3) // 4 * 4


def _cells(input_entry: SgmQLayer) -> int:
    return input_entry.depth_multiplier * input_entry.out_shape[0] * input_entry.out_shape[1]


def _arena_without_ring(input_entry: SgmQLayer, layers: list[SgmQLayer]) -> int:
    s, w = input_entry.kernel
    cells = _cells(input_entry)
    total = _ceil4(input_entry.n_out)
    if s:  # open step's u16 counts, u32 slice sums, the ring's start + count per step slot
        total += _ceil4(2 * cells) + 4 * s * cells + 8 * (w + 1)
    return total + sum(ly.arena_bytes() for ly in layers)


def ring_entries_for(input_entry: SgmQLayer, layers: list[SgmQLayer]) -> int:
    """The event-ring capacity E of a model (docs/FORMAT.md 7.2): the entry's own, or by
    default the lossless (W + 1) cells if the arena then stays within ARENA_BUDGET, else
    as many entries as fit in it, but at least one step's cells. 0 for tensor input."""
    s, w = input_entry.kernel
    if not s:
        return 0
    if input_entry.ring_entries:
        return int(input_entry.ring_entries)
    cells = _cells(input_entry)
    fit = (ARENA_BUDGET - _arena_without_ring(input_entry, layers)) // 4
    return int(min((w + 1) * cells, max(fit, cells)))


def qarena_bytes_for(input_entry: SgmQLayer, layers: list[SgmQLayer]) -> int:
    """docs/FORMAT.md section 9."""
    return _arena_without_ring(input_entry, layers) + 4 * ring_entries_for(input_entry, layers)


def _extent(k: int, d: int) -> int:
    return d * (k - 1) + 1


def qaccumulator_bound(ly: SgmQLayer) -> int:
    """Largest |int32 accumulator| any int8 input can give (docs/FORMAT.md section 8)."""
    if ly.kind == QKIND_POOL:
        return 128 * ly.kernel[0] * ly.kernel[1]
    w = np.abs(ly.weights.astype(np.int64))
    if ly.kind == QKIND_CONV:
        per_out = w.sum(axis=(0, 1, 2))                       # (out_c,)
    elif ly.kind == QKIND_DEPTHWISE:
        per_out = w.sum(axis=(0, 1)).reshape(-1)              # channel c M + m
    else:
        per_out = w.sum(axis=0)
    bound = per_out * max(abs(ly.input_offset - 128), abs(ly.input_offset + 127))
    if ly.bias is not None:
        bound = bound + np.abs(ly.bias.astype(np.int64))
    return int(bound.max(initial=0))


def load_qlayers(buf: bytes, h: dict, labels: list[str], regions: list, arena_size: int | None) -> SgmQModel:
    """Version 2 layer table (docs/FORMAT.md section 10), after the shared header checks
    (arguments as :func:`pysg.sgm.sg.load_stages`)."""
    n = len(buf)
    L = QLAYER_FIELDS
    entries: list[SgmQLayer] = []
    prev_out = (h["in_h"], h["in_w"], h["in_c"])
    last = h["n_stages"] - 1
    for si in range(h["n_stages"]):
        entry = EntryReader(buf, si, h["layers_offset"] + si * LAYER_ENTRY_SIZE, L, regions)
        f, lerr = entry.f, entry.err
        kind = f["kind"]
        if si == 0 and kind != QKIND_INPUT:
            lerr("kind", f"entry 0 must be the input (kind {QKIND_INPUT}), got {kind}")
        if si > 0 and kind not in QKIND_NAMES or si > 0 and kind == QKIND_INPUT:
            lerr("kind", f"unknown layer kind {kind} (layers: {QKIND_CONV}..{QKIND_POOL})")
        if f["flags"] & ~FLAG_OUTPUT:
            lerr("flags", f"unknown flag bits {f['flags']:#x}")
        if bool(f["flags"] & FLAG_OUTPUT) != (si == last):
            lerr("flags", "the output flag must be set on the last entry and only there")
        ins = (f["in_h"], f["in_w"], f["in_c"])
        outs = (f["out_h"], f["out_w"], f["out_c"])
        for name, v in zip(("in_h", "in_w", "in_c"), ins):
            if v == 0:
                lerr(name, f"{name} must be >= 1")
        if si == 0 and ins != prev_out:
            lerr("in_h", f"input entry geometry {ins} != the header's input tensor {prev_out}")
        if si > 0 and int(np.prod(ins)) != int(np.prod(prev_out)):
            lerr("in_c", f"{ins} holds {int(np.prod(ins))} elements, the previous entry outputs "
                 f"{prev_out} = {int(np.prod(prev_out))}")
        for name, v in zip(("out_h", "out_w", "out_c"), outs):
            if v == 0:
                lerr(name, f"{name} must be >= 1")
        kh, kw = f["kernel_h"], f["kernel_w"]

        def want(name, value):
            if f[name] != value:
                lerr(name, f"{QKIND_NAMES[kind]} entry: {name} must be {value}, got {f[name]}")

        if kind == QKIND_INPUT:
            if outs != ins:
                lerr("out_h", f"input entry: output {outs} must equal its input {ins}")
            s_, w_ = kh, kw
            if s_ == 0:
                want("kernel_w", 1)
            elif w_ == 0 or w_ % s_:
                lerr("kernel_w", f"window {w_} steps must be >= 1 and a multiple of the {s_} slices")
            for name, v in (("stride_h", 1), ("stride_w", 1), ("dilation_h", 1), ("dilation_w", 1),
                            ("pad_top", 0), ("pad_left", 0)):
                want(name, v)
            p_ = f["depth_multiplier"]
            if p_ not in (1, 2) or (s_ == 0 and p_ != 1):
                lerr("depth_multiplier", f"polarity channels {p_} must be 1 or 2 (1 for tensor input)")
            if s_ and outs[2] != s_ * p_:
                lerr("depth_multiplier", f"in_c {outs[2]} != slices {s_} x polarity channels {p_}")
            want("filter_c", 0)
            want("input_offset", 0)
        else:
            fc = kind == QKIND_FC
            if fc:
                for name, v in (("kernel_h", 1), ("kernel_w", 1)):
                    want(name, v)
            elif kh == 0 or kw == 0:
                lerr("kernel_h" if kh == 0 else "kernel_w", "kernel must be >= 1")
            for name in ("stride_h", "stride_w", "dilation_h", "dilation_w"):
                if fc or (kind == QKIND_POOL and name.startswith("dilation")):
                    want(name, 1)
                elif f[name] == 0:
                    lerr(name, f"{name} must be >= 1")
            for name, k_, d_, ax in (("pad_top", kh, f["dilation_h"], 0), ("pad_left", kw, f["dilation_w"], 1)):
                if f[name] >= _extent(k_, d_):
                    lerr(name, f"{name} {f[name]} must be < the window extent {_extent(k_, d_)}")
                stride = f["stride_h" if ax == 0 else "stride_w"]
                if (outs[ax] - 1) * stride - f[name] >= ins[ax]:
                    lerr("out_h" if ax == 0 else "out_w", f"output {outs[ax]} with stride {stride} and padding "
                         f"{f[name]}: the last window starts after the image ({ins[ax]})")
            if fc and (outs[0] != ins[0] or ins[1] != 1 or outs[1] != 1):
                lerr("out_h", f"fully connected: input {ins} and output {outs} must be [rows, 1, n]")
            m_ = f["depth_multiplier"]
            if kind == QKIND_DEPTHWISE:
                if m_ == 0 or outs[2] != ins[2] * m_:
                    lerr("depth_multiplier", f"depth multiplier {m_}: out_c {outs[2]} must be in_c {ins[2]} x it")
            else:
                want("depth_multiplier", 1)
            if kind == QKIND_POOL and outs[2] != ins[2]:
                lerr("out_c", f"average pool keeps channels: out_c {outs[2]} != in_c {ins[2]}")
            fcn = f["filter_c"]
            if kind == QKIND_CONV:
                if fcn == 0 or ins[2] % fcn or outs[2] % (ins[2] // fcn):
                    lerr("filter_c", f"filter_c {fcn} must divide in_c {ins[2]} into groups dividing out_c {outs[2]}")
            elif fc:
                want("filter_c", ins[2])
            else:
                want("filter_c", 0)
            if kind == QKIND_POOL:
                want("input_offset", 0)
                want("output_offset", 0)
            elif not -127 <= f["input_offset"] <= 128:
                lerr("input_offset", f"input_offset {f['input_offset']} outside [-127, 128]")
        if not -128 <= f["output_offset"] <= 127:
            lerr("output_offset", f"output_offset {f['output_offset']} outside [-128, 127]")
        if kind == QKIND_INPUT:
            want("act_min", -128)
            want("act_max", 127)
        elif not -128 <= f["act_min"] <= f["act_max"] <= 127:
            lerr("act_min", f"activation range [{f['act_min']}, {f['act_max']}] not inside [-128, 127]")
        if kind == QKIND_INPUT and kh:
            cells = f["depth_multiplier"] * outs[0] * outs[1]
            if f["reserved"] == 0:
                lerr("reserved", "input entry: event-ring capacity 0: a file from before the event ring "
                     "(FORMAT.md 7.2); convert the .tflite again")
            elif f["reserved"] > (kw + 1) * cells:
                lerr("reserved", f"input entry: event-ring capacity {f['reserved']} > (W + 1) cells = "
                     f"{(kw + 1) * cells} (lossless already)")
            elif cells > RING_CELLS_MAX:
                lerr("reserved", f"input entry: {cells} cells; the event ring holds at most {RING_CELLS_MAX}")
        elif f["reserved"] != 0:
            lerr("reserved", "reserved field must be 0")
        # blob sizes (None: any size from the allowed set)
        c_out = outs[2]
        if kind == QKIND_INPUT:
            sizes = {"weights": None if kh else (0,)}
        elif kind == QKIND_POOL:
            sizes = {}
        else:
            wsize = {QKIND_CONV: kh * kw * f["filter_c"] * c_out, QKIND_DEPTHWISE: kh * kw * c_out,
                     QKIND_FC: ins[2] * c_out}[kind]
            sizes = {"weights": (wsize,), "bias": (0, 4 * c_out), "multiplier": (4, 4 * c_out)}
        arrays = {}
        for b in QBLOBS:
            size = f[f"{b}_size"]
            allowed = sizes.get(b, (0,))
            if b == "shift":
                allowed = (arrays["multiplier"].size,) if "multiplier" in arrays else (0,)
            if allowed is None:  # the LUT
                if not 2 <= size <= LUT_MAX:
                    lerr(f"{b}_size", f"count LUT of {size} entries, must be 2..{LUT_MAX}")
            elif size not in allowed:
                lerr(f"{b}_size", f"{b} blob is {size} bytes, expected " + " or ".join(map(str, allowed)))
            if (a := entry.blob(b, QBLOB_DTYPES[b])) is not None:
                arrays[b] = a
        bad_element = entry.bad_element
        if "multiplier" in arrays and (i := np.flatnonzero(arrays["multiplier"] < 0)).size:
            bad_element("multiplier", i[0], f"multiplier {arrays['multiplier'][i[0]]} < 0")
        if "shift" in arrays and (i := np.flatnonzero((arrays["shift"] < -31) | (arrays["shift"] > 30))).size:
            bad_element("shift", i[0], f"shift {arrays['shift'][i[0]]} outside [-31, 30]")
        if kind == QKIND_INPUT and "weights" in arrays and arrays["weights"][0] != f["output_offset"]:
            bad_element("weights", 0, f"lut[0] = {arrays['weights'][0]} must equal output_offset "
                        f"{f['output_offset']} (the tensor of no events)")
        w = arrays.get("weights")
        if w is not None and kind == QKIND_CONV:
            w = w.reshape(kh, kw, f["filter_c"], c_out)
        elif w is not None and kind == QKIND_DEPTHWISE:
            w = w.reshape(kh, kw, ins[2], f["depth_multiplier"])
        elif w is not None and kind == QKIND_FC:
            w = w.reshape(ins[2], c_out)
        ly = SgmQLayer(kind=kind, is_output=si == last, in_shape=ins, out_shape=outs, kernel=(kh, kw),
                       stride=(f["stride_h"], f["stride_w"]), dilation=(f["dilation_h"], f["dilation_w"]),
                       padding=(f["pad_top"], f["pad_left"]), depth_multiplier=f["depth_multiplier"],
                       filter_c=f["filter_c"], input_offset=f["input_offset"], output_offset=f["output_offset"],
                       act_min=f["act_min"], act_max=f["act_max"], weights=w, bias=arrays.get("bias"),
                       multiplier=arrays.get("multiplier"), shift=arrays.get("shift"),
                       ring_entries=f["reserved"] if kind == QKIND_INPUT else 0)
        if kind != QKIND_INPUT and (bound := qaccumulator_bound(ly)) >= 1 << 31:
            lerr("kind", f"the int32 accumulator could overflow (bound {bound} >= 2^31)")
        entries.append(ly)
        prev_out = outs
    n_last = entries[-1].n_out
    if n_last != h["n_classes"]:
        raise SgmFormatError(field_offset(HEADER_FIELDS, "n_classes"), "n_classes",
                             f"n_classes {h['n_classes']} != {n_last} outputs of the last layer")
    need = qarena_bytes_for(entries[0], entries[1:])
    if h["arena_bytes"] != need:
        raise SgmFormatError(field_offset(HEADER_FIELDS, "arena_bytes"), "arena_bytes",
                             f"arena_bytes {h['arena_bytes']} != {need} required by the layer table")
    if arena_size is not None and arena_size < need:
        raise SgmFormatError(field_offset(HEADER_FIELDS, "arena_bytes"), "arena_bytes",
                             f"arena of {arena_size} bytes is too small: the model needs {need}")
    return SgmQModel(format_version=h["format_version"], dt_us=h["dt_us"],
                     input_shape=(h["in_h"], h["in_w"], h["in_c"]), sensor_size=(h["sensor_w"], h["sensor_h"]),
                     downsample=h["downsample"], labels=labels, input=entries[0], layers=entries[1:],
                     arena_bytes=need, file_bytes=n, payload_crc32=h["payload_crc32"])


def check_header(h: dict, err: HeaderError) -> None:
    """Version 2's header rules (after n_stages, docs/FORMAT.md section 10)."""
    k = h["n_buckets"]
    if k != 0:
        err("n_buckets", f"n_buckets {k} must be 0 in version {h['format_version']} (no Gamma buckets)")
    if h["in_c"] == 0:
        err("in_c", "in_c must be >= 1")


def encode_qmodel(model: SgmQModel) -> bytes:
    """Version 2 .sgm bytes of an imported int8 network (validated by loading them back)."""
    entries = []
    ring = ring_entries_for(model.input, model.layers)
    for ly in [model.input] + model.layers:
        f = {"kind": ly.kind, "flags": FLAG_OUTPUT if ly.is_output else 0, "in_h": ly.in_shape[0],
             "in_w": ly.in_shape[1], "in_c": ly.in_shape[2], "out_h": ly.out_shape[0], "out_w": ly.out_shape[1],
             "out_c": ly.out_shape[2], "kernel_h": ly.kernel[0], "kernel_w": ly.kernel[1],
             "stride_h": ly.stride[0], "stride_w": ly.stride[1], "dilation_h": ly.dilation[0],
             "dilation_w": ly.dilation[1], "pad_top": ly.padding[0], "pad_left": ly.padding[1],
             "depth_multiplier": ly.depth_multiplier, "filter_c": ly.filter_c, "input_offset": ly.input_offset,
             "output_offset": ly.output_offset, "act_min": ly.act_min, "act_max": ly.act_max,
             "reserved": ring if ly is model.input else 0}
        blobs = {"weights": None if ly.weights is None else np.asarray(ly.weights, np.int8).ravel(),
                 "bias": None if ly.bias is None else np.asarray(ly.bias, "<i4"),
                 "multiplier": None if ly.multiplier is None else np.asarray(ly.multiplier, "<i4"),
                 "shift": None if ly.shift is None else np.asarray(ly.shift, np.int8)}
        entries.append((f, blobs))
    h, w, c = model.input_shape
    header = {"format_version": FORMAT_VERSION_QNET, "arena_bytes": qarena_bytes_for(model.input, model.layers),
              "dt_us": model.dt_us, "n_buckets": 0, "in_c": c, "in_h": h, "in_w": w,
              "sensor_w": model.sensor_size[0], "sensor_h": model.sensor_size[1], "downsample": model.downsample}
    data = pack_sgm(header, model.labels, entries, QLAYER_FIELDS, QBLOBS)
    load_sgm(data)  # the writer's own output must pass the loader: a failure here is a converter bug
    return data


def inspect(model: SgmQModel) -> dict:
    """``pysg inspect --json`` of a version 2 model."""
    layers = []
    for i, ly in enumerate(model.layers, start=1):
        layers.append({
            "index": i, "kind": ly.kind_name, "output": ly.is_output, "in_shape": list(ly.in_shape),
            "out_shape": list(ly.out_shape), "kernel": list(ly.kernel), "stride": list(ly.stride),
            "dilation": list(ly.dilation), "padding": list(ly.padding), "depth_multiplier": ly.depth_multiplier,
            "input_offset": ly.input_offset, "output_offset": ly.output_offset,
            "activation_range": [ly.act_min, ly.act_max],
            "weights_shape": [] if ly.weights is None else list(ly.weights.shape),
            "parameters": int(sum(a.size for a in (ly.weights, ly.bias) if a is not None)),
            "per_channel": ly.multiplier is not None and ly.multiplier.size > 1,
            "arena_bytes": ly.arena_bytes()})
    inp = model.input
    encoder = ({"kind": "event_counts", "slices": model.slices, "window_steps": model.window,
                "polarity_channels": model.polarities, "lut_entries": int(inp.weights.size)}
               if model.slices else {"kind": "tensor"})
    return {"format_version": model.format_version, "file_bytes": model.file_bytes,
            "arena_bytes": model.arena_bytes, "dt_us": model.dt_us, "input_shape": list(model.input_shape),
            "input_zero_point": inp.output_offset, "input": encoder, "sensor_size": list(model.sensor_size),
            "downsample": model.downsample, "labels": list(model.labels), "n_classes": model.n_classes,
            "parameters": int(sum(ly["parameters"] for ly in layers)),
            "payload_crc32": model.payload_crc32, "layers": layers}


def summary(name: str, info: dict) -> str:
    """``pysg inspect``'s (and ``pysg convert``'s) text of :func:`inspect`'s description."""
    enc = info["input"]
    src = (f"event counts over {enc['window_steps']} steps in {enc['slices']} slices x "
           f"{enc['polarity_channels']} polarities from sensor {info['sensor_size']} / {info['downsample']}"
           if enc["kind"] == "event_counts" else "the int8 tensor, set by the host")
    lines = [f"{name}: .sgm version {info['format_version']} (imported int8 network), {info['file_bytes']} bytes, "
             f"arena {info['arena_bytes']} bytes, dt {info['dt_us']} us, input {info['input_shape']} (HWC) from {src}"]
    for ly in info["layers"]:
        lines.append(f"  {ly['index']}: {ly['kind']:<15} {ly['in_shape']} -> {ly['out_shape']}"
                     f"{' (output)' if ly['output'] else ''}: {ly['parameters']} parameters, kernel {ly['kernel']}, "
                     f"stride {ly['stride']}, {'per-channel' if ly['per_channel'] else 'per-tensor'} requantisation, "
                     f"arena {ly['arena_bytes']} B")
    lines.append("  labels: " + ", ".join(info["labels"]))
    return "\n".join(lines)


C_CONSTANTS = CConstants(
    version="format_version of imported int8 networks (FORMAT.md 7-10)",
    limits=(("SG_FMT_COUNT_MAX", COUNT_MAX, "a cell's event count per step saturates here (version 2)"),
            ("SG_FMT_LUT_MAX", LUT_MAX, "entries of a count -> int8 table at most (version 2)")),
    kinds=(("SG_QKIND_CONV", QKIND_CONV, "version 2 layer kinds"),
           ("SG_QKIND_DEPTHWISE", QKIND_DEPTHWISE, ""),
           ("SG_QKIND_FC", QKIND_FC, ""),
           ("SG_QKIND_POOL", QKIND_POOL, ""),
           ("SG_QKIND_INPUT", QKIND_INPUT, "the input entry (table entry 0)")),
    layer=layer_constants(FORMAT_VERSION_QNET, QLAYER_FIELDS, QBLOBS, QBLOB_TABLE_OFFSET,
                          note="the input entry reuses them: FORMAT.md 7.2"))

# min_stages: the input entry and at least one layer
def count_channels(h: dict, entry: bytes) -> int:
    """Event-count channels of a step: the input entry's polarity channels P (FORMAT.md
    7.2), 0 for tensor input (no slices)."""
    fields = {name: struct.unpack_from("<" + code, entry, off)[0] for name, off, code in QLAYER_FIELDS
              if name in ("kernel_h", "depth_multiplier")}
    return int(fields["depth_multiplier"]) if fields["kernel_h"] else 0


QNET_FORMAT = register_format(FormatKind(
    "qnet", FORMAT_VERSION_QNET, SgmQModel, min_stages=2, check_header=check_header, read_layers=load_qlayers,
    encode=encode_qmodel, inspect=inspect, summary=summary, c=C_CONSTANTS, count_channels=count_channels))
