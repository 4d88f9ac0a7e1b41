# SPDX-License-Identifier: MIT
"""The evaluation summary every engine (float, integer reference, C) reports."""
from __future__ import annotations

import numpy as np


def classification_summary(preds, labels, *, n_classes: int, spikes, synops, seconds, lengths,
                           hidden_neurons: int, dense_macs_per_step: int, dt_us: int,
                           engine: str) -> dict:
    """Accuracy, confusion (rows: true class), per-sample activity and the operations of
    the equivalent frame-based network. spikes/synops: per sample; seconds/lengths:
    each sample's duration in s and in steps."""
    preds = np.asarray(preds, np.int64)
    labels = np.asarray(labels, np.int64)
    spikes = np.asarray(spikes, float)
    synops = np.asarray(synops, float)
    n = len(labels)
    confusion = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(confusion, (labels, preds), 1)
    return {
        "accuracy": float(np.mean(preds == labels)) if n else float("nan"),
        "n": int(n),
        "confusion": confusion.tolist(),
        "predictions": preds.tolist(),
        "spikes_per_sample": float(spikes.mean()) if n else float("nan"),
        "spikes_per_neuron_per_second": float(np.sum(spikes) / max(1, hidden_neurons) / np.sum(seconds))
        if n else float("nan"),
        "synops_per_sample": float(synops.mean()) if n else float("nan"),
        "dense_macs_per_sample": float(dense_macs_per_step * np.mean(lengths)) if n else float("nan"),
        "dt_us": int(dt_us),
        "engine": engine,
    }
