# SPDX-License-Identifier: MIT
"""Recordings through engines chunk by chunk, in bounded memory: `pysg run` (one sample,
`pysg.jobs.run_file`) and `pysg eval` (each labelled gesture of a recording, its own
sample, `pysg.jobs.evaluate`).

A sample is fed to an engine as the recording's time-ordered chunks pass (`feed`, steps
closed by `advance_to`), so memory holds one chunk, the open samples' engines and, when
asked, their per-step logits; never the recording. Results equal the whole-array paths
(`run`, the binned `classify_batch`): tests/test_eval_chunked.py checks it with chunks
small enough to cut every gesture.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

__all__ = ["StepFeeder", "GestureRow", "StreamedSample", "RecordingUnordered", "stream_gestures"]


class RecordingUnordered(ValueError):
    """A recording's events are not in time order: it must be read whole and sorted."""


class StepFeeder:
    """One sample through one engine: origin `t0`, `n_steps` steps, scored by the kind's
    rule. With `keep_logits` each step is closed by `advance_to` and its logits kept (the
    native engine's own `run_events` loop); without, the engine closes steps as later
    events arrive and `finish` closes the rest."""

    def __init__(self, eng, t0: int, n_steps: int, *, keep_logits: bool = True):
        self.eng, self.t0, self.n_steps = eng, int(t0), int(n_steps)
        eng.reset()
        eng.score_from(eng.model.rule.first_step(self.n_steps))
        eng.set_origin(self.t0)
        dtype = np.int32 if eng.model.kind.integer else np.asarray(eng.logits).dtype
        self.logits = np.empty((self.n_steps, eng.n_classes), dtype) if keep_logits else None
        self.s = 0              # the next step to close (keep_logits)
        self.n_events = 0

    def feed(self, ev: np.ndarray) -> None:
        """Events of this sample in time order, none before the last fed (t absolute, µs)."""
        if not ev.size:
            return
        self.n_events += ev.size
        eng, dt, t0 = self.eng, self.eng.dt_us, self.t0
        if self.logits is None:
            eng.feed(ev)
            return
        t = ev["t"].astype(np.int64)
        last = int((t[-1] - t0) // dt)                  # the chunk's last event's step stays open
        bounds = np.searchsorted(t, t0 + dt * np.arange(self.s + 1, last + 1, dtype=np.int64), side="left")
        lo = 0
        for hi in bounds:
            if hi > lo:
                eng.feed(ev[lo:hi])
                lo = int(hi)
            self._close_step()
        if lo < ev.size:
            eng.feed(ev[lo:])

    def _close_step(self) -> None:
        self.eng.advance_to(self.t0 + (self.s + 1) * self.eng.dt_us)
        self.logits[self.s] = self.eng.logits
        self.s += 1

    def finish(self) -> "StepFeeder":
        """Close every step up to n_steps."""
        if self.logits is None:
            self.eng.advance_to(self.t0 + self.n_steps * self.eng.dt_us)
        while self.logits is not None and self.s < self.n_steps:
            self._close_step()
        return self


@dataclass(frozen=True)
class GestureRow:
    """One labelled interval [t_start, t_end) µs of a recording; `index` orders the results."""
    index: int
    label: int
    t_start: int
    t_end: int


@dataclass
class StreamedSample:
    """A gesture's result: the engine's scores and statistics after its last step, and the
    events of its interval: in the recording, kept by the mapping, off the input grid."""
    row: GestureRow
    n_steps: int
    scores: np.ndarray
    spikes: float
    synops: float
    logits: np.ndarray | None
    events_in: int = 0
    events_kept: int = 0
    events_off_grid: int = 0


@dataclass
class _Open:
    row: GestureRow
    feeder: StepFeeder
    counts: list[int] = field(default_factory=lambda: [0, 0, 0])   # in, kept, off grid


def _ordered_chunks(chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    last = None
    for c in chunks:
        if not c.size:
            continue
        t = c["t"]
        if (last is not None and int(t[0]) < last) or bool((t[1:] < t[:-1]).any()):
            raise RecordingUnordered("events not in time order")
        last = int(t[-1])
        yield c


def stream_gestures(chunks: Iterable[np.ndarray], rows: list[GestureRow], info, new_engine: Callable[[], object],
                    mapping, *, keep_logits: bool = False, pool: list | None = None) -> list[StreamedSample]:
    """Every row of one recording, from its raw time-ordered chunks: each chunk is mapped
    onto the model's sensor (`pysg.preprocess.apply_mapping`) and the part inside each open
    gesture fed to that gesture's engine (overlapping gestures run side by side; engines
    are taken from `pool`, made by `new_engine` when it is empty, and put back once a
    gesture ends). RecordingUnordered when the chunks are not in time
    order (the caller then gives the recording whole, sorted). Results in row order."""
    from .engines.base import input_cells
    from .preprocess import apply_mapping

    dt = int(info.dt_us)
    pending = sorted(rows, key=lambda r: (r.t_start, r.index))
    free: list = [] if pool is None else pool
    live: list[_Open] = []
    done: list[StreamedSample] = []

    def open_row(row: GestureRow) -> None:
        eng = free.pop() if free else new_engine()
        n = -(-(row.t_end - row.t_start) // dt)
        live.append(_Open(row, StepFeeder(eng, row.t_start, n, keep_logits=keep_logits)))

    def close(o: _Open) -> None:
        f = o.feeder.finish()
        eng = f.eng
        st = eng.stats
        done.append(StreamedSample(o.row, f.n_steps, np.asarray(eng.scores).astype(getattr(eng, "score_dtype", np.int64)),
                                   float(sum(st["spikes"])), float(st["synops"]), f.logits, *o.counts))
        free.append(eng)

    for raw in _ordered_chunks(chunks):
        t_raw = raw["t"]
        end = int(t_raw[-1])
        while pending and pending[0].t_start <= end:
            open_row(pending.pop(0))
        ev = apply_mapping(raw, mapping)
        t = ev["t"]
        for o in live:
            a, b = np.searchsorted(t_raw, [o.row.t_start, o.row.t_end], side="left")
            c, d = np.searchsorted(t, [o.row.t_start, o.row.t_end], side="left")
            part = ev[c:d]
            o.counts[0] += int(b - a)
            o.counts[1] += int(d - c)
            o.counts[2] += int((~input_cells(info, part)[1]).sum())
            o.feeder.feed(part)
        for o in [o for o in live if o.row.t_end <= end]:  # later events are at >= end: none of theirs
            live.remove(o)
            close(o)
    for o in live:
        close(o)
    for row in pending:                               # gestures after the last event: steps without input
        open_row(row)
        close(live.pop())
    return sorted(done, key=lambda s: s.row.index)


def recording_chunks(path: str | os.PathLike, chunk_events: int) -> Iterator[np.ndarray]:
    """A gesture folder's recording (AEDAT 3.1, as `GestureDataset` reads it) in chunks."""
    from .io.aedat31 import iter_aedat31

    return iter_aedat31(path, chunk_events=chunk_events)


def sorted_recording(path: str | os.PathLike) -> np.ndarray:
    """The whole recording sorted by t (stable), as `GestureDataset` holds it."""
    from .engines.base import sorted_events
    from .io.aedat31 import read_aedat31

    return sorted_events(read_aedat31(path))


class MappedRecording:
    """A recording file on a model's sensor (`pysg.preprocess.sensor_mapping`), read in
    chunks: one pass at construction counts the events in and kept and finds the kept
    events' time range and whether they are in time order; `chunks()` then yields the
    mapped events in time order (a recording out of order: read whole and sorted once).
    `sensor`: anything with `sensor_size` (a ModelInfo, a device's ModelHeader)."""

    def __init__(self, path: str | os.PathLike, sensor, *, crop=None, downsample=None,
                 chunk_events: int = 1_000_000):
        from .io import _geometry, detect_format, iter_events
        from .preprocess import apply_mapping, sensor_mapping

        self.path, self.chunk_events = os.fspath(path), chunk_events
        size = _geometry(self.path, detect_format(self.path), {})
        self.mapping = sensor_mapping(size, tuple(sensor.sensor_size), crop=crop, downsample=downsample)
        self.events_in = self.events_kept = 0
        self.t_min = self.t_max = None
        self.ordered = True
        last = None
        for chunk in iter_events(self.path, chunk_events=chunk_events):
            self.events_in += chunk.size
            t = apply_mapping(chunk, self.mapping)["t"]
            if not t.size:
                continue
            self.events_kept += t.size
            self.ordered = self.ordered and (last is None or int(t[0]) >= last) and bool((t[1:] >= t[:-1]).all())
            last = int(t[-1])
            lo, hi = int(t.min()), int(t.max())
            self.t_min = lo if self.t_min is None else min(self.t_min, lo)
            self.t_max = hi if self.t_max is None else max(self.t_max, hi)

    @property
    def events_dropped(self) -> int:
        """Events the mapping left out (outside its window)."""
        return self.events_in - self.events_kept

    def chunks(self) -> Iterator[np.ndarray]:
        from .engines.base import sorted_events
        from .io import iter_events, read_events
        from .preprocess import apply_mapping

        if not self.ordered:
            yield sorted_events(apply_mapping(read_events(self.path).events, self.mapping))
            return
        for c in iter_events(self.path, chunk_events=self.chunk_events):
            ev = apply_mapping(c, self.mapping)
            if ev.size:
                yield ev
