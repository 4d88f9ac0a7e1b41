# SPDX-License-Identifier: MIT
"""The DVS128 Gesture dataset folder layout.

A dataset root holds, unchanged from the published archive::

    trials_to_train.txt          one recording per line: userNN_<lighting>.aedat
    trials_to_test.txt
    user01_fluorescent.aedat     AEDAT 3.1 recording (see pysg.io.aedat31)
    user01_fluorescent_labels.csv
    ...

A labels file is ``class,startTime_usec,endTime_usec`` then one row per
gesture: class 1..11 (see GESTURE_CLASSES) and the interval [start, end) in µs
on the same clock as the events. A class may repeat within a file and
intervals may overlap.
"""
from __future__ import annotations

import errno
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from pysg.events import EventFileError
from pysg.io.aedat31 import read_aedat31

__all__ = [
    "GESTURE_CLASSES", "MIRRORED_CLASSES", "mirror_labels", "LIGHTINGS", "LABEL_DTYPE", "LABELS_HEADER", "TRIALS_FILES",
    "read_labels_csv", "write_labels_csv", "parse_trial_name", "labels_name", "write_trials", "read_trials",
    "Sample", "GestureDataset",
]

#: Class names in the official order: label i is class i + 1 of the CSV files.
GESTURE_CLASSES: tuple[str, ...] = (
    "hand_clapping",
    "right_hand_wave",
    "left_hand_wave",
    "right_arm_clockwise",
    "right_arm_counter_clockwise",
    "left_arm_clockwise",
    "left_arm_counter_clockwise",
    "arm_roll",
    "air_drums",
    "air_guitar",
    "other",
)
#: What each class looks like in a left-right mirror image: the other arm, and a circle's
#: sense reversed (clockwise in the image becomes counter-clockwise); the rest map to
#: themselves (a mirrored air guitarist plays left-handed, a mirrored roll turns the other way).
MIRRORED_CLASSES: dict[str, str] = {
    "right_hand_wave": "left_hand_wave",
    "left_hand_wave": "right_hand_wave",
    "right_arm_clockwise": "left_arm_counter_clockwise",
    "left_arm_counter_clockwise": "right_arm_clockwise",
    "right_arm_counter_clockwise": "left_arm_clockwise",
    "left_arm_clockwise": "right_arm_counter_clockwise",
}


def mirror_labels(classes) -> list[int] | None:
    """The label of each class's mirror image, for a list of class names; None when a
    class's mirror is unknown (a name outside GESTURE_CLASSES) or missing from the list."""
    classes = list(classes)
    if not set(classes) <= set(GESTURE_CLASSES):
        return None
    try:
        return [classes.index(MIRRORED_CLASSES.get(c, c)) for c in classes]
    except ValueError:
        return None


LIGHTINGS: tuple[str, ...] = ("fluorescent", "fluorescent_led", "lab", "led", "natural")

LABEL_DTYPE = np.dtype([("cls", "<i4"), ("t_start", "<i8"), ("t_end", "<i8")])
LABELS_HEADER = "class,startTime_usec,endTime_usec"
TRIALS_FILES = {"train": "trials_to_train.txt", "test": "trials_to_test.txt"}

_TRIAL_RE = re.compile(r"^(user\d+)_([a-z_]+)\.aedat$")


