# SPDX-License-Identifier: MIT
"""The TFLite interpreter the baseline runs: LiteRT (`ai-edge-litert`, the maintained
successor, `pip install "pysg[litert]"`), or the frozen `tflite-runtime` when that is
what is installed (it stops at Python 3.11 and fails under numpy 2). Both modules expose
the same `Interpreter` and `OpResolverType`; TensorFlow itself is never imported."""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["INTERPRETER_MODULES", "interpreter_module"]

INTERPRETER_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


def interpreter_module() -> ModuleType:
    """The first importable of :data:`INTERPRETER_MODULES`."""
    errors = []
    for name in INTERPRETER_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError as e:  # absent, or present but broken (tflite-runtime under numpy 2)
            errors.append(f"{name}: {e}")
    raise ImportError("no TFLite interpreter: pip install 'pysg[litert]' (ai-edge-litert) or tflite-runtime ("
                      + "; ".join(errors) + ")")
