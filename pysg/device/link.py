# SPDX-License-Identifier: MIT
"""Request/reply over a serial link (docs/PROTOCOL.md 1, 4).

A `Link` owns one pyserial port (a device path, a pty, or any pyserial URL such as
`socket://127.0.0.1:PORT`). Every new request gets the next `seq`; a request whose
reply does not arrive within the timeout is resent unchanged (same seq): the device
answers a repeated seq from its reply cache without executing it again. Frames that
do not decode, and replies with another seq (late answers to earlier tries), are
counted and ignored.

How long to wait before a resend adapts to the link (docs/PROTOCOL.md 4): the round trip
of requests answered at their first try is measured (smoothed mean and deviation, as TCP
does; resent requests give no sample: their reply may answer either try), and a request
waits its frames' transfer time plus that mean and four deviations (at least
`MIN_RTO`) before the first resend, doubling the wait at each further resend up to the
fixed `REPLY_TIMEOUT` (plus transfer time). On a lossy but fast link a lost frame then
costs a few round trips instead of a second. A request gives up only after both
`retries` resends and the time the fixed timeout allows for them, so a device that
stopped answering is declared lost no sooner than before.
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
MIN_RTO = 0.05             # s: the adaptive wait before a resend never goes below this
_RX_CHUNK = 65536
_SMALL_REPLY = 64          # bytes: every reply but MODEL_READ's and STREAM_STEPS' (they say theirs)


class LinkError(ProtocolError):
    """The device did not answer (after every retry), or the port failed."""


class LinkLost(LinkError):
    """The port itself failed (socket closed, USB device gone) and could not be reopened."""


def open_port(url: str, *, baudrate: int = DEFAULT_BAUD) -> serial.SerialBase:
    """Open a device path or pyserial URL; LinkError saying what to check when it fails."""
    if url.startswith("socket://") and not url[len("socket://"):].rpartition(":")[2].isdigit():
        raise LinkError(f"cannot open {url}: a socket URL needs a port (socket://HOST:PORT, as `pysg emulate` "
                        "prints it)")
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
    rtt_samples: int = 0     # round trips measured (requests answered at their first try)


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
        self._srtt: float | None = None   # s: smoothed round trip beyond the transfer time
        self._rttvar = 0.0

    @property
    def rto(self) -> float | None:
        """The adaptive wait before a first resend, beyond the transfer time (None until a
        round trip was measured)."""
        if self._srtt is None:
            return None
        return min(self.reply_timeout, max(MIN_RTO, self._srtt + 4 * self._rttvar))

    def _sample_rtt(self, excess: float) -> None:
        excess = max(0.0, excess)
        self.counters.rtt_samples += 1
        if self._srtt is None:
            self._srtt, self._rttvar = excess, excess / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - excess)
            self._srtt = 0.875 * self._srtt + 0.125 * excess

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

    def request(self, op: int, payload: bytes = b"", *, retries: int | None = None,
                interval: float | None = None, reply_len: int | None = None,
                patience: float | None = None) -> Packet:
        """Send a request and return its reply packet (status unchecked). The same frame
        (same seq) is resent when no reply came: every `interval` s when given, else after
        the adaptive wait (module doc), doubling up to the reply timeout. LinkError when
        nothing answers after `retries` resends and `patience` s (default: the time
        `retries` + 1 full timeouts take; 0: after the resends alone, for a caller that
        sends a smaller request next)."""
        if len(payload) > self.max_payload:
            raise ValueError(f"{Op(op).name} payload of {len(payload)} bytes exceeds the device's "
                             f"max_payload {self.max_payload}")
        seq = self.next_seq()
        frame = encode_frame(op, seq, payload)
        tries = 1 + (self.retries if retries is None else retries)
        transfer = (len(frame) + (_SMALL_REPLY if reply_len is None else reply_len)) / self.bytes_per_s
        cap = interval if interval is not None else self.reply_timeout + transfer
        rto = None if interval is not None else self.rto
        wait = cap if rto is None else min(cap, transfer + rto)
        budget = tries * cap if patience is None else patience  # default: what `tries` fixed timeouts took
        self.counters.requests += 1
        t_first = time.monotonic()
        attempt = 0
        while True:
            if attempt:
                self.counters.resends += 1
            try:
                t_send = time.monotonic()
                self._write(frame, sync=op == Op.HELLO)
                pkt = self._await(op, seq, wait)
            except LinkLost:
                self.reopen()  # then the same frame again: same seq, so still exactly once
                pkt = None
            if pkt is not None:
                if attempt == 0:
                    self._sample_rtt(time.monotonic() - t_send - transfer)
                return pkt
            attempt += 1
            spent = time.monotonic() - t_first
            if attempt >= tries and spent >= budget - 1e-3:
                break
            wait = min(cap, wait * 2)
            if attempt >= tries - 1:              # the last try waits out the rest of the budget
                wait = max(wait, budget - spent)
        raise LinkError(f"no reply to {Op(op).name} from {self.url or 'the device'} after {attempt} tries "
                        f"({time.monotonic() - t_first:.1f} s): check that the device is powered and running "
                        f"pysg firmware, the port and the baud rate")

    def command(self, op: int, payload: bytes = b"", **kwargs) -> bytes:
        """Request and check: the reply's payload after an OK status, DeviceError otherwise."""
        return check_reply(op, self.request(op, payload, **kwargs))

    def hello(self, host_version: int = PROTOCOL_VERSION, *, retries: int = HELLO_RETRIES,
              interval: float = HELLO_INTERVAL) -> bytes:
        """HELLO, retried every `interval` s; returns the reply payload after the status."""
        return self.command(Op.HELLO, host_version.to_bytes(2, "little"), retries=retries, interval=interval)
