# SPDX-License-Identifier: MIT
"""AEDAT 4.0 (iniVation DV) files: event stream of DVS/DAVIS/DVXplorer recordings.

Layout (all integers little-endian):

* ``#!AER-DAT4.0\\r\\n`` (14 bytes), then ``int32 size`` and an IOHeader
  flatbuffer of that size (file identifier ``IOHE``): field 0 compression
  (int32: 0 none, 1 LZ4, 2 LZ4 high, 3 ZSTD, 4 ZSTD high), field 1
  dataTablePosition (int64, -1 = none), field 2 infoNode (string: an XML
  ``<dv>`` tree with one ``outInfo/<id>`` node per stream, whose
  ``typeIdentifier`` is ``EVTS`` for polarity events, ``FRME``, ``IMUS``,
  ``TRIG``...; ``info/sizeX``/``sizeY`` give the sensor size).
* Packets until dataTablePosition (or the end of the file): ``int32 stream
  id, int32 size`` then ``size`` bytes, compressed as a whole (LZ4 frame
  format or a ZSTD frame). Uncompressed, the payload is a size-prefixed
  flatbuffer (``uint32 length``, root offset, identifier ``EVTS``); an event
  packet's table has field 0 = vector of 16-byte structs
  ``int64 t (µs), int16 x, int16 y, uint8 polarity, 3 bytes padding``.
* The data table (a ``FTAB`` flatbuffer indexing the packets) at
  dataTablePosition is not needed to read events and is ignored.

The flatbuffers are parsed by hand with bounds checks: only the few fields
above are read. Non-event streams are skipped without decompression.

Packets are decompressed by python-lz4 (``lz4.frame.decompress``, one call per
packet) or zstandard. When the C extension is built, the uncompressed event packets
are decoded by ``sg_aedat4_decode_events`` (runtime_c/src/sg_decode.c) straight into
one output array; the Python path below is the reference, used for every packet the C
decoder refuses (so errors are always the reference's).
"""
from __future__ import annotations

import mmap
import os
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterator

import lz4.frame
import numpy as np
import zstandard

from pysg.events import EVENT_DTYPE, EventFileError
from pysg import _native
from pysg.io import evt as _evt

# The C event-packet decoder of runtime_c/src/sg_decode.c, used when the extension has it;
# the Python/numpy path below stays the reference, and the fallback: a packet the C
# decoder refuses is decoded again by the reference, which raises the error.
_ffi, _lib = _native.optional("sg_aedat4_decode_events") if _evt._lib is not None else (None, None)

__all__ = ["read_aedat4", "iter_aedat4", "read_aedat4_header", "write_aedat4", "Aedat4Header", "Aedat4Stream",
           "decode_io_header", "decode_event_packet"]

MAGIC = b"#!AER-DAT4.0\r\n"
COMPRESSIONS = {0: "none", 1: "lz4", 2: "lz4_high", 3: "zstd", 4: "zstd_high"}
_EVENT = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1"), ("_pad", "V3")])
_PACKET = struct.Struct("<ii")
# Refuse a decompressed packet larger than this (a lying frame header).
MAX_PACKET_BYTES = 1 << 30
MIN_PACKET_LIMIT = 64 << 20  # a compressed packet may always inflate to this much (4 Mi events)
BOMB_RATIO = 32              # ... or to this many times its compressed size (events compress 2-10x)


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


# --------------------------------------------------------------------------- #
# Packets
# --------------------------------------------------------------------------- #
_LZ4_MAGIC = b"\x04\x22\x4d\x18"


def _lz4_declared_size(payload: Any) -> int:
    """Content size stored in an LZ4 frame header (FLG bit 3), or 0 when absent."""
    head = bytes(payload[:14])
    if len(head) == 14 and head[:4] == _LZ4_MAGIC and head[4] & 0x08:
        return int.from_bytes(head[6:14], "little")
    return 0


def packet_limit(compressed_bytes: int) -> int:
    """Largest uncompressed packet accepted for a compressed payload of this size. Real
    event packets compress 2-10x (LZ4 or ZSTD), so a payload that inflates past 32x its
    size and past 64 MiB (4 Mi events) is a decompression bomb: refused before its output
    is allocated (a declared size) or as soon as the output passes the limit."""
    return min(MAX_PACKET_BYTES, max(MIN_PACKET_LIMIT, BOMB_RATIO * compressed_bytes))


