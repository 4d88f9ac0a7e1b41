# SPDX-License-Identifier: MIT
"""Events -> dense count frames: the model's input layout.

``bin_events`` returns an array of shape ``(T, C, H', W')``, dtype uint16:

* ``T = ceil(duration_us / dt_us)`` time bins; event ``e`` falls in bin
  ``e.t // dt_us`` (``t`` relative to the window start, 0 <= t < duration_us).
  The last bin is shorter when dt_us does not divide duration_us.
* ``C`` channels: with ``channels=2`` channel 0 counts OFF events (p = 0) and
  channel 1 ON events (p = 1); with ``channels=1`` both are summed.
* ``H' = H // downsample`` rows and ``W' = W // downsample`` columns, where
  ``sensor_size = (W, H)`` (width first, as in tonic). An event lands at
  ``[row = y // downsample, col = x // downsample]``: row is y, col is x.
* Values are event counts, saturating at 65535.

So one time step of the model's input is a ``(C, H', W')`` frame.
"""
from __future__ import annotations

import numpy as np

__all__ = ["bin_events"]

_COUNT_MAX = np.iinfo(np.uint16).max


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"bin_events: {name} must be a positive integer, got {value!r}")
    return int(value)


def bin_events(events: np.ndarray, *, duration_us: int, dt_us: int, sensor_size: tuple[int, int] = (128, 128),
               downsample: int = 4, channels: int = 2) -> np.ndarray:
    """Count events per (time bin, channel, row, column).

    Args:
        events: structured array with fields x, y, t, p (e.g. EVENT_DTYPE);
            t in µs relative to the window start, 0 <= t < duration_us.
        duration_us: window length in µs (> 0).
        dt_us: time bin length in µs (> 0).
        sensor_size: (width, height) of the sensor; x < width, y < height.
        downsample: spatial pooling factor; must divide width and height.
        channels: 2 (OFF, ON) or 1 (polarity ignored).

    Returns:
        uint16 array of shape (ceil(duration_us / dt_us), channels,
        height // downsample, width // downsample), frame[..., y, x] layout.

    Raises:
        ValueError: bad arguments, or events outside the window or sensor.
    """
    duration_us = _positive_int("duration_us", duration_us)
    dt_us = _positive_int("dt_us", dt_us)
    downsample = _positive_int("downsample", downsample)
    if channels not in (1, 2) or isinstance(channels, bool):
        raise ValueError(f"bin_events: channels must be 1 or 2, got {channels!r}")
    try:
        width, height = sensor_size
    except (TypeError, ValueError):
        raise ValueError(f"bin_events: sensor_size must be (width, height), got {sensor_size!r}") from None
    width = _positive_int("sensor_size width", width)
    height = _positive_int("sensor_size height", height)
    if width % downsample or height % downsample:
        raise ValueError(f"bin_events: downsample {downsample} must divide sensor_size ({width}, {height})")
    names = getattr(getattr(events, "dtype", None), "names", None) or ()
    missing = [f for f in ("x", "y", "t", "p") if f not in names]
    if missing:
        raise ValueError(f"bin_events: events need fields x, y, t, p (missing {', '.join(missing)})")

    n_bins = -(-duration_us // dt_us)
    rows, cols = height // downsample, width // downsample
    shape = (n_bins, channels, rows, cols)
    if events.size == 0:
        return np.zeros(shape, dtype=np.uint16)

    t = events["t"].astype(np.int64, copy=False)
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    p = events["p"].astype(np.int64)
    for name, arr, lo, hi in (("t", t, 0, duration_us), ("x", x, 0, width), ("y", y, 0, height), ("p", p, 0, 2)):
        outside = (arr < lo) | (arr >= hi)
        if outside.any():
            i = int(np.argmax(outside))
            hint = " (select the window first, e.g. events[events['t'] < duration_us])" if name == "t" else ""
            raise ValueError(f"bin_events: event {i} has {name}={int(arr[i])}, must be in [{lo}, {hi}){hint}")

    channel = p if channels == 2 else np.zeros_like(p)
    flat = ((t // dt_us * channels + channel) * rows + y // downsample) * cols + x // downsample
    counts = np.bincount(flat, minlength=n_bins * channels * rows * cols)
    return np.minimum(counts, _COUNT_MAX).astype(np.uint16).reshape(shape)
