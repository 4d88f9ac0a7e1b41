# SPDX-License-Identifier: MIT
"""The protocol's one op table: the C header is generated from pysg/device/ops.py, and
what a C compiler sees in it equals the Python table."""
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


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_c_compiler_sees_the_same_values(tmp_path):
    names = [f"SG_OP_{o.name}" for o in ops.Op] + [f"SG_DEV_{s.name}" for s in ops.Status]
    values = [o.value for o in ops.Op] + [s.value for s in ops.Status]
    body = "\n".join(f'    printf("%d\\n", (int){n});' for n in names)
    src = tmp_path / "ops.c"
    src.write_text(f'#include <stdio.h>\n#include "sg_proto_ops.h"\nint main(void)\n{{\n{body}\n'
                   f'    printf("%u\\n", SG_PROTO_MAX_PAYLOAD);\n    return 0;\n}}\n')
    exe = tmp_path / "ops"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", "-pedantic", f"-I{HEADER.parent}", str(src), "-o",
                    str(exe)], check=True)
    out = [int(v) for v in subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()]
    assert out == values + [ops.MAX_PAYLOAD]
