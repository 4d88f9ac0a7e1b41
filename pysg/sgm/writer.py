# SPDX-License-Identifier: MIT
"""The `.sgm` writer: integer models -> file bytes (docs/FORMAT.md), every region 8-byte
aligned, both CRCs signed. :func:`pack_sgm` is the layout every version shares (also
for tests that write deliberately odd files); each kind's encoder (in its module) fills
it, and :func:`encode_sgm` picks the encoder of a model's kind. Converting a float or
TFLite network into such a model is the converters' job (:mod:`pysg.converters`); this
module only lays out bytes."""
from __future__ import annotations

import struct
from typing import Any

import numpy as np

from .kinds import ENCODERS, format_of
from .layout import ALIGN, HEADER_FIELDS, HEADER_SIZE, LABEL_SIZE, LAYER_ENTRY_SIZE, MAGIC, field_offset, header_crc, \
    payload_crc

__all__ = ["pack_sgm", "encode_sgm", "ENCODERS"]


def _pad(buf: bytearray) -> None:
    buf.extend(b"\0" * (-len(buf) % ALIGN))


def pack_sgm(header: dict, labels: list[str], entries: list[tuple[dict, dict]], layer_fields: tuple,
             blob_names: tuple) -> bytes:
    """Lay out an .sgm file of any version: header, labels, layer table, then the
    blobs of each entry in ``blob_names`` order, every region 8-byte aligned.
    ``header``: the version-specific header fields (format_version, arena_bytes, dt_us,
    n_buckets, in_*, sensor_*, downsample); ``entries``: per layer-table entry its fields
    (without blob offsets/sizes) and its blobs as little-endian numpy arrays (None:
    absent)."""
    labels_off = HEADER_SIZE
    layers_off = labels_off + len(labels) * LABEL_SIZE
    layers_off += -layers_off % ALIGN
    buf = bytearray(layers_off + len(entries) * LAYER_ENTRY_SIZE)
    for i, lab in enumerate(labels):
        raw = lab.encode("utf-8")
        buf[labels_off + i * LABEL_SIZE: labels_off + i * LABEL_SIZE + len(raw)] = raw
    _pad(buf)
    for si, (fields, blobs) in enumerate(entries):
        f = dict(fields)
        for name in blob_names:
            arr = blobs.get(name)
            if arr is None:
                f[f"{name}_offset"], f[f"{name}_size"] = 0, 0
                continue
            data = np.ascontiguousarray(arr).tobytes()
            f[f"{name}_offset"], f[f"{name}_size"] = len(buf), len(data)
            buf.extend(data)
            _pad(buf)
        base = layers_off + si * LAYER_ENTRY_SIZE
        for name, off, code in layer_fields:
            struct.pack_into("<" + code, buf, base + off, f[name])
    h = dict(header, magic=MAGIC, header_size=HEADER_SIZE, file_size=len(buf), payload_crc32=payload_crc(buf),
             n_stages=len(entries), n_classes=len(labels), label_size=LABEL_SIZE, labels_offset=labels_off,
             layers_offset=layers_off, layer_entry_size=LAYER_ENTRY_SIZE, header_crc32=0)
    for name, off, code in HEADER_FIELDS:
        struct.pack_into("<" + code, buf, off, h[name])
    struct.pack_into("<I", buf, field_offset(HEADER_FIELDS, "header_crc32"), header_crc(buf))
    return bytes(buf)


def encode_sgm(model: Any) -> bytes:
    """The .sgm bytes of a model of any registered kind (the inverse of
    :func:`pysg.sgm.load_sgm`); TypeError for an object of no kind."""
    try:
        kind = format_of(model)
    except TypeError:
        raise TypeError(f"no .sgm encoder for {type(model).__name__} "
                        f"(known: {', '.join(t.__name__ for t in ENCODERS)})") from None
    return kind.encode(model)
