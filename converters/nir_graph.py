# SPDX-License-Identifier: MIT
"""A NIR graph as the chain pysg runs (docs/NIR.md "Graphs"): nested graphs (snnTorch's
RLeaky / RSynaptic subgraphs) flattened into one, then the path from the Input node to
the Output node with each recurrent loop (neuron -> weights -> the same neuron) attached
to its neuron. Anything else (a node type pysg does not run, a branch, a second input)
is refused with :class:`NirImportError` naming the node and its type."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["NirImportError", "ChainNode", "chain_of", "flatten_graph", "arr", "SUPPORTED"]

# the NIR node types pysg runs (class names of nir 1.0.x)
SUPPORTED = ("Input", "Output", "Affine", "Linear", "Scale", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten",
             "LIF", "CubaLIF", "IF", "LI", "I", "Threshold", "Delay")
NEURONS = ("LIF", "CubaLIF", "IF", "LI", "I", "Threshold")


class NirImportError(ValueError):
    """A NIR graph pysg cannot run: the message names the node, its type and the fix."""


def arr(x: Any) -> np.ndarray:
    """float64 numpy array of a NIR parameter (numpy, a scalar, or a torch tensor as
    frameworks leave in graphs they have not written to a file)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, np.float64)


@dataclass
class ChainNode:
    """One node of the chain: its name, NIR node, and the recurrent weight node that
    loops its output back into it (neurons only)."""
    name: str
    node: Any
    recurrent: Any = None
    recurrent_name: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def type(self) -> str:
        return type(self.node).__name__


def _is_graph(node: Any) -> bool:
    return type(node).__name__ == "NIRGraph"


def flatten_graph(graph: Any, prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(nodes, edges) of ``graph`` with every nested NIRGraph replaced by its own nodes
    (names ``outer.inner``); the nested graph's Input/Output nodes become plain pass-through
    nodes joined to the outer edges."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    inner_io: dict[str, tuple[str, str]] = {}
    for name, node in graph.nodes.items():
        full = prefix + name
        if _is_graph(node):
            sub_nodes, sub_edges = flatten_graph(node, full + ".")
            depth = full.count(".") + 1  # the nested graph's own Input / Output, not deeper ones

            def own(t: str) -> list[str]:
                return [n for n, v in sub_nodes.items() if type(v).__name__ == t and n.count(".") == depth]

            ins, outs = own("Input"), own("Output")
            if len(ins) != 1 or len(outs) != 1:
                raise NirImportError(f"NIR node {full!r} (NIRGraph): a nested graph needs exactly one Input and one "
                                     f"Output node, it has {len(ins)} and {len(outs)}")
            nodes.update(sub_nodes)
            edges += sub_edges
            inner_io[full] = (ins[0], outs[0])
        else:
            nodes[full] = node
    for src, dst in graph.edges:
        s, d = prefix + src, prefix + dst
        s = inner_io[s][1] if s in inner_io else s
        d = inner_io[d][0] if d in inner_io else d
        edges.append((s, d))
    return nodes, edges


def _refuse_unsupported(nodes: dict[str, Any]) -> None:
    for name, node in nodes.items():
        t = type(node).__name__
        if t not in SUPPORTED:
            raise NirImportError(f"NIR node {name!r} has type {t}, which pysg does not run "
                                 f"(supported: {', '.join(SUPPORTED)})")


def chain_of(graph: Any) -> list[ChainNode]:
    """The nodes from the graph's Input to its Output in order (both included; nested
    Input/Output pass-throughs dropped), each neuron with its recurrent loop if any."""
    nodes, edges = flatten_graph(graph)
    _refuse_unsupported(nodes)
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    pred: dict[str, list[str]] = {n: [] for n in nodes}
    for s, d in edges:
        for end in (s, d):
            if end not in nodes:
                raise NirImportError(f"NIR edge {s!r} -> {d!r}: no node named {end!r} in the graph")
        if d not in succ[s]:
            succ[s].append(d)
            pred[d].append(s)
    top_in = [n for n, v in nodes.items() if type(v).__name__ == "Input" and "." not in n]
    top_out = [n for n, v in nodes.items() if type(v).__name__ == "Output" and "." not in n]
    if len(top_in) != 1 or len(top_out) != 1:
        raise NirImportError(f"NIR graph: pysg runs graphs with one Input and one Output node, this one has "
                             f"{len(top_in)} Input ({', '.join(top_in)}) and {len(top_out)} Output")

    def passthrough(n: str) -> bool:
        return "." in n and type(nodes[n]).__name__ in ("Input", "Output")

    # a recurrent loop: neuron N -> W -> N with W a weight node whose only neighbour is N
    loops: dict[str, str] = {}
    for n, v in nodes.items():
        if type(v).__name__ in ("Linear", "Affine") and len(pred[n]) == 1 and succ[n] == pred[n]:
            loops[n] = pred[n][0]
    chain: list[ChainNode] = []
    cur, seen = top_in[0], {top_in[0]}
    input_node = nodes[cur]
    while True:
        nxt = [d for d in succ[cur] if d not in loops]
        if cur != top_in[0]:
            rec = [d for d in succ[cur] if d in loops]
            if not passthrough(cur):
                cn = ChainNode(cur, nodes[cur])
                if rec:
                    if cn.type not in NEURONS or cn.type in ("LI", "I"):
                        raise NirImportError(f"NIR node {cur!r} ({cn.type}): a recurrent loop through "
                                             f"{rec[0]!r} must return into a spiking neuron")
                    cn.recurrent, cn.recurrent_name = nodes[rec[0]], rec[0]
                chain.append(cn)
            elif rec:  # a nested graph's Output fed back (cannot happen for snnTorch's layout)
                raise NirImportError(f"NIR node {rec[0]!r}: a recurrent loop that does not start at a neuron")
        if cur == top_out[0]:
            break
        if len(nxt) != 1:
            what = "ends" if not nxt else f"branches into {', '.join(nxt)}"
            raise NirImportError(f"NIR node {cur!r} ({type(nodes[cur]).__name__}): the graph {what} here; pysg runs "
                                 f"a chain from Input to Output (with recurrent loops on neurons)")
        cur = nxt[0]
        if cur in seen:
            raise NirImportError(f"NIR node {cur!r} ({type(nodes[cur]).__name__}): a cycle that is not a recurrent "
                                 f"weight loop on a neuron")
        seen.add(cur)
        non_loop_pred = [p for p in pred[cur] if p not in loops]
        if len(non_loop_pred) != 1:
            raise NirImportError(f"NIR node {cur!r} ({type(nodes[cur]).__name__}): {len(non_loop_pred)} inputs "
                                 f"({', '.join(non_loop_pred)}); pysg runs a chain (one input per node)")
    unused = [n for n in nodes if n not in seen and n not in loops]
    if unused:
        raise NirImportError(f"NIR node {unused[0]!r} ({type(nodes[unused[0]]).__name__}) is not on the path from "
                             f"Input to Output")
    chain.insert(0, ChainNode(top_in[0], input_node))
    return chain
