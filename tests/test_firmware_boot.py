# SPDX-License-Identifier: MIT
"""The bootloader and the QEMU board (firmware/boot, firmware/boards/qemu-mps2-an386).

Builds the firmware with make, boots it in qemu-system-arm -M mps2-an386 and checks:
the bootloader starts the test application (firmware/tests/boot_app) and the real one
(HELLO answered with raw frames built here with the `cobs` package and zlib.crc32); an
upgrade prepared in a flash image from Python (secondary + PENDING record) installs
the new version; a trial image that never confirms is reverted after a reset or a
power cut; power cuts injected at every flash operation of an upgrade and of a revert
(and pairs of cuts chosen with a seeded generator) always end on a valid, correct image.
Independent truth: the versions compiled into the test applications (build=), the
image bytes from objcopy, zlib.crc32, the `cobs` package.
"""
from __future__ import annotations

import dataclasses
import pathlib
import re
import shutil
import socket
import struct
import subprocess
import time
import zlib

import numpy as np
import pytest
import serial
from cobs import cobs

from pysg.device import image, qemu

B = qemu.BUILD_DIR
L = qemu.LAYOUT
IDLE, PENDING, BACKED_UP, TRIAL, REVERTING = range(5)
LINE = re.compile(rb"BOOTAPP v=([0-9a-f]{8}) state=(\d) confirmed=(\d) crc=([0-9a-f]{8}) build=([0-9a-f]{8})")
READ_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def fw() -> dict[str, bytes]:
    missing = [t for t in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: apt-get install -y --no-install-recommends "
                    "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
    qemu.build(["qemu"])
    # the real application once more as version 0.2.0, for an upgrade over the protocol
    qemu.build(["FW_B=build/v2", "FW_VERSION=0x000200", "build/v2/qemu/app.img"])
    files = {name: (B / f"{name}").read_bytes()
             for name in ("boot.bin", "testapp-v1.img", "testapp-v2.img", "testapp-v3.img", "app.img")}
    files["app-v2.img"] = (qemu.FIRMWARE_DIR / "build" / "v2" / "qemu" / "app.img").read_bytes()
    return files


@dataclasses.dataclass
class AppLine:
    version: int      # from the primary image header
    state: int
    confirmed: int
    build: int        # compiled into the running code


class Uart:
    """Line reader over the QEMU UART that also watches for an injected power cut."""

    def __init__(self, dev: qemu.QemuDevice) -> None:
        self.dev = dev
        # a plain socket: pyserial's socket:// close() sleeps 0.3 s, hundreds of times here
        self.sock = socket.create_connection(("127.0.0.1", dev.port), timeout=0.05)
        self.buf = b""

    def line(self, timeout: float = READ_TIMEOUT, stop_on_cut: bool = False) -> bytes | None:
        """The next line, or None when a cut happened (stop_on_cut) or nothing came."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if time.monotonic() > deadline:
                return None
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                chunk = b""
            self.buf += chunk
            if stop_on_cut and not chunk and self.dev.noinit().cut_hit:
                return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def app(self, timeout: float = READ_TIMEOUT, stop_on_cut: bool = False) -> AppLine | None:
        """The next BOOTAPP line (other lines skipped)."""
        while True:
            line = self.line(timeout, stop_on_cut)
            if line is None:
                return None
            m = LINE.fullmatch(line)
            if m:
                return AppLine(int(m[1], 16), int(m[2]), int(m[3]), int(m[5], 16))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


def flash_file(tmp: pathlib.Path, name: str, fw: dict[str, bytes], **kw: object) -> pathlib.Path:
    path = tmp / name
    path.write_bytes(qemu.compose_flash(fw["boot.bin"], **kw))  # type: ignore[arg-type]
    return path


def record(dump: bytes) -> tuple[int, int] | None:
    return image.newest_bootctl([qemu.region_bytes(dump, r) for r in L.boot_ctl])


def versions(dump: bytes) -> tuple[int | None, int | None, int | None]:
    return tuple(qemu.image_version(dump, r) for r in (L.app_primary, L.app_secondary, L.app_backup))


# ---------------------------------------------------------------------------- images
def test_image_header_matches_objcopy_and_zlib(fw: dict[str, bytes], tmp_path: pathlib.Path) -> None:
    raw = tmp_path / "v2.bin"
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", str(B / "testapp-v2.elf"), str(raw)], check=True)
    img = fw["testapp-v2.img"]
    head = image.check_image(img, load_addr=L.load_addr, board=qemu.BOARD_NAME)
    assert img[256:] == raw.read_bytes()
    assert head.crc == zlib.crc32(raw.read_bytes()) and head.size == raw.stat().st_size
    assert head.version == 0x000200 and head.load_addr == 0x20100
    assert struct.unpack_from("<I", img, 252)[0] == zlib.crc32(img[:252])
    # the binary's vector table: initial SP in RAM, reset handler in the image (Thumb)
    sp, pc = struct.unpack_from("<II", img, 256)
    assert 0x20000000 < sp <= 0x20400000 and L.load_addr < pc < L.load_addr + head.size and pc & 1


@pytest.mark.parametrize("offset, value, field", [
    (0, b"XGIM", "magic"), (4, b"\x00\x02", "header_size"), (6, b"\x02\x00", "header_version"),
    (30, b"x", "header_crc"), (300, b"\x55", "crc"), (16, b"\x00\x02\x02\x00", "load_addr"),
])
def test_image_errors_name_field_and_offset(fw: dict[str, bytes], offset: int, value: bytes, field: str) -> None:
    img = bytearray(fw["testapp-v1.img"])
    img[offset:offset + len(value)] = value
    if field not in ("header_crc", "crc"):  # keep the header CRC right so the field itself is reported
        struct.pack_into("<I", img, 252, zlib.crc32(bytes(img[:252])))
    with pytest.raises(image.ImageError) as err:
        image.check_image(bytes(img), load_addr=L.load_addr, board=qemu.BOARD_NAME)
    assert err.value.field == field
    assert err.value.offset == {"magic": 0, "header_size": 4, "header_version": 6, "header_crc": 252,
                                "crc": 12, "load_addr": 16}[field]


def test_image_cli_roundtrip(tmp_path: pathlib.Path) -> None:
    binary = bytes(np.random.default_rng(7).integers(0, 256, 1000, dtype=np.uint8))
    (tmp_path / "a.bin").write_bytes(binary)
    args = [str(tmp_path / "a.bin"), "--load-addr", "0x0800C100", "--version", "0x010203",
            "--board", "stm32f407-disco", "-o", str(tmp_path / "a.img")]
    assert image.main(args) == 0
    img = (tmp_path / "a.img").read_bytes()
    head = image.check_image(img, load_addr=0x0800C100, board="stm32f407-disco")
    assert (head.version_str, img[256:], head.crc) == ("1.2.3", binary, zlib.crc32(binary))
    with pytest.raises(image.ImageError, match="board"):
        image.check_image(img, board="qemu-mps2-an386")


def test_bootctl_record_newest_wins() -> None:
    a, b = image.bootctl_record(PENDING, 7), image.bootctl_record(TRIAL, 8)
    assert zlib.crc32(a[:12]) == struct.unpack_from("<I", a, 12)[0]
    assert image.newest_bootctl([a, b]) == (8, TRIAL)
    assert image.newest_bootctl([b[:8] + b"\xff" * 8, a]) == (7, PENDING)  # torn newer record
    wrap = image.bootctl_record(IDLE, 0)                                   # seq wrapped past 2^32 - 1
    assert image.newest_bootctl([image.bootctl_record(TRIAL, 0xFFFFFFFF), wrap]) == (0, IDLE)


# ---------------------------------------------------------------------------- booting
def test_bootloader_boots_test_app_and_warm_reset_keeps_flash(fw: dict[str, bytes]) -> None:
    with qemu.start(app_image=B / "testapp-v1.img") as dev:
        uart = Uart(dev)
        first = uart.app()
        assert first == AppLine(0x000100, IDLE, 1, 0x000100)
        assert uart.line() == b"CONFIRM ok" and uart.app() == first  # a no-op when IDLE
        uart.send(b"p")                       # PENDING with an empty secondary
        assert uart.line() == b"PENDING ok"
        uart.send(b"r")
        assert uart.line() == b"RESET"
        assert uart.app() == AppLine(0x000100, IDLE, 1, 0x000100)
        ni = dev.noinit()
        assert ni.warm and ni.boots == 2      # a warm reset: staging was not copied again
        dump = dev.flash()
        uart.close()
    # the bootloader found nothing to install and recorded IDLE after PENDING
    assert record(dump) == (2, IDLE)
    assert versions(dump) == (0x000100, None, None)


def test_board_clock_millis_and_micros_agree(fw: dict[str, bytes]) -> None:
    with qemu.start(app_image=B / "testapp-v1.img") as dev:
        uart = Uart(dev)
        uart.app()
        times = []
        for _ in range(3):
            uart.send(b"t")
            while True:
                line = uart.line()
                assert line is not None, "no TIME line"
                m = re.fullmatch(rb"TIME ms=([0-9a-f]{8}) us=([0-9a-f]{8})", line)
                if m:
                    times.append((int(m[1], 16), int(m[2], 16)))
                    break
            time.sleep(0.05)  # let the guest clock run between the reads
        uart.close()
    for ms, us in times:
        assert ms <= us // 1000 <= ms + 1, times   # micros read just after millis
    assert times[0][1] < times[1][1] < times[2][1], times


def test_real_app_answers_hello(fw: dict[str, bytes]) -> None:
    with qemu.start(app_image=B / "app.img") as dev:
        port = serial.serial_for_url(dev.url, timeout=READ_TIMEOUT)
        pkt = struct.pack("<BBHH", 0x01, 0x2A, 2, 1)
        port.write(b"\x00" + cobs.encode(pkt + struct.pack("<I", zlib.crc32(pkt))) + b"\x00")
        raw = port.read_until(b"\x00")
        port.close()
    assert raw.endswith(b"\x00"), f"no reply frame: {raw!r}"
    reply = cobs.decode(raw[:-1])
    op, seq, n = struct.unpack_from("<BBH", reply)
    assert (op, seq, len(reply)) == (0x81, 0x2A, n + 8)
    assert struct.unpack_from("<I", reply, 4 + n)[0] == zlib.crc32(reply[:4 + n])
    status, version, caps, max_payload = struct.unpack_from("<bHIH", reply, 4)
    dev_id = reply[13:21]
    fw_version, name_len = struct.unpack_from("<IB", reply, 21)
    assert (status, version) == (0, 1)
    assert caps & 0x4 and max_payload >= 64          # FIRMWARE capability on this board
    assert dev_id == b"SGQEMU\x00\x01"
    assert fw_version == image.parse_header(fw["app.img"]).version
    assert reply[26:26 + name_len] == b"qemu-mps2-an386"


class NoReply(Exception):
    pass


class RawClient:
    """Just enough of docs/PROTOCOL.md to drive the real firmware: frames built with the
    `cobs` package and zlib.crc32, not with pysg.device."""

    def __init__(self, url: str) -> None:
        self.port = serial.serial_for_url(url, timeout=READ_TIMEOUT)
        self.seq = 0
        self.port.write(b"\x00")

    def hello(self, tries: int = 10) -> bytes:
        """HELLO, resent as PROTOCOL.md 4 says: bytes that reach the UART during a
        reset are lost, so the first frame after FW_ACTIVATE may arrive cut."""
        self.port.timeout = 1.0
        try:
            for _ in range(tries - 1):
                self.port.write(b"\x00")
                try:
                    return self.request(0x01, struct.pack("<H", 1), same_seq=True)
                except NoReply:
                    continue
        finally:
            self.port.timeout = READ_TIMEOUT
        return self.request(0x01, struct.pack("<H", 1))

    def request(self, op: int, payload: bytes = b"", same_seq: bool = False) -> bytes:
        if not same_seq:
            self.seq = (self.seq + 1) & 0xFF
        pkt = struct.pack("<BBH", op, self.seq, len(payload)) + payload
        self.port.write(cobs.encode(pkt + struct.pack("<I", zlib.crc32(pkt))) + b"\x00")
        raw = self.port.read_until(b"\x00")
        if not raw:
            raise NoReply(f"no reply to op 0x{op:02x}")
        assert raw.endswith(b"\x00"), f"no reply to op 0x{op:02x}: {raw!r}"
        reply = cobs.decode(raw[:-1])
        rop, rseq, n = struct.unpack_from("<BBH", reply)
        assert (rop, rseq, len(reply)) == (op | 0x80, self.seq, n + 8)
        assert struct.unpack_from("<I", reply, 4 + n)[0] == zlib.crc32(reply[:4 + n])
        assert reply[4] == 0, f"op 0x{op:02x}: status {struct.unpack_from('<b', reply, 4)[0]}"
        return reply[5:4 + n]

    def fw_info(self) -> tuple[int, int, int, int]:
        """INFO's (fw_version, fw_crc, fw_confirmed, boot_state)."""
        return struct.unpack_from("<IIBB", self.request(0x02), 39)


def test_real_app_upgrades_itself_over_the_protocol(fw: dict[str, bytes]) -> None:
    new = fw["app-v2.img"]
    with qemu.start(app_image=B / "app.img") as dev:
        cli = RawClient(dev.url)
        hello = cli.hello()
        max_payload = struct.unpack_from("<H", hello, 6)[0]
        assert cli.fw_info() == (0x000100, image.parse_header(fw["app.img"]).crc, 1, IDLE)
        assert cli.request(0x20, struct.pack("<II", len(new), zlib.crc32(new))) == struct.pack("<I", 0)
        step = min(1024, max_payload - 4)
        for off in range(0, len(new), step):
            chunk = new[off:off + step]
            assert cli.request(0x21, struct.pack("<I", off) + chunk) == struct.pack("<I", off + len(chunk))
        assert cli.request(0x22) == struct.pack("<I", 0x000200)
        cli.request(0x23)                        # reply, then the bootloader installs it
        hello = cli.hello()
        assert struct.unpack_from("<I", hello, 16)[0] == 0x000200
        assert cli.fw_info() == (0x000200, image.parse_header(new).crc, 1, IDLE)
        cli.port.close()
        dump = dev.flash()
    assert versions(dump) == (0x000200, 0x000200, 0x000100)


def test_upgrade_from_prepared_flash(fw: dict[str, bytes], tmp_path: pathlib.Path) -> None:
    start = flash_file(tmp_path, "start.bin", fw, primary=fw["testapp-v1.img"],
                       secondary=fw["testapp-v2.img"], boot_state=PENDING)
    with qemu.start(flash_dump=start) as dev:
        uart = Uart(dev)
        assert uart.app() == AppLine(0x000200, TRIAL, 0, 0x000200)   # on trial
        assert uart.line() == b"CONFIRM ok"
        assert uart.app() == AppLine(0x000200, IDLE, 1, 0x000200)
        uart.close()
        dump_path = dev.power_cut(tmp_path / "after.bin")
    dump = dump_path.read_bytes()
    assert record(dump) == (4, IDLE)                          # BACKED_UP, TRIAL, IDLE written
    assert versions(dump) == (0x000200, 0x000200, 0x000100)   # the old image kept as backup
    with qemu.start(flash_dump=dump_path) as dev:              # cold start from the dump
        uart = Uart(dev)
        assert uart.app() == AppLine(0x000200, IDLE, 1, 0x000200)
        uart.close()


@pytest.mark.parametrize("how", ["reset", "power_cut"])
def test_unconfirmed_trial_is_reverted(fw: dict[str, bytes], tmp_path: pathlib.Path, how: str) -> None:
    start = flash_file(tmp_path, "start.bin", fw, primary=fw["testapp-v1.img"],
                       secondary=fw["testapp-v3.img"], boot_state=PENDING)
    with qemu.start(flash_dump=start) as dev:
        uart = Uart(dev)
        assert uart.app() == AppLine(0x000300, TRIAL, 0, 0x000300)
        if how == "reset":
            uart.send(b"r")
            assert uart.line() == b"RESET"
            assert uart.app() == AppLine(0x000100, IDLE, 1, 0x000100)
            uart.close()
            return
        uart.close()
        cut = dev.power_cut(tmp_path / "cut.bin")
    assert record(cut.read_bytes()) == (3, TRIAL)
    with qemu.start(flash_dump=cut) as dev:
        uart = Uart(dev)
        assert uart.app() == AppLine(0x000100, IDLE, 1, 0x000100)
        uart.close()
        dump = dev.flash()
    assert versions(dump) == (0x000100, 0x000300, 0x000100)


def test_invalid_primary_is_restored_from_backup(fw: dict[str, bytes], tmp_path: pathlib.Path) -> None:
    broken = bytearray(fw["testapp-v2.img"])
    broken[600] ^= 0x01                                        # binary CRC no longer matches
    start = flash_file(tmp_path, "start.bin", fw, primary=bytes(broken), backup=fw["testapp-v1.img"])
    with qemu.start(flash_dump=start) as dev:
        uart = Uart(dev)
        assert uart.app() == AppLine(0x000100, IDLE, 1, 0x000100)
        uart.close()
        assert versions(dev.flash())[0] == 0x000100


# ---------------------------------------------------------------------------- power cuts
def run_until_settled(start: pathlib.Path, tmp: pathlib.Path, cut_at: int, reset_trial: bool,
                      tag: str) -> tuple[pathlib.Path, bool, int]:
    """Boot ``start`` with a cut at flash operation ``cut_at`` (0: none). A trial image is
    reset once (reset_trial). Returns (flash dump, whether the cut happened, ops done)."""
    with qemu.start(boot_elf=B / "boot-inject.elf", flash_dump=start, cut_at=cut_at) as dev:
        uart = Uart(dev)
        seen = uart.app(stop_on_cut=True)
        if seen is not None and seen.state == TRIAL:
            if reset_trial:
                uart.send(b"r")
            seen = uart.app(stop_on_cut=True)  # after its confirmation, or the reverted image
        ni = dev.noinit()
        uart.close()
        if cut_at:
            assert ni.cut_hit or seen is not None, f"{tag}: neither a cut nor a boot"
        dump = dev.power_cut(tmp / f"{tag}.bin")
    return dump, ni.cut_hit, ni.ops


def settle(dump: pathlib.Path, reset_trial: bool, tag: str) -> AppLine:
    """Boot a flash dump without cuts until the device runs a confirmed image: a trial
    image is reset once (reset_trial) or waited for until it confirms itself."""
    with qemu.start(flash_dump=dump) as dev:
        uart = Uart(dev)
        line = uart.app()
        if line is not None and line.state == TRIAL:
            if reset_trial:
                uart.send(b"r")
            line = uart.app()
        uart.close()
    assert line is not None, f"{tag}: the device booted nothing"
    return line


SCENARIOS = {
    # name: (secondary image, reset a trial, the image the device must end on)
    "upgrade": ("testapp-v2.img", False, 0x000200),
    "revert": ("testapp-v3.img", True, 0x000100),
}


@pytest.mark.slow
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_power_cut_at_every_flash_operation(fw: dict[str, bytes], tmp_path: pathlib.Path,
                                            scenario: str) -> None:
    secondary, reset_trial, want = SCENARIOS[scenario]
    start = flash_file(tmp_path, "start.bin", fw, primary=fw["testapp-v1.img"],
                       secondary=fw[secondary], boot_state=PENDING)
    _, hit, total = run_until_settled(start, tmp_path, 0, reset_trial, "nocut")
    assert not hit and total >= 10, f"the bootloader did {total} flash operations"
    rng = np.random.default_rng(20261128)
    # every single cut, then pairs: a second cut while the first one is being recovered
    plans = [(k,) for k in range(1, total + 1)]
    plans += [(int(a), int(b)) for a, b in zip(rng.integers(1, total + 1, 8), rng.integers(1, total, 8))]
    failures = []
    for plan in plans:
        tag = "cut-" + "-".join(map(str, plan))
        dump = start
        for i, k in enumerate(plan):
            dump, hit, _ = run_until_settled(dump, tmp_path, k, reset_trial, f"{tag}-{i}")
            assert hit or i > 0, f"{tag}: the cut at operation {k} of {total} did not happen"
        end = settle(dump, reset_trial, tag)
        final = qemu.image_version(dump.read_bytes(), L.app_primary)
        if end != AppLine(want, IDLE, 1, want):
            failures.append((plan, end, final))
    print(f"\npower cuts ({scenario}): {len(plans)} trials, {len(plans) - len(failures)} ended on "
          f"v{want:06x}, {total} flash operations without a cut")
    assert not failures, failures


# ---------------------------------------------------------------------------- STM32F4 (built, not run)
def test_stm32f4_builds_and_links_without_heap(fw: dict[str, bytes]) -> None:
    qemu.build(["stm32f4", "check-nomalloc"])
    sb = qemu.FIRMWARE_DIR / "build" / "stm32f4"
    img = (sb / "app.img").read_bytes()
    head = image.check_image(img, load_addr=0x0800C100, board="stm32f407-disco", max_size=0x34000)
    sp, pc = struct.unpack_from("<II", img, 256)
    assert 0x20000000 < sp <= 0x20020000 and 0x0800C100 < pc < 0x0800C100 + head.size and pc & 1
    boot = (sb / "boot.bin").read_bytes()
    assert len(boot) <= 0x4000                              # sector 0
    sp, pc = struct.unpack_from("<II", boot, 0)
    assert 0x20000000 < sp <= 0x20020000 and 0x08000000 < pc < 0x08000000 + len(boot) and pc & 1
