# SPDX-License-Identifier: MIT
"""AEDAT 2.0 (jAER) files: DVS128 and DAVIS240/346 recordings.

Layout: text header lines starting with ``#`` and ending in ``\\r\\n``, the
first ``#!AER-DAT2.0``; the header ends at the first byte that does not start
a ``#`` line. Then 8-byte big-endian events: ``uint32 address, int32
timestamp`` (µs; wraps at 2**31, unwrapped here when it goes backwards).

Address layouts:

* ``"dvs128"``: bit 0 polarity, bits 1..7 x, bits 8..14 y, bit 15 external
  (special) event, skipped. jAER shows ``x = 127 - raw x`` and reads raw
  polarity 0 as ON; those are the defaults (``flip_x=True``, ``on_polarity=0``).
* ``"davis"`` (jAER DAVIS240/346): bit 31 = 1 for APS/IMU samples (skipped),
  bits 22..30 y, bits 12..21 x, bit 11 polarity (1 = ON), bit 10 = 1 for
  external events (skipped). Defaults ``flip_x=False``, ``on_polarity=1``.
"""
from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np

from pysg.events import EVENT_DTYPE, EventFileError

__all__ = ["read_aedat2", "iter_aedat2", "write_aedat2", "read_aedat2_header"]

MAGIC = b"#!AER-DAT2.0"
_RECORD = np.dtype([("a", ">u4"), ("ts", ">i4")])
_MAX_HEADER_LINE = 64 * 1024
_MAX_HEADER_BYTES = 1 << 20
_LAYOUTS = ("dvs128", "davis")


def _parse_header(data: bytes, path: str) -> dict[str, Any]:
    first = data[:len(MAGIC)]
    if first != MAGIC:
        what = "empty file" if not data else f"not an AEDAT 2.0 file: expected {MAGIC!r}, found {data[:20]!r}"
        raise EventFileError(path, "byte offset 0", what)
    pos = 0
    lines = []
    while pos < len(data) and data[pos:pos + 1] == b"#":
        end = data.find(b"\n", pos, pos + _MAX_HEADER_LINE)
        if end < 0:
            raise EventFileError(path, f"byte offset {pos}", "truncated or overlong '#' header line")
        lines.append(data[pos:end].rstrip(b"\r").decode("latin-1"))
        pos = end + 1
        if pos > _MAX_HEADER_BYTES:
            raise EventFileError(path, f"byte offset {pos}", f"header longer than {_MAX_HEADER_BYTES} bytes")
    return {"lines": lines, "data_offset": pos}


def read_aedat2_header(path: str | os.PathLike) -> dict[str, Any]:
    """``lines`` (header lines without line endings) and ``data_offset``."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read(_MAX_HEADER_BYTES + _MAX_HEADER_LINE)
    return _parse_header(data, path)


def _options(fn: str, layout: str, flip_x: bool | None, on_polarity: int | None,
             width: int | None) -> tuple[bool, int, int]:
    """(flip_x, on_polarity, width) with the layout's defaults filled in."""
    if layout not in _LAYOUTS:
        raise ValueError(f"{fn}: layout must be one of {_LAYOUTS}, got {layout!r}")
    flip_x = (layout == "dvs128") if flip_x is None else bool(flip_x)
    on_polarity = (0 if layout == "dvs128" else 1) if on_polarity is None else on_polarity
    if on_polarity not in (0, 1):
        raise ValueError(f"{fn}: on_polarity must be 0 or 1, got {on_polarity!r}")
    width = (128 if layout == "dvs128" else 346) if width is None else width
    return flip_x, on_polarity, width


class _Unwrap:
    """Timestamp unwrapping carried across chunks: the last raw 32-bit timestamp and the
    number of wraps so far (jAER wraps at 2**31 into negatives)."""

    def __init__(self) -> None:
        self.last: int | None = None
        self.wraps = 0

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        ts = raw.astype(np.int64) & 0xFFFFFFFF
        if ts.size:
            w0 = self.wraps + int(self.last is not None and int(ts[0]) - self.last < -(1 << 31))
            wraps = np.cumsum(np.diff(ts) < -(1 << 31))
            if w0:
                wraps += w0
            self.last, self.wraps = int(ts[-1]), int(wraps[-1]) if wraps.size else w0
            if self.wraps:  # (no pass at all for a file without wraps)
                ts[0] += w0 << 32
                ts[1:] += wraps << 32
        return ts


def _decode(path: str, rec: np.ndarray, layout: str, flip_x: bool, on_polarity: int, width: int,
            base: int, first: int, unwrap: _Unwrap) -> np.ndarray:
    """EVENT_DTYPE events of the records ``rec``, record ``first`` of the file onwards
    (whose events start at byte ``base``)."""
    a = rec["a"]
    if layout == "dvs128":
        keep = (a & np.uint32(0x8000)) == 0
        x = (a >> np.uint32(1)) & np.uint32(0x7F)
        y = (a >> np.uint32(8)) & np.uint32(0x7F)
        p = a & np.uint32(1)
    else:
        keep = (a & np.uint32(0x80000400)) == 0
        x = (a >> np.uint32(12)) & np.uint32(0x3FF)
        y = (a >> np.uint32(22)) & np.uint32(0x1FF)
        p = (a >> np.uint32(11)) & np.uint32(1)
    ts = unwrap(rec["ts"])
    x, y, p, ts = x[keep], y[keep], p[keep], ts[keep]
    if flip_x:
        bad = x >= width
        if bad.any():
            i = first + int(np.flatnonzero(keep)[np.argmax(bad)])
            raise EventFileError(path, f"byte offset {base + 8 * i}",
                                 f"event {i} has x={int(x[np.argmax(bad)])} >= width {width} (cannot flip)")
        x = (width - 1) - x.astype(np.int64)
    out = np.empty(x.size, dtype=EVENT_DTYPE)
    out["x"] = x
    out["y"] = y
    out["p"] = p == on_polarity
    out["t"] = ts
    return out


