# SPDX-License-Identifier: MIT
"""The device protocol's one table of operations, status codes, capabilities and
flags (docs/PROTOCOL.md). `firmware/include/sg_proto_ops.h` is generated from this
module by `tools/gen_proto_header.py`; tests/test_device_ops.py fails when they differ."""
from __future__ import annotations

import enum

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
}


class Cap(enum.IntFlag):
    MODEL = 1 << 0
    STREAM = 1 << 1
    FIRMWARE = 1 << 2
    BAUD = 1 << 3


class StreamFlag(enum.IntFlag):
    LOGITS = 1 << 0


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
    lines += ["", "#endif /* SG_PROTO_OPS_H */", ""]
    return "\n".join(lines)