def _decompress(path: str, compression: str, payload: Any, at: int) -> Any:
    """The uncompressed packet of ``payload`` (any bytes-like object), which starts at
    byte ``at`` of ``path``: decompression errors are raised as EventFileError there.
    Memory stays bounded by :func:`packet_limit`, whatever the frame header says."""
    if compression == "none":
        return payload
    limit = packet_limit(len(payload))
    kind = "LZ4" if compression.startswith("lz4") else "ZSTD"

    def too_big(n: int, verb: str) -> EventFileError:
        return EventFileError(path, f"byte offset {at}",
                              f"{kind} frame {verb} {n} bytes, more than {limit} (the most a {len(payload)}-byte "
                              "payload may inflate to: a decompression bomb?)")

    if compression.startswith("lz4"):
        declared = _lz4_declared_size(payload)  # python-lz4 allocates this much: check it first
        if declared > limit:
            raise too_big(declared, "declares")
        try:
            if declared:
                out = lz4.frame.decompress(payload)  # one frame; bytes after it are ignored
            else:  # no size in the header: stop at the limit instead of growing without bound
                d = lz4.frame.LZ4FrameDecompressor()
                out = d.decompress(payload, max_length=limit + 1)
                if len(out) > limit:
                    raise too_big(len(out), "holds")
                if not d.eof:  # truncated: the one-shot call names liblz4's error (bounded: out <= limit)
                    out = lz4.frame.decompress(payload)
        except RuntimeError as e:  # python-lz4 reports liblz4's errors as RuntimeError
            raise EventFileError(path, f"byte offset {at}", f"{compression} decompression failed: {e}") from None
        if len(out) > limit:
            raise too_big(len(out), "holds")
        return out
    if compression.startswith("zstd"):
        try:
            declared = zstandard.frame_content_size(payload)  # -1: not stored
            if declared > limit:
                raise too_big(declared, "declares")
            reader = zstandard.ZstdDecompressor().stream_reader(payload, read_across_frames=False)
            out = reader.read(limit + 1) if declared < 0 else reader.read(declared + 1)
            if len(out) > limit:
                raise too_big(len(out), "holds")
            if declared >= 0 and len(out) != declared:
                raise EventFileError(path, f"byte offset {at}", f"truncated or oversized ZSTD frame (declares "
                                                                f"{declared} bytes, holds {len(out)})")
            if declared < 0:  # did the frame end? decoding it again yields the same <= limit bytes
                d = zstandard.ZstdDecompressor().decompressobj()
                d.decompress(payload)
                if not d.eof:
                    raise EventFileError(path, f"byte offset {at}", "truncated or oversized ZSTD frame")
        except zstandard.ZstdError as e:
            raise EventFileError(path, f"byte offset {at}", f"{compression} decompression failed: {e}") from None
        return out
    return payload


def _decode_packet(path: str, data: bytes, at: int) -> np.ndarray:
    """EVENT_DTYPE events of one uncompressed EventPacket (size-prefixed)."""
    try:
        length = _u32(data, 0)
        if length + 4 != len(data):
            raise _FlatError(0, f"size prefix {length} does not match the {len(data) - 4}-byte packet")
        buf = memoryview(data)[4:]
        root = _u32(buf, 0)
        _, fields = _table_fields(buf, root)
        elems = _field(fields, 0)
        if not elems:
            return np.empty(0, dtype=EVENT_DTYPE)
        start, count = _vector(buf, elems, _EVENT.itemsize)
    except _FlatError as e:
        raise EventFileError(path, f"byte offset {at}",
                             f"event packet flatbuffer (uncompressed offset {e.offset + 4}): {e.what}") from None
    rec = np.frombuffer(buf, dtype=_EVENT, count=count, offset=start)
    out = np.empty(count, dtype=EVENT_DTYPE)
    if count:
        bad = (rec["x"] < 0) | (rec["y"] < 0) | (rec["p"] > 1) | (rec["t"] < 0)
        if bad.any():
            i = int(np.argmax(bad))
            e = rec[i]
            raise EventFileError(path, f"byte offset {at}",
                                 f"event {i} of the packet is invalid (t={int(e['t'])}, x={int(e['x'])}, "
                                 f"y={int(e['y'])}, polarity={int(e['p'])})")
    out["t"] = rec["t"]
    out["x"] = rec["x"]
    out["y"] = rec["y"]
    out["p"] = rec["p"]
    return out


_SG_ERR_ARENA = -11  # sg_runtime.h: the caller's buffer is too small


