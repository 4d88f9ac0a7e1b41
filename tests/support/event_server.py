# SPDX-License-Identifier: MIT
"""A DV-style event stream server on 127.0.0.1 for the TCP source tests: a thread that
serves given bytes to one client in small pieces, and the bytes of an AEDAT 4.0 stream."""
from __future__ import annotations

import socket
import threading

from pysg.io.aedat4 import MAGIC, write_aedat4


class Server:
    """Serve ``data`` to one client on 127.0.0.1 in small pieces, then close
    (or hold the connection open until ``release`` is set)."""

    def __init__(self, data: bytes, piece: int = 1000, hold: bool = False):
        self.data, self.piece, self.hold = data, piece, hold
        self.release = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            try:
                for a in range(0, len(self.data), self.piece):
                    conn.sendall(self.data[a:a + self.piece])
            except OSError:
                return
            if self.hold:
                self.release.wait(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.thread.join(10)
        self.sock.close()


def stream_bytes(tmp_path, ev, compression="lz4", width=128, height=128, magic=False) -> bytes:
    """``ev`` as DV's TCP stream: an AEDAT 4.0 file (pysg's writer) without its version
    line (with it if ``magic``)."""
    path = tmp_path / f"s_{compression}.aedat4"
    write_aedat4(path, ev, width=width, height=height, compression=compression, packet_events=500)
    data = path.read_bytes()
    assert data.startswith(MAGIC)
    return data if magic else data[len(MAGIC):]
