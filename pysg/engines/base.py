# SPDX-License-Identifier: MIT
"""The Engine protocol, and the time base of the engines computed in Python.

An engine is one model bound to one running state. Time: step s covers
[t0 + s dt, t0 + (s + 1) dt); t0 is `set_origin`'s value or the first fed event's time.
Every engine (the C runtime in `native.py`, the integer references, the float network)
answers the same calls with the same meaning as the C runtime (`sg_runtime.h`):

    reset()                 zero every state, the scores, the statistics; forget t0
    set_origin(t0_us)       start of step 0, only before the first event
    feed(events)            events in time order (absolute µs); completes earlier steps
    advance_to(t_us)        completes every step that ends at or before t_us
    step(counts=None)       one whole step from a (C, H, W) count frame; the logits
    score_from(step)        sum logits into the scores only from `step` on; clears them
    logits, scores, prediction, step_index, stats (steps, events_in, events_dropped,
    synops, spikes: one counter per hidden entry)
    run_frames(frames), run_events(events, t0_us, n_steps): a whole sample's logits
    classify_batch(frames, lengths, starts): B binned samples' scores and activity

`PyEngine` writes the time base once for the Python engines: events become per-step
counts of the model's input cells (channel = polarity if the model has two count
channels, row = y // downsample, column = x // downsample; events off the sensor or the
input grid are dropped and counted), and each closed step calls the subclass's `_compute`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from .registry import LoadedModel, ModelInfo

__all__ = ["Engine", "PyEngine", "BatchResult", "EngineTimeError", "input_cells", "bin_sample", "classify_each"]


class EngineTimeError(ValueError):
    """An event before the current step, or an origin set twice (the C runtime's SG_ERR_TIME)."""


@runtime_checkable
class Engine(Protocol):
    name: str
    model: "LoadedModel"
    n_classes: int
    dt_us: int
    labels: list[str]

    def reset(self) -> None: ...
    def set_origin(self, t0_us: int) -> None: ...
    def feed(self, events: np.ndarray) -> None: ...
    def advance_to(self, t_us: int) -> None: ...
    def step(self, counts: np.ndarray | None = None) -> np.ndarray: ...
    def score_from(self, step: int) -> None: ...
    def run_frames(self, frames: np.ndarray, *, reset: bool = True) -> np.ndarray: ...
    def run_events(self, events: np.ndarray, *, t0_us: int | None = None, n_steps: int | None = None,
                   reset: bool = True) -> np.ndarray: ...
    def classify_batch(self, frames: np.ndarray, lengths: np.ndarray, starts: np.ndarray, *,
                       keep_logits: bool = False) -> "BatchResult": ...

    @property
    def logits(self) -> np.ndarray: ...
    @property
    def scores(self) -> np.ndarray: ...
    @property
    def prediction(self) -> int: ...
    @property
    def step_index(self) -> int: ...
    @property
    def stats(self) -> dict: ...


@dataclass
class BatchResult:
    """What a batched engine (`classify_batch`) returns for B samples."""
    scores: np.ndarray              # (B, n_classes)
    spikes: np.ndarray              # (B,) hidden spikes within each sample's length
    synops: np.ndarray              # (B,)
    logits: np.ndarray | None = None  # (T, B, n_classes) if asked
    indices: np.ndarray | None = None  # predictions, when the engine reports its own (a device)

    @property
    def predictions(self) -> np.ndarray:
        """argmax of the scores (the smallest index on ties), or the engine's own."""
        return self.scores.argmax(axis=1) if self.indices is None else self.indices


def sorted_events(events: np.ndarray) -> np.ndarray:
    t = events["t"]
    if t.size > 1 and (t[1:] < t[:-1]).any():
        return events[np.argsort(t, kind="stable")]
    return events


def input_cells(info: "ModelInfo", events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The input mapping, written once: the flat index (channel, row, column) of every
    kept event in a step's count frame, and the mask of the events kept (on the sensor,
    polarity 0 or 1, and on the model's input grid; the others are dropped)."""
    channels, in_h, in_w = info.input_shape
    x, y, p = (events[f].astype(np.int64) for f in ("x", "y", "p"))
    ds = info.downsample
    r, q = y // ds, x // ds
    ok = (x < info.sensor_size[0]) & (y < info.sensor_size[1]) & (p <= 1) & (r < in_h) & (q < in_w)
    ch = p if channels == 2 else np.zeros_like(p)
    return ((ch * in_h + r) * in_w + q)[ok], ok


def bin_sample(info: "ModelInfo", events: np.ndarray, n_steps: int) -> np.ndarray:
    """(n_steps, C*H*W) uint16 counts of one sample's events (t relative to its start;
    events outside [0, n_steps dt) or off the input grid are left out), saturating at
    65535 like `pysg.datasets.binning.bin_events`."""
    n = int(np.prod(info.input_shape))
    t = events["t"].astype(np.int64)
    inside = (t >= 0) & (t < n_steps * info.dt_us)
    cells, kept = input_cells(info, events[inside])
    flat = (t[inside][kept] // info.dt_us) * n + cells
    counts = np.bincount(flat, minlength=n_steps * n)
    return np.minimum(counts, 65535).astype(np.uint16).reshape(n_steps, n)


def classify_each(engine, frames: np.ndarray, lengths: np.ndarray, starts: np.ndarray, *,
                  keep_logits: bool = False) -> BatchResult:
    """B binned samples (B, T, ...) one after the other through `engine.run_frames`,
    each scored from `starts[i]` to `lengths[i]`."""
    b = len(lengths)
    scores = np.zeros((b, engine.n_classes), getattr(engine, "score_dtype", np.int64))
    spikes, synops = np.zeros(b), np.zeros(b)
    kept = None
    for i in range(b):
        n = int(lengths[i])
        engine.reset()
        engine.score_from(int(starts[i]))
        lg = engine.run_frames(np.ascontiguousarray(frames[i, :n]).reshape(n, -1), reset=False)
        if keep_logits:
            if kept is None:
                kept = np.zeros((int(lengths.max()), b, engine.n_classes), lg.dtype)
            kept[:n, i] = lg
        scores[i] = engine.scores
        st = engine.stats
        spikes[i], synops[i] = sum(st["spikes"]), st["synops"]
    return BatchResult(scores, spikes, synops, kept)


class PyEngine:
    """The time base, scores and statistics of an engine computed in Python. A subclass
    sets `name`, calls `super().__init__(model)` and implements `_reset_state()` and
    `_compute(counts)` -> (logits, spikes per hidden entry, synops) for one step
    (`counts`: flat int64 input counts, or None for a step without input)."""

    name = "python"
    score_dtype = np.int64
    first_scored = 0  # steps before this one are never scored (a kind's own rule)

    def __init__(self, model: "LoadedModel"):
        self.model = model
        info = model.info
        self.n_classes = int(info.n_classes)
        self.labels = list(info.labels)
        self.dt_us = int(info.dt_us)
        self.input_shape = info.input_shape
        self.n_inputs = int(np.prod(info.input_shape)) if info.input_shape is not None else 0
        self.reset()

    # -------------------------------------------------------------- subclass interface

    def _reset_state(self) -> None:
        raise NotImplementedError

    def _compute(self, counts: np.ndarray | None) -> tuple[np.ndarray, list[int], int]:
        raise NotImplementedError

    # -------------------------------------------------------------- state

    def reset(self) -> None:
        self._reset_state()
        self._t0: int | None = None
        self._step = 0
        self._pending = np.zeros(self.n_inputs, np.int64)
        self._has_pending = False
        self._logits = np.zeros(self.n_classes, self.score_dtype)
        self._scores = np.zeros(self.n_classes, self.score_dtype)
        self._score_start = 0
        self._stats = {"steps": 0, "events_in": 0, "events_dropped": 0, "synops": 0,
                       "spikes": [0] * self.model.info.spike_entries}

    def set_origin(self, t0_us: int) -> None:
        if self._t0 is not None:
            raise EngineTimeError(f"set_origin({int(t0_us)}): the origin is already set ({self._t0} us)")
        self._t0 = int(t0_us)

    def score_from(self, step: int) -> None:
        if step < 0:
            raise ValueError(f"score_from: step must be >= 0, got {step}")
        self._score_start = int(step)
        self._scores[:] = 0

    # -------------------------------------------------------------- input

    def _cells(self, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat input-cell index of every kept event, and the mask of the events kept (on
        the sensor and on the model's input grid)."""
        if self.input_shape is None:
            raise ValueError(f"{self.name} engine: this model takes its input tensor directly, not events")
        return input_cells(self.model.info, events)

    def feed(self, events: np.ndarray) -> None:
        if len(events) == 0:
            return
        dt = self.dt_us
        t = events["t"].astype(np.int64)
        if self._t0 is None:
            self._t0 = int(t[0]) - self._step * dt
        s = (t - self._t0) // dt
        before = np.maximum.accumulate(np.concatenate(([self._step], s)))[:-1]  # the open step at each event
        bad = np.flatnonzero((s < before) | (t < self._t0))
        n_ok = int(bad[0]) if bad.size else len(events)
        ok, s = events[:n_ok], s[:n_ok]
        for u in np.unique(s):
            while self._step < u:
                self._close()
            cells, kept = self._cells(ok[s == u])
            np.add.at(self._pending, cells, 1)
            self._has_pending = True
            self._stats["events_in"] += int(cells.size)
            self._stats["events_dropped"] += int(kept.size - cells.size)
        if bad.size:
            raise EngineTimeError(f"feed: event {n_ok} at t={int(t[n_ok])} us lies before the current step "
                                  f"{self._step} (origin {self._t0} us, dt {dt} us)")

    def advance_to(self, t_us: int) -> None:
        if self._t0 is None:
            raise EngineTimeError(f"advance_to({int(t_us)}): no origin (set_origin or feed an event first)")
        if t_us < self._t0:
            return
        done = (int(t_us) - self._t0) // self.dt_us
        while self._step < done:
            self._close()

    def step(self, counts: np.ndarray | None = None) -> np.ndarray:
        if counts is not None:
            c = np.asarray(counts)
            if c.shape not in (tuple(self.input_shape or ()), (self.n_inputs,)):
                raise ValueError(f"step: counts of shape {c.shape}, the model takes {self.input_shape} "
                                 f"or ({self.n_inputs},)")
            self._pending += c.reshape(-1).astype(np.int64)
            self._has_pending = True
            self._stats["events_in"] += int(c.sum())  # a frame's counts are events in, as sg_step counts them
        self._close()
        return self.logits

    def _close(self) -> None:
        result = self._compute(self._pending.copy() if self._has_pending else None)
        self._pending[:] = 0
        self._has_pending = False
        self._account(*result)

    def _account(self, logits: np.ndarray, spikes: list[int], synops: int) -> None:
        """Statistics and scores of the step just computed; the next step opens."""
        st = self._stats
        st["steps"] += 1
        st["synops"] += int(synops)
        st["spikes"] = [a + int(b) for a, b in zip(st["spikes"], spikes)]
        self._logits = np.asarray(logits).astype(self.score_dtype)
        if self._step >= max(self._score_start, self.first_scored):
            self._scores += self._logits
        self._step += 1

    # -------------------------------------------------------------- output

    @property
    def logits(self) -> np.ndarray:
        return self._logits.copy()

    @property
    def scores(self) -> np.ndarray:
        return self._scores.copy()

    @property
    def prediction(self) -> int:
        return int(np.argmax(self._scores)) if self._stats["steps"] else -1

    @property
    def step_index(self) -> int:
        return self._step

    @property
    def stats(self) -> dict:
        return dict(self._stats, spikes=list(self._stats["spikes"]))

    # -------------------------------------------------------------- whole samples

    def classify_batch(self, frames: np.ndarray, lengths: np.ndarray, starts: np.ndarray, *,
                       keep_logits: bool = False) -> BatchResult:
        return classify_each(self, frames, lengths, starts, keep_logits=keep_logits)

    def run_frames(self, frames: np.ndarray, *, reset: bool = True) -> np.ndarray:
        frames = np.asarray(frames)
        if reset:
            self.reset()
        out = np.empty((frames.shape[0], self.n_classes), self.score_dtype)
        for t in range(frames.shape[0]):
            out[t] = self.step(frames[t].reshape(-1))
        return out

    def run_events(self, events: np.ndarray, *, t0_us: int | None = None, n_steps: int | None = None,
                   reset: bool = True) -> np.ndarray:
        """Per-step logits of one sample fed as raw events: the events are counted per
        step once (as `feed` + `advance_to` step by step would), then each step runs."""
        ev = sorted_events(events)
        t = ev["t"].astype(np.int64)
        if t0_us is None:
            if t.size == 0:
                raise ValueError("run_events: no events and no t0_us")
            t0_us = int(t[0])
        dt = self.dt_us
        if n_steps is None:
            n_steps = 0 if t.size == 0 else (int(t[-1]) - int(t0_us)) // dt + 1
        if reset:
            self.reset()
        self.set_origin(t0_us)
        if t.size and t[0] < t0_us:
            raise EngineTimeError(f"run_events: event at t={int(t[0])} us before the origin {int(t0_us)} us")
        keep = t < int(t0_us) + n_steps * dt
        ev, s = ev[keep], (t[keep] - int(t0_us)) // dt
        cells, kept = self._cells(ev)
        frames = np.zeros((n_steps, self.n_inputs), np.int64)
        np.add.at(frames, (s[kept], cells), 1)
        self._stats["events_in"] += int(cells.size)
        self._stats["events_dropped"] += int(kept.size - cells.size)
        out = np.empty((n_steps, self.n_classes), self.score_dtype)
        for k in range(n_steps):
            self._pending += frames[k]
            self._has_pending = True
            self._close()
            out[k] = self._logits
        return out
