# SPDX-License-Identifier: MIT
"""Run the pysg firmware in QEMU (``qemu-system-arm -M mps2-an386``).

The bootloader is loaded with ``-kernel`` (it covers only the first 64 KB of flash,
so QEMU's reload of its images at each guest reset does not undo flash writes). The
rest of the flash (an application image, or a 4 MB flash dump saved by
:meth:`QemuDevice.power_cut`) is loaded into a staging area in RAM that the
bootloader copies to flash on a cold start only (firmware/boards/qemu-mps2-an386/
sg_board_mps2.h). The UART is a TCP server: connect with pyserial to
:attr:`QemuDevice.url`. The monitor is QMP on a unix socket.

    with start(app_image="firmware/build/qemu/app.img") as dev:
        port = serial.serial_for_url(dev.url)   # the device runs once connected
        ...
        dev.power_cut("flash.bin")              # stop, save flash, quit
    with start(flash_dump="flash.bin") as dev:  # boots from the saved flash
        ...
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from .image import bootctl_record, check_image
from .ops import IMAGE_HEADER_SIZE

PathLike = str | os.PathLike

REPO = pathlib.Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO / "firmware"
BUILD_DIR = FIRMWARE_DIR / "build" / "qemu"
QEMU_BIN = "qemu-system-arm"
BOARD_NAME = "qemu-mps2-an386"

START_TIMEOUT = 10.0      # seconds for QEMU to open its sockets
QMP_TIMEOUT = 10.0        # seconds for a monitor reply
QUIT_TIMEOUT = 5.0        # seconds for QEMU to exit after "quit", then it is killed


@dataclasses.dataclass(frozen=True)
class Region:
    addr: int
    size: int

    @property
    def end(self) -> int:
        return self.addr + self.size


@dataclasses.dataclass(frozen=True)
class QemuLayout:
    """The mps2-an386 flash layout (firmware/boards/qemu-mps2-an386/sg_board_mps2.c)."""

    flash_size: int = 0x400000
    sector: int = 0x1000
    boot: Region = Region(0x000000, 0x10000)
    boot_ctl: tuple[Region, Region] = (Region(0x010000, 0x1000), Region(0x011000, 0x1000))
    app_primary: Region = Region(0x020000, 0x80000)
    app_secondary: Region = Region(0x0A0000, 0x80000)
    app_backup: Region = Region(0x120000, 0x80000)
    model: tuple[Region, Region] = (Region(0x1A0000, 0x130000), Region(0x2D0000, 0x130000))
    staging: int = 0x21000000    # where the initial flash image is loaded
    noinit: int = 0x203FFF00     # sg_mps2_noinit: kept across warm resets
    cut_arg: int = 0x21FFFFF0    # fault injection: the flash operation to cut at

    @property
    def load_addr(self) -> int:
        return self.app_primary.addr + IMAGE_HEADER_SIZE


LAYOUT = QemuLayout()
WARM_MAGIC = 0x4D524157
CUT_MAGIC = 0x54554343


class QemuError(RuntimeError):
    """QEMU could not be started, or its monitor failed."""


@dataclasses.dataclass(frozen=True)
class NoInit:
    """The board's RAM block that survives warm resets (sg_mps2_noinit)."""

    warm: bool
    cut_at: int
    ops: int        # bootloader flash operations since the cold start
    cut_hit: bool   # the injected power cut happened (the CPU is stopped there)
    boots: int      # bootloader runs since the cold start


