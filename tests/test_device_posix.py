# SPDX-License-Identifier: MIT
"""The POSIX emulated device (firmware/app on firmware/boards/posix, run through
`pysg.device.posix`) end to end, with RAW frames built here from the `cobs` package and
zlib.crc32 (independent of the host library pysg.device.client): HELLO and INFO fields,
a real .sgm upload with resume after a link loss, the upload errors, A/B slots surviving an
abandoned upload and a restart, streaming logits bit-exact with pysg.intref on gestures of
the bundled recording, PREDICT after SCORE_FROM equal to the reference, dropped frames and
the exactly-once reply cache."""
from __future__ import annotations

import csv
import shutil
import subprocess
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from cobs import cobs

from pysg.converters.sgm import export_network
from pysg import intref
from pysg.device.ops import MAX_PAYLOAD, Cap, Op, Status, StreamFlag
from pysg.device.posix import FLASH_SIZE, PosixDeviceError, start_posix_device
from pysg.io import read_events
from pysg.model import Network
from pysg.recipes import BUNDLED_MODEL, BUNDLED_SAMPLES
from pysg.sgm import load_sgm
from tests.support.device_link import (REPLY_TIMEOUT, RawLink, begin, frame, hello, info, packet, read_model,
                                       send_data, stats, step_block, stream, upload, varint)

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"

SLOT_CAPACITY = 512 * 1024 - 256
RECORDING = BUNDLED_SAMPLES / "user01_fluorescent.aedat"
LABELS = BUNDLED_SAMPLES / "user01_fluorescent_labels.csv"
N_GESTURES = 3
WARMUP = 0.2


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def sgm() -> bytes:
    return export_network(Network.load(BUNDLED_MODEL))


