# SPDX-License-Identifier: MIT
"""The `.sgm` int8 model file: layout constants, a validating loader, `inspect`.

docs/FORMAT.md is the specification; this module is its executable form and is kept
in step with it (the byte layout tables below are the single source of truth that the
writer, `converters/sgm.py`, and the tests use). The loader never reads outside the
buffer and reports the FIRST bad field as `SgmFormatError(offset, field, what)`.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"PSGM"
FORMAT_VERSION = 1
HEADER_SIZE = 64
LAYER_ENTRY_SIZE = 96
LABEL_SIZE = 32
ALIGN = 8
MAX_STAGES = 16
MAX_BUCKETS = 16
Q15_ONE = 32768
THETA_MAX = 1 << 29
VSHIFT_MAX = 62
KIND_DENSE = 1
KIND_CONV2D = 2
KIND_NAMES = {KIND_DENSE: "dense", KIND_CONV2D: "conv2d"}
FLAG_OUTPUT = 1
FLAG_DELAYS = 2

# (name, offset, struct code) -- little-endian
HEADER_FIELDS = (
    ("magic", 0, "4s"), ("format_version", 4, "I"), ("header_size", 8, "I"), ("file_size", 12, "I"),
    ("payload_crc32", 16, "I"), ("arena_bytes", 20, "I"), ("dt_us", 24, "I"), ("n_stages", 28, "H"),
    ("n_buckets", 30, "H"), ("in_c", 32, "H"), ("in_h", 34, "H"), ("in_w", 36, "H"),
    ("sensor_w", 38, "H"), ("sensor_h", 40, "H"), ("downsample", 42, "H"), ("n_classes", 44, "H"),
    ("label_size", 46, "H"), ("labels_offset", 48, "I"), ("layers_offset", 52, "I"),
    ("layer_entry_size", 56, "I"), ("header_crc32", 60, "I"),
)
BLOBS = ("weights", "bias", "vweights", "vshift", "theta", "alpha", "delays")
BLOB_DTYPES = {"weights": "<i1", "bias": "<i4", "vweights": "<i2", "vshift": "u1", "theta": "<i4",
               "alpha": "<u2", "delays": "u1"}
BLOB_TABLE_OFFSET = 40
LAYER_FIELDS = (
    ("kind", 0, "H"), ("flags", 2, "H"), ("in_c", 4, "H"), ("in_h", 6, "H"), ("in_w", 8, "H"),
    ("pool", 10, "H"), ("syn_c", 12, "H"), ("syn_h", 14, "H"), ("syn_w", 16, "H"), ("out_c", 18, "H"),
    ("out_h", 20, "H"), ("out_w", 22, "H"), ("kernel", 24, "H"), ("stride", 26, "H"),
    ("padding", 28, "H"), ("max_delay", 30, "H"), ("x_frac_bits", 32, "i"), ("reserved", 36, "I"),
) + tuple(x for i, b in enumerate(BLOBS)
          for x in ((f"{b}_offset", BLOB_TABLE_OFFSET + 8 * i, "I"), (f"{b}_size", BLOB_TABLE_OFFSET + 8 * i + 4, "I")))
X_FRAC_BITS_RANGE = (-32, 32)


class SgmFormatError(ValueError):
    """A malformed .sgm file: `offset` is the byte offset of the offending field (or of
    the first missing byte), `field` its name, `what` the problem."""

    def __init__(self, offset: int, field: str, what: str):
        self.offset = int(offset)
        self.field = field
        self.what = what
        super().__init__(f"byte offset {self.offset} ({field}): {what}")


@dataclass
class SgmStage:
    """One stage (synaptic layer) of an .sgm model, with its integer parameters.

    Geometry: raw presynaptic input (in_c, in_h, in_w) -> sum pooling by `pool`
    (stride = pool, floor) -> synaptic input (syn_c, syn_h, syn_w) -> output
    (out_c, out_h, out_w). Dense: out_h = out_w = 1, kernel = stride = 1, padding = 0.
    Per output channel j: int8 weights (folded with the presynaptic amplitude), int32
    bias, int16 bucket weights vweights[j, k] with right shift vshift[j], int32 theta
    (hidden stages). alpha: Q15 bucket decays (K,). delays: uint8 per synaptic input."""

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
            words += (self.max_delay + 1) * self.n_in
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


def arena_bytes_for(stages: list[SgmStage], n_buckets: int) -> int:
    """State bytes a runtime needs: sum over stages of 4 x (K*N_out + N_out if hidden
    + (max_delay+1)*N_in if delays)."""
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


def header_crc(buf: bytes) -> int:
    return zlib.crc32(bytes(buf[:HEADER_SIZE - 4])) & 0xFFFFFFFF


def resign(buf: bytes | bytearray) -> bytes:
    """Recompute both CRCs of a (possibly edited) file: for tools and tests that
    patch a field on purpose."""
    b = bytearray(buf)
    struct.pack_into("<I", b, 16, zlib.crc32(bytes(b[HEADER_SIZE:])) & 0xFFFFFFFF)
    struct.pack_into("<I", b, 60, header_crc(b))
    return bytes(b)


def _read_fields(buf, base: int, table) -> dict:
    out = {}
    for name, off, code in table:
        out[name] = struct.unpack_from("<" + code, buf, base + off)[0]
    return out


def _off(table, name: str) -> int:
    for n, off, _ in table:
        if n == name:
            return off
    raise KeyError(name)


def load_sgm(data: bytes | bytearray | memoryview, *, arena_size: int | None = None) -> SgmModel:
    """Parse and validate an .sgm file. Raises SgmFormatError for the first bad field
    (checks run in the order of docs/FORMAT.md, section "Validation"). `arena_size`:
    if given, the arena a caller offers; it must hold arena_bytes."""
    buf = bytes(data)
    n = len(buf)
    H = HEADER_FIELDS

    def err(name, what, base=0, table=H):
        raise SgmFormatError(base + _off(table, name), name, what)

    if n < HEADER_SIZE:
        raise SgmFormatError(n, "header", f"file is {n} bytes, shorter than the {HEADER_SIZE}-byte header")
    h = _read_fields(buf, 0, H)
    if h["magic"] != MAGIC:
        err("magic", f"bad magic {h['magic']!r}, expected {MAGIC!r} (not an .sgm model file)")
    if h["format_version"] != FORMAT_VERSION:
        err("format_version", f"format version {h['format_version']} not supported (this loader reads {FORMAT_VERSION})")
    if h["header_size"] != HEADER_SIZE:
        err("header_size", f"header_size {h['header_size']}, must be {HEADER_SIZE} in version {FORMAT_VERSION}")
    if h["file_size"] != n:
        err("file_size", f"header says {h['file_size']} bytes, the buffer has {n}"
            + (" (truncated file)" if h["file_size"] > n else ""))
    if h["header_crc32"] != header_crc(buf):
        err("header_crc32", f"header CRC mismatch: stored {h['header_crc32']:#010x}, computed {header_crc(buf):#010x}")
    crc = zlib.crc32(buf[HEADER_SIZE:]) & 0xFFFFFFFF
    if h["payload_crc32"] != crc:
        err("payload_crc32", f"payload CRC mismatch: stored {h['payload_crc32']:#010x}, computed {crc:#010x}")
    if h["dt_us"] == 0:
        err("dt_us", "dt_us must be > 0")
    if not 1 <= h["n_stages"] <= MAX_STAGES:
        err("n_stages", f"n_stages {h['n_stages']} outside [1, {MAX_STAGES}]")
    k = h["n_buckets"]
    if not 1 <= k <= MAX_BUCKETS:
        err("n_buckets", f"n_buckets {k} outside [1, {MAX_BUCKETS}]")
    if h["in_c"] not in (1, 2):
        err("in_c", f"in_c {h['in_c']} must be 1 or 2 (polarity channels)")
    for name in ("in_h", "in_w", "sensor_w", "sensor_h", "downsample"):
        if h[name] == 0:
            err(name, f"{name} must be >= 1")
    ds = h["downsample"]
    if h["sensor_w"] % ds or h["sensor_h"] % ds:
        err("downsample", f"downsample {ds} does not divide the sensor {h['sensor_w']}x{h['sensor_h']}")
    if h["in_h"] != h["sensor_h"] // ds:
        err("in_h", f"in_h {h['in_h']} != sensor_h / downsample = {h['sensor_h'] // ds}")
    if h["in_w"] != h["sensor_w"] // ds:
        err("in_w", f"in_w {h['in_w']} != sensor_w / downsample = {h['sensor_w'] // ds}")
    if h["n_classes"] == 0:
        err("n_classes", "n_classes must be >= 1")
    if h["label_size"] != LABEL_SIZE:
        err("label_size", f"label_size {h['label_size']}, must be {LABEL_SIZE}")
    if h["layer_entry_size"] != LAYER_ENTRY_SIZE:
        err("layer_entry_size", f"layer_entry_size {h['layer_entry_size']}, must be {LAYER_ENTRY_SIZE}")
    regions = [(0, HEADER_SIZE, 0, "header")]
    for name, size in (("labels_offset", h["n_classes"] * LABEL_SIZE),
                       ("layers_offset", h["n_stages"] * LAYER_ENTRY_SIZE)):
        off = h[name]
        if off % ALIGN:
            err(name, f"offset {off} is not {ALIGN}-byte aligned")
        if off < HEADER_SIZE or off + size > n:
            err(name, f"region [{off}, {off + size}) is outside the payload [{HEADER_SIZE}, {n})")
        for lo, hi, _, what in regions:
            if off < hi and lo < off + size:
                err(name, f"region [{off}, {off + size}) overlaps {what} [{lo}, {hi})")
        regions.append((off, off + size, _off(H, name), name))

    labels = []
    for i in range(h["n_classes"]):
        at = h["labels_offset"] + i * LABEL_SIZE
        raw = buf[at:at + LABEL_SIZE]
        text, _, pad = raw.partition(b"\0")
        if not text:
            raise SgmFormatError(at, f"labels[{i}]", "empty label")
        if not pad or pad.strip(b"\0"):
            raise SgmFormatError(at, f"labels[{i}]", "label must be NUL-terminated and NUL-padded to 32 bytes")
        try:
            labels.append(text.decode("utf-8"))
        except UnicodeDecodeError:
            raise SgmFormatError(at, f"labels[{i}]", "label is not valid UTF-8") from None

    stages: list[SgmStage] = []
    prev_out = (h["in_c"], h["in_h"], h["in_w"])
    L = LAYER_FIELDS
    for si in range(h["n_stages"]):
        base = h["layers_offset"] + si * LAYER_ENTRY_SIZE
        f = _read_fields(buf, base, L)
        pre = f"layers[{si}]."

        def lerr(name, what):
            raise SgmFormatError(base + _off(L, name), pre + name, what)

        if f["kind"] not in KIND_NAMES:
            lerr("kind", f"unknown layer kind {f['kind']} (known: {sorted(KIND_NAMES)})")
        if f["flags"] & ~(FLAG_OUTPUT | FLAG_DELAYS):
            lerr("flags", f"unknown flag bits {f['flags']:#x}")
        is_output = bool(f["flags"] & FLAG_OUTPUT)
        if is_output != (si == h["n_stages"] - 1):
            lerr("flags", "the output flag must be set on the last stage and only there")
        has_delays = bool(f["flags"] & FLAG_DELAYS)
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
        if not has_delays and f["max_delay"] != 0:
            lerr("max_delay", "max_delay must be 0 without the delays flag")
        if has_delays and f["max_delay"] > 255:
            lerr("max_delay", f"max_delay {f['max_delay']} > 255")
        if not X_FRAC_BITS_RANGE[0] <= f["x_frac_bits"] <= X_FRAC_BITS_RANGE[1]:
            lerr("x_frac_bits", f"x_frac_bits {f['x_frac_bits']} outside {list(X_FRAC_BITS_RANGE)}")
        if f["reserved"] != 0:
            lerr("reserved", "reserved field must be 0")
        syn = (f["syn_c"], f["syn_h"], f["syn_w"])
        out = (f["out_c"], f["out_h"], f["out_w"])
        arrays = {}
        for b in BLOBS:
            off, size = f[f"{b}_offset"], f[f"{b}_size"]
            want = expected_blob_size(b, f["kind"], syn, out, f["kernel"], k, is_output, has_delays)
            if size != want:
                lerr(f"{b}_size", f"{b} blob is {size} bytes, expected {want}")
            if want == 0:
                if off != 0:
                    lerr(f"{b}_offset", f"absent {b} blob must have offset 0")
                continue
            if off % ALIGN:
                lerr(f"{b}_offset", f"offset {off} is not {ALIGN}-byte aligned")
            if off < HEADER_SIZE or off + size > n:
                lerr(f"{b}_offset", f"blob [{off}, {off + size}) is outside the payload [{HEADER_SIZE}, {n})")
            for lo, hi, where, what in regions:
                if off < hi and lo < off + size:
                    lerr(f"{b}_offset", f"blob [{off}, {off + size}) overlaps {what} [{lo}, {hi}) (described at byte {where})")
            regions.append((off, off + size, base + _off(L, f"{b}_offset"), f"{pre}{b}"))
            arrays[b] = np.frombuffer(buf, dtype=BLOB_DTYPES[b], count=size // np.dtype(BLOB_DTYPES[b]).itemsize,
                                      offset=off).copy()
        c_out = out[0]

        def bad_element(b, idx, what):
            itemsize = np.dtype(BLOB_DTYPES[b]).itemsize
            raise SgmFormatError(f[f"{b}_offset"] + int(idx) * itemsize, f"{pre}{b}[{int(idx)}]", what)

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
            alpha=arrays["alpha"], theta=arrays.get("theta"), delays=arrays.get("delays")))
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


def read_sgm(path) -> SgmModel:
    with open(path, "rb") as f:
        return load_sgm(f.read())


def inspect_sgm(model: SgmModel | bytes | str) -> dict:
    """A JSON-ready description: format version, sizes, time base, labels, layers."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        model = load_sgm(model)
    elif not isinstance(model, SgmModel):
        model = read_sgm(model)
    layers = []
    for i, st in enumerate(model.stages):
        layers.append({
            "index": i, "kind": st.kind_name, "output": st.is_output, "in_shape": list(st.in_shape),
            "pool": st.pool, "syn_shape": list(st.syn_shape), "out_shape": list(st.out_shape),
            "kernel": st.kernel, "stride": st.stride, "padding": st.padding,
            "weights_shape": list(st.weights.shape), "parameters": st.n_parameters(),
            "weight_bytes": int(st.weights.nbytes), "delays": st.delays is not None, "max_delay": st.max_delay,
            "x_frac_bits": st.x_frac_bits, "alpha_q15": st.alpha.tolist(),
            "arena_bytes": st.arena_bytes(model.n_buckets)})
    return {"format_version": model.format_version, "file_bytes": model.file_bytes,
            "arena_bytes": model.arena_bytes, "dt_us": model.dt_us, "n_buckets": model.n_buckets,
            "input_shape": list(model.input_shape), "sensor_size": list(model.sensor_size),
            "downsample": model.downsample, "labels": list(model.labels), "n_classes": model.n_classes,
            "parameters": int(sum(st.n_parameters() for st in model.stages)),
            "payload_crc32": model.payload_crc32, "layers": layers}
