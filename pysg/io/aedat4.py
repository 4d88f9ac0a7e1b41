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
are decoded by ``sg_aedat4_decode_events`` (runtime_c/src/host/sg_decode.c) straight into
one output array; the Python path below is the reference, used for every packet the C
decoder refuses (so errors are always the reference's).

The layout constants, flatbuffer access and IOHeader parser are in
:mod:`pysg.io.aedat4_format`, the writer in :mod:`pysg.io.aedat4_writer`; their public
names are re-exported here.
"""
from __future__ import annotations

import mmap
import os
from typing import Any, BinaryIO, Callable, Iterator

import lz4.frame
import numpy as np
import zstandard

from pysg.events import EVENT_DTYPE, EventFileError
from pysg import _native
from pysg.io import evt as _evt
from pysg.io.aedat4_format import (
    _EVENT,
    _PACKET,
    COMPRESSIONS,
    MAGIC,
    Aedat4Header,
    Aedat4Stream,
    _FlatError,
    _field,
    _parse_header,
    _pick_stream,
    _table_fields,
    _u32,
    _vector,
    decode_io_header,
    read_aedat4_header,
)
from pysg.io.aedat4_writer import _flatbuffer, write_aedat4  # noqa: F401 - _flatbuffer: tests build packets

# The C event-packet decoder of runtime_c/src/host/sg_decode.c, used when the extension has it;
# the Python/numpy path below stays the reference, and the fallback: a packet the C
# decoder refuses is decoded again by the reference, which raises the error.
_ffi, _lib = _native.optional("sg_aedat4_decode_events") if _evt._lib is not None else (None, None)

__all__ = ["read_aedat4", "iter_aedat4", "read_aedat4_header", "write_aedat4", "Aedat4Header", "Aedat4Stream",
           "decode_io_header", "decode_event_packet"]

# Refuse a decompressed packet larger than this (a lying frame header).
MAX_PACKET_BYTES = 1 << 30
MIN_PACKET_LIMIT = 64 << 20  # a compressed packet may always inflate to this much (4 Mi events)
BOMB_RATIO = 32              # ... or to this many times its compressed size (events compress 2-10x)


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
