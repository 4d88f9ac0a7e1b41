# SPDX-License-Identifier: MIT
"""pysg.device.protocol / link / faultproxy against independent truth: zlib.crc32, the
`cobs` package and a reference COBS written here, hand-computed LEB128 and step-block
vectors, pysg.datasets.binning.bin_events counts of a real recording, and a scripted
device on a TCP socket for the request/reply rules."""
from __future__ import annotations

import socket
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from cobs import cobs
from hypothesis import given, settings
from hypothesis import strategies as st

from pysg.device import protocol as P
from pysg.device.faultproxy import FaultProxy, parse_socket_url
from pysg.device.link import Link, LinkError
from pysg.device.ops import REPLY_BIT, Op, Status

SAMPLE = Path(__file__).resolve().parent.parent / "pysg" / "data" / "samples" / "user01_fluorescent.aedat"


def ref_cobs_encode(data: bytes) -> bytes:
    """COBS as in Cheshire & Baker (1999), written out plainly (no zero in the output)."""
    out = bytearray([0])
    code_at, code = 0, 1
    for b in data:
        if b == 0:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
        else:
            out.append(b)
            code += 1
            if code == 0xFF:
                out[code_at] = code
                code_at, code = len(out), 1
                out.append(0)
    out[code_at] = code
    return bytes(out)


# ------------------------------------------------------------------ COBS and packets


