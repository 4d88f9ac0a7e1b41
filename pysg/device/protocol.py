# SPDX-License-Identifier: MIT
"""The wire layer of docs/PROTOCOL.md: packets, COBS frames, a streaming frame splitter,
LEB128 varints, the STREAM_STEPS step-block codec, and status -> exception.

Nothing here does I/O: `pysg.device.link` moves the bytes, `pysg.device.client` gives
the operations types. Every function is usable on its own (tests, the fault proxy).

Packet (before COBS): u8 op, u8 seq, u16 len, payload[len], u32 CRC-32 of the rest.
Frame on the wire: COBS(packet) followed by one 0x00.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from cobs import cobs

from .ops import CRC_SIZE, ERROR_REPLIES, HEADER_SIZE, MAX_PAYLOAD, PACKET_HEADER, REPLIES, REPLY_BIT, STATUS_SIZE, \
    STATUS_TEXT, Op, Status

__all__ = [
    "ProtocolError", "FrameError", "StepBlockError", "DeviceError",
    "Packet", "encode_packet", "decode_packet", "encode_frame", "decode_frame", "max_frame_size",
    "FrameSplitter", "encode_varint", "decode_varint", "encode_varints",
    "encode_step", "encode_steps", "decode_steps", "pack_steps", "next_steps", "reply_bytes_per_step", "STEPS_REPLY_FIXED",
    "check_reply", "COUNT_MAX",
]

COUNT_MAX = 0xFFFF          # a step's count per input saturates here (uint16, as bin_events)
_HDR = struct.Struct(PACKET_HEADER.head_format)  # op, seq, len
_CRC = struct.Struct("<I")


class ProtocolError(Exception):
    """Base of every error the device protocol raises on the host."""


class FrameError(ProtocolError):
    """A frame that is not a valid packet (COBS, size, CRC)."""


class StepBlockError(ProtocolError, ValueError):
    """A STREAM_STEPS payload that does not decode (cut short, index out of range)."""


def _op_name(op: int) -> str:
    try:
        return Op(op).name
    except ValueError:
        return f"op 0x{op:02X}"


class DeviceError(ProtocolError):
    """The device answered a request with an error status.

    Attributes: op (the request's op), status (Status, or the raw int when unknown),
    text (what the status means), and the fields some errors carry: expected_offset
    (ERR_OFFSET), sg_status (ERR_MODEL, ERR_RUNTIME), error_offset (ERR_MODEL)."""

    def __init__(self, op: int, status: int, *, expected_offset: int | None = None,
                 sg_status: int | None = None, error_offset: int | None = None):
        self.op = op
        try:
            self.status: Status | int = Status(status)
            self.text = STATUS_TEXT[self.status]
        except ValueError:
            self.status = status
            self.text = f"unknown status {status} (the device is newer than the host)"
        self.expected_offset = expected_offset
        self.sg_status = sg_status
        self.error_offset = error_offset
        name = self.status.name if isinstance(self.status, Status) else str(status)
        msg = f"{_op_name(op)} failed: {name}: {self.text}"
        if expected_offset is not None:
            msg += f"; the device expects offset {expected_offset}"
        if sg_status is not None:
            msg += f"; runtime status {_sg_status_text(sg_status)}"
        if error_offset is not None:
            msg += f" at byte {error_offset} of the model"
        super().__init__(msg)


# ------------------------------------------------------------------ packets and frames


@dataclass(frozen=True)
class Packet:
    """One decoded packet: op (a reply has REPLY_BIT set), seq, payload."""

    op: int
    seq: int
    payload: bytes

    @property
    def is_reply(self) -> bool:
        return bool(self.op & REPLY_BIT)


def encode_packet(op: int, seq: int, payload: bytes = b"") -> bytes:
    """The packet bytes (header, payload, CRC-32) before COBS."""
    if not 0 <= op <= 0xFF or not 0 <= seq <= 0xFF:
        raise ValueError(f"op {op} and seq {seq} must be bytes (0..255)")
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes; the length field holds at most 65535")
    body = _HDR.pack(op, seq, len(payload)) + bytes(payload)
    return body + _CRC.pack(zlib.crc32(body))


def decode_packet(data: bytes) -> Packet:
    """Parse packet bytes (after COBS decoding); FrameError on a size or CRC mismatch."""
    if len(data) < HEADER_SIZE + CRC_SIZE:
        raise FrameError(f"packet of {len(data)} bytes is shorter than header + CRC ({HEADER_SIZE + CRC_SIZE})")
    op, seq, n = _HDR.unpack_from(data)
    if len(data) != n + HEADER_SIZE + CRC_SIZE:
        raise FrameError(f"packet of {len(data)} bytes but its len field says {n} + {HEADER_SIZE + CRC_SIZE}")
    (crc,) = _CRC.unpack_from(data, len(data) - CRC_SIZE)
    actual = zlib.crc32(data[: len(data) - CRC_SIZE])
    if crc != actual:
        raise FrameError(f"CRC-32 mismatch: packet says 0x{crc:08X}, bytes give 0x{actual:08X}")
    return Packet(op, seq, bytes(data[HEADER_SIZE: HEADER_SIZE + n]))


def encode_frame(op: int, seq: int, payload: bytes = b"") -> bytes:
    """A frame ready for the wire: COBS(packet) + 0x00."""
    return cobs.encode(encode_packet(op, seq, payload)) + b"\x00"


def decode_frame(frame: bytes) -> Packet:
    """Decode one frame (the COBS bytes, with or without the trailing 0x00)."""
    if frame.endswith(b"\x00"):
        frame = frame[:-1]
    try:
        raw = cobs.decode(frame)
    except cobs.DecodeError as e:
        raise FrameError(f"COBS decoding failed: {e}") from None
    return decode_packet(raw)


def max_frame_size(max_payload: int = MAX_PAYLOAD) -> int:
    """Largest COBS-encoded frame (without the 0x00) of a packet with max_payload bytes."""
    n = max_payload + HEADER_SIZE + CRC_SIZE
    return n + n // 254 + 1


class FrameSplitter:
    """Bytes in, frames out: splits a byte stream at 0x00 into COBS frames.

    Robust to garbage: empty frames (repeated zeros) are skipped, and a run of bytes
    longer than `max_frame` is discarded up to the next zero (counted in `oversized`).
    The frames returned are undecoded (COBS bytes without the 0x00)."""

    def __init__(self, max_frame: int = max_frame_size()):
        if max_frame < 1:
            raise ValueError(f"max_frame must be positive, got {max_frame}")
        self.max_frame = max_frame
        self._buf = bytearray()
        self._skipping = False
        self.oversized = 0

    def feed(self, data: bytes) -> list[bytes]:
        frames = []
        start = 0
        while True:
            end = data.find(b"\x00", start)
            part = data[start:] if end < 0 else data[start:end]
            if not self._skipping:
                if len(self._buf) + len(part) > self.max_frame:
                    self._skipping = True
                    self._buf.clear()
                    self.oversized += 1
                else:
                    self._buf += part
            if end < 0:
                return frames
            if not self._skipping and self._buf:
                frames.append(bytes(self._buf))
            self._buf.clear()
            self._skipping = False
            start = end + 1

    @property
    def pending(self) -> int:
        """Bytes held of a frame not yet ended."""
        return len(self._buf)


# ------------------------------------------------------------------ varints


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, low group first, high bit = more bytes."""
    if value < 0:
        raise ValueError(f"a varint is unsigned, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes, pos: int = 0) -> tuple[int, int]:
    """(value, position after it); StepBlockError when the data ends inside it."""
    value = shift = 0
    while True:
        if pos >= len(data):
            raise StepBlockError(f"varint cut short at byte {pos}")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise StepBlockError(f"varint longer than 9 bytes ending at byte {pos}")


def encode_varints(values: np.ndarray) -> bytes:
    """LEB128 of each value of a non-negative integer array, concatenated (vectorised)."""
    v = np.asarray(values, dtype=np.int64).ravel()
    if v.size == 0:
        return b""
    if (v < 0).any():
        raise ValueError("varints are unsigned: negative value in the array")
    if (v < 0x80).all():
        return v.astype(np.uint8).tobytes()
    nbytes = np.ones(v.size, np.int64)
    rest = v >> 7
    while rest.any():
        nbytes += rest > 0
        rest >>= 7
    out = np.zeros(int(nbytes.sum()), np.uint8)
    start = np.concatenate(([0], np.cumsum(nbytes)[:-1]))
    for k in range(int(nbytes.max())):
        has = nbytes > k
        more = (nbytes > k + 1)[has]
        out[start[has] + k] = ((v[has] >> (7 * k)) & 0x7F) | (more.astype(np.int64) << 7)
    return out.tobytes()


# ------------------------------------------------------------------ step blocks (STREAM_STEPS)


def encode_step(counts: np.ndarray) -> bytes:
    """One step block from one step's input counts (any shape, flattened C order: the
    model's index c*H*W + y*W + x). One (index_delta, count) pair per input with events,
    ascending: varint n_pairs, then per pair varint index_delta (from 0 for the first
    pair, from the previous pair's index after it) and varint count (1..65535)."""
    flat = np.asarray(counts).ravel()
    if flat.size and (flat.min() < 0 or flat.max() > COUNT_MAX):
        raise ValueError(f"step counts must be in 0..{COUNT_MAX}")
    nz = np.flatnonzero(flat)
    if nz.size == 0:
        return b"\x00"
    pairs = np.empty(2 * nz.size, np.int64)
    pairs[0::2] = np.diff(nz, prepend=0)
    pairs[1::2] = flat[nz]
    return encode_varint(nz.size) + encode_varints(pairs)


def encode_steps(frames: np.ndarray) -> list[bytes]:
    """One block per step of a (T, C, H, W) (or (T, N)) counts array, as
    pysg.datasets.binning.bin_events / pysg.intref.frames_from_events produce."""
    frames = np.asarray(frames)
    if frames.ndim < 2:
        raise ValueError(f"frames must be (T, ...) per-step counts, got shape {frames.shape}")
    flat = frames.reshape(frames.shape[0], -1)
    return [encode_step(row) for row in flat]


def _step_varint(payload: bytes, pos: int, step: int) -> tuple[int, int]:
    """A varint of a step block: at most 32 bits in at most 5 bytes, as the device reads it."""
    value, end = decode_varint(payload, pos)
    if end - pos > 5 or value > 0xFFFFFFFF:
        raise StepBlockError(f"step {step}: varint beyond 32 bits at byte {pos}")
    return value, end


def decode_steps(payload: bytes, n_inputs: int) -> np.ndarray:
    """Decode a STREAM_STEPS payload into (n_steps, n_inputs) uint16 counts, checking it
    as the device does: StepBlockError on a block cut short, a varint beyond 32 bits, an
    index >= n_inputs, an index_delta of 0 after a block's first pair, or a count of 0 or
    above 65535."""
    steps = []
    pos = 0
    while pos < len(payload):
        k = len(steps)
        n_pairs, pos = _step_varint(payload, pos, k)
        counts = np.zeros(n_inputs, np.uint16)
        index = 0
        for i in range(n_pairs):
            delta, pos = _step_varint(payload, pos, k)
            count, pos = _step_varint(payload, pos, k)
            if i > 0 and delta == 0:
                raise StepBlockError(f"step {k}: pair {i} repeats input {index} (index_delta 0)")
            index += delta
            if index >= n_inputs:
                raise StepBlockError(f"step {k}: input index {index} >= {n_inputs}")
            if count == 0 or count > COUNT_MAX:
                raise StepBlockError(f"step {k}: count {count} of input {index} not in 1..{COUNT_MAX}")
            counts[index] = count
        steps.append(counts)
    if not steps:
        return np.zeros((0, n_inputs), np.uint16)
    return np.array(steps, dtype=np.uint16)


def reply_bytes_per_step(n_classes: int, logits: bool) -> int:
    """Bytes a step adds to a STREAM_STEPS reply."""
    return REPLIES[Op.STREAM_STEPS].items.size * n_classes if logits else 0


STEPS_REPLY_FIXED = STATUS_SIZE + REPLIES[Op.STREAM_STEPS].head_size  # i8 status, u32 step, u16 n_steps


def next_steps(sizes: Sequence[int], start: int, max_payload: int, per_step_reply: int,
               budget: int | None = None) -> int:
    """End (exclusive) of the STREAM_STEPS request that starts at step `start`: as many
    consecutive blocks (of these byte sizes) as fit in `budget` (default max_payload)
    bytes of request and of reply. One step always goes, if its block fits in
    max_payload; ValueError names a step whose block alone does not fit."""
    budget = max_payload if budget is None else min(budget, max_payload)
    limit = budget - STEPS_REPLY_FIXED
    max_steps = max(1, limit // per_step_reply) if per_step_reply else max_payload
    if per_step_reply and STEPS_REPLY_FIXED + per_step_reply > max_payload:
        raise ValueError(f"max_payload {max_payload} cannot hold one step's reply ({per_step_reply} bytes)")
    size = 0
    i = start
    while i < len(sizes) and i - start < max_steps:
        if sizes[i] > max_payload:
            raise ValueError(f"step {i} needs {sizes[i]} bytes but a device frame holds {max_payload}: "
                             f"too many active inputs in one step (use a smaller dt or more downsampling)")
        if i > start and size + sizes[i] > budget:
            break
        size += sizes[i]
        i += 1
    return i


def pack_steps(blocks: Sequence[bytes], max_payload: int, per_step_reply: int,
               budget: int | None = None) -> list[tuple[int, int]]:
    """All of `blocks` grouped into STREAM_STEPS requests: (start, stop) ranges (see
    next_steps)."""
    sizes = [len(b) for b in blocks]
    ranges = []
    a = 0
    while a < len(sizes):
        b = next_steps(sizes, a, max_payload, per_step_reply, budget)
        ranges.append((a, b))
        a = b
    return ranges


# ------------------------------------------------------------------ replies


def check_reply(request_op: int, packet: Packet) -> bytes:
    """The reply's payload after the status byte when the status is OK; DeviceError
    (with the error's extra fields) otherwise, ProtocolError for a malformed reply."""
    if packet.op != (request_op | REPLY_BIT):
        raise ProtocolError(f"reply op 0x{packet.op:02X} to {_op_name(request_op)} "
                            f"(expected 0x{request_op | REPLY_BIT:02X})")
    p = packet.payload
    if not p:
        raise ProtocolError(f"reply to {_op_name(request_op)} has no status byte")
    status = struct.unpack_from("<b", p)[0]
    if status == Status.OK:
        return p[1:]
    extra = {}
    rest = p[1:]
    layout = ERROR_REPLIES.get(status)  # the errors that carry fields, named as DeviceError's arguments
    if layout is not None and len(rest) >= layout.head_size:
        extra = dict(zip([f.name for f in layout.head], struct.unpack_from(layout.head_format, rest)))
    raise DeviceError(request_op, status, **extra)


def _sg_status_text(value: int) -> str:
    """The runtime's name and description of an sg_status ("SG_ERR_ARENA: ..."), when the C
    extension is there to say it; the number otherwise (the host needs no C to talk)."""
    from .. import _native

    if _native.available():
        return _native.status_text(int(value))
    return f"sg_status {int(value)}"
