# SPDX-License-Identifier: MIT
"""Helpers the command modules share: progress bars and the default engine."""
from __future__ import annotations

import sys
from pathlib import Path


def _bar(total: int, desc: str, unit: str = "it", quiet: bool = False):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=quiet or None, leave=False, file=sys.stderr)


def _engine(requested: str | None, model) -> str:
    """--engine default: the C runtime for an .sgm model (the integer reference, with a
    warning, when the extension is not built), the float model otherwise."""
    if requested is not None:
        return requested
    if Path(model).suffix.lower() != ".sgm":
        return "float"
    return _c_or_ref()


def _c_or_ref() -> str:
    from .. import _native

    try:
        _native.require("--engine c")
    except ImportError as e:
        print(f"pysg: warning: {e}; falling back to --engine ref", file=sys.stderr)
        return "ref"
    return "c"


def _jobs():
    """pysg.jobs; a missing C extension becomes a one-line error (ValueError) in the CLI."""
    from .. import jobs

    return jobs
