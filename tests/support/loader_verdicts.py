# SPDX-License-Identifier: MIT
"""One .sgm file judged by both loaders: the Python one (pysg.sgm) and the C one (through
the runtime), as (offset, field) with indices written as [] (the C loader names
`layers[].kind`: the index follows from the offset), or None when it loads."""
from __future__ import annotations

import re

from pysg.runtime import Runtime, SgModelError
from pysg.sgm import SgmFormatError, load_sgm


def _field(name: str) -> str:
    return re.sub(r"\[\d+\]", "[]", name)


def py_verdict(data: bytes):
    try:
        load_sgm(data)
    except SgmFormatError as e:
        assert 0 <= e.offset <= len(data), e
        return e.offset, _field(e.field)
    return None


def c_verdict(data: bytes):
    try:
        Runtime(data)
    except SgModelError as e:
        return e.offset, _field(e.field)
    return None


def verdicts(data: bytes):
    """(Python's verdict, C's verdict)."""
    return py_verdict(data), c_verdict(data)
