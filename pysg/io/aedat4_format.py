# SPDX-License-Identifier: MIT
"""AEDAT 4.0 layout and header: the magic line, compressions, packet header and event
record, bounds-checked flatbuffer access, and the IOHeader (compression, data table
position, XML stream description). The layout is described in :mod:`pysg.io.aedat4`,
which reads the packets; :mod:`pysg.io.aedat4_writer` writes files.
"""
from __future__ import annotations

import os
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from pysg.events import EventFileError

__all__ = ["MAGIC", "COMPRESSIONS", "Aedat4Stream", "Aedat4Header", "read_aedat4_header", "decode_io_header"]

MAGIC = b"#!AER-DAT4.0\r\n"
COMPRESSIONS = {0: "none", 1: "lz4", 2: "lz4_high", 3: "zstd", 4: "zstd_high"}
_EVENT = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1"), ("_pad", "V3")])
_PACKET = struct.Struct("<ii")


@dataclass
class Aedat4Stream:
    """One ``outInfo`` stream of the XML description."""
    id: int
    type: str                        # typeIdentifier: EVTS, FRME, IMUS, TRIG, ...
    name: str = ""                   # originalOutputName
    width: int | None = None
    height: int | None = None
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class Aedat4Header:
    compression: str
    data_table_position: int
    xml: str
    streams: list[Aedat4Stream]
    data_offset: int                 # first packet


# --------------------------------------------------------------------------- #
# Minimal flatbuffer access (bounds-checked)
# --------------------------------------------------------------------------- #
class _FlatError(Exception):
    def __init__(self, offset: int, what: str):
        self.offset = offset
        self.what = what


def _u32(buf: bytes, at: int) -> int:
    if at < 0 or at + 4 > len(buf):
        raise _FlatError(at, f"4-byte field at {at} outside a {len(buf)}-byte flatbuffer")
    return struct.unpack_from("<I", buf, at)[0]


def _table_fields(buf: bytes, table: int) -> tuple[int, list[int]]:
    """Absolute offsets (0 = absent) of each field of the table at ``table``."""
    if table < 0 or table + 4 > len(buf):
        raise _FlatError(table, "table offset outside the flatbuffer")
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    if vtable < 0 or vtable + 4 > len(buf):
        raise _FlatError(table, f"vtable offset {vtable} outside the flatbuffer")
    vsize, _tsize = struct.unpack_from("<HH", buf, vtable)
    if vsize < 4 or vsize % 2 or vtable + vsize > len(buf):
        raise _FlatError(vtable, f"bad vtable size {vsize}")
    rel = struct.unpack_from(f"<{(vsize - 4) // 2}H", buf, vtable + 4)
    return table, [table + r if r else 0 for r in rel]


def _field(fields: list[int], i: int) -> int:
    return fields[i] if i < len(fields) else 0


def _deref(buf: bytes, at: int) -> int:
    return at + _u32(buf, at)


def _vector(buf: bytes, at: int, elem: int) -> tuple[int, int]:
    """(start, count) of the vector referenced by the uoffset at ``at``."""
    vec = _deref(buf, at)
    count = _u32(buf, vec)
    if vec + 4 + count * elem > len(buf):
        raise _FlatError(vec, f"vector of {count} x {elem} bytes runs past the flatbuffer end ({len(buf)})")
    return vec + 4, count


# --------------------------------------------------------------------------- #
# Header
# --------------------------------------------------------------------------- #
def _parse_xml(xml: str) -> list[Aedat4Stream]:
    root = ET.fromstring(xml)
    streams = []
    for out in root.iter("node"):
        if out.get("name") != "outInfo":
            continue
        for node in out.findall("node"):
            try:
                sid = int(node.get("name", ""))
            except ValueError:
                continue
            attrs = {a.get("key", ""): (a.text or "") for a in node.findall("attr")}
            info = {}
            for sub in node.findall("node"):
                if sub.get("name") == "info":
                    info = {a.get("key", ""): (a.text or "") for a in sub.findall("attr")}
            s = Aedat4Stream(id=sid, type=attrs.get("typeIdentifier", ""), name=attrs.get("originalOutputName", ""),
                             attributes={**attrs, **{f"info/{k}": v for k, v in info.items()}})
            try:
                s.width = int(info["sizeX"]) if "sizeX" in info else None
                s.height = int(info["sizeY"]) if "sizeY" in info else None
            except ValueError:
                s.width = s.height = None
            streams.append(s)
    return streams


