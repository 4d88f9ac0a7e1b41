# SPDX-License-Identifier: MIT
"""``.npy`` / ``.npz`` structured event arrays in the tonic layout.

Fields ``x``, ``y``, ``t``, ``p`` of any integer width (``p`` may be bool);
other fields are ignored. A ``.npz`` must hold exactly one structured array
(or name it with ``key``). Files are loaded with ``allow_pickle=False``.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
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
    """Read events from a ``.npy`` or ``.npz`` file (detected from the bytes). An ``.npz``
    member is decompressed straight into the result, chunk by chunk (one copy in memory,
    only the chosen member read)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic[:4] == b"PK\x03\x04":
        member = _npz_member(path, key)
        out = np.empty(member.events, dtype=EVENT_DTYPE)  # pages are touched only as filled
        k = 0
        for chunk in _iter_npz(path, member, 1 << 20):
            out[k:k + chunk.size] = chunk
            k += chunk.size
        return out
    try:
        if magic == b"\x93NUMPY":
            arr = np.load(path, allow_pickle=False, mmap_mode=None)
        else:
            raise EventFileError(path, "byte offset 0", f"not a .npy/.npz file (starts with {magic!r})")
    except EventFileError:
        raise
    except (ValueError, OSError, EOFError) as e:
        raise EventFileError(path, "byte offset 0", f"cannot load numpy file: {e}") from None
    return to_event_dtype(arr, path=path)


@dataclass(frozen=True)
class _NpzMember:
    name: str           # the array's key (the member's file name without .npy)
    info: zipfile.ZipInfo
    dtype: np.dtype
    events: int
    header_bytes: int   # .npy magic + header inside the member


def _read_npy_header(f) -> tuple[tuple, bool, np.dtype, int]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    return shape, fortran, dtype, f.tell()


def _npz_member(path: str, key: str | None) -> _NpzMember:
    """The member of an ``.npz`` holding the events (``key``, or the only structured
    array), from the members' .npy headers alone: nothing is decompressed beyond them.
    Its header must agree with the size the zip directory gives for it."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = {}
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as m:
                    shape, _fortran, dtype, hdr = _read_npy_header(m)
                members[info.filename[:-4]] = (info, shape, dtype, hdr)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise EventFileError(path, "byte offset 0", f"cannot load numpy file: {e}") from None
    if key is None:
        structured = [k for k, (_, _, dtype, _) in members.items() if dtype.names]
        if len(structured) != 1:
            raise EventFileError(path, "byte offset 0", f"npz holds {len(structured)} structured arrays {structured}; "
                                                        "pass key=")
        key = structured[0]
    if key not in members:
        raise EventFileError(path, "byte offset 0", f"npz has no array {key!r} (has {list(members)})")
    info, shape, dtype, hdr = members[key]
    where = f"npz member {info.filename!r} (local header at byte offset {info.header_offset})"
    if len(shape) != 1:
        raise EventFileError(path, where, f"events must be 1-D, got shape {shape}")
    if not dtype.names or dtype.hasobject:
        raise EventFileError(path, where, f"dtype {dtype} is not a structured array of numbers")
    to_event_dtype(np.empty(0, dtype=dtype), path=path)  # field names and kinds
    if info.file_size != hdr + shape[0] * dtype.itemsize:
        raise EventFileError(path, where, f"its .npy header says {shape[0]} events of {dtype.itemsize} bytes but the "
                                          f"member holds {info.file_size - hdr} bytes of data")
    return _NpzMember(key, info, dtype, int(shape[0]), hdr)


def _iter_npz(path: str, member: _NpzMember, chunk_events: int) -> Iterator[np.ndarray]:
    """The member's events, ``chunk_events`` at a time, decompressed as they are read."""
    first = 0
    try:
        with zipfile.ZipFile(path) as zf, zf.open(member.info) as m:
            m.read(member.header_bytes)
            while first < member.events:
                count = min(chunk_events, member.events - first)
                raw = m.read(count * member.dtype.itemsize)
                if len(raw) != count * member.dtype.itemsize:
                    raise EOFError(f"member ends after {first + len(raw) // member.dtype.itemsize} of "
                                   f"{member.events} events")
                yield to_event_dtype(np.frombuffer(raw, dtype=member.dtype), path=path, first=first)
                first += count
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        if isinstance(e, EventFileError):
            raise
        raise EventFileError(path, f"npz member {member.info.filename!r}, event {first}",
                             f"cannot read numpy data: {e}") from None


def _npy_layout(path: str) -> tuple[np.dtype, int, int] | None:
    """(dtype, events, data offset) of a ``.npy`` file holding a 1-D structured array
    whose size matches the file; None for anything else (``.npz``, other shapes,
    object fields, a truncated file), which read_npy handles (and reports)."""
    try:
        with open(path, "rb") as f:
            shape, _fortran, dtype, offset = _read_npy_header(f)
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
    the file's only problem). An ``.npz`` member is decompressed chunk by chunk; unusual
    ``.npy`` files (not 1-D, truncated) are read whole by ``read_npy`` and then sliced."""
    if isinstance(chunk_events, bool) or not isinstance(chunk_events, (int, np.integer)) or chunk_events < 1:
        raise ValueError(f"iter_npy: chunk_events must be a positive integer, got {chunk_events!r}")
    path = os.fspath(path)
    with open(path, "rb") as f:
        if f.read(4) == b"PK\x03\x04":
            yield from _iter_npz(path, _npz_member(path, key), int(chunk_events))
            return
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
