# SPDX-License-Identifier: MIT
"""What a device answers: the reply records (HELLO, INFO, STATS, STREAM_START, PREDICT,
the active model's header, upload results), each parsed with its layout in
pysg.device.ops.REPLIES (the table the firmware's SG_REPLY_* macros are generated from),
and the errors the client raises beyond the protocol's own."""
from __future__ import annotations

import struct
from dataclasses import asdict, dataclass

import numpy as np

from .ops import REPLIES, Cap, Op
from .protocol import ProtocolError

__all__ = ["HelloInfo", "SlotInfo", "DeviceInfo", "DeviceStats", "StreamInfo", "Prediction", "ModelHeader",
           "UploadResult", "VerifyError", "UnsupportedError", "NoModelError", "fw_version_text"]

MIN_BUDGET = 64              # bytes: smallest frame payload the host shrinks to on a noisy link
SLOT_VALID = 1
NO_SLOT = 0xFF


class VerifyError(ProtocolError):
    """What the device stored differs from what the host sent."""


class UnsupportedError(ProtocolError):
    """The device lacks the capability an operation needs (HELLO caps)."""


class NoModelError(ProtocolError):
    """The device has no valid model slot (INFO), so there is nothing to stream to."""


# ------------------------------------------------------------------ reply records
# Every reply is parsed with its layout in pysg.device.ops.REPLIES (the table the
# firmware's SG_REPLY_* macros are generated from).


def _short(op: Op, reply: bytes, need: int, where: str = "") -> ProtocolError:
    """A reply that ends before `need` bytes: names its first missing field and offset."""
    return ProtocolError(f"{op.name} reply of {len(reply)} bytes after the status, expected at least {need}"
                         f"{where}: is the device running pysg firmware of this protocol version?")


def _missing(fields, base: int, n: int, what: str = "") -> str:
    """`; <field> at offset <o> missing` for the first of `fields` (at `base`) not whole in n bytes."""
    f = next(f for f in fields if base + f.offset + f.size > n)
    return f"; {what}{f.name} at offset {base + f.offset} missing"


def _head(op: Op, reply: bytes) -> dict:
    """The head fields of an OK reply to `op` by name; ProtocolError when it is too short."""
    layout = REPLIES[op]
    if len(reply) < layout.head_size:
        raise _short(op, reply, layout.head_size, _missing(layout.head, 0, len(reply)))
    return dict(zip([f.name for f in layout.head], struct.unpack_from(layout.head_format, reply)))


def _items(op: Op, reply: bytes, count: int) -> np.ndarray | list[dict]:
    """The `count` items after the head of an OK reply to `op`: an array when an item is
    one number, else a dict per item; ProtocolError when the reply is too short."""
    layout = REPLIES[op]
    it = layout.items
    need = layout.head_size + count * it.size
    if len(reply) < need:
        k = max(0, len(reply) - layout.head_size) // it.size
        raise _short(op, reply, need, _missing(it.fields, layout.head_size + k * it.size, len(reply),
                                               f"{it.name}[{k}] "))
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
        raise _short(op, reply, at + layout.tail_size, _missing(layout.tail, at, len(reply)))
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
    retries: int = 0          # DATA tries that got no reply (lossy link)
    frame_bytes: int = 0      # DATA payload bytes per request at the end (it adapts to the link)

    def to_dict(self) -> dict:
        return asdict(self)


def fw_version_text(v: int) -> str:
    return f"{v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF}"
