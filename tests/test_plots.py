# SPDX-License-Identifier: MIT
"""Plots a person can read: 11 classes in 11 colours, legends beside the data, event
frames with axes, a polarity legend and the events where they happened, from one
recording file as well as from a dataset folder."""
from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np

from pysg import plots
from pysg.events import make_events
from pysg.io.aedat4 import write_aedat4


def test_eleven_classes_get_eleven_colours():
    colours = {mcolors.to_hex(plots.class_style(c)["color"]) for c in range(11)}
    assert len(colours) == 11
    assert plots.class_style(11)["linestyle"] == "--"  # a 12th class is told apart by its line


def test_event_frames_of_one_recording(tmp_path):
    # one ON event at (x=10, y=20) and one OFF at (x=300, y=5) in the first 50 ms, on a 346x260 sensor
    ev = make_events([10, 300, 0], [20, 5, 0], [1_000, 2_000, 900_000], [1, 0, 1])
    path = tmp_path / "r.aedat4"
    write_aedat4(path, ev, width=346, height=260)
    fig = plots.event_strip_figure(path, frames=4)
    try:
        first = fig.axes[0]
        img = first.images[0].get_array()
        assert img.shape[:2] == (260, 346)  # the file's sensor, not 128x128
        assert tuple(img[20, 10]) == plots.ON_COLOUR and tuple(img[5, 300]) == plots.OFF_COLOUR
        assert np.all(img[100, 100] == 1.0)
        assert first.get_xlabel() == "x (pixel)" and first.get_ylabel() == "y (pixel)"
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert labels == ["ON", "OFF"] and fig.legends[0].get_title().get_text() == "polarity"
        assert "r.aedat4" in fig._suptitle.get_text()
    finally:
        plots._pyplot().close(fig)


def test_history_legend_does_not_cover_the_curves():
    fig = plots.history_figure({"epoch": [1, 2, 3], "loss": [1.0, 0.5, 0.3], "train_accuracy": [0.5, 0.8, 0.9],
                                "val_accuracy": [0.4, 0.7, 0.85]})
    try:
        fig.canvas.draw()
        ax = fig.axes[1]
        legend = ax.get_legend().get_window_extent()
        assert legend.x0 >= ax.get_window_extent().x1  # entirely to the right of the axes
        assert all(float(t).is_integer() for t in ax.get_xticks())
    finally:
        plots._pyplot().close(fig)


def test_onset_curves_draw_the_rows_given():
    rows = [{"ms": 100.0, "accuracy": 0.25}, {"ms": 300.0, "accuracy": 0.5}, {"ms": 1000.0, "accuracy": 0.75}]
    fig = plots.onset_figure({"sg": {"at_onset": rows, "accuracy": 0.8},
                              "cnn": {"at_onset": rows[:2], "accuracy": None}}, title="t")
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        curves = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
        assert [list(ln.get_xdata()) for ln in curves] == [[100.0, 300.0, 1000.0], [100.0, 300.0]]
        assert [list(ln.get_ydata()) for ln in curves] == [[25.0, 50.0, 75.0], [25.0, 50.0]]
        finals = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
        assert len(finals) == 1 and finals[0].get_ydata()[0] == 80.0 and finals[0].get_color() == curves[0].get_color()
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["sg", "cnn"]
        assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1
    finally:
        plots._pyplot().close(fig)
