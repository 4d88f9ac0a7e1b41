# SPDX-License-Identifier: MIT
"""The source interface: :class:`EventSource` (an iterator of EVENT_DTYPE batches and a
context manager) and :class:`SourceUnavailableError`."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Self

import numpy as np

__all__ = ["EventSource", "SourceUnavailableError"]


class SourceUnavailableError(RuntimeError):
    """A source cannot be opened (package missing, no camera, connection refused);
    the message says what to do."""


class EventSource:
    """Base class: an iterator of EVENT_DTYPE batches and a context manager.

    Subclasses implement ``_batches()`` (a generator) and may extend ``close()``.
    """
    width: int | None = None
    height: int | None = None

    def __init__(self) -> None:
        self._gen: Iterator[np.ndarray] | None = None
        self._closed = False

    def _batches(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def __iter__(self) -> EventSource:
        return self

    def __next__(self) -> np.ndarray:
        if self._closed:
            raise StopIteration
        if self._gen is None:
            self._gen = self._batches()
        return next(self._gen)

    def close(self) -> None:
        """Release the file / socket / camera; iteration then stops."""
        self._closed = True
        if self._gen is not None:
            try:
                self._gen.close()
            except ValueError:   # running in another thread: it stops at its next batch
                pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
