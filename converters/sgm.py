# SPDX-License-Identifier: MIT
"""Float pysg Network -> int8 `.sgm` model file (specification: docs/FORMAT.md): the
quantisation into a :class:`pysg.sgm.SgmModel`; pysg's format writer lays out the bytes.

Quantisation, per stage l (see FORMAT.md, "Quantisation"):

* amplitude folding: the bucket-0 increment of a presynaptic spike (input_gain for
  stage 0, 2 theta_c of the presynaptic channel otherwise) is multiplied into the
  weights, W'_ji = W_ji * amp_i, so one synaptic event is one int8 add;
* per output channel j, symmetric int8: s_j = max|W'_j| / 127, Wq = round(W' / s_j);
  the buckets z_j^k are int32 in units of s_j;
* one stage-wide x unit 2^-F (F = x_frac_bits, at most 16): bias and theta are int32
  in that unit; the bucket weights become int16 vq_jk with a per-channel right shift
  n_j so that  x_j = b_j + round((sum_k vq_jk z_j^k) / 2^n_j)  is in units of 2^-F;
* decays alpha_k as Q15 integers (alpha_k < 1 - 2^-16 required).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pysg.model.layers import Conv2d, Dense, Flatten, SumPool2d
from pysg.model.network import Network
from pysg.sgm import (FORMAT_VERSION, KIND_CONV2D, KIND_DENSE, LABEL_SIZE, MAX_BUCKETS, MAX_STAGES, Q15_ONE,
                      THETA_MAX, VSHIFT_MAX, SgmModel, SgmStage, arena_bytes_for, encode, inspect_sgm,
                      spike_ring_allowed)

X_FRAC_BITS_MAX = 16  # finest x unit: 2^-16 (x up to +-32768 before int32 saturation)
VQ_MAX = 32767
U16_MAX = 65535


class ExportError(ValueError):
    """The float model cannot be represented in the .sgm format."""


def _split_layers(net: Network) -> list[tuple[int, object]]:
    """Per stage: (combined pool factor, synaptic spec). Flatten is a no-op on the
    flattened (c, row, col) order; consecutive SumPool2d(k1), SumPool2d(k2) equal
    SumPool2d(k1*k2) (floor of floor)."""
    out, pool = [], 1
    for spec in net.config.layers:
        if isinstance(spec, SumPool2d):
            pool *= spec.kernel_size
        elif isinstance(spec, Flatten):
            continue
        elif isinstance(spec, (Dense, Conv2d)):
            out.append((pool, spec))
            pool = 1
        else:
            raise ExportError(f"layer {spec!r} has no .sgm representation")
    return out


def _shape3(shape: tuple) -> tuple[int, int, int]:
    return tuple(shape) if len(shape) == 3 else (int(np.prod(shape)), 1, 1)


def _q15(alpha: np.ndarray, where: str) -> np.ndarray:
    q = np.rint(np.asarray(alpha, np.float64) * Q15_ONE).astype(np.int64)
    if np.any(q >= Q15_ONE) or np.any(q < 0):
        raise ExportError(f"{where}: bucket decays {alpha.tolist()} do not fit Q15 below 1 "
                          f"(alpha must be < 1 - 2^-16: time constant too long for dt)")
    return q.astype(np.uint16)


def quantize(net: Network) -> SgmModel:
    """The integer model of a float network (no bytes yet: :func:`pysg.sgm.encode` writes them)."""
    cfg = net.config
    k = cfg.n_buckets
    if not 1 <= k <= MAX_BUCKETS:
        raise ExportError(f"n_buckets {k} outside [1, {MAX_BUCKETS}]")
    if not 1 <= len(net.stages) <= MAX_STAGES:
        raise ExportError(f"{len(net.stages)} synaptic layers; the format allows 1..{MAX_STAGES}")
    if cfg.input_shape[0] not in (1, 2):
        raise ExportError(f"input has {cfg.input_shape[0]} channels; the format takes 1 or 2 (polarity)")
    sw, sh = cfg.sensor_size
    if sw % cfg.downsample or sh % cfg.downsample or (cfg.input_shape[1], cfg.input_shape[2]) != (
            sh // cfg.downsample, sw // cfg.downsample):
        raise ExportError(f"input shape {cfg.input_shape} does not match sensor {cfg.sensor_size} / "
                          f"downsample {cfg.downsample}")
    if not (isinstance(cfg.dt_us, (int, np.integer)) and 0 < cfg.dt_us < 2**32):
        raise ExportError(f"dt_us {cfg.dt_us!r} must be an integer in [1, 2^32)")
    if not (math.isfinite(cfg.input_gain) and cfg.input_gain > 0):
        raise ExportError(f"input_gain {cfg.input_gain} must be finite and > 0")
    labels = list(cfg.classes) or [f"class{i}" for i in range(net.n_classes)]
    for lab in labels:
        raw = lab.encode("utf-8")
        if not 1 <= len(raw) <= LABEL_SIZE - 1:
            raise ExportError(f"class label {lab!r} is {len(raw)} bytes in UTF-8; labels must be 1..{LABEL_SIZE - 1}")
    for name, v in net.params.items():
        if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise ExportError(f"parameter {name} has non-finite values")
    for v in (*cfg.input_shape, sw, sh, cfg.downsample):
        if v > U16_MAX:
            raise ExportError(f"dimension {v} exceeds {U16_MAX}")

    p = net.params
    stages = []
    prev_shape = _shape3(cfg.input_shape)
    for (pool, spec), st in zip(_split_layers(net), net.stages):
        l = st.index
        syn = (prev_shape[0], prev_shape[1] // pool, prev_shape[2] // pool)
        if int(np.prod(syn)) != st.n_in:
            raise ExportError(f"stage {l}: input {prev_shape} pooled by {pool} gives {syn}, not {st.n_in} inputs")
        out = _shape3(st.syn.out_shape)
        for v in (*syn, *out):
            if v > U16_MAX:
                raise ExportError(f"stage {l}: dimension {v} exceeds {U16_MAX}")
        # presynaptic amplitude per synaptic input channel
        if l == 0:
            amp_c = np.full(syn[0], float(cfg.input_gain))
        else:  # 2 theta per channel of the stage below (pooling keeps channels)
            amp_c = 2.0 * np.asarray(p[f"{l - 1}.theta"], np.float64)
        if amp_c.size != syn[0]:
            raise ExportError(f"stage {l}: {amp_c.size} presynaptic amplitudes for {syn[0]} input channels")
        w = np.asarray(p[f"{l}.W"], np.float64)
        if isinstance(spec, Dense):
            kind = KIND_DENSE
            amp = np.repeat(amp_c, syn[1] * syn[2])
            wf = w * amp[None, :]
            kernel, stride, padding = 1, 1, 0
        else:
            kind = KIND_CONV2D
            wf = w * amp_c[None, :, None, None]
            kernel, stride, padding = spec.kernel_size, spec.stride, spec.padding
            if padding >= kernel:
                raise ExportError(f"stage {l}: padding {padding} >= kernel {kernel} is not supported")
        c_out = out[0]
        rows = wf.reshape(c_out, -1)
        s = np.abs(rows).max(axis=1) / 127.0
        s[s == 0] = 1.0
        wq = np.clip(np.rint(rows / s[:, None]), -127, 127).astype(np.int8).reshape(wf.shape)
        v = np.asarray(p[f"{l}.V"], np.float64)
        b = np.asarray(p[f"{l}.b"], np.float64)
        theta = None if st.is_output else np.asarray(p[f"{l}.theta"], np.float64)
        r = v * s[:, None]  # x contribution per unit of z^k, in float x units
        rmax = float(np.abs(r).max())
        f_bits = X_FRAC_BITS_MAX
        if rmax > 0:
            f_bits = min(f_bits, math.floor(math.log2(VQ_MAX / rmax)))
        big = max(float(np.abs(b).max()), 0.0 if theta is None else 2.0 * float(theta.max()), 1e-30)
        f_bits = min(f_bits, math.floor(math.log2(2.0**30 / big)))
        if f_bits < -32:
            raise ExportError(f"stage {l}: parameters too large for int32 x units")
        rs = r * 2.0**f_bits
        vq = np.zeros((c_out, k), np.int16)
        vshift = np.zeros(c_out, np.uint8)
        for j in range(c_out):
            m = float(np.abs(rs[j]).max())
            if m == 0:
                continue
            n = min(VSHIFT_MAX, math.floor(math.log2(VQ_MAX / m)))
            while n > 0 and np.abs(np.rint(rs[j] * 2.0**n)).max() > VQ_MAX:
                n -= 1
            if n < 0:
                raise ExportError(f"stage {l}: internal error, bucket weight scale out of range")
            vshift[j] = n
            vq[j] = np.rint(rs[j] * 2.0**n).astype(np.int16)
        bq = np.rint(b * 2.0**f_bits)
        if np.abs(bq).max(initial=0) >= 2**31:
            raise ExportError(f"stage {l}: bias does not fit int32")
        tq = None
        if theta is not None:
            if np.any(theta <= 0):
                raise ExportError(f"stage {l}: thresholds must be > 0")
            tq = np.clip(np.rint(theta * 2.0**f_bits), 1, None)
            if tq.max() > THETA_MAX:
                raise ExportError(f"stage {l}: threshold exceeds 2^29 x units")
            tq = tq.astype(np.int32)
        alpha = _q15(net.alphas(l), f"stage {l}")
        delays = p.get(f"{l}.delays")
        max_delay = 0
        if delays is not None:
            delays = np.asarray(delays)
            if delays.max(initial=0) > 255:
                raise ExportError(f"stage {l}: delays up to {int(delays.max())} steps; the format allows 0..255")
            delays = delays.astype(np.uint8)
            max_delay = int(delays.max(initial=0))
        stages.append(SgmStage(
            kind=kind, is_output=st.is_output, in_shape=prev_shape, pool=pool, syn_shape=syn, out_shape=out,
            kernel=kernel, stride=stride, padding=padding, max_delay=max_delay, x_frac_bits=int(f_bits),
            weights=wq, bias=bq.astype(np.int32), vweights=vq, vshift=vshift, alpha=alpha, theta=tq,
            delays=delays, spike_ring=delays is not None and spike_ring_allowed(l, pool),
            min_count=int(cfg.input_min_count) if l == 0 else 0))
        prev_shape = out
    return SgmModel(format_version=FORMAT_VERSION, dt_us=int(cfg.dt_us), n_buckets=k,
                    input_shape=tuple(cfg.input_shape), sensor_size=(sw, sh), downsample=cfg.downsample,
                    labels=labels, stages=stages, arena_bytes=arena_bytes_for(stages, k), file_bytes=0)


def export_network(net: Network, *, dt_us: int | None = None) -> bytes:
    """Float network -> .sgm bytes; `dt_us` retargets the time step first."""
    if dt_us is not None and int(dt_us) != net.config.dt_us:
        net = net.retarget_dt(int(dt_us))
    return encode(quantize(net))


def export_file(model_path, out_path, *, dt_ms: float | None = None) -> dict:
    """`pysg export`: read a float .npz model, write the .sgm, return a summary."""
    net = Network.load(model_path)
    data = export_network(net, dt_us=None if dt_ms is None else int(round(dt_ms * 1000)))
    Path(out_path).write_bytes(data)
    info = inspect_sgm(data)
    info["output"] = str(out_path)
    return info
