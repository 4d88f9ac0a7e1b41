# SPDX-License-Identifier: MIT
"""A split's gestures as compact event arrays, and events -> the anchor's 8 time bins.

Each gesture keeps its events' time (µs since the labelled start t0, uint32) and cell
(``p * 1024 + (y >> 2) * 32 + (x >> 2)``: the DVS128's 128 x 128 pooled by 4, as pysg's
model and the baseline see it, uint16). A split is decoded once by pysg's
GestureDataset and cached as one .npz under the bench cache, keyed on the dataset's files.

Binning: a window [a, b) (µs since t0) is cut into ``n_bins`` equal parts; an event at t
falls into part ``floor((t - a) * n_bins / (b - a))``; events outside [a, b) are dropped.
The tensor is (n_bins * 2, 32, 32), channel 2 k + p = bin k (oldest first), polarity p
(0 OFF, 1 ON): the baseline's channel order (frames.py). Counts become int8 by the
baseline's log code (real value log2(1 + count) to 1/32, scale 1/32, zero point -128).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cnn_baseline import CACHE_DIR, dataset_key
from ..cnn_baseline.frames import INPUT_SCALE, INPUT_ZERO_POINT, count_lut

__all__ = ["CELLS", "SplitEvents", "bin_windows", "load_events", "to_int8", "to_float"]

CELLS = 2 * 32 * 32
_LUT = count_lut()


@dataclass
class SplitEvents:
    t: np.ndarray          # uint32 µs since the gesture's start, all gestures concatenated
    cell: np.ndarray       # uint16 p * 1024 + row * 32 + column
    offsets: np.ndarray    # int64 (G + 1,): gesture g's events are [offsets[g], offsets[g + 1])
    durations: np.ndarray  # int64 µs, t1 - t0
    labels: np.ndarray     # int64 0..10

    def __len__(self) -> int:
        return len(self.labels)


def load_events(root: str | os.PathLike, split: str) -> SplitEvents:
    """The split's gestures (decoded on first use, then read from the cache)."""
    root = Path(root)
    path = CACHE_DIR / f"anchor_events_{split}_{dataset_key(root)}.npz"
    if not path.is_file():
        from pysg.datasets.gesture import GestureDataset

        ts, cells, durs, labels = [], [], [], []
        for s in GestureDataset(root, split):
            ev = s.events
            ts.append(ev["t"].astype(np.uint32))
            cells.append((ev["p"].astype(np.uint16) << 10) | ((ev["y"].astype(np.uint16) >> 2) << 5)
                         | (ev["x"].astype(np.uint16) >> 2))
            durs.append(s.duration_us)
            labels.append(s.label)
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, t=np.concatenate(ts), cell=np.concatenate(cells),
                 offsets=np.cumsum([0] + [len(t) for t in ts]), durations=np.array(durs, np.int64),
                 labels=np.array(labels, np.int64))
        os.replace(tmp, path)
    with np.load(path) as z:
        return SplitEvents(z["t"], z["cell"], z["offsets"], z["durations"], z["labels"])


def bin_windows(ev: SplitEvents, index: np.ndarray, start: np.ndarray, end: np.ndarray,
                n_bins: int = 8) -> np.ndarray:
    """uint16 counts (len(index), 2 n_bins, 32, 32) of gestures ``index`` over the
    windows [start, end) µs since each one's t0 (counts saturate at 65535)."""
    out = np.zeros((len(index), n_bins * CELLS), np.int64)
    for row, (g, a, b) in enumerate(zip(index, start, end)):
        lo, hi = ev.offsets[g], ev.offsets[g + 1]
        t = ev.t[lo:hi].astype(np.int64)
        keep = (t >= a) & (t < b)
        k = (t[keep] - int(a)) * n_bins // max(int(b) - int(a), 1)
        out[row] = np.bincount(k * CELLS + ev.cell[lo:hi][keep], minlength=n_bins * CELLS)
    # (bin, p, y, x) -> channel 2 bin + p: the cell index already has p above the row
    return np.minimum(out, 65535).astype(np.uint16).reshape(len(index), 2 * n_bins, 32, 32)


def to_int8(counts: np.ndarray) -> np.ndarray:
    """The int8 input code of counts (the baseline's log2(1 + count) x 32 - 128)."""
    return _LUT[counts]


def to_float(counts: np.ndarray) -> np.ndarray:
    """The real value of the int8 input (what the float model sees): log2(1 + count) on a 1/32 grid."""
    return ((_LUT[counts].astype(np.float32) - INPUT_ZERO_POINT) * INPUT_SCALE).astype(np.float32)
