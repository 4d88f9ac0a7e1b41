# SPDX-License-Identifier: MIT
"""esptool-style device commands (`pysg device list|reset|stats|slots|activate|read-model`,
`--baud`, `pysg stream --speed`) against the POSIX emulated device (the firmware
application on the desktop). Truth: the model files' own bytes and zlib's CRC-32, the
frames' event counts, and the wall clock."""
from __future__ import annotations

import json
import time
import zlib

import numpy as np
import pytest

from pysg.cli import main
from pysg.converters.sgm import export_network
from pysg.device.client import Device
from pysg.device.posix import start_posix_device
from pysg.device.stream import Pacer
from pysg.io import read_events
from pysg.model.network import Network
from pysg.recipes import BUNDLED_MODEL
from tests.support.bundled import RECORDING


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two different .sgm files: the bundled model at 10 ms and at 20 ms."""
    d = tmp_path_factory.mktemp("models")
    net = Network.load(BUNDLED_MODEL)
    a, b = export_network(net), export_network(net.retarget_dt(20000))
    assert a != b
    (d / "a.sgm").write_bytes(a)
    (d / "b.sgm").write_bytes(b)
    return d / "a.sgm", d / "b.sgm"


@pytest.fixture
def device(tmp_path):
    with start_posix_device(tmp_path / "flash.bin") as dev:
        yield dev


def cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def cli_json(capsys, *argv) -> dict:
    rc, out, err = cli(capsys, *argv, "--json")
    assert rc == 0, err
    return json.loads(out)


def test_device_list(capsys, monkeypatch):
    from serial.tools import list_ports, list_ports_common

    got = cli_json(capsys, "device", "list")["ports"]
    assert [p["port"] for p in got] == sorted(p.device for p in list_ports.comports())
    # a USB CDC port as pyserial describes it, formatted by hand
    fake = list_ports_common.ListPortInfo("/dev/ttyACM7", skip_link_detection=True)
    fake.vid, fake.pid, fake.description, fake.serial_number = 0x0483, 0x5740, "STM32 Virtual ComPort", "12AB"
    bare = list_ports_common.ListPortInfo("/dev/ttyS0", skip_link_detection=True)
    monkeypatch.setattr(list_ports, "comports", lambda: [fake, bare])
    got = cli_json(capsys, "device", "list")["ports"]
    assert got[0] == {"port": "/dev/ttyACM7", "description": "STM32 Virtual ComPort", "vid_pid": "0483:5740",
                      "serial_number": "12AB", "manufacturer": None}
    assert got[1]["port"] == "/dev/ttyS0" and got[1]["vid_pid"] is None
    rc, out, _ = cli(capsys, "device", "list")
    assert rc == 0 and out.splitlines() == ["/dev/ttyACM7  STM32 Virtual ComPort  [0483:5740]", "/dev/ttyS0  -"]


def test_slots_read_model_activate_reset_stats(capsys, device, models, tmp_path):
    a, b = models
    url = device.url
    assert cli_json(capsys, "device", "slots", "--port", url)["slots"][0]["state"] == "empty"
    assert cli_json(capsys, "flash", a, "--port", url)["slot"] == 0
    assert cli_json(capsys, "flash", b, "--port", url)["slot"] == 1
    want = {"A": a.read_bytes(), "B": b.read_bytes()}
    slots = cli_json(capsys, "device", "slots", "--port", url)["slots"]
    assert [(s["slot"], s["state"], s["active"], s["generation"]) for s in slots] == \
        [("A", "valid", False, 1), ("B", "valid", True, 2)]
    for s in slots:
        assert s["file_bytes"] == len(want[s["slot"]]) and s["crc32"] == f"0x{zlib.crc32(want[s['slot']]):08x}"

    # read-model: the active slot by default, or --slot; byte-identical to the files flashed
    out = tmp_path / "active.sgm"
    r = cli_json(capsys, "device", "read-model", "-o", out, "--port", url)
    assert r["slot"] == "B" and out.read_bytes() == want["B"] and r["crc32"] == f"0x{zlib.crc32(want['B']):08x}"
    r = cli_json(capsys, "device", "read-model", "-o", tmp_path / "a.sgm", "--slot", "A", "--port", url)
    assert (tmp_path / "a.sgm").read_bytes() == want["A"] and r["file_bytes"] == len(want["A"])
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
    rc, _, err = cli(capsys, "device", "read-model", "-o", tmp_path / "no-dir" / "m.sgm", "--port", url)
    assert rc == 2 and "no-dir" in err and len(err.strip().splitlines()) == 1

    # activate A: a roll back; the device then runs A's model (its 10 ms step), B keeps its model
    r = cli_json(capsys, "device", "activate", "A", "--port", url)
    assert r["active"] == "A" and r["changed"] and r["generation"] == 1
    assert [(s["state"], s["active"], s["generation"]) for s in r["slots"]] == \
        [("valid", True, 1), ("valid", False, 2)]
    info = cli_json(capsys, "device", "info", "--port", url)
    assert info["info"]["active_slot"] == 0 and info["model"]["dt_us"] == 10000
    assert _selection_record(device.flash_path) == (0, 1, 2)  # slot A, its generation, the newest then
    # and forward again: B's model (20 ms) is still there
    r = cli_json(capsys, "device", "activate", "B", "--port", url)
    assert r["active"] == "B" and r["changed"] and r["generation"] == 2
    assert cli_json(capsys, "device", "info", "--port", url)["model"]["dt_us"] == 20000
    assert not cli_json(capsys, "device", "activate", "b", "--port", url)["changed"]
    rc, out, _ = cli(capsys, "device", "activate", "A", "--port", url)
    assert rc == 0 and out.splitlines()[0] == "posix: slot A active (generation 1); slot B keeps its model " \
                                              "(generation 2)"
    # the device refuses a slot that does not exist (ERR_ARG)
    with Device(url) as dev:
        from pysg.device.protocol import DeviceError

        with pytest.raises(DeviceError, match="ERR_ARG"):
            dev._cmd(__import__("pysg.device.ops", fromlist=["Op"]).Op.MODEL_SELECT, bytes([5]))

    # stats: the counters of the steps run, against the frames' own event counts
    with Device(url) as dev:
        before = dev.stats()
        rng = np.random.default_rng(1)
        frames = rng.integers(0, 3, size=(7, *dev.model_header().input_shape)).astype(np.uint8)
        dev.stream_frames(frames)
    st = cli_json(capsys, "device", "stats", "--port", url)
    assert st["steps"] - before.steps == 7
    assert st["events"] - before.events_in == int(frames.sum())
    assert len(st["spikes_per_stage"]) >= 1 and st["spikes"] == sum(st["spikes_per_stage"])
    assert st["frames_dropped"] == 0 and st["frames_ok"] > 0
    rc, out, _ = cli(capsys, "device", "stats", "--port", url)
    assert rc == 0 and f"{st['steps']} steps" in out

    # reset: the device comes back with the same active model (the choice is in flash)
    r = cli_json(capsys, "device", "reset", "--port", url)
    assert r["reset"] and r["hello"]["name"] == "posix"
    slots = cli_json(capsys, "device", "slots", "--port", url)["slots"]
    assert slots[0]["active"] and slots[0]["crc32"] == f"0x{zlib.crc32(want['A']):08x}"
    assert slots[1]["state"] == "valid" and slots[1]["crc32"] == f"0x{zlib.crc32(want['B']):08x}"
    # a new upload after the roll back goes to the slot not active (B) and wins (generation 3)
    r = cli_json(capsys, "flash", a, "--port", url)
    assert (r["slot"], r["generation"]) == (1, 3)
    slots = cli_json(capsys, "device", "slots", "--port", url)["slots"]
    assert [(s["active"], s["generation"]) for s in slots] == [(False, 1), (True, 3)]


def test_activate_refuses_an_empty_slot(capsys, device, models):
    url = device.url
    assert cli_json(capsys, "flash", models[0], "--port", url)["slot"] == 0
    rc, _, err = cli(capsys, "device", "activate", "B", "--port", url)
    assert rc == 2 and "slot B" in err and "no valid model" in err and "Traceback" not in err
    assert not cli_json(capsys, "device", "activate", "a", "--port", url)["changed"]
    with Device(url) as dev:
        from pysg.device.protocol import DeviceError

        with pytest.raises(DeviceError, match="ERR_SLOT"):  # the device refuses by itself too
            dev._cmd(__import__("pysg.device.ops", fromlist=["Op"]).Op.MODEL_SELECT, bytes([1]))


BOOTCTL_ADDR, SECTOR = 1 << 20, 4096   # firmware/boards/posix/sg_posix.h: after the two 512 KiB slots


def _selection_record(flash_path) -> tuple[int, int, int] | None:
    """(slot, generation, newest) of the boot-selection record that holds, decoded by hand from
    the flash file (docs/PROTOCOL.md 3.2: the boot-control record at the sector's start, u32
    magic "SGBC", u32 seq, u8 state, 3 zero bytes, u32 CRC-32; at byte 32 u32 magic "SGMS", u8
    slot, 3 zero bytes, u32 generation, u32 newest, u32 CRC-32 of the 16 bytes before it)."""
    import struct

    raw = flash_path.read_bytes()
    best = None
    for k in range(2):
        sec = raw[BOOTCTL_ADDR + k * SECTOR:BOOTCTL_ADDR + (k + 1) * SECTOR]
        magic, seq, _state, crc = struct.unpack_from("<II B 3x I", sec, 0)
        if magic != 0x43424753 or crc != zlib.crc32(sec[:12]):
            continue
        if best is None or ((seq - best[0]) & 0xFFFFFFFF) < 0x80000000:
            best = (seq, sec)
    if best is None:
        return None
    magic, slot, gen, newest, crc = struct.unpack_from("<I B 3x I I I", best[1], 32)
    if magic != 0x534D4753 or crc != zlib.crc32(best[1][32:48]):
        return None
    return slot, gen, newest


def test_baud(capsys, device):
    # the default rate works; the emulated device has no BAUD capability: one line, exit 1
    assert cli_json(capsys, "device", "info", "--port", device.url, "--baud", "115200")["hello"]["name"] == "posix"
    for argv in (("device", "stats"), ("device", "slots"), ("stream", str(RECORDING), "--window-ms", "500")):
        rc, out, err = cli(capsys, *argv, "--port", device.url, "--baud", "921600")
        assert rc == 2 and "BAUD" in err and "baud rate" in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_stream_speed_10(device, models):
    """--speed 10: the 26.7 s bundled recording takes 2.67 s +- 5 %."""
    ev = read_events(RECORDING).events
    duration = (int(ev["t"].max()) - int(ev["t"].min())) / 1e6
    assert 26.6 < duration < 26.8
    with Device(device.url) as dev:
        dev.upload_model(models[0].read_bytes())
        fast0 = time.monotonic()
        fast = list(dev.stream_events(ev, window_ms=500))
        fast_s = time.monotonic() - fast0
        assert fast_s < duration / 10 * 0.9, "the link is too slow here to measure pacing at --speed 10"
        t0 = time.monotonic()
        paced = list(dev.stream_events(ev, window_ms=500, speed=10))
        took = time.monotonic() - t0
    assert abs(took - duration / 10) <= 0.05 * duration / 10, took
    assert paced == fast  # pacing changes when, not what


@pytest.mark.slow
def test_stream_speed_1(device, models):
    """--speed 1: the 26.7 s bundled recording takes 26.7 s +- 5 %."""
    ev = read_events(RECORDING).events
    duration = (int(ev["t"].max()) - int(ev["t"].min())) / 1e6
    with Device(device.url) as dev:
        dev.upload_model(models[0].read_bytes())
        t0 = time.monotonic()
        rows = list(dev.stream_events(ev, window_ms=500, speed=1))
        took = time.monotonic() - t0
    assert abs(took - duration) <= 0.05 * duration and len(rows) == 54


def test_pacer_refuses_bad_speed(capsys, device):
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="speed"):
            Pacer(0, bad)
    for bad in ("0", "-1", "nan"):  # refused while parsing: one line, exit 2, before the file is read
        with pytest.raises(SystemExit) as e:
            main(["stream", str(RECORDING), "--port", device.url, "--speed", bad, "--window-ms", "500"])
        err = capsys.readouterr().err
        assert e.value.code == 2 and f"--speed: {bad}: give a value above 0" in err and len(err.splitlines()) == 1


def test_reconnect_after_set_baud_falls_back_to_the_boot_rate(monkeypatch):
    """After SET_BAUD a device that resets (firmware update, RESET, power) answers at its boot
    rate again: reconnect tries the rate in use, then the boot rate, and keeps the one that
    answered. A device still at the new rate (a lost link) keeps it."""
    from pysg.device.link import LinkError
    from pysg.device.session import Session

    device_rate = {"now": 115200}
    tried = []

    def connect(self, *, hello_retries=None):
        tried.append(self.baudrate)
        if self.baudrate != device_rate["now"]:
            raise LinkError(f"no HELLO at {self.baudrate}")
        return "hello"

    monkeypatch.setattr(Session, "connect", connect)
    s = Session("socket://unused", baudrate=115200)
    s.baudrate = 921600                      # what set_baud leaves
    assert s.reconnect(timeout=5) == "hello" and s.baudrate == 115200 and tried == [921600, 115200]
    s.baudrate, device_rate["now"], tried[:] = 921600, 921600, []
    assert s.reconnect(timeout=5) == "hello" and s.baudrate == 921600 and tried == [921600]


def test_power_cut_at_every_flash_operation_of_an_activate(tmp_path, models, monkeypatch):
    """MODEL_SELECT cut at each of its flash operations (the POSIX board's fault injection,
    SG_POSIX_CUT_AT: half the operation done, then the process ends as at a power cut).
    The device boots again with both models intact, on the model active before until the
    boot-control record (the commit, written last) is whole, then on the one selected; the
    served model computes the integer reference's logits."""
    import socket

    from pysg import intref
    from pysg.device.ops import Op
    from pysg.device.protocol import decode_frame, encode_frame
    from pysg.sgm import load_sgm

    flash = tmp_path / "flash.bin"
    files = {zlib.crc32(m.read_bytes()): m.read_bytes() for m in models}
    with start_posix_device(flash) as dev, Device(dev.url) as d:
        for m in models:
            d.upload_model(m.read_bytes())
        d.select_slot(0)  # rolled back: A active, a boot-selection record in flash; the cut activates B
    start = flash.read_bytes()
    outcome = []
    for k in range(1, 6):
        flash.write_bytes(start)
        monkeypatch.setenv("SG_POSIX_CUT_AT", str(k))
        dev = start_posix_device(flash)
        monkeypatch.delenv("SG_POSIX_CUT_AT")
        host, port = dev.url.removeprefix("socket://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"\x00" + encode_frame(Op.MODEL_SELECT, 1, bytes([1])))
            try:
                reply = s.recv(64)
            except OSError:
                reply = b""
        status = dev.process.wait(timeout=5) if not reply else dev.close()
        cut = status == 75
        if not cut:
            assert decode_frame(reply.split(b"\x00")[0]).payload[0] == 0  # OK: the activate completed
        dev.close()
        with start_posix_device(flash) as again, Device(again.url) as d:
            info = d.info()
            assert [s.valid for s in info.slots] == [True, True], f"cut {k}: a model was lost"
            assert {s.crc for s in info.slots} == set(files)
            outcome.append((cut, info.active_slot))
            model = load_sgm(files[info.slots[info.active_slot].crc])
            frames = np.random.default_rng(k).integers(0, 3, (6, *model.input_shape)).astype(np.uint8)
            np.testing.assert_array_equal(d.stream_frames(frames), intref.run(model, frames[:, None]).logits[:, 0])
    # erase, program the selection, program the boot-control record: three cuts on A, then done on B
    assert outcome == [(True, 0), (True, 0), (True, 0), (False, 1), (False, 1)], outcome
