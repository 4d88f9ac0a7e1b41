# SPDX-License-Identifier: MIT
"""`pysg emulate`: run an emulated device and print the URL to connect to.

* default: the POSIX device (the firmware application compiled for the desktop,
  pysg.device.posix) on a TCP port (`--tcp PORT`, 0 = any free port) or a pty (`--pty`);
  `--flash FILE` keeps its models across runs (default: a temporary file).
* `--qemu`: the real firmware (bootloader + application) in qemu-system-arm
  (pysg.device.qemu), UART on a TCP port. `--flash FILE`: a 4 MB flash dump to boot from
  when it exists; the flash is saved back into it on Ctrl-C.

Runs until Ctrl-C (or SIGTERM). The URL line is the first line on stdout (flushed), so scripts can
read it.
"""
from __future__ import annotations

import signal
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

__all__ = ["run_emulator"]


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _wait_forever(alive) -> None:
    """Until Ctrl-C or SIGTERM (both end the device cleanly), or the device exits."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while alive():
            stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_emulator(*, qemu: bool = False, tcp_port: int | None = None, pty: bool = False,
                 flash: str | None = None) -> int:
    """Start the emulated device, print its URL, run until Ctrl-C; returns an exit status."""
    if qemu:
        return _run_qemu(tcp_port, pty, flash)
    from .posix import PosixDeviceError, start_posix_device

    tmp = None
    if flash is None:
        tmp = tempfile.TemporaryDirectory(prefix="pysg-emulate-")
        flash = str(Path(tmp.name) / "flash.bin")
    try:
        dev = start_posix_device(flash, None if pty else (tcp_port or 0), pty=pty)
    except PosixDeviceError as e:  # its message says what went wrong (a busy port, a locked flash, no build)
        raise ValueError(str(e)) from None
    with dev:
        print(dev.url, flush=True)
        print(f"pysg emulate: POSIX device, flash {flash}; connect with `pysg device info --port {dev.url}`; "
              f"Ctrl-C stops it", file=sys.stderr)
        _wait_forever(lambda: dev.alive)
        alive = dev.alive
    if tmp is not None:
        tmp.cleanup()
    if not alive:
        print(f"pysg emulate: the device exited with status {dev.process.returncode}", file=sys.stderr)
        return 1
    return 0


def _run_qemu(tcp_port: int | None, pty: bool, flash: str | None) -> int:
    from . import qemu as q

    if pty:
        raise ValueError("--pty is for the POSIX device; the QEMU firmware serves its UART on TCP")
    if tcp_port:
        raise ValueError("the QEMU firmware picks a free TCP port itself (give --tcp 0 or nothing)")
    app = q.BUILD_DIR / "app.img"
    if not app.is_file() or not (q.BUILD_DIR / "boot.elf").is_file():
        if not (q.FIRMWARE_DIR / "Makefile").is_file():
            raise ValueError("the QEMU firmware is built from a pysg source checkout (firmware/ is not part of an "
                             "installed package): in the checkout, `pip install -e .` and run `pysg emulate --qemu` "
                             "there")
        for tool, package in (("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi"),
                              ("make", "make"), (q.QEMU_BIN, "qemu-system-arm")):
            if shutil.which(tool) is None:
                raise ValueError(f"{tool} not found: the QEMU firmware needs it (apt-get install {package})")
        print("pysg emulate: building the QEMU firmware (make -C firmware qemu)", file=sys.stderr)
        try:
            q.build(("qemu",))
        except subprocess.CalledProcessError as e:
            tail = (e.stdout or b"").decode(errors="replace").strip().splitlines()[-5:]
            raise ValueError("building the QEMU firmware failed (make -C firmware qemu): " + " | ".join(tail)) from None
    dump = Path(flash) if flash else None
    kwargs = {"flash_dump": dump} if dump is not None and dump.is_file() else {"app_image": app}
    dev = q.start(**kwargs)
    try:
        print(dev.url, flush=True)
        print(f"pysg emulate: firmware in QEMU ({q.BOARD_NAME}){', flash ' + str(dump) if dump else ''}; the guest "
              f"starts when a client connects; Ctrl-C stops it", file=sys.stderr)
        _wait_forever(lambda: dev.proc.poll() is None)
        if dump is not None and dev.proc.poll() is None:
            dev.power_cut(dump)
            print(f"pysg emulate: flash saved to {dump}", file=sys.stderr)
        elif dump is not None:
            print(f"pysg emulate: QEMU had already exited (it receives the terminal's Ctrl-C too): "
                  f"flash not saved to {dump}", file=sys.stderr)
    finally:
        dev.close()
    return 0
