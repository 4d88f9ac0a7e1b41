# SPDX-License-Identifier: MIT
"""Request/reply over a serial link (docs/PROTOCOL.md 1, 4).

A `Link` owns one pyserial port (a device path, a pty, or any pyserial URL such as
`socket://127.0.0.1:PORT`). Every new request gets the next `seq`; a request whose
reply does not arrive within the timeout is resent unchanged (same seq): the device
answers a repeated seq from its reply cache without executing it again. Frames that
do not decode, and replies with another seq (late answers to earlier tries), are
counted and ignored.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import serial

from .ops import MAX_PAYLOAD, PROTOCOL_VERSION, REPLY_BIT, Op
from .protocol import FrameError, FrameSplitter, Packet, ProtocolError, check_reply, decode_frame, encode_frame, \
    max_frame_size

__all__ = ["LinkError", "LinkLost", "Link", "open_port", "REPLY_TIMEOUT", "REQUEST_RETRIES", "HELLO_RETRIES",
           "HELLO_INTERVAL", "DEFAULT_BAUD", "LINK_BYTES_PER_S"]

REOPEN_TIMEOUT = 5.0       # s to get a lost port back before a request gives up
REOPEN_INTERVAL = 0.1      # s between tries to reopen it
REPLY_TIMEOUT = 1.0        # s to wait for a reply (plus the frame's transfer time) before resending
REQUEST_RETRIES = 8        # resends of one request before giving up
HELLO_RETRIES = 40         # HELLO tries: some UARTs drop what arrives before they are ready
HELLO_INTERVAL = 0.25      # s between HELLO tries
DEFAULT_BAUD = 115200
LINK_BYTES_PER_S = 10_000  # default link speed the timeout allows for (QEMU's UART moves ~12 KiB/s)
_RX_CHUNK = 65536
_SMALL_REPLY = 64          # bytes: every reply but MODEL_READ's and STREAM_STEPS' (they say theirs)


class LinkError(ProtocolError):
    """The device did not answer (after every retry), or the port failed."""


class LinkLost(LinkError):
    """The port itself failed (socket closed, USB device gone) and could not be reopened."""


def open_port(url: str, *, baudrate: int = DEFAULT_BAUD) -> serial.SerialBase:
    """Open a device path or pyserial URL; LinkError saying what to check when it fails."""
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=REPLY_TIMEOUT, write_timeout=10.0)
    except (serial.SerialException, ValueError, OSError) as e:
        raise LinkError(f"cannot open {url}: {e}. Check the port name (a device path such as /dev/ttyACM0, "
                        f"a pty, or socket://HOST:PORT) and that no other program holds it") from None


@dataclass
class LinkCounters:
    requests: int = 0
    resends: int = 0
    bad_frames: int = 0      # frames that did not decode (COBS, size, CRC)
    stray_frames: int = 0    # valid frames with another seq or op
    reopens: int = 0         # times the port was lost and opened again


class Link:
    """Framed request/reply on an open port. `max_payload` is updated from HELLO."""

    def __init__(self, port: serial.SerialBase, *, reply_timeout: float = REPLY_TIMEOUT,
                 retries: int = REQUEST_RETRIES, url: str | None = None, bytes_per_s: float = LINK_BYTES_PER_S):
        self.port = port
        self.url = url
        self.reply_timeout = reply_timeout
        self.retries = retries
        self.bytes_per_s = bytes_per_s
        self.max_payload = MAX_PAYLOAD
        self.counters = LinkCounters()
        self._seq = 0
        self._splitter = FrameSplitter(max_frame_size(0xFFFF))
        self._pending: list[bytes] = []
        self._synced = False

    @classmethod
    def open(cls, url: str, *, baudrate: int = DEFAULT_BAUD, **kwargs) -> "Link":
        return cls(open_port(url, baudrate=baudrate), url=url, **kwargs)

    def close(self) -> None:
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass

    # ------------------------------------------------------------ bytes

    def _write(self, data: bytes, *, sync: bool = False) -> None:
        try:
            if sync or not self._synced:  # a lone 0x00 ends whatever the device's receiver holds
                data = b"\x00" + data
                self._synced = True
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as e:
            raise LinkLost(f"write to {self.url or 'the port'} failed: {e}") from None

    def _read_frames(self, timeout: float) -> list[bytes]:
        """Frames received within `timeout` s (returns as soon as at least one is there)."""
        if self._pending:
            out, self._pending = self._pending, []
            return out
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            try:
                self.port.timeout = left
                data = self.port.read(1)
                if data:
                    self.port.timeout = 0
                    data += self.port.read(_RX_CHUNK)
            except (serial.SerialException, OSError) as e:
                raise LinkLost(f"read from {self.url or 'the port'} failed: {e}") from None
            frames = self._splitter.feed(data)
            if frames:
                return frames

    def reopen(self, timeout: float = REOPEN_TIMEOUT) -> None:
        """Open the port again after it failed (LinkLost when it does not come back). The
        device keeps its reply cache: a request resent afterwards with the same seq is
        still answered exactly once."""
        if self.url is None:
            raise LinkLost("the port failed and was not opened from a URL: cannot reopen it")
        self.close()
        deadline = time.monotonic() + timeout
        while True:
            time.sleep(REOPEN_INTERVAL)
            try:
                self.port = open_port(self.url, baudrate=self.port.baudrate)
                break
            except LinkError as e:
                if time.monotonic() >= deadline:
                    raise LinkLost(f"{self.url} was lost and did not come back within {timeout:.0f} s: {e}") \
                        from None
        self.counters.reopens += 1
        self._synced = False
        self._pending.clear()
        self._splitter = FrameSplitter(self._splitter.max_frame)

    def drain(self) -> None:
        """Forget every byte received so far (after a baud change or a reset)."""
        self._pending.clear()
        self._splitter = FrameSplitter(self._splitter.max_frame)
        try:
            self.port.reset_input_buffer()
        except (serial.SerialException, OSError):
            pass

    # ------------------------------------------------------------ request / reply

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def _await(self, op: int, seq: int, timeout: float) -> Packet | None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            frames = self._read_frames(left)
            for i, f in enumerate(frames):
                try:
                    pkt = decode_frame(f)
                except FrameError:
                    self.counters.bad_frames += 1
                    continue
                if pkt.seq == seq and pkt.op == (op | REPLY_BIT):
                    self._pending = frames[i + 1:] + self._pending
                    return pkt
                self.counters.stray_frames += 1

    def _timeout_for(self, frame_len: int, reply_len: int) -> float:
        return self.reply_timeout + (frame_len + reply_len) / self.bytes_per_s

    def request(self, op: int, payload: bytes = b"", *, retries: int | None = None,
                interval: float | None = None, reply_len: int | None = None) -> Packet:
        """Send a request and return its reply packet (status unchecked). The same frame
        (same seq) is resent every `interval` s (default: the reply timeout) up to
        `retries` times; LinkError when nothing answers."""
        if len(payload) > self.max_payload:
            raise ValueError(f"{Op(op).name} payload of {len(payload)} bytes exceeds the device's "
                             f"max_payload {self.max_payload}")
        seq = self.next_seq()
        frame = encode_frame(op, seq, payload)
        tries = 1 + (self.retries if retries is None else retries)
        wait = interval if interval is not None else self._timeout_for(
            len(frame), _SMALL_REPLY if reply_len is None else reply_len)
        self.counters.requests += 1
        for attempt in range(tries):
            if attempt:
                self.counters.resends += 1
            try:
                self._write(frame, sync=op == Op.HELLO)
                pkt = self._await(op, seq, wait)
            except LinkLost:
                self.reopen()  # then the same frame again: same seq, so still exactly once
                continue
            if pkt is not None:
                return pkt
        raise LinkError(f"no reply to {Op(op).name} from {self.url or 'the device'} after {tries} tries "
                        f"({wait:.2f} s each): check that the device is powered and running pysg firmware, "
                        f"the port and the baud rate")

    def command(self, op: int, payload: bytes = b"", **kwargs) -> bytes:
        """Request and check: the reply's payload after an OK status, DeviceError otherwise."""
        return check_reply(op, self.request(op, payload, **kwargs))

    def hello(self, host_version: int = PROTOCOL_VERSION, *, retries: int = HELLO_RETRIES,
              interval: float = HELLO_INTERVAL) -> bytes:
        """HELLO, retried every `interval` s; returns the reply payload after the status."""
        return self.command(Op.HELLO, host_version.to_bytes(2, "little"), retries=retries, interval=interval)
