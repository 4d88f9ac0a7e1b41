# SPDX-License-Identifier: MIT
"""The `.sgm` layout every version shares: the header table, sizes, the output flag,
the error every loader raises, the CRC and field helpers, and :class:`EntryReader`
(one layer-table entry under validation: its fields, errors and blobs).

docs/FORMAT.md is the specification; these tables and each kind's own (its layer-entry
table, kinds, flags and limits, in its module: :mod:`pysg.sgm.sg`, :mod:`pysg.sgm.qnet`)
are the single source of truth for the byte layout: the loader (:mod:`pysg.sgm.loader`),
the writer (:mod:`pysg.sgm.writer`), the generated C header (:mod:`pysg.sgm.c_header` ->
runtime_c/include/sg_format.h) and the tests read them.
"""
from __future__ import annotations

import struct
import zlib
from typing import NoReturn

import numpy as np

MAGIC = b"PSGM"
HEADER_SIZE = 64
LAYER_ENTRY_SIZE = 96      # every version's layer-table entry
LABEL_SIZE = 32
ALIGN = 8
MAX_STAGES = 16
FLAG_OUTPUT = 1            # layer flags, every version: the output layer (logits)

# (name, offset, struct code) -- little-endian
HEADER_FIELDS = (
    ("magic", 0, "4s"), ("format_version", 4, "I"), ("header_size", 8, "I"), ("file_size", 12, "I"),
    ("payload_crc32", 16, "I"), ("arena_bytes", 20, "I"), ("dt_us", 24, "I"), ("n_stages", 28, "H"),
    ("n_buckets", 30, "H"), ("in_c", 32, "H"), ("in_h", 34, "H"), ("in_w", 36, "H"),
    ("sensor_w", 38, "H"), ("sensor_h", 40, "H"), ("downsample", 42, "H"), ("n_classes", 44, "H"),
    ("label_size", 46, "H"), ("labels_offset", 48, "I"), ("layers_offset", 52, "I"),
    ("layer_entry_size", 56, "I"), ("header_crc32", 60, "I"),
)


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


class EntryReader:
    """One layer-table entry under validation, for every version's reader: its fields
    (``f``), the error that names one of them, and its blobs, placed by the rules all
    versions share (docs/FORMAT.md "Validation": aligned, inside the payload, clear of
    every region laid out before)."""

    def __init__(self, buf: bytes, index: int, base: int, table: tuple, regions: list):
        """``base``: the entry's byte offset; ``table``: its version's field table;
        ``regions``: (start, end, described at, name) of every region laid out so far
        (the header, labels, layer table and earlier blobs); this entry's blobs join it."""
        self.buf, self.base, self.table, self.regions = buf, base, table, regions
        self.pre = f"layers[{index}]."
        self.f = read_fields(buf, base, table)
        self._dtypes: dict[str, np.dtype] = {}

    def err(self, name: str, what: str) -> NoReturn:
        raise SgmFormatError(self.base + field_offset(self.table, name), self.pre + name, what)

    def blob(self, b: str, dtype: str) -> np.ndarray | None:
        """Blob ``b`` (fields ``<b>_offset``, ``<b>_size``; the caller has checked the
        size): None if absent (size 0, and then its offset must be 0), else a copy of
        its elements."""
        off, size = self.f[f"{b}_offset"], self.f[f"{b}_size"]
        n = len(self.buf)
        if size == 0:
            if off != 0:
                self.err(f"{b}_offset", f"absent {b} blob must have offset 0")
            return None
        if off % ALIGN:
            self.err(f"{b}_offset", f"offset {off} is not {ALIGN}-byte aligned")
        if off < HEADER_SIZE or off + size > n:
            self.err(f"{b}_offset", f"blob [{off}, {off + size}) is outside the payload [{HEADER_SIZE}, {n})")
        for lo, hi, where, what in self.regions:
            if off < hi and lo < off + size:
                self.err(f"{b}_offset", f"blob [{off}, {off + size}) overlaps {what} [{lo}, {hi}) "
                         f"(described at byte {where})")
        self.regions.append((off, off + size, self.base + field_offset(self.table, f"{b}_offset"), self.pre + b))
        dt = self._dtypes[b] = np.dtype(dtype)
        return np.frombuffer(self.buf, dtype=dt, count=size // dt.itemsize, offset=off).copy()

    def bad_element(self, b: str, idx, what: str) -> NoReturn:
        """Element ``idx`` of blob ``b`` (read by :meth:`blob`) is out of range."""
        raise SgmFormatError(self.f[f"{b}_offset"] + int(idx) * self._dtypes[b].itemsize,
                             f"{self.pre}{b}[{int(idx)}]", what)