# --------------------------------------------------------------------------- #
# Labels
# --------------------------------------------------------------------------- #
def read_labels_csv(path: str | os.PathLike) -> np.ndarray:
    """Read a ``userNN_<lighting>_labels.csv`` file.

    Returns a LABEL_DTYPE array (``cls`` 1..11, ``t_start``, ``t_end`` µs) in
    file order. Blank lines are ignored. Raises FileNotFoundError, or
    EventFileError naming the line of a bad header, a wrong column count, a
    non-integer, a class outside 1..11 or an interval with end <= start.
    """
    path = os.fspath(path)
    with open(path, "r", encoding="utf-8", newline="") as f:
        text = f.read()
    rows: list[tuple[int, int, int]] = []
    header_seen = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        where = f"line {number}"
        if not header_seen:
            if line.lstrip("\ufeff") != LABELS_HEADER:
                raise EventFileError(path, where, f"expected header {LABELS_HEADER!r}, found {line[:60]!r}")
            header_seen = True
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != 3:
            raise EventFileError(path, where, f"expected 3 comma-separated values, found {len(cells)}: {line[:60]!r}")
        try:
            cls, start, end = (int(c, 10) for c in cells)
        except ValueError:
            raise EventFileError(path, where, f"values must be integers: {line[:60]!r}") from None
        if not 1 <= cls <= len(GESTURE_CLASSES):
            raise EventFileError(path, where, f"class {cls} outside 1..{len(GESTURE_CLASSES)}")
        if start < 0:
            raise EventFileError(path, where, f"negative start time {start}")
        if end <= start:
            raise EventFileError(path, where, f"end time {end} is not after start time {start}")
        rows.append((cls, start, end))
    if not header_seen:
        raise EventFileError(path, "line 1", f"empty file, expected header {LABELS_HEADER!r}")
    return np.array(rows, dtype=LABEL_DTYPE)


def write_labels_csv(path: str | os.PathLike, rows: Iterable) -> None:
    """Write a labels file from (cls, t_start, t_end) rows or a LABEL_DTYPE
    array; the values are validated as read_labels_csv would (ValueError)."""
    lines = [LABELS_HEADER]
    for i, row in enumerate(rows):
        cls, start, end = (int(v) for v in row)
        if not 1 <= cls <= len(GESTURE_CLASSES):
            raise ValueError(f"write_labels_csv: row {i}: class {cls} outside 1..{len(GESTURE_CLASSES)}")
        if start < 0 or end <= start:
            raise ValueError(f"write_labels_csv: row {i}: bad interval [{start}, {end})")
        lines.append(f"{cls},{start},{end}")
    with open(path, "w", encoding="ascii", newline="") as f:
        f.write("\r\n".join(lines) + "\r\n")


# --------------------------------------------------------------------------- #
# Trials lists
# --------------------------------------------------------------------------- #
def parse_trial_name(name: str) -> tuple[str, str]:
    """Split ``userNN_<lighting>.aedat`` into (``userNN``, lighting); ValueError
    for another name or a lighting not in LIGHTINGS."""
    m = _TRIAL_RE.match(name)
    if m is None or m.group(2) not in LIGHTINGS:
        raise ValueError(f"{name!r} is not a trial name 'userNN_<lighting>.aedat' "
                         f"with lighting one of {', '.join(LIGHTINGS)}")
    return m.group(1), m.group(2)


def labels_name(trial: str) -> str:
    """``userNN_<lighting>.aedat`` -> ``userNN_<lighting>_labels.csv``."""
    parse_trial_name(trial)
    return trial[: -len(".aedat")] + "_labels.csv"


def _trials_file(root: str | os.PathLike, split: str) -> Path:
    if split not in TRIALS_FILES:
        raise ValueError(f"split must be one of {', '.join(TRIALS_FILES)}, got {split!r}")
    return Path(root) / TRIALS_FILES[split]


def write_trials(root: str | os.PathLike, train_names: Sequence[str], test_names: Sequence[str]) -> None:
    """Write ``trials_to_train.txt`` and ``trials_to_test.txt`` under ``root``
    (one trial file name per line, as in the published dataset)."""
    for split, names in (("train", train_names), ("test", test_names)):
        if isinstance(names, str):
            raise ValueError(f"write_trials: {split}_names must be a sequence of names, not a string")
        for name in names:
            parse_trial_name(name)
        with open(_trials_file(root, split), "w", encoding="ascii", newline="") as f:
            f.write("".join(f"{name}\r\n" for name in names))


