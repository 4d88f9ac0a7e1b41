# SPDX-License-Identifier: MIT
"""Model kind "sg": SpikingGamma int8 networks (.sgm version 1), and its integer
reference engine "ref" (`pysg.intref.IntRef`, bit-exact with the C runtime)."""
from __future__ import annotations

import numpy as np

from .. import intref
from ..scoring import SPIKING_GAMMA
from ..sgm import FORMAT_VERSION, SgmModel
from .base import BatchResult, PyEngine
from .registry import ModelInfo, ModelKind, native_engine, register_engine, register_kind

__all__ = ["SG_KIND", "SgRefEngine"]


def describe(m: SgmModel) -> ModelInfo:
    return ModelInfo(labels=tuple(m.labels), dt_us=int(m.dt_us), sensor_size=tuple(m.sensor_size),
                     downsample=int(m.downsample), input_shape=tuple(m.input_shape),
                     hidden_neurons=int(sum(st.n_out for st in m.stages[:-1])),
                     dense_macs_per_step=int(sum(st.n_out * st.weights[0].size for st in m.stages)),
                     spike_entries=len(m.stages) - 1)


SG_KIND = register_kind(ModelKind("sg", "SpikingGamma int8 (.sgm version 1)", SgmModel, SPIKING_GAMMA, describe,
                                  format_version=FORMAT_VERSION, writer="pysg.sgm:encode"))


class SgRefEngine(PyEngine):
    """The integer reference of a version 1 model, one sample (batch 1) through the
    common time base; `classify_batch` runs many samples at once (same numbers)."""

    name = "ref"

    def _reset_state(self) -> None:
        self._ref = intref.IntRef(self.model.obj, 1)

    def _compute(self, counts):
        c = np.zeros((1, self.n_inputs), np.int64) if counts is None else counts[None]
        logits, spikes, synops = self._ref.step(c)
        return logits[0], [int(s[0]) for s in spikes], int(synops[0])

    def classify_batch(self, frames: np.ndarray, lengths: np.ndarray, starts: np.ndarray, *,
                       keep_logits: bool = False) -> BatchResult:
        """B samples of binned counts (B, T, C, H, W), scored from `starts` to `lengths`."""
        t_steps = int(lengths.max())
        r = intref.run(self.model.obj, np.moveaxis(frames[:, :t_steps], 1, 0))
        t = np.arange(t_steps)[:, None]
        live = t < lengths[None, :]
        scored = live & (t >= starts[None, :])
        sc = np.einsum("tb,tbc->bc", scored.astype(np.int64), r.logits.astype(np.int64))
        spikes = sum((sp * live).sum(axis=0) for sp in r.spikes) if r.spikes else np.zeros(len(lengths))
        return BatchResult(sc, spikes, (r.synops * live).sum(axis=0), r.logits if keep_logits else None)


register_engine("ref", "sg", SgRefEngine)
register_engine("c", "sg", native_engine)