def build(targets: Sequence[str] = ("qemu",), *, jobs: int = 2) -> None:
    """Run ``make -C firmware TARGETS`` (raises subprocess.CalledProcessError on failure)."""
    subprocess.run(["make", "-C", str(FIRMWARE_DIR), f"-j{jobs}", *targets], check=True,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def compose_flash(boot: bytes, *, primary: bytes | None = None, secondary: bytes | None = None,
                  backup: bytes | None = None, boot_state: int | None = None,
                  boot_seq: int = 1, layout: QemuLayout = LAYOUT) -> bytes:
    """A 4 MB flash image: erased (0xFF) except the bootloader binary, the given
    application images and, with ``boot_state``, a boot-control record in sector 0."""
    if not boot or len(boot) > layout.boot.size:
        raise ValueError(f"bootloader binary of {len(boot)} bytes does not fit the "
                         f"{layout.boot.size}-byte boot region")
    flash = bytearray(b"\xff" * layout.flash_size)
    flash[:len(boot)] = boot
    for name, data, region in (("primary", primary, layout.app_primary),
                               ("secondary", secondary, layout.app_secondary),
                               ("backup", backup, layout.app_backup)):
        if data is None:
            continue
        if len(data) > region.size:
            raise ValueError(f"{name} image of {len(data)} bytes exceeds its {region.size}-byte region")
        flash[region.addr:region.addr + len(data)] = data
    if boot_state is not None:
        rec = bootctl_record(boot_state, boot_seq)
        flash[layout.boot_ctl[0].addr:layout.boot_ctl[0].addr + len(rec)] = rec
    return bytes(flash)


def region_bytes(flash: bytes, region: Region) -> bytes:
    """The bytes of ``region`` in a flash dump."""
    return bytes(flash[region.addr:region.end])


def image_version(flash: bytes, region: Region, layout: QemuLayout = LAYOUT) -> int | None:
    """The version of the valid image in ``region`` of a flash dump, None when invalid."""
    try:
        return check_image(region_bytes(flash, region), load_addr=layout.load_addr, board=BOARD_NAME,
                           max_size=region.size).version
    except ValueError:
        return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QemuDevice:
    """A running QEMU with the firmware; see :func:`start`."""

    def __init__(self, proc: subprocess.Popen, port: int, qmp_path: pathlib.Path,
                 workdir: pathlib.Path, own_workdir: bool, layout: QemuLayout) -> None:
        self.proc = proc
        self.port = port
        self.layout = layout
        self._qmp_path = qmp_path
        self._workdir = workdir
        self._own_workdir = own_workdir
        self._qmp: socket.socket | None = None
        self._qmp_buf = b""

    @property
    def url(self) -> str:
        """The UART as a pyserial URL. QEMU holds the guest until a client connects."""
        return f"socket://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ monitor
    def _qmp_connect(self) -> socket.socket:
        if self._qmp is not None:
            return self._qmp
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(QMP_TIMEOUT)
                s.connect(str(self._qmp_path))
                break
            except OSError as exc:
                s.close()
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise QemuError(f"cannot reach QEMU's monitor at {self._qmp_path}: {exc} "
                                    "(has a client connected to the UART? QEMU waits for one)") from exc
                time.sleep(0.05)
        self._qmp = s
        self._qmp_read()  # greeting
        self._qmp_send({"execute": "qmp_capabilities"})
        return s

    def _qmp_send(self, cmd: dict[str, Any]) -> Any:
        self._qmp_socket().sendall(json.dumps(cmd).encode() + b"\n")
        while True:
            msg = self._qmp_read()
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise QemuError(f"QMP {cmd['execute']}: {msg['error'].get('desc', msg['error'])}")

    def _qmp_socket(self) -> socket.socket:
        if self._qmp is None:
            raise QemuError("QMP is not connected")
        return self._qmp

    def _qmp_read(self) -> dict[str, Any]:
        while b"\n" not in self._qmp_buf:
            chunk = self._qmp_socket().recv(65536)
            if not chunk:
                raise QemuError("QEMU closed its monitor")
            self._qmp_buf += chunk
        line, self._qmp_buf = self._qmp_buf.split(b"\n", 1)
        return json.loads(line)

    def qmp(self, command: str, **arguments: Any) -> Any:
        """Run a QMP command and return its result."""
        self._qmp_connect()
        cmd: dict[str, Any] = {"execute": command}
        if arguments:
            cmd["arguments"] = arguments
        return self._qmp_send(cmd)

    def read_memory(self, addr: int, size: int) -> bytes:
        """Guest physical memory (through pmemsave into a file)."""
        path = self._workdir / f"mem-{addr:08x}-{size}.bin"
        self.qmp("pmemsave", val=addr, size=size, filename=str(path))
        data = path.read_bytes()
        path.unlink()
        return data

    def noinit(self) -> NoInit:
        """The board's warm-reset-surviving block (fault injection counters)."""
        warm, cut_at, ops, cut_hit, boots = struct.unpack("<5I", self.read_memory(self.layout.noinit, 20))
        return NoInit(warm=warm == WARM_MAGIC, cut_at=cut_at, ops=ops, cut_hit=cut_hit == CUT_MAGIC,
                      boots=boots)

    def wait_cut(self, timeout: float = 10.0, poll: float = 0.02) -> bool:
        """Wait until the injected power cut has happened; False when it did not in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.noinit().cut_hit:
                return True
            time.sleep(poll)
        return False

    def flash(self) -> bytes:
        """The whole flash as it is now."""
        return self.read_memory(0, self.layout.flash_size)

    # ------------------------------------------------------------------ life cycle
    def power_cut(self, path: PathLike) -> pathlib.Path:
        """Stop the CPU, save the 4 MB flash to ``path``, quit QEMU."""
        path = pathlib.Path(path).resolve()
        self.qmp("stop")
        self.qmp("pmemsave", val=0, size=self.layout.flash_size, filename=str(path))
        self.close()
        return path

    def close(self) -> None:
        """Quit QEMU (killed if it does not exit in QUIT_TIMEOUT) and remove temporary files."""
        if self.proc.poll() is None:
            try:
                self.qmp("quit")
            except (QemuError, OSError):
                pass
            try:
                self.proc.wait(QUIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        if self._own_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> QemuDevice:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start(*, boot_elf: PathLike | None = None, app_image: PathLike | None = None,
          flash_dump: PathLike | None = None, cut_at: int = 0, qemu: str = QEMU_BIN,
          workdir: PathLike | None = None, layout: QemuLayout = LAYOUT) -> QemuDevice:
    """Start QEMU with the bootloader and an initial flash.

    ``app_image`` (a firmware image from ``python -m pysg.device.image``) is placed in
    the primary region of an otherwise erased flash; ``flash_dump`` is a whole 4 MB
    flash (a :meth:`QemuDevice.power_cut` file, or :func:`compose_flash`); with neither,
    the flash beyond the bootloader is erased. ``cut_at`` > 0 needs the fault-injection
    bootloader (build/qemu/boot-inject.elf): its flash operation number ``cut_at`` is
    torn and the CPU stops (see :meth:`QemuDevice.wait_cut`).
    """
    if app_image is not None and flash_dump is not None:
        raise ValueError("give app_image or flash_dump, not both")
    boot = pathlib.Path(boot_elf) if boot_elf is not None else BUILD_DIR / "boot.elf"
    if not boot.is_file():
        raise FileNotFoundError(f"bootloader {boot} not found (run `make -C firmware qemu`)")
    if shutil.which(qemu) is None:
        raise QemuError(f"{qemu} not found (apt-get install qemu-system-arm)")
    own = workdir is None
    wd = pathlib.Path(tempfile.mkdtemp(prefix="pysg-qemu-")) if workdir is None else pathlib.Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    staging: pathlib.Path | None = None
    if flash_dump is not None:
        staging = pathlib.Path(flash_dump)
        if staging.stat().st_size != layout.flash_size:
            raise ValueError(f"flash dump {staging} is {staging.stat().st_size} bytes, "
                             f"not {layout.flash_size}")
    elif app_image is not None:
        img = pathlib.Path(app_image).read_bytes()
        check_image(img, load_addr=layout.load_addr, board=BOARD_NAME, max_size=layout.app_primary.size)
        # the staging area's first word must be non-zero: the bootloader's vectors go there
        boot_bin = boot.with_suffix(".bin")
        head = boot_bin.read_bytes() if boot_bin.is_file() else b"\x00\x00\x40\x20"
        staging = wd / "staging.bin"
        staging.write_bytes(compose_flash(head, primary=img, layout=layout))
    port = _free_port()
    qmp_path = wd / "qmp.sock"
    with contextlib.suppress(FileNotFoundError):
        qmp_path.unlink()
    args = [qemu, "-M", "mps2-an386", "-m", "16M", "-nodefaults", "-display", "none",
            "-qmp", f"unix:{qmp_path},server=on,wait=off",
            "-chardev", f"socket,id=s0,host=127.0.0.1,port={port},server=on,wait=on,nodelay=on",
            "-serial", "chardev:s0", "-kernel", str(boot)]
    if staging is not None:
        args += ["-device", f"loader,file={staging.resolve()},addr=0x{layout.staging:08x},force-raw=on"]
    if cut_at:
        args += ["-device", f"loader,addr=0x{layout.cut_arg:08x},data={cut_at},data-len=4"]
    with open(wd / "qemu.log", "wb") as log:  # QEMU keeps its own descriptor
        # own session: a terminal's Ctrl-C reaches Python only, which can still save flash
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    # QEMU blocks until a client connects to the UART and says so; a probe connection
    # would become that client (and lose what the guest prints), so read the log
    deadline = time.monotonic() + START_TIMEOUT
    while b"waiting for connection" not in (wd / "qemu.log").read_bytes():
        if proc.poll() is not None:
            raise QemuError(f"QEMU exited ({proc.returncode}): {(wd / 'qemu.log').read_text()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise QemuError(f"QEMU did not open its UART port {port} in {START_TIMEOUT} s")
        time.sleep(0.02)
    return QemuDevice(proc, port, qmp_path, wd, own, layout)
