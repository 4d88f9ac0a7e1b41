# SPDX-License-Identifier: MIT
"""The AEDAT 4.0 writer: polarity events to a file that :func:`pysg.io.aedat4.read_aedat4`,
dv-processing and faery read, and the one-table flatbuffer builder it uses."""
from __future__ import annotations

import os
import struct
from typing import Any

import lz4.frame
import numpy as np
import zstandard

from pysg.events import require_event_fields
from pysg.io.aedat4_format import _EVENT, _PACKET, MAGIC

__all__ = ["write_aedat4"]


def _flatbuffer(identifier: bytes, fields: list[tuple[str, Any]], size_prefix: bool) -> bytes:
    """Build a one-table flatbuffer. fields: ('i32', v) / ('i64', v) /
    ('bytes', raw vector bytes, element size) in field order."""
    # Layout: [size?] root(u32) ident(4) vtable table vectors...
    nf = len(fields)
    vtable_size = 4 + 2 * nf
    head = 8
    vt_at = head
    table_at = vt_at + vtable_size
    table_at += (-table_at) % 8  # int64 alignment of the table's scalar fields
    # table: soffset (4) then fields; keep 8-byte alignment for int64 fields.
    offs = []
    cur = 4
    for kind, *_ in fields:
        width = 8 if kind == "i64" else 4
        cur += (-(table_at + cur)) % width
        offs.append(cur)
        cur += width
    table_size = cur
    vec_at = table_at + table_size
    body = bytearray(vec_at)
    struct.pack_into("<I", body, 0, table_at)
    body[4:8] = identifier
    struct.pack_into("<HH", body, vt_at, vtable_size, table_size)
    for i, off in enumerate(offs):
        struct.pack_into("<H", body, vt_at + 4 + 2 * i, off)
    struct.pack_into("<i", body, table_at, table_at - vt_at)
    for (kind, value, *rest), off in zip(fields, offs):
        at = table_at + off
        if kind == "i32":
            struct.pack_into("<i", body, at, value)
        elif kind == "i64":
            struct.pack_into("<q", body, at, value)
        else:
            # vector: align so the elements start on 8 bytes
            pad = (-(len(body) + 4)) % 8
            body.extend(b"\0" * pad)
            vec = len(body)
            struct.pack_into("<I", body, at, vec - at)
            body.extend(struct.pack("<I", rest[0]))
            body.extend(value)
            if kind == "str":
                body.extend(b"\0")
    body.extend(b"\0" * ((-len(body)) % 4))
    if size_prefix:
        # offsets are relative to the buffer after the prefix: unchanged.
        return struct.pack("<I", len(body)) + bytes(body)
    return bytes(body)


def write_aedat4(path: str | os.PathLike, events: np.ndarray, *, width: int = 346, height: int = 260,
                 compression: str = "lz4", packet_events: int = 10_000, source: str = "pysg") -> None:
    """Write polarity events as an AEDAT 4.0 file with one ``EVTS`` stream (id 0).

    Args:
        events: fields x, y, t (µs, >= 0, non-decreasing), p (0/1).
        width, height: sensor size written as ``sizeX``/``sizeY`` (1..32767).
        compression: ``"none"``, ``"lz4"`` or ``"zstd"``.
        packet_events: events per packet.
        source: the ``info/source`` attribute.

    No data table is written (dataTablePosition -1): readers scan the packets.
    """
    if compression not in ("none", "lz4", "zstd"):
        raise ValueError(f"write_aedat4: compression must be 'none', 'lz4' or 'zstd', got {compression!r}")
    for name, value, lo, hi in (("width", width, 1, 32767), ("height", height, 1, 32767),
                                ("packet_events", packet_events, 1, 1 << 24)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
            raise ValueError(f"write_aedat4: {name} must be an integer in [{lo}, {hi}], got {value!r}")
    events = require_event_fields(events, "write_aedat4")
    n = events.size
    rec = np.zeros(n, dtype=_EVENT)
    if n:
        for name, limit in (("x", width), ("y", height), ("p", 2)):
            arr = events[name].astype(np.int64)
            bad = (arr < 0) | (arr >= limit)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"write_aedat4: event {i} has {name}={int(arr[i])}, must be in [0, {limit})")
        t = events["t"].astype(np.int64)
        if t.min() < 0:
            raise ValueError(f"write_aedat4: event {int(np.argmin(t))} has negative t={int(t.min())}")
        dec = np.flatnonzero(np.diff(t) < 0)
        if dec.size:
            i = int(dec[0]) + 1
            raise ValueError(f"write_aedat4: events not sorted by t: event {i} has t={int(t[i])} "
                             f"< t={int(t[i - 1])}")
        rec["t"], rec["x"], rec["y"], rec["p"] = t, events["x"], events["y"], events["p"]
    comp_name = {"none": "NONE", "lz4": "LZ4", "zstd": "ZSTD"}[compression]
    comp_code = {"none": 0, "lz4": 1, "zstd": 3}[compression]
    xml = (
        '<dv version="2.0">\n'
        '    <node name="outInfo" path="/mainloop/Recorder/outInfo/">\n'
        '        <node name="0" path="/mainloop/Recorder/outInfo/0/">\n'
        f'            <attr key="compression" type="string">{comp_name}</attr>\n'
        '            <attr key="originalModuleName" type="string">pysg</attr>\n'
        '            <attr key="originalOutputName" type="string">events</attr>\n'
        '            <attr key="typeDescription" type="string">Array of events (polarity ON/OFF).</attr>\n'
        '            <attr key="typeIdentifier" type="string">EVTS</attr>\n'
        '            <node name="info" path="/mainloop/Recorder/outInfo/0/info/">\n'
        f'                <attr key="sizeX" type="int">{width}</attr>\n'
        f'                <attr key="sizeY" type="int">{height}</attr>\n'
        f'                <attr key="source" type="string">{source}</attr>\n'
        '                <attr key="tsOffset" type="long">0</attr>\n'
        '            </node>\n'
        '        </node>\n'
        '    </node>\n'
        '</dv>\n').encode("utf-8")
    io_header = _flatbuffer(b"IOHE", [("i32", comp_code), ("i64", -1), ("str", xml, len(xml))], size_prefix=False)
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<i", len(io_header)))
        f.write(io_header)
        for a in range(0, n, packet_events):
            chunk = rec[a:a + packet_events]
            payload = _flatbuffer(b"EVTS", [("vec", chunk.tobytes(), chunk.size)], size_prefix=True)
            if compression == "lz4":
                payload = lz4.frame.compress(payload)
            elif compression == "zstd":
                payload = zstandard.ZstdCompressor().compress(payload)
            f.write(_PACKET.pack(0, len(payload)))
            f.write(payload)
