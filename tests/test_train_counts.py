# SPDX-License-Identifier: MIT
"""`pysg train` (and `pysg plot raster`) maps its split's recordings onto the network's sensor as every other
command does and reports events_in / events_dropped (issue 13): on a dataset recorded
on a 160x128 sensor, the default mapping is the centred 128x128 window x in [16, 144)
(docs/ARCHITECTURE.md), so the events added outside it are exactly the dropped ones,
and events_in is every event inside the train split's labelled gestures, counted here
from the files and their label CSVs."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pysg.cli import main
from pysg.datasets.gesture import read_labels_csv
from pysg.io import read_events
from pysg.io.aedat31 import write_aedat31


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A tiny synthetic dataset moved onto a 160x128 sensor (x + 16), with 3 % extra
    events in the 16-pixel margins on either side; returns (folder, expected events_in,
    expected events_dropped) of its train split."""
    root = tmp_path_factory.mktemp("wide")
    data = root / "data"
    assert main(["--quiet", "synth", str(data), "--train-users", "1", "--test-users", "1",
                 "--lightings-per-user", "1", "--seconds", "0.6", "--workers", "1"]) == 0
    wide = root / "wide"
    shutil.copytree(data, wide)
    rng = np.random.default_rng(0)
    train = (wide / "trials_to_train.txt").read_text().split()
    want_in = want_dropped = 0
    for name in [p.name for p in data.glob("*.aedat")]:
        ev = read_events(data / name).events
        moved = ev.copy()
        moved["x"] = moved["x"] + 16
        extra = ev[rng.random(len(ev)) < 0.03].copy()   # margins: x in [0, 16) or [144, 160)
        extra["x"] = np.where(rng.random(len(extra)) < 0.5, extra["x"] % 16, 144 + extra["x"] % 16)
        out = np.concatenate([moved, extra])
        out = out[np.argsort(out["t"], kind="stable")]
        write_aedat31(wide / name, out, width=160, height=128)
        if name in train:
            labels = read_labels_csv(wide / name.replace(".aedat", "_labels.csv"))
            for row in labels:
                inside = (out["t"] >= row["t_start"]) & (out["t"] < row["t_end"])
                want_in += int(inside.sum())
                want_dropped += int((inside & ((out["x"] < 16) | (out["x"] >= 144))).sum())
    assert want_dropped > 0
    return wide, want_in, want_dropped


def test_train_reports_what_the_mapping_kept(wide, tmp_path, capsys):
    folder, want_in, want_dropped = wide
    assert main(["train", str(folder), "-o", str(tmp_path / "m.npz"), "--epochs", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["events_in"], out["events_dropped"]) == (want_in, want_dropped)
    m = out["mapping"]
    assert m["recording"] == [160, 128] and m["sensor"] == [128, 128]
    assert m["crop"] == [16, 0, 128, 128] and m["downsample"] == 1


def test_train_text_ends_with_the_counts(wide, tmp_path, capsys):
    folder, want_in, want_dropped = wide
    assert main(["train", str(folder), "-o", str(tmp_path / "m.npz"), "--epochs", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.endswith(f"; {want_in} events in, {want_dropped} dropped"), last


def test_plot_raster_and_events_report_the_counts(wide, tmp_path, capsys):
    from pysg.datasets.gesture import GestureDataset

    folder, _, _ = wide
    model = tmp_path / "m.npz"
    assert main(["--quiet", "train", str(folder), "-o", str(model), "--epochs", "1"]) == 0
    capsys.readouterr()
    s = GestureDataset(folder, "test")[0]              # the sample both plots show
    ev = read_events(s.source).events
    inside = (ev["t"] >= s.t_start) & (ev["t"] < s.t_end)
    want_in, want_dropped = int(inside.sum()), int((inside & ((ev["x"] < 16) | (ev["x"] >= 144))).sum())
    assert want_dropped > 0
    png = tmp_path / "r.png"
    assert main(["plot", "raster", str(folder), "--model", str(model), "-o", str(png)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {png} ({want_in} events in, {want_dropped} dropped)"
    assert main(["plot", "events", str(folder), "-o", str(png)]) == 0  # its own size: nothing dropped
    assert capsys.readouterr().out.strip() == f"wrote {png} ({want_in} events in, 0 dropped)"
