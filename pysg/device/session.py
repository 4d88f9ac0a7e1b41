# SPDX-License-Identifier: MIT
"""The base of `pysg.device.client.Device`: the link to a device, HELLO and reconnection,
the frame size that adapts to a noisy link (`FrameSizer`: one rule for uploads, their
read-back, `read_model` and streaming), and the operations that leave what the device
stores alone (INFO, STATS, reading a model slot and the active model's header, RESET,
SET_BAUD), and the one that only chooses among stored models (MODEL_SELECT: roll back to
the other slot); the host's serial ports (`list_serial_ports`)."""
from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Callable, Self

from .link import DEFAULT_BAUD, HELLO_INTERVAL, LINK_BYTES_PER_S, REPLY_TIMEOUT, REQUEST_RETRIES, Link, LinkError
from .ops import PROTOCOL_VERSION, Cap, Op
from .protocol import ProtocolError
from .replies import MIN_BUDGET, DeviceInfo, DeviceStats, HelloInfo, ModelHeader, NoModelError, StreamInfo, \
    UnsupportedError, VerifyError, _head

__all__ = ["Session", "FrameSizer", "RECONNECT_TIMEOUT", "Progress", "SLOT_NAMES", "slot_index", "list_serial_ports"]

SLOT_NAMES = ("A", "B")      # what the CLI calls model slots 0 and 1


def slot_index(name: str | int) -> int:
    """0 or 1 for a slot named A/B (any case) or 0/1; ValueError otherwise."""
    key = str(name).strip().upper()
    if key in SLOT_NAMES:
        return SLOT_NAMES.index(key)
    if key in ("0", "1"):
        return int(key)
    raise ValueError(f"slot {name!r}: give A or B")


def list_serial_ports() -> list[dict]:
    """The host's serial ports (pyserial's `serial.tools.list_ports`), sorted by path: each
    {"port", "description", "vid_pid" ("VVVV:PPPP" hex, or None), "serial_number",
    "manufacturer"}."""
    from serial.tools import list_ports

    out = []
    for p in sorted(list_ports.comports(), key=lambda p: p.device):
        vid_pid = f"{p.vid:04X}:{p.pid:04X}" if p.vid is not None and p.pid is not None else None
        desc = p.description if p.description and p.description != "n/a" else None
        out.append({"port": p.device, "description": desc, "vid_pid": vid_pid,
                    "serial_number": p.serial_number, "manufacturer": p.manufacturer})
    return out

RECONNECT_TIMEOUT = 30.0     # s to wait for a device to come back (link lost, reset, firmware update)
RECONNECT_HELLO_TRIES = 8    # HELLO tries per reconnect attempt
LOSS_DECAY = 0.97            # weight of the older tries in the loss estimate (~30 tries)
FRAME_OVERHEAD = 12          # bytes a frame adds to its payload on the wire (COBS, header, CRC)
SAFE_SHARE = 0.105           # -ln(0.9): the frame a request resent as it is sizes by (FrameSizer.safe)

Progress = Callable[[int, int], None]   # (done, total)


