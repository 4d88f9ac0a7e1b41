# SPDX-License-Identifier: MIT
"""Review of the device protocol (docs/PROTOCOL.md), host and device side.

Regression tests for the defects the review found (each failed before its fix), tests of
edge cases found correct (slot generations, torn slot headers), and fuzz tests of the
host's wire layer: the frame splitter and decoder in pysg.device.protocol, the Link's
receive path, and every reply parser of pysg.device.client fed arbitrary bytes must
raise nothing but ProtocolError subclasses, and return. The device side runs as the
POSIX emulated device spoken to in raw frames (cobs package, zlib.crc32); its C unit
tests (firmware/tests/test_proto.c) cover SET_BAUD to a rate the board lacks, a flash
read-back failure before a resumed upload, and a firmware image larger than the primary
region."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from cobs import cobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysg.converters.sgm import export_network
from pysg.device import protocol as P
from pysg.device.client import Device, DeviceInfo, DeviceStats, HelloInfo, StreamInfo, _Stream
from pysg.device.link import Link, LinkCounters
from pysg.device.ops import MAX_PAYLOAD, REPLY_BIT, Op, Status
from pysg.device.posix import FLASH_SIZE, start_posix_device
from pysg.device.replies import MIN_BUDGET
from pysg.device.session import FrameSizer
from pysg.model import Network
from pysg.recipes import BUNDLED_MODEL
from tests.support.device_link import RawLink, hello, info, upload

SLOT_SIZE = 512 * 1024        # firmware/boards/posix/sg_posix.h SG_POSIX_SLOT_SIZE: slot 0 at 0, slot 1 after
SLOT_MAGIC = 0x4C534753       # firmware/app/sg_slots.h: "SGSL", header 256 bytes, version 1
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def sgm() -> bytes:
    return export_network(Network.load(BUNDLED_MODEL))


def slot_header(generation: int, data: bytes) -> bytes:
    """A committed slot header as firmware/app/sg_slots.h lays it out (written here by hand)."""
    h = bytearray(256)
    struct.pack_into("<IHHIII", h, 0, SLOT_MAGIC, 256, 1, generation, len(data), zlib.crc32(data))
    struct.pack_into("<I", h, 252, zlib.crc32(bytes(h[:252])))
    return bytes(h)


def write_flash(path, slots: dict[int, bytes]) -> None:
    """A 4 MiB erased flash file with these slot images (header + model) in place."""
    flash = bytearray(b"\xff" * FLASH_SIZE)
    for slot, image in slots.items():
        flash[slot * SLOT_SIZE: slot * SLOT_SIZE + len(image)] = image
    path.write_bytes(bytes(flash))


def raw_link(url: str) -> RawLink:
    """A raw connection that starts as the host does, with HELLO (it clears the device's
    reply cache: a new connection's seq 1 is a new request)."""
    link = RawLink(url)
    hello(link)
    return link


def active_and_generations(url: str) -> tuple[int, list[tuple[int, int]]]:
    link = raw_link(url)
    try:
        i = info(link)
    finally:
        link.close()
    return i["active"], [(s["state"], s["generation"]) for s in i["slots"]]


# ------------------------------------------------------------------ slot generations


def test_generation_wraps_past_2_to_the_32(tmp_path, sgm):
    """Defect: generations compared as plain integers, so the activation after generation
    0xFFFFFFFF wrote generation 0, lost to the old slot and MODEL_ACTIVATE answered
    ERR_FLASH for ever. Now 'newer' is 'ahead modulo 2^32', like the boot-control seq."""
    flash = tmp_path / "flash.bin"
    write_flash(flash, {0: slot_header(0xFFFFFFFF, sgm) + sgm})
    with start_posix_device(flash) as dev:
        assert active_and_generations(dev.url) == (0, [(1, 0xFFFFFFFF), (0, 0)])
        link = raw_link(dev.url)
        try:
            assert upload(link, sgm) == (1, 0)       # slot 1, generation 0xFFFFFFFF + 1 = 0
            assert info(link)["active"] == 1
        finally:
            link.close()
    with start_posix_device(flash) as dev:        # and after a restart
        assert active_and_generations(dev.url) == (1, [(1, 0xFFFFFFFF), (1, 0)])
        link = raw_link(dev.url)
        try:
            assert upload(link, sgm) == (0, 1)
        finally:
            link.close()
        assert active_and_generations(dev.url) == (0, [(1, 1), (1, 0)])


def test_equal_generations_pick_slot_0_and_a_torn_header_is_empty(tmp_path, sgm):
    """Checked correct: two valid slots of one generation (only a hand-made flash has
    them) run slot 0, and the next activation is one ahead of it; a slot header torn
    halfway through its program (the rest still erased) makes its slot empty even with a
    newer generation."""
    flash = tmp_path / "flash.bin"
    write_flash(flash, {0: slot_header(5, sgm) + sgm, 1: slot_header(5, sgm) + sgm})
    with start_posix_device(flash) as dev:
        assert active_and_generations(dev.url) == (0, [(1, 5), (1, 5)])
        link = raw_link(dev.url)
        try:
            assert upload(link, sgm) == (1, 6)
        finally:
            link.close()
    torn = slot_header(9, sgm)[:128] + b"\xff" * 128
    write_flash(flash, {0: slot_header(5, sgm) + sgm, 1: torn + sgm})
    with start_posix_device(flash) as dev:
        assert active_and_generations(dev.url) == (0, [(1, 5), (0, 0)])


# ------------------------------------------------------------------ framing edge cases


def test_cobs_runs_at_254_and_255_bytes_and_max_payload_both_ways(tmp_path):
    """Checked correct: requests and replies whose zero-free runs end at, just before and
    just after the 254-byte COBS block limit, up to a payload of exactly max_payload
    (4096: MODEL_DATA of 4092 bytes; MODEL_READ of 4095), decode on both sides (the
    device's encoder checked by the cobs package, its decoder by the read-back)."""
    data = bytes((i % 255) + 1 for i in range(20000))   # no zero anywhere
    with start_posix_device(tmp_path / "flash.bin") as dev:
        link = raw_link(dev.url)
        try:
            r = link.request(Op.MODEL_BEGIN, struct.pack("<II", len(data), zlib.crc32(data)))
            assert r.body[1:5] == b"\0\0\0\0"
            off = 0
            for n in (245, 246, 247, 248, 249, 250, 251, 252, 253, 254, 255, 256, 500, 507, 508, 509, 4092):
                r = link.request(Op.MODEL_DATA, struct.pack("<I", off) + data[off:off + n])
                off += n
                assert struct.unpack("<I", r.body) == (off,)
            slot = 0
            for n in (248, 249, 250, 251, 252, 253, 254, 255, 256, 4095):
                r = link.request(Op.MODEL_READ, struct.pack("<BIH", slot, 7, n))
                assert r.body == data[7:7 + n]
            link.request(Op.MODEL_READ, struct.pack("<BIH", slot, 0, 4096), expect=Status.ERR_ARG)
        finally:
            link.close()


def test_seq_wraps_and_every_request_runs_once(tmp_path):
    """Checked correct: 300 requests through pysg.device (seq 1..255, 0, 1, ...) each
    answered and each executed once (frames_ok counts them), none dropped."""
    with start_posix_device(tmp_path / "flash.bin") as posix, Device(posix.url) as dev:
        first = dev.stats()
        for _ in range(300):
            last = dev.stats()
        assert dev.link.counters.resends == 0
        assert last.frames_ok - first.frames_ok == 300 and last.frames_dropped == first.frames_dropped


# ------------------------------------------------------------------ host wire layer fuzz


def _oracle_packet(raw: bytes):
    """What a packet's bytes mean by PROTOCOL.md 1, computed without pysg: (op, seq,
    payload) or None for a packet that must be refused."""
    if len(raw) < 8:
        return None
    op, seq, n = struct.unpack_from("<BBH", raw)
    if len(raw) != n + 8 or struct.unpack_from("<I", raw, len(raw) - 4)[0] != zlib.crc32(raw[:-4]):
        return None
    return op, seq, raw[4:4 + n]


def _oracle_frame(frame: bytes):
    try:
        raw = cobs.decode(frame[:-1] if frame.endswith(b"\x00") else frame)  # the cobs package decodes
    except cobs.DecodeError:
        return None
    return _oracle_packet(raw)


# frames: arbitrary bytes, real packets, and real packets with one byte changed (a CRC-32
# catches every single-byte error, so those must all be refused)
_PACKETS = st.builds(lambda op, seq, payload: P.encode_packet(op, seq, payload),
                     st.integers(0, 255), st.integers(0, 255), st.binary(max_size=64))


@st.composite
def _frames(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "packet", "damaged"]))
    if kind == "bytes":
        return draw(st.binary(max_size=120))
    raw = bytearray(draw(_PACKETS))
    if kind == "damaged":
        at = draw(st.integers(0, len(raw) - 1))
        raw[at] ^= draw(st.integers(1, 255))
    return cobs.encode(bytes(raw))


