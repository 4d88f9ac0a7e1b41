"""Event arrays shared by every reader, writer and model input.

Events are numpy structured arrays with the fields x, y, t, p (tonic-compatible
names): x, y pixel coordinates, t timestamp in microseconds (int64), p polarity
(1 = ON, brightness increase; 0 = OFF).
"""
from __future__ import annotations

import numpy as np

EVENT_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("t", "<i8"), ("p", "u1")])


class EventFileError(ValueError):
    """A malformed event or label file; the message names the file and the byte
    offset (or line) where the problem was found."""

    def __init__(self, path, where: str, what: str):
        self.path = str(path)
        self.where = where
        self.what = what
        super().__init__(f"{self.path}: {where}: {what}")


def make_events(x, y, t, p) -> np.ndarray:
    """Build an event array from four equal-length sequences."""
    x = np.asarray(x)
    n = len(x)
    for name, arr in (("y", y), ("t", t), ("p", p)):
        if len(arr) != n:
            raise ValueError(f"make_events: field {name} has {len(arr)} entries, x has {n}")
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"] = x
    ev["y"] = y
    ev["t"] = t
    ev["p"] = p
    return ev


def require_event_fields(events, who: str) -> np.ndarray:
    """``events`` as an array with fields x, y, t and p, or ValueError naming ``who`` (the
    writer) and the fields missing."""
    events = np.asarray(events)
    names = getattr(events.dtype, "names", None) or ()
    missing = [f for f in ("x", "y", "t", "p") if f not in names]
    if missing:
        raise ValueError(f"{who}: events need fields x, y, t, p (missing {', '.join(missing)})")
    return events
