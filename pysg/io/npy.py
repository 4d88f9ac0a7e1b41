# SPDX-License-Identifier: MIT
"""``.npy`` / ``.npz`` structured event arrays in the tonic layout.

Fields ``x``, ``y``, ``t``, ``p`` of any integer width (``p`` may be bool);
other fields are ignored. A ``.npz`` must hold exactly one structured array
(or name it with ``key``). Files are loaded with ``allow_pickle=False``.
"""
from __future__ import annotations

import os
import zipfile
from typing import Iterator

import numpy as np

from pysg.events import EVENT_DTYPE, EventFileError

__all__ = ["read_npy", "iter_npy", "to_event_dtype"]

_LIMITS = {"x": (0, 0xFFFF), "y": (0, 0xFFFF), "t": (-(1 << 63), (1 << 63) - 1), "p": (0, 1)}


def to_event_dtype(arr: np.ndarray, *, path: str = "<array>", first: int = 0) -> np.ndarray:
    """Convert a tonic-style structured array to EVENT_DTYPE with range checks
    (x, y in [0, 65535], p in {0, 1}, t any int64, integer or bool fields).
    ``first``: index of ``arr[0]`` in the file, for error messages."""
    names = getattr(arr.dtype, "names", None) or ()
    missing = [f for f in ("x", "y", "t", "p") if f not in names]
    if missing:
        raise EventFileError(path, "byte offset 0", f"structured array {arr.dtype} lacks fields {missing}")
    if arr.ndim != 1:
        raise EventFileError(path, "byte offset 0", f"events must be 1-D, got shape {arr.shape}")
    out = np.empty(arr.size, dtype=EVENT_DTYPE)
    for name in ("x", "y", "t", "p"):
        col = arr[name]
        if col.dtype.kind not in "iub":
            raise EventFileError(path, "byte offset 0", f"field {name} has dtype {col.dtype}, must be integer or bool")
        if col.size and col.dtype.kind != "b":
            lo, hi = _LIMITS[name]
            cmin, cmax = int(col.min()), int(col.max())
            if cmin < lo or cmax > hi:
                i = int(np.argmax((col < lo) | (col > hi)))
                raise EventFileError(path, f"event {first + i}", f"field {name}={int(col[i])} outside [{lo}, {hi}]")
        out[name] = col
    return out


def read_npy(path: str | os.PathLike, *, key: str | None = None) -> np.ndarray:
    """Read events from a ``.npy`` or ``.npz`` file (detected from the bytes)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        magic = f.read(6)
    try:
        if magic == b"\x93NUMPY":
            arr = np.load(path, allow_pickle=False, mmap_mode=None)
        elif magic[:4] == b"PK\x03\x04":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                if key is None:
                    structured = [k for k in keys if z[k].dtype.names]
                    if len(structured) != 1:
                        raise EventFileError(path, "byte offset 0",
                                             f"npz holds {len(structured)} structured arrays {structured}; pass key=")
                    key = structured[0]
                if key not in keys:
                    raise EventFileError(path, "byte offset 0", f"npz has no array {key!r} (has {keys})")
                arr = z[key]
        else:
            raise EventFileError(path, "byte offset 0", f"not a .npy/.npz file (starts with {magic!r})")
    except EventFileError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise EventFileError(path, "byte offset 0", f"cannot load numpy file: {e}") from None
    return to_event_dtype(arr, path=path)


def _npy_layout(path: str) -> tuple[np.dtype, int, int] | None:
    """(dtype, events, data offset) of a ``.npy`` file holding a 1-D structured array
    whose size matches the file; None for anything else (``.npz``, other shapes,
    object fields, a truncated file), which read_npy handles (and reports)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                return None
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size
    except (ValueError, OSError, EOFError):
        return None
    if len(shape) != 1 or not dtype.names or dtype.hasobject or size != offset + shape[0] * dtype.itemsize:
        return None
    return dtype, int(shape[0]), offset


def iter_npy(path: str | os.PathLike, *, chunk_events: int = 1_000_000, key: str | None = None) -> Iterator[np.ndarray]:
    """``read_npy`` in bounded memory for a ``.npy`` file: ``chunk_events`` records read
    and converted at a time (the chunks concatenated equal ``read_npy``'s result; an
    out-of-range value is raised at its chunk, with ``read_npy``'s message when it is
    the file's only problem). ``.npz`` members and unusual ``.npy`` files (not 1-D,
    truncated) are read whole by ``read_npy`` and then sliced."""
    if isinstance(chunk_events, bool) or not isinstance(chunk_events, (int, np.integer)) or chunk_events < 1:
        raise ValueError(f"iter_npy: chunk_events must be a positive integer, got {chunk_events!r}")
    path = os.fspath(path)
    layout = _npy_layout(path)
    if layout is None:
        events = read_npy(path, key=key)
        for a in range(0, events.size, int(chunk_events)):
            yield events[a:a + chunk_events]
        return
    dtype, n, offset = layout
    to_event_dtype(np.empty(0, dtype=dtype), path=path)  # field names and kinds, before any chunk
    with open(path, "rb") as f:
        f.seek(offset)
        first = 0
        while first < n:
            count = min(int(chunk_events), n - first)
            arr = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
            yield to_event_dtype(arr, path=path, first=first)
            first += count
