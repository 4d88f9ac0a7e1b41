# SPDX-License-Identifier: MIT
"""The device protocol's one table of operations, status codes, capabilities, flags and
payload layouts (docs/PROTOCOL.md). `firmware/include/sg_proto_ops.h` is generated from
this module by `tools/gen_proto_header.py`; tests/test_device_ops.py fails when they
differ. The firmware builds every request check and reply from the generated macros and
`pysg.device.client` parses every reply with these tables, so a field moves in one place."""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

PROTOCOL_VERSION = 1
REPLY_BIT = 0x80          # a reply's op is the request's op | REPLY_BIT
HEADER_SIZE = 4           # u8 op, u8 seq, u16 len
CRC_SIZE = 4
MAX_PAYLOAD = 4096        # what the firmware's buffers hold (a dense 10 ms gesture step is ~2.3 KB); HELLO reports the device's
SLOT_HEADER_SIZE = 256    # model slot header in flash, before the .sgm file
IMAGE_HEADER_SIZE = 256   # firmware image header, before the binary


class Op(enum.IntEnum):
    HELLO = 0x01
    INFO = 0x02
    STATS = 0x03
    RESET = 0x04
    SET_BAUD = 0x05
    MODEL_BEGIN = 0x10
    MODEL_DATA = 0x11
    MODEL_END = 0x12
    MODEL_ACTIVATE = 0x13
    MODEL_READ = 0x14
    MODEL_SELECT = 0x15   # roll back: make the other valid slot the active one
    FW_BEGIN = 0x20
    FW_DATA = 0x21
    FW_END = 0x22
    FW_ACTIVATE = 0x23
    STREAM_START = 0x30
    STREAM_STEPS = 0x31
    SCORE_FROM = 0x32
    PREDICT = 0x33


class Status(enum.IntEnum):
    OK = 0
    ERR_FRAME = -1
    ERR_OP = -2
    ERR_ARG = -3
    ERR_STATE = -4
    ERR_OFFSET = -5
    ERR_FLASH = -6
    ERR_VERIFY = -7
    ERR_MODEL = -8
    ERR_NO_MODEL = -9
    ERR_TOO_BIG = -10
    ERR_RUNTIME = -11
    ERR_UNSUPPORTED = -12
    ERR_IMAGE = -13
    ERR_SLOT = -14


# What each status tells the user (host error messages).
STATUS_TEXT = {
    Status.OK: "ok",
    Status.ERR_FRAME: "the device could not parse the request's payload",
    Status.ERR_OP: "the device does not know this operation (update its firmware)",
    Status.ERR_ARG: "an argument is out of range",
    Status.ERR_STATE: "request out of order",
    Status.ERR_OFFSET: "data at an unexpected offset",
    Status.ERR_FLASH: "flash erase/program failed or read back differently",
    Status.ERR_VERIFY: "CRC-32 of the received image differs",
    Status.ERR_MODEL: "the device's runtime rejected the model",
    Status.ERR_NO_MODEL: "the device has no model (flash one with `pysg flash`)",
    Status.ERR_TOO_BIG: "the image is larger than the device's slot",
    Status.ERR_RUNTIME: "the runtime returned an error",
    Status.ERR_UNSUPPORTED: "the device cannot do this",
    Status.ERR_IMAGE: "the firmware image header is invalid",
    Status.ERR_SLOT: "the slot holds no valid model (flash one, or pick the other slot)",
}


class Cap(enum.IntFlag):
    MODEL = 1 << 0
    STREAM = 1 << 1
    FIRMWARE = 1 << 2
    BAUD = 1 << 3


class StreamFlag(enum.IntFlag):
    LOGITS = 1 << 0


# ------------------------------------------------------------------ payload layouts


@dataclass(frozen=True)
class Field:
    """One little-endian field: name, byte offset within its part, `struct` code
    (B H I Q b h i q, or "8s" for a byte string)."""

    name: str
    offset: int
    code: str

    @property
    def size(self) -> int:
        return struct.calcsize("<" + self.code)


