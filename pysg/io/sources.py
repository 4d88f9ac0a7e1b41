# SPDX-License-Identifier: MIT
"""Live and replayed event sources: iterators of EVENT_DTYPE batches.

Every source is an :class:`EventSource`: iterate it to get event batches
(EVENT_DTYPE arrays, never empty, in arrival order), read ``width`` /
``height`` (None when unknown), ``close()`` it or use it as a context manager.

* :class:`FileSource` replays a file of any format :mod:`pysg.io` reads,
  in batches of ``batch_us`` of event time, paced at ``speed`` x real time.
* :class:`TcpSource` reads DV's network stream (AEDAT 4.0 packets, see below).
* :class:`CameraSource` reads a camera through dv-processing.
* :class:`BoundedSource` runs any source in a producer thread behind a
  bounded buffer that drops or decimates when the consumer falls behind.
* :func:`open_source` builds one of them from a string.

DV's TCP stream (as dv-processing's ``NetworkWriter`` / DV's "Network TCP
server" send it) is an AEDAT 4.0 file without the ``#!AER-DAT4.0\\r\\n`` line:
``int32 size`` + IOHeader flatbuffer (compression, XML stream description),
then packets ``int32 stream id, int32 size, payload`` until the server
closes the connection. All integers little-endian.
"""
from __future__ import annotations

import collections
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Self

import numpy as np

from pysg.events import EVENT_DTYPE, EventFileError

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

# A silent TCP stream fails after this many seconds (DV sends packets continuously
# while a camera runs; an idle recording sends nothing, so callers may raise it).
TCP_TIMEOUT_S = 5.0
# Refuse an IOHeader larger than this (a garbage stream's first 4 bytes).
MAX_HEADER_BYTES = 1 << 24
# Poll period of CameraSource while the camera has no new events.
CAMERA_POLL_S = 0.001


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


# --------------------------------------------------------------------------- #
# File replay
# --------------------------------------------------------------------------- #
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


# --------------------------------------------------------------------------- #
# DV network stream
# --------------------------------------------------------------------------- #
class TcpSource(EventSource):
    """Events of DV's TCP stream (dv-processing ``NetworkWriter``, DV's output
    module "Network TCP server").

    Connects, reads the IOHeader at once (so ``width``/``height`` and
    ``compression`` are known after construction), then yields the events of
    each packet of the chosen event stream; packets of other streams are
    skipped. Iteration stops when the server closes the connection at a
    packet boundary. A leading ``#!AER-DAT4.0\\r\\n`` line (a file piped into
    a socket) is accepted and skipped. No reconnection.

    Args:
        host, port: the server.
        timeout: seconds for connecting and for each read (> 0).
        stream: stream id; default the first ``EVTS`` stream of the header.

    Raises:
        SourceUnavailableError: connection refused / unreachable.
        TimeoutError: no data for ``timeout`` s (names the byte offset).
        EventFileError: garbage (names ``tcp://host:port`` and the byte offset
            in the stream where the problem starts).
    """

    def __init__(self, host: str, port: int, *, timeout: float = TCP_TIMEOUT_S, stream: int | None = None) -> None:
        super().__init__()
        from pysg.io.aedat4 import (
            MAGIC,
            MAX_PACKET_BYTES,
            _pick_stream,
            decode_io_header,
        )
        if isinstance(port, bool) or not isinstance(port, (int, np.integer)) or not 0 < port < 65536:
            raise ValueError(f"TcpSource: port must be an integer in [1, 65535], got {port!r}")
        if not timeout or timeout <= 0:
            raise ValueError(f"TcpSource: timeout must be > 0 seconds, got {timeout!r}")
        self.host, self.port, self.timeout = host, int(port), float(timeout)
        self.name = f"tcp://{host}:{port}"
        self._max_packet = MAX_PACKET_BYTES
        self.offset = 0                       # bytes consumed from the stream
        try:
            self._sock = socket.create_connection((host, self.port), timeout=self.timeout)
        except (TimeoutError, ConnectionError, OSError) as e:
            raise SourceUnavailableError(f"{self.name}: cannot connect ({e}); is DV's network output "
                                         f"(or dv.io.NetworkWriter) running on that address?") from None
        try:
            first = self._recv_exact(4, "IOHeader size", eof_ok=False)
            if first == MAGIC[:4]:            # tolerate the file's version line
                rest = self._recv_exact(len(MAGIC) - 4, "version line", eof_ok=False)
                if first + rest != MAGIC:
                    raise EventFileError(self.name, "byte offset 0",
                                         f"stream starts with {(first + rest)!r}, not an AEDAT 4.0 IOHeader")
                first = self._recv_exact(4, "IOHeader size", eof_ok=False)
            size = struct.unpack("<i", first)[0]
            if not 0 < size <= MAX_HEADER_BYTES:
                raise EventFileError(self.name, f"byte offset {self.offset - 4}",
                                     f"IOHeader size {size} invalid (expected 1..{MAX_HEADER_BYTES}; "
                                     f"stream starts with {first!r}) - is this a DV AEDAT 4.0 stream?")
            at = self.offset
            self.header = decode_io_header(self._recv_exact(size, "IOHeader", eof_ok=False),
                                           source=self.name, offset=at)
            self._stream = _pick_stream(self.name, self.header, stream)
        except BaseException:
            self._sock.close()
            raise
        self.compression = self.header.compression
        self.width, self.height = self._stream.width, self._stream.height

    def _recv_exact(self, n: int, what: str, eof_ok: bool) -> bytes | None:
        """n bytes, or None on a clean EOF before the first byte if eof_ok."""
        buf = bytearray()
        while len(buf) < n:
            try:
                part = self._sock.recv(min(n - len(buf), 1 << 20))
            except TimeoutError:
                raise TimeoutError(f"{self.name}: no data for {self.timeout} s at byte offset "
                                   f"{self.offset + len(buf)} (reading {what})") from None
            except OSError as e:
                if self._closed:
                    return None
                raise EventFileError(self.name, f"byte offset {self.offset + len(buf)}",
                                     f"connection error while reading {what}: {e}") from None
            if not part:
                if not buf and eof_ok:
                    return None
                if self._closed:
                    return None
                raise EventFileError(self.name, f"byte offset {self.offset + len(buf)}",
                                     f"connection closed inside {what} ({len(buf)} of {n} bytes)")
            buf += part
        self.offset += n
        return bytes(buf)

    def _batches(self) -> Iterator[np.ndarray]:
        from pysg.io.aedat4 import decode_event_packet
        while True:
            at = self.offset
            head = self._recv_exact(8, "packet header", eof_ok=True)
            if head is None:
                return
            sid, size = struct.unpack("<ii", head)
            if not 0 <= size <= self._max_packet:
                raise EventFileError(self.name, f"byte offset {at + 4}",
                                     f"packet size {size} of stream {sid} invalid (0..{self._max_packet})")
            payload = self._recv_exact(size, f"packet of stream {sid}", eof_ok=False)
            if payload is None:
                return
            if sid != self._stream.id:
                continue
            ev = decode_event_packet(payload, self.compression, source=self.name, offset=at + 8)
            if ev.size:
                yield ev

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)   # wakes a recv blocked in another thread
        except OSError:
            pass
        self._sock.close()
        super().close()


