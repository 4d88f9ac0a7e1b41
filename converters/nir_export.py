# SPDX-License-Identifier: MIT
"""Float pysg Network -> NIR graph (`pysg export --nir`). The mapping, node by node, is
docs/NIR.md, "Export"; in short, per synaptic stage l:

    source -> pooling / Flatten -> [Delay d_i*dt] -> Linear | Conv2d (W) -> bucket0 (LI)
    bucket(k-1) -> Delay(dt) -> bucket k (LI)                    the Gamma cascade
    bucket k -> readout k (Affine/Scale, or depthwise 1x1 Conv2d) -> sum x = b + sum_k V_k z^k
    hidden:  x + (-alpha') * e(t-1) -> Threshold(theta) -> Scale(2 theta) -> next stage
             Scale(2 theta) -> enc (LI, alpha') -> Delay(dt) -> Scale(-alpha')   (sigma-delta)
    output:  x -> Output (the logits)

Every LI is exact under the discretisation docs/NIR.md states (forward Euler at the
model's step, the input of the same step): tau = dt / (1 - alpha), so 1 - dt/tau = alpha.
The graph's metadata keeps the pysg config (layers, tau_ms, dt, classes, sensor) so that
:func:`pysg.converters.nir_sg.sg_from_nir` rebuilds the identical float network.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pysg.model.layers import Conv2d, Dense, Flatten, SumPool2d
from pysg.model.network import FORMAT_NAME, FORMAT_VERSION, Network

# Graph metadata keys (the convention docs/NIR.md describes).
META_FORMAT = "pysg_format"
META_VERSION = "pysg_version"
META_CONFIG = "pysg_config"
META_DTYPES = "pysg_dtypes"
META_DT = "dt"
META_DISCRETISATION = "discretisation"
DISCRETISATION = "euler-same-step"


class NirExportError(ValueError):
    """The float model cannot be written as a NIR graph."""


def require_nir():
    """The `nir` package, or a one-line error naming the extra."""
    try:
        import nir
    except ImportError:
        raise NirExportError('NIR export/import needs the nir package: pip install "pysg[nir]"') from None
    return nir


def node_name(stage: int, part: str) -> str:
    """`s{stage}.{part}`: the names sg_from_nir reads back."""
    return f"s{stage}.{part}"


@dataclass
class _Graph:
    nodes: dict[str, Any] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, node, src: str | None = None) -> str:
        self.nodes[name] = node
        if src is not None:
            self.edges.append((src, name))
        return name


def _li(nir, alpha: float, dt_s: float, shape: tuple, unit_input: bool, dtype=np.float64):
    """An LI whose Euler step at dt is v <- alpha v + g I: g = 1 (unit_input, bucket 0 and
    the encoder) or g = 1 - alpha (taps k >= 1: unit DC gain, R = 1)."""
    tau = dt_s / (1.0 - float(alpha))
    r = tau / dt_s if unit_input else 1.0
    return nir.LI(tau=np.full(shape, tau, dtype), r=np.full(shape, r, dtype), v_leak=np.zeros(shape, dtype))


def network_to_nir(net: Network):
    """The NIR graph of a float network (docs/NIR.md, "Export")."""
    nir = require_nir()
    cfg = net.config
    p = net.params
    dt_s = cfg.dt_us * 1e-6
    if not (isinstance(cfg.dt_us, (int, np.integer)) and cfg.dt_us > 0):
        raise NirExportError(f"dt_us {cfg.dt_us!r} must be a positive integer")
    for name, v in p.items():
        if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise NirExportError(f"parameter {name} has non-finite values; retrain or fix the model")
    if cfg.input_min_count > 1:  # a per-step count threshold: NIR's nodes are continuous in time
        raise NirExportError(f"input_min_count {cfg.input_min_count}: NIR has no node that drops an input's "
                             f"counts below a threshold per time step; train with --min-count 0 to export NIR")
    g = _Graph()
    in_shape = tuple(int(v) for v in cfg.input_shape)
    g.add("input", nir.Input(input_type={"input": np.array(in_shape)}))
    src = g.add("input_gain", nir.Scale(scale=np.full(in_shape, cfg.input_gain, np.float64)), "input")
    shape = in_shape
    stage_specs = _group_layers(cfg.layers)
    for st, (transforms, spec) in zip(net.stages, stage_specs):
        l = st.index
        for i, t in enumerate(transforms):
            if isinstance(t, SumPool2d):
                k = t.kernel_size
                node = nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([k, k]),
                                     padding=np.array([0, 0]))
                shape = (shape[0], shape[1] // k, shape[2] // k)
                src = g.add(node_name(l, f"pool{i}"), node, src)
            else:
                node = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
                shape = (int(np.prod(shape)),)
                src = g.add(node_name(l, f"flatten{i}"), node, src)
        if isinstance(spec, Dense) and len(shape) != 1:
            node = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
            shape = (int(np.prod(shape)),)
            src = g.add(node_name(l, "flatten"), node, src)
        delays = p.get(f"{l}.delays")
        if delays is not None:
            d = np.asarray(delays).astype(np.float64).reshape(shape) * dt_s
            src = g.add(node_name(l, "delay"), nir.Delay(delay=d), src)
        w = p[f"{l}.W"]
        if isinstance(spec, Dense):
            syn = nir.Linear(weight=w)
        else:
            syn = nir.Conv2d(input_shape=(shape[1], shape[2]), weight=w, stride=spec.stride,
                             padding=spec.padding, dilation=1, groups=1, bias=np.zeros(w.shape[0], w.dtype))
        src = g.add(node_name(l, "syn"), syn, src)
        out_shape = tuple(int(v) for v in st.syn.out_shape)
        alpha = net.alphas(l)
        if not np.all((alpha > 0) & (alpha < 1)):
            raise NirExportError(f"stage {l}: bucket decays {alpha.tolist()} must lie in (0, 1) for an LI node "
                                 f"(tau_ms {cfg.tau_ms[l]} at dt {cfg.dt_us} us); choose finite, positive "
                                 f"time constants")
        target = "output" if st.is_output else node_name(l, "spike")
        v, b = p[f"{l}.V"], p[f"{l}.b"]
        prev = src
        for k in range(cfg.n_buckets):
            if k:
                prev = g.add(node_name(l, f"tap{k}"), nir.Delay(delay=np.full(out_shape, dt_s)), prev)
            prev = g.add(node_name(l, f"bucket{k}"), _li(nir, alpha[k], dt_s, out_shape, k == 0), prev)
            g.add(node_name(l, f"readout{k}"), _readout(nir, spec, v[:, k], b, k, out_shape), prev)
            g.edges.append((node_name(l, f"readout{k}"), target))
        if st.is_output:
            g.add("output", nir.Output(output_type={"output": np.array(out_shape)}))
            break
        theta = st.expand(p[f"{l}.theta"]).reshape(out_shape)
        a_next = float(net.alphas(l + 1)[0])
        g.add(target, nir.Threshold(threshold=theta))
        amp = g.add(node_name(l, "amp"), nir.Scale(scale=2 * theta), target)
        enc = g.add(node_name(l, "enc"), _li(nir, a_next, dt_s, out_shape, True), amp)
        enc = g.add(node_name(l, "enc_delay"), nir.Delay(delay=np.full(out_shape, dt_s)), enc)
        g.add(node_name(l, "enc_pred"), nir.Scale(scale=np.full(out_shape, -a_next)), enc)
        g.edges.append((node_name(l, "enc_pred"), target))
        src, shape = amp, out_shape
    meta = {META_FORMAT: FORMAT_NAME, META_VERSION: FORMAT_VERSION, META_CONFIG: json.dumps(cfg.to_dict()),
            META_DTYPES: json.dumps({k: str(v.dtype) for k, v in p.items()}), META_DT: dt_s,
            META_DISCRETISATION: DISCRETISATION}
    return nir.NIRGraph(nodes=g.nodes, edges=g.edges, metadata=meta)


def _readout(nir, spec, v_k: np.ndarray, b: np.ndarray, k: int, out_shape: tuple):
    """x gets V_k * z^k (+ b on tap 0): Dense -> Affine(diag V_0, b) for tap 0 and Scale(V_k)
    after; Conv2d -> a depthwise 1x1 Conv2d (per channel, like pysg's V and b)."""
    if isinstance(spec, Dense):
        return nir.Affine(weight=np.diag(v_k), bias=b.copy()) if k == 0 else nir.Scale(scale=v_k.copy())
    c = out_shape[0]
    return nir.Conv2d(input_shape=out_shape[1:], weight=v_k.reshape(c, 1, 1, 1).copy(), stride=1, padding=0,
                      dilation=1, groups=c, bias=b.copy() if k == 0 else np.zeros_like(b))


def _group_layers(layers: list) -> list[tuple[list, object]]:
    """(transforms in front, synaptic spec) per stage, in the order of the layer list."""
    out, pending = [], []
    for spec in layers:
        if isinstance(spec, (SumPool2d, Flatten)):
            pending.append(spec)
        elif isinstance(spec, (Dense, Conv2d)):
            out.append((pending, spec))
            pending = []
        else:
            raise NirExportError(f"layer {spec!r} has no NIR mapping")
    return out


def export_nir_file(model_path, out_path, *, dt_ms: float | None = None) -> dict:
    """`pysg export --nir`: read a float .npz model, write its NIR graph (HDF5, nir.write)."""
    nir = require_nir()
    net = Network.load(model_path)
    if dt_ms is not None and int(round(dt_ms * 1000)) != net.config.dt_us:
        net = net.retarget_dt(int(round(dt_ms * 1000)))
    graph = network_to_nir(net)
    nir.write(str(out_path), graph)
    return {"output": str(out_path), "nodes": len(graph.nodes), "edges": len(graph.edges),
            "stages": len(net.stages), "n_buckets": net.config.n_buckets, "dt_us": net.config.dt_us}
