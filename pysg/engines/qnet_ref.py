# SPDX-License-Identifier: MIT
"""Model kind "qnet": imported int8 networks (.sgm version 2), and its integer reference
engine "ref" (`pysg.qnet.QnetRef`, bit-exact with the C runtime and TFLite).

Event-count models take events or count frames over their P x in_h x in_w cells;
tensor-input models take the whole int8 input tensor per step (`step_tensor`). Logits
are the last layer's int8 outputs; stats["spikes"] counts the int8 deltas each table
entry sent (entry 0: the input tensor's), as the C runtime does."""
from __future__ import annotations

import numpy as np

from ..qnet import QnetRef
from ..scoring import WHOLE_WINDOW
from ..sgm import FORMAT_VERSION_QNET, QKIND_CONV, QKIND_DEPTHWISE, QKIND_FC, SgmQLayer, SgmQModel
from .base import PyEngine
from .registry import LoadedModel, ModelInfo, ModelKind, native_engine, register_engine, register_kind

__all__ = ["QNET_KIND", "QnetRefEngine"]


def _dense_macs(ly: SgmQLayer) -> int:
    """Every filter tap inside the kernel, as TFLite's reference kernels loop."""
    kh, kw = ly.kernel
    per = {QKIND_CONV: kh * kw * ly.filter_c, QKIND_DEPTHWISE: kh * kw, QKIND_FC: ly.in_shape[2]}.get(ly.kind, 0)
    return int(ly.n_out) * int(per)


def describe(m: SgmQModel) -> ModelInfo:
    h, w, _ = m.input_shape
    return ModelInfo(labels=tuple(m.labels), dt_us=int(m.dt_us), sensor_size=tuple(m.sensor_size),
                     downsample=int(m.downsample), input_shape=(m.polarities, h, w) if m.slices else None,
                     hidden_neurons=int(sum(ly.n_out for ly in m.layers[:-1])),
                     dense_macs_per_step=sum(_dense_macs(ly) for ly in m.layers),
                     spike_entries=len(m.layers) + 1, tensor_shape=tuple(m.input_shape))


QNET_KIND = register_kind(ModelKind("qnet", "imported int8 network (.sgm version 2)", SgmQModel, WHOLE_WINDOW,
                                    describe, format_version=FORMAT_VERSION_QNET,
                                    writer="pysg.sgm:encode_qmodel"))


class QnetRefEngine(PyEngine):
    name = "ref"

    def __init__(self, model: LoadedModel):
        self._ref = QnetRef(model.obj)
        # the first W - 1 steps see a partial window: never scored (docs/FORMAT.md 8)
        self.first_scored = max(0, int(model.obj.window) - 1)
        super().__init__(model)

    @property
    def tensor_input(self) -> bool:
        return self.input_shape is None

    def _reset_state(self) -> None:
        self._ref.reset()

    def _counts(self) -> tuple[list[int], int]:
        last = self._ref.net.last
        return [last.input_events] + [c.out_events for c in last.layers], last.synops

    def _compute(self, counts):
        shape = self.input_shape
        logits = self._ref.step_counts(None if counts is None else counts.reshape(shape))
        # events a full event ring lost: dropped, not used (FORMAT.md 7.2), as the C runtime counts them
        self._stats["events_in"] -= self._ref.last_lost
        self._stats["events_dropped"] += self._ref.last_lost
        spikes, synops = self._counts()
        return logits, spikes, synops

    def step_tensor(self, x: np.ndarray) -> np.ndarray:
        """One whole step from the int8 input tensor (tensor-input models); the logits."""
        logits = self._ref.step_tensor(x)
        self._account(logits, *self._counts())
        return self.logits


register_engine("ref", "qnet", QnetRefEngine)
register_engine("c", "qnet", native_engine)
