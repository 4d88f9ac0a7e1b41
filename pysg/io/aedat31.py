# SPDX-License-Identifier: MIT
"""AEDAT 3.1 (cAER) files: the container of the DVS128 Gesture dataset.

Layout (all integers little-endian):

* A text header of ``#``-prefixed lines ending in ``\\r\\n``: first
  ``#!AER-DAT3.1``, then ``#Format: RAW``, ``#Source <id>: <name>``,
  ``#Start-Time: ...`` and finally ``#!END-HEADER``.
* Then packets, each a 28-byte header followed by ``eventCapacity *
  eventSize`` bytes of events::

      int16 eventType   int16 eventSource  int32 eventSize  int32 eventTSOffset
      int32 eventTSOverflow  int32 eventCapacity  int32 eventNumber  int32 eventValid

  Only the first ``eventNumber`` slots hold events (``eventValid`` of them have
  the valid bit set).
* Polarity events (eventType 1, eventSize 8, eventTSOffset 4): ``uint32 data``
  with bit 0 = valid, bit 1 = polarity (1 = ON), bits 2..16 = y, bits 17..31 =
  x; then ``int32 timestamp``, the low 31 bits of the µs time. The full time is
  ``(eventTSOverflow << 31) | timestamp``.

Other packet types (special events, frames, IMU, ...) are skipped by size.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import struct
from typing import Any, BinaryIO

import numpy as np

from pysg.events import EVENT_DTYPE, EventFileError, require_event_fields
from pysg.io import evt as _evt  # the C decoders (runtime_c/src/host/sg_decode.c), when built

__all__ = ["write_aedat31", "read_aedat31", "read_aedat31_header", "iter_aedat31"]

MAGIC = b"#!AER-DAT3.1"
END_HEADER = b"#!END-HEADER"
POLARITY_EVENT = 1

PACKET_HEADER = struct.Struct("<hhiiiiii")
_POLARITY_SIZE = 8
_POLARITY_TS_OFFSET = 4
# One (data, timestamp) polarity record, viewed straight out of the file bytes.
_POLARITY_RECORD = np.dtype([("d", "<u4"), ("ts", "<i4")])

_TS_BITS = 31
_TS_MASK = (1 << _TS_BITS) - 1
_INT32_MAX = (1 << 31) - 1
_COORD_LIMIT = 1 << 15  # x and y are 15-bit fields
# A header line longer than this is not a cAER header: stop instead of
# reading a whole binary file looking for a newline.
_MAX_HEADER_LINE = 64 * 1024


# --------------------------------------------------------------------------- #
# Header
# --------------------------------------------------------------------------- #
def _parse_header(f: BinaryIO, path: str) -> dict[str, Any]:
    """Read the text header from the open file ``f`` (positioned at 0)."""
    first = f.readline(_MAX_HEADER_LINE)
    if first.rstrip() != MAGIC:
        found = first[:40].rstrip(b"\r\n")
        if not found:
            what = "empty file, expected an '#!AER-DAT3.1' header"
        elif found.startswith(b"#!AER-DAT"):
            version = found[len(b"#!AER-DAT"):].decode("ascii", "replace")
            what = (f"found an AEDAT {version} header {found!r}, "
                    f"this reader only handles AEDAT 3.1 (expected {MAGIC!r})")
        else:
            what = f"not an AEDAT 3.1 file: expected {MAGIC!r}, found {found!r}"
        raise EventFileError(path, "byte offset 0", what)

    lines = [first.rstrip(b"\r\n").decode("latin-1")]
    offset = len(first)
    fmt = None
    format_offset = None
    sources: dict[int, str] = {}
    start_time = None
    while True:
        line = f.readline(_MAX_HEADER_LINE)
        where = f"byte offset {offset}"
        if not line:
            raise EventFileError(path, where, "end of file inside the header: missing '#!END-HEADER'")
        if not line.endswith(b"\n"):
            if len(line) >= _MAX_HEADER_LINE:
                raise EventFileError(path, where, f"header line longer than {_MAX_HEADER_LINE} bytes: "
                                     "missing '#!END-HEADER'?")
            raise EventFileError(path, where, "truncated header line: missing '#!END-HEADER'")
        if not line.startswith(b"#"):
            raise EventFileError(path, where, f"header line does not start with '#' ({line[:40]!r}): "
                                 "missing '#!END-HEADER'")
        offset += len(line)
        text = line.rstrip(b"\r\n").decode("latin-1")
        lines.append(text)
        if line.rstrip(b"\r\n") == END_HEADER:
            break
        key, _, value = text[1:].partition(":")
        key, value = key.strip(), value.strip()
        if key == "Format":
            fmt, format_offset = value, offset - len(line)
        elif key == "Start-Time":
            start_time = value
        elif key.startswith("Source "):
            try:
                sources[int(key[len("Source "):])] = value
            except ValueError:
                pass  # free-form comment line that happens to look similar
    return {
        "version": "3.1",
        "lines": lines,
        "format": fmt if fmt is not None else "RAW",
        "sources": sources,
        "start_time": start_time,
        "data_offset": offset,
        "format_offset": format_offset,
    }


# Sensor sizes of the cameras cAER names in '#Source <id>: <name>' (libcaer's device
# names), and our own writer's "DVS <W>x<H>". An unknown name gives no geometry (no check).
_CAMERA_SIZES = {"DVS128": (128, 128), "EDVS": (128, 128), "DAVIS128": (128, 128), "DAVIS208": (208, 192),
                 "DAVIS240": (240, 180), "DAVIS240A": (240, 180), "DAVIS240B": (240, 180), "DAVIS240C": (240, 180),
                 "DAVIS346": (346, 260), "DAVIS346A": (346, 260), "DAVIS346B": (346, 260), "DAVIS346C": (346, 260),
                 "DAVIS640": (640, 480), "DVXPLORER": (640, 480), "DVXPLORER LITE": (320, 240)}


def sensor_geometry(sources: dict[int, str]) -> tuple[int, int] | None:
    """(width, height) the header's '#Source' lines name, when every source names a camera
    of known size and they agree; None otherwise."""
    sizes = set()
    for name in sources.values():
        m = re.search(r"(\d+)\s*x\s*(\d+)", name)
        size = (int(m[1]), int(m[2])) if m else _CAMERA_SIZES.get(name.strip().upper())
        if size is None:
            return None
        sizes.add(size)
    return sizes.pop() if len(sizes) == 1 else None


def read_aedat31_header(path: str | os.PathLike) -> dict[str, Any]:
    """Parse the text header of an AEDAT 3.1 file.

    Returns a dict with ``lines`` (every header line without its line ending,
    magic and ``#!END-HEADER`` included), ``format`` (``"RAW"`` when absent),
    ``sources`` ({source id: name}), ``start_time`` (str or None) and
    ``data_offset`` (byte offset of the first packet) and ``format_offset``
    (byte offset of the ``#Format`` line, None when absent).
    Raises FileNotFoundError or EventFileError.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        return _parse_header(f, path)


# --------------------------------------------------------------------------- #
# Reader
# --------------------------------------------------------------------------- #
def _packet_header(path, buf, at: int, where: int, packet: int, avail: int) -> tuple[int, int, int, int, int]:
    """Parse and check the packet header at buf[at:] (file offset `where`, `avail` bytes
    from there to the end of the data): (eventType, eventSize, TSOverflow, capacity,
    number), or EventFileError naming the offending field's byte offset."""
    if avail < PACKET_HEADER.size:
        raise EventFileError(path, f"byte offset {where}",
                             f"packet {packet}: truncated packet header, {avail} of {PACKET_HEADER.size} bytes")
    (ev_type, _source, ev_size, ts_offset, ts_overflow,
     capacity, number, _valid) = PACKET_HEADER.unpack_from(buf, at)
    problem = _packet_problem(ev_type, ev_size, ts_offset, ts_overflow, capacity, number,
                              avail - PACKET_HEADER.size)
    if problem is not None:
        field, what = problem
        raise EventFileError(path, f"byte offset {where + field}",
                             f"packet {packet} (header at byte {where}, eventType {ev_type}): {what}")
    return ev_type, ev_size, ts_overflow, capacity, number


def _packet_problem(ev_type: int, ev_size: int, ts_offset: int, ts_overflow: int,
                    capacity: int, number: int, room: int) -> tuple[int, str] | None:
    """First inconsistency of a packet header, as (offset of the field inside
    the header, description), or None. ``room`` is the bytes left after it."""
    if ev_size <= 0:
        return 4, f"eventSize {ev_size} must be positive"
    if capacity < 0:
        return 20, f"negative eventCapacity {capacity}"
    if number < 0:
        return 24, f"negative eventNumber {number}"
    if number > capacity:
        return 24, f"eventNumber {number} exceeds eventCapacity {capacity}"
    if ts_overflow < 0:
        return 12, f"negative eventTSOverflow {ts_overflow}"
    # Python ints do not overflow, and this runs before anything is allocated:
    # a lying eventCapacity costs nothing.
    if capacity * ev_size > room:
        return 20, (f"payload of {capacity * ev_size} bytes (eventCapacity {capacity} x eventSize "
                    f"{ev_size}) runs past end of file ({room} bytes left)")
    if ev_type == POLARITY_EVENT:
        if ev_size != _POLARITY_SIZE:
            return 4, f"eventSize {ev_size} for polarity events, must be {_POLARITY_SIZE}"
        if ts_offset != _POLARITY_TS_OFFSET:
            return 8, f"eventTSOffset {ts_offset} for polarity events, must be {_POLARITY_TS_OFFSET}"
    elif not 0 <= ts_offset <= ev_size - 4:
        return 8, f"eventTSOffset {ts_offset} outside an event of {ev_size} bytes"
    return None


def read_aedat31(path: str | os.PathLike, *, include_invalid: bool = False) -> np.ndarray:
    """Read every polarity event of an AEDAT 3.1 file.

    Args:
        path: the ``.aedat`` file.
        include_invalid: keep events whose valid bit is 0 (by default they are
            dropped, as cAER/DV do).

    Returns:
        EVENT_DTYPE array in file order; ``t`` is in µs on the camera clock
        (``(eventTSOverflow << 31) | timestamp``), ``p`` 1 = ON.

    Raises:
        FileNotFoundError: the file does not exist.
        EventFileError: malformed header or packet; the message gives the byte
            offset of the offending packet field or event.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        header = _parse_header(f, path)
        if header["format"] != "RAW":
            raise EventFileError(path, f"byte offset {header['format_offset']}",
                                 f"unsupported '#Format: {header['format']}', only RAW is supported")
        data = f.read()
    base = header["data_offset"]
    size = len(data)

    # Pass 1: walk the packet headers (cheap, one struct call per packet) and
    # keep zero-copy views of the polarity payloads.
    chunks: list[np.ndarray] = []
    overflows: list[int] = []
    bodies: list[int] = []
    pos = 0
    packet = 0
    while pos < size:
        ev_type, ev_size, ts_overflow, capacity, number = _packet_header(
            path, data, pos, base + pos, packet, size - pos)
        body = pos + PACKET_HEADER.size
        if ev_type == POLARITY_EVENT and number:
            chunks.append(np.frombuffer(data, dtype=_POLARITY_RECORD, count=number, offset=body))
            overflows.append(ts_overflow)
            bodies.append(body)
        pos = body + capacity * ev_size
        packet += 1

    if not chunks:
        return np.empty(0, dtype=EVENT_DTYPE)

    if _evt._lib is not None:  # Pass 2 in C, packet by packet (same result as the numpy pass below)
        ffi, lib = _evt._ffi, _evt._lib
        total = sum(c.size for c in chunks)
        out = np.empty(total, dtype=EVENT_DTYPE)
        src = ffi.from_buffer("uint8_t[]", data)
        dst = ffi.from_buffer("uint8_t[]", out, require_writable=True)
        res = ffi.new("size_t[2]")
        k = 0
        for c, overflow, body in zip(chunks, overflows, bodies):
            status = lib.sg_aedat31_decode_polarity(src + body, c.size, overflow, 1 if include_invalid else 0,
                                                    dst + k * _evt._lib.SG_EVENT_RECORD_SIZE, res, res + 1)
            if status != 0:
                first = int(res[1])
                raise EventFileError(path, f"byte offset {base + body + first * _POLARITY_SIZE}",
                                     f"polarity event {first} of a packet has a negative timestamp "
                                     f"{int(c['ts'][first])} (bit 31 set)")
            k += res[0]
        ffi.release(dst)
        return _checked(path, header, _evt._shrink(out, k), include_invalid)

    # Pass 2: decode all polarity events at once.
    counts = np.fromiter((c.size for c in chunks), dtype=np.int64, count=len(chunks))
    rec = np.concatenate(chunks)
    d = rec["d"]
    ts = rec["ts"]
    keep = None if include_invalid else (d & np.uint32(1)).astype(bool)
    negative = ts < 0 if keep is None else (ts < 0) & keep
    if negative.any():
        i = int(np.argmax(negative))
        k = int(np.searchsorted(np.cumsum(counts), i, side="right"))
        first = i - int(counts[:k].sum())
        at = base + bodies[k] + first * _POLARITY_SIZE
        raise EventFileError(path, f"byte offset {at}",
                             f"polarity event {first} of a packet has a negative timestamp "
                             f"{int(ts[i])} (bit 31 set)")
    high = np.repeat(np.asarray(overflows, dtype=np.int64) << _TS_BITS, counts)
    if keep is not None and not keep.all():
        d, ts, high = d[keep], ts[keep], high[keep]
    out = np.empty(d.size, dtype=EVENT_DTYPE)
    out["x"] = d >> np.uint32(17)
    out["y"] = (d >> np.uint32(2)) & np.uint32(0x7FFF)
    out["p"] = (d >> np.uint32(1)) & np.uint32(1)
    out["t"] = high | ts
    return _checked(path, header, out, include_invalid)


def _checked(path: str, header: dict[str, Any], out: np.ndarray, include_invalid: bool) -> np.ndarray:
    """``out`` if every event lies inside the sensor the header names; otherwise the
    packet iterator, which checks packet by packet, raises the error with the packet's
    byte offset (errors are rare: reading twice costs nothing that matters)."""
    size = sensor_geometry(header["sources"])
    if size is not None and out.size and (int(out["x"].max()) >= size[0] or int(out["y"].max()) >= size[1]):
        for _ in iter_aedat31(path, include_invalid=include_invalid):
            pass
        # the iterator checks the same events and raises first; kept so no path returns them
        raise EventFileError(path, "byte offset ?", f"events outside the header's {size[0]}x{size[1]} sensor")
    return out


# --------------------------------------------------------------------------- #
# Writer
# --------------------------------------------------------------------------- #
def _check_events(events: np.ndarray, width: int, height: int) -> None:
    require_event_fields(events, "write_aedat31")
    if events.ndim != 1:
        raise ValueError(f"write_aedat31: events must be 1-D, got shape {events.shape}")
    if events.size == 0:
        return
    t = events["t"]
    for name, arr, limit in (("x", events["x"], width), ("y", events["y"], height), ("p", events["p"], 2)):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= limit:
            bad = int(np.flatnonzero((arr < 0) | (arr >= limit))[0])
            raise ValueError(f"write_aedat31: event {bad} has {name}={int(arr[bad])}, "
                             f"must be in [0, {limit})")
    if int(t.min()) < 0:
        raise ValueError(f"write_aedat31: event {int(np.argmin(t))} has negative t={int(t.min())}")
    if int(t.max()) >> _TS_BITS > _INT32_MAX:
        raise ValueError(f"write_aedat31: t={int(t.max())} µs does not fit eventTSOverflow")
    dec = np.flatnonzero(np.diff(t) < 0)
    if dec.size:
        i = int(dec[0]) + 1
        raise ValueError(f"write_aedat31: events not sorted by t: event {i} has t={int(t[i])} "
                         f"< t={int(t[i - 1])} of event {i - 1}")


def write_aedat31(path: str | os.PathLike, events: np.ndarray, *, width: int = 128, height: int = 128,
                  source_id: int = 1, packet_events: int = 4096,
                  start_time: _dt.datetime | None = None) -> None:
    """Write polarity events as an AEDAT 3.1 file, as cAER records a DVS128.

    Args:
        path: output file (overwritten).
        events: array with fields x, y, t (µs, >= 0, non-decreasing), p (0/1);
            EVENT_DTYPE or any compatible structured array.
        width, height: sensor size; every x < width and y < height
            (at most 32768, the 15-bit field).
        source_id: eventSource of every packet and the ``#Source`` id (0..32767).
        packet_events: maximum events per packet. Packets are also cut where
            ``t >> 31`` changes, so no packet straddles a timestamp overflow.
        start_time: written as ``#Start-Time`` (default: now, local time); pass
            a fixed value for byte-reproducible files.

    Raises:
        ValueError: bad arguments, coordinates out of range, unsorted events.
    """
    for name, value, lo, hi in (("width", width, 1, _COORD_LIMIT), ("height", height, 1, _COORD_LIMIT),
                                ("source_id", source_id, 0, 0x7FFF),
                                ("packet_events", packet_events, 1, _INT32_MAX // _POLARITY_SIZE)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
            raise ValueError(f"write_aedat31: {name} must be an integer in [{lo}, {hi}], got {value!r}")
    events = np.asarray(events)
    _check_events(events, int(width), int(height))

    n = events.size
    rec = np.empty(n, dtype=_POLARITY_RECORD)
    high = np.zeros(n, dtype=np.int64)
    bounds = [0]  # packet boundaries; no events, no packets
    if n:
        x = events["x"].astype(np.uint32)
        y = events["y"].astype(np.uint32)
        p = events["p"].astype(np.uint32)
        rec["d"] = (x << np.uint32(17)) | (y << np.uint32(2)) | (p << np.uint32(1)) | np.uint32(1)
        t = events["t"].astype(np.int64)
        rec["ts"] = (t & _TS_MASK).astype(np.int32)
        high = t >> _TS_BITS
        # Cut wherever the overflow counter changes: a packet has one TSOverflow.
        bounds = [0, *(np.flatnonzero(np.diff(high)) + 1).tolist(), n]

    if start_time is None:
        start_time = _dt.datetime.now().astimezone()
    stamp = start_time.strftime("%Y-%m-%d %H:%M:%S") + f" (TZ{start_time.strftime('%z') or '+0000'})"
    name = "DVS128" if (width, height) == (128, 128) else f"DVS {width}x{height}"
    header = (f"{MAGIC.decode()}\r\n#Format: RAW\r\n#Source {source_id}: {name}\r\n"
              f"#Start-Time: {stamp}\r\n{END_HEADER.decode()}\r\n").encode("ascii")

    with open(path, "wb") as f:
        f.write(header)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            overflow = int(high[lo])
            for a in range(lo, hi, packet_events):
                b = min(a + packet_events, hi)
                k = b - a
                f.write(PACKET_HEADER.pack(POLARITY_EVENT, int(source_id), _POLARITY_SIZE, _POLARITY_TS_OFFSET,
                                           overflow, k, k, k))
                f.write(rec[a:b].tobytes())


def _decode_packet_c(path: str, rec: np.ndarray, ts_overflow: int, include_invalid: bool,
                     body: int) -> np.ndarray:
    """One polarity packet through sg_aedat31_decode_polarity (same result and error as
    the numpy decode in iter_aedat31)."""
    ffi, lib = _evt._ffi, _evt._lib
    out = np.empty(rec.size, dtype=EVENT_DTYPE)
    res = ffi.new("size_t[2]")
    with ffi.from_buffer("uint8_t[]", rec) as src, ffi.from_buffer("uint8_t[]", out, require_writable=True) as dst:
        status = lib.sg_aedat31_decode_polarity(src, rec.size, ts_overflow, 1 if include_invalid else 0, dst, res,
                                                res + 1)
    if status != 0:
        i = int(res[1])
        raise EventFileError(path, f"byte offset {body + i * _POLARITY_SIZE}",
                             f"polarity event {i} of a packet has a negative timestamp "
                             f"{int(rec['ts'][i])} (bit 31 set)")
    return _evt._shrink(out, int(res[0]))


# --------------------------------------------------------------------------- #
# Chunked reader (bounded memory)
# --------------------------------------------------------------------------- #
def iter_aedat31(path: str | os.PathLike, *, chunk_events: int = 1_000_000,
                 include_invalid: bool = False):
    """Yield the polarity events of an AEDAT 3.1 file in chunks of at most
    about ``chunk_events`` events, reading packet by packet (memory bounded by
    the chunk plus the largest packet). Same decoding and errors as
    ``read_aedat31``; the concatenated chunks equal its result."""
    path = os.fspath(path)
    if isinstance(chunk_events, bool) or not isinstance(chunk_events, (int, np.integer)) or chunk_events < 1:
        raise ValueError(f"iter_aedat31: chunk_events must be a positive integer, got {chunk_events!r}")
    with open(path, "rb") as f:
        header = _parse_header(f, path)
        if header["format"] != "RAW":
            raise EventFileError(path, f"byte offset {header['format_offset']}",
                                 f"unsupported '#Format: {header['format']}', only RAW is supported")
        size = os.fstat(f.fileno()).st_size
        geometry = sensor_geometry(header["sources"]) or (None, None)
        pos = header["data_offset"]
        pending: list[np.ndarray] = []
        n_pending = 0
        packet = 0
        while pos < size:
            f.seek(pos)
            raw = f.read(PACKET_HEADER.size)
            avail = size - pos if len(raw) == PACKET_HEADER.size else len(raw)  # a short read: truncated
            ev_type, ev_size, ts_overflow, capacity, number = _packet_header(path, raw, 0, pos, packet, avail)
            body = pos + PACKET_HEADER.size
            if ev_type == POLARITY_EVENT and number:
                rec = np.frombuffer(f.read(number * _POLARITY_SIZE), dtype=_POLARITY_RECORD)
                if _evt._lib is not None:
                    out = _decode_packet_c(path, rec, ts_overflow, include_invalid, body)
                    _evt._check_range(path, out, *geometry, body)
                    pending.append(out)
                    n_pending += out.size
                    if n_pending >= chunk_events:
                        yield np.concatenate(pending)
                        pending, n_pending = [], 0
                    pos = body + capacity * ev_size
                    packet += 1
                    continue
                d, ts = rec["d"], rec["ts"]
                if not include_invalid:
                    keep = (d & np.uint32(1)).astype(bool)
                    bad = (ts < 0) & keep
                else:
                    keep = None
                    bad = ts < 0
                if bad.any():
                    i = int(np.argmax(bad))
                    raise EventFileError(path, f"byte offset {body + i * _POLARITY_SIZE}",
                                         f"polarity event {i} of a packet has a negative timestamp "
                                         f"{int(ts[i])} (bit 31 set)")
                if keep is not None:
                    d, ts = d[keep], ts[keep]
                out = np.empty(d.size, dtype=EVENT_DTYPE)
                out["x"] = d >> np.uint32(17)
                out["y"] = (d >> np.uint32(2)) & np.uint32(0x7FFF)
                out["p"] = (d >> np.uint32(1)) & np.uint32(1)
                out["t"] = (np.int64(ts_overflow) << _TS_BITS) | ts
                _evt._check_range(path, out, *geometry, body)
                pending.append(out)
                n_pending += out.size
                if n_pending >= chunk_events:
                    yield np.concatenate(pending)
                    pending, n_pending = [], 0
            pos = body + capacity * ev_size
            packet += 1
        if n_pending:
            yield np.concatenate(pending)
