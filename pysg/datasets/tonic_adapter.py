# SPDX-License-Identifier: MIT
"""Any tonic dataset already on disk as pysg samples, for `pysg train` / `eval` and the
Python jobs (docs/DATASETS.md, "tonic").

:class:`TonicSamples` wraps a tonic dataset *object* (anything with ``len`` and
``ds[i] -> (events, target)``, with the dataset's transforms already attached), and gives
the :class:`pysg.datasets.gesture.Sample` sequence pysg's trainer and `evaluate` take:
events converted by :func:`pysg.io.tonic.from_tonic`, sorted by time, origin at the
sample's first event, and mapped onto the model's sensor by the one mapping
(:func:`pysg.preprocess.sensor_mapping`) when a `sensor` is given.

:func:`open_tonic` builds one from a spec string, ``tonic:NAME:ROOT`` (+ transforms), and
never downloads: a dataset that is not on disk is refused with what to do.
"""
from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

import numpy as np

from pysg.io.tonic import from_tonic, sensor_size_from_tonic

from .gesture import GESTURE_CLASSES, Sample

__all__ = ["TonicSamples", "open_tonic", "open_split", "is_tonic_spec", "parse_tonic_spec", "TonicSpecError"]

PREFIX = "tonic:"


class TonicSpecError(ValueError):
    """A `tonic:` data spec that cannot be opened; the message says how to fix it."""


def _require_tonic():
    try:
        import tonic
    except ImportError:
        raise TonicSpecError('tonic datasets need the tonic package: pip install "pysg[tonic]"') from None
    return tonic


class TonicSamples(Sequence[Sample]):
    """pysg samples of a tonic dataset.

    sensor: the model's (width, height); each sample is mapped onto it from the dataset's
    ``sensor_size`` (tonic's (W, H, P); give `recording_size` for a dataset without one).
    classes: class names (default: pysg's gesture names for tonic's DVSGesture, whose
    11 classes are in the same order; else the dataset's ``classes``).
    us_per_unit: microseconds per unit of the events' t after the transforms."""

    def __init__(self, dataset: Any, *, sensor: tuple[int, int] | None = None,
                 recording_size: tuple[int, int] | None = None, classes: Sequence[str] | None = None,
                 us_per_unit: int = 1):
        self.dataset = dataset
        self.us_per_unit = us_per_unit
        size = getattr(dataset, "sensor_size", None)
        self.recording_size = recording_size or (sensor_size_from_tonic(size) if size is not None else None)
        self.mapping = None
        if sensor is not None:
            from pysg.preprocess import sensor_mapping

            self.mapping = sensor_mapping(self.recording_size, tuple(sensor))
        if classes is None:
            if type(dataset).__name__ == "DVSGesture":
                classes = GESTURE_CLASSES
            else:
                classes = getattr(dataset, "classes", None)
        self.classes = None if classes is None else list(classes)
        self.name = type(dataset).__name__

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sample {i} out of range for {n} samples")
        i = int(i) % n
        raw, target = self.dataset[i]
        ev = from_tonic(np.asarray(raw), us_per_unit=self.us_per_unit)
        if ev.size > 1 and np.any(ev["t"][1:] < ev["t"][:-1]):
            ev = ev[np.argsort(ev["t"], kind="stable")]
        if self.mapping is not None:
            from pysg.preprocess import apply_mapping

            ev = apply_mapping(ev, self.mapping)
        t0 = int(ev["t"][0]) if ev.size else 0
        ev = ev.copy()
        ev["t"] -= t0
        duration = int(ev["t"][-1]) + 1 if ev.size else 1
        label = _label(target, self.name, i)
        source = _source(self.dataset, i)
        return Sample(events=ev, label=label, t_start=t0, t_end=t0 + duration, duration_us=duration,
                      source=source, user="", lighting="")

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def labels(self) -> np.ndarray:
        """Every sample's label, from the dataset's `targets` when it has them (no decoding)."""
        targets = getattr(self.dataset, "targets", None)
        if targets is not None and len(targets) == len(self):
            return np.array([_label(t, self.name, k) for k, t in enumerate(targets)], np.int64)
        return np.array([s.label for s in self], np.int64)

    def __repr__(self) -> str:
        return f"TonicSamples({self.name}, samples={len(self)}, mapping={self.mapping})"


def _label(target: Any, name: str, i: int) -> int:
    try:
        v = int(np.asarray(target).item())
    except (TypeError, ValueError):
        raise TonicSpecError(f"tonic {name}[{i}]: target {target!r} is not one class index; pysg trains "
                             f"classifiers (give a target_transform that returns an int)") from None
    if v < 0:
        raise TonicSpecError(f"tonic {name}[{i}]: target {v} is negative")
    return v


def _source(dataset: Any, i: int) -> str:
    data = getattr(dataset, "data", None)
    try:
        item = data[i] if data is not None else None
    except (IndexError, TypeError, KeyError):
        item = None
    return item if isinstance(item, str) else f"tonic:{type(dataset).__name__}[{i}]"


# ------------------------------------------------------------------ the `tonic:` spec


def is_tonic_spec(data: Any) -> bool:
    return isinstance(data, str) and data.startswith(PREFIX)


