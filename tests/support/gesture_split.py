# SPDX-License-Identifier: MIT
"""The benches' gesture input: a DVS128-Gesture-layout folder's split as one cached .npz
(events, per-gesture offsets, durations, labels), so that each engine worker loads its
input without the AEDAT decoder's transient memory. Importing this module loads numpy
only: the workers measure their engine's memory after it."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DEFAULT_DATA = "/tmp/gd3"          # the benches' DVS128-Gesture-layout folder
DEFAULT_HOPS = (10, 50, 100, 200)  # CNN frame hops the benches compare, ms


def export_split(data: str | os.PathLike, split: str) -> Path:
    """The split's gestures as one .npz in the bench cache (written on first use)."""
    from pysg.datasets.gesture import GestureDataset

    from .cnn_baseline import CACHE_DIR, dataset_key

    path = CACHE_DIR / f"split_{split}_{dataset_key(Path(data))}.npz"
    if not path.is_file():
        ds = GestureDataset(data, split)
        samples = list(ds)
        offsets = np.cumsum([0] + [len(s.events) for s in samples])
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, events=np.concatenate([s.events for s in samples]), offsets=offsets,
                 durations=np.array([s.duration_us for s in samples], np.int64),
                 labels=np.array([s.label for s in samples], np.int64))
        os.replace(tmp, path)
    return path


def load_split(path: str | os.PathLike) -> list[tuple[np.ndarray, int, int]]:
    """(events, duration in µs, label) per gesture of an :func:`export_split` file."""
    with np.load(path, allow_pickle=False) as z:
        ev, off, dur, lab = z["events"], z["offsets"], z["durations"], z["labels"]
    return [(ev[off[i]:off[i + 1]], int(dur[i]), int(lab[i])) for i in range(len(dur))]
