# SPDX-License-Identifier: MIT
"""DVS128 Gesture folder layout: labels CSV, trials lists, GestureDataset."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

import pysg.datasets.gesture as gesture
from pysg.datasets.gesture import (GESTURE_CLASSES, LIGHTINGS, GestureDataset, Sample, labels_name,
                                   parse_trial_name, read_labels_csv, read_trials, write_labels_csv,
                                   write_trials)
from pysg.events import EventFileError, make_events
from pysg.io.aedat31 import read_aedat31_header, write_aedat31

START = dt.datetime(2017, 5, 4, 14, 7, 20)


def test_class_names_and_lightings():
    assert len(GESTURE_CLASSES) == 11
    assert GESTURE_CLASSES[0] == "hand_clapping"
    assert GESTURE_CLASSES[4] == "right_arm_counter_clockwise"
    assert GESTURE_CLASSES[7] == "arm_roll"
    assert GESTURE_CLASSES[10] == "other"
    assert LIGHTINGS == ("fluorescent", "fluorescent_led", "lab", "led", "natural")


# --------------------------------------------------------------------------- #
# Labels CSV
# --------------------------------------------------------------------------- #
def test_labels_round_trip_with_repeats_and_overlaps(tmp_path):
    rows = [(1, 80048239, 85092709), (2, 89431170, 95231007), (1, 90000000, 99000000), (11, 5, 6)]
    path = tmp_path / "user01_lab_labels.csv"
    write_labels_csv(path, rows)
    assert path.read_bytes().startswith(b"class,startTime_usec,endTime_usec\r\n1,80048239,85092709\r\n")
    got = read_labels_csv(path)
    assert got.dtype.names == ("cls", "t_start", "t_end")
    assert got["t_start"].dtype == np.int64 and got["t_end"].dtype == np.int64
    assert [tuple(int(v) for v in r) for r in got] == rows


def test_labels_tolerate_blank_lines_and_spaces(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("class,startTime_usec,endTime_usec\n\n3, 10 ,20\n  \n4,20,30  \n\n")
    got = read_labels_csv(path)
    assert got.tolist() == [(3, 10, 20), (4, 20, 30)]


@pytest.mark.parametrize("text, line, match", [
    ("", "line 1", "empty file"),
    ("cls,start,end\n1,2,3\n", "line 1", "expected header"),
    ("class,startTime_usec,endTime_usec\n1,2,3\n1,2\n", "line 3", "3 comma-separated"),
    ("class,startTime_usec,endTime_usec\n1,2,3,4\n", "line 2", "3 comma-separated"),
    ("class,startTime_usec,endTime_usec\n1,2,3\n\n1,2.5,3\n", "line 4", "integers"),
    ("class,startTime_usec,endTime_usec\nfoo,2,3\n", "line 2", "integers"),
    ("class,startTime_usec,endTime_usec\n0,2,3\n", "line 2", "class 0"),
    ("class,startTime_usec,endTime_usec\n12,2,3\n", "line 2", "class 12"),
    ("class,startTime_usec,endTime_usec\n1,5,5\n", "line 2", "not after"),
    ("class,startTime_usec,endTime_usec\n1,6,5\n", "line 2", "not after"),
    ("class,startTime_usec,endTime_usec\n1,-6,5\n", "line 2", "negative"),
])
def test_labels_errors_name_the_line(tmp_path, text, line, match):
    path = tmp_path / "bad_labels.csv"
    path.write_text(text)
    with pytest.raises(EventFileError, match=match) as info:
        read_labels_csv(path)
    assert info.value.where == line
    assert str(path) in str(info.value)


def test_labels_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_labels_csv(tmp_path / "none.csv")


@pytest.mark.parametrize("rows", [[(0, 1, 2)], [(12, 1, 2)], [(1, 2, 2)], [(1, -1, 2)]])
def test_write_labels_rejects(tmp_path, rows):
    with pytest.raises(ValueError):
        write_labels_csv(tmp_path / "x.csv", rows)


# --------------------------------------------------------------------------- #
# Trials lists
# --------------------------------------------------------------------------- #
def test_trial_names():
    assert parse_trial_name("user01_fluorescent_led.aedat") == ("user01", "fluorescent_led")
    assert labels_name("user29_natural.aedat") == "user29_natural_labels.csv"
    for bad in ("user01_sunny.aedat", "user01_lab.aedat4", "bob_lab.aedat", "user01_lab"):
        with pytest.raises(ValueError):
            parse_trial_name(bad)


def test_trials_round_trip(tmp_path):
    train = ["user01_fluorescent.aedat", "user01_led.aedat"]
    test = ["user02_natural.aedat"]
    for name in train + test:
        (tmp_path / name).write_bytes(b"")
    write_trials(tmp_path, train, test)
    assert (tmp_path / "trials_to_train.txt").read_text() == "user01_fluorescent.aedat\nuser01_led.aedat\n"
    assert read_trials(tmp_path, "train") == train
    assert read_trials(tmp_path, "test") == test


def test_trials_tolerate_blank_lines_and_whitespace(tmp_path):
    (tmp_path / "user01_lab.aedat").write_bytes(b"")
    (tmp_path / "user02_led.aedat").write_bytes(b"")
    (tmp_path / "trials_to_test.txt").write_bytes(b"user01_lab.aedat  \r\n\r\n  user02_led.aedat\t\n\n\n")
    assert read_trials(tmp_path, "test") == ["user01_lab.aedat", "user02_led.aedat"]


def test_trials_missing_recording_names_both_files(tmp_path):
    (tmp_path / "trials_to_train.txt").write_text("user03_lab.aedat\n")
    with pytest.raises(FileNotFoundError) as info:
        read_trials(tmp_path, "train")
    assert "user03_lab.aedat" in str(info.value) and "trials_to_train.txt" in str(info.value)


def test_trials_bad_name_and_split(tmp_path):
    (tmp_path / "trials_to_train.txt").write_text("user01_lab.aedat\nnotes.txt\n")
    (tmp_path / "user01_lab.aedat").write_bytes(b"")
    with pytest.raises(EventFileError) as info:
        read_trials(tmp_path, "train")
    assert info.value.where == "line 2"
    with pytest.raises(ValueError, match="split"):
        read_trials(tmp_path, "validation")
    with pytest.raises(FileNotFoundError):
        read_trials(tmp_path, "test")
    with pytest.raises(ValueError):
        write_trials(tmp_path, "user01_lab.aedat", [])


# --------------------------------------------------------------------------- #
# GestureDataset on a tiny hand-made folder
# --------------------------------------------------------------------------- #
USERS = ("user01", "user02")
TINY_LIGHTINGS = ("fluorescent", "led")


def recording(k: int) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Events and 3 labelled intervals for recording number k.

    Events sit at every 10 µs from base to base + 1000 with x = (i % 128),
    so the slicing boundaries are known. One recording starts past 2^31 µs
    (TSOverflow 1). Intervals: a repeat of class 1, an overlap, and one whose
    bounds fall exactly on events.
    """
    base = 2**31 - 300 if k == 3 else 1_000_000 * (k + 1)
    i = np.arange(101)
    t = base + 10 * i
    ev = make_events(i % 128, (i * 7) % 128, t, i % 2)
    cls = [1 + k, 1, 11 - k]
    rows = [(cls[0], base + 100, base + 200),      # events 10..19
            (cls[1], base + 150, base + 305),      # overlaps; events 15..30
            (cls[2], base + 995, base + 2000)]     # events 100; ends after the recording
    return ev, rows