@FUZZ
@given(chunks=st.lists(st.binary(max_size=600), max_size=12), max_frame=st.integers(1, 700))
def test_fuzz_splitter_matches_splitting_at_zeros(chunks, max_frame):
    """Arbitrary bytes in any split: the frames are exactly the non-empty runs between
    zeros of at most max_frame bytes, longer runs are counted, and what is held is the
    unfinished run (when it still fits)."""
    sp = P.FrameSplitter(max_frame)
    got = [f for chunk in chunks for f in sp.feed(chunk)]
    *runs, tail = b"".join(chunks).split(b"\x00")
    assert got == [r for r in runs if 0 < len(r) <= max_frame]
    assert sp.oversized == sum(len(r) > max_frame for r in runs) + (len(tail) > max_frame)
    assert sp.pending == (len(tail) if len(tail) <= max_frame else 0)


@FUZZ
@given(frame=_frames())
def test_fuzz_frame_decoder_against_cobs_and_crc(frame):
    """decode_frame accepts exactly the frames the cobs package decodes into a packet
    whose length and CRC-32 check out, with the same op, seq and payload; any other frame
    (every packet with one byte changed among them) is a FrameError."""
    want = _oracle_frame(frame)
    try:
        pkt = P.decode_frame(frame)
    except P.FrameError:
        assert want is None
        return
    assert want == (pkt.op, pkt.seq, pkt.payload)


