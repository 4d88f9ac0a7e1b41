# SPDX-License-Identifier: MIT
"""The one import of the C extension `pysg._sg_runtime` (runtime_c/ through cffi, API mode).

Policy, the same for every user: the extension is part of the package (`pip install .`
builds it), so it is imported here once, and

* `require(what)` returns `(ffi, lib)` or raises :class:`NativeUnavailableError` (an
  ImportError) that names the fix. The C engine, `pysg.preprocess_c` and the C kernels of
  `pysg.qkernels` call it: they have no other implementation.
* `optional(*functions)` returns `(ffi, lib)` or `(None, None)`: the event-file decoders
  (`pysg.io.evt`, `aedat4`, `aedat31`) keep their numpy reference as the fallback, so
  reading a recording never needs a compiler. Same decision, same place, no second import.

`check(status)` is the one place an `sg_status` becomes an exception:
:class:`SgRuntimeError` (status names, not numbers), and :class:`SgModelError` (also a
ValueError) with the byte offset and field of a file the loader rejects.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

__all__ = ["NativeUnavailableError", "SgRuntimeError", "SgModelError", "SG_EVENT_DTYPE", "available", "require",
           "optional", "check", "status_name", "status_text", "as_sg_events"]

FIX = "build it with `pip install .` (or `pip install -e .` in a checkout; needs a C compiler)"


class NativeUnavailableError(ImportError):
    """The C extension is missing, stale or lacks a function: the message says how to rebuild."""


try:
    from ._sg_runtime import ffi, lib
    _IMPORT_ERROR: str | None = None
except ImportError as e:  # pragma: no cover - depends on the build
    ffi = lib = None
    _IMPORT_ERROR = f"the C runtime extension pysg._sg_runtime is not built ({e}): {FIX}"


def available() -> bool:
    return lib is not None


def require(what: str = "the C runtime", *functions: str):
    """(ffi, lib), or NativeUnavailableError naming `what` needs it and how to build it."""
    if lib is None:
        raise NativeUnavailableError(f"{what} needs C: {_IMPORT_ERROR}")
    missing = [f for f in functions if not hasattr(lib, f)]
    if missing:
        raise NativeUnavailableError(f"{what}: pysg._sg_runtime was built without {', '.join(missing)} "
                                     f"(stale build): {FIX}")
    return ffi, lib


def optional(*functions: str):
    """(ffi, lib) when the extension is built with `functions`, else (None, None)."""
    if lib is None or not all(hasattr(lib, f) for f in functions):
        return None, None
    return ffi, lib


def _check_fresh() -> None:
    """In a source checkout, warn when the compiled module was built from other C files
    than runtime_c/ now holds: rebuild before trusting it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if lib is None or not os.path.isdir(os.path.join(root, "runtime_c", "src")):
        return
    from . import _build_runtime

    if ffi.string(lib.pysg_sources_sha256()).decode() != _build_runtime.sources_digest():
        warnings.warn("pysg._sg_runtime is stale: runtime_c/ changed since it was built; rebuild with "
                      "`pip install -e .` or `python pysg/_build_runtime.py`", RuntimeWarning, stacklevel=3)


_check_fresh()

# ------------------------------------------------------------------ statuses

_LOAD_STATUS_NAMES = ("SG_ERR_TRUNCATED", "SG_ERR_MAGIC", "SG_ERR_VERSION", "SG_ERR_CRC", "SG_ERR_HEADER",
                      "SG_ERR_LABEL", "SG_ERR_LAYER", "SG_ERR_BLOB", "SG_ERR_VALUE", "SG_ERR_ARENA",
                      "SG_ERR_UNSUPPORTED")
_LOAD_STATUSES = frozenset(getattr(lib, n) for n in _LOAD_STATUS_NAMES) if lib is not None else frozenset()


class SgRuntimeError(RuntimeError):
    """A C runtime call failed: `status` (negative int), `name` ("SG_ERR_TIME", ...)."""

    def __init__(self, status: int, message: str):
        self.status = int(status)
        self.name = status_name(status)
        super().__init__(message)


