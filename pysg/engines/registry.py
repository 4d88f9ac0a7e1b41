# SPDX-License-Identifier: MIT
"""Model kinds and the engine registry `(engine name, model kind) -> factory`.

A model kind (`ModelKind`) says how to recognise its models (the parsed object's type;
for an .sgm kind its format version), its scoring rule (`pysg.scoring`), and how to
describe a model (`ModelInfo`: labels, dt, sensor geometry, count channels, the sizes
the evaluation summary reports). Each kind registers itself and its engines in its own
module (`sg_ref.py`, `qnet_ref.py`, `float_net.py`); `pysg/engines/__init__.py` imports
those modules: that import is a kind's one registration. Nothing outside a kind's module
asks which version a model is: callers look the kind up here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..scoring import ScoringRule

__all__ = ["ModelInfo", "ModelKind", "LoadedModel", "EngineNotAvailable", "register_kind", "register_engine",
           "kind_named", "kind_of_version", "kind_of", "engines_for", "create_engine", "native_engine", "KINDS"]


class EngineNotAvailable(ValueError):
    """No engine of that name runs this model kind."""


@dataclass(frozen=True)
class ModelInfo:
    """What jobs and engines need to know of a model, whatever its kind."""
    labels: tuple[str, ...]
    dt_us: int
    sensor_size: tuple[int, int]         # (width, height) of the sensor its events come from
    downsample: int
    input_shape: tuple[int, int, int] | None  # a step's event counts (C, H, W); None: tensor input
    hidden_neurons: int                  # for spikes / neuron / s
    dense_macs_per_step: int             # the equivalent frame network's work per step
    spike_entries: int                   # counters in stats["spikes"]
    n_classes: int = -1                  # default: len(labels)
    tensor_shape: tuple[int, int, int] | None = None  # a kind whose models can take an int8 input tensor
                                         # per step (step_tensor): its shape (in_h, in_w, in_c), NHWC

    def __post_init__(self) -> None:
        if self.n_classes < 0:
            object.__setattr__(self, "n_classes", len(self.labels))

    @property
    def count_channels(self) -> int:
        return 0 if self.input_shape is None else int(self.input_shape[0])


@dataclass(frozen=True)
class ModelKind:
    name: str                            # "float", "sg", "qnet", ...
    description: str
    model_type: type                     # the parsed model's class
    rule: ScoringRule
    describe: Callable[[Any], ModelInfo]
    format_version: int | None = None    # .sgm kinds: the header's format version
    integer: bool = True                 # runs on the C runtime and the integer engines
    writer: str = ""                     # "module:function" that encodes a parsed model to
                                         # .sgm bytes (imported only when needed)


@dataclass
class LoadedModel:
    """A model and its kind: `obj` the parsed model (Network, SgmModel, SgmQModel, ...),
    `data` the .sgm bytes of an integer model (what the C runtime and devices load)."""
    kind: ModelKind
    obj: Any
    data: bytes | None = None
    source: str = "<memory>"

    def __post_init__(self) -> None:
        self.info = self.kind.describe(self.obj)

    @property
    def rule(self) -> ScoringRule:
        return self.kind.rule


KINDS: dict[str, ModelKind] = {}
_ENGINES: dict[tuple[str, str], Callable[[LoadedModel], Any]] = {}


def register_kind(kind: ModelKind) -> ModelKind:
    if kind.name in KINDS and KINDS[kind.name] != kind:
        raise ValueError(f"model kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind


def register_engine(engine: str, kind: str, factory: Callable[[LoadedModel], Any]) -> None:
    _ENGINES[(engine, kind)] = factory


def kind_named(name: str) -> ModelKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown model kind {name!r} (known: {', '.join(sorted(KINDS))})") from None


def kind_of_version(version: int) -> ModelKind:
    """The .sgm kind of a format version."""
    for k in KINDS.values():
        if k.format_version == version:
            return k
    raise ValueError(f".sgm format version {version} is not a known model kind "
                     f"(known: {', '.join(str(k.format_version) for k in KINDS.values() if k.format_version)})")


def kind_of(obj: Any) -> ModelKind:
    """The kind of a parsed model object."""
    for k in KINDS.values():
        if isinstance(obj, k.model_type):
            return k
    raise TypeError(f"{type(obj).__name__} is not a model of a known kind ({', '.join(sorted(KINDS))})")


def engines_for(kind: str) -> list[str]:
    return sorted(e for e, k in _ENGINES if k == kind)


def native_engine(model: LoadedModel):
    """The C runtime's engine: registered by every .sgm kind the runtime runs."""
    from .native import NativeEngine

    return NativeEngine(model)


def create_engine(engine: str, model: LoadedModel):
    """An engine `engine` ("c", "ref", "float", ...) running `model`."""
    factory = _ENGINES.get((engine, model.kind.name))
    if factory is None:
        raise EngineNotAvailable(f"engine {engine!r} does not run {model.kind.description} models "
                                 f"(engines for it: {', '.join(engines_for(model.kind.name)) or 'none'})")
    return factory(model)
