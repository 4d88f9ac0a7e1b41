# SPDX-License-Identifier: MIT
"""File replay: :class:`FileSource` plays an event file back as a live source, in batches of
event time, paced at a multiple of real time."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from pysg.events import EVENT_DTYPE
from pysg.io.sources.base import EventSource

__all__ = ["FileSource"]


class FileSource(EventSource):
    """Replay an event file as a live source.

    Batching rule: with ``t0`` the first event's timestamp, event ``e`` belongs
    to window ``k = (e.t - t0) // batch_us``. Events are taken in file order and
    a batch ends just before the first event whose window is later than the
    batch's; an event whose timestamp goes back (unsorted file) stays in the
    current batch. Windows without events produce no batch. Timestamps are
    passed on unchanged (not rebased to 0).

    Pacing: the batch of window ``k`` is released once
    ``clock() >= start + (k + 1) * batch_us / 1e6 / speed``, where ``start`` is
    ``clock()`` at the first ``next()`` - i.e. when a camera would have
    delivered it. ``speed=None`` releases batches as fast as they are read.

    Args:
        path: any file :func:`pysg.io.read_events` reads.
        speed: real-time factor (> 0; 2.0 = twice as fast) or None.
        batch_us: window length in µs (> 0).
        chunk_events: events read from the file at a time (memory bound).
        clock, sleep: injectable time source (seconds) and sleep, for tests.
        **options: passed to :func:`pysg.io.iter_events` (e.g. ``stream``).
    """

    def __init__(self, path: str | os.PathLike, *, speed: float | None = 1.0, batch_us: int = 10_000,
                 chunk_events: int = 1_000_000, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, **options: Any) -> None:
        super().__init__()
        from pysg.io import _geometry, detect_format
        if speed is not None and (isinstance(speed, bool) or not isinstance(speed, (int, float))
                                  or not speed > 0 or speed == float("inf")):
            raise ValueError(f"FileSource: speed must be a positive finite number or None, got {speed!r}")
        if isinstance(batch_us, bool) or not isinstance(batch_us, (int, np.integer)) or batch_us <= 0:
            raise ValueError(f"FileSource: batch_us must be a positive integer, got {batch_us!r}")
        self.path = os.fspath(path)
        self.format = detect_format(self.path)
        self.width, self.height = _geometry(self.path, self.format, options)
        self.speed = speed
        self.batch_us = int(batch_us)
        self._chunk_events = chunk_events
        self._options = options
        self._clock = clock
        self._sleep = sleep

    def _windows(self) -> Iterator[tuple[int, np.ndarray]]:
        """(window index, batch) in file order, batches merged across chunks."""
        from pysg.io import iter_events
        t0: int | None = None
        pending: list[np.ndarray] = []
        pending_k = -1
        reached = -1          # running maximum window index (unsorted files)
        for chunk in iter_events(self.path, chunk_events=self._chunk_events, **self._options):
            if not chunk.size:
                continue
            if t0 is None:
                t0 = int(chunk["t"][0])
            k = (chunk["t"].astype(np.int64) - t0) // self.batch_us
            k = np.maximum.accumulate(np.maximum(k, reached))
            reached = int(k[-1])
            cuts = np.flatnonzero(k[1:] != k[:-1]) + 1
            starts = np.concatenate(([0], cuts))
            ends = np.concatenate((cuts, [chunk.size]))
            for a, b in zip(starts, ends):
                ka = int(k[a])
                if pending and ka != pending_k:
                    yield pending_k, np.concatenate(pending)
                    pending = []
                pending_k = ka
                pending.append(chunk[a:b])
        if pending:
            yield pending_k, np.concatenate(pending)

    def _batches(self) -> Iterator[np.ndarray]:
        start: float | None = None
        for k, batch in self._windows():
            if self.speed is not None:
                if start is None:
                    start = self._clock()
                due = start + (k + 1) * self.batch_us / 1e6 / self.speed
                wait = due - self._clock()
                if wait > 0:
                    self._sleep(wait)
            yield batch.astype(EVENT_DTYPE, copy=False)