@dataclass(frozen=True)
class Items:
    """A run of equal items: each one the record `fields` (offsets within the item).
    `count`: the head field that holds the number of items, a fixed number, or None
    for "as many as the rest of the payload holds" (the op says how many: PROTOCOL.md)."""

    name: str
    fields: tuple[Field, ...]
    count: str | int | None = None

    @property
    def size(self) -> int:
        """Bytes per item."""
        return _part_size(self.fields)

    @property
    def code(self) -> str:
        """The `struct` codes of one item (without byte order)."""
        return "".join(f.code for f in self.fields)


@dataclass(frozen=True)
class Layout:
    """A payload: the `head` fields from its start, then optionally `items`, then the
    `tail` fields (offsets counted from the end of the items).

    A request's payload starts at its first byte. A reply's payload starts with the i8
    status; the offsets here count from the byte after it (what the host's command
    returns), so a reply field's C macro is 1 + its offset."""

    head: tuple[Field, ...] = ()
    items: Items | None = None
    tail: tuple[Field, ...] = ()

    def __post_init__(self) -> None:
        parts = [("head", self.head), ("tail", self.tail)]
        if self.items is not None:
            parts.append((f"items {self.items.name}", self.items.fields))
            if not self.items.fields:
                raise ValueError(f"items {self.items.name} have no fields")
            if isinstance(self.items.count, str) and self.items.count not in {f.name for f in self.head}:
                raise ValueError(f"items {self.items.name} counted by {self.items.count!r}, not a head field")
        elif self.tail:
            raise ValueError("tail fields follow items: this layout has none")
        for part, fields in parts:
            at = 0
            for f in fields:  # contiguous from 0, so a typo in an offset cannot slip through
                if f.offset != at:
                    raise ValueError(f"{part} field {f.name} at offset {f.offset}, expected {at}")
                at += f.size

    @property
    def head_size(self) -> int:
        return _part_size(self.head)

    @property
    def tail_size(self) -> int:
        return _part_size(self.tail)

    @property
    def fixed_size(self) -> int | None:
        """Bytes of a payload without items; None when items make its size vary."""
        return None if self.items is not None else self.head_size

    @property
    def head_format(self) -> str:
        return "<" + "".join(f.code for f in self.head)

    @property
    def tail_format(self) -> str:
        return "<" + "".join(f.code for f in self.tail)


def _part_size(fields: tuple[Field, ...]) -> int:
    return fields[-1].offset + fields[-1].size if fields else 0


F = Field

# A packet before COBS (1. Frames): this header, the payload, then a u32 CRC-32.
PACKET_HEADER = Layout((F("op", 0, "B"), F("seq", 1, "B"), F("len", 2, "H")))

_EMPTY = Layout()
_UPLOAD_BEGIN = Layout((F("size", 0, "I"), F("crc", 4, "I")))
_UPLOAD_DATA = Layout((F("offset", 0, "I"),), Items("chunk", (F("byte", 0, "B"),)))
_NEXT_OFFSET = Layout((F("next_offset", 0, "I"),))

# What each request carries (3. Operations).
REQUESTS: dict[Op, Layout] = {
    Op.HELLO: Layout((F("host_version", 0, "H"),)),
    Op.INFO: _EMPTY,
    Op.STATS: _EMPTY,
    Op.RESET: _EMPTY,
    Op.SET_BAUD: Layout((F("baud", 0, "I"),)),
    Op.MODEL_BEGIN: _UPLOAD_BEGIN,
    Op.MODEL_DATA: _UPLOAD_DATA,
    Op.MODEL_END: _EMPTY,
    Op.MODEL_ACTIVATE: _EMPTY,
    Op.MODEL_READ: Layout((F("slot", 0, "B"), F("offset", 1, "I"), F("count", 5, "H"))),
    Op.MODEL_SELECT: Layout((F("slot", 0, "B"),)),
    Op.FW_BEGIN: _UPLOAD_BEGIN,
    Op.FW_DATA: _UPLOAD_DATA,
    Op.FW_END: _EMPTY,
    Op.FW_ACTIVATE: _EMPTY,
    Op.STREAM_START: Layout((F("flags", 0, "B"),)),
    Op.STREAM_STEPS: Layout(items=Items("blocks", (F("byte", 0, "B"),))),  # step blocks (3.3)
    Op.SCORE_FROM: Layout((F("step", 0, "I"),)),
    Op.PREDICT: _EMPTY,
}

