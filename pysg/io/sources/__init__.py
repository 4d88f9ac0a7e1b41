# SPDX-License-Identifier: MIT
"""Live and replayed event sources: iterators of EVENT_DTYPE batches.

Every source is an :class:`EventSource`: iterate it to get event batches
(EVENT_DTYPE arrays, never empty, in arrival order), read ``width`` /
``height`` (None when unknown), ``close()`` it or use it as a context manager.

* :class:`FileSource` replays a file of any format :mod:`pysg.io` reads,
  in batches of ``batch_us`` of event time, paced at ``speed`` x real time.
* :class:`TcpSource` reads DV's network stream (AEDAT 4.0 packets).
* :class:`CameraSource` reads a camera through dv-processing.
* :class:`BoundedSource` runs any source in a producer thread behind a
  bounded buffer that drops or decimates when the consumer falls behind.
* :func:`open_source` builds one of them from a string.

One module each: the interface (:mod:`.base`), file replay (:mod:`.replay`), DV's
network stream and the camera (:mod:`.live`, with the stream's layout), back-pressure
(:mod:`.bounded`); every name is importable from :mod:`pysg.io.sources`.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pysg.io.sources.base import EventSource, SourceUnavailableError
from pysg.io.sources.bounded import BoundedSource
from pysg.io.sources.live import (  # noqa: F401 - CAMERA_POLL_S: public here too
    CAMERA_POLL_S,
    MAX_HEADER_BYTES,
    TCP_TIMEOUT_S,
    CameraSource,
    TcpSource,
)
from pysg.io.sources.replay import FileSource

__all__ = [
    "MAX_HEADER_BYTES",
    "SOURCE_SCHEMES",
    "TCP_TIMEOUT_S",
    "BoundedSource",
    "CameraSource",
    "EventSource",
    "FileSource",
    "SourceUnavailableError",
    "TcpSource",
    "open_source",
]


# --------------------------------------------------------------------------- #
# open_source
# --------------------------------------------------------------------------- #
def _open_file(rest: str, **kw: Any) -> EventSource:
    if not rest:
        raise ValueError("open_source: 'file:' needs a path, e.g. file:recording.aedat4")
    return FileSource(rest, **kw)


def _open_tcp(rest: str, **kw: Any) -> EventSource:
    addr = rest.removeprefix("//")
    host, sep, port = addr.rpartition(":")
    host = host.strip("[]")          # tcp://[::1]:7777
    if not sep or not host or not port.isdigit():
        raise ValueError(f"open_source: expected tcp://HOST:PORT, got 'tcp:{rest}'")
    return TcpSource(host, int(port), **kw)


def _open_camera(rest: str, **kw: Any) -> EventSource:
    return CameraSource(rest or None, **kw)


# scheme -> opener(rest of the spec after "scheme:", **kwargs)
SOURCE_SCHEMES: dict[str, Callable[..., EventSource]] = {
    "file": _open_file, "tcp": _open_tcp, "camera": _open_camera}


def open_source(spec: str | os.PathLike, **kwargs: Any) -> EventSource:
    """An EventSource from a string.

    * ``file:PATH`` or a plain path (anything without a known ``scheme:``
      prefix, so ``C:\\\\x.aedat4`` and ``./tcp:odd`` are paths)
      -> :class:`FileSource`;
    * ``tcp://HOST:PORT`` -> :class:`TcpSource`;
    * ``camera`` or ``camera:SERIAL`` -> :class:`CameraSource`.

    ``kwargs`` go to the source's constructor (e.g. ``speed``, ``timeout``).
    """
    if isinstance(spec, os.PathLike):
        return FileSource(spec, **kwargs)
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"open_source: spec must be a non-empty string or path, got {spec!r}")
    if spec == "camera":
        return CameraSource(**kwargs)
    scheme, sep, rest = spec.partition(":")
    if sep and scheme in SOURCE_SCHEMES:
        return SOURCE_SCHEMES[scheme](rest, **kwargs)
    return FileSource(spec, **kwargs)