def _parse_header(f: BinaryIO, path: str) -> Aedat4Header:
    first = f.read(len(MAGIC))
    if first != MAGIC:
        what = "empty file" if not first else f"not an AEDAT 4.0 file: expected {MAGIC!r}, found {first[:20]!r}"
        raise EventFileError(path, "byte offset 0", what)
    raw = f.read(4)
    if len(raw) < 4:
        raise EventFileError(path, f"byte offset {len(MAGIC)}", "file ends before the IOHeader size")
    size = struct.unpack("<i", raw)[0]
    base = len(MAGIC) + 4
    remaining = os.fstat(f.fileno()).st_size - base
    if size <= 0 or size > remaining:
        raise EventFileError(path, f"byte offset {len(MAGIC)}",
                             f"IOHeader size {size} invalid ({remaining} bytes left in the file)")
    return _decode_io_header(f.read(size), path, base)


def _decode_io_header(buf: bytes, path: str, base: int) -> Aedat4Header:
    """The IOHeader flatbuffer ``buf`` (which starts at byte ``base`` of ``path``)."""
    try:
        root = _u32(buf, 0)
        _, fields = _table_fields(buf, root)
        comp_at, pos_at, info_at = _field(fields, 0), _field(fields, 1), _field(fields, 2)
        compression = struct.unpack_from("<i", buf, comp_at)[0] if comp_at else 0
        if pos_at and pos_at + 8 > len(buf):
            raise _FlatError(pos_at, "dataTablePosition outside the IOHeader")
        table_pos = struct.unpack_from("<q", buf, pos_at)[0] if pos_at else -1
        if not info_at:
            raise _FlatError(root, "IOHeader without infoNode")
        start, count = _vector(buf, info_at, 1)
        xml = buf[start:start + count].decode("utf-8", "replace")
    except _FlatError as e:
        raise EventFileError(path, f"byte offset {base + e.offset}", f"IOHeader flatbuffer: {e.what}") from None
    except struct.error as e:
        raise EventFileError(path, f"byte offset {base}", f"IOHeader flatbuffer: {e}") from None
    if compression not in COMPRESSIONS:
        raise EventFileError(path, f"byte offset {base + comp_at}", f"unknown compression {compression}")
    try:
        streams = _parse_xml(xml)
    except ET.ParseError as e:
        raise EventFileError(path, f"byte offset {base + start}", f"IOHeader infoNode XML: {e}") from None
    return Aedat4Header(COMPRESSIONS[compression], table_pos, xml, streams, base + len(buf))


def read_aedat4_header(path: str | os.PathLike) -> Aedat4Header:
    """Parse the IOHeader (compression, data table position, XML streams)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        return _parse_header(f, path)


def _pick_stream(path: str, header: Aedat4Header, stream: int | None) -> Aedat4Stream:
    if stream is not None:
        for s in header.streams:
            if s.id == stream:
                if s.type != "EVTS":
                    raise ValueError(f"{path}: stream {stream} has type {s.type!r}, not 'EVTS' (events)")
                return s
        raise ValueError(f"{path}: no stream {stream} (streams: {[(s.id, s.type) for s in header.streams]})")
    for s in header.streams:
        if s.type == "EVTS":
            return s
    raise EventFileError(path, f"byte offset {len(MAGIC) + 4}",
                         f"no event stream (typeIdentifier 'EVTS') in the IOHeader XML; "
                         f"streams: {[(s.id, s.type) for s in header.streams]}")


def decode_io_header(buf: bytes, *, source: str = "<stream>", offset: int = 0) -> Aedat4Header:
    """Decode an IOHeader flatbuffer given as bytes (without its ``int32`` size).

    For DV's network stream, which sends ``int32 size`` + IOHeader first, with
    no ``#!AER-DAT4.0`` line. ``source`` and ``offset`` (the position of
    ``buf`` in the stream) only name the place in error messages;
    ``data_offset`` of the result is ``offset + len(buf)``.

    Raises:
        EventFileError: malformed flatbuffer, unknown compression, bad XML.
    """
    return _decode_io_header(bytes(buf), source, offset)
