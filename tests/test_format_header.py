# SPDX-License-Identifier: MIT
"""The .sgm layout's one source of truth: runtime_c/include/sg_format.h is generated from
pysg/sgm/layout.py's tables, and what a C compiler sees in it equals the Python tables."""
from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

from pysg import sgm
from pysg.sgm import c_header as sgm_header

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADER = ROOT / "runtime_c" / "include" / "sg_format.h"


def test_committed_header_is_generated_from_the_tables():
    assert HEADER.read_text() == sgm_header.c_header(), "run: python tools/gen_format_header.py"


def test_every_field_of_every_table_is_in_the_header():
    names = {n for n, _, _ in sgm_header.constants()}
    for prefix, table in (("SG_HDR", sgm.HEADER_FIELDS), ("SG_L1", sgm.LAYER_FIELDS), ("SG_L2", sgm.QLAYER_FIELDS)):
        for field, _, _ in table:
            assert f"{prefix}_{field.upper()}" in names
    assert len(names) == len(sgm_header.constants()), "two macros share a name"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_c_compiler_sees_the_same_values(tmp_path):
    consts = sgm_header.constants()
    body = "\n".join(f'    printf("%lld\\n", (long long)({n}));' for n, _, _ in consts)
    src = tmp_path / "fmt.c"
    src.write_text(f'#include <stdio.h>\n#include <string.h>\n#include "sg_format.h"\nint main(void)\n{{\n{body}\n'
                   f'    printf("%s\\n", SG_FMT_MAGIC);\n    return 0;\n}}\n')
    exe = tmp_path / "fmt"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{HEADER.parent}", str(src),
                    "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    assert [int(v) for v in out[:-1]] == [v for _, v, _ in consts]
    assert out[-1].encode() == sgm.MAGIC
    # the offsets a reader would use: a header packed from the table puts each field where C says
    assert dict((n, v) for n, v, _ in consts)["SG_HDR_HEADER_CRC32"] + 4 == sgm.HEADER_SIZE
