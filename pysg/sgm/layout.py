# SPDX-License-Identifier: MIT
"""The `.sgm` byte layout: versions, sizes, limits, layer kinds, flags and the field
tables of the header and of both layer-table versions.

docs/FORMAT.md is the specification; these tables are the single source of truth for
the byte layout: the loaders (:mod:`pysg.sgm.loader`), the writer
(:mod:`pysg.sgm.writer`), the generated C header (:mod:`pysg.sgm.c_header` ->
runtime_c/include/sg_format.h) and the tests read them. Also here: the error every
loader raises, and the CRC and field helpers both directions share.
"""
from __future__ import annotations

import struct
import zlib

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


def header_crc(buf: bytes) -> int:
    """CRC-32 of the header's first 60 bytes (the header_crc32 field excluded)."""
    return zlib.crc32(bytes(buf[:HEADER_SIZE - 4])) & 0xFFFFFFFF


def payload_crc(buf: bytes) -> int:
    """CRC-32 of everything after the header."""
    return zlib.crc32(bytes(buf[HEADER_SIZE:])) & 0xFFFFFFFF


def sign(buf: bytearray) -> None:
    """Write both CRCs of a laid-out file in place: the payload's first, then the
    header's (which covers the payload CRC field)."""
    struct.pack_into("<I", buf, field_offset(HEADER_FIELDS, "payload_crc32"), payload_crc(buf))
    struct.pack_into("<I", buf, field_offset(HEADER_FIELDS, "header_crc32"), header_crc(buf))


def resign(buf: bytes | bytearray) -> bytes:
    """Recompute both CRCs of a (possibly edited) file: for tools and tests that
    patch a field on purpose."""
    b = bytearray(buf)
    sign(b)
    return bytes(b)


def read_fields(buf, base: int, table) -> dict:
    """The fields of ``table`` (name, offset, struct code) read at ``base``."""
    out = {}
    for name, off, code in table:
        out[name] = struct.unpack_from("<" + code, buf, base + off)[0]
    return out


def field_offset(table, name: str) -> int:
    """Byte offset of field ``name`` within an entry laid out by ``table``."""
    for n, off, _ in table:
        if n == name:
            return off
    raise KeyError(name)
