# SPDX-License-Identifier: MIT
"""Event-file readers: one entry point for every supported DVS format.

``read_events(path)`` detects the format from the file's first bytes (never
from the extension) and returns an :class:`EventFile`; ``iter_events`` yields
the events in bounded-memory chunks; ``info`` summarises a file.

Formats (``EventFile.format``): ``"aedat2"``, ``"aedat31"``, ``"aedat4"``,
``"evt2"``, ``"evt3"``, ``"dat"``, ``"npy"`` (``.npy`` and ``.npz``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from pysg.events import EventFileError

__all__ = ["EventFile", "FORMATS", "detect_format", "read_events", "iter_events", "info"]

FORMATS = ("aedat2", "aedat31", "aedat4", "evt2", "evt3", "dat", "npy")


@dataclass
class EventFile:
    """Events of a file and what its header says.

    ``width``/``height`` are None when the format does not record them.
    """
    events: np.ndarray
    format: str
    width: int | None = None
    height: int | None = None


def detect_format(path: str | os.PathLike) -> str:
    """The format of ``path`` from its magic bytes / text header."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"#!AER-DAT2.0"):
        return "aedat2"
    if head.startswith(b"#!AER-DAT3.1"):
        return "aedat31"
    if head.startswith(b"#!AER-DAT4.0"):
        return "aedat4"
    if head.startswith(b"\x93NUMPY") or head.startswith(b"PK\x03\x04"):
        return "npy"
    if head[:1] == b"%":
        from pysg.io.evt import read_prophesee_header
        fmt = read_prophesee_header(path).format
        if fmt is not None:
            return fmt
        raise EventFileError(path, "byte offset 0",
                             "Prophesee '%' header names no format (no '% evt', '% format' or DAT "
                             "'% Version' line); call pysg.io.evt.read_evt(path, format=...)")
    if not head:
        raise EventFileError(path, "byte offset 0", "empty file")
    raise EventFileError(path, "byte offset 0",
                         f"unknown event file format (starts with {head!r}); supported: {', '.join(FORMATS)}")


def _geometry(path: str, fmt: str, options: dict[str, Any]) -> tuple[int | None, int | None]:
    if fmt == "aedat4":
        from pysg.io.aedat4 import _pick_stream, read_aedat4_header
        s = _pick_stream(path, read_aedat4_header(path), options.get("stream"))
        return s.width, s.height
    if fmt in ("evt2", "evt3", "dat"):
        from pysg.io.evt import read_prophesee_header
        h = read_prophesee_header(path)
        return h.width, h.height
    if fmt == "aedat31":
        from pysg.io.aedat31 import read_aedat31_header
        from pysg.io.aedat31 import sensor_geometry
        return sensor_geometry(read_aedat31_header(path)["sources"]) or (None, None)
    if fmt == "aedat2":
        return (128, 128) if options.get("layout", "dvs128") == "dvs128" else (None, None)
    return None, None


def _reader(fmt: str) -> Callable[..., np.ndarray]:
    if fmt == "aedat2":
        from pysg.io.aedat2 import read_aedat2
        return read_aedat2
    if fmt == "aedat31":
        from pysg.io.aedat31 import read_aedat31
        return read_aedat31
    if fmt == "aedat4":
        from pysg.io.aedat4 import read_aedat4
        return read_aedat4
    if fmt in ("evt2", "evt3"):
        from pysg.io.evt import read_evt
        return read_evt
    if fmt == "dat":
        from pysg.io.evt import read_dat
        return read_dat
    from pysg.io.npy import read_npy
    return read_npy


def read_events(path: str | os.PathLike, **options: Any) -> EventFile:
    """Read every event of a file of any supported format.

    ``options`` go to the format's reader (``layout``/``flip_x``/
    ``on_polarity`` for AEDAT 2.0, ``stream`` for AEDAT 4.0,
    ``include_invalid`` for AEDAT 3.1, ``add_t0`` for EVT/DAT, ``key`` for npz).
    """
    path = os.fspath(path)
    fmt = detect_format(path)
    events = _reader(fmt)(path, **options)
    width, height = _geometry(path, fmt, options)
    return EventFile(events=events, format=fmt, width=width, height=height)


