# SPDX-License-Identifier: MIT
"""The validating `.sgm` loader: the header and labels every version shares, with the
version's own header rules and then its layer table (its :class:`~.kinds.FormatKind`,
looked up by format_version). It never reads outside the buffer and reports the FIRST
bad field as ``SgmFormatError(offset, field, what)``, in the order of docs/FORMAT.md,
section "Validation" (the C loader reports the same offsets)."""
from __future__ import annotations

import os
from typing import Any, NoReturn

from .kinds import FORMATS, LAYER_TABLES, known_versions
from .layout import (ALIGN, HEADER_FIELDS, HEADER_SIZE, LABEL_SIZE, LAYER_ENTRY_SIZE, MAGIC, MAX_STAGES,
                     SgmFormatError, field_offset, header_crc, payload_crc, read_fields)

__all__ = ["LAYER_TABLES", "load_sgm", "read_sgm"]


def load_sgm(data: bytes | bytearray | memoryview, *, arena_size: int | None = None) -> Any:
    """Parse and validate an .sgm file into its kind's model (version 1:
    :class:`~pysg.sgm.SgmModel`; version 2, an imported int8 network:
    :class:`~pysg.sgm.SgmQModel`; see :data:`.kinds.FORMATS`). Raises SgmFormatError for
    the first bad field (checks run in the order of docs/FORMAT.md, section
    "Validation"). `arena_size`: if given, the arena a caller offers; it must hold
    arena_bytes."""
    buf = bytes(data)
    n = len(buf)
    H = HEADER_FIELDS

    def err(name: str, what: str) -> NoReturn:
        raise SgmFormatError(field_offset(H, name), name, what)

    if n < HEADER_SIZE:
        raise SgmFormatError(n, "header", f"file is {n} bytes, shorter than the {HEADER_SIZE}-byte header")
    h = read_fields(buf, 0, H)
    if h["magic"] != MAGIC:
        err("magic", f"bad magic {h['magic']!r}, expected {MAGIC!r} (not an .sgm model file)")
    version = h["format_version"]
    kind = FORMATS.get(version)
    if kind is None:
        err("format_version", f"format version {version} not supported (this loader reads {known_versions()})")
    if h["header_size"] != HEADER_SIZE:
        err("header_size", f"header_size {h['header_size']}, must be {HEADER_SIZE} in version {version}")
    if h["file_size"] != n:
        err("file_size", f"header says {h['file_size']} bytes, the buffer has {n}"
            + (" (truncated file)" if h["file_size"] > n else ""))
    if h["header_crc32"] != header_crc(buf):
        err("header_crc32", f"header CRC mismatch: stored {h['header_crc32']:#010x}, computed {header_crc(buf):#010x}")
    crc = payload_crc(buf)
    if h["payload_crc32"] != crc:
        err("payload_crc32", f"payload CRC mismatch: stored {h['payload_crc32']:#010x}, computed {crc:#010x}")
    if h["dt_us"] == 0:
        err("dt_us", "dt_us must be > 0")
    if not kind.min_stages <= h["n_stages"] <= MAX_STAGES:
        err("n_stages", f"n_stages {h['n_stages']} outside [{kind.min_stages}, {MAX_STAGES}]")
    kind.check_header(h, err)  # the version's own rules (n_buckets, in_c, ...)
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
        regions.append((off, off + size, field_offset(H, name), name))

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

    return kind.read_layers(buf, h, labels, regions, arena_size)


def read_sgm(path: str | os.PathLike) -> Any:
    """:func:`load_sgm` of a file."""
    with open(path, "rb") as f:
        return load_sgm(f.read())
