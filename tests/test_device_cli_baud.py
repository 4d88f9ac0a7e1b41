# SPDX-License-Identifier: MIT
"""`--baud` end to end on a device that can change its rate: the POSIX emulated device on a
pseudo-terminal (the firmware application's SET_BAUD, the POSIX port's UART rate). The pty
has one termios for both ends, set by the host's pyserial; the device drops what crosses the
line while its own rate differs (a UART at another rate sees framing errors), so a host that
does not switch, or switches to the wrong rate, hears nothing. Truth: the protocol's bytes
(HELLO answered or not at each rate), the model file's bytes read back, zlib's CRC-32."""
from __future__ import annotations

import json
import struct
import zlib

import pytest

from pysg.cli import main
from pysg.device.ops import Op
from pysg.device.posix import start_posix_device
from pysg.device.protocol import decode_frame, encode_frame

serial = pytest.importorskip("serial")


@pytest.fixture
def pty_device(tmp_path):
    pytest.importorskip("pysg._sg_device", reason="the POSIX device extension is not built (pip install -e .)")
    with start_posix_device(tmp_path / "flash.bin", tcp_port=None, pty=True) as dev:
        yield dev


@pytest.fixture(scope="module")
def sgm(tmp_path_factory):
    from pysg.converters.sgm import export_network
    from pysg.model.network import Network
    from pysg.recipes import BUNDLED_MODEL

    p = tmp_path_factory.mktemp("baud") / "g.sgm"
    p.write_bytes(export_network(Network.load(BUNDLED_MODEL)))
    return p


def hello_at(url: str, baud: int, seq: int = 7) -> bool:
    """A HELLO from a fresh pyserial port at `baud`: answered (OK) or not."""
    port = serial.serial_for_url(url, baudrate=baud, timeout=0.4)
    try:
        port.reset_input_buffer()
        port.write(b"\0" + encode_frame(Op.HELLO, seq, struct.pack("<H", 1)))
        raw = port.read_until(b"\0")
        return raw.endswith(b"\0") and decode_frame(raw[:-1]).payload[0] == 0
    finally:
        port.close()


def cli_json(capsys, *argv) -> dict:
    rc = main(["--quiet", *map(str, argv), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out.splitlines()[-1])


def test_flash_switches_the_rate_end_to_end(pty_device, sgm, tmp_path, capsys):
    url = pty_device.url
    assert url.startswith("/dev/")
    assert "BAUD" in cli_json(capsys, "device", "info", "--port", url)["hello"]["caps"]
    # connect at 115200, SET_BAUD 921600 (the reply at 115200), the host switches its pyserial
    # rate, HELLO again at 921600, upload, read back, activate
    r = cli_json(capsys, "flash", sgm, "--port", url, "--baud", "921600")
    data = sgm.read_bytes()
    assert (r["slot"], r["file_bytes"], r["crc32"]) == (0, len(data), f"0x{zlib.crc32(data):08x}")
    # the device stays at 921600 (until a reset): nothing is heard at 115200 or 460800
    assert not hello_at(url, 115200) and not hello_at(url, 460800) and hello_at(url, 921600)
    r = cli_json(capsys, "device", "read-model", "-o", tmp_path / "back.sgm", "--port", url, "--baud", "921600")
    assert (tmp_path / "back.sgm").read_bytes() == data
    # a reset brings it back to its boot rate, and the host follows (Session.reset)
    assert cli_json(capsys, "device", "reset", "--port", url, "--baud", "921600")["reset"]
    assert hello_at(url, 115200) and not hello_at(url, 921600)


def test_a_host_that_does_not_switch_hears_nothing(pty_device):
    """SET_BAUD by hand: OK at the old rate; then HELLO unanswered until the host switches."""
    url = pty_device.url
    port = serial.serial_for_url(url, baudrate=115200, timeout=0.4)
    try:
        port.write(b"\0" + encode_frame(Op.SET_BAUD, 1, struct.pack("<I", 230400)))
        raw = port.read_until(b"\0")
        assert decode_frame(raw[:-1]).payload == b"\x00"  # OK, sent at 115200
        port.write(b"\0" + encode_frame(Op.HELLO, 2, struct.pack("<H", 1)))
        assert port.read_until(b"\0") == b""             # still at 115200: lost
        port.baudrate = 230400
        port.write(b"\0" + encode_frame(Op.HELLO, 3, struct.pack("<H", 1)))
        raw = port.read_until(b"\0")
        assert decode_frame(raw[:-1]).payload[0] == 0     # switched: answered
        # a rate the line cannot take is refused before anything changes
        port.write(b"\0" + encode_frame(Op.SET_BAUD, 4, struct.pack("<I", 123456)))
        raw = port.read_until(b"\0")
        assert decode_frame(raw[:-1]).payload[0] & 0xFF == 0x100 - 12  # ERR_UNSUPPORTED
    finally:
        port.close()
    assert hello_at(url, 230400)


def test_unsupported_rate_is_one_line(pty_device, capsys):
    rc = main(["device", "info", "--port", pty_device.url, "--baud", "123456"])
    err = capsys.readouterr().err
    assert rc == 2 and "SET_BAUD" in err and "ERR_UNSUPPORTED" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
