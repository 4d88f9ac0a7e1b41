# SPDX-License-Identifier: MIT
"""The C runtime from Python: the names this module always had, kept for its users.

The engine itself is `pysg.engines.native.NativeEngine` (engine "c"); the extension, its
status -> exception path and the event layout are `pysg._native`; the jobs are
`pysg.jobs`. `Runtime(model)` is the native engine that also takes a float .npz path
(quantised as `pysg export` does, optionally retargeted with `dt_ms`) or a parsed model.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from . import jobs
from ._native import (SG_EVENT_DTYPE, SgModelError, SgRuntimeError, as_sg_events, check as _check, status_name,
                      status_text)
from .engines.native import NativeEngine, ffi, lib
from .scoring import WARMUP

__all__ = ["Runtime", "SgRuntimeError", "SgModelError", "SG_EVENT_DTYPE", "as_sg_events", "evaluate_c",
           "evaluate_folder_c", "run_file_c", "run_events_c", "load_model_bytes", "status_name", "status_text",
           "WARMUP", "ffi", "lib", "_check"]


class Runtime(NativeEngine):
    """`NativeEngine` over a path (.sgm, or a float .npz quantised in memory), bytes or a
    parsed model; `dt_ms` retargets a float model (an .sgm file runs at its own dt)."""

    def __init__(self, model, *, dt_ms: float | None = None):
        if isinstance(model, (str, os.PathLike)):
            data = Path(model).read_bytes()
            if not data.startswith(b"PK\x03\x04"):  # an .sgm: the C loader validates it first
                super().__init__(data)
                if dt_ms is not None and int(round(dt_ms * 1000)) != self.dt_us:
                    raise ValueError(f"{model}: an .sgm model runs at its own dt ({self.dt_us} us); "
                                     "re-export with --dt-ms instead")
                return
        elif isinstance(model, (bytes, bytearray, memoryview)) and dt_ms is None:
            super().__init__(model)
            return
        super().__init__(jobs.load_model(model, engine="c", dt_ms=dt_ms))


def load_model_bytes(model, *, dt_ms: float | None = None) -> bytes:
    """.sgm bytes from a path (.sgm, or a float .npz quantised in memory), bytes, or a parsed model."""
    return jobs.load_model(model, engine="c", dt_ms=dt_ms).data


def evaluate_c(model, data, *, progress: Callable[[int], None] | None = None) -> dict:
    """`pysg.jobs.evaluate` on the C runtime (binned data, a SequenceData)."""
    return jobs.evaluate(model, data, engine="c", progress=progress).summary


def evaluate_folder_c(model, data_dir, *, split: str = "test", dt_ms: float | None = None,
                      progress: Callable[[int], None] | None = None) -> dict:
    """`pysg eval --engine c`: `pysg.jobs.evaluate` on a DVS128-Gesture-layout folder."""
    return jobs.evaluate(model, data_dir, engine="c", split=split, dt_ms=dt_ms, progress=progress).summary


def run_events_c(model, events: np.ndarray) -> dict:
    """`pysg.jobs.run` on the C runtime: one recording as one sample."""
    return jobs.run(model, events, engine="c")


def run_file_c(model_path, events_path) -> dict:
    """`pysg run --engine c`: one recording (any format pysg.io reads) through the C runtime."""
    return jobs.run_file(model_path, events_path, engine="c")
