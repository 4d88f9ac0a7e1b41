# SPDX-License-Identifier: MIT
"""The C runtime (runtime_c/, `sg_runtime.h`) from Python, through cffi (API mode).

`Runtime(model)` owns everything the C side points into: an 8-byte aligned copy of the
.sgm file (the C loader validates it in place and keeps pointers into it), the
`sg_model`, the `sg_runtime` and its arena (`sg_arena_size()` bytes). Inputs are checked
here (dtype, contiguity, shape) before `ffi.from_buffer`; every `sg_status` the C side
returns goes through `_check`, which raises `SgRuntimeError` (`SgModelError`, also a
ValueError, for a file the loader rejects: the message names the byte offset and field
like `pysg.sgm.SgmFormatError`).

Two ways to drive it, bit-exact with the integer reference (pysg/intref.py):

* grain 1, events: `set_origin(t0)`, `feed(events)` (absolute µs timestamps, a
  `pysg.events.EVENT_DTYPE` array), `advance_to(t)`: `run_events` returns per-step logits;
* grain 2, frames: `step(counts)` with one binned frame (uint16, C-contiguous);
  `run_frames` for a (T, C, H, W) sample.

Version 2 files (imported int8 networks, docs/FORMAT.md sections 7-10; `is_qnet`) run
through the same object, bit-exact with `pysg.qnet.QnetRef` and TFLite: event-count models
take events (`feed` / `run_events`) or count frames over their P x in_h x in_w cells
(`step` / `run_frames`, `input_shape`); tensor-input models take the int8 input tensor
(`step_tensor` / `run_tensors`, `tensor_shape`). Their logits are the last layer's int8
outputs; `stats["spikes"]` counts the int8 deltas each table entry sent.

`evaluate_c`, `evaluate_folder_c`, `run_file_c` are the `--engine c` jobs of the CLI and
return the same keys as their `pysg.intref` counterparts.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable

import numpy as np

from .metrics import classification_summary

try:
    from ._sg_runtime import ffi, lib
except ImportError as e:  # pragma: no cover - depends on the build
    raise ImportError(f"the C runtime extension pysg._sg_runtime is not built ({e}); "
                      "build it with `pip install -e .` (needs a C compiler) or use --engine ref") from e


def _check_fresh() -> None:
    """In a source checkout (editable install), warn when the compiled module was built
    from other C files than runtime_c/ now holds: rebuild before trusting it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(os.path.join(root, "runtime_c", "src")):
        return
    from . import _build_runtime

    built = ffi.string(lib.pysg_sources_sha256()).decode()
    if built != _build_runtime.sources_digest():
        import warnings

        warnings.warn("pysg._sg_runtime is stale: runtime_c/ changed since it was built; rebuild with "
                      "`pip install -e .` or `python pysg/_build_runtime.py`", RuntimeWarning, stacklevel=3)


_check_fresh()

__all__ = ["Runtime", "SgRuntimeError", "SgModelError", "SG_EVENT_DTYPE", "as_sg_events", "evaluate_c",
           "evaluate_folder_c", "run_file_c", "run_events_c", "load_model_bytes"]

WARMUP = 0.2  # steps before floor(WARMUP * T) are not scored (pysg.intref.scores, trainer.evaluate)

# ------------------------------------------------------------------ statuses

_LOAD_STATUSES = frozenset(getattr(lib, n) for n in (
    "SG_ERR_TRUNCATED", "SG_ERR_MAGIC", "SG_ERR_VERSION", "SG_ERR_CRC", "SG_ERR_HEADER", "SG_ERR_LABEL",
    "SG_ERR_LAYER", "SG_ERR_BLOB", "SG_ERR_VALUE", "SG_ERR_ARENA", "SG_ERR_UNSUPPORTED"))


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
    name = ffi.string(ffi.cast("sg_status", int(status)))
    return name if isinstance(name, str) and name.startswith("SG_") else f"sg_status({int(status)})"


def status_text(status: int) -> str:
    """The runtime's own description (`sg_status_str`), e.g. "SG_ERR_CRC: ..."."""
    return ffi.string(lib.sg_status_str(int(status))).decode("utf-8", "replace")


def _check(status: int, model=None, what: str = "") -> None:
    """The one place every sg_status becomes an exception. With the `sg_model *` of a
    failed `sg_model_load`, the error names the offending byte offset and field."""
    if status == lib.SG_OK:
        return
    if model is not None and status in _LOAD_STATUSES:
        field = ffi.string(model.error_field).decode("utf-8", "replace") if model.error_field else "?"
        raise SgModelError(status, model.error_offset, field)
    text = status_text(status)
    raise SgRuntimeError(status, f"{what}: {text}" if what else text)