@FUZZ
@given(raw=st.one_of(st.binary(max_size=80), _PACKETS), op=st.sampled_from(list(Op)))
def test_fuzz_packet_decoder_and_reply_check(raw, op):
    """decode_packet equals the oracle on arbitrary and real packets; check_reply of a
    reply to `op` returns the payload after an OK status, and raises ProtocolError for any
    other op byte, an empty payload or an error status."""
    want = _oracle_packet(raw)
    try:
        pkt = P.decode_packet(raw)
    except P.FrameError:
        assert want is None
    else:
        assert want == (pkt.op, pkt.seq, pkt.payload)
    payload = raw[:60]
    for rop in (op | REPLY_BIT, payload[0] if payload else 0):
        try:
            body = P.check_reply(op, P.Packet(rop, 0, payload))
        except P.ProtocolError:
            assert rop != op | REPLY_BIT or not payload or payload[0] != Status.OK
        else:
            assert rop == op | REPLY_BIT and payload[0] == Status.OK and body == payload[1:]
    try:
        P.decode_steps(payload, 37)
    except P.StepBlockError:
        pass


def test_hello_with_a_tiny_max_payload_is_refused():
    """Defect: a HELLO reply with max_payload below 5 was accepted, and an upload then
    sent empty MODEL_DATA chunks for ever (budget - 4 <= 0 bytes, next_offset unchanged).
    The protocol's smallest frame budget is 64 bytes (PROTOCOL.md 4)."""
    def reply(max_payload: int) -> bytes:
        return struct.pack("<HIH8sIB", 1, 3, max_payload, b"ABCDEFGH", 0x100, 4) + b"test"

    assert HelloInfo.parse(reply(64)).max_payload == 64
    for tiny in (0, 4, 63):
        with pytest.raises(P.ProtocolError, match="max_payload"):
            HelloInfo.parse(reply(tiny))


