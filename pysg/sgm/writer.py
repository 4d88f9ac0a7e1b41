# SPDX-License-Identifier: MIT
"""The `.sgm` writer: integer models -> file bytes (docs/FORMAT.md), every region 8-byte
aligned, both CRCs signed. :func:`encode_sgm` writes a model of any version;
:func:`pack_sgm` is the layout both versions share (also for tests that write
deliberately odd files). Converting a float or TFLite network into such a model is the
converters' job (:mod:`pysg.converters`); this module only lays out bytes."""
from __future__ import annotations

import struct
from typing import Callable

import numpy as np

from .layout import (ALIGN, BLOB_DTYPES, BLOBS, FLAG_DELAYS, FLAG_OUTPUT, FORMAT_VERSION, FORMAT_VERSION_QNET,
                     HEADER_FIELDS, HEADER_SIZE, LABEL_SIZE, LAYER_ENTRY_SIZE, LAYER_FIELDS, MAGIC, QBLOBS,
                     QLAYER_FIELDS, field_offset, header_crc, payload_crc)
from .loader import load_sgm
from .qnet import SgmQModel, qarena_bytes_for
from .sg import SgmModel, arena_bytes_for

__all__ = ["pack_sgm", "encode", "encode_qmodel", "encode_sgm", "ENCODERS"]


def _pad(buf: bytearray) -> None:
    buf.extend(b"\0" * (-len(buf) % ALIGN))


def pack_sgm(header: dict, labels: list[str], entries: list[tuple[dict, dict]], layer_fields: tuple,
             blob_names: tuple) -> bytes:
    """Lay out an .sgm file of either version: header, labels, layer table, then the
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


def encode(model: SgmModel) -> bytes:
    """Lay out an integer SpikingGamma model as version 1 .sgm bytes."""
    entries = []
    for st in model.stages:
        blobs = {"weights": st.weights, "bias": st.bias, "vweights": st.vweights, "vshift": st.vshift,
                 "theta": st.theta, "alpha": st.alpha, "delays": st.delays}
        f = {"kind": st.kind, "flags": (FLAG_OUTPUT if st.is_output else 0) | (FLAG_DELAYS if st.delays is not None else 0),
             "in_c": st.in_shape[0], "in_h": st.in_shape[1], "in_w": st.in_shape[2], "pool": st.pool,
             "syn_c": st.syn_shape[0], "syn_h": st.syn_shape[1], "syn_w": st.syn_shape[2],
             "out_c": st.out_shape[0], "out_h": st.out_shape[1], "out_w": st.out_shape[2],
             "kernel": st.kernel, "stride": st.stride, "padding": st.padding, "max_delay": st.max_delay,
             "x_frac_bits": st.x_frac_bits, "reserved": 0}
        entries.append((f, {k: None if v is None else np.asarray(v, BLOB_DTYPES[k]) for k, v in blobs.items()}))
    header = {"format_version": FORMAT_VERSION, "arena_bytes": arena_bytes_for(model.stages, model.n_buckets),
              "dt_us": model.dt_us, "n_buckets": model.n_buckets, "in_c": model.input_shape[0],
              "in_h": model.input_shape[1], "in_w": model.input_shape[2], "sensor_w": model.sensor_size[0],
              "sensor_h": model.sensor_size[1], "downsample": model.downsample}
    return pack_sgm(header, model.labels, entries, LAYER_FIELDS, BLOBS)


def encode_qmodel(model: SgmQModel) -> bytes:
    """Version 2 .sgm bytes of an imported int8 network (validated by loading them back)."""
    entries = []
    for ly in [model.input] + model.layers:
        f = {"kind": ly.kind, "flags": FLAG_OUTPUT if ly.is_output else 0, "in_h": ly.in_shape[0],
             "in_w": ly.in_shape[1], "in_c": ly.in_shape[2], "out_h": ly.out_shape[0], "out_w": ly.out_shape[1],
             "out_c": ly.out_shape[2], "kernel_h": ly.kernel[0], "kernel_w": ly.kernel[1],
             "stride_h": ly.stride[0], "stride_w": ly.stride[1], "dilation_h": ly.dilation[0],
             "dilation_w": ly.dilation[1], "pad_top": ly.padding[0], "pad_left": ly.padding[1],
             "depth_multiplier": ly.depth_multiplier, "filter_c": ly.filter_c, "input_offset": ly.input_offset,
             "output_offset": ly.output_offset, "act_min": ly.act_min, "act_max": ly.act_max, "reserved": 0}
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


# model class -> its version's encoder
ENCODERS: dict[type, Callable[..., bytes]] = {SgmModel: encode, SgmQModel: encode_qmodel}


def encode_sgm(model: SgmModel | SgmQModel) -> bytes:
    """The .sgm bytes of a model of any version (the inverse of :func:`pysg.sgm.load_sgm`)."""
    enc = next((ENCODERS[t] for t in type(model).__mro__ if t in ENCODERS), None)
    if enc is None:
        raise TypeError(f"no .sgm encoder for {type(model).__name__} "
                        f"(known: {', '.join(t.__name__ for t in ENCODERS)})")
    return enc(model)
