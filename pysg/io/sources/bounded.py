# SPDX-License-Identifier: MIT
"""Back-pressure: :class:`BoundedSource` runs a source in a producer thread behind a
bounded buffer that drops or decimates when the consumer falls behind."""
from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from pysg.io.sources.base import EventSource

__all__ = ["BoundedSource"]

_END = object()


class BoundedSource(EventSource):
    """Run ``source`` in a producer thread behind a buffer of at most
    ``max_events`` events, so a slow consumer never makes memory grow.

    When an incoming batch does not fit (buffered + incoming > max_events):

    * ``"drop"``: the oldest buffered batches are discarded, whole, until it
      fits; a batch larger than ``max_events`` by itself keeps only its last
      ``max_events`` events. The consumer stays close to live.
    * ``"decimate"``: every buffered batch and the incoming one keep their
      events at even indices (``b[::2]``), repeatedly, until the total fits;
      if a round removes nothing (all batches hold one event) the oldest batch
      is discarded. Time coverage is kept, density is reduced.

    Counters (exact at any time, under the lock): ``events_in`` (from
    ``source``), ``events_out`` (returned by ``next``), ``dropped``, and
    ``buffered``; ``events_in == events_out + dropped + buffered``.
    ``high_water`` is the largest ``buffered`` seen (always <= max_events).
    An exception in ``source`` is re-raised by ``next``.
    """

    POLICIES = ("drop", "decimate")

    def __init__(self, source: EventSource, max_events: int, policy: str = "drop") -> None:
        super().__init__()
        if isinstance(max_events, bool) or not isinstance(max_events, (int, np.integer)) or max_events < 1:
            raise ValueError(f"BoundedSource: max_events must be a positive integer, got {max_events!r}")
        if policy not in self.POLICIES:
            raise ValueError(f"BoundedSource: policy must be one of {self.POLICIES}, got {policy!r}")
        self.source, self.max_events, self.policy = source, int(max_events), policy
        self.width, self.height = source.width, source.height
        self.events_in = self.events_out = self.dropped = self.buffered = self.high_water = 0
        self._queue: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._produce, name="pysg-BoundedSource", daemon=True)
        self._thread.start()

    def _fit(self, batch: np.ndarray) -> np.ndarray:
        """Make room for ``batch`` (lock held); returns what of it is kept."""
        q, cap = self._queue, self.max_events
        if self.policy == "drop":
            if batch.size > cap:
                self.dropped += batch.size - cap
                batch = batch[batch.size - cap:].copy()   # a view would keep the whole batch alive
            while q and self.buffered + batch.size > cap:
                old = q.popleft()
                self.buffered -= old.size
                self.dropped += old.size
            return batch
        while self.buffered + batch.size > cap:
            before = self.buffered + batch.size
            for i in range(len(q)):
                q[i] = q[i][::2].copy()   # copies: views would keep the originals alive
            batch = batch[::2].copy()
            self.buffered = sum(b.size for b in q)
            after = self.buffered + batch.size
            self.dropped += before - after
            if after == before:      # every batch has <= 1 event
                if q:
                    old = q.popleft()
                    self.buffered -= old.size
                    self.dropped += old.size
                else:                # cap >= 1 and batch.size <= 1: cannot happen
                    break
        return batch

    def _produce(self) -> None:
        try:
            for batch in self.source:
                with self._cond:
                    if self._stop:
                        return
                    self.events_in += batch.size
                    batch = self._fit(batch)
                    if batch.size:
                        self._queue.append(batch)
                        self.buffered += batch.size
                        self.high_water = max(self.high_water, self.buffered)
                    self._cond.notify_all()
            item: Any = _END
        except BaseException as e:  # noqa: BLE001 - any failure is handed to the consumer
            item = e
        finally:
            try:
                self.source.close()
            except Exception:  # noqa: BLE001, S110 - the source's own error was already reported
                pass
        with self._cond:
            self._queue.append(item)
            self._cond.notify_all()

    def _batches(self) -> Iterator[np.ndarray]:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if not self._queue:      # closed from another thread
                    return
                item = self._queue.popleft()
                if isinstance(item, np.ndarray):
                    self.buffered -= item.size
                    self.events_out += item.size
            if item is _END:
                return
            if isinstance(item, BaseException):
                if self._stop:
                    return
                raise item
            yield item

    def close(self, timeout: float = 5.0) -> None:
        """Stop the producer (closing ``source``) and join it for up to ``timeout`` s."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        try:
            self.source.close()     # wakes a producer blocked in a socket read
        except Exception:  # noqa: BLE001, S110 - closing is best effort; the producer reports errors
            pass
        self._thread.join(timeout)
        super().close()
