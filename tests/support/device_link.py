# SPDX-License-Identifier: MIT
"""The device protocol in RAW frames (docs/PROTOCOL.md), built from the `cobs` package
and zlib.crc32 only, independent of the host library pysg.device.client: a TCP link to
the POSIX emulated device, typed requests (HELLO, INFO, STATS, a whole model upload,
read-back) and STREAM_STEPS step blocks."""
from __future__ import annotations

import socket
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from cobs import cobs

from pysg.device.ops import MAX_PAYLOAD, Op, Status

REPLY_TIMEOUT = 20.0      # generous: a reply never takes long, a missing one fails the test


def packet(op: int, seq: int, payload: bytes = b"") -> bytes:
    p = struct.pack("<BBH", op, seq, len(payload)) + payload
    return p + struct.pack("<I", zlib.crc32(p))


def frame(op: int, seq: int, payload: bytes = b"") -> bytes:
    return cobs.encode(packet(op, seq, payload)) + b"\0"


@dataclass
class Reply:
    op: int
    seq: int
    status: int
    body: bytes   # the payload after the status byte
    raw: bytes    # the encoded frame as received


class RawLink:
    """A TCP connection to the device speaking raw frames."""

    def __init__(self, url: str):
        host, port = url.removeprefix("socket://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=REPLY_TIMEOUT)
        self.sock.sendall(b"\0")  # end whatever the device's receiver holds
        self.buf = b""
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> Reply:
        while b"\0" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("device closed the connection")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        p = cobs.decode(raw)
        op, seq, n = struct.unpack_from("<BBH", p)
        assert len(p) == n + 8, f"reply size {len(p)} != len {n} + 8"
        assert struct.unpack_from("<I", p, 4 + n)[0] == zlib.crc32(p[: 4 + n]), "reply CRC"
        return Reply(op, seq, struct.unpack_from("<b", p, 4)[0], p[5 : 4 + n], raw + b"\0")

    def request(self, op: int, payload: bytes = b"", *, expect: int | None = Status.OK) -> Reply:
        self.seq = (self.seq + 1) % 256
        self.send(frame(op, self.seq, payload))
        r = self.recv()
        assert r.op == op | 0x80 and r.seq == self.seq, (r.op, r.seq, op, self.seq)
        if expect is not None:
            assert r.status == expect, f"{Op(op).name}: status {r.status}, expected {int(expect)}"
        return r


def hello(link: RawLink) -> dict:
    b = link.request(Op.HELLO, struct.pack("<H", 1)).body
    version, caps, max_payload = struct.unpack_from("<HIH", b)
    device_id = b[8:16]
    fw_version, name_len = struct.unpack_from("<IB", b, 16)
    return {"version": version, "caps": caps, "max_payload": max_payload, "device_id": device_id,
            "fw_version": fw_version, "name": b[21 : 21 + name_len].decode()}


def info(link: RawLink) -> dict:
    b = link.request(Op.INFO).body
    active = b[0]
    slots = [dict(zip(("state", "generation", "size", "crc"), struct.unpack_from("<BIII", b, 1 + 13 * i)))
             for i in range(2)]
    (arena_capacity, arena_bytes, slot_capacity, fw_version, fw_crc, fw_confirmed, boot_state,
     uptime) = struct.unpack_from("<IIIIIBBI", b, 27)
    assert len(b) == 27 + 26
    return {"active": active, "slots": slots, "arena_capacity": arena_capacity, "arena_bytes": arena_bytes,
            "slot_capacity": slot_capacity, "fw_version": fw_version, "fw_confirmed": fw_confirmed,
            "boot_state": boot_state}


def stats(link: RawLink) -> dict:
    b = link.request(Op.STATS).body
    steps, events_in, synops, n_hidden = struct.unpack_from("<QQQB", b)
    spikes = list(struct.unpack_from(f"<{n_hidden}Q", b, 25))
    frames_ok, frames_dropped, _busy = struct.unpack_from("<III", b, 25 + 8 * n_hidden)
    return {"steps": steps, "events_in": events_in, "synops": synops, "spikes": spikes,
            "frames_ok": frames_ok, "frames_dropped": frames_dropped}


def begin(link: RawLink, data: bytes, *, crc: int | None = None, size: int | None = None,
          expect=Status.OK) -> Reply:
    size = len(data) if size is None else size
    crc = zlib.crc32(data) if crc is None else crc
    return link.request(Op.MODEL_BEGIN, struct.pack("<II", size, crc), expect=expect)


def send_data(link: RawLink, data: bytes, start: int, stop: int, chunk: int = MAX_PAYLOAD - 4) -> None:
    for off in range(start, stop, chunk):
        r = link.request(Op.MODEL_DATA, struct.pack("<I", off) + data[off : min(off + chunk, stop)])
        assert struct.unpack("<I", r.body)[0] == min(off + chunk, stop)


def upload(link: RawLink, data: bytes) -> tuple[int, int]:
    """A whole upload; returns (slot, generation)."""
    r = begin(link, data)
    assert struct.unpack_from("<I", r.body, 1)[0] == 0
    send_data(link, data, 0, len(data))
    link.request(Op.MODEL_END)
    slot, generation = struct.unpack("<BI", link.request(Op.MODEL_ACTIVATE).body)
    return slot, generation


def read_model(link: RawLink, slot: int, size: int) -> bytes:
    out = b""
    n = MAX_PAYLOAD - 1
    while len(out) < size:
        k = min(n, size - len(out))
        out += link.request(Op.MODEL_READ, struct.pack("<BIH", slot, len(out), k)).body
    return out


# ------------------------------------------------------------------ step blocks (PROTOCOL.md 3.3)


def varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def step_block(counts: np.ndarray) -> bytes:
    """One step: n_pairs, then per input with events (index_delta, count), ascending."""
    flat = counts.reshape(-1).astype(np.int64)
    out = b""
    prev = n = 0
    for i in range(flat.size):
        if flat[i]:
            out += varint(i - prev) + varint(int(flat[i]))
            prev = i
            n += 1
    return varint(n) + out


def stream(link: RawLink, frames: np.ndarray, n_classes: int) -> np.ndarray:
    """STREAM_STEPS over all frames (request and reply within MAX_PAYLOAD); (T, classes) logits."""
    per_reply = (MAX_PAYLOAD - 7) // (4 * n_classes)
    blocks = [step_block(f) for f in frames]
    logits = []
    i = 0
    while i < len(blocks):
        payload = b""
        k = 0
        while i + k < len(blocks) and k < per_reply and len(payload) + len(blocks[i + k]) <= MAX_PAYLOAD:
            payload += blocks[i + k]
            k += 1
        assert k > 0, f"step {i} alone does not fit in a frame"
        r = link.request(Op.STREAM_STEPS, payload)
        step, n_steps = struct.unpack_from("<IH", r.body)
        assert n_steps == k and step == i + k
        logits.append(np.frombuffer(r.body[6:], "<i4").reshape(k, n_classes))
        i += k
    return np.concatenate(logits)