class FrameSizer:
    """The payload bytes per frame on a lossy link, one rule for every request. Per try it
    records the bytes exposed (request + reply, framed) and whether the reply came; a lost
    try was hit somewhere in it (counted as half its bytes). A frame of n bytes survives
    with (1-p)^n, so with p = losses / bytes exposed (decaying sums) the size is about
    1/p - overhead, between `low` and `high`: a lost try of about the size halves it at
    once, clean ones let it grow back by at most half per try."""

    def __init__(self, low: int, high: int, start: int | None = None):
        self.low, self.high = low, high
        self.size = max(low, min(high, high if start is None else start))
        self._lost = 0.0
        self._bytes = 0.0

    @property
    def safe(self) -> int:
        """The size for a request that cannot be sent again smaller (a stream's steps, a
        read): one whose try gets through 9 times in 10, (1-p)^n >= 0.9, n ~ 0.105/p;
        never above `size`. A whole request fails only if all its resends of that frame
        are lost, so it must rarely be hit."""
        if self._lost < 1e-9:
            return self.size
        n = int(SAFE_SHARE * self._bytes / self._lost) - 2 * FRAME_OVERHEAD
        return max(self.low, min(self.size, n))

    def bound(self, low: int, high: int) -> None:
        """New limits (a HELLO's max_payload), keeping what the link taught."""
        self.low, self.high = low, high
        self.size = max(low, min(high, self.size))

    def record(self, request: int, reply: int, ok: bool) -> None:
        """One try: `request` and `reply` payload bytes; `ok` whether its reply came."""
        frame = max(request, reply)
        n = request + reply + 2 * FRAME_OVERHEAD
        self._lost = self._lost * LOSS_DECAY + (0 if ok else 1)
        self._bytes = self._bytes * LOSS_DECAY + (n if ok else n / 2)
        if not ok:
            if 2 * frame >= self.size:  # a frame near the size was hit: halve it (a short one only counts)
                self.size = max(self.low, self.size // 2)
            return
        target = self.high if self._lost < 1e-9 else int(self._bytes / self._lost) - 2 * FRAME_OVERHEAD
        target = max(self.low, min(self.high, target))
        if target > self.size:  # grow back gently: at most by half per clean request
            self.size = min(target, self.size + max(1, self.size // 2))
        else:
            self.size = target


@dataclass
class _Stream:
    info: StreamInfo
    logits: bool
    step: int = 0


class Session:
    """A pysg device on a port (device path, pty or pyserial URL): the connection and the
    operations that do not upload anything. Use as a context manager;
    `connect()` opens the port and says HELLO."""

    def __init__(self, url: str, *, baudrate: int = DEFAULT_BAUD, reply_timeout: float = REPLY_TIMEOUT,
                 retries: int = REQUEST_RETRIES, bytes_per_s: float = LINK_BYTES_PER_S):
        self.url = url
        self.baudrate = baudrate
        self.boot_baudrate = baudrate   # the rate a device answers at after a reset (set_baud does not last)
        self.reply_timeout = reply_timeout
        self.retries = retries
        self.bytes_per_s = bytes_per_s
        self.link: Link | None = None
        self.hello_info: HelloInfo | None = None
        self.reconnects = 0
        self._stream: _Stream | None = None
        self.sizer: FrameSizer | None = None   # payload bytes per frame now (from HELLO's max_payload)
        self._header_cache: dict[tuple[int, int], ModelHeader] = {}

    # ------------------------------------------------------------ connection

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self, *, hello_retries: int | None = None) -> HelloInfo:
        self.close()
        self.link = Link.open(self.url, baudrate=self.baudrate, reply_timeout=self.reply_timeout,
                              retries=self.retries, bytes_per_s=self.bytes_per_s)
        return self.hello(**({} if hello_retries is None else {"retries": hello_retries}))

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None

    def reconnect(self, timeout: float = RECONNECT_TIMEOUT) -> HelloInfo:
        """Reopen the port and say HELLO until the device answers (or LinkError)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                try:
                    info = self.connect(hello_retries=RECONNECT_HELLO_TRIES)
                except LinkError:
                    if self.baudrate == self.boot_baudrate:
                        raise
                    # after SET_BAUD: a device that reset (firmware update, power) is back at its boot rate
                    self.baudrate, tried = self.boot_baudrate, self.baudrate
                    try:
                        info = self.connect(hello_retries=RECONNECT_HELLO_TRIES)
                    except LinkError:
                        self.baudrate = tried
                        raise
                self.reconnects += 1
                return info
            except LinkError as e:
                if time.monotonic() >= deadline:
                    raise LinkError(f"the device at {self.url} did not come back within {timeout:.0f} s ({e})") \
                        from None
                time.sleep(HELLO_INTERVAL)

    def _link(self) -> Link:
        if self.link is None:
            raise LinkError("not connected: use `with Device(url) as dev:` or call connect()")
        return self.link

    @property
    def frame_budget(self) -> int:
        """Payload bytes a request or its reply may carry now: FrameSizer.safe (uploads,
        which send a lost chunk again smaller, use FrameSizer.size)."""
        return self.sizer.safe if self.sizer is not None else self._link().max_payload

    def _cmd(self, op: Op, payload: bytes = b"", **kwargs) -> bytes:
        """A request through the link; every try (resends included) teaches the sizer."""
        link = self._link()
        before = link.counters.resends
        try:
            r = link.command(op, payload, **kwargs)
        except LinkError:
            self._record(len(payload), kwargs.get("reply_len") or 0, link.counters.resends - before + 1, False)
            raise
        self._record(len(payload), len(r), link.counters.resends - before, True)
        return r

    def _record(self, request: int, reply: int, lost: int, ok: bool) -> None:
        if self.sizer is None:
            return
        for _ in range(lost):
            self.sizer.record(request, reply, False)
        if ok:
            self.sizer.record(request, reply, True)

    def _need(self, cap: Cap, what: str) -> None:
        if self.hello_info is not None and cap not in self.hello_info.caps:
            raise UnsupportedError(f"the device ({self.hello_info.name}) has no {cap.name} capability: "
                                   f"it cannot {what}")

    # ------------------------------------------------------------ basic operations

    def hello(self, **kwargs) -> HelloInfo:
        info = HelloInfo.parse(self._link().hello(PROTOCOL_VERSION, **kwargs))
        if info.version != PROTOCOL_VERSION:
            raise ProtocolError(f"device speaks protocol version {info.version}, this host {PROTOCOL_VERSION}: "
                                f"update {'the firmware' if info.version < PROTOCOL_VERSION else 'pysg'}")
        top = info.max_payload
        self._link().max_payload = top
        if self.sizer is None:
            self.sizer = FrameSizer(min(MIN_BUDGET, top), top)
        else:  # a reconnect keeps what the link taught (a noisy link stays noisy)
            self.sizer.bound(min(MIN_BUDGET, top), top)
        self.hello_info = info
        self._stream = None
        return info

    def info(self) -> DeviceInfo:
        return DeviceInfo.parse(self._cmd(Op.INFO))

    def stats(self) -> DeviceStats:
        return DeviceStats.parse(self._cmd(Op.STATS))

    def reset(self, timeout: float = RECONNECT_TIMEOUT) -> HelloInfo:
        """Reset the device and wait until it answers HELLO again."""
        self._cmd(Op.RESET)
        self.baudrate = self.boot_baudrate  # a reset device answers at its boot rate again
        time.sleep(HELLO_INTERVAL)
        return self.reconnect(timeout)

    def set_baud(self, baud: int) -> HelloInfo:
        """Change the UART rate (the reply comes at the old rate), then HELLO at the new one."""
        self._need(Cap.BAUD, "change its baud rate")
        self._cmd(Op.SET_BAUD, struct.pack("<I", baud))
        link = self._link()
        link.port.flush()
        link.port.baudrate = baud
        link.drain()
        self.baudrate = baud
        return self.hello()

    # ------------------------------------------------------------ the stored models

    def read_model(self, slot: int, *, size: int | None = None, offset: int = 0,
                   progress: Progress | None = None) -> bytes:
        """`size` bytes (default: the slot's model size from INFO) of a slot's model."""
        if slot not in (0, 1):
            raise ValueError(f"read_model: slot must be 0 or 1, got {slot}")
        if size is None:
            s = self.info().slots[slot]
            if not s.valid:
                raise ValueError(f"slot {slot} holds no valid model")
            size = s.size - offset
        out = bytearray()
        while len(out) < size:
            want = min(self.frame_budget - 1, 0xFFFF, size - len(out))
            r = self._cmd(Op.MODEL_READ, struct.pack("<BIH", slot, offset + len(out), want), reply_len=want + 1)
            if len(r) != want:
                raise ProtocolError(f"MODEL_READ of {want} bytes returned {len(r)}")
            out += r
            if progress:
                progress(len(out), size)
        return bytes(out)

    def read_slot_model(self, slot: int | None = None, *, progress: Progress | None = None) -> tuple[int, bytes]:
        """(slot, bytes) of a slot's whole model (default: the active slot's), checked against
        the CRC-32 the device keeps for the slot (VerifyError if they differ)."""
        import zlib

        info = self.info()
        if slot is None:
            if info.active_slot is None:
                raise NoModelError(f"the device at {self.url} has no active model: nothing to read")
            slot = info.active_slot
        s = info.slots[slot]
        if not s.valid:
            raise NoModelError(f"slot {SLOT_NAMES[slot]} of the device at {self.url} holds no valid model")
        data = self.read_model(slot, size=s.size, progress=progress)
        crc = zlib.crc32(data)
        if crc != s.crc:
            raise VerifyError(f"slot {SLOT_NAMES[slot]} read back with CRC-32 {crc:08x}, the device's slot header "
                              f"says {s.crc:08x}: read again (a noisy link?)")
        return slot, data

    def select_slot(self, slot: int) -> tuple[int, int]:
        """Roll back: make `slot` (0 or 1, holding a valid model) the active one (MODEL_SELECT;
        the device records the choice; both models stay). Returns (slot, generation)."""
        if slot not in (0, 1):
            raise ValueError(f"select_slot: slot must be 0 or 1, got {slot}")
        r = _parse_select(self._cmd(Op.MODEL_SELECT, struct.pack("<B", slot)))
        self._header_cache.clear()
        return r

    def model_header(self) -> ModelHeader:
        """Geometry, time step and labels of the active model (read from its .sgm header)."""
        from ..sgm import HEADER_FIELDS, HEADER_SIZE, LABEL_SIZE, LAYER_ENTRY_SIZE, MAGIC
        from ..sgm.kinds import FORMATS

        info = self.info()
        if info.active_slot is None:
            raise NoModelError(f"the device at {self.url} has no model: flash one with "
                               f"`pysg flash --port {self.url} MODEL.sgm`")
        slot = info.slots[info.active_slot]
        key = (slot.generation, slot.crc)
        if key in self._header_cache:
            return self._header_cache[key]
        raw = self.read_model(info.active_slot, size=HEADER_SIZE)
        h = {name: struct.unpack_from("<" + code, raw, off)[0] for name, off, code in HEADER_FIELDS}
        if h["magic"] != MAGIC:
            raise ProtocolError(f"slot {info.active_slot} does not start with an .sgm header ({h['magic']!r})")
        lab = self.read_model(info.active_slot, offset=h["labels_offset"], size=h["n_classes"] * LABEL_SIZE)
        labels = [lab[i * LABEL_SIZE:(i + 1) * LABEL_SIZE].split(b"\0", 1)[0].decode("utf-8", "replace")
                  for i in range(h["n_classes"])]
        entry = self.read_model(info.active_slot, offset=h["layers_offset"], size=LAYER_ENTRY_SIZE)
        if h["format_version"] not in FORMATS:
            raise ProtocolError(f"slot {info.active_slot} holds .sgm version {h['format_version']}, which this host "
                                "does not know")
        channels = FORMATS[h["format_version"]].count_channels(h, entry)  # the kind knows its input
        mh = ModelHeader(h["dt_us"], (channels, h["in_h"], h["in_w"]), (h["sensor_w"], h["sensor_h"]),
                         h["downsample"], labels, h["file_size"], h["format_version"])
        self._header_cache[key] = mh
        return mh


def _parse_select(reply: bytes) -> tuple[int, int]:
    h = _head(Op.MODEL_SELECT, reply)
    return h["slot"], h["generation"]