@pytest.mark.parametrize("raw,enc", [
    (b"\x00", b"\x01\x01"), (b"\x00\x00", b"\x01\x01\x01"), (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"), (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
])
def test_cobs_vectors_from_the_paper(raw, enc):
    assert ref_cobs_encode(raw) == enc
    assert cobs.encode(raw) == enc


def test_packet_layout_by_hand():
    pkt = P.encode_packet(0x11, 7, b"\x00\x01\x02")
    body = bytes([0x11, 7, 3, 0, 0, 1, 2])
    assert pkt == body + struct.pack("<I", zlib.crc32(body))
    frame = P.encode_frame(0x11, 7, b"\x00\x01\x02")
    assert frame == ref_cobs_encode(pkt) + b"\x00"
    assert b"\x00" not in frame[:-1]
    assert P.decode_frame(frame) == P.Packet(0x11, 7, b"\x00\x01\x02")


@given(op=st.integers(0, 255), seq=st.integers(0, 255), payload=st.binary(max_size=1200))
@settings(max_examples=200, deadline=None)
def test_frame_round_trip_against_reference_cobs(op, seq, payload):
    frame = P.encode_frame(op, seq, payload)
    body = struct.pack("<BBH", op, seq, len(payload)) + payload
    assert frame == ref_cobs_encode(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"
    assert P.decode_frame(frame) == P.Packet(op, seq, payload)


def test_bad_frames_raise_frame_error():
    good = P.encode_packet(0x02, 1, b"abc")
    bad_crc = good[:-1] + bytes([good[-1] ^ 1])
    with pytest.raises(P.FrameError, match="CRC"):
        P.decode_frame(cobs.encode(bad_crc))
    with pytest.raises(P.FrameError, match="len field"):
        P.decode_frame(cobs.encode(good + b"x"))
    with pytest.raises(P.FrameError, match="shorter"):
        P.decode_frame(cobs.encode(good[:5]))
    with pytest.raises(P.FrameError, match="COBS"):
        P.decode_frame(b"\x05\x01")  # code says 4 more bytes, only 1 follows


# ------------------------------------------------------------------ frame splitter


@given(payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=8), garbage=st.binary(max_size=200),
       cuts=st.lists(st.integers(0, 4000), max_size=12))
@settings(max_examples=150, deadline=None)
def test_splitter_recovers_frames_after_garbage_and_split_reads(payloads, garbage, cuts):
    stream = garbage + b"\x00" + b"".join(P.encode_frame(0x31, i, p) for i, p in enumerate(payloads))
    sp = P.FrameSplitter(P.max_frame_size(1024))
    got = []
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    for a, b in zip(bounds, bounds[1:]):
        for f in sp.feed(stream[a:b]):
            try:
                got.append(P.decode_frame(f))
            except P.FrameError:
                pass
    assert got[-len(payloads):] == [P.Packet(0x31, i, p) for i, p in enumerate(payloads)]
    assert sp.pending == 0


def test_splitter_drops_oversized_runs_and_resyncs():
    sp = P.FrameSplitter(max_frame=20)
    good = P.encode_frame(0x01, 1, b"hi")
    out = sp.feed(b"\x07" * 50 + b"\x00" + b"\x00\x00" + good)
    assert sp.oversized == 1
    assert [P.decode_frame(f) for f in out] == [P.Packet(0x01, 1, b"hi")]


# ------------------------------------------------------------------ varints


@pytest.mark.parametrize("value,enc", [
    (0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (16383, "ff7f"), (16384, "808001"),
    (624485, "e58e26"), (2**32 - 1, "ffffffff0f"),
])
def test_leb128_hand_vectors(value, enc):
    assert P.encode_varint(value).hex() == enc
    assert P.decode_varint(bytes.fromhex(enc)) == (value, len(enc) // 2)
    assert P.encode_varints(np.array([value])).hex() == enc


@given(st.lists(st.integers(0, 2**40), max_size=50))
def test_vectorised_varints_equal_one_by_one(values):
    assert P.encode_varints(np.array(values, np.int64)) == b"".join(P.encode_varint(v) for v in values)


def test_varint_cut_short_and_negative():
    with pytest.raises(P.StepBlockError, match="cut short"):
        P.decode_varint(b"\x80\x80")
    with pytest.raises(ValueError):
        P.encode_varint(-1)


# ------------------------------------------------------------------ step blocks


def test_step_block_by_hand():
    # input 1 twice, input 3 once: 2 pairs, (delta 1, count 2), (delta 2, count 1)
    assert P.encode_step(np.array([0, 2, 0, 1])) == bytes([2, 1, 2, 2, 1])
    assert P.encode_step(np.zeros(10, np.uint16)) == b"\x00"
    # input 0 first: delta 0 is fine for the first pair
    assert P.encode_step(np.array([5, 0, 0])) == bytes([1, 0, 5])
    # index 200 once, then index 300 with 65535: 200 = c8 01, delta 100 = 64, 65535 = ff ff 03
    c = np.zeros(400, np.uint16)
    c[200] = 1
    c[300] = 65535
    assert P.encode_step(c) == bytes([2, 0xC8, 0x01, 0x01, 0x64, 0xFF, 0xFF, 0x03])
    assert np.array_equal(P.decode_steps(bytes([2, 1, 2, 2, 1, 0]), 4), [[0, 2, 0, 1], [0, 0, 0, 0]])
    back = P.decode_steps(bytes([2, 0xC8, 0x01, 0x01, 0x64, 0xFF, 0xFF, 0x03]), 400)
    assert np.array_equal(back[0], c)


def test_step_codec_round_trip_on_a_real_recording():
    from pysg.datasets.binning import bin_events
    from pysg.io import read_events

    ev = read_events(SAMPLE).events[:60000].copy()
    ev["t"] -= ev["t"].min()
    frames = bin_events(ev, duration_us=int(ev["t"].max()) + 1, dt_us=10_000, sensor_size=(128, 128),
                        downsample=4, channels=2)
    blocks = P.encode_steps(frames)
    assert len(blocks) == len(frames)
    back = P.decode_steps(b"".join(blocks), 2 * 32 * 32)
    assert back.dtype == np.uint16
    assert np.array_equal(back, frames.reshape(len(frames), -1))
    # every block costs 2P + 1 bytes at least (P inputs with events), and one byte when empty
    sizes = np.array([len(b) for b in blocks])
    active = (frames.reshape(len(frames), -1) > 0).sum(axis=1)
    assert (sizes >= 2 * active + 1).all()
    assert (sizes[active == 0] == 1).all()


@given(st.lists(st.lists(st.integers(0, 300), min_size=40, max_size=40), min_size=1, max_size=6))
@settings(max_examples=100, deadline=None)
def test_step_codec_round_trip_random(rows):
    frames = np.array(rows, np.uint16)
    assert np.array_equal(P.decode_steps(b"".join(P.encode_steps(frames)), 40), frames)


@pytest.mark.parametrize("payload,match", [
    (bytes([1, 4, 1]), "index 4 >= 4"),                   # first index past the input
    (bytes([2, 1, 1, 3, 1]), "index 4 >= 4"),             # 1 + 3 past the input
    (bytes([2, 1, 1, 0, 1]), "index_delta 0"),            # a repeated input
    (bytes([1, 1, 0]), "count 0"),
    (bytes([1, 1, 0x80, 0x80, 0x04]), "count 65536"),     # 65536 = 80 80 04
    (bytes([2, 1, 1]), "cut short"),                      # the second pair missing
    (bytes([1, 1]), "cut short"),                         # the count missing
    (bytes([1, 0x80]), "cut short"),                      # inside a varint
    (bytes([1, 0x81, 0x80, 0x80, 0x80, 0x10, 1]), "beyond 32 bits"),   # 2**32 + 1
    (bytes([1, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00, 1]), "beyond 32 bits"),  # 6 bytes for 1
    (bytes([0, 1, 1, 0]), "step 1: count 0"),             # the step number is named
])
def test_step_decoder_rejects_what_the_device_rejects(payload, match):
    with pytest.raises(P.StepBlockError, match=match):
        P.decode_steps(payload, 4)


def test_step_decoder_accepts_the_limits():
    # the last input, the largest count, a 5-byte varint within 32 bits as the first delta
    assert P.decode_steps(bytes([1, 3, 0xFF, 0xFF, 0x03]), 4).tolist() == [[0, 0, 0, 65535]]
    assert P.decode_steps(bytes([1, 0x83, 0x80, 0x80, 0x80, 0x00, 1]), 4).tolist() == [[0, 0, 0, 1]]
    assert P.decode_steps(b"", 4).shape == (0, 4)


def test_step_encoder_rejects_counts_out_of_range():
    with pytest.raises(ValueError):
        P.encode_step(np.array([70000]))
    with pytest.raises(ValueError):
        P.encode_step(np.array([-1, 2]))


def test_pack_steps_respects_both_payload_limits():
    rng = np.random.default_rng(3)
    blocks = [bytes(int(n)) for n in rng.integers(1, 400, 300)]
    per = 11 * 4
    ranges = P.pack_steps(blocks, 1024, per)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(blocks)
    assert all(a1 == b0 for (_, a1), (b0, _) in zip(ranges, ranges[1:]))
    for a, b in ranges:
        assert sum(len(x) for x in blocks[a:b]) <= 1024
        assert 7 + per * (b - a) <= 1024
    # without logits only the request limits a frame
    assert len(P.pack_steps([b"\x00"] * 5000, 1024, 0)) == 5
    with pytest.raises(ValueError, match="step 2 needs 2000 bytes"):
        P.pack_steps([b"\x00", b"\x00", bytes(2000)], 1024, per)
    # a smaller budget (noisy link) makes smaller frames, but a big step still goes alone
    small = P.pack_steps(blocks, 1024, per, budget=256)
    assert len(small) > len(ranges)
    for a, b in small:
        assert b - a == 1 or (sum(len(x) for x in blocks[a:b]) <= 256 and 7 + per * (b - a) <= 256)
    assert P.next_steps([10, 900, 10], 1, 1024, per, budget=64) == 2


# ------------------------------------------------------------------ status -> exception


def _reply(op, payload):
    return P.Packet(op | REPLY_BIT, 1, payload)


def test_check_reply_ok_and_errors_with_their_fields():
    assert P.check_reply(Op.INFO, _reply(Op.INFO, b"\x00abc")) == b"abc"
    with pytest.raises(P.DeviceError) as e:
        P.check_reply(Op.MODEL_DATA, _reply(Op.MODEL_DATA, struct.pack("<bI", Status.ERR_OFFSET, 4092)))
    assert e.value.status == Status.ERR_OFFSET and e.value.expected_offset == 4092
    assert "expects offset 4092" in str(e.value)
    with pytest.raises(P.DeviceError) as e:
        P.check_reply(Op.MODEL_END, _reply(Op.MODEL_END, struct.pack("<bhI", Status.ERR_MODEL, -3, 130)))
    assert (e.value.sg_status, e.value.error_offset) == (-3, 130)
    assert "MODEL_END failed: ERR_MODEL" in str(e.value)
    with pytest.raises(P.DeviceError) as e:
        P.check_reply(Op.PREDICT, _reply(Op.PREDICT, struct.pack("<b", Status.ERR_NO_MODEL)))
    assert "pysg flash" in str(e.value)
    with pytest.raises(P.DeviceError) as e:
        P.check_reply(Op.INFO, _reply(Op.INFO, struct.pack("<b", -99)))
    assert e.value.status == -99
    with pytest.raises(P.ProtocolError, match="reply op"):
        P.check_reply(Op.INFO, _reply(Op.STATS, b"\x00"))


# ------------------------------------------------------------------ link against a scripted device


class ScriptedDevice:
    """A TCP 'device' that answers HELLO and INFO, ignores the first `ignore` INFO
    requests (the host must resend them unchanged) and sends a stray reply with another
    seq before each real one."""

    def __init__(self, ignore: int = 0):
        self.ignore = ignore
        self.seen: list[P.Packet] = []
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.srv.getsockname()[1]}"
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        conn, _ = self.srv.accept()
        sp = P.FrameSplitter()
        with conn:
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                for f in sp.feed(data):
                    pkt = P.decode_frame(f)
                    self.seen.append(pkt)
                    if pkt.op == Op.INFO and self.ignore > 0:
                        self.ignore -= 1
                        continue
                    stray = P.encode_frame(pkt.op | REPLY_BIT, (pkt.seq + 100) & 0xFF, b"\x00stray")
                    conn.sendall(b"\xff\xfe\x00" + stray + P.encode_frame(pkt.op | REPLY_BIT, pkt.seq, b"\x00" + pkt.payload))


def test_link_resends_with_the_same_seq_and_ignores_strays():
    dev = ScriptedDevice(ignore=2)
    link = Link.open(dev.url, reply_timeout=0.2, retries=3)
    try:
        assert link.hello() == (1).to_bytes(2, "little")
        assert link.command(Op.INFO, b"xyz") == b"xyz"
    finally:
        link.close()
    infos = [p for p in dev.seen if p.op == Op.INFO]
    assert len(infos) == 3 and len({p.seq for p in infos}) == 1
    assert link.counters.resends == 2
    assert link.counters.stray_frames == 2      # one before each real reply
    assert link.counters.bad_frames == 2        # the garbage before each stray frame


def test_link_gives_up_with_a_message_that_says_what_to_check():
    dev = ScriptedDevice(ignore=100)
    link = Link.open(dev.url, reply_timeout=0.05, retries=2)
    try:
        with pytest.raises(LinkError, match="after 3 tries.*port and the baud rate"):
            link.command(Op.INFO)
    finally:
        link.close()


def test_open_port_failure_is_a_link_error():
    with pytest.raises(LinkError, match="cannot open"):
        Link.open("/dev/does-not-exist-pysg")


# ------------------------------------------------------------------ fault proxy


class Echo:
    def __init__(self):
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.srv.getsockname()[1]}"
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(data)


def _roundtrip(url: str, data: bytes, expect: int) -> bytes:
    host, port = parse_socket_url(url)
    with socket.create_connection((host, port)) as s:
        s.sendall(data)
        s.settimeout(2.0)
        got = b""
        deadline = time.monotonic() + 5
        while len(got) < expect and time.monotonic() < deadline:
            got += s.recv(65536)
    return got


def test_fault_proxy_frame_unit_damages_each_frame_once_each_way():
    frames = [P.encode_frame(0x31, i, bytes(range(1, 60))) for i in range(20)]
    with FaultProxy(Echo().url, drop=1.0, corrupt=0.0, seed=1) as px:
        got = _roundtrip(px.url, b"".join(frames), sum(len(f) for f in frames) - 40)
    c = px.counters
    assert c.to_device.frames == 20 and c.to_device.dropped == 20 and c.to_host.dropped <= 20
    assert len(got) == sum(len(f) for f in frames) - c.to_device.dropped - c.to_host.dropped


def test_fault_proxy_is_transparent_at_zero_and_reproducible_by_seed():
    data = b"".join(P.encode_frame(0x11, i, bytes(300)) for i in range(10))
    with FaultProxy(Echo().url) as px:
        assert _roundtrip(px.url, data, len(data)) == data
    outs = []
    for _ in range(2):
        with FaultProxy(Echo().url, drop=0.0, corrupt=0.01, seed=7, unit="byte", both_ways=False) as px:
            outs.append(_roundtrip(px.url, data, len(data)))
        assert px.counters.to_device.corrupted == sum(a != b for a, b in zip(outs[-1], data)) > 0
    assert outs[0] == outs[1]


def test_a_refusal_names_the_runtime_status_not_its_number():
    """A device refusing a model says which runtime check failed by name (the runtime's own
    text), not `runtime status -11`."""
    from pysg.device.ops import Op, Status
    from pysg.device.protocol import DeviceError

    e = DeviceError(Op.MODEL_END, Status.ERR_MODEL, sg_status=-11, error_offset=20)
    assert "SG_ERR_ARENA" in str(e) and "-11" not in str(e) and "at byte 20 of the model" in str(e)