class _CPackets:
    """Decodes uncompressed event packets with sg_aedat4_decode_events, straight into the
    caller's output array; reuses one input buffer across the packets of a file."""

    def __init__(self, path: str):
        self.path = path
        self.payload = bytearray(1 << 16)
        self.count = _ffi.new("size_t *")
        self.err = _ffi.new("uint64_t *")

    def read(self, f: BinaryIO, size: int) -> memoryview:
        """The next ``size`` bytes of ``f``, in the reused input buffer."""
        if size > len(self.payload):
            self.payload = bytearray(max(size, 2 * len(self.payload)))
        view = memoryview(self.payload)[:size]
        if f.readinto(view) != size:
            raise EventFileError(self.path, f"byte offset {f.tell()}", "file ended inside a packet")
        return view

    def decode(self, src: Any, size: int, packet: Callable[[], Any], at: int, out: np.ndarray | None = None,
               k: int = 0) -> tuple[np.ndarray, int]:
        """Events of the uncompressed packet at file byte ``at`` (``size`` bytes at C pointer
        ``src``; ``packet()`` the same bytes, for the reference) written to ``out[k:]``,
        grown in place when short, or to a new exact-size array when ``out`` is None.
        Returns (out, k + events)."""
        if out is None:
            status = _lib.sg_aedat4_decode_events(src, size, _ffi.NULL, 0, self.count, self.err)
            if status == 0:
                return np.empty(0, dtype=EVENT_DTYPE), 0
            if status == _SG_ERR_ARENA:
                out = np.empty(int(self.count[0]), dtype=EVENT_DTYPE)
        while out is not None:
            with _ffi.from_buffer("uint8_t[]", out, require_writable=True) as dst:
                status = _lib.sg_aedat4_decode_events(src, size, dst + k * _lib.SG_EVENT_RECORD_SIZE, out.size - k,
                                                      self.count, self.err)
            if status == 0:
                return out, k + int(self.count[0])
            if status != _SG_ERR_ARENA:
                break
            out.resize((max(2 * out.size, k + int(self.count[0])),), refcheck=False)
        # refused by C: the reference decodes it again and raises the error (with its message)
        ev = _decode_packet(self.path, packet(), at)
        if out is None:
            return ev, ev.size
        if out.size - k < ev.size:
            out.resize((k + ev.size,), refcheck=False)
        out[k:k + ev.size] = ev
        return out, k + ev.size

    def decode_payload(self, payload: Any, compression: str, at: int, out: np.ndarray | None = None,
                       k: int = 0) -> tuple[np.ndarray, int]:
        """decode() of a packet payload as stored (``payload``: bytes-like), decompressed first."""
        data = _decompress(self.path, compression, payload, at)
        with _ffi.from_buffer("uint8_t[]", data) as src:
            return self.decode(src, len(data), lambda: data, at, out, k)


def _packets_end(path: str, header: Aedat4Header, file_size: int) -> int:
    """Byte offset where the packets end (the data table, or the end of the file)."""
    if header.data_table_position < 0:
        return file_size
    if header.data_table_position < header.data_offset or header.data_table_position > file_size:
        raise EventFileError(path, f"byte offset {len(MAGIC) + 4}",
                             f"dataTablePosition {header.data_table_position} outside the packets "
                             f"[{header.data_offset}, {file_size}]")
    return header.data_table_position


def _packet_size(path: str, pos: int, end: int, buf: Any) -> tuple[int, int]:
    """(stream id, payload size) of the packet header at ``pos``: the 8 bytes of ``buf``
    at ``pos`` (a mapped file), or the next 8 bytes of ``buf`` (an open file)."""
    if end - pos < _PACKET.size:
        raise EventFileError(path, f"byte offset {pos}", f"truncated packet header ({end - pos} bytes)")
    sid, size = _PACKET.unpack_from(buf, pos) if isinstance(buf, mmap.mmap) else _PACKET.unpack(buf.read(_PACKET.size))
    if size < 0 or size > end - pos - _PACKET.size:
        raise EventFileError(path, f"byte offset {pos + 4}",
                             f"packet size {size} of stream {sid} runs past the end of the packets "
                             f"({end - pos - _PACKET.size} bytes left)")
    return sid, size


def _packets(f: BinaryIO, path: str, header: Aedat4Header, chosen: Aedat4Stream) -> Iterator[tuple[int, int]]:
    """(payload byte offset, size) of each packet of ``chosen``, in file order, with ``f``
    positioned at the payload: the caller reads exactly ``size`` bytes before the next."""
    end = _packets_end(path, header, os.fstat(f.fileno()).st_size)
    pos = header.data_offset
    f.seek(pos)
    while pos < end:
        sid, size = _packet_size(path, pos, end, f)
        if sid == chosen.id:
            yield pos + _PACKET.size, size
        else:
            f.seek(size, 1)
        pos += _PACKET.size + size


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


