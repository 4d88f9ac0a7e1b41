# SPDX-License-Identifier: MIT
"""pysg events <-> tonic structured arrays (pysg.io.tonic), tonic transforms against pysg's
own operations on a real recording, and tonic datasets feeding `pysg train` / `eval`
(pysg.datasets.tonic_adapter) through tonic's own DVSGesture class on a tree written in
its on-disk layout (tests/support/tonic_tree.py); nothing is downloaded."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

tonic = pytest.importorskip("tonic")

from pysg.cli import main  # noqa: E402
from pysg.datasets.gesture import GestureDataset  # noqa: E402
from pysg.datasets.tonic_adapter import (TonicSamples, TonicSpecError, open_tonic,  # noqa: E402
                                         parse_tonic_spec)
from pysg.events import EVENT_DTYPE  # noqa: E402
from pysg.io import read_events  # noqa: E402
from pysg.io.tonic import (TONIC_DTYPE, TonicEventsError, from_tonic, sensor_size_from_tonic,  # noqa: E402
                           sensor_size_to_tonic, to_tonic)
from pysg.jobs import evaluate  # noqa: E402
from pysg.preprocess import crop, downsample  # noqa: E402
from tests.support.tonic_tree import write_dvsgesture_tree  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "pysg" / "data" / "samples"
BUNDLED = ROOT / "pysg" / "data" / "gesture_model.npz"


# ---------------------------------------------------------------- arrays


def test_dtype_is_tonics():
    assert TONIC_DTYPE == tonic.io.events_struct
    assert sensor_size_to_tonic((128, 128)) == tonic.datasets.DVSGesture.sensor_size
    assert sensor_size_from_tonic(tonic.datasets.DVSGesture.sensor_size) == (128, 128)
    with pytest.raises(TonicEventsError, match="2-D sensor"):
        sensor_size_from_tonic(tonic.datasets.SHD.sensor_size[:2])


@pytest.mark.parametrize("name", ["davis346.aedat4", "evt3.raw"])
def test_round_trip_exact_on_real_recordings(real_data, name):
    ev = read_events(real_data / name).events
    for dtype in (TONIC_DTYPE, tonic.datasets.DVSGesture.dtype, tonic.datasets.NMNIST.dtype):
        t = to_tonic(ev, dtype)
        assert t.dtype == dtype and t.dtype.names == np.dtype(dtype).names
        for f in "xyt":
            assert np.array_equal(t[f].astype(np.int64), ev[f].astype(np.int64))
        assert np.array_equal(t["p"].astype(np.int64), ev["p"].astype(np.int64))
        back = from_tonic(t)
        assert back.dtype == EVENT_DTYPE and np.array_equal(back, ev)


def test_conversions_refuse_what_does_not_fit():
    ev = np.zeros(3, EVENT_DTYPE)
    ev["x"] = [0, 40000, 1]
    with pytest.raises(TonicEventsError, match="'x' spans 0..40000"):
        to_tonic(ev)
    ev["x"], ev["p"] = 0, [0, 1, 2]
    with pytest.raises(TonicEventsError, match="polarity 2"):
        to_tonic(ev)
    arr = np.zeros(2, tonic.datasets.SHD.dtype)
    with pytest.raises(TonicEventsError, match="'y' missing"):
        from_tonic(arr)
    arr = np.zeros(4, tonic.datasets.NMNIST.dtype)
    arr["p"] = [-1, 1, 1, -1]
    arr["t"] = [1, 2, 3, 4]
    got = from_tonic(arr, us_per_unit=1000)
    assert got["p"].tolist() == [0, 1, 1, 0] and got["t"].tolist() == [1000, 2000, 3000, 4000]
    arr["p"] = [0, 3, 1, 0]
    with pytest.raises(TonicEventsError, match="polarity values"):
        from_tonic(arr)


# ---------------------------------------------------------------- transforms


def test_tonic_transforms_equal_pysg_operations_on_a_real_recording(real_data):
    """tonic's CenterCrop and Downsample (a power-of-two factor: tonic multiplies by the
    factor and truncates) are pysg's crop and downsample."""
    ev = read_events(real_data / "davis346.aedat4").events
    size = sensor_size_to_tonic((346, 260))
    t = to_tonic(ev, tonic.datasets.DVSGesture.dtype)
    got = from_tonic(tonic.transforms.CenterCrop(sensor_size=size, size=(128, 128))(t))
    want = crop(ev, (346 - 128) // 2, (260 - 128) // 2, 128, 128)
    assert 0 < len(want) < len(ev) and np.array_equal(got, want)
    for factor in (2, 4):
        got = from_tonic(tonic.transforms.Downsample(spatial_factor=1 / factor)(t))
        assert np.array_equal(got, downsample(ev, factor))
    composed = tonic.transforms.Compose([tonic.transforms.CenterCrop(sensor_size=size, size=(256, 256)),
                                         tonic.transforms.Downsample(spatial_factor=0.5)])
    assert np.array_equal(from_tonic(composed(t)), downsample(crop(ev, 45, 2, 256, 256), 2))


# ---------------------------------------------------------------- datasets


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The bundled gestures (cut to 0.12 s) in tonic's DVSGesture layout, both splits."""
    items = list(GestureDataset(SAMPLES, "test"))
    root = tmp_path_factory.mktemp("tonic")
    written = write_dvsgesture_tree(root, {"train": items, "test": items}, copies=10, max_us=120_000)
    return root, written


def test_tonic_dataset_class_reads_the_tree_as_pysg_samples(tree):
    root, written = tree
    ds = tonic.datasets.DVSGesture(str(root), train=False)
    samples = TonicSamples(ds)
    assert len(samples) == len(written["test"]) == 110
    want = {path: (ev, label) for path, ev, label in written["test"]}
    for s in samples:
        ev, label = want[s.source]
        assert s.label == label and np.array_equal(s.events, ev)
        assert s.duration_us == int(ev["t"].max()) + 1
    assert samples.labels().tolist() == [s.label for s in samples]
    assert samples.classes[3] == "right_arm_clockwise"


def test_open_tonic_never_downloads(tmp_path, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("tonic tried to download")

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", no_network)
    with pytest.raises(TonicSpecError, match="not found on disk.*never downloads"):
        open_tonic(f"tonic:DVSGesture:{tmp_path}", "test")


def test_spec_parsing_and_errors(tree):
    root, _ = tree
    name, path, tr = parse_tonic_spec("tonic:DVSGesture:/d/x+Denoise(filter_time=10000)+CenterCrop("
                                      "sensor_size=(128, 128, 2), size=64)")
    assert (name, path) == ("DVSGesture", "/d/x")
    assert tr == [("Denoise", {"filter_time": 10000}), ("CenterCrop", {"sensor_size": (128, 128, 2), "size": 64})]
    for bad, msg in (("tonic:DVSGesture", "tonic:NAME:ROOT"), (f"tonic:NoSuch:{root}", "no dataset 'NoSuch'"),
                     (f"tonic:DVSGesture:{root}+Nope(a=1)", "no transform 'Nope'"),
                     (f"tonic:DVSGesture:{root}+Denoise(__import__('os'))", "Name\\(key=value")):
        with pytest.raises(TonicSpecError, match=msg):
            open_tonic(bad, "test")


def test_eval_from_tonic_equals_eval_of_the_same_samples(tree, capsys):
    root, written = tree
    assert main(["eval", str(BUNDLED), f"tonic:DVSGesture:{root}", "--engine", "float", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["n"] == 110 and got["events_in"] == sum(len(ev) for _, ev, _ in written["test"])
    # the truth: the events written, as pysg samples built by hand, through the same model
    ds = TonicSamples(tonic.datasets.DVSGesture(str(root), train=False))
    order = [s.source for s in ds]
    by_path = {p: (ev, label) for p, ev, label in written["test"]}
    from pysg.datasets.gesture import Sample

    hand = [Sample(events=by_path[p][0], label=by_path[p][1], t_start=0, t_end=0,
                   duration_us=int(by_path[p][0]["t"].max()) + 1, source=p, user="", lighting="") for p in order]
    want = evaluate(BUNDLED, hand, engine="float")
    assert [r["prediction_index"] for r in got["samples"]] == [r.prediction for r in want.samples]
    assert got["accuracy"] == pytest.approx(want.summary["accuracy"])


def test_eval_with_a_tonic_transform_sees_tonics_events(tree, capsys):
    """Denoise runs inside tonic (its own code): the events eval counts are those tonic kept."""
    root, written = tree
    spec = f"tonic:DVSGesture:{root}+Denoise(filter_time=5000)"
    assert main(["eval", str(BUNDLED), spec, "--engine", "float", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    denoise = tonic.transforms.Denoise(filter_time=5000)
    ds = tonic.datasets.DVSGesture(str(root), train=False)
    kept = sum(len(denoise(ds[i][0])) for i in range(len(ds)))
    assert got["n"] == 110 and got["events_in"] == kept < sum(len(ev) for _, ev, _ in written["test"])


def test_train_from_a_tonic_dataset(tree, tmp_path, capsys):
    root, _ = tree
    out = tmp_path / "m.npz"
    assert main(["--quiet", "train", f"tonic:DVSGesture:{root}", "-o", str(out), "--epochs", "1", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["epochs"] == 1 and out.is_file() and 0.0 <= got["train_accuracy"] <= 1.0
    assert main(["eval", str(out), f"tonic:DVSGesture:{root}", "--engine", "float", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 110


def test_cli_bad_tonic_spec_is_one_line(tmp_path, capsys):
    assert main(["eval", str(BUNDLED), f"tonic:DVSGesture:{tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "never downloads" in err[0]


def test_without_tonic_a_spec_is_one_line_naming_the_extra(tmp_path):
    import subprocess
    import sys

    code = (f"import sys; sys.modules['tonic'] = None\nfrom pysg.cli import main\n"
            f"sys.exit(main(['eval', {str(BUNDLED)!r}, 'tonic:DVSGesture:{tmp_path}']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and 'pip install "pysg[tonic]"' in r.stderr


@pytest.mark.parametrize("transform", ["CenterCrop(sensor_size=(128, 128, 2), size=64)",
                                       "Downsample(spatial_factor=0.5)"])
def test_geometry_transforms_then_the_sensor_mapping(tree, transform):
    """A transform that shrinks the sensor to 64x64 is placed centred on a 128x128 model
    (docs/ARCHITECTURE.md: offset (128 - 64) // 2 = 32): by hand from the events written."""
    root, written = tree
    samples = open_tonic(f"tonic:DVSGesture:{root}+{transform}", "test", sensor=(128, 128))
    assert samples.recording_size == (64, 64)
    by_path = {p: ev for p, ev, _ in written["test"]}
    for s in samples[:22]:
        ev = by_path[s.source]
        if transform.startswith("CenterCrop"):  # crop -32, placement +32: the central window, unchanged
            x, y = ev["x"].astype(int), ev["y"].astype(int)
            want = ev[(x >= 32) & (x < 96) & (y >= 32) & (y < 96)].copy()
        else:
            want = ev.copy()
            want["x"] = ev["x"] // 2 + 32
            want["y"] = ev["y"] // 2 + 32
        want["t"] -= want["t"][0]
        assert np.array_equal(s.events, want)
