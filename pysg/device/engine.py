# SPDX-License-Identifier: MIT
"""A device as an evaluation backend of `pysg.jobs`: its active model runs the samples.

    with Device(url) as dev:
        result = pysg.jobs.evaluate(DeviceEngine(dev), "data/", split="test")

Each sample is streamed as binned frames (STREAM_START, SCORE_FROM the first step the
model kind's rule scores, STREAM_STEPS, PREDICT), exactly the counts the host engines
see, so the device's predictions and scores equal theirs. The model's description comes
from its .sgm header on the device (`Device.model_header`); sizes the header does not
hold (hidden neurons, dense MACs) are 0 unless the host copy of the model is given.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engines.base import BatchResult
from ..engines.registry import LoadedModel, ModelInfo, ModelKind, kind_of_version
from ..scoring import ScoringRule

__all__ = ["DeviceEngine"]


@dataclass
class _DeviceModel:
    """The device's active model as the jobs see it (kind, scoring rule, description)."""
    kind: ModelKind
    info: ModelInfo
    source: str
    rule: ScoringRule


class DeviceEngine:
    """Engine "device": `classify_batch` over a connected `pysg.device.client.Device`.
    `stats=True` also reads the device's counters after every sample (one more request);
    `rule` replaces the model kind's scoring rule."""

    name = "device"

    def __init__(self, device, *, model: LoadedModel | None = None, stats: bool = False,
                 rule: ScoringRule | None = None):
        self.device = device
        self.header = mh = device.model_header()
        kind = kind_of_version(mh.format_version)
        if model is not None:
            info = model.info
        else:
            info = ModelInfo(labels=tuple(mh.labels), dt_us=int(mh.dt_us), sensor_size=tuple(mh.sensor_size),
                             downsample=int(mh.downsample), input_shape=tuple(mh.input_shape), hidden_neurons=0,
                             dense_macs_per_step=0, spike_entries=0)
        self.model = _DeviceModel(kind, info, device.url, kind.rule if rule is None else rule)
        self.labels = list(mh.labels)
        self.n_classes = len(mh.labels)
        self.dt_us = int(mh.dt_us)
        self._stats = stats

    def classify_batch(self, frames: np.ndarray, lengths: np.ndarray, starts: np.ndarray, *,
                       keep_logits: bool = False) -> BatchResult:
        dev = self.device
        b = len(lengths)
        scores = np.zeros((b, self.n_classes), np.int64)
        indices = np.full(b, -1, np.int64)
        spikes, synops = np.zeros(b), np.zeros(b)
        kept = np.zeros((int(lengths.max()), b, self.n_classes), np.int32) if keep_logits else None
        for i in range(b):
            n = int(lengths[i])
            dev.start_stream(logits=keep_logits)
            dev.score_from(int(starts[i]))
            lg = dev.send_steps(frames[i, :n])
            p = dev.predict()
            scores[i], indices[i] = p.scores, p.index
            if kept is not None:
                kept[:n, i] = lg
            if self._stats:
                st = dev.stats()
                spikes[i], synops[i] = sum(st.spikes), st.synops
        return BatchResult(scores, spikes, synops, kept, indices)
