# SPDX-License-Identifier: MIT
"""pysg events <-> tonic's structured arrays (numpy only: tonic is not imported here).

tonic (1.7) keeps events as numpy structured arrays addressed by field name; its default
is ``tonic.io.events_struct`` = x int16, y int16, t int64, p bool (:data:`TONIC_DTYPE`),
and each dataset class names its own (``DVSGesture.dtype`` is x int16, y int16, p bool,
t int64, in that order, with ``ordering = dtype.names``). Times are microseconds for the
vision datasets; sensor sizes are ``(width, height, polarities)``.

pysg's :data:`pysg.events.EVENT_DTYPE` is x uint16, y uint16, t int64 (µs), p uint8
(0 = OFF, 1 = ON), sensor sizes ``(width, height)``.
"""
from __future__ import annotations

import numpy as np

from pysg.events import EVENT_DTYPE

__all__ = ["TONIC_DTYPE", "to_tonic", "from_tonic", "sensor_size_to_tonic", "sensor_size_from_tonic"]

#: tonic.io.events_struct (tonic 1.7), checked against tonic itself in tests/test_tonic.py.
TONIC_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])

_FIELDS = ("x", "y", "t", "p")


class TonicEventsError(ValueError):
    """An array that cannot be converted; the message names the field and the fix."""


def to_tonic(events: np.ndarray, dtype: np.dtype = TONIC_DTYPE) -> np.ndarray:
    """pysg events as a tonic structured array of `dtype` (any field order; e.g.
    ``tonic.datasets.DVSGesture.dtype``). Event order is kept. A value the target field
    cannot hold (x or y above an int16's 32767, a polarity above 1 for a bool field) is
    refused rather than wrapped."""
    dtype = np.dtype(dtype)
    missing = [f for f in _FIELDS if f not in (events.dtype.names or ())]
    if missing:
        raise TonicEventsError(f"pysg events: field {missing[0]!r} missing (need x, y, t, p)")
    absent = [f for f in _FIELDS if f not in (dtype.names or ())]
    if absent:
        raise TonicEventsError(f"tonic dtype {dtype}: has no field {absent[0]!r}; give a dtype with x, y, t, p")
    out = np.empty(events.shape, dtype=dtype)
    for name in _FIELDS:
        src, kind = events[name], dtype[name]
        if src.size and kind.kind in "iu":
            info = np.iinfo(kind)
            lo, hi = int(src.min()), int(src.max())
            if lo < info.min or hi > info.max:
                raise TonicEventsError(f"pysg events: field {name!r} spans {lo}..{hi}, outside the tonic field's "
                                       f"{kind} range; use a dtype with a wider {name!r}")
        if name == "p" and kind.kind == "b" and src.size and int(src.max()) > 1:
            raise TonicEventsError(f"pysg events: polarity {int(src.max())} does not fit tonic's bool 'p' (0 or 1)")
        out[name] = src
    for name in dtype.names:
        if name not in _FIELDS:
            out[name] = 0  # extra fields of a dataset's dtype (none in the vision datasets)
    return out


def from_tonic(events: np.ndarray, *, us_per_unit: int = 1) -> np.ndarray:
    """A tonic structured array as pysg events (:data:`pysg.events.EVENT_DTYPE`).

    ``us_per_unit``: microseconds per unit of the array's ``t`` (1 for tonic's vision
    datasets; 1000 if a transform such as ``Downsample(time_factor=0.001)`` made them ms).
    Polarity: bool or {0, 1} as is; {-1, 1} (some datasets) as OFF = 0, ON = 1. Event
    order is kept (tonic does not promise sorted times; pysg's datasets sort, see
    :class:`pysg.datasets.tonic_adapter.TonicSamples`)."""
    names = events.dtype.names or ()
    for f in _FIELDS:
        if f not in names:
            hint = " (a 1-D sensor such as SHD has no y; pysg takes 2-D event cameras)" if f == "y" else ""
            raise TonicEventsError(f"tonic events: field {f!r} missing{hint}")
    if not isinstance(us_per_unit, (int, np.integer)) or us_per_unit < 1:
        raise TonicEventsError(f"us_per_unit must be a positive integer, got {us_per_unit!r}")
    out = np.empty(events.shape, dtype=EVENT_DTYPE)
    for f in ("x", "y"):
        v = events[f]
        if v.size and (v.dtype.kind == "f" and np.any(v != np.floor(v))):
            raise TonicEventsError(f"tonic events: field {f!r} has fractional pixels (a Downsample with a "
                                   f"non-integer result?); round them first")
        if v.size and (v.min() < 0 or v.max() > 65535):
            raise TonicEventsError(f"tonic events: field {f!r} spans {v.min()}..{v.max()}, outside 0..65535 "
                                   f"(a crop that padded with negative coordinates?)")
        out[f] = v
    t = events["t"]
    if t.size and t.dtype.kind == "f" and np.any(t != np.floor(t)):
        raise TonicEventsError("tonic events: field 't' has fractional values; pass us_per_unit or round them")
    out["t"] = t.astype(np.int64) * int(us_per_unit)
    p = events["p"]
    if p.dtype.kind == "b":
        out["p"] = p
    else:
        vals = np.unique(p) if p.size else p
        if np.all(np.isin(vals, (0, 1))):
            out["p"] = p
        elif np.all(np.isin(vals, (-1, 1))):
            out["p"] = p > 0
        else:
            raise TonicEventsError(f"tonic events: polarity values {vals[:4].tolist()} are neither 0/1 nor -1/1")
    return out


def sensor_size_to_tonic(size: tuple[int, int], polarities: int = 2) -> tuple[int, int, int]:
    """pysg (width, height) -> tonic (width, height, polarities)."""
    return int(size[0]), int(size[1]), int(polarities)


def sensor_size_from_tonic(size) -> tuple[int, int]:
    """tonic (width, height, polarities) -> pysg (width, height)."""
    if size is None or len(size) != 3 or int(size[1]) < 1:
        raise TonicEventsError(f"tonic sensor_size {size!r}: expected (width, height, polarities) of a 2-D sensor")
    return int(size[0]), int(size[1])
