# SPDX-License-Identifier: MIT
"""The bundled recording (pysg/data/samples: one DVS128 Gesture layout recording with
its labels) cut into its labelled gestures."""
from __future__ import annotations

import numpy as np

from pysg.datasets.binning import bin_events
from pysg.datasets.gesture import read_labels_csv
from pysg.io import read_events
from pysg.recipes import BUNDLED_SAMPLES

RECORDING = BUNDLED_SAMPLES / "user01_fluorescent.aedat"
LABELS = BUNDLED_SAMPLES / "user01_fluorescent_labels.csv"


def gesture_frames(model, n: int) -> list[tuple[np.ndarray, int, float]]:
    """(frames, events, seconds) of the first n gestures of the bundled recording, each
    binned from its own start as ``model`` (an .sgm model: dt, sensor, channels) bins."""
    events = read_events(RECORDING).events
    out = []
    for row in read_labels_csv(LABELS)[:n]:
        ev = events[(events["t"] >= row["t_start"]) & (events["t"] < row["t_end"])].copy()
        ev["t"] -= row["t_start"]
        dur = int(row["t_end"] - row["t_start"])
        frames = bin_events(ev, duration_us=dur, dt_us=model.dt_us, sensor_size=model.sensor_size,
                            downsample=model.downsample, channels=model.input_shape[0])
        out.append((frames, len(ev), dur / 1e6))
    return out