def decode_event_packet(payload: bytes, compression: str = "none", *, source: str = "<stream>",
                        offset: int = 0) -> np.ndarray:
    """EVENT_DTYPE events of one packet payload (the bytes after ``int32 stream
    id, int32 size``), decompressed as the IOHeader says.

    Args:
        payload: the packet's ``size`` bytes.
        compression: ``Aedat4Header.compression`` (``"none"``, ``"lz4"``,
            ``"lz4_high"``, ``"zstd"``, ``"zstd_high"``).
        source, offset: name the stream and the payload's byte offset in
            error messages.

    Raises:
        EventFileError: bad compression frame, malformed flatbuffer, invalid events.
    """
    if compression not in COMPRESSIONS.values():
        raise ValueError(f"decode_event_packet: compression must be one of {sorted(COMPRESSIONS.values())}, "
                         f"got {compression!r}")
    data = bytes(payload)
    if _lib is not None:
        return _CPackets(source).decode_payload(data, compression, offset)[0]
    return _decode_packet(source, _decompress(source, compression, data, offset), offset)


def iter_aedat4(path: str | os.PathLike, *, stream: int | None = None) -> Iterator[np.ndarray]:
    """Yield the events of one event stream, packet by packet (bounded memory).

    Args:
        path: the ``.aedat4`` file.
        stream: stream id; default the first stream whose type is ``EVTS``.

    Raises:
        EventFileError with the byte offset of the offending packet.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        header = _parse_header(f, path)
        chosen = _pick_stream(path, header, stream)
        dec = _CPackets(path) if _lib is not None else None
        for at, size in _packets(f, path, header, chosen):
            if dec is not None:
                ev = dec.decode_payload(dec.read(f, size), header.compression, at)[0]
            else:
                ev = _decode_packet(path, _decompress(path, header.compression, f.read(size), at), at)
            _evt._check_range(path, ev, chosen.width, chosen.height, at)
            if ev.size:
                yield ev


def read_aedat4(path: str | os.PathLike, *, stream: int | None = None) -> np.ndarray:
    """Read every polarity event of one event stream of an AEDAT 4.0 file.

    Returns EVENT_DTYPE in file order; ``t`` is the recorded µs timestamp
    (absolute, as DV writes it), ``p`` 1 = ON.
    """
    if _lib is not None:
        return _read_aedat4_c(os.fspath(path), stream)
    chunks = list(iter_aedat4(path, stream=stream))
    if not chunks:
        return np.empty(0, dtype=EVENT_DTYPE)
    return np.concatenate(chunks)


def _read_aedat4_c(path: str, stream: int | None) -> np.ndarray:
    """read_aedat4 with the C packet decoder: the file mapped, each packet decompressed
    from the mapping by one library call (uncompressed ones used in place), and decoded
    straight into one growing array."""
    with open(path, "rb") as f:
        header = _parse_header(f, path)
        chosen = _pick_stream(path, header, stream)
        file_size = os.fstat(f.fileno()).st_size
        end = _packets_end(path, header, file_size)
        dec = _CPackets(path)
        compressed = header.compression != "none"
        # Room for 16 bytes per event, or for up to 4x compression, at most 64 Mi events
        # (832 MiB) at first: pages never written are never touched; grown in place
        # (realloc) if short, shrunk at the end.
        per = _EVENT.itemsize if header.compression == "none" else _EVENT.itemsize // 4
        out: np.ndarray | None = None
        k = 0
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm, \
                _ffi.from_buffer("uint8_t[]", mm) as src:
            pos = header.data_offset
            unpack = _PACKET.unpack_from
            while pos < end:
                sid, size = unpack(mm, pos) if end - pos >= _PACKET.size else (0, -1)
                if size < 0 or size > end - pos - _PACKET.size:
                    _packet_size(path, pos, end, mm)  # raises, with the message of the reference
                at = pos + _PACKET.size
                if sid == chosen.id:
                    if out is None:
                        out = np.empty(min(max(file_size // per, 1024), 1 << 26), dtype=EVENT_DTYPE)
                    start = k
                    if compressed:  # a cffi buffer: no copy, and nothing left exported at close
                        out, k = dec.decode_payload(_ffi.buffer(src + at, size), header.compression, at, out, k)
                    else:
                        out, k = dec.decode(src + at, size, lambda a=at, n=size: mm[a:a + n], at, out, k)
                    _evt._check_range(path, out[start:k], chosen.width, chosen.height, at)
                pos = at + size
    return np.empty(0, dtype=EVENT_DTYPE) if out is None else _evt._shrink(out, k)


# --------------------------------------------------------------------------- #
# Writer
# --------------------------------------------------------------------------- #
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
    events = np.asarray(events)
    names = getattr(events.dtype, "names", None) or ()
    missing = [f for f in ("x", "y", "t", "p") if f not in names]
    if missing:
        raise ValueError(f"write_aedat4: events need fields x, y, t, p (missing {', '.join(missing)})")
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
                import lz4.frame
                payload = lz4.frame.compress(payload)
            elif compression == "zstd":
                import zstandard
                payload = zstandard.ZstdCompressor().compress(payload)
            f.write(_PACKET.pack(0, len(payload)))
            f.write(payload)