def read_trials(root: str | os.PathLike, split: str) -> list[str]:
    """Trial file names listed in ``trials_to_<split>.txt`` under ``root``.

    Blank lines and surrounding whitespace are ignored. Raises
    EventFileError naming the line of a malformed name, FileNotFoundError when
    the list or a listed recording is missing.
    """
    trials = _trials_file(root, split)
    with open(trials, "r", encoding="utf-8") as f:
        lines = f.read().splitlines()
    names: list[str] = []
    for number, raw in enumerate(lines, start=1):
        name = raw.strip()
        if not name:
            continue
        try:
            parse_trial_name(name)
        except ValueError as exc:
            raise EventFileError(trials, f"line {number}", str(exc)) from None
        if not (trials.parent / name).is_file():
            raise FileNotFoundError(errno.ENOENT, f"listed in {trials} (line {number}) but not found",
                                    str(trials.parent / name))
        names.append(name)
    return names


# --------------------------------------------------------------------------- #
# Samples
# --------------------------------------------------------------------------- #
@dataclass(frozen=True, eq=False)
class Sample:
    """One labelled gesture.

    ``events`` has ``t`` relative to the interval start (``t - t_start``, so
    0 <= t < duration_us); ``label`` is 0..10 (index into GESTURE_CLASSES);
    ``t_start``/``t_end`` are the absolute interval [t_start, t_end) in µs;
    ``source`` is the recording's path.
    """

    events: np.ndarray
    label: int
    t_start: int
    t_end: int
    duration_us: int
    source: str
    user: str
    lighting: str


class GestureDataset(Sequence[Sample]):
    """The labelled gestures of one split of a DVS128 Gesture folder.

    The labels of every listed recording are read up front (they are small);
    recordings are decoded on first use and the last ``cache_files`` of them
    kept, so iterating in order decodes each file once. Samples follow the
    trials file order, then the labels file order.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", *, cache_files: int = 2):
        if not isinstance(cache_files, int) or cache_files < 1:
            raise ValueError(f"cache_files must be a positive integer, got {cache_files!r}")
        self.root = Path(root)
        self.split = split
        self.files: list[str] = read_trials(self.root, split)
        self._cache_files = cache_files
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        index: list[tuple[int, int, int, int]] = []  # (file, cls, t_start, t_end)
        for k, name in enumerate(self.files):
            labels = read_labels_csv(self.root / labels_name(name))
            index.extend((k, int(r["cls"]), int(r["t_start"]), int(r["t_end"])) for r in labels)
        self._index = index

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int | slice) -> Sample | list[Sample]:  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise TypeError(f"GestureDataset indices must be integers, got {type(i).__name__}")
        n = len(self._index)
        if not -n <= i < n:
            raise IndexError(f"sample {i} out of range for {n} samples")
        k, cls, t_start, t_end = self._index[int(i)]
        name = self.files[k]
        events = self._events(name)
        t = events["t"]
        lo, hi = np.searchsorted(t, [t_start, t_end], side="left")
        ev = events[lo:hi].copy()
        ev["t"] -= t_start
        user, lighting = parse_trial_name(name)
        return Sample(events=ev, label=cls - 1, t_start=t_start, t_end=t_end, duration_us=t_end - t_start,
                      source=str(self.root / name), user=user, lighting=lighting)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def _events(self, name: str) -> np.ndarray:
        """Decoded recording, sorted by t (searchsorted needs it), LRU-cached."""
        if name in self._cache:
            self._cache.move_to_end(name)
            return self._cache[name]
        events = read_aedat31(self.root / name)
        t = events["t"]
        if t.size > 1 and (t[1:] < t[:-1]).any():
            events = events[np.argsort(t, kind="stable")]
        self._cache[name] = events
        while len(self._cache) > self._cache_files:
            self._cache.popitem(last=False)
        return events

    def labels(self) -> np.ndarray:
        """Every sample's label (0..10), without decoding any recording."""
        return np.array([cls - 1 for _, cls, _, _ in self._index], dtype=np.int64)

    def __repr__(self) -> str:
        return f"GestureDataset({str(self.root)!r}, split={self.split!r}, samples={len(self)}, files={len(self.files)})"