# What an OK reply carries after its status (3. Operations, 3.1 INFO, 3.4 STATS).
REPLIES: dict[Op, Layout] = {
    Op.HELLO: Layout((F("version", 0, "H"), F("caps", 2, "I"), F("max_payload", 6, "H"),
                      F("device_id", 8, "8s"), F("fw_version", 16, "I"), F("name_len", 20, "B")),
                     Items("name", (F("char", 0, "B"),), "name_len")),
    Op.INFO: Layout((F("active_slot", 0, "B"),),
                    Items("slots", (F("state", 0, "B"), F("generation", 1, "I"), F("size", 5, "I"),
                                    F("crc", 9, "I")), 2),
                    (F("arena_capacity", 0, "I"), F("arena_bytes", 4, "I"), F("slot_capacity", 8, "I"),
                     F("fw_version", 12, "I"), F("fw_crc", 16, "I"), F("fw_confirmed", 20, "B"),
                     F("boot_state", 21, "B"), F("uptime_ms", 22, "I"))),
    Op.STATS: Layout((F("steps", 0, "Q"), F("events_in", 8, "Q"), F("synops", 16, "Q"), F("n_hidden", 24, "B")),
                     Items("spikes", (F("count", 0, "Q"),), "n_hidden"),
                     (F("frames_ok", 0, "I"), F("frames_dropped", 4, "I"), F("busy_us", 8, "I"))),
    Op.RESET: _EMPTY,
    Op.SET_BAUD: _EMPTY,
    Op.MODEL_BEGIN: Layout((F("slot", 0, "B"), F("resume_offset", 1, "I"))),
    Op.MODEL_DATA: _NEXT_OFFSET,
    Op.MODEL_END: Layout((F("slot", 0, "B"),)),
    Op.MODEL_ACTIVATE: Layout((F("slot", 0, "B"), F("generation", 1, "I"))),
    Op.MODEL_READ: Layout(items=Items("data", (F("byte", 0, "B"),))),  # the request's count bytes
    Op.MODEL_SELECT: Layout((F("slot", 0, "B"), F("generation", 1, "I"))),
    Op.FW_BEGIN: Layout((F("resume_offset", 0, "I"),)),
    Op.FW_DATA: _NEXT_OFFSET,
    Op.FW_END: Layout((F("version", 0, "I"),)),
    Op.FW_ACTIVATE: _EMPTY,
    Op.STREAM_START: Layout((F("n_classes", 0, "H"), F("in_c", 2, "H"), F("in_h", 4, "H"), F("in_w", 6, "H"),
                             F("dt_us", 8, "I"))),
    # n_steps x n_classes logits, step-major, with the LOGITS stream flag
    Op.STREAM_STEPS: Layout((F("step", 0, "I"), F("n_steps", 4, "H")), Items("logits", (F("logit", 0, "i"),))),
    Op.SCORE_FROM: _EMPTY,
    Op.PREDICT: Layout((F("step", 0, "I"), F("prediction", 4, "h")), Items("scores", (F("score", 0, "q"),))),
}

# The errors that carry fields after their status (2. Replies and status); the host's
# DeviceError takes them as keyword arguments of the same names.
ERROR_REPLIES: dict[Status, Layout] = {
    Status.ERR_OFFSET: Layout((F("expected_offset", 0, "I"),)),
    Status.ERR_MODEL: Layout((F("sg_status", 0, "h"), F("error_offset", 2, "I"))),
    Status.ERR_RUNTIME: Layout((F("sg_status", 0, "h"),)),
}
STATUS_SIZE = 1           # a reply's i8 status, before its fields

# ------------------------------------------------------------------ flash records
# What the host writes or checks in a device's flash beside the protocol: the firmware
# image header (PROTOCOL.md 3.5; pysg.device.image), a model slot's header (3.2), the
# boot-control record the application and the bootloader share, and the boot-selection
# record beside it. All little-endian.

