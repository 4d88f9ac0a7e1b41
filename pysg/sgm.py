# SPDX-License-Identifier: MIT
"""The `.sgm` int8 model file: layout constants, a validating loader, `inspect`.

docs/FORMAT.md is the specification; this module is its executable form and is kept
in step with it (the byte layout tables below are the single source of truth that the
writer, `pysg.converters.sgm`, and the tests use). The loader never reads outside the
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

# version 2: imported int8 networks (docs/FORMAT.md sections 7-10)
FORMAT_VERSION_QNET = 2
QKIND_CONV = 3
QKIND_DEPTHWISE = 4
QKIND_FC = 5
QKIND_POOL = 6
QKIND_INPUT = 16
QKIND_NAMES = {QKIND_CONV: "conv", QKIND_DEPTHWISE: "depthwise", QKIND_FC: "fully_connected",
               QKIND_POOL: "average_pool", QKIND_INPUT: "input"}
COUNT_MAX = 65535          # per-step count of a cell saturates here
LUT_MAX = 65536
QBLOBS = ("weights", "bias", "multiplier", "shift", "reserved4", "reserved5")
QBLOB_DTYPES = {"weights": "<i1", "bias": "<i4", "multiplier": "<i4", "shift": "<i1", "reserved4": "u1",
                "reserved5": "u1"}
QBLOB_TABLE_OFFSET = 48
QLAYER_FIELDS = (
    ("kind", 0, "H"), ("flags", 2, "H"), ("in_h", 4, "H"), ("in_w", 6, "H"), ("in_c", 8, "H"),
    ("out_h", 10, "H"), ("out_w", 12, "H"), ("out_c", 14, "H"), ("kernel_h", 16, "H"), ("kernel_w", 18, "H"),
    ("stride_h", 20, "H"), ("stride_w", 22, "H"), ("dilation_h", 24, "H"), ("dilation_w", 26, "H"),
    ("pad_top", 28, "H"), ("pad_left", 30, "H"), ("depth_multiplier", 32, "H"), ("filter_c", 34, "H"),
    ("input_offset", 36, "h"), ("output_offset", 38, "h"), ("act_min", 40, "h"), ("act_max", 42, "h"),
    ("reserved", 44, "I"),
) + tuple(x for i, b in enumerate(QBLOBS)
          for x in ((f"{b}_offset", QBLOB_TABLE_OFFSET + 8 * i, "I"), (f"{b}_size", QBLOB_TABLE_OFFSET + 8 * i + 4, "I")))

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


def load_sgm(data: bytes | bytearray | memoryview, *,
             arena_size: int | None = None) -> SgmModel | SgmQModel:
    """Parse and validate an .sgm file (version 1: :class:`SgmModel`; version 2, an
    imported int8 network: :class:`SgmQModel`). Raises SgmFormatError for the first bad field
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
    version = h["format_version"]
    if version not in (FORMAT_VERSION, FORMAT_VERSION_QNET):
        err("format_version", f"format version {version} not supported (this loader reads "
            f"{FORMAT_VERSION} and {FORMAT_VERSION_QNET})")
    if h["header_size"] != HEADER_SIZE:
        err("header_size", f"header_size {h['header_size']}, must be {HEADER_SIZE} in version {version}")
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
    qnet = version == FORMAT_VERSION_QNET
    min_stages = 2 if qnet else 1  # version 2: the input entry and at least one layer
    if not min_stages <= h["n_stages"] <= MAX_STAGES:
        err("n_stages", f"n_stages {h['n_stages']} outside [{min_stages}, {MAX_STAGES}]")
    k = h["n_buckets"]
    if qnet and k != 0:
        err("n_buckets", f"n_buckets {k} must be 0 in version {version} (no Gamma buckets)")
    if not qnet and not 1 <= k <= MAX_BUCKETS:
        err("n_buckets", f"n_buckets {k} outside [1, {MAX_BUCKETS}]")
    if qnet and h["in_c"] == 0:
        err("in_c", "in_c must be >= 1")
    if not qnet and h["in_c"] not in (1, 2):
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

    if qnet:
        return _load_qnet(buf, h, labels, regions, arena_size)
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

    @property
    def kind_name(self) -> str:
        return QKIND_NAMES[self.kind]

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))


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


def qarena_bytes_for(input_entry: SgmQLayer, layers: list[SgmQLayer]) -> int:
    """docs/FORMAT.md section 9."""
    n_in = input_entry.n_out
    s, w = input_entry.kernel
    cells = input_entry.depth_multiplier * input_entry.out_shape[0] * input_entry.out_shape[1]
    total = _ceil4(n_in)
    if s:
        total += _ceil4(2 * (w + 1) * cells) + 4 * s * cells
    total += sum(4 * ly.n_out + _ceil4(ly.n_out) for ly in layers)
    n_max = max([n_in] + [ly.n_out for ly in layers])
    return total + 20 * n_max + _ceil4(n_max)


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


