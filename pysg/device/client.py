# SPDX-License-Identifier: MIT
"""`Device`: the typed operations of docs/PROTOCOL.md on top of `pysg.device.link`.

    with Device("socket://127.0.0.1:5555") as dev:
        print(dev.hello_info, dev.info())
        dev.upload_model(open("model.sgm", "rb").read(), progress=print)
        rows = list(dev.stream_gestures(events, labels))

Uploads resume where the device stopped after a lost link (the device keeps the
received bytes in RAM; MODEL_BEGIN answers the offset), are verified on the device
(CRC-32 and the runtime's own validation at END) and read back before activation.
Streams send the input counts that `pysg.datasets.binning.bin_events` gives the
integer reference, so the device's logits and predictions equal `pysg.intref`'s.
"""
from __future__ import annotations

import math
import struct
import time
import zlib
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import numpy as np

from ..scoring import WARMUP  # the SpikingGamma rule's warm-up (pysg.scoring), kept as a name here
from .link import DEFAULT_BAUD, HELLO_INTERVAL, LINK_BYTES_PER_S, REPLY_TIMEOUT, REQUEST_RETRIES, Link, LinkError
from .ops import PROTOCOL_VERSION, REPLIES, Cap, Op, Status, StreamFlag
from .protocol import STEPS_REPLY_FIXED, DeviceError, ProtocolError, encode_steps, next_steps, \
    reply_bytes_per_step

__all__ = ["Device", "HelloInfo", "SlotInfo", "DeviceInfo", "DeviceStats", "StreamInfo", "Prediction",
           "ModelHeader", "UploadResult", "VerifyError", "UnsupportedError", "NoModelError", "WARMUP", "RECONNECT_TIMEOUT", "UPLOAD_RECONNECTS"]

RECONNECT_TIMEOUT = 30.0     # s to wait for a device to come back (link lost, reset, firmware update)
RECONNECT_HELLO_TRIES = 8    # HELLO tries per reconnect attempt
UPLOAD_RECONNECTS = 20       # link losses one upload survives before giving up
MIN_BUDGET = 64              # bytes: smallest frame payload the host shrinks to on a noisy link
GROW_AFTER = 8               # clean requests before the frame budget doubles again
FW_BOOT_TIMEOUT = 60.0       # s for the bootloader to copy an image and start it
OFFSET_JUMPS = 3             # ERR_OFFSET answers in a row before an upload gives up
ERASE_TIMEOUT = 5.0          # s a BEGIN may take to answer: it erases first (STM32F4: 1-2 s per 128 KB sector)
SLOT_VALID = 1
NO_SLOT = 0xFF

Progress = Callable[[int, int], None]   # (done, total)


class VerifyError(ProtocolError):
    """What the device stored differs from what the host sent."""


class UnsupportedError(ProtocolError):
    """The device lacks the capability an operation needs (HELLO caps)."""


class NoModelError(ProtocolError):
    """The device has no valid model slot (INFO), so there is nothing to stream to."""


# ------------------------------------------------------------------ reply records
# Every reply is parsed with its layout in pysg.device.ops.REPLIES (the table the
# firmware's SG_REPLY_* macros are generated from).


def _short(op: Op, reply: bytes, need: int) -> ProtocolError:
    return ProtocolError(f"{op.name} reply of {len(reply)} bytes after the status, expected at least {need}: "
                         f"is the device running pysg firmware of this protocol version?")


def _head(op: Op, reply: bytes) -> dict:
    """The head fields of an OK reply to `op` by name; ProtocolError when it is too short."""
    layout = REPLIES[op]
    if len(reply) < layout.head_size:
        raise _short(op, reply, layout.head_size)
    return dict(zip([f.name for f in layout.head], struct.unpack_from(layout.head_format, reply)))


def _items(op: Op, reply: bytes, count: int) -> np.ndarray | list[dict]:
    """The `count` items after the head of an OK reply to `op`: an array when an item is
    one number, else a dict per item; ProtocolError when the reply is too short."""
    layout = REPLIES[op]
    it = layout.items
    need = layout.head_size + count * it.size
    if len(reply) < need:
        raise _short(op, reply, need)
    if len(it.fields) == 1:
        return np.frombuffer(reply, "<" + it.code, count=count, offset=layout.head_size).copy()
    names = [f.name for f in it.fields]
    return [dict(zip(names, struct.unpack_from("<" + it.code, reply, layout.head_size + k * it.size)))
            for k in range(count)]


