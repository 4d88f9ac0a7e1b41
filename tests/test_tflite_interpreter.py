# SPDX-License-Identifier: MIT
"""pysg.converters.tflite_interpreter: LiteRT by default, tflite-runtime when that is what is
installed, and a clear error when neither is."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from pysg.converters.tflite_interpreter import interpreter_module


def test_litert_first_and_it_runs_a_model():
    pytest.importorskip("ai_edge_litert", reason="pip install ai-edge-litert==2.3.0")
    pytest.importorskip("tflite", reason="the tflite package writes the model")
    from pysg.converters.tflite_writer import OpSpec, TensorSpec, write_tflite

    mod = interpreter_module()
    assert mod.__name__ == "ai_edge_litert.interpreter"
    w = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    model = write_tflite([TensorSpec("x", (1, 4), "int8", [np.float32(0.1)], [0]),
                          TensorSpec("w", (3, 4), "int8", [np.float32(0.1)], [0], 0, w),
                          TensorSpec("y", (1, 3), "int8", [np.float32(0.5)], [0])],
                         [OpSpec("FULLY_CONNECTED", [0, 1, -1], [2], {})], [0], [2])
    it = mod.Interpreter(model_content=model, experimental_op_resolver_type=mod.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], np.array([[10, 20, 30, 40]], np.int8))
    it.invoke()
    # y = 0.1 * 0.1 / 0.5 * (w @ x) = 0.02 * [-400, 0, 400] = [-8, 0, 8]: no rounding ties
    acc = w.astype(np.int64) @ np.array([10, 20, 30, 40])
    np.testing.assert_array_equal(it.get_tensor(it.get_output_details()[0]["index"])[0],
                                  np.clip(np.round(acc * 0.02), -128, 127).astype(np.int8))


def test_falls_back_to_tflite_runtime(monkeypatch):
    fake_pkg = types.ModuleType("tflite_runtime")
    fake = types.ModuleType("tflite_runtime.interpreter")
    fake.Interpreter = object
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    monkeypatch.setitem(sys.modules, "tflite_runtime", fake_pkg)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fake)
    assert interpreter_module() is fake


def test_neither_installed_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(ImportError, match="pysg\\[litert\\]"):
        interpreter_module()
