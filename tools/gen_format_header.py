# SPDX-License-Identifier: MIT
"""Write runtime_c/include/sg_format.h from the .sgm layout tables: pysg/sgm/layout.py's and
each registered kind's (pysg/sgm/kinds.py)."""
from __future__ import annotations

import pathlib

from pysg.sgm.c_header import c_header

if __name__ == "__main__":
    out = pathlib.Path(__file__).resolve().parent.parent / "runtime_c" / "include" / "sg_format.h"
    out.write_text(c_header())
    print(out)