class SgModelError(SgRuntimeError, ValueError):
    """The C loader rejected the model file: `offset` of the first bad field, `field` its
    name (as `pysg.sgm.SgmFormatError`)."""

    def __init__(self, status: int, offset: int, field: str):
        self.offset = int(offset)
        self.field = field
        super().__init__(status, f"byte offset {self.offset} ({field}): {status_text(status)}")


def status_name(status: int) -> str:
    """"SG_ERR_CRC" for -5; "sg_status(<n>)" for a value the header does not know."""
    ffi_, _ = require("status_name")
    name = ffi_.string(ffi_.cast("sg_status", int(status)))
    return name if isinstance(name, str) and name.startswith("SG_") else f"sg_status({int(status)})"


def status_text(status: int) -> str:
    """The runtime's own description (`sg_status_str`), e.g. "SG_ERR_CRC: ..."."""
    ffi_, lib_ = require("status_text")
    return ffi_.string(lib_.sg_status_str(int(status))).decode("utf-8", "replace")


def check(status: int, model=None, what: str = "") -> None:
    """The one place every sg_status becomes an exception. With the `sg_model *` of a
    failed `sg_model_load`, the error names the offending byte offset and field."""
    if status == 0:  # SG_OK
        return
    if model is not None and status in _LOAD_STATUSES:
        field = ffi.string(model.error_field).decode("utf-8", "replace") if model.error_field else "?"
        raise SgModelError(status, model.error_offset, field)
    text = status_text(status)
    raise SgRuntimeError(status, f"{what}: {text}" if what else text)


# ------------------------------------------------------------------ event layout

def _event_dtype() -> np.dtype | None:
    """numpy twin of `sg_event` (offsets and padding taken from the compiler's layout)."""
    if lib is None:
        return None
    fields = {"t": ("t_us", np.int64), "x": ("x", np.uint16), "y": ("y", np.uint16), "p": ("p", np.uint8)}
    dt = np.dtype({"names": list(fields), "formats": [f[1] for f in fields.values()],
                   "offsets": [ffi.offsetof("sg_event", f[0]) for f in fields.values()],
                   "itemsize": ffi.sizeof("sg_event")})
    ctypes = dict(ffi.typeof("sg_event").fields)
    for cname, typ in fields.values():
        if ffi.sizeof(ctypes[cname].type) != np.dtype(typ).itemsize:
            raise NativeUnavailableError(f"sg_event.{cname} is not {np.dtype(typ)} (stale build): {FIX}")
    return dt


SG_EVENT_DTYPE = _event_dtype()


def as_sg_events(events: np.ndarray) -> np.ndarray:
    """Events (fields x, y, t, p: `pysg.events.EVENT_DTYPE` or any integer fields) in the
    C `sg_event` layout; an array already in that layout is returned as is."""
    require("as_sg_events")
    if not isinstance(events, np.ndarray) or events.dtype.names is None:
        got = f"array of {events.dtype}" if isinstance(events, np.ndarray) else type(events).__name__
        raise ValueError(f"events must be a structured numpy array with fields x, y, t, p, got {got}")
    if events.ndim != 1:
        raise ValueError(f"events must be one-dimensional, got shape {events.shape}")
    if events.dtype == SG_EVENT_DTYPE and events.flags.c_contiguous:
        return events
    missing = [f for f in ("x", "y", "t", "p") if f not in events.dtype.names]
    if missing:
        raise ValueError(f"events need fields x, y, t, p (missing {', '.join(missing)})")
    out = np.empty(len(events), SG_EVENT_DTYPE)
    for f in ("t", "x", "y", "p"):
        col = events[f]
        target = SG_EVENT_DTYPE[f]
        if col.dtype.kind not in "iub":
            raise ValueError(f"events field {f} must be integer, got {col.dtype}")
        if not np.can_cast(col.dtype, target) and col.size:
            lo, hi = int(col.min()), int(col.max())
            info = np.iinfo(target)
            if lo < info.min or hi > info.max:
                raise ValueError(f"events field {f} holds {lo}..{hi}, outside {target} range")
        out[f] = col
    return out