def _oracle_record(kind: str, p: bytes):
    """The fields of a HELLO / INFO / STATS reply by PROTOCOL.md's layouts, written out
    with struct here (not from pysg.device.ops), or None when the bytes cannot be one."""
    try:
        if kind == "hello":
            version, caps, max_payload, dev_id, fw, n = struct.unpack_from("<HIH8sIB", p)
            if len(p) != 21 + n or max_payload < 64:
                return None
            return version, caps, max_payload, dev_id.hex(), fw, p[21:].decode("ascii", "replace")
        if kind == "info":
            if len(p) != struct.calcsize("<B" + "BIII" * 2 + "IIIIIBBI"):
                return None
            v = list(struct.unpack("<B" + "BIII" * 2 + "IIIIIBBI", p))
            v[14] = int(v[14] != 0)  # fw_confirmed is a flag
            return (None if v[0] == 0xFF else v[0], tuple(v[1:5]), tuple(v[5:9]), *v[9:])
        n = p[24]  # stats
        if len(p) != 25 + 8 * n + 12:
            return None
        steps, ev, syn = struct.unpack_from("<QQQ", p)
        return (steps, ev, syn, list(struct.unpack_from(f"<{n}Q", p, 25)), *struct.unpack_from("<III", p, 25 + 8 * n))
    except (struct.error, IndexError):
        return None


def _parsed(kind: str, r):
    if kind == "hello":
        return r.version, int(r.caps), r.max_payload, r.device_id, r.fw_version, r.name
    if kind == "info":
        s = [(x.state, x.generation, x.size, x.crc) for x in r.slots]
        return (r.active_slot, s[0], s[1], r.arena_capacity, r.arena_bytes, r.slot_capacity, r.fw_version, r.fw_crc,
                int(r.fw_confirmed), r.boot_state, r.uptime_ms)
    return r.steps, r.events_in, r.synops, list(r.spikes), r.frames_ok, r.frames_dropped, r.busy_us


@st.composite
def _records(draw):
    """Arbitrary bytes, or a well-formed record of the drawn kind (then maybe cut)."""
    kind = draw(st.sampled_from(["hello", "info", "stats"]))
    if draw(st.booleans()):
        return kind, draw(st.binary(max_size=120))
    if kind == "hello":
        name = draw(st.binary(max_size=12))
        p = struct.pack("<HIH8sIB", draw(st.integers(0, 65535)), draw(st.integers(0, 2**32 - 1)),
                        draw(st.integers(0, 4096)), draw(st.binary(min_size=8, max_size=8)),
                        draw(st.integers(0, 2**32 - 1)), len(name)) + name
    elif kind == "info":
        p = struct.pack("<B" + "BIII" * 2 + "IIIIIBBI", draw(st.sampled_from([0, 1, 0xFF])),
                        *draw(st.lists(st.integers(0, 255), min_size=16, max_size=16)))
    else:
        n = draw(st.integers(0, 15))
        p = (struct.pack("<QQQB", *draw(st.lists(st.integers(0, 2**63), min_size=3, max_size=3)), n)
             + struct.pack(f"<{n}Q", *range(n)) + struct.pack("<III", 1, 2, 3))
    cut = draw(st.integers(0, len(p)))
    return kind, p[:cut] if draw(st.booleans()) else p


@FUZZ
@given(record=_records())
def test_fuzz_record_parsers_against_the_documented_layouts(record):
    """HELLO, INFO and STATS replies parse to exactly the fields PROTOCOL.md's layouts
    give, and anything that is not such a record is a ProtocolError."""
    kind, p = record
    parse = {"hello": HelloInfo.parse, "info": DeviceInfo.parse, "stats": DeviceStats.parse}[kind]
    want = _oracle_record(kind, p)
    try:
        got = _parsed(kind, parse(p))
    except P.ProtocolError:
        assert want is None, (kind, p)
        return
    assert got == want


class _ScriptPort:
    """A pyserial stand-in: reads return the scripted bytes in pieces, then nothing."""

    def __init__(self, pieces: list[bytes]):
        self.pieces = list(pieces)
        self.timeout = 0.0
        self.written = b""

    def write(self, data: bytes) -> int:
        self.written += data
        return len(data)

    def flush(self) -> None:
        pass

    def read(self, n: int) -> bytes:
        if not self.pieces:
            return b""
        piece = self.pieces.pop(0)
        if len(piece) > n:
            self.pieces.insert(0, piece[n:])
            piece = piece[:n]
        return piece

    def close(self) -> None:
        pass


