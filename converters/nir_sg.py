# SPDX-License-Identifier: MIT
"""NIR graph written by `pysg export --nir` -> the identical float pysg Network.

The architecture comes from the graph's metadata (the pysg config, docs/NIR.md "Export");
every parameter comes from the nodes themselves (W from `s{l}.syn`, b and V from the
read-outs, theta from `s{l}.spike`, delays from `s{l}.delay`). The rebuilt network is then
exported again and compared node by node with the graph, so a graph whose NIR nodes were
edited (a time constant, a delay, an edge) is refused with the node's name instead of
round-tripping to something else.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from pysg.model.layers import Conv2d, Dense
from pysg.model.network import FORMAT_NAME, FORMAT_VERSION, Network, NetworkConfig, compile_stages

from .nir_export import (META_CONFIG, META_DT, META_DTYPES, META_FORMAT, META_VERSION, network_to_nir, node_name,
                         require_nir)


class SgGraphError(ValueError):
    """A graph that says it is a pysg export but is not one pysg can rebuild exactly."""


def is_sg_graph(graph: Any) -> bool:
    """True for a graph written by `pysg export --nir` (its metadata names the pysg format)."""
    meta = getattr(graph, "metadata", None)
    if not isinstance(meta, dict):
        return False
    fmt = meta.get(META_FORMAT)
    fmt = fmt.decode("utf8") if isinstance(fmt, bytes) else fmt
    return fmt == FORMAT_NAME


def _node(graph, name: str, kind: str):
    node = graph.nodes.get(name)
    if node is None:
        raise SgGraphError(f"pysg NIR graph: node {name!r} is missing; export the model again with pysg export --nir")
    if type(node).__name__ != kind:
        raise SgGraphError(f"pysg NIR graph: node {name!r} is a {type(node).__name__}, expected {kind}")
    return node


def _config(graph) -> tuple[NetworkConfig, dict[str, str]]:
    meta = graph.metadata
    version = meta.get(META_VERSION)
    if version is None or int(version) != FORMAT_VERSION:
        raise SgGraphError(f"pysg NIR graph: metadata {META_VERSION} is {version!r}; this pysg reads {FORMAT_VERSION}")
    try:
        cfg = NetworkConfig.from_dict(json.loads(meta[META_CONFIG]))
        dtypes = json.loads(meta[META_DTYPES])
    except KeyError as e:
        raise SgGraphError(f"pysg NIR graph: metadata {e} is missing") from None
    except (TypeError, ValueError) as e:
        raise SgGraphError(f"pysg NIR graph: metadata {META_CONFIG}/{META_DTYPES} is not a valid pysg config: "
                           f"{e}") from None
    dt = float(meta.get(META_DT, -1.0))
    if dt != cfg.dt_us * 1e-6:
        raise SgGraphError(f"pysg NIR graph: metadata dt {dt} s does not match the config's dt_us {cfg.dt_us}")
    return cfg, dtypes


def _params(graph, cfg: NetworkConfig, dtypes: dict[str, str]) -> dict[str, np.ndarray]:
    stages = compile_stages(cfg.input_shape, cfg.layers)
    specs = [s for s in cfg.layers if isinstance(s, (Dense, Conv2d))]
    dt_s = cfg.dt_us * 1e-6
    params: dict[str, np.ndarray] = {}
    for st, spec in zip(stages, specs):
        l = st.index
        conv = isinstance(spec, Conv2d)
        syn = _node(graph, node_name(l, "syn"), "Conv2d" if conv else "Linear")
        params[f"{l}.W"] = np.asarray(syn.weight)
        r0 = _node(graph, node_name(l, "readout0"), "Conv2d" if conv else "Affine")
        params[f"{l}.b"] = np.asarray(r0.bias)
        taps = []
        for k in range(cfg.n_buckets):
            if conv:
                taps.append(np.asarray(_node(graph, node_name(l, f"readout{k}"), "Conv2d").weight)[:, 0, 0, 0])
            elif k == 0:
                taps.append(np.diag(np.asarray(r0.weight)))
            else:
                taps.append(np.asarray(_node(graph, node_name(l, f"readout{k}"), "Scale").scale))
        params[f"{l}.V"] = np.stack(taps, axis=1)
        if not st.is_output:
            th = np.asarray(_node(graph, node_name(l, "spike"), "Threshold").threshold)
            params[f"{l}.theta"] = th[:, 0, 0] if conv else th
        if node_name(l, "delay") in graph.nodes:
            d = np.asarray(_node(graph, node_name(l, "delay"), "Delay").delay, np.float64)
            params[f"{l}.delays"] = np.rint(d.reshape(-1) / dt_s)
    for k in params:
        if k not in dtypes:
            raise SgGraphError(f"pysg NIR graph: parameter {k} has no dtype in metadata {META_DTYPES}")
    if set(dtypes) != set(params):
        raise SgGraphError(f"pysg NIR graph: metadata lists parameters {sorted(set(dtypes) - set(params))} "
                           f"that no node holds")
    return {k: params[k].astype(dtypes[k]) for k in dtypes}  # the model's own order and dtypes


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) or isinstance(b, dict):
        return True  # input/output types: derived from the arrays compared here
    a = a.decode("utf8") if isinstance(a, bytes) else a
    b = b.decode("utf8") if isinstance(b, bytes) else b
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b)


def _check_same_graph(graph, expected) -> None:
    """Every node and edge of `graph` is what exporting the rebuilt network writes."""
    for name in sorted(set(graph.nodes) | set(expected.nodes)):
        if name not in graph.nodes or name not in expected.nodes:
            where = "missing" if name not in graph.nodes else "not part of a pysg export"
            raise SgGraphError(f"pysg NIR graph: node {name!r} is {where}; export the model again")
        got, want = graph.nodes[name].to_dict(), expected.nodes[name].to_dict()
        for key in sorted(set(got) | set(want)):
            if key == "metadata":
                continue
            if key not in got or key not in want or not _same(got[key], want[key]):
                raise SgGraphError(f"pysg NIR graph: node {name!r} field {key!r} differs from what the pysg "
                                   f"config in the metadata implies; an edited graph cannot round-trip exactly")
    got_e = {(str(a), str(b)) for a, b in graph.edges}
    want_e = set(expected.edges)
    if got_e != want_e:
        diff = sorted(got_e ^ want_e)[0]
        raise SgGraphError(f"pysg NIR graph: edge {diff[0]} -> {diff[1]} "
                           f"{'is extra' if diff in got_e else 'is missing'}; export the model again")


def sg_from_nir(graph) -> Network:
    """The float network a `pysg export --nir` graph was written from (identical parameters,
    config and therefore logits)."""
    require_nir()
    if not is_sg_graph(graph):
        raise SgGraphError(f"not a pysg NIR export (graph metadata {META_FORMAT} is not {FORMAT_NAME!r})")
    cfg, dtypes = _config(graph)
    try:
        net = Network(cfg, _params(graph, cfg, dtypes))
    except (ValueError, IndexError) as e:
        if isinstance(e, SgGraphError):
            raise
        raise SgGraphError(f"pysg NIR graph: the nodes' parameters do not fit the config: {e}") from None
    _check_same_graph(graph, network_to_nir(net))
    return net
