# SPDX-License-Identifier: MIT
"""One engine interface for every model kind (see `base.py` for the protocol).

    from pysg.jobs import load_model
    from pysg.engines import create_engine
    eng = create_engine("ref", load_model("model.sgm"))
    logits = eng.run_events(events)

Engines: "float" (the float network, float kind only), "ref" (the integer reference of
the kind), "c" (the C runtime, every .sgm kind). Model kinds register themselves and
their engines in their own modules; the imports below are the registrations (adding a
kind: its module, plus one line here). Nothing here imports pysg.converters.
"""
from __future__ import annotations

from .base import BatchResult, Engine, EngineTimeError, PyEngine
from .registry import (KINDS, EngineNotAvailable, LoadedModel, ModelInfo, ModelKind, create_engine, engines_for,
                       kind_named, kind_of, kind_of_version, register_engine, register_kind)

# the model kinds: one registration each
from . import float_net  # noqa: E402,F401  float SpikingGamma network (.npz)
from . import sg_ref  # noqa: E402,F401     SpikingGamma int8 (.sgm version 1)
from . import qnet_ref  # noqa: E402,F401   imported int8 network (.sgm version 2)
from . import snn  # noqa: E402,F401        spiking network, NIR (.sgm version 3)

__all__ = ["BatchResult", "Engine", "EngineNotAvailable", "EngineTimeError", "KINDS", "LoadedModel", "ModelInfo",
           "ModelKind", "PyEngine", "create_engine", "engines_for", "kind_named", "kind_of", "kind_of_version",
           "register_engine", "register_kind"]
