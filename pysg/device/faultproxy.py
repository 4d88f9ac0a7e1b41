# SPDX-License-Identifier: MIT
"""A TCP proxy that damages the byte stream between a host and a device.

    python -m pysg.device.faultproxy --upstream socket://127.0.0.1:5555 --drop 0.01 --corrupt 0.01

listens on 127.0.0.1 (prints `socket://127.0.0.1:PORT`, the URL for the host) and
forwards each client connection to the upstream device, dropping and corrupting bytes in
either direction with seeded numpy Generators, so a run is reproducible for the same
byte stream. Two fault units:

* ``frame`` (default): the stream is cut at 0x00 (the protocol's frame end); each frame
  (with its 0x00) loses one byte with probability `drop` and has one byte XORed with a
  random non-zero value with probability `corrupt` (what a noisy UART does to a packet).
* ``byte``: every byte independently is dropped with probability `drop` and corrupted
  with probability `corrupt`.

`cut()` closes the current connection (a lost link); `cut_after(n)` does it right after
forwarding the chunk in which the n-th further byte from host to device arrived (so the
device executes that request and its reply is lost). `counters` says what the proxy did.
"""
from __future__ import annotations

import argparse
import socket
import sys
import threading
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["FaultProxy", "DirectionCounters", "parse_socket_url", "main"]

_RECV = 65536


def parse_socket_url(url: str) -> tuple[str, int]:
    """'socket://HOST:PORT' or 'HOST:PORT' -> (host, port); ValueError otherwise."""
    rest = url[len("socket://"):] if url.startswith("socket://") else url
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{url!r} is not socket://HOST:PORT")
    return host, int(port)


@dataclass
class DirectionCounters:
    bytes: int = 0           # bytes received from the sender
    frames: int = 0          # frames seen (unit "frame")
    dropped: int = 0         # bytes removed
    corrupted: int = 0       # bytes changed


@dataclass
class ProxyCounters:
    to_device: DirectionCounters = field(default_factory=DirectionCounters)
    to_host: DirectionCounters = field(default_factory=DirectionCounters)
    connections: int = 0
    cuts: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class _Damage:
    """The fault model of one direction (its own Generator)."""

    def __init__(self, rng: np.random.Generator, drop: float, corrupt: float, unit: str, c: DirectionCounters):
        self.rng, self.drop, self.corrupt, self.unit, self.c = rng, drop, corrupt, unit, c
        self._held = bytearray()

    def __call__(self, data: bytes) -> bytes:
        self.c.bytes += len(data)
        if self.unit == "byte":
            return self._bytes(data)
        self._held += data
        end = self._held.rfind(b"\x00")
        if end < 0:
            return b""
        done, self._held = bytes(self._held[:end + 1]), self._held[end + 1:]
        out = bytearray()
        for frame in done.split(b"\x00")[:-1]:
            out += self._frame(frame + b"\x00")
        return bytes(out)

    def _frame(self, frame: bytes) -> bytes:
        if len(frame) == 1:  # a lone 0x00: the host's resync, not a frame
            return frame
        self.c.frames += 1
        f = bytearray(frame)
        if self.rng.random() < self.corrupt:
            i = int(self.rng.integers(len(f)))
            f[i] ^= int(self.rng.integers(1, 256))
            self.c.corrupted += 1
        if self.rng.random() < self.drop:
            del f[int(self.rng.integers(len(f)))]
            self.c.dropped += 1
        return bytes(f)

    def _bytes(self, data: bytes) -> bytes:
        a = np.frombuffer(data, np.uint8).copy()
        bad = self.rng.random(a.size) < self.corrupt
        a[bad] ^= self.rng.integers(1, 256, int(bad.sum()), dtype=np.uint8)
        keep = self.rng.random(a.size) >= self.drop
        self.c.corrupted += int(bad.sum())
        self.c.dropped += int((~keep).sum())
        return a[keep].tobytes()


