# SPDX-License-Identifier: MIT
"""The EVT 3.0 writer: events to a Prophesee ``.raw`` file that :func:`pysg.io.evt.read_evt`
and faery read back. Word layout: :mod:`pysg.io.evt`."""
from __future__ import annotations

import os

import numpy as np

from pysg.events import require_event_fields

__all__ = ["write_evt3"]


def write_evt3(path: str | os.PathLike, events: np.ndarray, *, width: int = 1280, height: int = 720) -> None:
    """Write events as an EVT 3.0 file (``% evt 3.0`` header, geometry).

    Every event is written as its own ADDR_X word (vectors are not used),
    preceded by ADDR_Y / TIME_LOW / TIME_HIGH words whenever those change; a
    TIME_HIGH word is also emitted each 2**24 µs wrap so readers can unwrap.

    Args:
        events: fields x, y, t (µs, >= 0, non-decreasing), p (0/1).
        width, height: sensor size (at most 2048, the 11-bit fields).

    Raises:
        ValueError: bad sizes, out-of-range or unsorted events.
    """
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= 2048:
            raise ValueError(f"write_evt3: {name} must be an integer in [1, 2048], got {value!r}")
    events = require_event_fields(events, "write_evt3")
    n = events.size
    words = np.empty(0, dtype="<u2")
    if n:
        x = events["x"].astype(np.int64)
        y = events["y"].astype(np.int64)
        t = events["t"].astype(np.int64)
        p = events["p"].astype(np.int64)
        for name, arr, limit in (("x", x, width), ("y", y, height), ("p", p, 2)):
            bad = (arr < 0) | (arr >= limit)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"write_evt3: event {i} has {name}={int(arr[i])}, must be in [0, {limit})")
        if t[0] < 0:
            raise ValueError(f"write_evt3: negative t={int(t[0])}")
        dec = np.flatnonzero(np.diff(t) < 0)
        if dec.size:
            i = int(dec[0]) + 1
            raise ValueError(f"write_evt3: events not sorted by t: event {i} has t={int(t[i])} < t={int(t[i - 1])}")
        high = t >> 12            # unwrapped TIME_HIGH
        low = t & 0xFFF
        first = np.ones(n, dtype=bool)
        new_high = first.copy()
        new_high[1:] = high[1:] != high[:-1]
        new_low = new_high.copy()
        new_low[1:] |= low[1:] != low[:-1]
        new_y = new_low.copy()
        new_y[1:] |= y[1:] != y[:-1]
        # A jump of a full wrap or more needs intermediate TIME_HIGH words so
        # the reader counts every wrap: emit one per 4096 (each a decrease
        # modulo 4096 is detected once per wrap).
        prev_high = np.concatenate(([0], high[:-1]))
        wraps = np.where(new_high, (high >> 12) - (prev_high >> 12), 0)
        wraps[0] = high[0] >> 12
        extra = np.maximum(wraps, 0) * 2  # 2 words per wrap: TIME_HIGH 4095 then 0
        per = extra + new_high + new_low + new_y + 1
        offs = np.concatenate(([0], np.cumsum(per)))
        words = np.zeros(int(offs[-1]), dtype="<u2")
        pos = offs[:-1].copy()
        # Wrap words (rare): loop over events with wraps only.
        for i in np.flatnonzero(extra):
            k = int(pos[i])
            for _ in range(int(wraps[i])):
                words[k] = 0x8000 | 0xFFF
                words[k + 1] = 0x8000
                k += 2
        pos += extra
        for mask, value in ((new_high, 0x8000 | (high & 0xFFF)), (new_low, 0x6000 | low), (new_y, y)):
            words[pos[mask]] = value[mask]
            pos += mask
        words[pos] = 0x2000 | (p << 11) | x
    header = (f"% evt 3.0\n% format EVT3;height={height};width={width}\n"
              f"% geometry {width}x{height}\n% end\n").encode("ascii")
    with open(path, "wb") as f:
        f.write(header)
        f.write(words.astype("<u2").tobytes())