def parse_tonic_spec(spec: str) -> tuple[str, str, list[tuple[str, dict]]]:
    """``tonic:NAME:ROOT[+Transform(key=value, ...)...]`` -> (NAME, ROOT, [(transform, kwargs)]).
    Transform arguments are Python literals (numbers, strings, tuples)."""
    if not is_tonic_spec(spec):
        raise TonicSpecError(f"{spec!r}: a tonic dataset is given as tonic:NAME:ROOT, e.g. tonic:DVSGesture:/data")
    name, sep, rest = spec[len(PREFIX):].partition(":")
    if not sep or not name or not rest:
        raise TonicSpecError(f"{spec!r}: give tonic:NAME:ROOT, e.g. tonic:DVSGesture:/data/tonic")
    root, *parts = rest.split("+")
    transforms = []
    for text in parts:
        try:
            call = ast.parse(text.strip(), mode="eval").body
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)) or call.args:
                raise ValueError("not Name(key=value, ...)")
            kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        except (SyntaxError, ValueError) as e:
            raise TonicSpecError(f"{spec!r}: transform {text!r} must be written Name(key=value, ...) with literal "
                                 f"values, e.g. Denoise(filter_time=10000) ({e})") from None
        transforms.append((call.func.id, kwargs))
    return name, root, transforms


def open_tonic(spec: str, split: str = "train", *, sensor: tuple[int, int] | None = None) -> TonicSamples:
    """The `split` ("train" or "test") of a tonic dataset on disk, from a spec string (see
    :func:`parse_tonic_spec`). The dataset class is constructed as
    ``tonic.datasets.NAME(ROOT, train=split == "train", transform=Compose([...]))``; a dataset
    that tonic would download (not found under ROOT) is refused, never downloaded."""
    name, root, transform_specs = parse_tonic_spec(spec)
    if split not in ("train", "test"):
        raise TonicSpecError(f"split must be train or test, got {split!r}")
    tonic = _require_tonic()
    cls = getattr(tonic.datasets, name, None)
    if not isinstance(cls, type):
        raise TonicSpecError(f"{spec!r}: tonic.datasets has no dataset {name!r}")
    transforms = []
    for tname, kwargs in transform_specs:
        tcls = getattr(tonic.transforms, tname, None)
        if not isinstance(tcls, type):
            raise TonicSpecError(f"{spec!r}: tonic.transforms has no transform {tname!r}")
        try:
            transforms.append(tcls(**kwargs))
        except TypeError as e:
            raise TonicSpecError(f"{spec!r}: {tname}({kwargs}): {e}") from None

    def refuse_download(self) -> None:
        raise TonicSpecError(f"tonic {name}: not found on disk under {root} (tonic looks in "
                             f"{self.location_on_system}); pysg never downloads: fetch it with tonic yourself")

    offline = type(name, (cls,), {"download": refuse_download})  # same name: same folder on disk
    kwargs: dict[str, Any] = {"train": split == "train"}
    if transforms:
        kwargs["transform"] = tonic.transforms.Compose(transforms)
    try:
        ds = offline(root, **kwargs)
    except TypeError as e:
        raise TonicSpecError(f"{spec!r}: tonic.datasets.{name} does not take (save_to, train=...): {e}") from None
    except (OSError, ValueError) as e:
        if isinstance(e, TonicSpecError):
            raise
        raise TonicSpecError(f"{spec!r}: tonic could not open the dataset: {e}") from None
    size = getattr(ds, "sensor_size", None)
    size = sensor_size_from_tonic(size) if size is not None else None
    for t in transforms:  # the geometry the events have after the transforms
        rule = _GEOMETRY.get(type(t).__name__)
        if rule is not None and size is not None:
            size = rule(t, size)
    return TonicSamples(ds, sensor=sensor, recording_size=size)


def _center_crop_size(t, size: tuple[int, int]) -> tuple[int, int]:
    s = t.size
    return (int(s), int(s)) if isinstance(s, (int, np.integer)) else (int(s[0]), int(s[1]))


def _downsample_size(t, size: tuple[int, int]) -> tuple[int, int]:
    """tonic multiplies x and y by the factor and truncates: the largest pixel W-1 lands
    on floor((W-1) f)."""
    if t.target_size is not None:
        return int(t.target_size[0]), int(t.target_size[1])
    f = t.spatial_factor if isinstance(t.spatial_factor, tuple) else (t.spatial_factor, t.spatial_factor)
    return int((size[0] - 1) * f[0]) + 1, int((size[1] - 1) * f[1]) + 1


# tonic transforms that change the sensor geometry (the others keep the dataset's).
_GEOMETRY = {"CenterCrop": _center_crop_size, "Downsample": _downsample_size}


def open_split(data: Any, split: str, *, sensor: tuple[int, int] | None = None,
               n_classes: int | None = None) -> Sequence[Sample]:
    """What `pysg train` / `eval` read: a `tonic:` spec (mapped onto `sensor`), else a
    DVS128-Gesture-layout folder (:class:`pysg.datasets.gesture.GestureDataset`). With
    `n_classes`, a tonic dataset whose targets do not fit the model is refused up front."""
    if not is_tonic_spec(data):
        from .gesture import GestureDataset

        return GestureDataset(data, split)
    samples = open_tonic(data, split, sensor=sensor)
    if n_classes is not None and len(samples):
        top = int(samples.labels().max())
        if top >= n_classes:
            raise TonicSpecError(f"{data}: targets go up to {top}; the model has {n_classes} classes (pysg train "
                                 f"trains the 11-class gesture network; build a Network for other datasets)")
    return samples