IMAGE_MAGIC = 0x4D494753          # "SGIM"
IMAGE_HEADER_VERSION = 1
IMAGE_HEADER = Layout((F("magic", 0, "I"), F("header_size", 4, "H"), F("header_version", 6, "H"),
                       F("size", 8, "I"),         # bytes of binary after the header
                       F("crc", 12, "I"),         # CRC-32 of the binary
                       F("load_addr", 16, "I"),   # where the binary runs: app_primary + 256
                       F("version", 20, "I"),     # major << 16 | minor << 8 | patch
                       F("board", 24, "32s"),     # sg_board_name(), NUL-padded
                       F("reserved", 56, "196s"),  # zero
                       F("header_crc", 252, "I")))  # CRC-32 of the bytes before it

SLOT_MAGIC = 0x4C534753           # "SGSL"
SLOT_HEADER_VERSION = 1
SLOT_HEADER = Layout((F("magic", 0, "I"), F("header_size", 4, "H"), F("version", 6, "H"),
                      F("generation", 8, "I"),    # activation counter: the valid slot ahead mod 2^32 is active
                      F("size", 12, "I"), F("crc", 16, "I"),  # of the .sgm file after the header
                      F("reserved", 20, "232s"),  # zero
                      F("header_crc", 252, "I")))

BOOTCTL_MAGIC = 0x43424753        # "SGBC"
BOOTCTL_RECORD = Layout((F("magic", 0, "I"), F("seq", 4, "I"),  # newer = ahead mod 2^32
                         F("state", 8, "B"),                      # sg_boot_state
                         F("reserved", 9, "3s"), F("crc", 12, "I")))

# The boot-selection record: which model slot the user chose (`pysg device activate A|B`),
# so that rolling back keeps the newer model (PROTOCOL.md 3.2). It lives in the boot-control
# sectors, at MODELSEL_SECTOR_OFFSET after the boot-control record, and is written with it:
# every boot-control write programs this record first and the boot-control record last (the
# commit), so a sector whose boot-control record is valid holds a complete selection.
MODELSEL_MAGIC = 0x534D4753       # "SGMS"
MODELSEL_SECTOR_OFFSET = 32       # from the start of a boot-control sector
MODELSEL_RECORD = Layout((F("magic", 0, "I"),
                          F("slot", 4, "B"),             # the slot chosen, 0 or 1
                          F("reserved", 5, "3s"),        # zero
                          F("generation", 8, "I"),       # that slot's generation when chosen
                          F("newest", 12, "I"),          # the newest generation of any model then
                          F("crc", 16, "I")))            # CRC-32 of the bytes before it

# name in the C macros, record, its magic and version constants
FLASH_RECORDS: dict[str, tuple[Layout, dict[str, int]]] = {
    "IMAGE": (IMAGE_HEADER, {"SG_IMAGE_MAGIC": IMAGE_MAGIC, "SG_IMAGE_HEADER_VERSION": IMAGE_HEADER_VERSION}),
    "SLOT": (SLOT_HEADER, {"SG_SLOT_MAGIC": SLOT_MAGIC, "SG_SLOT_VERSION": SLOT_HEADER_VERSION}),
    "BOOTCTL": (BOOTCTL_RECORD, {"SG_BOOTCTL_MAGIC": BOOTCTL_MAGIC,
                                 "SG_BOOTCTL_RECORD_SIZE": BOOTCTL_RECORD.head_size}),
    "MODELSEL": (MODELSEL_RECORD, {"SG_MODELSEL_MAGIC": MODELSEL_MAGIC,
                                   "SG_MODELSEL_RECORD_SIZE": MODELSEL_RECORD.head_size,
                                   "SG_MODELSEL_SECTOR_OFFSET": MODELSEL_SECTOR_OFFSET}),
}


def _layout_macros(prefix: str, layout: Layout, base: int) -> list[str]:
    """#defines of one payload: head field offsets (from the payload's start + base) and
    the head's end (_LEN); the items' start, item length and fields within an item, and
    a fixed count; tail field offsets from the end of the items and the tail's length."""
    out = [f"#define {prefix}_{f.name.upper()} {base + f.offset}u" for f in layout.head]
    out.append(f"#define {prefix}_LEN {base + layout.head_size}u")
    it = layout.items
    if it is not None:
        name = f"{prefix}_{it.name.upper()}"
        out.append(f"#define {name} {base + layout.head_size}u")
        if len(it.fields) > 1:
            out += [f"#define {name}_{f.name.upper()} {f.offset}u" for f in it.fields]
        out.append(f"#define {name}_ITEM_LEN {it.size}u")
        if isinstance(it.count, int):
            out.append(f"#define {name}_COUNT {it.count}u")
        out += [f"#define {prefix}_TAIL_{f.name.upper()} {f.offset}u" for f in layout.tail]
        if layout.tail:
            out.append(f"#define {prefix}_TAIL_LEN {layout.tail_size}u")
    return out