def _tail(op: Op, reply: bytes, count: int) -> dict:
    """The tail fields of an OK reply to `op` whose items number `count`."""
    layout = REPLIES[op]
    at = layout.head_size + count * layout.items.size
    if len(reply) < at + layout.tail_size:
        raise _short(op, reply, at + layout.tail_size)
    return dict(zip([f.name for f in layout.tail], struct.unpack_from(layout.tail_format, reply, at)))


@dataclass(frozen=True)
class HelloInfo:
    version: int
    caps: Cap
    max_payload: int
    device_id: str          # 16 hex digits
    fw_version: int
    name: str

    @classmethod
    def parse(cls, p: bytes) -> "HelloInfo":
        h = _head(Op.HELLO, p)
        name_at, n = REPLIES[Op.HELLO].head_size, h["name_len"]
        if len(p) != name_at + n:
            raise ProtocolError(f"HELLO reply of {len(p)} bytes for a {n}-byte name, expected {name_at + n}")
        if h["max_payload"] < MIN_BUDGET:  # uploads would send empty chunks for ever
            raise ProtocolError(f"HELLO reply says max_payload {h['max_payload']}; the protocol needs at least "
                                f"{MIN_BUDGET} bytes")
        return cls(h["version"], Cap(h["caps"]), h["max_payload"], h["device_id"].hex(), h["fw_version"],
                   p[name_at:].decode("ascii", "replace"))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["caps"] = [c.name for c in Cap if c in self.caps]
        d["fw_version"] = fw_version_text(self.fw_version)
        return d


@dataclass(frozen=True)
class SlotInfo:
    state: int
    generation: int
    size: int
    crc: int

    @property
    def valid(self) -> bool:
        return self.state == SLOT_VALID


@dataclass(frozen=True)
class DeviceInfo:
    active_slot: int | None
    slots: tuple[SlotInfo, SlotInfo]
    arena_capacity: int
    arena_bytes: int
    slot_capacity: int
    fw_version: int
    fw_crc: int
    fw_confirmed: bool
    boot_state: int
    uptime_ms: int

    @classmethod
    def parse(cls, p: bytes) -> "DeviceInfo":
        n = REPLIES[Op.INFO].items.count
        active = _head(Op.INFO, p)["active_slot"]
        slots = tuple(SlotInfo(**s) for s in _items(Op.INFO, p, n))
        t = _tail(Op.INFO, p, n)
        if active not in (0, 1, NO_SLOT):
            raise ProtocolError(f"INFO reply names active slot {active}; a device has slots 0 and 1")
        return cls(None if active == NO_SLOT else active, slots, t["arena_capacity"], t["arena_bytes"],
                   t["slot_capacity"], t["fw_version"], t["fw_crc"], bool(t["fw_confirmed"]), t["boot_state"],
                   t["uptime_ms"])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fw_version"] = fw_version_text(self.fw_version)
        return d


@dataclass(frozen=True)
class DeviceStats:
    steps: int
    events_in: int
    synops: int
    spikes: list[int]
    frames_ok: int
    frames_dropped: int
    busy_us: int

    @classmethod
    def parse(cls, p: bytes) -> "DeviceStats":
        layout = REPLIES[Op.STATS]
        h = _head(Op.STATS, p)
        n = h["n_hidden"]
        want = layout.head_size + n * layout.items.size + layout.tail_size
        if len(p) != want:
            raise ProtocolError(f"STATS reply of {len(p)} bytes for {n} hidden stages, expected {want}")
        t = _tail(Op.STATS, p, n)
        return cls(h["steps"], h["events_in"], h["synops"], _items(Op.STATS, p, n).tolist(), t["frames_ok"],
                   t["frames_dropped"], t["busy_us"])


@dataclass(frozen=True)
class StreamInfo:
    n_classes: int
    input_shape: tuple[int, int, int]
    dt_us: int

    @property
    def n_inputs(self) -> int:
        return int(np.prod(self.input_shape))


@dataclass(frozen=True)
class Prediction:
    step: int
    index: int                # class index, -1 before any scored step
    scores: np.ndarray        # (n_classes,) int64


@dataclass(frozen=True)
class ModelHeader:
    """What the host needs of the device's active model (from its .sgm header; for an
    imported network (version 2) ``input_shape`` is the event counts' (P, H, W))."""
    dt_us: int
    input_shape: tuple[int, int, int]
    sensor_size: tuple[int, int]
    downsample: int
    labels: list[str]
    file_bytes: int
    format_version: int = 1

    @property
    def warmup(self) -> float:
        """The warm-up fraction of the model kind's scoring rule (`pysg.scoring`)."""
        from ..engines import kind_of_version

        return kind_of_version(self.format_version).rule.warmup


