# SPDX-License-Identifier: MIT
"""Live sources: DV's TCP network stream (:class:`TcpSource`) and an iniVation camera
through dv-processing (:class:`CameraSource`).

DV's TCP stream (as dv-processing's ``NetworkWriter`` / DV's "Network TCP
server" send it) is an AEDAT 4.0 file without the ``#!AER-DAT4.0\\r\\n`` line:
``int32 size`` + IOHeader flatbuffer (compression, XML stream description),
then packets ``int32 stream id, int32 size, payload`` until the server
closes the connection. All integers little-endian.
"""
from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import numpy as np

from pysg.events import EVENT_DTYPE, EventFileError
from pysg.io.sources.base import EventSource, SourceUnavailableError

__all__ = ["TcpSource", "CameraSource", "TCP_TIMEOUT_S", "MAX_HEADER_BYTES", "CAMERA_POLL_S"]

# A silent TCP stream fails after this many seconds (DV sends packets continuously
# while a camera runs; an idle recording sends nothing, so callers may raise it).
TCP_TIMEOUT_S = 5.0
# Refuse an IOHeader larger than this (a garbage stream's first 4 bytes).
MAX_HEADER_BYTES = 1 << 24
# Poll period of CameraSource while the camera has no new events.
CAMERA_POLL_S = 0.001


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
                                         "(pip install 'pysg[camera]')") from None
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
