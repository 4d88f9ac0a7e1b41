# SPDX-License-Identifier: MIT
"""The POSIX emulated device: the firmware application (firmware/app/) on the desktop,
compiled into `pysg._sg_device`, with flash in a file and the UART on a TCP socket or a
pseudo-terminal.

    python -m pysg.device.posix --flash FILE (--tcp PORT | --pty)

prints the URL to connect to (`socket://127.0.0.1:PORT` or `/dev/pts/N`) as its first
line on stdout, then serves the protocol (docs/PROTOCOL.md) until Ctrl-C / SIGTERM.
The flash file (4 MiB, created when missing) keeps the models across restarts; a RESET
request restarts the application inside the same process.

From Python, `start_posix_device(flash_path)` runs it as a subprocess and returns a
`PosixDevice` with its URL; `close()` (or leaving a `with` block) stops it.
"""
from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

FLASH_SIZE = 4 * 1024 * 1024    # sg_posix.h SG_POSIX_FLASH_SIZE
STARTUP_TIMEOUT = 20.0          # seconds to wait for the URL line
STOP_TIMEOUT = 5.0              # seconds between SIGTERM and SIGKILL
DEVICE_ENV = "PYSG_POSIX_DEVICE"  # path of a standalone sg_posix_device to run instead


class PosixDeviceError(RuntimeError):
    """The emulated device could not be started."""


@dataclass
class PosixDevice:
    """A running emulated device (subprocess). `url` is what pyserial's
    `serial_for_url` (and `pysg.device`) opens."""

    url: str
    process: subprocess.Popen
    flash_path: Path
    _closed: bool = field(default=False, repr=False)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self, timeout: float = STOP_TIMEOUT) -> int:
        """Stop the device (SIGTERM, then SIGKILL after `timeout` s); returns its exit status."""
        if not self._closed:
            self._closed = True
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
        return self.process.returncode

    def __enter__(self) -> "PosixDevice":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _argv(flash_path: os.PathLike | str, tcp_port: int | None, pty: bool) -> list[str]:
    if pty == (tcp_port is not None):
        raise ValueError("give exactly one of tcp_port (0 for any free port) or pty=True")
    if tcp_port is not None and not 0 <= int(tcp_port) <= 65535:
        raise ValueError(f"tcp_port {tcp_port} is not a port number (0..65535)")
    flash = Path(flash_path)
    if flash.exists() and flash.stat().st_size not in (0, FLASH_SIZE):
        raise ValueError(f"{flash}: a flash file must be empty or {FLASH_SIZE} bytes, "
                         f"not {flash.stat().st_size}")
    args = ["--flash", str(flash)]
    args += ["--pty"] if pty else ["--tcp", str(int(tcp_port))]
    return args


def start_posix_device(flash_path: os.PathLike | str, tcp_port: int | None = 0, *, pty: bool = False,
                       startup_timeout: float = STARTUP_TIMEOUT,
                       executable: os.PathLike | str | None = None) -> PosixDevice:
    """Run the emulated device in a subprocess (`python -m pysg.device.posix`) and wait
    for its URL. `tcp_port=0` picks a free port; `pty=True` (with `tcp_port=None`) uses a
    pseudo-terminal instead. `executable` (default: $PYSG_POSIX_DEVICE when set) runs a
    standalone build instead, e.g. the ASan one from `make -C firmware asan`."""
    args = _argv(flash_path, tcp_port, pty)
    executable = executable if executable is not None else os.environ.get(DEVICE_ENV) or None
    if executable is not None and not os.access(executable, os.X_OK):
        raise PosixDeviceError(f"{executable} is not an executable (build it with `make -C firmware posix`)")
    cmd = [os.fspath(executable)] if executable is not None else [sys.executable, "-m", "pysg.device.posix"]
    proc = subprocess.Popen([*cmd, *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = b""
    deadline = time.monotonic() + startup_timeout
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready = select.select([proc.stdout], [], [], max(left, 0))[0] if left > 0 else []
        chunk = os.read(proc.stdout.fileno(), 256) if ready else b""
        if not chunk:
            err = b""
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            err = proc.stderr.read() if proc.stderr else b""
            why = "timed out" if not ready else f"exited with status {proc.returncode}"
            raise PosixDeviceError(f"the emulated device ({' '.join(args)}) {why} before printing its URL: "
                                   f"{err.decode(errors='replace').strip()}")
        line += chunk
    return PosixDevice(url=line.decode().strip(), process=proc, flash_path=Path(flash_path))


def run_device(flash_path: os.PathLike | str, tcp_port: int | None = None, *, pty: bool = False) -> int:
    """Run the emulated device in this process until SIGINT/SIGTERM (prints the URL first)."""
    args = _argv(flash_path, tcp_port, pty)
    try:
        from pysg._sg_device import ffi, lib
    except ImportError as e:  # the extension is built by `pip install -e .`
        raise ImportError("pysg._sg_device is not built: run `pip install -e .` in the pysg checkout "
                          "(or `python pysg/_build_device.py`)") from e
    sys.stdout.flush()
    keep = [ffi.new("char[]", a.encode()) for a in ["pysg-posix-device", *args]]
    argv = ffi.new("char *[]", keep + [ffi.NULL])
    return int(lib.sg_posix_main(len(keep), argv))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pysg.device.posix",
                                description="Run the pysg emulated device (prints the URL to connect to).")
    p.add_argument("--flash", required=True, help="flash file (4 MiB, created when missing; keeps the models)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--tcp", type=int, metavar="PORT", help="serve on 127.0.0.1:PORT (0: any free port)")
    g.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal")
    a = p.parse_args(argv)
    try:
        return run_device(a.flash, a.tcp, pty=a.pty)
    except ValueError as e:
        p.error(str(e))
    return 2


if __name__ == "__main__":
    sys.exit(main())
