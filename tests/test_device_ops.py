# SPDX-License-Identifier: MIT
"""The protocol's one op table: the C header is generated from pysg/device/ops.py, and
what a C compiler sees in it (op codes, statuses, request and reply layouts) equals the
Python table."""
from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

from pysg.device import ops

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADER = ROOT / "firmware" / "include" / "sg_proto_ops.h"


def test_committed_header_is_generated_from_the_table():
    assert HEADER.read_text() == ops.c_header(), "run: python tools/gen_proto_header.py"


def test_codes_are_unique_and_fit_the_wire():
    assert len({o.value for o in ops.Op}) == len(ops.Op)
    assert all(0 < o.value < ops.REPLY_BIT for o in ops.Op)
    assert len({s.value for s in ops.Status}) == len(ops.Status)
    assert all(-128 <= s.value <= 0 for s in ops.Status)
    assert set(ops.STATUS_TEXT) == set(ops.Status)


def test_every_op_has_a_request_and_a_reply_layout():
    assert set(ops.REQUESTS) == set(ops.Op)
    assert set(ops.REPLIES) == set(ops.Op)
    assert set(ops.ERROR_REPLIES) <= set(ops.Status)
    # a request that fits the firmware's buffer, a reply whose fixed part does too
    for layouts in (ops.REQUESTS, ops.REPLIES, ops.ERROR_REPLIES):
        for layout in layouts.values():
            assert ops.STATUS_SIZE + layout.head_size + layout.tail_size <= ops.MAX_PAYLOAD


@pytest.mark.parametrize("layout", [
    lambda: ops.Layout((ops.Field("a", 0, "I"), ops.Field("b", 3, "H"))),     # overlaps a
    lambda: ops.Layout((ops.Field("a", 1, "B"),)),                            # gap before a
    lambda: ops.Layout(items=ops.Items("x", (ops.Field("v", 0, "B"),), "n")),  # no head field n
    lambda: ops.Layout(tail=(ops.Field("t", 0, "I"),)),                       # a tail without items
])
def test_a_layout_with_a_misplaced_field_is_refused(layout):
    with pytest.raises(ValueError):
        layout()


def _layout_values(prefix: str, layout: ops.Layout, base: int) -> dict[str, int]:
    """What the header must define for one payload, from the table (not from c_header)."""
    out = {f"{prefix}_{f.name.upper()}": base + f.offset for f in layout.head}
    out[f"{prefix}_LEN"] = base + sum(f.size for f in layout.head)
    if layout.items is not None:
        name = f"{prefix}_{layout.items.name.upper()}"
        out[name] = out[f"{prefix}_LEN"]
        out[f"{name}_ITEM_LEN"] = layout.items.size
        if len(layout.items.fields) > 1:
            out.update({f"{name}_{f.name.upper()}": f.offset for f in layout.items.fields})
        if isinstance(layout.items.count, int):
            out[f"{name}_COUNT"] = layout.items.count
        out.update({f"{prefix}_TAIL_{f.name.upper()}": f.offset for f in layout.tail})
        if layout.tail:
            out[f"{prefix}_TAIL_LEN"] = sum(f.size for f in layout.tail)
    return out


def _all_layout_values() -> dict[str, int]:
    out = {"SG_REPLY_STATUS_SIZE": ops.STATUS_SIZE, "SG_PROTO_HEADER_SIZE": ops.PACKET_HEADER.head_size}
    out.update({f"SG_PROTO_OFF_{f.name.upper()}": f.offset for f in ops.PACKET_HEADER.head})
    for op, layout in ops.REQUESTS.items():
        out.update(_layout_values(f"SG_REQ_{op.name}", layout, 0))
    for op, layout in ops.REPLIES.items():
        out.update(_layout_values(f"SG_REPLY_{op.name}", layout, ops.STATUS_SIZE))
    for st, layout in ops.ERROR_REPLIES.items():
        out.update(_layout_values(f"SG_REPLY_{st.name}", layout, ops.STATUS_SIZE))
    for name, (layout, consts) in ops.FLASH_RECORDS.items():
        out.update(consts)
        out.update({f"SG_{name}_OFF_{f.name.upper()}": f.offset for f in layout.head})
        out.update({f"SG_{name}_{f.name.upper()}_LEN": f.size for f in layout.head if f.code.endswith("s")})
    return out


def test_flash_records_fill_their_headers():
    assert ops.IMAGE_HEADER.head_size == ops.IMAGE_HEADER_SIZE
    assert ops.SLOT_HEADER.head_size == ops.SLOT_HEADER_SIZE
    assert ops.BOOTCTL_RECORD.head_size == 16
    # the header CRC is the last field and covers every byte before it
    for layout in (ops.IMAGE_HEADER, ops.SLOT_HEADER, ops.BOOTCTL_RECORD):
        assert layout.head[-1].code == "I" and layout.head[-1].offset == layout.head_size - 4


def test_reply_layouts_match_the_documented_sizes():
    v = _all_layout_values()
    # PROTOCOL.md 3: HELLO's fixed part, INFO (2 slots), STATS' and STREAM_STEPS' heads
    assert v["SG_REPLY_HELLO_NAME"] == 22
    assert v["SG_REPLY_INFO_SLOTS"] + 2 * v["SG_REPLY_INFO_SLOTS_ITEM_LEN"] + v["SG_REPLY_INFO_TAIL_LEN"] == 54
    assert v["SG_REPLY_STATS_SPIKES"] == 26 and v["SG_REPLY_STATS_TAIL_LEN"] == 12
    assert v["SG_REPLY_STREAM_STEPS_LOGITS"] == 7 and v["SG_REPLY_PREDICT_SCORES"] == 7
    assert v["SG_REPLY_ERR_MODEL_LEN"] == 7 and v["SG_REQ_MODEL_READ_LEN"] == 7


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_c_compiler_sees_the_same_values(tmp_path):
    layout = _all_layout_values()
    names = [f"SG_OP_{o.name}" for o in ops.Op] + [f"SG_DEV_{s.name}" for s in ops.Status] + list(layout)
    values = [o.value for o in ops.Op] + [s.value for s in ops.Status] + list(layout.values())
    body = "\n".join(f'    printf("%lld\\n", (long long){n});' for n in names)
    src = tmp_path / "ops.c"
    src.write_text(f'#include <stdio.h>\n#include "sg_proto_ops.h"\nint main(void)\n{{\n{body}\n'
                   f'    printf("%u\\n", SG_PROTO_MAX_PAYLOAD);\n    return 0;\n}}\n')
    exe = tmp_path / "ops"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", "-pedantic", f"-I{HEADER.parent}", str(src), "-o",
                    str(exe)], check=True)
    out = [int(v) for v in subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()]
    assert out == values + [ops.MAX_PAYLOAD]