# ------------------------------------------------------------------ event layout

def _event_dtype() -> np.dtype:
    """numpy twin of `sg_event` (offsets and padding taken from the compiler's layout)."""
    fields = {"t": ("t_us", np.int64), "x": ("x", np.uint16), "y": ("y", np.uint16), "p": ("p", np.uint8)}
    dt = np.dtype({"names": list(fields), "formats": [f[1] for f in fields.values()],
                   "offsets": [ffi.offsetof("sg_event", f[0]) for f in fields.values()],
                   "itemsize": ffi.sizeof("sg_event")})
    ctypes = dict(ffi.typeof("sg_event").fields)
    for cname, typ in fields.values():
        if ffi.sizeof(ctypes[cname].type) != np.dtype(typ).itemsize:
            raise ImportError(f"sg_event.{cname} is not {np.dtype(typ)}: rebuild pysg._sg_runtime")
    return dt


SG_EVENT_DTYPE = _event_dtype()


def as_sg_events(events: np.ndarray) -> np.ndarray:
    """Events (fields x, y, t, p: `pysg.events.EVENT_DTYPE` or any integer fields) in the
    C `sg_event` layout; an array already in that layout is returned as is."""
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


# ------------------------------------------------------------------ model bytes

def load_model_bytes(model, *, dt_ms: float | None = None) -> bytes:
    """.sgm bytes from a path (.sgm, or a float .npz quantised in memory as `pysg export`
    does), bytes, or an SgmModel."""
    from .sgm import SgmModel

    if isinstance(model, SgmModel):
        from pysg.converters.sgm import encode

        return encode(model)
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        data = Path(model).read_bytes()
        if data[:4] == b"PK\x03\x04":  # a float .npz model
            from pysg.converters.sgm import export_network
            from .model.network import Network

            return export_network(Network.load(model), dt_us=None if dt_ms is None else int(round(dt_ms * 1000)))
        if dt_ms is not None and data[:4] == b"PSGM" and len(data) >= 28:
            dt_us = int.from_bytes(data[24:28], "little")
            if int(round(dt_ms * 1000)) != dt_us:
                raise ValueError(f"{model}: an .sgm model runs at its own dt ({dt_us} us); "
                                 "re-export with --dt-ms instead")
        return data
    raise TypeError(f"model must be a path, bytes or an SgmModel, got {type(model).__name__}")


# ------------------------------------------------------------------ the runtime


