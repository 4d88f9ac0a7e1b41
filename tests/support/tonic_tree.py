# SPDX-License-Identifier: MIT
"""A DVS128 Gesture tree in tonic's on-disk layout (tonic 1.7, tonic.datasets.DVSGesture),
written by hand from pysg samples, so tests open it with tonic's own dataset class and
nothing is ever downloaded:

    SAVE_TO/DVSGesture/ibmGestureTrain.tar.gz         (tonic checks it exists)
    SAVE_TO/DVSGesture/ibmGestureTrain/userNN_<lighting>/<class>.npy
    SAVE_TO/DVSGesture/ibmGestureTest.tar.gz
    SAVE_TO/DVSGesture/ibmGestureTest/userNN_<lighting>/<class>.npy

Each .npy is an (N, 4) integer array of columns x, y, p, t with t in milliseconds (tonic's
preprocessed release; DVSGesture.__getitem__ multiplies t by 1000). tonic finds the split
only when its folder holds at least 100 .npy files, hence `copies` user folders.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pysg.datasets.gesture import Sample
from pysg.events import EVENT_DTYPE

FOLDERS = {"train": "ibmGestureTrain", "test": "ibmGestureTest"}


def write_dvsgesture_tree(save_to: Path, samples: dict[str, list[Sample]], *, copies: int = 10,
                          max_us: int | None = None) -> dict[str, list[tuple[str, np.ndarray, int]]]:
    """Write the splits; returns per split [(npy path, the pysg events tonic should give,
    with t from the sample's first event, label)] in no particular order."""
    root = Path(save_to) / "DVSGesture"
    written: dict[str, list] = {}
    for split, items in samples.items():
        folder = root / FOLDERS[split]
        (root / f"{FOLDERS[split]}.tar.gz").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{FOLDERS[split]}.tar.gz").write_bytes(b"")
        out = []
        for c in range(copies):
            user = folder / f"user{c + 1:02d}_fluorescent"
            user.mkdir(parents=True, exist_ok=True)
            for s in items:
                ev = s.events if max_us is None else s.events[s.events["t"] < max_us]
                ms = ev["t"] // 1000
                arr = np.stack([ev["x"].astype(np.int64), ev["y"].astype(np.int64), ev["p"].astype(np.int64),
                                ms.astype(np.int64)], axis=1)
                path = user / f"{s.label}.npy"
                if path.exists():
                    raise ValueError(f"class {s.label} twice in one recording: one file per class in tonic's layout")
                np.save(path, arr)
                want = np.empty(len(ev), EVENT_DTYPE)
                want["x"], want["y"], want["p"] = ev["x"], ev["y"], ev["p"]
                want["t"] = ms * 1000 - (int(ms.min()) * 1000 if len(ms) else 0)
                order = np.argsort(want["t"], kind="stable")
                out.append((str(path), want[order], s.label))
        written[split] = out
    return written