def _load_qnet(buf: bytes, h: dict, labels: list[str], regions: list, arena_size: int | None) -> SgmQModel:
    """Version 2 layer table (docs/FORMAT.md section 10), after the shared header checks."""
    n = len(buf)
    L = QLAYER_FIELDS
    entries: list[SgmQLayer] = []
    prev_out = (h["in_h"], h["in_w"], h["in_c"])
    last = h["n_stages"] - 1
    for si in range(h["n_stages"]):
        base = h["layers_offset"] + si * LAYER_ENTRY_SIZE
        f = _read_fields(buf, base, L)
        pre = f"layers[{si}]."

        def lerr(name, what):
            raise SgmFormatError(base + _off(L, name), pre + name, what)

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
        if f["reserved"] != 0:
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
            off, size = f[f"{b}_offset"], f[f"{b}_size"]
            allowed = sizes.get(b, (0,))
            if b == "shift":
                allowed = (arrays["multiplier"].size,) if "multiplier" in arrays else (0,)
            if allowed is None:  # the LUT
                if not 2 <= size <= LUT_MAX:
                    lerr(f"{b}_size", f"count LUT of {size} entries, must be 2..{LUT_MAX}")
            elif size not in allowed:
                lerr(f"{b}_size", f"{b} blob is {size} bytes, expected " + " or ".join(map(str, allowed)))
            if size == 0:
                if off != 0:
                    lerr(f"{b}_offset", f"absent {b} blob must have offset 0")
                continue
            if off % ALIGN:
                lerr(f"{b}_offset", f"offset {off} is not {ALIGN}-byte aligned")
            if off < HEADER_SIZE or off + size > n:
                lerr(f"{b}_offset", f"blob [{off}, {off + size}) is outside the payload [{HEADER_SIZE}, {n})")
            for lo, hi, where, what in regions:
                if off < hi and lo < off + size:
                    lerr(f"{b}_offset", f"blob [{off}, {off + size}) overlaps {what} [{lo}, {hi}) "
                         f"(described at byte {where})")
            regions.append((off, off + size, base + _off(L, f"{b}_offset"), f"{pre}{b}"))
            dt = np.dtype(QBLOB_DTYPES[b])
            arrays[b] = np.frombuffer(buf, dtype=dt, count=size // dt.itemsize, offset=off).copy()

        def bad_element(b, idx, what):
            itemsize = np.dtype(QBLOB_DTYPES[b]).itemsize
            raise SgmFormatError(f[f"{b}_offset"] + int(idx) * itemsize, f"{pre}{b}[{int(idx)}]", what)

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
                       multiplier=arrays.get("multiplier"), shift=arrays.get("shift"))
        if kind != QKIND_INPUT and (bound := qaccumulator_bound(ly)) >= 1 << 31:
            lerr("kind", f"the int32 accumulator could overflow (bound {bound} >= 2^31)")
        entries.append(ly)
        prev_out = outs
    n_last = entries[-1].n_out
    if n_last != h["n_classes"]:
        raise SgmFormatError(_off(HEADER_FIELDS, "n_classes"), "n_classes",
                             f"n_classes {h['n_classes']} != {n_last} outputs of the last layer")
    need = qarena_bytes_for(entries[0], entries[1:])
    if h["arena_bytes"] != need:
        raise SgmFormatError(_off(HEADER_FIELDS, "arena_bytes"), "arena_bytes",
                             f"arena_bytes {h['arena_bytes']} != {need} required by the layer table")
    if arena_size is not None and arena_size < need:
        raise SgmFormatError(_off(HEADER_FIELDS, "arena_bytes"), "arena_bytes",
                             f"arena of {arena_size} bytes is too small: the model needs {need}")
    return SgmQModel(format_version=h["format_version"], dt_us=h["dt_us"],
                     input_shape=(h["in_h"], h["in_w"], h["in_c"]), sensor_size=(h["sensor_w"], h["sensor_h"]),
                     downsample=h["downsample"], labels=labels, input=entries[0], layers=entries[1:],
                     arena_bytes=need, file_bytes=n, payload_crc32=h["payload_crc32"])


def read_sgm(path) -> SgmModel | SgmQModel:
    with open(path, "rb") as f:
        return load_sgm(f.read())


def inspect_sgm(model: SgmModel | bytes | str) -> dict:
    """A JSON-ready description: format version, sizes, time base, labels, layers."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        model = load_sgm(model)
    elif not isinstance(model, (SgmModel, SgmQModel)):
        model = read_sgm(model)
    if isinstance(model, SgmQModel):
        return _inspect_qnet(model)
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


def _inspect_qnet(model: SgmQModel) -> dict:
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
            "arena_bytes": 4 * ly.n_out + _ceil4(ly.n_out)})
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