@FUZZ
@given(pieces=st.lists(st.binary(max_size=200), max_size=8), op=st.sampled_from([Op.INFO, Op.STATS, Op.PREDICT]))
def test_fuzz_link_receive_path(pieces, op):
    """Link.request over a port that answers garbage: a reply packet or LinkError, and it
    returns (one try of a short timeout)."""
    link = Link(_ScriptPort(pieces), reply_timeout=0.002, retries=0, bytes_per_s=1e9)
    try:
        pkt = link.request(op)
    except P.ProtocolError:
        return
    assert pkt.op == op | REPLY_BIT and pkt.seq == 1


class _FakeLink:
    """Answers every command with the same payload (what check_reply returns after OK)."""

    def __init__(self, reply: bytes):
        self.reply = reply
        self.max_payload = MAX_PAYLOAD
        self.counters = LinkCounters()

    def command(self, op, payload=b"", **kwargs) -> bytes:
        return self.reply

    def close(self) -> None:
        pass


def _device(reply: bytes) -> Device:
    dev = Device("fake://")
    dev.link = _FakeLink(reply)
    dev.sizer = FrameSizer(MIN_BUDGET, MAX_PAYLOAD)
    return dev


_CLIENT_CALLS = {
    "info": lambda d: d.info(),
    "stats": lambda d: d.stats(),
    "start_stream": lambda d: d.start_stream(),
    "send_steps": lambda d: d.send_steps(np.ones((3, 1, 2, 2), np.uint16)),
    "predict": lambda d: d.predict(),
    "read_model": lambda d: d.read_model(0, size=5),
    "upload_model": lambda d: d.upload_model(_SGM[:3]),
    "model_header": lambda d: d.model_header(),
}
# the op whose reply each call's fuzz replaces; every other op is answered well-formed
_SGM = export_network(Network.load(BUNDLED_MODEL))
_FUZZED_OP = {"info": Op.INFO, "stats": Op.STATS, "start_stream": Op.STREAM_START, "send_steps": Op.STREAM_STEPS,
              "predict": Op.PREDICT, "read_model": Op.MODEL_READ, "upload_model": Op.MODEL_BEGIN,
              "model_header": Op.INFO}
# PROTOCOL.md's reply layouts, written out here: (field, offset, struct code)
_STREAM_START = [("n_classes", 0, "H"), ("in_c", 2, "H"), ("in_h", 4, "H"), ("in_w", 6, "H"), ("dt_us", 8, "I")]
_STEPS_HEAD = [("step", 0, "I"), ("n_steps", 4, "H")]
_PREDICT_HEAD = [("step", 0, "I"), ("prediction", 4, "h")]
_BEGIN = [("slot", 0, "B"), ("resume_offset", 1, "I")]


class _ScriptLink(_FakeLink):
    """A device answering the fuzzed op with the fuzzed bytes and every other op with a
    well-formed reply of PROTOCOL.md's layouts (MODEL_READ serves _SGM's bytes)."""

    def __init__(self, op: Op, reply: bytes):
        super().__init__(reply)
        self.op = op

    def command(self, op, payload=b"", **kwargs) -> bytes:
        if op == self.op:
            return self.reply
        if op == Op.INFO:      # slot 0 active and valid, holding _SGM
            return struct.pack("<B" + "BIII" * 2 + "IIIIIBBI", 0, 1, 3, len(_SGM), 0x1234, 0, 0, 0, 0,
                               1 << 18, 0, 1 << 19, 0x100, 0, 1, 0, 0)
        if op == Op.MODEL_READ:
            slot, offset, n = struct.unpack("<BIH", payload)
            return _SGM[offset:offset + n]       # either slot (the upload sends _SGM[:3])
        if op == Op.MODEL_DATA:
            return struct.pack("<I", struct.unpack_from("<I", payload)[0] + len(payload) - 4)
        return {Op.MODEL_END: b"\x01", Op.MODEL_ACTIVATE: struct.pack("<BI", 1, 7)}.get(op, b"")


def _missing(op: str, fields, base: int, r: bytes):
    """The outcome for a reply that ends inside `fields` (at `base`): the first one not whole."""
    name, off = next((n, base + o) for n, o, c in fields if base + o + struct.calcsize("<" + c) > len(r))
    return "error", [op, f"{name} at offset {off} missing"]


