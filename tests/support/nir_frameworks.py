# SPDX-License-Identifier: MIT
"""snnTorch and sinabs networks, their own NIR export, and their own simulation, for
the NIR import's fidelity tests and bench (docs/NIR.md "Fidelity").

snnTorch 1.0.0's `export_to_nir` passes `v_reset=` to `nir.LIF` / `nir.CubaLIF`, which
nir 1.0.4 (the pinned version) does not take (TypeError); :func:`snntorch_to_nir` runs
snnTorch's own export with that one argument dropped (it is always zeros: snnTorch's
reset-by-subtraction does not use it). sinabs 3.1.3's graphs leave some node types
undefined, which `nir.write` refuses: :func:`sinabs_to_nir` infers them first. Both then
go through a .nir file (nir.write, nir.read), as `pysg convert` reads them."""
from __future__ import annotations

import contextlib
import functools
import tempfile
import types
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def _nir_without_v_reset():
    import nir
    import snntorch.export_nir as ex

    def drop(cls):
        @functools.wraps(cls)
        def make(*args, v_reset=None, **kwargs):
            return cls(*args, **kwargs)
        return make

    shim = types.SimpleNamespace(**{k: getattr(nir, k) for k in dir(nir) if not k.startswith("__")})
    shim.LIF, shim.CubaLIF = drop(nir.LIF), drop(nir.CubaLIF)
    saved, ex.nir = ex.nir, shim
    try:
        yield
    finally:
        ex.nir = saved


def _through_file(graph, path: Path | None):
    import nir

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(path) if path is not None else Path(tmp) / "model.nir"
        nir.write(str(p), graph)
        return nir.read(str(p))


def snntorch_to_nir(net, sample, path: Path | None = None):
    """snnTorch's own `export_to_nir` of ``net`` (nir 1.0.4-compatible), written and read back."""
    from snntorch.export_nir import export_to_nir

    with _nir_without_v_reset():
        graph = export_to_nir(net, sample, ignore_dims=[0])  # the batch dimension
    return _through_file(graph, path)


def sinabs_to_nir(net, sample, path: Path | None = None):
    """sinabs' own `to_nir` of ``net``, written and read back."""
    from sinabs import to_nir

    graph = to_nir(net, sample)
    graph.infer_types()
    return _through_file(graph, path)


def run_snntorch(net, frames: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(T, n_out) output spikes of an snnTorch Sequential (init_hidden neurons, the last
    with output=True) on count frames (T, cells), stepped one frame at a time."""
    import torch
    from snntorch import utils

    utils.reset(net)
    out = []
    with torch.no_grad():
        for x in np.minimum(frames, 255).astype(np.float32):
            spk = net(torch.from_numpy(x).reshape(1, *shape))
            spk = spk[0] if isinstance(spk, tuple) else spk
            out.append(spk.numpy().reshape(-1))
    return np.array(out)


def run_sinabs(net, frames: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(T, n_out) output spikes of a sinabs Sequential (Squeeze layers, batch 1) on count
    frames (T, cells): the time steps as the batch dimension, sinabs' own loop."""
    import torch

    for m in net.modules():
        if hasattr(m, "reset_states"):
            m.reset_states()
    with torch.no_grad():
        x = torch.from_numpy(np.minimum(frames, 255).astype(np.float32)).reshape(len(frames), *shape)
        return net(x).numpy().reshape(len(frames), -1)


def decisions(spikes: np.ndarray) -> np.ndarray:
    """(T,) running decision: the class with the most output spikes so far (smallest index
    on ties), -1 before the first output spike."""
    cum = np.cumsum(spikes, axis=0)
    d = cum.argmax(axis=1)
    d[cum.max(axis=1) == 0] = -1
    return d