def iter_events(path: str | os.PathLike, chunk_events: int = 1_000_000, **options: Any) -> Iterator[np.ndarray]:
    """Yield the events of a file in chunks, in file order.

    Memory stays bounded (about ``chunk_events`` events, plus one packet) for
    AEDAT 3.1 (packet by packet), AEDAT 4.0 (packet by packet, chunks are
    packets merged up to ``chunk_events``), EVT 2.0/3.0 (word blocks), DAT,
    AEDAT 2.0 and ``.npy`` (blocks of ``chunk_events`` records). ``.npz``
    files are read whole and then sliced.
    """
    if isinstance(chunk_events, bool) or not isinstance(chunk_events, (int, np.integer)) or chunk_events < 1:
        raise ValueError(f"iter_events: chunk_events must be a positive integer, got {chunk_events!r}")
    path = os.fspath(path)
    fmt = detect_format(path)
    if fmt == "aedat31":
        from pysg.io.aedat31 import iter_aedat31
        yield from iter_aedat31(path, chunk_events=chunk_events, **options)
    elif fmt == "aedat4":
        from pysg.io.aedat4 import iter_aedat4
        pending: list[np.ndarray] = []
        n = 0
        for ev in iter_aedat4(path, **options):
            pending.append(ev)
            n += ev.size
            if n >= chunk_events:
                yield np.concatenate(pending)
                pending, n = [], 0
        if pending:
            yield np.concatenate(pending)
    elif fmt in ("evt2", "evt3"):
        from pysg.io.evt import iter_evt
        yield from iter_evt(path, chunk_events=chunk_events, **options)
    elif fmt == "dat":
        from pysg.io.evt import iter_dat
        yield from iter_dat(path, chunk_events=chunk_events, **options)
    elif fmt == "aedat2":
        from pysg.io.aedat2 import iter_aedat2
        yield from iter_aedat2(path, chunk_events=chunk_events, **options)
    elif fmt == "npy":
        from pysg.io.npy import iter_npy
        yield from iter_npy(path, chunk_events=chunk_events, **options)
    else:
        events = _reader(fmt)(path, **options)
        for a in range(0, events.size, chunk_events):
            yield events[a:a + chunk_events]


def info(path: str | os.PathLike, **options: Any) -> dict[str, Any]:
    """Summary of a file, computed chunk by chunk: ``format``, ``width``,
    ``height``, ``geometry_source`` (``"file"``: the header or the camera it names;
    ``"events"``: no size recorded, so the smallest sensor holding every event, a lower
    bound; None for a file without events or size), ``n_events``, ``t_first``,
    ``t_last`` (None when empty), ``t_min``, ``t_max``, ``n_on``."""
    path = os.fspath(path)
    fmt = detect_format(path)
    width, height = _geometry(path, fmt, options)
    source = "file" if width is not None and height is not None else None
    n = n_on = 0
    x_max = y_max = -1
    t_first = t_last = t_min = t_max = None
    for ev in iter_events(path, **options):
        if not ev.size:
            continue
        t = ev["t"]
        if t_first is None:
            t_first = int(t[0])
            t_min, t_max = int(t.min()), int(t.max())
        t_last = int(t[-1])
        t_min, t_max = min(t_min, int(t.min())), max(t_max, int(t.max()))
        n += ev.size
        n_on += int(np.count_nonzero(ev["p"]))
        x_max, y_max = max(x_max, int(ev["x"].max())), max(y_max, int(ev["y"].max()))
    if source is None and n:
        width, height, source = x_max + 1, y_max + 1, "events"
    return {"format": fmt, "width": width, "height": height, "geometry_source": source, "n_events": n,
            "t_first": t_first, "t_last": t_last, "t_min": t_min, "t_max": t_max, "n_on": n_on}