@pytest.fixture(scope="module")
def gestures(sgm):
    """(label, frames) of the first gestures of the bundled recording, binned as the reference bins."""
    m = load_sgm(sgm)
    ev = read_events(RECORDING).events
    out = []
    with open(LABELS, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows[:N_GESTURES]:
        t0, t1 = int(row["startTime_usec"]), int(row["endTime_usec"])
        sel = ev[(ev["t"] >= t0) & (ev["t"] < t1)]
        out.append((int(row["class"]), intref.frames_from_events(m, sel)))
    return out


@pytest.fixture
def flash(tmp_path):
    return tmp_path / "flash.bin"


@pytest.fixture
def device(flash):
    dev = start_posix_device(flash)
    yield dev
    dev.close()


@pytest.fixture
def link(device):
    lk = RawLink(device.url)
    yield lk
    lk.close()


def assert_same(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    diff = np.argwhere(got != want)
    if diff.size:
        t, c = diff[0]
        pytest.fail(f"{what}: first difference at step {t}, class {c}: device {got[t, c]} != "
                    f"reference {want[t, c]} ({len(diff)} values differ)")


# ------------------------------------------------------------------ tests


def test_hello(link, flash):
    h = hello(link)
    assert h == {"version": 1, "caps": Cap.MODEL | Cap.STREAM, "max_payload": MAX_PAYLOAD,
                 "device_id": b"psgposix", "fw_version": 0x000100, "name": "posix"}
    assert flash.stat().st_size == FLASH_SIZE
    assert set(flash.read_bytes()) == {0xFF}  # a fresh flash is erased
    # an unknown op and a payload of the wrong size
    link.request(0x7F, expect=Status.ERR_OP)
    link.request(Op.INFO, b"\0", expect=Status.ERR_FRAME)
    # no firmware update on this device
    link.request(Op.FW_BEGIN, struct.pack("<II", 1000, 0), expect=Status.ERR_UNSUPPORTED)


def test_info_before_and_after_upload(link, sgm):
    i = info(link)
    assert i["active"] == 0xFF and [s["state"] for s in i["slots"]] == [0, 0]
    assert i["arena_bytes"] == 0 and i["arena_capacity"] == 262144 and i["slot_capacity"] == SLOT_CAPACITY
    assert i["fw_version"] == 0x000100 and i["fw_confirmed"] == 1 and i["boot_state"] == 0
    link.request(Op.STREAM_START, b"\1", expect=Status.ERR_NO_MODEL)
    assert upload(link, sgm) == (0, 1)
    i = info(link)
    arena_bytes = struct.unpack_from("<I", sgm, 20)[0]  # the .sgm header's arena_bytes
    assert i["active"] == 0
    assert i["slots"][0] == {"state": 1, "generation": 1, "size": len(sgm), "crc": zlib.crc32(sgm)}
    assert i["slots"][1]["state"] == 0
    assert i["arena_bytes"] == arena_bytes
    # a second upload goes to the other slot and wins with the next generation
    assert upload(link, sgm) == (1, 2)
    i = info(link)
    assert i["active"] == 1 and [s["generation"] for s in i["slots"]] == [1, 2]
    assert read_model(link, 1, len(sgm)) == sgm


def test_upload_resume_after_link_loss(device, sgm):
    link = RawLink(device.url)
    r = begin(link, sgm)
    slot, resume = struct.unpack("<BI", r.body)
    assert (slot, resume) == (0, 0)
    half = (len(sgm) // 2) // (MAX_PAYLOAD - 4) * (MAX_PAYLOAD - 4)
    send_data(link, sgm, 0, half)
    link.close()  # the link drops mid-upload
    link = RawLink(device.url)
    r = begin(link, sgm)
    assert struct.unpack("<BI", r.body) == (0, half)
    r = link.request(Op.MODEL_DATA, struct.pack("<I", half + 4) + sgm[half + 4 : half + 100],
                     expect=Status.ERR_OFFSET)
    assert struct.unpack("<I", r.body)[0] == half
    link.request(Op.MODEL_END, expect=Status.ERR_STATE)  # not all bytes yet
    link.request(Op.MODEL_ACTIVATE, expect=Status.ERR_STATE)
    send_data(link, sgm, half, len(sgm))
    assert read_model(link, 0, len(sgm)) == sgm
    assert struct.unpack("<B", link.request(Op.MODEL_END).body) == (0,)
    assert struct.unpack("<BI", link.request(Op.MODEL_ACTIVATE).body) == (0, 1)
    link.close()


def test_upload_errors(link, sgm):
    begin(link, sgm, size=SLOT_CAPACITY + 1, expect=Status.ERR_TOO_BIG)
    link.request(Op.MODEL_DATA, struct.pack("<I", 0) + b"x", expect=Status.ERR_STATE)  # before BEGIN
    # a wrong CRC at BEGIN: every byte arrives, END refuses
    begin(link, sgm, crc=zlib.crc32(sgm) ^ 1)
    send_data(link, sgm, 0, len(sgm))
    link.request(Op.MODEL_END, expect=Status.ERR_VERIFY)
    link.request(Op.MODEL_ACTIVATE, expect=Status.ERR_STATE)
    # a corrupted field (dt_us = 0, header CRC fixed up): the runtime's status and the field's offset
    bad = bytearray(sgm)
    bad[24:28] = struct.pack("<I", 0)
    bad[60:64] = struct.pack("<I", zlib.crc32(bytes(bad[:60])))
    bad = bytes(bad)
    r = begin(link, bad)
    assert struct.unpack_from("<I", r.body, 1)[0] == 0  # another crc: a fresh upload
    send_data(link, bad, 0, len(bad))
    r = link.request(Op.MODEL_END, expect=Status.ERR_MODEL)
    assert struct.unpack("<hI", r.body) == (-6, 24)  # SG_ERR_HEADER at dt_us
    link.request(Op.MODEL_ACTIVATE, expect=Status.ERR_STATE)
    assert info(link)["active"] == 0xFF
    # arguments out of range
    link.request(Op.MODEL_READ, struct.pack("<BIH", 2, 0, 16), expect=Status.ERR_ARG)
    link.request(Op.MODEL_READ, struct.pack("<BIH", 0, SLOT_CAPACITY - 8, 16), expect=Status.ERR_ARG)


def test_active_model_survives_abandoned_upload_and_restart(flash, sgm, gestures):
    _, frames = gestures[0]
    n_classes = load_sgm(sgm).n_classes
    with start_posix_device(flash) as dev:
        link = RawLink(dev.url)
        assert upload(link, sgm) == (0, 1)
        link.request(Op.STREAM_START, bytes([StreamFlag.LOGITS]))
        before = stream(link, frames[:50], n_classes)
        # an upload into the other slot, abandoned halfway (link lost)
        assert struct.unpack("<BI", begin(link, sgm).body) == (1, 0)
        send_data(link, sgm, 0, len(sgm) // 2)
        link.close()
        link = RawLink(dev.url)
        i = info(link)
        assert i["active"] == 0 and [s["state"] for s in i["slots"]] == [1, 0]
        link.request(Op.STREAM_START, bytes([StreamFlag.LOGITS]))
        assert_same(stream(link, frames[:50], n_classes), before, "after an abandoned upload")
        # RESET: the application restarts, RAM state (the upload's resume point) is lost
        link.request(Op.RESET)
        assert struct.unpack("<BI", begin(link, sgm).body) == (1, 0)
        send_data(link, sgm, 0, len(sgm) // 3)
        link.close()
    # the device process stops mid-upload; a new one on the same flash serves the model
    with start_posix_device(flash) as dev:
        link = RawLink(dev.url)
        i = info(link)
        assert i["active"] == 0
        assert i["slots"][0] == {"state": 1, "generation": 1, "size": len(sgm), "crc": zlib.crc32(sgm)}
        assert i["slots"][1]["state"] == 0
        link.request(Op.STREAM_START, bytes([StreamFlag.LOGITS]))
        assert_same(stream(link, frames[:50], n_classes), before, "after a restart")
        link.close()


def test_stream_matches_reference(link, sgm, gestures):
    m = load_sgm(sgm)
    upload(link, sgm)
    for label, frames in gestures:
        r = intref.run(m, frames[:, None])
        want = r.logits[:, 0]
        t = len(frames)
        warm = int(np.floor(WARMUP * t))
        b = link.request(Op.STREAM_START, bytes([StreamFlag.LOGITS])).body
        assert struct.unpack("<HHHHI", b) == (m.n_classes, *m.input_shape, m.dt_us)
        link.request(Op.SCORE_FROM, struct.pack("<I", warm))
        got = stream(link, frames, m.n_classes)
        assert_same(got, want, f"gesture {label} ({t} steps)")
        b = link.request(Op.PREDICT).body
        step, pred = struct.unpack_from("<Ih", b)
        scores = np.frombuffer(b[6:], "<i8")
        want_scores = intref.scores(r.logits, np.array([t]), WARMUP)[0]
        assert step == t
        assert scores.tolist() == want_scores.tolist()
        assert pred == int(want_scores.argmax())
        s = stats(link)
        assert s["steps"] == t and s["events_in"] == int(frames.sum())
        assert s["synops"] == int(r.synops.sum())
        assert s["spikes"] == [int(sp.sum()) for sp in r.spikes]


def test_stream_without_logits_and_bad_blocks(link, sgm, gestures):
    m = load_sgm(sgm)
    _, frames = gestures[1]
    upload(link, sgm)
    link.request(Op.STREAM_STEPS, step_block(frames[0]), expect=Status.ERR_STATE)  # before STREAM_START
    link.request(Op.STREAM_START, b"\0")
    r = link.request(Op.STREAM_STEPS, step_block(frames[0]) + step_block(frames[1]))
    assert r.body == struct.pack("<IH", 2, 2)  # no logits without the flag
    n_in = int(np.prod(m.input_shape))
    # an index past the input (first pair, then by delta), an index_delta 0 after the first
    # pair, a count of 0 or 65536, a block cut short (in a pair, in a varint), a varint
    # beyond 32 bits (by value, by length): ERR_ARG, and none of the frame's steps run
    ok = step_block(frames[2])
    for payload in (ok + varint(1) + varint(n_in) + varint(1),
                    ok + varint(2) + varint(1) + varint(1) + varint(n_in - 1) + varint(1),
                    ok + varint(2) + varint(5) + varint(1) + varint(0) + varint(1),
                    ok + varint(1) + varint(5) + varint(0),
                    ok + varint(1) + varint(5) + varint(65536),
                    ok + varint(2) + varint(5) + varint(1),
                    ok + varint(1) + varint(5),
                    ok + varint(1) + varint(5) + b"\x80",
                    ok + varint(1) + b"\x81\x80\x80\x80\x10" + varint(1),
                    ok + varint(1) + b"\x81\x80\x80\x80\x80\x00" + varint(1)):
        link.request(Op.STREAM_STEPS, payload, expect=Status.ERR_ARG)
    s = stats(link)
    assert s["steps"] == 2 and s["events_in"] == int(frames[:2].sum())
    # the last input with the largest count, a first delta of 0 (input 0), a 5-byte varint
    # within 32 bits are fine; empty steps cost one byte each
    r = link.request(Op.STREAM_STEPS, varint(1) + varint(n_in - 1) + varint(65535) + b"\0\0"
                     + varint(2) + varint(0) + varint(3) + b"\x82\x80\x80\x80\x00" + varint(4))
    assert r.body == struct.pack("<IH", 6, 4)
    assert stats(link)["events_in"] == int(frames[:2].sum()) + 65535 + 3 + 4


def test_bad_crc_dropped_and_resend_answered_from_cache(link, sgm, gestures):
    m = load_sgm(sgm)
    _, frames = gestures[2]
    upload(link, sgm)
    dropped = stats(link)["frames_dropped"]
    good = frame(Op.STATS, 200)
    bad = bytearray(packet(Op.STATS, 201))
    bad[-1] ^= 0x40  # CRC
    link.send(cobs.encode(bytes(bad)) + b"\0" + b"\x05\x01\x02\0")  # bad CRC, then a COBS error
    link.send(good)
    r = link.recv()  # the first answer is the good frame's: the bad ones got none
    assert (r.op, r.seq) == (Op.STATS | 0x80, 200)
    link.seq = 200
    assert stats(link)["frames_dropped"] == dropped + 2
    # exactly once: a resent STREAM_STEPS gets the stored reply and runs no step again
    link.request(Op.STREAM_START, bytes([StreamFlag.LOGITS]))
    blocks = [step_block(f) for f in frames[:10]]
    k = max(k for k in range(1, 11) if sum(map(len, blocks[:k])) <= MAX_PAYLOAD)
    payload = b"".join(blocks[:k])
    link.seq += 1
    req = frame(Op.STREAM_STEPS, link.seq, payload)
    link.send(req)
    first = link.recv()
    link.send(req)
    again = link.recv()
    assert again.raw == first.raw
    assert struct.unpack_from("<IH", first.body) == (k, k)
    assert stats(link)["steps"] == k
    want = intref.run(m, frames[:k, None]).logits[:, 0]
    assert_same(np.frombuffer(first.body[6:], "<i4").reshape(k, m.n_classes), want, f"first {k} steps")
    # HELLO clears the memory: the same seq runs again after it
    link.request(Op.HELLO, struct.pack("<H", 1))
    link.send(frame(Op.STREAM_STEPS, link.seq - 1, payload))
    r = link.recv()
    assert r.status == Status.OK and struct.unpack_from("<IH", r.body) == (2 * k, k)


def test_pty(tmp_path):
    serial = pytest.importorskip("serial")
    with start_posix_device(tmp_path / "flash.bin", tcp_port=None, pty=True) as dev:
        assert dev.url.startswith("/dev/")
        port = serial.serial_for_url(dev.url, baudrate=115200, timeout=REPLY_TIMEOUT)  # the device's boot rate
        try:
            port.write(b"\0" + frame(Op.HELLO, 1, struct.pack("<H", 1)))
            raw = port.read_until(b"\0")
            p = cobs.decode(raw[:-1])
            assert p[:2] == bytes([Op.HELLO | 0x80, 1]) and p[4] == 0 and b"posix" in p
        finally:
            port.close()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        start_posix_device(tmp_path / "f.bin", tcp_port=0, pty=True)
    wrong = tmp_path / "small.bin"
    wrong.write_bytes(b"\xff" * 1000)
    with pytest.raises(ValueError, match="4194304"):
        start_posix_device(wrong)
    with pytest.raises(PosixDeviceError, match="cannot use"):
        start_posix_device(tmp_path / "no-such-dir" / "f.bin")


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None, reason="needs gcc and make")
def test_c_unit_tests(tmp_path):
    """firmware/tests/test_proto.c (COBS vectors, frame checks, handlers on a RAM flash)
    under ASan + UBSan, through `make test-posix`."""
    r = subprocess.run(["make", "-s", "-f", "posix.mk", "test-posix", f"POSIX_B={tmp_path / 'posix'}"],
                       cwd=FIRMWARE, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 failures" in r.stdout