class FaultProxy:
    """Listen on 127.0.0.1:`listen_port` (0: any free port) and forward to `upstream`
    (socket://HOST:PORT). Use as a context manager or call start()/close()."""

    def __init__(self, upstream: str, *, drop: float = 0.0, corrupt: float = 0.0, seed: int = 0,
                 unit: str = "frame", listen_port: int = 0, both_ways: bool = True):
        for name, p in (("drop", drop), ("corrupt", corrupt)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} probability must be in [0, 1], got {p}")
        if unit not in ("frame", "byte"):
            raise ValueError(f"unit must be 'frame' or 'byte', got {unit!r}")
        self.upstream = parse_socket_url(upstream)
        self.drop, self.corrupt, self.unit, self.both_ways = drop, corrupt, unit, both_ways
        self.counters = ProxyCounters()
        rng_dev, rng_host = (np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(2))
        self._rngs = (rng_dev, rng_host)
        self._listen = socket.create_server(("127.0.0.1", listen_port))
        self.port = self._listen.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._cut_after: int | None = None
        self._damage: tuple[_Damage, ...] = ()
        self._closed = False
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> "FaultProxy":
        self._thread = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed = True
        try:
            self._listen.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        except OSError:
            pass
        self._listen.close()
        self.cut(count=False)
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def cut(self, *, count: bool = True) -> None:
        """Close the current connection on both sides (the host sees a lost link)."""
        with self._lock:
            conns, self._conns = self._conns, []
            if count and conns:
                self.counters.cuts += 1
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def set_rates(self, *, drop: float, corrupt: float) -> None:
        """Change the fault probabilities from now on, also on the current connection (a
        link that turns bad, or good again, in the middle of a transfer)."""
        for name, p in (("drop", drop), ("corrupt", corrupt)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} probability must be in [0, 1], got {p}")
        with self._lock:
            self.drop, self.corrupt = drop, corrupt
            for i, d in enumerate(self._damage):
                on = i == 0 or self.both_ways
                d.drop, d.corrupt = (drop, corrupt) if on else (0.0, 0.0)

    def cut_after(self, n_bytes: int) -> None:
        """Cut the link once `n_bytes` more bytes went from the host towards the device."""
        with self._lock:
            self._cut_after = self.counters.to_device.bytes + n_bytes

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listen.accept()
            except OSError:
                return
            try:
                device = socket.create_connection(self.upstream, timeout=5.0)
                device.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, device):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.cut(count=False)  # one connection at a time, as a serial line
            with self._lock:
                self._conns = [client, device]
                self.counters.connections += 1
            c = self.counters
            with self._lock:
                to_dev = _Damage(self._rngs[0], self.drop, self.corrupt, self.unit, c.to_device)
                to_host = _Damage(self._rngs[1], self.drop if self.both_ways else 0.0,
                                  self.corrupt if self.both_ways else 0.0, self.unit, c.to_host)
                self._damage = (to_dev, to_host)
            for src, dst, dmg, watch in ((client, device, to_dev, True), (device, client, to_host, False)):
                threading.Thread(target=self._pump, args=(src, dst, dmg, watch), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, damage: _Damage, watch: bool) -> None:
        try:
            while True:
                data = src.recv(_RECV)
                if not data:
                    break
                with self._lock:
                    out = damage(data)
                    cut = watch and self._cut_after is not None and damage.c.bytes >= self._cut_after
                    if cut:
                        self._cut_after = None
                if out:
                    dst.sendall(out)
                if cut:  # after forwarding: the device gets the request, the host loses the reply
                    self.cut()
                    break
        except OSError:
            pass
        for s in (src, dst):  # the other side sees the link end too
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pysg.device.faultproxy",
                                description="TCP proxy that drops and corrupts bytes between a host and a device")
    p.add_argument("--upstream", required=True, help="the device: socket://HOST:PORT")
    p.add_argument("--listen", type=int, default=0, help="port to listen on (0: any free port)")
    p.add_argument("--drop", type=float, default=0.01, help="probability a frame (or byte) loses a byte")
    p.add_argument("--corrupt", type=float, default=0.01, help="probability a frame (or byte) gets a bad byte")
    p.add_argument("--unit", choices=("frame", "byte"), default="frame")
    p.add_argument("--one-way", action="store_true", help="damage only host -> device")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        proxy = FaultProxy(args.upstream, drop=args.drop, corrupt=args.corrupt, seed=args.seed, unit=args.unit,
                           listen_port=args.listen, both_ways=not args.one_way)
    except (ValueError, OSError) as e:
        print(f"faultproxy: error: {e}", file=sys.stderr)
        return 2
    print(proxy.url, flush=True)
    with proxy:
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    import json

    print(json.dumps(proxy.counters.to_dict()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
