# SPDX-License-Identifier: MIT
"""Engine "c": the C runtime (runtime_c/, `sg_runtime.h`) through cffi, for every .sgm kind.

`NativeEngine(model)` owns everything the C side points into: an 8-byte aligned copy of
the .sgm file (the C loader validates it in place and keeps pointers into it), the
`sg_model`, the `sg_runtime` and its arena (`sg_arena_size()` bytes). Inputs are checked
here (dtype, contiguity, shape) before `ffi.from_buffer`; every `sg_status` goes through
`pysg._native.check` (SgRuntimeError; SgModelError, also a ValueError, for a file the
loader rejects: the message names the byte offset and field like `pysg.sgm.SgmFormatError`).

Two ways to drive it, bit-exact with the integer references (`pysg.engines` "ref"):

* grain 1, events: `set_origin(t0)`, `feed(events)` (absolute µs timestamps, a
  `pysg.events.EVENT_DTYPE` array), `advance_to(t)`: `run_events` returns per-step logits;
* grain 2, frames: `step(counts)` with one binned frame (uint16, C-contiguous);
  `run_frames` for a (T, C, H, W) sample.

Models with tensor input (their kind's `ModelInfo.tensor_shape`; today imported int8
networks, .sgm version 2) take the int8 input tensor (`step_tensor` / `run_tensors`);
everything kind-specific comes from the model's kind (`ModelInfo`), never from its
format version. Imported networks' logits are the last layer's int8 outputs and
`stats["spikes"]` counts the int8 deltas each table entry sent.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .. import _native
from ..scoring import WARMUP
from .base import BatchResult, classify_each
from .registry import LoadedModel, kind_of_version

__all__ = ["NativeEngine", "read_sgm_bytes", "validate"]

ffi, lib = _native.require("the C engine (--engine c)")
_check = _native.check


def read_sgm_bytes(model) -> bytes:
    """The bytes of an .sgm model given as a LoadedModel, bytes or a path."""
    if isinstance(model, LoadedModel):
        if model.data is None:
            raise ValueError(f"the C runtime runs .sgm models; {model.source} is a {model.kind.description} "
                             "(quantise it first: pysg.jobs.load_model(..., engine='c'))")
        return model.data
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        return Path(model).read_bytes()
    raise TypeError(f"model must be a LoadedModel, bytes or a path, got {type(model).__name__}")


def validate(data: bytes) -> None:
    """Load `data` with the C loader (`sg_model_load`): SgModelError names the first bad field."""
    buf = ffi.new("uint64_t[]", max(1, -(-len(data) // 8)))
    ffi.memmove(buf, data, len(data))
    m = ffi.new("sg_model *")
    _check(lib.sg_model_load(m, buf, len(data)), m)


class NativeEngine:
    """One model bound to one C runtime state (the C `sg_model` + `sg_runtime` + arena).

    `logits` are the last completed step's (int32, the output stage's x unit);
    `prediction` is the argmax of the logits summed from `score_from`'s step on (-1
    before any step)."""

    name = "c"

    def __init__(self, model):
        data = read_sgm_bytes(model)
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
        self._stats = ffi.new("sg_stats *")
        self._read_c_structs()
        channels = int(lib.sg_model_count_channels(m))
        # the counts of a step (sg_step): (channels, in_h, in_w); None for a model with tensor
        # input, which takes whole int8 tensors (`step_tensor`)
        self.input_shape = (channels, self._in_h, self._in_w) if channels else None
        self.n_inputs = int(np.prod(self.input_shape)) if self.input_shape is not None else 0
        self.labels = [ffi.string(lib.sg_model_label(m, i)).decode("utf-8") for i in range(self.n_classes)]
        self.kind = kind_of_version(self.format_version)
        if isinstance(model, LoadedModel):
            self.model = model
        else:  # the Python view of the same bytes (the C loader has accepted them)
            from ..sgm import load_sgm

            self.model = LoadedModel(self.kind, load_sgm(data), data)
        # the int8 input tensor (in_h, in_w, in_c), NHWC, of a kind that takes one (`step_tensor`)
        self.tensor_shape: tuple[int, int, int] | None = self.model.info.tensor_shape

    # ---------------------------------------------------------------------------------
    # What the model and runtime say about themselves: the common header fields of sg_model
    # (documented read-only in sg_runtime.h) and the runtime's accessor functions; nothing
    # reads a kind's own descriptors or state.
    def _read_c_structs(self) -> None:
        m = self._model
        self.n_classes = int(m.n_classes)
        self.dt_us = int(m.dt_us)
        self.format_version = int(lib.sg_model_kind(m))
        self._in_h, self._in_w = int(m.in_h), int(m.in_w)
        self.sensor_size = (int(m.sensor_w), int(m.sensor_h))
        self.downsample = int(m.downsample)
        self.n_stages = int(m.n_stages)
        self.window = int(lib.sg_model_window(m))  # steps one output depends on as a whole (else 1)
        self._logits = np.frombuffer(ffi.buffer(lib.sg_logits(self._rt), 4 * self.n_classes), np.int32)
        self._score = np.frombuffer(ffi.buffer(lib.sg_scores(self._rt), 8 * self.n_classes), np.int64)

    @property
    def step_index(self) -> int:
        """Index of the current (open or next) step."""
        return int(lib.sg_step_index(self._rt))
    # ---------------------------------------------------------------------------------

    @property
    def tensor_input(self) -> bool:
        """A model that takes its int8 input tensor directly (`step_tensor`), not event counts."""
        return self.tensor_shape is not None and self.input_shape is None

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
        ev = _native.as_sg_events(events)
        if len(ev) == 0:
            return
        _check(lib.sg_feed(self._rt, ffi.from_buffer("sg_event[]", ev), len(ev)), what="feed")

    def advance_to(self, t_us: int) -> None:
        """Complete every step that ends at or before `t_us` (needs an origin)."""
        _check(lib.sg_advance_to(self._rt, int(t_us)), what=f"advance_to({int(t_us)})")

    def step_tensor(self, x: np.ndarray) -> np.ndarray:
        """Tensor-input models: one whole step from the int8 input tensor, shape
        (in_h, in_w, in_c) = tensor_shape, with or without a leading batch of 1, or flat;
        C-contiguous. Returns the logits (the last layer's int8 outputs as int32)."""
        if not self.tensor_input:
            raise ValueError(f"step_tensor: this model ({self.kind.description}) takes event counts (step / feed)")
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
        (C, H, W) = input_shape or (C*H*W,); None for no input. Returns the logits."""
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
    def stats(self) -> dict:
        """Counters since the last reset: steps, events_in, events_dropped, synops,
        spikes (per hidden stage; imported networks: deltas per table entry)."""
        _check(lib.sg_get_stats(self._rt, self._stats), what="get_stats")
        s = self._stats
        return {"steps": int(s.steps), "events_in": int(s.events_in), "events_dropped": int(s.events_dropped),
                "synops": int(s.synops), "spikes": [int(s.spikes[i]) for i in range(self.model.info.spike_entries)]}

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
        """The equivalent frame network's multiply-accumulates per step (the kind's count)."""
        return self.model.info.dense_macs_per_step

    def __repr__(self) -> str:
        what = "tensor" if self.tensor_input else f"counts {self.input_shape}"
        return (f"{type(self).__name__}({self.kind.description}, {self.n_stages} stages, input {what}, "
                f"{self.n_classes} classes, dt {self.dt_us} us, arena {self.arena_bytes} B)")

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
        ev = _native.as_sg_events(events)
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

    def classify_batch(self, frames: np.ndarray, lengths: np.ndarray, starts: np.ndarray, *,
                       keep_logits: bool = False) -> BatchResult:
        """B binned samples one after the other through `sg_step`."""
        return classify_each(self, frames, lengths, starts, keep_logits=keep_logits)