class Runtime:
    """One model bound to one runtime state (the C `sg_model` + `sg_runtime` + arena).

    Time: step s covers [t0 + s dt, t0 + (s + 1) dt); t0 is `set_origin`'s value or the
    first fed event's time. `logits` are the last completed step's (int32, the output
    stage's x unit); `prediction` is the argmax of the logits summed from `score_from`'s
    step on (-1 before any step)."""

    def __init__(self, model, *, dt_ms: float | None = None):
        data = load_model_bytes(model, dt_ms=dt_ms)
        self._size = len(data)
        # 8-byte aligned copy: the C side reads int16/int32 blobs in place
        self._buf = ffi.new("uint64_t[]", max(1, -(-self._size // 8)))
        ffi.memmove(self._buf, data, self._size)
        self._model = ffi.new("sg_model *")
        _check(lib.sg_model_load(self._model, self._buf, self._size), self._model)
        m = self._model
        self._arena_bytes = int(lib.sg_arena_size(m))
        self._arena = ffi.new("uint64_t[]", max(1, -(-self._arena_bytes // 8)))
        self._rt = ffi.new("sg_runtime *")
        _check(lib.sg_runtime_init(self._rt, m, self._arena, self._arena_bytes), what="sg_runtime_init")
        self.n_classes = int(m.n_classes)
        self.dt_us = int(m.dt_us)
        self.format_version = int(lib.sg_model_kind(m))
        # the counts of a step (sg_step): (channels, in_h, in_w); None for a version 2 model
        # with tensor input, which takes whole int8 tensors (`step_tensor`)
        channels = int(lib.sg_model_count_channels(m))
        self.input_shape = (channels, int(m.in_h), int(m.in_w)) if channels else None
        # version 2: the int8 input tensor (in_h, in_w, in_c), NHWC
        self.tensor_shape: tuple[int, int, int] | None = None
        self.window = int(lib.sg_model_window(m))
        if self.format_version == int(lib.SG_FORMAT_VERSION_QNET):
            self.tensor_shape = (int(m.in_h), int(m.in_w), int(m.in_c))
        self.n_inputs = int(np.prod(self.input_shape)) if self.input_shape is not None else 0
        self.sensor_size = (int(m.sensor_w), int(m.sensor_h))
        self.downsample = int(m.downsample)
        self.n_stages = int(m.n_stages)
        self.labels = [ffi.string(lib.sg_model_label(m, i)).decode("utf-8") for i in range(self.n_classes)]
        self._logits = np.frombuffer(ffi.buffer(lib.sg_logits(self._rt), 4 * self.n_classes), np.int32)
        self._score = np.frombuffer(ffi.buffer(lib.sg_scores(self._rt), 8 * self.n_classes), np.int64)
        self._layer = ffi.new("sg_layer_info *")
        self._stats = ffi.new("sg_stats *")

    # -------------------------------------------------------------- state

    def reset(self) -> None:
        """Zero every state, the scores and the statistics; forget the time origin."""
        _check(lib.sg_runtime_reset(self._rt), what="reset")

    def set_origin(self, t0_us: int) -> None:
        """Start of step 0 (µs); only before the first event (SgRuntimeError SG_ERR_TIME after)."""
        _check(lib.sg_set_origin(self._rt, int(t0_us)), what=f"set_origin({int(t0_us)})")

    def score_from(self, step: int) -> None:
        """Sum logits into the scores only from `step` on; clears the scores."""
        if step < 0:
            raise ValueError(f"score_from: step must be >= 0, got {step}")
        _check(lib.sg_score_from(self._rt, int(step)), what="score_from")

    # -------------------------------------------------------------- input

    def feed(self, events: np.ndarray) -> None:
        """Feed events in time order (absolute µs). Steps that end before an event are
        completed first; SgRuntimeError (SG_ERR_TIME) at an event before the current step."""
        ev = as_sg_events(events)
        if len(ev) == 0:
            return
        _check(lib.sg_feed(self._rt, ffi.from_buffer("sg_event[]", ev), len(ev)), what="feed")

    def advance_to(self, t_us: int) -> None:
        """Complete every step that ends at or before `t_us` (needs an origin)."""
        _check(lib.sg_advance_to(self._rt, int(t_us)), what=f"advance_to({int(t_us)})")

    @property
    def is_qnet(self) -> bool:
        """A version 2 file (an imported int8 network, docs/FORMAT.md sections 7-10)."""
        return self.tensor_shape is not None

    @property
    def tensor_input(self) -> bool:
        """A version 2 model that takes its int8 input tensor directly (`step_tensor`)."""
        return self.is_qnet and self.input_shape is None

    def step_tensor(self, x: np.ndarray) -> np.ndarray:
        """Version 2 tensor-input models: one whole step from the int8 input tensor, shape
        (in_h, in_w, in_c) = tensor_shape, with or without a leading batch of 1, or flat;
        C-contiguous. Returns the logits (the last layer's int8 outputs as int32)."""
        if not self.tensor_input:
            raise ValueError("step_tensor: this model takes "
                             + ("event counts (step / feed)" if self.is_qnet else "events (version 1 .sgm)"))
        if not isinstance(x, np.ndarray) or x.dtype != np.int8:
            raise ValueError(f"step_tensor: x must be a numpy int8 array, got "
                             f"{x.dtype if isinstance(x, np.ndarray) else type(x).__name__}")
        n = int(np.prod(self.tensor_shape))
        if x.shape not in (self.tensor_shape, (1,) + self.tensor_shape, (n,)):
            raise ValueError(f"step_tensor: x of shape {x.shape}, the model takes {self.tensor_shape}")
        if not x.flags.c_contiguous:
            raise ValueError("step_tensor: x must be C-contiguous (np.ascontiguousarray)")
        _check(lib.sg_step_tensor(self._rt, ffi.from_buffer("int8_t[]", x)), what="step_tensor")
        return self.logits

    def run_tensors(self, xs: np.ndarray, *, reset: bool = True) -> np.ndarray:
        """Per-step logits (T, n_classes) int32 of a sequence of int8 input tensors (T, *tensor_shape)."""
        if not isinstance(xs, np.ndarray) or xs.ndim < 1:
            raise ValueError("run_tensors: xs must be a numpy int8 array (T, *tensor_shape)")
        if reset:
            self.reset()
        out = np.empty((xs.shape[0], self.n_classes), np.int32)
        for t in range(xs.shape[0]):
            out[t] = self.step_tensor(np.ascontiguousarray(xs[t]))
        return out

    def step(self, counts: np.ndarray | None = None) -> np.ndarray:
        """One whole step from a frame of input event counts: uint16, C-contiguous, shape
        (C, H, W) = input_shape or (C*H*W,); None for no input. Returns the logits.
        (Version 2 event-count models: the P x in_h x in_w cells of the step.)"""
        if self.tensor_input:
            raise ValueError("step: this model takes its int8 input tensor directly (step_tensor)")
        if counts is None:
            _check(lib.sg_step(self._rt, ffi.NULL), what="step")
            return self.logits
        if not isinstance(counts, np.ndarray) or counts.dtype != np.uint16:
            raise ValueError(f"step: counts must be a numpy uint16 array, got "
                             f"{counts.dtype if isinstance(counts, np.ndarray) else type(counts).__name__}")
        if counts.shape not in (self.input_shape, (self.n_inputs,)):
            raise ValueError(f"step: counts of shape {counts.shape}, the model takes {self.input_shape} "
                             f"or ({self.n_inputs},)")
        if not counts.flags.c_contiguous:
            raise ValueError("step: counts must be C-contiguous (np.ascontiguousarray)")
        _check(lib.sg_step(self._rt, ffi.from_buffer("uint16_t[]", counts)), what="step")
        return self.logits

    # -------------------------------------------------------------- output

    @property
    def logits(self) -> np.ndarray:
        """(n_classes,) int32 logits of the last completed step (a copy)."""
        return self._logits.copy()

    @property
    def scores(self) -> np.ndarray:
        """(n_classes,) int64: logits summed over the scored steps so far."""
        return self._score.copy()

    @property
    def prediction(self) -> int:
        """Class index with the largest score (smallest on ties), -1 before any step."""
        return int(lib.sg_prediction(self._rt))

    @property
    def step_index(self) -> int:
        """Index of the current (open or next) step."""
        return int(lib.sg_step_index(self._rt))

    @property
    def stats(self) -> dict:
        """Counters since the last reset: steps, events_in, events_dropped, synops,
        spikes (per hidden stage)."""
        _check(lib.sg_get_stats(self._rt, self._stats), what="get_stats")
        s = self._stats
        # version 2: int8 deltas sent per table entry (entry 0: the input tensor's)
        n_spk = self.n_stages if self.is_qnet else self.n_stages - 1
        return {"steps": int(s.steps), "events_in": int(s.events_in), "events_dropped": int(s.events_dropped),
                "synops": int(s.synops), "spikes": [int(s.spikes[i]) for i in range(n_spk)]}

    @property
    def arena_bytes(self) -> int:
        """Arena the model needs (`sg_arena_size`)."""
        return self._arena_bytes

    @property
    def arena_used(self) -> int:
        """Arena bytes in use (`sg_arena_used`)."""
        return int(lib.sg_arena_used(self._rt))

    @property
    def model_bytes(self) -> int:
        return self._size

    def dense_macs_per_step(self) -> int:
        """Synapses of the model (every one evaluated once per step by a frame network),
        as `pysg.intref.evaluate_ref` counts them."""
        return sum(n_out * fan_in for n_out, fan_in in self.layer_sizes())

    def layer_sizes(self) -> list[tuple[int, int]]:
        """(outputs, weights per output in a dense evaluation) of every layer, the output
        layer last (`sg_model_layer`; version 2: every filter tap inside the kernel, as
        TFLite's reference kernels loop, 0 for pooling)."""
        out = []
        for i in range(int(lib.sg_model_n_layers(self._model))):
            _check(lib.sg_model_layer(self._model, i, self._layer), what=f"sg_model_layer({i})")
            out.append((int(self._layer.n_out), int(self._layer.fan_in)))
        return out

    def __repr__(self) -> str:
        if self.is_qnet:
            what = "tensor" if self.tensor_input else f"counts {self.input_shape}, window {self.window}"
            return (f"Runtime(version 2, {self.n_stages - 1} layers, input tensor {self.tensor_shape} from {what}, "
                    f"{self.n_classes} classes, dt {self.dt_us} us, arena {self.arena_bytes} B)")
        return (f"Runtime({self.n_stages} stages, input {self.input_shape}, {self.n_classes} classes, "
                f"dt {self.dt_us} us, arena {self.arena_bytes} B)")

    # -------------------------------------------------------------- whole samples

    def run_frames(self, frames: np.ndarray, *, reset: bool = True) -> np.ndarray:
        """Per-step logits (T, n_classes) int32 of a binned sample: frames (T, C, H, W) or
        (T, C*H*W) uint16 counts (grain 2, `sg_step`)."""
        if not isinstance(frames, np.ndarray) or frames.dtype != np.uint16:
            raise ValueError(f"run_frames: frames must be a numpy uint16 array, got "
                             f"{frames.dtype if isinstance(frames, np.ndarray) else type(frames).__name__}")
        if self.tensor_input:
            raise ValueError("run_frames: this model takes int8 input tensors (run_tensors)")
        if frames.ndim < 1 or frames.shape[1:] not in (self.input_shape, (self.n_inputs,)):
            raise ValueError(f"run_frames: frames of shape {frames.shape}, the model takes "
                             f"(T, *{self.input_shape}) or (T, {self.n_inputs})")
        frames = np.ascontiguousarray(frames)
        if reset:
            self.reset()
        t_steps = frames.shape[0]
        out = np.empty((t_steps, self.n_classes), np.int32)
        if t_steps == 0:
            return out
        base = ffi.from_buffer("uint16_t[]", frames)
        rt, n, logits, sg_step = self._rt, self.n_inputs, self._logits, lib.sg_step
        for t in range(t_steps):
            status = sg_step(rt, base + t * n)
            if status:
                _check(status, what=f"step {t}")
            out[t] = logits
        return out

    def run_events(self, events: np.ndarray, *, t0_us: int | None = None, n_steps: int | None = None,
                   reset: bool = True) -> np.ndarray:
        """Per-step logits (T, n_classes) int32 of one sample fed as raw events (grain 1):
        the origin is `t0_us` (default: the first event's time), T = `n_steps` (default:
        up to the step of the last event). Events are fed step by step and the logits of
        each step read when `advance_to` closes it."""
        ev = as_sg_events(events)
        t = ev["t"]
        if t.size > 1 and (t[1:] < t[:-1]).any():
            ev = ev[np.argsort(t, kind="stable")]
            t = ev["t"]
        if t0_us is None:
            if t.size == 0:
                raise ValueError("run_events: no events and no t0_us")
            t0_us = int(t[0])
        if n_steps is None:
            n_steps = 0 if t.size == 0 else (int(t[-1]) - int(t0_us)) // self.dt_us + 1
        if reset:
            self.reset()
        self.set_origin(t0_us)
        dt = self.dt_us
        bounds = np.searchsorted(t, int(t0_us) + dt * np.arange(1, n_steps + 1, dtype=np.int64), side="left")
        out = np.empty((n_steps, self.n_classes), np.int32)
        ptr = ffi.from_buffer("sg_event[]", ev)
        rt, logits, feed, advance = self._rt, self._logits, lib.sg_feed, lib.sg_advance_to
        lo = 0
        for s in range(n_steps):
            hi = int(bounds[s])
            if hi > lo:
                status = feed(rt, ptr + lo, hi - lo)
                if status:
                    _check(status, what=f"feed (step {s})")
                lo = hi
            status = advance(rt, int(t0_us) + (s + 1) * dt)
            if status:
                _check(status, what=f"advance_to (step {s})")
            out[s] = logits
        return out

    def classify_events(self, events: np.ndarray, *, t0_us: int, n_steps: int, warmup: float = WARMUP) -> int:
        """Fast path for one sample: reset, score from floor(warmup n_steps), feed every
        event at once, close n_steps steps; returns the prediction (see `scores`)."""
        self.reset()
        self.score_from(int(math.floor(warmup * n_steps)))
        self.set_origin(t0_us)
        self.feed(events)
        self.advance_to(int(t0_us) + n_steps * self.dt_us)
        return self.prediction


# ------------------------------------------------------------------ jobs (the CLI's --engine c)


def _runtime(model, dt_ms: float | None = None) -> Runtime:
    return model if isinstance(model, Runtime) else Runtime(model, dt_ms=dt_ms)


def _hidden_neurons(rt: Runtime) -> int:
    """Outputs of every stage but the last (version 2: of every layer but the last)."""
    return sum(n_out for n_out, _ in rt.layer_sizes()[:-1])


def _summary(rt: Runtime, preds, labels, spikes, synops, seconds, lengths) -> dict:
    return classification_summary(preds, labels, n_classes=rt.n_classes, spikes=spikes, synops=synops,
                                  seconds=seconds, lengths=lengths,
                                  hidden_neurons=_hidden_neurons(rt),
                                  dense_macs_per_step=rt.dense_macs_per_step(), dt_us=rt.dt_us, engine="c")


def _warmup(rt: Runtime, warmup: float | None) -> float:
    """The scoring rule's warm-up: a SpikingGamma model skips the first 20 % of a sample;
    an imported network scores every step with a whole window (its runtime skips the
    first W - 1 steps itself, docs/FORMAT.md section 8)."""
    if warmup is not None:
        return warmup
    return 0.0 if rt.is_qnet else WARMUP


def evaluate_c(model, data, *, warmup: float | None = None, progress: Callable[[int], None] | None = None) -> dict:
    """`pysg.intref.evaluate_ref` on the C runtime: binned data (a SequenceData), one
    sample at a time through `sg_step`; the same keys (engine "c")."""
    rt = _runtime(model)
    warmup = _warmup(rt, warmup)
    if data.dt_us != rt.dt_us:
        raise ValueError(f"data binned at dt={data.dt_us} us, model runs at dt={rt.dt_us} us")
    n = len(data)
    preds, spikes, synops = np.empty(n, np.int64), np.zeros(n), np.zeros(n)
    for i in range(n):
        length = int(data.lengths[i])
        rt.reset()
        rt.score_from(int(math.floor(warmup * length)))
        rt.run_frames(data.frames[i, :length].reshape(length, -1), reset=False)
        preds[i] = rt.prediction
        st = rt.stats
        spikes[i], synops[i] = sum(st["spikes"]), st["synops"]
        if progress:
            progress(1)
    return _summary(rt, preds, data.labels, spikes, synops, data.seconds, data.lengths)


def evaluate_folder_c(model, data_dir, *, split: str = "test", dt_ms: float | None = None,
                      warmup: float | None = None, progress: Callable[[int], None] | None = None) -> dict:
    """`pysg eval --engine c`: every labelled gesture of a DVS128-Gesture-layout folder fed
    to the C runtime as raw events (origin at the interval start, T = ceil(duration / dt)
    steps, exactly the bins of `pysg.intref.evaluate_folder_ref`)."""
    from .datasets.gesture import GestureDataset

    rt = _runtime(model, dt_ms)
    warmup = _warmup(rt, warmup)
    ds = GestureDataset(data_dir, split)
    n = len(ds)
    preds, labels = np.empty(n, np.int64), np.empty(n, np.int64)
    spikes, synops, lengths = np.zeros(n), np.zeros(n), np.zeros(n, np.int64)
    for i, s in enumerate(ds):
        t_steps = -(-int(s.duration_us) // rt.dt_us)
        preds[i] = rt.classify_events(s.events, t0_us=0, n_steps=t_steps, warmup=warmup)
        labels[i], lengths[i] = s.label, t_steps
        st = rt.stats
        spikes[i], synops[i] = sum(st["spikes"]), st["synops"]
        if progress:
            progress(1)
    result = _summary(rt, preds, labels, spikes, synops, lengths * (rt.dt_us / 1e6), lengths)
    result["classes"] = list(rt.labels)
    result["split"] = split
    return result


def run_events_c(model, events: np.ndarray, *, warmup: float | None = None) -> dict:
    """`pysg.intref.run_events` on the C runtime: one recording as one sample (origin at
    the first event, T = steps up to the last event); the same keys."""
    rt = _runtime(model)
    warmup = _warmup(rt, warmup)
    if len(events) == 0:
        raise ValueError("no events")
    t = events["t"]
    t0 = int(t.min())
    t_steps = (int(t.max()) - t0) // rt.dt_us + 1
    rt.reset()
    rt.score_from(int(math.floor(warmup * t_steps)))
    logits = rt.run_events(events, t0_us=t0, n_steps=t_steps, reset=False)
    sc = rt.scores
    pred = rt.prediction
    st = rt.stats
    return {"prediction": rt.labels[pred], "label_index": pred, "scores": sc.tolist(), "steps": int(t_steps),
            "spikes": st["spikes"], "synops": st["synops"], "logits": logits}


def run_file_c(model_path, events_path) -> dict:
    """`pysg run --engine c`: one recording (any format pysg.io reads) through the C runtime."""
    from .io import read_events

    return run_events_c(Runtime(model_path), read_events(events_path).events)
