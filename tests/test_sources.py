# SPDX-License-Identifier: MIT
"""Event sources: file replay (batching, pacing with a fake clock), DV's TCP
stream from a 127.0.0.1 server thread (pysg's AEDAT 4.0 writer; dv-processing's
NetworkWriter in a subprocess as independent truth), malformed streams, the
camera error path, open_source, and BoundedSource back-pressure."""
from __future__ import annotations

import socket
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc

import numpy as np
import pytest

from pysg.events import EVENT_DTYPE, EventFileError, make_events
from pysg.io import read_events
from pysg.io.aedat4 import MAGIC, write_aedat4
from pysg.io.aedat31 import write_aedat31
from pysg.io.evt import write_evt3
from pysg.io.sources import (
    BoundedSource,
    CameraSource,
    EventSource,
    FileSource,
    SourceUnavailableError,
    TcpSource,
    open_source,
)
from tests.support.event_server import Server, stream_bytes

T0 = 1_600_000_000_000_000


def random_events(seed: int, n: int, width: int = 128, height: int = 128, span: int = 200_000,
                  t0: int = T0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(rng.integers(0, width, n), rng.integers(0, height, n),
                       np.sort(rng.integers(t0, t0 + span, n)), rng.integers(0, 2, n))


def reference_batches(ev: np.ndarray, batch_us: int) -> list[np.ndarray]:
    """Independent batching of a sorted stream: group by (t - t0) // batch_us."""
    if not ev.size:
        return []
    k = [(int(t) - int(ev["t"][0])) // batch_us for t in ev["t"]]
    out, start = [], 0
    for i in range(1, len(k) + 1):
        if i == len(k) or k[i] != k[start]:
            out.append(ev[start:i])
            start = i
    return out


# --------------------------------------------------------------------------- #
# FileSource
# --------------------------------------------------------------------------- #
def write(fmt: str, path, ev: np.ndarray) -> None:
    {"aedat4": lambda: write_aedat4(path, ev, width=128, height=128, packet_events=777),
     "aedat31": lambda: write_aedat31(path, ev, width=128, height=128),
     "evt3": lambda: write_evt3(path, ev, width=128, height=128),
     "npy": lambda: np.save(path, ev)}[fmt]()


@pytest.mark.parametrize("fmt", ["aedat4", "aedat31", "evt3", "npy"])
def test_file_source_batches_match_reference(tmp_path, fmt):
    ev = random_events(1, 5000, t0=0 if fmt == "evt3" else T0)
    path = tmp_path / f"rec.{fmt}"
    write(fmt, path, ev)
    truth = read_events(path).events
    with FileSource(path, speed=None, batch_us=3000, chunk_events=611) as src:
        got = list(src)
        if fmt != "npy":
            assert (src.width, src.height) == (128, 128)
    want = reference_batches(truth, 3000)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == EVENT_DTYPE
        np.testing.assert_array_equal(g, w)


def test_file_source_skips_empty_windows_and_keeps_unsorted_events_in_batch(tmp_path):
    ev = make_events([1, 2, 3, 4, 5], [0, 0, 0, 0, 0], [100, 1500, 1200, 5100, 5200], [1, 0, 1, 0, 1])
    path = tmp_path / "e.npy"
    np.save(path, ev)
    got = list(FileSource(path, speed=None, batch_us=1000))
    # windows: 0 | 1 (1500), 1200 goes back to window 1 -> stays | 5 (5100, 5200)
    assert [list(b["x"]) for b in got] == [[1], [2, 3], [4, 5]]


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def test_file_source_pacing_with_injected_clock(tmp_path):
    ev = make_events([0] * 4, [0] * 4, [T0, T0 + 2500, T0 + 10_000, T0 + 35_000], [0] * 4)
    path = tmp_path / "e.npy"
    np.save(path, ev)
    fc = FakeClock()
    released = []
    for batch in FileSource(path, speed=2.0, batch_us=10_000, clock=fc.clock, sleep=fc.sleep):
        released.append((round(fc.now - 100.0, 9), batch.size))
    # window k released at (k + 1) * 10 ms / 2: windows 0, 1, 3
    assert released == [(0.005, 2), (0.010, 1), (0.020, 1)]
    # a slow consumer: no sleep when already late
    fc = FakeClock()
    src = FileSource(path, speed=1.0, batch_us=10_000, clock=fc.clock, sleep=fc.sleep)
    next(src)
    fc.now += 1.0
    next(src)
    assert fc.sleeps == [pytest.approx(0.01)]


@pytest.mark.parametrize("kw", [{"speed": 0}, {"speed": -1.0}, {"speed": float("inf")}, {"batch_us": 0},
                                {"batch_us": 1.5}])
def test_file_source_bad_arguments(tmp_path, kw):
    path = tmp_path / "e.npy"
    np.save(path, random_events(0, 10))
    with pytest.raises(ValueError):
        FileSource(path, **kw)


# --------------------------------------------------------------------------- #
# TcpSource against a 127.0.0.1 server thread
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
def test_tcp_source_reads_pysg_written_stream(tmp_path, compression):
    ev = random_events(2, 3000, width=346, height=260)
    with Server(stream_bytes(tmp_path, ev, compression, 346, 260), piece=333) as srv, \
            TcpSource("127.0.0.1", srv.port, timeout=5) as src:
        assert (src.width, src.height, src.compression) == (346, 260, compression)
        got = np.concatenate(list(src))
    np.testing.assert_array_equal(got, ev)


def test_tcp_source_accepts_version_line_and_skips_other_streams(tmp_path):
    ev = random_events(3, 1200)
    data = stream_bytes(tmp_path, ev, "none", magic=True)
    head_end = len(MAGIC) + 4 + struct.unpack_from("<i", data, len(MAGIC))[0]
    junk = struct.pack("<ii", 7, 5) + b"\xff" * 5       # stream 7: not decoded
    data = data[:head_end] + junk + data[head_end:] + junk
    with Server(data) as srv, TcpSource("127.0.0.1", srv.port) as src:
        got = np.concatenate(list(src))
    np.testing.assert_array_equal(got, ev)


def _expect_error(data: bytes, match: str, exc=EventFileError, hold=False, **kw):
    with Server(data, hold=hold) as srv, pytest.raises(exc, match=match), \
            TcpSource("127.0.0.1", srv.port, **kw) as src:
        for _ in src:
            pass


def test_tcp_source_garbage_names_byte_offsets(tmp_path):
    good = stream_bytes(tmp_path, random_events(4, 1000), "lz4")
    head = 4 + struct.unpack_from("<i", good, 0)[0]
    first_size = struct.unpack_from("<i", good, head + 4)[0]
    # not a DV stream at all
    _expect_error(b"GET / HTTP/1.1\r\n\r\n", r"tcp://127\.0\.0\.1:\d+: byte offset 0: IOHeader size")
    # broken IOHeader flatbuffer
    _expect_error(struct.pack("<i", 8) + b"\x40\x00\x00\x00IOHE", r"byte offset \d+: IOHeader flatbuffer")
    # packet size field garbage
    bad = good[:head] + struct.pack("<ii", 0, -5)
    _expect_error(bad, rf"byte offset {head + 4}: packet size -5")
    # corrupted LZ4 payload of the first packet
    bad = bytearray(good)
    bad[head + 8: head + 8 + first_size] = b"\x00" * first_size
    _expect_error(bytes(bad), rf"byte offset {head + 8}: lz4")
    # connection closed inside a packet
    _expect_error(good[:head + 8 + first_size // 2], rf"byte offset {head + 8 + first_size // 2}: "
                                                     r"connection closed inside packet")


@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_tcp_source_fuzz_only_event_file_errors(tmp_path, compression):
    """Random byte flips and truncations: events or EventFileError, never another
    exception or a hang."""
    good = stream_bytes(tmp_path, random_events(9, 600), compression)
    rng = np.random.default_rng(42)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(40):
        data = bytearray(good)
        for at in rng.integers(0, len(data), rng.integers(1, 6)):
            data[at] = int(rng.integers(0, 256))
        if rng.random() < 0.3:
            data = data[:int(rng.integers(0, len(data)))]
        with Server(bytes(data), piece=4096) as srv:
            try:
                with TcpSource("127.0.0.1", srv.port, timeout=5) as src:
                    for batch in src:
                        assert batch.dtype == EVENT_DTYPE
                outcomes["ok"] += 1
            except EventFileError as e:
                assert "tcp://127.0.0.1" in str(e) and "byte offset" in str(e)
                outcomes["error"] += 1
    assert outcomes["error"] > 0

def test_tcp_source_timeout_and_refused(tmp_path):
    good = stream_bytes(tmp_path, random_events(5, 100), "none")
    head = 4 + struct.unpack_from("<i", good, 0)[0]
    t = time.monotonic()
    _expect_error(good[:head], rf"no data for 0.3 s at byte offset {head}", exc=TimeoutError, hold=True, timeout=0.3)
    assert time.monotonic() - t < 5
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                  # nobody listens there now
    with pytest.raises(SourceUnavailableError, match="cannot connect"):
        TcpSource("127.0.0.1", port, timeout=2)
    with pytest.raises(ValueError):
        TcpSource("127.0.0.1", 0)


DV_SERVER = textwrap.dedent("""
    import os, socket, sys, time
    import numpy as np
    import dv_processing as dv
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    ev = np.load(sys.argv[1])
    writer = dv.io.NetworkWriter("127.0.0.1", port, dv.io.Stream.EventStream(0, "events", "DVXplorer_test", (346, 260)))
    print("PORT", port, flush=True)
    deadline = time.monotonic() + 10
    while writer.getClientCount() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    for a in range(0, ev.size, 700):
        store = dv.EventStore()
        for e in ev[a:a + 700]:
            store.push_back(int(e["t"]), int(e["x"]), int(e["y"]), bool(e["p"]))
        writer.writeEvents(store)
    deadline = time.monotonic() + 10
    while writer.getQueuedPacketCount() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    # dv-processing 2.0.4: destroying a NetworkWriter blocks forever, so leave without it
    os._exit(0)
""")


def test_tcp_source_reads_dv_processing_network_writer(tmp_path):
    pytest.importorskip("dv_processing", reason="dv-processing's NetworkWriter is the independent TCP writer")
    ev = random_events(6, 2500, width=346, height=260)
    np.save(tmp_path / "ev.npy", ev)
    script = tmp_path / "dv_server.py"
    script.write_text(DV_SERVER)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "ev.npy")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()           # bounded: the script prints first or dies
        if not line.startswith("PORT"):
            pytest.skip(f"dv.io.NetworkWriter did not start headless: {line!r} {proc.stderr.read()[-500:]!r}")
        port = int(line.split()[1])
        src = None
        deadline = time.monotonic() + 10
        while src is None:
            try:
                src = TcpSource("127.0.0.1", port, timeout=10)
            except SourceUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with src:
            assert (src.width, src.height) == (346, 260)
            got = np.concatenate(list(src))
        np.testing.assert_array_equal(got, ev)
    finally:
        proc.kill()
        proc.wait(10)


# --------------------------------------------------------------------------- #
# CameraSource (error path only) and open_source
# --------------------------------------------------------------------------- #
def test_camera_source_without_dv_processing(monkeypatch):
    monkeypatch.setitem(sys.modules, "dv_processing", None)   # import now raises ImportError
    with pytest.raises(SourceUnavailableError, match="install dv-processing"):
        CameraSource()
    with pytest.raises(SourceUnavailableError, match="install dv-processing"):
        open_source("camera:DVX123")


def test_camera_source_without_camera():
    dv = pytest.importorskip("dv_processing")
    if list(dv.io.camera.discover()):
        pytest.skip("a camera is connected")
    with pytest.raises(SourceUnavailableError, match="no camera found"):
        open_source("camera")


def test_open_source_specs(tmp_path):
    ev = random_events(7, 300)
    path = tmp_path / "rec.aedat4"
    write_aedat4(path, ev, width=128, height=128)
    for spec in (f"file:{path}", str(path), path):
        with open_source(spec, speed=None) as src:
            assert isinstance(src, FileSource)
            np.testing.assert_array_equal(np.concatenate(list(src)), ev)
    with Server(stream_bytes(tmp_path, ev)) as srv, open_source(f"tcp://127.0.0.1:{srv.port}", timeout=5) as src:
        assert isinstance(src, TcpSource)
        np.testing.assert_array_equal(np.concatenate(list(src)), ev)
    for bad in ("tcp://nohost", "tcp://:80", "file:", ""):
        with pytest.raises(ValueError):
            open_source(bad)


# --------------------------------------------------------------------------- #
# BoundedSource
# --------------------------------------------------------------------------- #
class ListSource(EventSource):
    def __init__(self, batches, fail_at=None):
        super().__init__()
        self.batches, self.fail_at = batches, fail_at

    def _batches(self):
        for i, b in enumerate(self.batches):
            if i == self.fail_at:
                raise EventFileError("list", f"batch {i}", "boom")
            yield b


class EndlessSource(EventSource):
    """A fast producer: batches of ``size`` events with increasing t."""

    def __init__(self, size, total_batches):
        super().__init__()
        self.size, self.total = size, total_batches

    def _batches(self):
        for k in range(self.total):
            ev = np.zeros(self.size, dtype=EVENT_DTYPE)
            ev["t"] = np.arange(k * self.size, (k + 1) * self.size)
            yield ev


def seq(n0, n):
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["t"] = np.arange(n0, n0 + n)
    return ev


def drain_after_producer(bs: BoundedSource):
    bs._thread.join(10)
    assert not bs._thread.is_alive()
    return list(bs)


def test_bounded_drop_policy_exact():
    batches = [seq(0, 3), seq(3, 4), seq(7, 5), seq(12, 2), seq(14, 20)]
    bs = BoundedSource(ListSource(batches[:4]), max_events=8, policy="drop")
    out = drain_after_producer(bs)
    # 3 | 3+4 | +5 > 8: drop the 3, then the 4 -> 5 | +2 -> 7
    assert [list(b["t"]) for b in out] == [list(range(7, 12)), [12, 13]]
    assert (bs.events_in, bs.events_out, bs.dropped, bs.high_water) == (14, 7, 7, 7)
    bs = BoundedSource(ListSource(batches), max_events=8, policy="drop")
    out = drain_after_producer(bs)
    assert [list(b["t"]) for b in out] == [list(range(26, 34))]   # a 20-event batch keeps its last 8
    assert bs.dropped == 34 - 8


def test_bounded_decimate_policy_exact():
    bs = BoundedSource(ListSource([seq(0, 3), seq(3, 4), seq(7, 5), seq(12, 2)]), max_events=8,
                       policy="decimate")
    out = drain_after_producer(bs)
    # 3+4+5 = 12 > 8: halve all -> [0,2] [3,5] [7,9,11] (7); +2 = 9 > 8: halve all again
    assert [list(b["t"]) for b in out] == [[0], [3], [7, 11], [12]]
    assert (bs.events_in, bs.events_out, bs.dropped) == (14, 5, 9)
    # batches of one event cannot be halved: the oldest are discarded
    bs = BoundedSource(ListSource([seq(i, 1) for i in range(5)]), max_events=2, policy="decimate")
    assert [int(b["t"][0]) for b in drain_after_producer(bs)] == [3, 4]
    assert bs.dropped == 3


@pytest.mark.parametrize("policy", ["drop", "decimate"])
def test_bounded_slow_consumer_memory_and_counters(policy):
    size, total, cap = 10_000, 300, 20_000          # 48 MB produced in all
    tracemalloc.start()
    try:
        bs = BoundedSource(EndlessSource(size, total), max_events=cap, policy=policy)
        received, last_t = 0, -1
        deadline = time.monotonic() + 60
        for batch in bs:
            assert batch["t"][0] > last_t           # order kept, nothing duplicated
            last_t = int(batch["t"][-1])
            received += batch.size
            time.sleep(0.002)                       # slow consumer
            assert time.monotonic() < deadline
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert bs.events_in == size * total
    assert bs.events_in == bs.events_out + bs.dropped and bs.buffered == 0
    assert received == bs.events_out
    assert bs.dropped > 0
    assert bs.high_water <= cap
    assert peak < 40 * cap * EVENT_DTYPE.itemsize   # ~13 MB bound, vs 48 MB if everything were queued


def test_bounded_propagates_errors_and_closes_promptly():
    bs = BoundedSource(ListSource([seq(0, 3), seq(3, 3), seq(6, 3)], fail_at=2), max_events=100)
    bs._thread.join(10)
    with pytest.raises(EventFileError, match="boom"):
        list(bs)
    bs = BoundedSource(EndlessSource(100, 10**9), max_events=1000)
    next(bs)
    t = time.monotonic()
    bs.close()
    assert time.monotonic() - t < 5 and not bs._thread.is_alive()
    assert list(bs) == []
    with pytest.raises(ValueError):
        BoundedSource(ListSource([]), max_events=0)
    with pytest.raises(ValueError):
        BoundedSource(ListSource([]), max_events=10, policy="lifo")


def test_bounded_over_tcp(tmp_path):
    ev = random_events(8, 4000)
    with Server(stream_bytes(tmp_path, ev)) as srv, \
            BoundedSource(TcpSource("127.0.0.1", srv.port), max_events=10_000) as bs:
        got = np.concatenate(list(bs))
    np.testing.assert_array_equal(got, ev)
    assert bs.dropped == 0 and bs.width == 128