@dataclass
class UploadResult:
    slot: int                 # the model slot written (-1 for a firmware image)
    generation: int
    size: int
    crc: int
    resumed_from: int = 0     # bytes the device already had at the first MODEL_BEGIN
    reconnects: int = 0
    seconds: float = 0.0
    version: int | None = None  # firmware uploads: the new image's version

    def to_dict(self) -> dict:
        return asdict(self)


def fw_version_text(v: int) -> str:
    return f"{v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF}"


@dataclass
class _Stream:
    info: StreamInfo
    logits: bool
    step: int = 0


# ------------------------------------------------------------------ the device


class Device:
    """A pysg device on a port (device path, pty or pyserial URL). Use as a context
    manager; `connect()` opens the port and says HELLO."""

    def __init__(self, url: str, *, baudrate: int = DEFAULT_BAUD, reply_timeout: float = REPLY_TIMEOUT,
                 retries: int = REQUEST_RETRIES, bytes_per_s: float = LINK_BYTES_PER_S):
        self.url = url
        self.baudrate = baudrate
        self.reply_timeout = reply_timeout
        self.retries = retries
        self.bytes_per_s = bytes_per_s
        self.link: Link | None = None
        self.hello_info: HelloInfo | None = None
        self.reconnects = 0
        self._stream: _Stream | None = None
        self._budget = 0            # payload bytes per request now (max_payload, halved on resends)
        self._clean = 0
        self._header_cache: dict[tuple[int, int], ModelHeader] = {}

    # ------------------------------------------------------------ connection

    def __enter__(self) -> "Device":
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
                info = self.connect(hello_retries=RECONNECT_HELLO_TRIES)
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

    def _cmd(self, op: Op, payload: bytes = b"", **kwargs) -> bytes:
        link = self._link()
        before = link.counters.resends
        try:
            return link.command(op, payload, **kwargs)
        finally:
            self._adapt(link.counters.resends - before)

    def _adapt(self, resends: int) -> None:
        """Noisy link: a request that needed resends halves the payload of the next ones
        (a long frame is more likely to be hit); GROW_AFTER clean ones double it again."""
        top = self._link().max_payload
        if resends:
            self._budget, self._clean = max(min(MIN_BUDGET, top), self._budget // 2), 0
        else:
            self._clean += 1
            if self._clean >= GROW_AFTER:
                self._budget, self._clean = min(top, self._budget * 2), 0

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
        self._link().max_payload = info.max_payload
        # a reconnect keeps what the link taught (a noisy link stays noisy)
        self._budget = min(self._budget or info.max_payload, info.max_payload)
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

    # ------------------------------------------------------------ models

    def _upload(self, data: bytes, ops: tuple[Op, Op, Op], progress: Progress | None) -> tuple[UploadResult, bytes]:
        """BEGIN (resume offset) -> DATA chunks -> END, surviving link losses; returns the
        result and END's reply."""
        begin, data_op, end = ops
        size, crc = len(data), zlib.crc32(data)
        t0 = time.monotonic()
        result = UploadResult(slot=-1, generation=0, size=size, crc=crc)
        first = True
        losses = restarts = 0
        while True:
            try:
                r = self._cmd(begin, struct.pack("<II", size, crc), interval=max(ERASE_TIMEOUT, self.reply_timeout))
                h = _head(begin, r)
                offset = h["resume_offset"]
                if begin == Op.MODEL_BEGIN:
                    result.slot = h["slot"]
                if first:
                    result.resumed_from, first = offset, False
                jumps = 0
                while offset < size:
                    if progress:
                        progress(offset, size)
                    part = data[offset: offset + self._budget - 4]
                    try:
                        r = self._cmd(data_op, struct.pack("<I", offset) + part)
                    except DeviceError as e:  # the device holds another count of bytes: go there
                        jumps += 1
                        if e.status != Status.ERR_OFFSET or e.expected_offset is None \
                                or e.expected_offset > size or jumps > OFFSET_JUMPS:
                            raise
                        offset = e.expected_offset
                        continue
                    nxt = _head(data_op, r)["next_offset"]
                    if nxt != offset + len(part):
                        raise ProtocolError(f"{data_op.name} of {len(part)} bytes at offset {offset}: the device "
                                            f"answers next offset {nxt}")
                    offset, jumps = nxt, 0
                if progress:
                    progress(size, size)
                end_reply = self._cmd(end)
                break
            except LinkError:
                losses += 1
                if losses > UPLOAD_RECONNECTS:
                    raise
                self.reconnect()
            except DeviceError as e:  # the device reset meanwhile (its upload state is in RAM)
                restarts += 1
                if e.status != Status.ERR_STATE or e.op not in (data_op, end) or restarts > 2:
                    raise
        result.reconnects = losses
        result.seconds = time.monotonic() - t0
        return result, end_reply

    def upload_model(self, data: bytes, *, progress: Progress | None = None, verify: bool = True,
                     activate: bool = True) -> UploadResult:
        """Upload an .sgm file into the inactive slot, read it back, then activate it.
        `progress(done_bytes, total_bytes)`. DeviceError (ERR_MODEL with the byte offset
        of the first bad field, ERR_TOO_BIG, ...) when the device refuses it."""
        data = bytes(data)
        if not data:
            raise ValueError("upload_model: empty model")
        self._need(Cap.MODEL, "store models")
        result, r = self._upload(data, (Op.MODEL_BEGIN, Op.MODEL_DATA, Op.MODEL_END), progress)
        result.slot = _head(Op.MODEL_END, r)["slot"]
        if result.slot not in (0, 1):
            raise ProtocolError(f"MODEL_END reply names slot {result.slot}; a device has slots 0 and 1")
        if verify:
            back = self.read_model(result.slot, size=len(data))
            if back != data:
                i = next(i for i, (a, b) in enumerate(zip(back, data)) if a != b)
                raise VerifyError(f"slot {result.slot} reads back differently from byte {i} on: "
                                  f"upload again; if it persists the device's flash is failing")
        if activate:
            r = self._cmd(Op.MODEL_ACTIVATE)
            h = _head(Op.MODEL_ACTIVATE, r)
            slot, result.generation = h["slot"], h["generation"]
            if slot != result.slot:
                raise ProtocolError(f"MODEL_ACTIVATE activated slot {slot}, the upload went to slot {result.slot}")
        self._stream = None
        return result

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
            want = min(self._budget - 1, 0xFFFF, size - len(out))
            r = self._cmd(Op.MODEL_READ, struct.pack("<BIH", slot, offset + len(out), want), reply_len=want + 1)
            if len(r) != want:
                raise ProtocolError(f"MODEL_READ of {want} bytes returned {len(r)}")
            out += r
            if progress:
                progress(len(out), size)
        return bytes(out)

    def model_header(self) -> ModelHeader:
        """Geometry, time step and labels of the active model (read from its .sgm header)."""
        from ..sgm import FORMAT_VERSION_QNET, HEADER_FIELDS, HEADER_SIZE, LABEL_SIZE, LAYER_ENTRY_SIZE, MAGIC, \
            QLAYER_FIELDS

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
        channels = h["in_c"]
        if h["format_version"] == FORMAT_VERSION_QNET:  # event counts per polarity channel: the input entry's P
            _, off, code = next(f for f in QLAYER_FIELDS if f[0] == "depth_multiplier")
            entry = self.read_model(info.active_slot, offset=h["layers_offset"], size=LAYER_ENTRY_SIZE)
            channels = struct.unpack_from("<" + code, entry, off)[0]
        mh = ModelHeader(h["dt_us"], (channels, h["in_h"], h["in_w"]), (h["sensor_w"], h["sensor_h"]),
                         h["downsample"], labels, h["file_size"], h["format_version"])
        self._header_cache[key] = mh
        return mh

    # ------------------------------------------------------------ firmware

    def upload_firmware(self, image: bytes, *, progress: Progress | None = None,
                        boot_timeout: float = FW_BOOT_TIMEOUT) -> UploadResult:
        """Send a firmware image (256-byte header + binary) to the bootloader's secondary
        region, activate it, wait for the device to boot it and check its version."""
        from .image import check_image

        image = bytes(image)
        self._need(Cap.FIRMWARE, "update its firmware (no bootloader)")
        # ImageError (a ValueError naming the field) before a byte is sent: wrong file or board
        head = check_image(image, board=self.hello_info.name if self.hello_info else None)
        if len(image) != 256 + head.size:
            raise ValueError(f"image file of {len(image)} bytes, its header says {256 + head.size}")
        version = head.version
        result, r = self._upload(image, (Op.FW_BEGIN, Op.FW_DATA, Op.FW_END), progress)
        result.version = _head(Op.FW_END, r)["version"]
        if result.version != version:
            raise VerifyError(f"FW_END reports version {fw_version_text(result.version)}, "
                              f"the image header says {fw_version_text(version)}")
        try:
            self._cmd(Op.FW_ACTIVATE)
        except LinkError:
            pass  # the reply was lost and the device went on into the bootloader: the version decides
        except DeviceError as e:  # a resend the rebooted firmware executed afresh (its upload state is gone)
            if e.status != Status.ERR_STATE:
                raise
        time.sleep(HELLO_INTERVAL)
        hello = self.reconnect(boot_timeout)
        if hello.fw_version != version:
            raise VerifyError(f"the device runs firmware {fw_version_text(hello.fw_version)} after the update, "
                              f"not {fw_version_text(version)}: the bootloader kept (or restored) the old image")
        return result

    # ------------------------------------------------------------ streaming

    def start_stream(self, *, logits: bool = True) -> StreamInfo:
        """STREAM_START: a new sample (step 0, scores cleared)."""
        r = self._cmd(Op.STREAM_START, bytes([StreamFlag.LOGITS if logits else 0]))
        h = _head(Op.STREAM_START, r)
        info = StreamInfo(h["n_classes"], (h["in_c"], h["in_h"], h["in_w"]), h["dt_us"])
        self._stream = _Stream(info, logits)
        return info

    def send_steps(self, frames: np.ndarray, *, progress: Progress | None = None) -> np.ndarray:
        """Run one step per frame of (T, C, H, W) counts; returns the (T, n_classes) int32
        logits (an empty (0, n_classes) array when the stream carries no logits)."""
        st = self._stream
        if st is None:
            raise ProtocolError("send_steps before start_stream")
        frames = np.asarray(frames)
        if frames.ndim < 2 or int(np.prod(frames.shape[1:])) != st.info.n_inputs:
            raise ValueError(f"frames of shape {frames.shape}: the device's model takes {st.info.input_shape} "
                             f"per step")
        blocks = encode_steps(frames)
        sizes = [len(b) for b in blocks]
        per = reply_bytes_per_step(st.info.n_classes, st.logits)
        top = self._link().max_payload
        if sizes and max(sizes) > top:  # before any step runs, not halfway through the sample
            next_steps(sizes, int(np.argmax(np.array(sizes) > top)), top, per)
        out = np.empty((len(blocks) if st.logits else 0, st.info.n_classes), np.int32)
        a = 0
        while a < len(blocks):
            b = next_steps(sizes, a, self._link().max_payload, per, self._budget)
            n = b - a
            r = self._cmd(Op.STREAM_STEPS, b"".join(blocks[a:b]), reply_len=STEPS_REPLY_FIXED + per * n)
            h = _head(Op.STREAM_STEPS, r)
            step, n_steps = h["step"], h["n_steps"]
            if n_steps != n or step != st.step + n:
                raise ProtocolError(f"STREAM_STEPS of {n} steps from step {st.step}: the device ran {n_steps} "
                                    f"and is at step {step}")
            st.step = step
            if st.logits:
                out[a:b] = _items(Op.STREAM_STEPS, r, n * st.info.n_classes).reshape(n, st.info.n_classes)
            if progress:
                progress(b, len(blocks))
            a = b
        return out

    def stream_frames(self, frames: np.ndarray, *, logits: bool = True,
                      progress: Progress | None = None) -> np.ndarray:
        """A new stream of these frames: STREAM_START then the steps; the per-step logits."""
        self.start_stream(logits=logits)
        return self.send_steps(frames, progress=progress)

    def score_from(self, step: int) -> None:
        """Sum logits into the scores only from `step` on (clears the scores)."""
        if step < 0:
            raise ValueError(f"score_from: step must be >= 0, got {step}")
        self._cmd(Op.SCORE_FROM, struct.pack("<I", step))

    def predict(self) -> Prediction:
        r = self._cmd(Op.PREDICT)
        h = _head(Op.PREDICT, r)
        layout = REPLIES[Op.PREDICT]
        n = (len(r) - layout.head_size) // layout.items.size  # one score per class
        return Prediction(h["step"], h["prediction"], _items(Op.PREDICT, r, n))

    def classify_frames(self, frames: np.ndarray, *, warmup: float = WARMUP, logits: bool = False,
                        progress: Progress | None = None) -> tuple[Prediction, np.ndarray]:
        """One sample: STREAM_START, SCORE_FROM floor(warmup T), the T steps, PREDICT (the
        rule of pysg.intref.scores). Returns the prediction and the logits if asked."""
        self.start_stream(logits=logits)
        self.score_from(int(math.floor(warmup * len(frames))))
        lg = self.send_steps(frames, progress=progress)
        return self.predict(), lg

    def _bin(self, events: np.ndarray, duration_us: int, mh: ModelHeader) -> np.ndarray:
        from ..datasets.binning import bin_events

        return bin_events(events, duration_us=duration_us, dt_us=mh.dt_us, sensor_size=mh.sensor_size,
                          downsample=mh.downsample, channels=mh.input_shape[0])

    def stream_events(self, events: np.ndarray, *, window_ms: float = 500.0, logits: bool = False) -> Iterator[dict]:
        """A recording streamed as one sample, with a prediction per window (pysg.live's
        rule: windows of round(window_ms / dt) steps from the first event; each window's
        prediction sums the logits of its own steps). Yields t_start_us, t_end_us,
        prediction (label), label_index, events, spikes (and logits if asked)."""
        events = _sorted(events)
        if events.size == 0:
            return
        mh = self.model_header()
        dt = mh.dt_us
        w = max(1, int(round(window_ms * 1000 / dt)))
        t = events["t"].astype(np.int64)
        t0 = int(t[0])
        n_steps = (int(t[-1]) - t0) // dt + 1
        n_win = -(-n_steps // w)
        ev = events.copy()
        ev["t"] = t - t0
        frames = self._bin(ev, n_win * w * dt, mh)
        bounds = np.searchsorted(t, t0 + np.arange(n_win + 1) * w * dt, side="left")
        self.start_stream(logits=logits)
        spikes_before = sum(self.stats().spikes)
        for k in range(n_win):
            self.score_from(k * w)
            lg = self.send_steps(frames[k * w:(k + 1) * w])
            p = self.predict()
            spikes = sum(self.stats().spikes)
            row = {"t_start_us": t0 + k * w * dt, "t_end_us": t0 + (k + 1) * w * dt,
                   "prediction": mh.labels[p.index] if p.index >= 0 else None, "label_index": p.index,
                   "events": int(bounds[k + 1] - bounds[k]), "spikes": spikes - spikes_before}
            spikes_before = spikes
            if logits:
                row["logits"] = lg
            yield row

    def stream_gestures(self, events: np.ndarray, labels: np.ndarray, *, warmup: float | None = None,
                        logits: bool = False, progress: Progress | None = None) -> Iterator[dict]:
        """Each labelled gesture (a pysg.datasets.gesture.LABEL_DTYPE row: cls 1..11,
        [t_start, t_end) µs) as one sample, as pysg.datasets.gesture.GestureDataset cuts it,
        run by `pysg.jobs.iter_samples` on this device (:class:`pysg.device.engine.DeviceEngine`):
        yields t_start_us, t_end_us, label, label_index, prediction, prediction_index,
        steps, scores (and logits if asked). ``warmup``: default the model kind's rule
        (`pysg.scoring`)."""
        from types import SimpleNamespace

        from ..jobs import iter_samples
        from ..scoring import ScoringRule
        from .engine import DeviceEngine

        events = _sorted(events)
        eng = DeviceEngine(self, rule=None if warmup is None else ScoringRule(warmup))
        names = eng.labels
        t = events["t"]

        def samples():
            for row in labels:
                cls, t_start, t_end = int(row["cls"]), int(row["t_start"]), int(row["t_end"])
                lo, hi = np.searchsorted(t, [t_start, t_end], side="left")
                ev = events[lo:hi].copy()
                ev["t"] -= t_start
                yield SimpleNamespace(events=ev, label=cls - 1, duration_us=t_end - t_start, t_start=t_start,
                                      source=self.url)

        for i, r in enumerate(iter_samples(eng, samples(), batch_size=1, keep_logits=logits)):
            p = r.prediction
            out = {"t_start_us": int(labels[i]["t_start"]), "t_end_us": int(labels[i]["t_end"]),
                   "label": names[r.label] if r.label < len(names) else str(r.label + 1), "label_index": r.label,
                   "prediction": names[p] if p >= 0 else None, "prediction_index": p,
                   "steps": r.steps, "scores": r.scores.tolist()}
            if logits:
                out["logits"] = r.logits
            if progress:
                progress(i + 1, len(labels))
            yield out


def _sorted(events: np.ndarray) -> np.ndarray:
    t = events["t"]
    if t.size > 1 and (t[1:] < t[:-1]).any():
        return events[np.argsort(t, kind="stable")]
    return events
