# SPDX-License-Identifier: MIT
"""Write firmware/include/sg_proto_ops.h from pysg/device/ops.py (the one table of ops,
statuses, and packet, request, reply and flash-record layouts)."""
from __future__ import annotations

import pathlib

from pysg.device.ops import c_header

ROOT = pathlib.Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    out = ROOT / "firmware" / "include" / "sg_proto_ops.h"
    out.write_text(c_header())
    print(out)