def read_aedat2(path: str | os.PathLike, *, layout: str = "dvs128", flip_x: bool | None = None,
                on_polarity: int | None = None, width: int | None = None) -> np.ndarray:
    """Read the DVS events of an AEDAT 2.0 file.

    Args:
        layout: ``"dvs128"`` or ``"davis"`` address layout (see module doc).
        flip_x: ``x = width - 1 - raw x``; default True for dvs128 (as jAER),
            False for davis.
        on_polarity: raw polarity bit value meaning ON; default 0 for dvs128
            (as jAER), 1 for davis.
        width: sensor width for ``flip_x`` (default 128 for dvs128, 346 for davis).

    Returns:
        EVENT_DTYPE array in file order, ``t`` in µs, ``p`` 1 = ON.
    """
    flip_x, on_polarity, width = _options("read_aedat2", layout, flip_x, on_polarity, width)
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    header = _parse_header(data, path)
    base = header["data_offset"]
    body = len(data) - base
    if body % _RECORD.itemsize:
        raise EventFileError(path, f"byte offset {base + body - body % 8}", "file ends inside an 8-byte event")
    rec = np.frombuffer(data, dtype=_RECORD, offset=base)
    return _decode(path, rec, layout, flip_x, on_polarity, width, base, 0, _Unwrap())


def iter_aedat2(path: str | os.PathLike, *, chunk_events: int = 1_000_000, layout: str = "dvs128",
                flip_x: bool | None = None, on_polarity: int | None = None,
                width: int | None = None) -> Iterator[np.ndarray]:
    """``read_aedat2`` in bounded memory: ``chunk_events`` records (8 bytes each) read
    and decoded at a time, the timestamp unwrapping carried across chunks; the chunks
    concatenated equal ``read_aedat2``'s result. Errors are those of ``read_aedat2``
    (the file size is checked before the first chunk; an x beyond ``width`` is raised
    at its chunk)."""
    if isinstance(chunk_events, bool) or not isinstance(chunk_events, (int, np.integer)) or chunk_events < 1:
        raise ValueError(f"iter_aedat2: chunk_events must be a positive integer, got {chunk_events!r}")
    flip_x, on_polarity, width = _options("iter_aedat2", layout, flip_x, on_polarity, width)
    path = os.fspath(path)
    with open(path, "rb") as f:
        header = _parse_header(f.read(_MAX_HEADER_BYTES + _MAX_HEADER_LINE), path)
        base = header["data_offset"]
        body = os.fstat(f.fileno()).st_size - base
        if body % _RECORD.itemsize:
            raise EventFileError(path, f"byte offset {base + body - body % 8}", "file ends inside an 8-byte event")
        f.seek(base)
        unwrap = _Unwrap()
        first = 0
        while True:
            data = f.read(int(chunk_events) * _RECORD.itemsize)
            if not data:
                return
            rec = np.frombuffer(data, dtype=_RECORD)
            ev = _decode(path, rec, layout, flip_x, on_polarity, width, base, first, unwrap)
            first += rec.size
            if ev.size:
                yield ev


def write_aedat2(path: str | os.PathLike, events: np.ndarray, *, layout: str = "dvs128",
                 flip_x: bool | None = None, on_polarity: int | None = None, width: int | None = None) -> None:
    """Write events as AEDAT 2.0 with the same conventions ``read_aedat2`` uses
    (so ``read_aedat2(write_aedat2(ev, **o), **o) == ev``). ``t`` must be in
    [0, 2**32): it is stored modulo 2**32 as jAER does."""
    flip_x, on_polarity, width = _options("write_aedat2", layout, flip_x, on_polarity, width)
    xmax, ymax = (128, 128) if layout == "dvs128" else (1024, 512)
    events = np.asarray(events)
    names = getattr(events.dtype, "names", None) or ()
    if any(f not in names for f in ("x", "y", "t", "p")):
        raise ValueError("write_aedat2: events need fields x, y, t, p")
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    t = events["t"].astype(np.int64)
    p = events["p"].astype(np.int64)
    for name, arr, limit in (("x", x, min(width, xmax)), ("y", y, ymax), ("p", p, 2), ("t", t, 1 << 32)):
        bad = (arr < 0) | (arr >= limit)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"write_aedat2: event {i} has {name}={int(arr[i])}, must be in [0, {limit})")
    if flip_x:
        x = (width - 1) - x
    raw_p = np.where(p == 1, on_polarity, 1 - on_polarity)
    if layout == "dvs128":
        a = (y << 8) | (x << 1) | raw_p
    else:
        a = (y << 22) | (x << 12) | (raw_p << 11)
    rec = np.empty(events.size, dtype=_RECORD)
    rec["a"] = a
    rec["ts"] = (t & 0xFFFFFFFF).astype(np.uint32).view(np.int32)
    with open(path, "wb") as f:
        f.write(b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n"
                b"# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n"
                b"# Timestamps tick is 1 us\r\n# created by pysg\r\n")
        f.write(rec.tobytes())