@pytest.fixture
def tiny_root(tmp_path):
    names = []
    for u, user in enumerate(USERS):
        for lighting in TINY_LIGHTINGS:
            k = 2 * u + TINY_LIGHTINGS.index(lighting)
            name = f"{user}_{lighting}.aedat"
            ev, rows = recording(k)
            write_aedat31(tmp_path / name, ev, packet_events=16, start_time=START)
            write_labels_csv(tmp_path / labels_name(name), rows)
            names.append(name)
    write_trials(tmp_path, names[:2], names[2:])
    return tmp_path


def expected_samples(k: int) -> list[tuple[int, np.ndarray]]:
    ev, rows = recording(k)
    out = []
    for cls, a, b in rows:
        sel = ev[(ev["t"] >= a) & (ev["t"] < b)].copy()
        sel["t"] -= a
        out.append((cls - 1, sel))
    return out


def test_dataset_slices_and_labels(tiny_root):
    for split, recordings, user in (("train", (0, 1), "user01"), ("test", (2, 3), "user02")):
        ds = GestureDataset(tiny_root, split)
        assert len(ds) == 6
        want = [(k, s) for k in recordings for s in expected_samples(k)]
        for sample, (k, (label, events)) in zip(ds, want):
            assert isinstance(sample, Sample)
            _, rows = recording(k)
            assert sample.label == label
            np.testing.assert_array_equal(sample.events, events)
            assert sample.user == user
            assert sample.lighting == TINY_LIGHTINGS[k % 2]
            assert sample.source == str(tiny_root / f"{user}_{TINY_LIGHTINGS[k % 2]}.aedat")
            assert sample.duration_us == sample.t_end - sample.t_start
            assert (sample.t_start, sample.t_end) in [(a, b) for _, a, b in rows]
            assert np.all((sample.events["t"] >= 0) & (sample.events["t"] < sample.duration_us))
        np.testing.assert_array_equal(ds.labels(), [label for _, (label, _) in want])


