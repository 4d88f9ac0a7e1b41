# SPDX-License-Identifier: MIT
"""``pysg inspect``: a JSON-ready description of an .sgm model of any version (format
version, sizes, time base, labels, layers)."""
from __future__ import annotations

import os
from typing import Callable

from .loader import load_sgm, read_sgm
from .qnet import SgmQModel
from .sg import SgmModel


def _inspect_sg(model: SgmModel) -> dict:
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

# model class -> its description
DESCRIBERS: dict[type, Callable[..., dict]] = {SgmModel: _inspect_sg, SgmQModel: _inspect_qnet}


def inspect_sgm(model: SgmModel | SgmQModel | bytes | str | os.PathLike) -> dict:
    """A JSON-ready description: format version, sizes, time base, labels, layers.
    ``model``: a loaded model, the file's bytes or its path."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        model = load_sgm(model)
    elif not isinstance(model, tuple(DESCRIBERS)):
        model = read_sgm(model)
    return next(DESCRIBERS[t] for t in type(model).__mro__ if t in DESCRIBERS)(model)
