# SPDX-License-Identifier: MIT
"""``pysg inspect``: a JSON-ready description of an .sgm model of any version (format
version, sizes, time base, labels, layers) and its text; each kind writes its own
(:attr:`.kinds.FormatKind.inspect`, :attr:`~.kinds.FormatKind.summary`)."""
from __future__ import annotations

import os
from typing import Any

from .kinds import FORMATS, format_of
from .loader import load_sgm, read_sgm

__all__ = ["inspect_sgm", "inspect_text"]


def inspect_sgm(model: Any | bytes | str | os.PathLike) -> dict:
    """A JSON-ready description: format version, sizes, time base, labels, layers.
    ``model``: a loaded model, the file's bytes or its path."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        model = load_sgm(model)
    elif not isinstance(model, tuple(k.model_type for k in FORMATS.values())):
        model = read_sgm(model)
    return format_of(model).inspect(model)


def inspect_text(name: str, info: dict) -> str:
    """The lines ``pysg inspect`` prints for :func:`inspect_sgm`'s description of the
    file ``name``."""
    return FORMATS[info["format_version"]].summary(str(name), info)
