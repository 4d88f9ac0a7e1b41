# SPDX-License-Identifier: MIT
"""``.npy`` / ``.npz`` structured event arrays in the tonic layout.

Fields ``x``, ``y``, ``t``, ``p`` of any integer width (``p`` may be bool);
other fields are ignored. A ``.npz`` must hold exactly one structured array
(or name it with ``key``). Files are loaded with ``allow_pickle=False``.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from pysg.events import EVENT_DTYPE, EventFileError

__all__ = ["read_npy", "to_event_dtype"]

_LIMITS = {"x": (0, 0xFFFF), "y": (0, 0xFFFF), "t": (-(1 << 63), (1 << 63) - 1), "p": (0, 1)}


def to_event_dtype(arr: np.ndarray, *, path: str = "<array>") -> np.ndarray:
    """Convert a tonic-style structured array to EVENT_DTYPE with range checks
    (x, y in [0, 65535], p in {0, 1}, t any int64, integer or bool fields)."""
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
                raise EventFileError(path, f"event {i}", f"field {name}={int(col[i])} outside [{lo}, {hi}]")
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