# --------------------------------------------------------------------------- #
# Camera (dv-processing)
# --------------------------------------------------------------------------- #
class CameraSource(EventSource):
    """Events of an iniVation camera (DVS128, DAVIS, DVXplorer) via dv-processing.

    Args:
        name: the camera's serial number; default the first camera found.
        poll_s: sleep between polls while the camera has no new events.

    Raises:
        SourceUnavailableError: dv-processing not installed, no camera found,
            or the named camera cannot be opened.
    """

    def __init__(self, name: str | None = None, *, poll_s: float = CAMERA_POLL_S) -> None:
        super().__init__()
        try:
            import dv_processing as dv
        except ImportError:
            raise SourceUnavailableError("CameraSource needs dv-processing: install dv-processing "
                                         "(pip install dv-processing)") from None
        devices = list(dv.io.camera.discover())
        if not devices:
            raise SourceUnavailableError("no camera found by dv-processing (dv.io.camera.discover() is empty): "
                                         "plug in an iniVation camera and check USB permissions (udev rules)")
        try:
            self._cam = dv.io.camera.open(name) if name else dv.io.camera.open()
        except Exception as e:  # noqa: BLE001 - dv-processing raises RuntimeError and others
            raise SourceUnavailableError(f"cannot open camera {name or '(first found)'}: {e}; "
                                         f"cameras found: {devices}") from None
        if not self._cam.isEventStreamAvailable():
            raise SourceUnavailableError(f"camera {self._cam.getCameraName()} has no event stream")
        self.name = self._cam.getCameraName()
        self.width, self.height = self._cam.getEventResolution()
        self._poll_s = poll_s

    def _batches(self) -> Iterator[np.ndarray]:
        while self._cam.isRunning():
            store = self._cam.getNextEventBatch()
            if store is None or len(store) == 0:
                time.sleep(self._poll_s)
                continue
            a = store.numpy()
            ev = np.empty(a.size, dtype=EVENT_DTYPE)
            ev["x"], ev["y"], ev["t"], ev["p"] = a["x"], a["y"], a["timestamp"], a["polarity"]
            yield ev

    def close(self) -> None:
        self._cam = None  # dv-processing closes the device when the object is released
        super().close()


# --------------------------------------------------------------------------- #
# Back-pressure
# --------------------------------------------------------------------------- #
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
