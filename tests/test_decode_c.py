# SPDX-License-Identifier: MIT
"""The C event decoders (runtime_c/src/host/sg_decode.c through pysg._sg_runtime) against the
numpy reference decoders of pysg.io.evt / pysg.io.aedat31: same events, same state
across chunks, same errors (byte offsets included), on random word streams, on files
written by faery and by pysg, and on the real recordings."""
from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest

from pysg.events import EVENT_DTYPE, EventFileError, make_events
from pysg.io import aedat31, evt
from tests.support import dv_files

if evt._lib is None:
    pytest.skip("pysg._sg_runtime with sg_decode.h is not built", allow_module_level=True)


def both(fn, monkeypatch):
    """fn() with the C decoders, then with the numpy ones: (result or error) each."""
    def run():
        try:
            return fn(), None
        except EventFileError as e:
            return None, (type(e), str(e), e.where)
    c = run()
    with monkeypatch.context() as m:
        m.setattr(evt, "_lib", None)
        ref = run()
    return c, ref


def assert_same(fn, monkeypatch):
    (c, ce), (r, re_) = both(fn, monkeypatch)
    assert ce == re_
    if ce is None:
        if isinstance(c, list):
            assert len(c) == len(r)
            for a, b in zip(c, r):
                assert a.dtype == EVENT_DTYPE and b.dtype == EVENT_DTYPE
                np.testing.assert_array_equal(a, b)
        else:
            assert c.dtype == r.dtype == EVENT_DTYPE
            np.testing.assert_array_equal(c, r)
    return c, ce