def _unpack(fields, r: bytes, base: int = 0) -> tuple:
    return tuple(struct.unpack_from("<" + c, r, base + o)[0] for _, o, c in fields)


def _want(call: str, r: bytes):
    """What `call` must do with the reply `r` to its fuzzed op: ("ok", value) or ("error",
    [the substrings its ProtocolError names]), from the layouts above."""
    n = len(r)
    if call in ("info", "stats", "model_header"):
        rec = _oracle_record("stats" if call == "stats" else "info", r) if n > 24 or call != "stats" else None
        if rec is None:
            return "error", ["STATS" if call == "stats" else "INFO"]
        if call != "model_header":
            return "ok", rec
        if rec[0] is None:
            return "error", ["has no model"]
        return "ok", (10000, (2, 32, 32), (128, 128), 4, 11, len(_SGM))
    if call == "start_stream":
        return _missing("STREAM_START", _STREAM_START, 0, r) if n < 12 else ("ok", _unpack(_STREAM_START, r))
    if call == "predict":      # the stream has 3 classes: 3 x i64 scores after the head
        if n < 6:
            return _missing("PREDICT", _PREDICT_HEAD, 0, r)
        if n < 6 + 3 * 8:
            return _missing("PREDICT", [(f"scores[{(n - 6) // 8}] score", 0, "q")], 6 + (n - 6) // 8 * 8, r)
        return "ok", _unpack(_PREDICT_HEAD, r) + struct.unpack_from("<3q", r, 6)
    if call == "send_steps":   # 3 steps from step 0, 3 logits each
        if n < 6:
            return _missing("STREAM_STEPS", _STEPS_HEAD, 0, r)
        if _unpack(_STEPS_HEAD, r) != (3, 3):
            return "error", ["STREAM_STEPS of 3 steps from step 0", "the device ran"]
        if n < 6 + 9 * 4:
            return _missing("STREAM_STEPS", [(f"logits[{(n - 6) // 4}] logit", 0, "i")], 6 + (n - 6) // 4 * 4, r)
        return "ok", struct.unpack_from("<9i", r, 6)
    if call == "read_model":
        return ("ok", r) if n == 5 else ("error", ["MODEL_READ of 5 bytes returned", f"returned {n}"])
    # upload_model: MODEL_BEGIN
    if n < 5:
        return _missing("MODEL_BEGIN", _BEGIN, 0, r)
    resume = _unpack(_BEGIN, r)[1]
    if resume > 3:
        return "error", ["MODEL_BEGIN", "resume_offset (offset 1)"]
    return "ok", (1, resume, 7)


def _got(call: str, value):
    if call in ("info", "stats"):
        return _parsed(call, value)
    if call == "model_header":
        return value.dt_us, tuple(value.input_shape), tuple(value.sensor_size), value.downsample, \
            len(value.labels), value.file_bytes
    if call == "start_stream":
        return (value.n_classes, *value.input_shape, value.dt_us)
    if call == "predict":
        return (value.step, value.index, *value.scores.tolist())
    if call == "send_steps":
        return tuple(value.reshape(-1).tolist())
    if call == "read_model":
        return value
    return value.slot, value.resumed_from, value.generation


@st.composite
def _client_replies(draw):
    """A call and its fuzzed reply: arbitrary bytes, or a well-formed one (fields drawn),
    maybe cut short or with bytes added."""
    call = draw(st.sampled_from(sorted(_CLIENT_CALLS)))
    if draw(st.booleans()):
        return call, draw(st.binary(max_size=80))
    if call in ("info", "model_header", "stats"):
        kind = "stats" if call == "stats" else "info"
        if kind == "info":
            r = struct.pack("<B" + "BIII" * 2 + "IIIIIBBI", draw(st.sampled_from([0, 1, 0xFF])),
                            *draw(st.lists(st.integers(0, 255), min_size=16, max_size=16)))
        else:
            k = draw(st.integers(0, 6))
            r = struct.pack("<QQQB", 1, 2, 3, k) + struct.pack(f"<{k}Q", *range(k)) + struct.pack("<III", 4, 5, 6)
    elif call == "start_stream":
        r = struct.pack("<HHHHI", *draw(st.lists(st.integers(0, 65535), min_size=4, max_size=4)),
                        draw(st.integers(0, 2**32 - 1)))
    elif call == "predict":
        r = struct.pack("<Ih3q", draw(st.integers(0, 2**32 - 1)), draw(st.integers(-1, 10)),
                        *draw(st.lists(st.integers(-2**63, 2**63 - 1), min_size=3, max_size=3)))
    elif call == "send_steps":
        r = struct.pack("<IH9i", draw(st.sampled_from([3, 3, 2, 6])), draw(st.sampled_from([3, 3, 1, 4])),
                        *draw(st.lists(st.integers(-2**31, 2**31 - 1), min_size=9, max_size=9)))
    elif call == "read_model":
        r = draw(st.binary(min_size=5, max_size=5))
    else:
        r = struct.pack("<BI", draw(st.integers(0, 255)), draw(st.sampled_from([0, 1, 2, 3, 4, 2**32 - 1])))
    how = draw(st.sampled_from(["whole", "whole", "cut", "longer"]))
    if how == "cut":
        r = r[:draw(st.integers(0, max(0, len(r) - 1)))]
    elif how == "longer" and call in ("read_model", "predict"):
        r += draw(st.binary(min_size=1, max_size=9))
    return call, r


@FUZZ
@given(case=_client_replies())
def test_fuzz_client_reply_parsers(case):
    """Every client operation on a fuzzed reply does exactly what PROTOCOL.md's layouts
    (written out with struct above) say: a well-formed reply parses to the struct-decoded
    fields; a malformed one raises a ProtocolError naming the op and the first missing
    field and its offset (or the inconsistent value). Before: any ProtocolError passed."""
    call, reply = case
    dev = _device(reply)
    dev.link = _ScriptLink(_FUZZED_OP[call], reply)
    dev._stream = _Stream(StreamInfo(3, (1, 2, 2), 1000), logits=True)
    kind, want = _want(call, reply)
    try:
        got = _got(call, _CLIENT_CALLS[call](dev))
    except P.ProtocolError as e:
        assert kind == "error", (call, reply, str(e), want)
        assert all(w in str(e) for w in want), (call, reply, str(e), want)
        return
    assert kind == "ok", (call, reply, got, want)
    assert got == want, (call, reply)


@pytest.mark.parametrize("call,reply", [
    ("start_stream", b"\x03\x00"),                      # 13 bytes expected
    ("predict", b"\x05"),                               # u32 step, i16 prediction, ...
    ("send_steps", struct.pack("<IH", 3, 3) + b"\x00"),  # 3 steps x 3 logits missing
    ("upload_model", b""),                              # MODEL_BEGIN: u8 slot, u32 resume
])
def test_short_ok_reply_is_a_protocol_error_naming_the_op(call, reply):
    dev = _device(reply)
    dev._stream = _Stream(StreamInfo(3, (1, 2, 2), 1000), logits=True)
    with pytest.raises(P.ProtocolError, match="reply"):
        _CLIENT_CALLS[call](dev)


# ------------------------------------------------------------------ lost replies to resetting requests


class _ResettingLink(_FakeLink):
    """A device that takes a firmware image, then resets at FW_ACTIVATE / RESET with the
    reply lost: the host sees what `lost` says (LinkError after every resend, or the
    rebooted device's ERR_STATE to a resend it executed afresh)."""

    def __init__(self, version: int, lost: Exception):
        super().__init__(b"")
        self.version = version
        self.lost = lost
        self.ops: list[Op] = []

    def command(self, op, payload=b"", **kwargs) -> bytes:
        self.ops.append(Op(op))
        if op in (Op.FW_ACTIVATE, Op.RESET):
            raise self.lost
        if op == Op.FW_BEGIN:
            return struct.pack("<I", 0)
        if op == Op.FW_DATA:
            return struct.pack("<I", struct.unpack_from("<I", payload)[0] + len(payload) - 4)
        if op == Op.FW_END:
            return struct.pack("<I", self.version)
        raise AssertionError(f"unexpected {Op(op).name}")


def _lost_replies():
    from pysg.device.link import LinkError
    return [LinkError("no reply to FW_ACTIVATE after 9 tries"), P.DeviceError(Op.FW_ACTIVATE, Status.ERR_STATE)]


@pytest.mark.parametrize("lost", _lost_replies(), ids=["link-error", "err-state"])
def test_firmware_update_whose_activate_reply_is_lost_still_checks_the_new_version(lost):
    """Defect: FW_ACTIVATE's reply lost (the device resets right after sending it) made
    upload_firmware fail with LinkError (resends into a rebooting device) or ERR_STATE
    (a resend executed by the rebooted firmware), although the update went through. The
    version the device reports after the reboot is what decides."""
    from pysg.device.client import Cap
    from pysg.device.image import make_image

    version = 0x000200
    image = make_image(bytes(range(1, 200)) * 5, 0x0800C100, version, "test")
    dev = _device(b"")
    dev.link = _ResettingLink(version, lost)
    dev.reconnect = lambda timeout=0: HelloInfo(1, Cap(7), MAX_PAYLOAD, "00" * 8, version, "test")
    result = dev.upload_firmware(image)
    assert result.version == version and dev.link.ops[-1] == Op.FW_ACTIVATE
    # the device came back with the old image: that is still an error, and says so
    dev.link = _ResettingLink(version, lost)
    dev.reconnect = lambda timeout=0: HelloInfo(1, Cap(7), MAX_PAYLOAD, "00" * 8, 0x000100, "test")
    with pytest.raises(P.ProtocolError, match="kept .or restored. the old image"):
        dev.upload_firmware(image)


# ------------------------------------------------------------------ a BEGIN that erases for seconds


class _SlowEraseDevice:
    """A TCP device whose MODEL_BEGIN erases for `erase_s` seconds before it answers (an
    STM32F4 erases a 128 KB sector in about 1 s, up to 2 s; FW_BEGIN erases two), and
    that answers a resent request from its reply cache, as the firmware does."""

    def __init__(self, erase_s: float, size: int):
        import socket
        import threading

        self.erase_s, self.size = erase_s, size
        self.received: list[P.Packet] = []
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.srv.getsockname()[1]}"
        threading.Thread(target=self._run, daemon=True).start()

    def _payload(self, op: int) -> bytes:
        if op == Op.HELLO:
            return b"\x00" + struct.pack("<HIH8sIB", 1, 3, MAX_PAYLOAD, b"SLOWERAS", 0x100, 4) + b"slow"
        if op == Op.MODEL_BEGIN:
            import time
            time.sleep(self.erase_s)
            return b"\x00" + struct.pack("<BI", 1, self.size)   # everything already there: no DATA
        return b"\x00\x01"                                       # MODEL_END: slot 1

    def _run(self):
        conn, _ = self.srv.accept()
        sp = P.FrameSplitter()
        cache: tuple[int, bytes] | None = None
        with conn:
            while data := conn.recv(4096):
                for f in sp.feed(data):
                    pkt = P.decode_frame(f)
                    self.received.append(pkt)
                    if pkt.op != Op.HELLO and cache is not None and cache[0] == pkt.seq:
                        conn.sendall(cache[1])
                        continue
                    reply = P.encode_frame(pkt.op | REPLY_BIT, pkt.seq, self._payload(pkt.op))
                    cache = (pkt.seq, reply)
                    conn.sendall(reply)


def test_model_begin_waits_for_the_erase_instead_of_resending():
    """Defect: MODEL_BEGIN / FW_BEGIN erase before they answer, on the STM32F4 for 1-4 s,
    but the host resent them after REPLY_TIMEOUT (1 s), so every upload to a real board
    began with resends that also halved the frame size as if the link were noisy. BEGIN
    now waits ERASE_TIMEOUT for its reply."""
    data = b"\x01" * 1000
    dev_sim = _SlowEraseDevice(erase_s=1.6, size=len(data))
    with Device(dev_sim.url, reply_timeout=1.0) as dev:
        result = dev.upload_model(data, verify=False, activate=False)
        assert result.slot == 1 and result.resumed_from == len(data)
        assert dev.link.counters.resends == 0
        assert dev.frame_budget == MAX_PAYLOAD
    assert [p.op for p in dev_sim.received] == [Op.HELLO, Op.MODEL_BEGIN, Op.MODEL_END]
