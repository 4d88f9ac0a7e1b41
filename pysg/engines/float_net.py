# SPDX-License-Identifier: MIT
"""Model kind "float": the float SpikingGamma network (`pysg.model.Network`, .npz), and
its engine "float" (spiking forward pass; logits in float)."""
from __future__ import annotations

import numpy as np

from ..model.network import Network
from ..scoring import SPIKING_GAMMA
from .base import BatchResult, PyEngine
from .registry import ModelInfo, ModelKind, register_engine, register_kind

__all__ = ["FLOAT_KIND", "FloatEngine"]


def describe(net: Network) -> ModelInfo:
    from ..train.trainer import dense_macs_per_step

    cfg = net.config
    return ModelInfo(labels=tuple(cfg.classes), dt_us=int(cfg.dt_us), sensor_size=tuple(cfg.sensor_size),
                     downsample=int(cfg.downsample), input_shape=tuple(cfg.input_shape),
                     hidden_neurons=int(sum(st.n_out for st in net.stages[:-1])),
                     dense_macs_per_step=int(dense_macs_per_step(net)), spike_entries=len(net.stages) - 1,
                     n_classes=int(net.n_classes))


FLOAT_KIND = register_kind(ModelKind("float", "float SpikingGamma network (.npz)", Network, SPIKING_GAMMA,
                                     describe, integer=False))


class FloatEngine(PyEngine):
    name = "float"
    score_dtype = np.float64
    spiking = True

    def _reset_state(self) -> None:
        self._state = self.model.obj.init_state(1)
        self._seen_spikes = [0] * self.model.info.spike_entries
        self._seen_synops = 0

    def _compute(self, counts):
        net, state = self.model.obj, self._state
        frame = np.zeros((1, self.n_inputs), np.float32) if counts is None else counts[None].astype(np.float32)
        logits = net.step(state, frame, spiking=self.spiking)[0]
        spikes = [int(s[0]) for s in state.spikes]
        step_spikes = [a - b for a, b in zip(spikes, self._seen_spikes)]
        step_synops = int(state.synops[0]) - self._seen_synops
        self._seen_spikes, self._seen_synops = spikes, int(state.synops[0])
        return logits, step_spikes, step_synops

    def classify_batch(self, frames: np.ndarray, lengths: np.ndarray, starts: np.ndarray, *,
                       keep_logits: bool = False) -> BatchResult:
        """B samples at once: (B, T, C, H, W) counts, scored from `starts` to `lengths`."""
        net = self.model.obj
        b, t_steps = len(lengths), int(lengths.max())
        flat = frames[:, :t_steps].reshape(b, t_steps, -1)
        state = net.init_state(b)
        score = np.zeros((b, self.n_classes))
        spikes, synops = np.zeros(b), np.zeros(b)
        kept = np.empty((t_steps, b, self.n_classes)) if keep_logits else None
        for t in range(t_steps):
            logits = net.step(state, flat[:, t], spiking=self.spiking)
            live = (t >= starts) & (t < lengths)
            score += live[:, None] * logits
            if kept is not None:
                kept[t] = logits
            ended = t + 1 == lengths  # a padded sample stops counting activity at its own end
            if ended.any():
                spikes[ended] = sum(sp[ended] for sp in state.spikes) if state.spikes else 0
                synops[ended] = state.synops[ended]
        return BatchResult(score, spikes, synops, kept)


register_engine("float", "float", FloatEngine)