def c_header() -> str:
    """The C header with the same table (what tools/gen_proto_header.py writes)."""
    lines = [
        "/* SPDX-License-Identifier: MIT */",
        "/* Generated from pysg/device/ops.py by tools/gen_proto_header.py: do not edit. */",
        "#ifndef SG_PROTO_OPS_H",
        "#define SG_PROTO_OPS_H",
        "",
        f"#define SG_PROTO_VERSION {PROTOCOL_VERSION}u",
        f"#define SG_PROTO_REPLY_BIT 0x{REPLY_BIT:02X}u",
        f"#define SG_PROTO_HEADER_SIZE {HEADER_SIZE}u",
        f"#define SG_PROTO_CRC_SIZE {CRC_SIZE}u",
        f"#define SG_PROTO_MAX_PAYLOAD {MAX_PAYLOAD}u",
        f"#define SG_SLOT_HEADER_SIZE {SLOT_HEADER_SIZE}u",
        f"#define SG_IMAGE_HEADER_SIZE {IMAGE_HEADER_SIZE}u",
        "",
        "typedef enum sg_op {",
    ]
    lines += [f"    SG_OP_{op.name} = 0x{op.value:02X}," for op in Op]
    lines += ["} sg_op;", "", "typedef enum sg_dev_status {"]
    lines += [f"    SG_DEV_{st.name} = {st.value}," for st in Status]
    lines += ["} sg_dev_status;", ""]
    lines += [f"#define SG_CAP_{c.name} 0x{c.value:02X}u" for c in Cap]
    lines += [f"#define SG_STREAM_{f.name} 0x{f.value:02X}u" for f in StreamFlag]
    lines += ["", "/* Packet header fields (byte offsets; SG_PROTO_HEADER_SIZE bytes). */"]
    lines += [f"#define SG_PROTO_OFF_{f.name.upper()} {f.offset}u" for f in PACKET_HEADER.head]
    lines += ["", "/* Request payloads: byte offsets from the payload's start; _LEN is the exact length,",
              " * or the least when items follow (from offset _LEN on). */"]
    for op, layout in REQUESTS.items():
        lines += _layout_macros(f"SG_REQ_{op.name}", layout, 0)
    lines += ["", "/* Reply payloads: byte offsets from the payload's start, where the i8 status is;",
              " * _LEN is the bytes before the items (all of them without items), <ITEMS>_<FIELD>",
              " * an offset within one item, TAIL_<FIELD> an offset from the end of the items. */",
              f"#define SG_REPLY_STATUS_SIZE {STATUS_SIZE}u"]
    for op, layout in REPLIES.items():
        lines += _layout_macros(f"SG_REPLY_{op.name}", layout, STATUS_SIZE)
    for st, layout in ERROR_REPLIES.items():
        lines += _layout_macros(f"SG_REPLY_{st.name}", layout, STATUS_SIZE)
    lines += ["", "/* Flash records: magic and version, SG_<RECORD>_OFF_<FIELD> byte offsets, <FIELD>_LEN of",
              " * a byte string. */"]
    for name, (layout, consts) in FLASH_RECORDS.items():
        lines += [f"#define {c} 0x{v:08X}u" if v > 0xFFFF else f"#define {c} {v}u" for c, v in consts.items()]
        for f in layout.head:
            lines.append(f"#define SG_{name}_OFF_{f.name.upper()} {f.offset}u")
            if f.code.endswith("s"):
                lines.append(f"#define SG_{name}_{f.name.upper()}_LEN {f.size}u")
    lines += ["", "#endif /* SG_PROTO_OPS_H */", ""]
    names = [ln.split()[1] for ln in lines if ln.startswith("#define ")]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ValueError(f"two layout macros with one name: {clash} (rename a field)")
    return "\n".join(lines)