def test_dataset_boundaries(tiny_root):
    ds = GestureDataset(tiny_root, "train")
    first = ds[0]  # interval [base + 100, base + 200): event at +100 in, +200 out
    assert first.events["t"].tolist() == list(range(0, 100, 10))
    assert first.events["x"].tolist() == list(range(10, 20))
    overlap = ds[1]
    assert overlap.events["x"].tolist() == list(range(15, 31))
    assert overlap.events["t"][0] == 0 and overlap.events["t"][-1] == 150
    last = ds[2]  # starts at base + 995, one event at base + 1000
    assert last.events["t"].tolist() == [5]
    assert ds[-1].t_start == ds[5].t_start
    assert [s.label for s in ds[1:3]] == [0, 10]
    with pytest.raises(IndexError):
        ds[6]
    with pytest.raises(TypeError):
        ds["0"]


def test_dataset_overflow_recording(tiny_root):
    ds = GestureDataset(tiny_root, "test")
    sample = ds[3]  # recording 3 crosses 2^31 µs
    assert sample.t_start == 2**31 - 200
    assert sample.events["t"].tolist() == list(range(0, 100, 10))


def test_dataset_reads_each_file_once(tiny_root, monkeypatch):
    calls = []
    real = gesture.read_aedat31

    def counting(path, **kwargs):
        calls.append(str(path))
        return real(path, **kwargs)

    monkeypatch.setattr(gesture, "read_aedat31", counting)
    ds = GestureDataset(tiny_root, "train", cache_files=1)
    assert calls == []  # lazy
    assert len(list(ds)) == 6
    assert len(calls) == 2 and len(set(calls)) == 2


def test_dataset_sorts_unsorted_recordings(tiny_root):
    """cAER files are normally sorted; if not, slicing must still be right."""
    name = "user01_fluorescent.aedat"
    ev, rows = recording(0)
    late, early = ev[50:], ev[:50]
    path = tiny_root / name
    write_aedat31(path, late, start_time=START)
    raw_late = path.read_bytes()
    write_aedat31(path, early, start_time=START)
    data_offset = read_aedat31_header(path)["data_offset"]
    path.write_bytes(raw_late + path.read_bytes()[data_offset:])
    ds = GestureDataset(tiny_root, "train")
    for sample, (label, events) in zip(ds, expected_samples(0)):
        assert sample.label == label
        np.testing.assert_array_equal(sample.events, events)


def test_dataset_missing_labels_and_bad_args(tiny_root):
    (tiny_root / "user02_led_labels.csv").unlink()
    with pytest.raises(FileNotFoundError, match="user02_led_labels.csv"):
        GestureDataset(tiny_root, "test")
    with pytest.raises(ValueError):
        GestureDataset(tiny_root, "val")
    with pytest.raises(ValueError):
        GestureDataset(tiny_root, "train", cache_files=0)