# --------------------------------------------------------------------------- #
# Random word streams, decoded directly
# --------------------------------------------------------------------------- #
def evt3_words(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mostly meaningful EVT 3.0 words: every kind, vectors, TIME_HIGH going back (wraps)."""
    kinds = rng.choice([0x0, 0x2, 0x3, 0x4, 0x5, 0x6, 0x8, 0x7, 0xA, 0xE, 0xF, 0x1, 0x9],
                       p=[.14, .2, .1, .12, .12, .1, .1, .02, .02, .02, .02, .02, .02], size=n)
    payload = rng.integers(0, 4096, n)
    return ((kinds << 12) | payload).astype("<u2")


def evt2_words(rng: np.random.Generator, n: int) -> np.ndarray:
    kinds = rng.choice([0x0, 0x1, 0x8, 0xA, 0xE, 0xF, 0x5], p=[.3, .3, .2, .05, .05, .05, .05], size=n)
    payload = rng.integers(0, 1 << 28, n)
    # TIME_HIGH: mostly small steps, sometimes backwards (a wrap)
    return ((kinds.astype(np.uint64) << 28) | payload.astype(np.uint64)).astype("<u4")


def decode(words, state, t0, use_c):
    if use_c:
        return evt._decode_c(words, state, t0, words.dtype.itemsize == 2)
    return (evt._decode_evt3 if words.dtype.itemsize == 2 else evt._decode_evt2)(words, state, t0)


def new_state(words):
    return evt._Evt3State() if words.dtype.itemsize == 2 else evt._Evt2State()


@pytest.mark.parametrize("gen", [evt3_words, evt2_words])
@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("t0", [0, 123456789])
def test_random_streams_whole(gen, seed, t0):
    words = gen(np.random.default_rng(seed), 5000)
    sc, sr = new_state(words), new_state(words)
    np.testing.assert_array_equal(decode(words, sc, t0, True), decode(words, sr, t0, False))
    assert dataclasses.asdict(sc) == dataclasses.asdict(sr)


@pytest.mark.parametrize("gen", [evt3_words, evt2_words])
@pytest.mark.parametrize("seed", range(10))
def test_random_streams_every_split(gen, seed):
    words = gen(np.random.default_rng(100 + seed), 40)
    ref_state = new_state(words)
    ref = decode(words, ref_state, 7, False)
    for cut in range(words.size + 1):
        sc = new_state(words)
        got = [decode(words[:cut], sc, 7, True), decode(words[cut:], sc, 7, True)]
        np.testing.assert_array_equal(np.concatenate(got), ref, err_msg=f"split at {cut}")
        assert dataclasses.asdict(sc) == dataclasses.asdict(ref_state), cut
        # mixed: numpy first chunk, C second (the states are interchangeable)
        sm = new_state(words)
        got = [decode(words[:cut], sm, 7, False), decode(words[cut:], sm, 7, True)]
        np.testing.assert_array_equal(np.concatenate(got), ref, err_msg=f"mixed split at {cut}")


def test_vector_heavy_stream_grows_output():
    """12 events per word: more than the first output buffer holds."""
    words = np.array([0x0005, 0x8001, 0x6002, 0x3000 | (1 << 11) | 7] + [0x4FFF] * 3000 + [0x5FFF] * 10
                     + [0x2000 | 5], dtype="<u2")
    sc, sr = evt._Evt3State(), evt._Evt3State()
    got = decode(words, sc, 0, True)
    assert got.size == 3000 * 12 + 80 + 1
    np.testing.assert_array_equal(got, decode(words, sr, 0, False))
    assert dataclasses.asdict(sc) == dataclasses.asdict(sr)


def test_orphans_and_wraps():
    # vectors and events before any state, TIME_HIGH wraps, TIME_HIGH resets TIME_LOW
    words = np.array([0x2001, 0x4FFF, 0x0003, 0x2002, 0x8FFF, 0x2003, 0x6010, 0x2004, 0x4001,
                      0x3805, 0x4003, 0x5081, 0x8000, 0x2005, 0x8FFE, 0x8001, 0x2806], dtype="<u2")
    sc, sr = evt._Evt3State(), evt._Evt3State()
    got = decode(words, sc, 0, True)
    np.testing.assert_array_equal(got, decode(words, sr, 0, False))
    assert got.size > 0 and dataclasses.asdict(sc) == dataclasses.asdict(sr)


# --------------------------------------------------------------------------- #
# Files
# --------------------------------------------------------------------------- #
def random_events(seed, n, t0, span, width=1280, height=720):
    rng = np.random.default_rng(seed)
    return make_events(rng.integers(0, width, n), rng.integers(0, height, n),
                       np.sort(rng.integers(t0, t0 + span, n)), rng.integers(0, 2, n))


@pytest.mark.parametrize("version", ["evt2", "evt3"])
@pytest.mark.parametrize("seed, n, t0, span, zero_t0", [
    (1, 1, 0, 10, False),
    (2, 20000, 0, 10**6, False),
    (3, 20000, 5 * 10**6, 60 * 10**6, False),
    (4, 5000, 2**34 - 10**6, 5 * 10**5, False),
    (5, 3000, 10**7, 10**6, True),
])
def test_faery_written(tmp_path, monkeypatch, version, seed, n, t0, span, zero_t0):
    faery = pytest.importorskip("faery")
    ev = random_events(seed, n, t0, span)
    arr = np.zeros(ev.size, dtype=faery.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"]
    path = tmp_path / f"f.{version}.raw"
    faery.events_stream_from_array(arr, dimensions=(1280, 720)).to_file(str(path), version=version, zero_t0=zero_t0)
    got, _ = assert_same(lambda: evt.read_evt(path), monkeypatch)
    np.testing.assert_array_equal(got, ev)
    for chunk in (1, 7, 4096):
        assert_same(lambda: list(evt.iter_evt(path, chunk_events=chunk)), monkeypatch)


@pytest.mark.parametrize("seed, n, t0, span", [(1, 1, 0, 10), (2, 20000, 0, 10**6), (3, 20000, 0, 10**8)])
def test_our_evt3(tmp_path, monkeypatch, seed, n, t0, span):
    ev = random_events(seed, n, t0, span)
    path = tmp_path / "o.raw"
    evt.write_evt3(path, ev)
    got, _ = assert_same(lambda: evt.read_evt(path), monkeypatch)
    np.testing.assert_array_equal(got, ev)
    assert_same(lambda: list(evt.iter_evt(path, chunk_events=100)), monkeypatch)


def test_evt_errors(tmp_path, monkeypatch):
    ev = random_events(9, 200, 0, 10**6, 1280, 720)
    path = tmp_path / "e.raw"
    evt.write_evt3(path, ev)
    raw = path.read_bytes()
    path.write_bytes(raw + b"\x01")  # odd trailing byte
    _, err = assert_same(lambda: evt.read_evt(path), monkeypatch)
    assert err is not None
    evt.write_evt3(path, ev, width=1280, height=720)
    head = raw.replace(b"height=720", b"height=100").replace(b"1280x720", b"1280x100")
    path.write_bytes(head)  # events outside the geometry
    for fn in (lambda: evt.read_evt(path), lambda: list(evt.iter_evt(path, chunk_events=40))):
        _, err = assert_same(fn, monkeypatch)
        assert err is not None and "geometry" in err[1]


@pytest.mark.parametrize("seed", range(30))
def test_random_evt_files(tmp_path, monkeypatch, seed):
    rng = np.random.default_rng(seed)
    fmt = "evt3" if seed % 2 else "evt2"
    words = evt3_words(rng, 3000) if fmt == "evt3" else evt2_words(rng, 1500)
    body = words.tobytes() + (b"\x00" if seed % 5 == 0 else b"")
    geom = "% geometry 2048x2048\n" if seed % 3 else "% geometry 1000x1000\n"
    path = tmp_path / "r.raw"
    path.write_bytes(f"% evt {'3.0' if fmt == 'evt3' else '2.0'}\n{geom}% t0 17\n% end\n".encode() + body)
    assert_same(lambda: evt.read_evt(path), monkeypatch)
    chunk = int(rng.integers(1, 2000))
    assert_same(lambda: list(evt.iter_evt(path, chunk_events=chunk)), monkeypatch)


def test_real_recordings(monkeypatch, real_data):
    for name in ("evt2.raw", "evt3.raw"):
        ev, _ = assert_same(lambda: evt.read_evt(real_data / name), monkeypatch)
        assert ev.size > 500_000
        assert_same(lambda: list(evt.iter_evt(real_data / name, chunk_events=100_000)), monkeypatch)


# --------------------------------------------------------------------------- #
# AEDAT 3.1
# --------------------------------------------------------------------------- #
HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"
PKT = struct.Struct("<hhiiiiii")


def aedat_file(rng: np.random.Generator, n_packets: int, negative: bool) -> bytes:
    out = [HEADER]
    for _ in range(n_packets):
        kind = int(rng.choice([1, 1, 1, 0, 2]))
        number = int(rng.integers(0, 60))
        capacity = number + int(rng.integers(0, 3))
        overflow = int(rng.integers(0, 5))
        d = rng.integers(0, 1 << 32, capacity, dtype=np.uint64).astype("<u4")
        ts = rng.integers(0, 1 << 31, capacity).astype("<i4")
        if negative and rng.random() < 0.2 and number:
            ts[int(rng.integers(0, number))] = -int(rng.integers(1, 1000))
        rec = np.empty(capacity, dtype=[("d", "<u4"), ("ts", "<i4")])
        rec["d"], rec["ts"] = d, ts
        out.append(PKT.pack(kind, 1, 8, 4, overflow, capacity, number, number) + rec.tobytes())
    return b"".join(out)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("include_invalid", [False, True])
def test_aedat31_random(tmp_path, monkeypatch, seed, include_invalid):
    rng = np.random.default_rng(seed)
    path = tmp_path / "r.aedat"
    path.write_bytes(aedat_file(rng, int(rng.integers(0, 20)), negative=seed % 2 == 1))
    assert_same(lambda: aedat31.read_aedat31(path, include_invalid=include_invalid), monkeypatch)
    assert_same(lambda: list(aedat31.iter_aedat31(path, chunk_events=50, include_invalid=include_invalid)),
                monkeypatch)


def test_aedat31_written(tmp_path, monkeypatch):
    import datetime as dt
    rng = np.random.default_rng(0)
    ev = make_events(rng.integers(0, 128, 50000), rng.integers(0, 128, 50000),
                     np.sort(rng.integers(0, 3 * 2**31, 50000)), rng.integers(0, 2, 50000))
    path = tmp_path / "w.aedat"
    aedat31.write_aedat31(path, ev, packet_events=1000, start_time=dt.datetime(2020, 1, 1))
    got, _ = assert_same(lambda: aedat31.read_aedat31(path), monkeypatch)
    np.testing.assert_array_equal(got, ev)
    assert_same(lambda: list(aedat31.iter_aedat31(path, chunk_events=3000)), monkeypatch)


def test_aedat31_negative_timestamp_offsets(tmp_path, monkeypatch):
    pol = struct.pack("<Ii", (1 << 17) | 1, 5) + struct.pack("<II", (2 << 17) | 1, 0x80000000)
    path = tmp_path / "neg.aedat"
    path.write_bytes(HEADER + PKT.pack(1, 1, 8, 4, 0, 2, 2, 2) + pol)
    for fn in (lambda: aedat31.read_aedat31(path), lambda: list(aedat31.iter_aedat31(path))):
        _, err = assert_same(fn, monkeypatch)
        assert err is not None and err[2] == f"byte offset {len(HEADER) + PKT.size + 8}"


@pytest.mark.parametrize("t0", [evt.T0_MAX, evt.T0_MAX + 1, 2**63 - 1, 2**63, 2**70])
def test_huge_t0_same_as_numpy(tmp_path, monkeypatch, t0):
    """A '% t0' the decoders can add without leaving int64 is used by both paths alike;
    a larger one is refused at its header line by both (it used to overflow or turn every
    timestamp negative)."""
    body = np.array([0x0001, 0x8001, 0x6002, 0x2003], dtype="<u2").tobytes()
    path = tmp_path / "t0.raw"
    path.write_bytes(f"% evt 3.0\n% t0 {t0}\n% end\n".encode() + body)
    outcomes = []
    for use_c in (True, False):
        with monkeypatch.context() as m:
            if not use_c:
                m.setattr(evt, "_lib", None)
            try:
                outcomes.append(("ok", evt.read_evt(path).tolist(), [c.tolist() for c in evt.iter_evt(path)]))
            except EventFileError as e:
                outcomes.append(("refused", e.where, e.what))
    assert outcomes[0] == outcomes[1]
    if t0 <= evt.T0_MAX:
        assert outcomes[0][0] == "ok" and all(e[2] >= t0 for e in outcomes[0][1])
    else:
        assert outcomes[0][:2] == ("refused", "byte offset 10") and "t0" in outcomes[0][2]


# --------------------------------------------------------------------------- #
# AEDAT 4 event packets (decompressed by python-lz4 / zstandard, decoded in C)
# --------------------------------------------------------------------------- #
import lz4.frame as lz4_frame  # noqa: E402  (a pysg dependency: compresses test packets)

from pysg.io import aedat4  # noqa: E402


def c_packet(data: bytes) -> tuple[int, np.ndarray, int]:
    """(status, events, err_at) of sg_aedat4_decode_events on an uncompressed packet."""
    ffi, lib = aedat4._ffi, aedat4._lib
    n, err = ffi.new("size_t *"), ffi.new("uint64_t *")
    src = ffi.from_buffer(data)
    status = lib.sg_aedat4_decode_events(src, len(data), ffi.NULL, 0, n, err)
    out = np.empty(n[0] if status == -11 else 0, dtype=EVENT_DTYPE)
    if status == -11:
        status = lib.sg_aedat4_decode_events(src, len(data), ffi.from_buffer(out, require_writable=True),
                                             out.size, n, err)
    return status, out[:n[0]], int(err[0])


def packet_bytes(rng: np.random.Generator, n: int) -> bytes:
    ev = random_events(int(rng.integers(1 << 30)), n, 0, 10**9, 346, 260)
    rec = np.zeros(ev.size, dtype=aedat4._EVENT)
    rec["t"], rec["x"], rec["y"], rec["p"] = ev["t"], ev["x"], ev["y"], ev["p"]
    return aedat4._flatbuffer(b"EVTS", [("vec", rec.tobytes(), rec.size)], size_prefix=True)


@pytest.mark.parametrize("seed", range(4))
def test_aedat4_packets_fuzzed_same_errors_and_offsets(seed):
    """Mutated event packets: C and the reference agree on success, events, and on the
    error's kind and place (flatbuffer offset, or index of the invalid event)."""
    rng = np.random.default_rng(1000 + seed)
    kinds = {"ok": 0, "flatbuffer": 0, "event": 0}
    for trial in range(600):
        data = bytearray(packet_bytes(rng, int(rng.integers(0, 40))))
        for _ in range(int(rng.integers(0, 3))):
            at = int(rng.integers(0, len(data)))
            if rng.random() < 0.15:
                del data[at:]
            elif at < 40 and rng.random() < 0.5:  # headers: plausible small offsets/counts
                struct.pack_into("<I", data, min(at, len(data) - 4) if len(data) >= 4 else 0,
                                 int(rng.integers(0, 64))) if len(data) >= 4 else None
            else:
                data[at] = int(rng.integers(256))
        data = bytes(data)
        status, got, err_at = c_packet(data)
        try:
            ref = aedat4._decode_packet("<ref>", data, 0)
        except EventFileError as e:
            msg = str(e)
            if "is invalid" in msg:
                kinds["event"] += 1
                assert status == -10 and err_at == int(msg.split("event ")[1].split(" ")[0]), (trial, msg)
            else:
                kinds["flatbuffer"] += 1
                assert status == -9 and err_at == int(msg.split("uncompressed offset ")[1].split(")")[0]), \
                    (trial, msg, status, err_at)
            continue
        kinds["ok"] += 1
        assert status == 0, (trial, status)
        np.testing.assert_array_equal(got, ref)
    assert min(kinds.values()) > 20, kinds


def count_fallbacks(monkeypatch) -> list[int]:
    """Counts the packets the C path hands back to the reference decoder."""
    calls = [0]
    real = aedat4._decode_packet

    def counting(*a):
        calls[0] += 1
        return real(*a)
    monkeypatch.setattr(aedat4, "_decode_packet", counting)
    return calls


def assert_aedat4_same(path, monkeypatch, stream=None):
    """read_aedat4 / iter_aedat4 in C (no packet left to the reference) == reference."""
    with monkeypatch.context() as m:
        fallbacks = count_fallbacks(m)
        got = aedat4.read_aedat4(path, stream=stream)
        chunks = list(aedat4.iter_aedat4(path, stream=stream))
        assert fallbacks[0] == 0
    with monkeypatch.context() as m:
        m.setattr(aedat4, "_lib", None)
        ref = aedat4.read_aedat4(path, stream=stream)
        ref_chunks = list(aedat4.iter_aedat4(path, stream=stream))
    assert got.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(got, ref)
    assert len(chunks) == len(ref_chunks)
    for a, b in zip(chunks, ref_chunks):
        np.testing.assert_array_equal(a, b)
    return got


@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
@pytest.mark.parametrize("n, packet_events", [(0, 10), (1, 10), (25_000, 4096), (30_000, 70_000)])
def test_aedat4_pysg_written(tmp_path, monkeypatch, compression, n, packet_events):
    ev = random_events(3, n, 10**6, 10**7, 346, 260)
    path = tmp_path / "w.aedat4"
    aedat4.write_aedat4(path, ev, compression=compression, packet_events=packet_events)
    np.testing.assert_array_equal(assert_aedat4_same(path, monkeypatch), ev)


@pytest.mark.parametrize("compression", ["LZ4", "LZ4_HIGH", "ZSTD", "NONE"])
def test_aedat4_dv_processing_written(tmp_path, monkeypatch, compression):
    ev = dv_files.random_events(4, 12_000, 640, 480)
    path = tmp_path / "dv.aedat4"
    dv_files.dv_write(path, ev, compression)
    np.testing.assert_array_equal(assert_aedat4_same(path, monkeypatch), ev)


def test_aedat4_real_recording(monkeypatch, real_data):
    assert assert_aedat4_same(real_data / "davis346.aedat4", monkeypatch).size > 50_000


@pytest.mark.parametrize("seed", range(40))
def test_aedat4_corrupted_files_same_errors(tmp_path, monkeypatch, seed):
    """Whole files with flipped bytes (LZ4 or uncompressed): the C reader raises exactly
    the reference's error (message and offset), or returns exactly its events."""
    rng = np.random.default_rng(seed)
    path = tmp_path / "c.aedat4"
    aedat4.write_aedat4(path, random_events(seed, 500, 10**6, 10**6, 346, 260),
                        compression="lz4" if seed % 2 else "none", packet_events=100)
    raw = bytearray(path.read_bytes())
    start = len(raw) - 5 * 120 if seed % 2 == 0 else len(raw) // 2
    for _ in range(1 + seed % 3):
        raw[int(rng.integers(start, len(raw)))] = int(rng.integers(256))
    path.write_bytes(bytes(raw))
    for fn in (lambda: aedat4.read_aedat4(path), lambda: list(aedat4.iter_aedat4(path))):
        outcomes = []
        for lib in (aedat4._lib, None):
            with monkeypatch.context() as m:
                m.setattr(aedat4, "_lib", lib)
                try:
                    r = fn()
                    outcomes.append(("ok", np.concatenate(r) if isinstance(r, list) and r else r))
                except EventFileError as e:
                    outcomes.append(("error", (str(e), e.where)))
        assert outcomes[0][0] == outcomes[1][0]
        if outcomes[0][0] == "ok":
            np.testing.assert_array_equal(outcomes[0][1], outcomes[1][1])
        else:
            assert outcomes[0][1] == outcomes[1][1]


def test_decode_event_packet_c_and_reference(monkeypatch):
    rng = np.random.default_rng(5)
    data = packet_bytes(rng, 300)
    for compression, payload in (("none", data), ("lz4", lz4_frame.compress(data))):
        got = aedat4.decode_event_packet(payload, compression, offset=99)
        with monkeypatch.context() as m:
            m.setattr(aedat4, "_lib", None)
            np.testing.assert_array_equal(got, aedat4.decode_event_packet(payload, compression, offset=99))
        assert got.size == 300


def test_aedat4_output_grows_past_the_first_guess(tmp_path, monkeypatch):
    """Highly compressible events (LZ4 ratio > 4): read_aedat4's first output array (one
    event per 4 file bytes) is too small and grows in place; same events as the reference."""
    n = 200_000
    ev = make_events(np.zeros(n, np.int64), np.zeros(n, np.int64), np.arange(n) // 64, np.zeros(n, np.int64))
    path = tmp_path / "z.aedat4"
    aedat4.write_aedat4(path, ev, compression="lz4", packet_events=5000)
    assert path.stat().st_size // 4 < n  # the guess is short
    np.testing.assert_array_equal(assert_aedat4_same(path, monkeypatch), ev)
