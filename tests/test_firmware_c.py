# SPDX-License-Identifier: MIT
"""The firmware's C-level checks that are not end-to-end tests: the protocol fuzzer
(libFuzzer + ASan/UBSan on the frame receiver and op handlers) for a short run, the
per-board flash/RAM report within the boards' budgets, and the one source list and
one board port every build shares."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"


def make(*args: str, timeout: int = 600) -> str:
    r = subprocess.run(["make", "--no-print-directory", "-C", str(FIRMWARE), f"PYTHON={sys.executable}", *args],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout + r.stderr


@pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang (libFuzzer)")
def test_protocol_fuzzer_smoke(tmp_path):
    out = make("fuzz-proto", "FUZZ_SECONDS=10", f"POSIX_B={tmp_path}")
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", out)
    assert runs is not None and int(runs.group(1)) > 1000, out[-2000:]


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
def test_device_builds_fit_their_boards():
    out = make("qemu", "stm32f4", "size")
    sizes = {m.group(1): (int(m.group(2)), int(m.group(3)))
             for m in re.finditer(r"build/(\S+)\.elf\s+flash\s+(\d+) B\s+RAM\s+(\d+) B", out)}
    assert set(sizes) == {"qemu/boot", "qemu/app", "stm32f4/boot", "stm32f4/app"}, out
    # STM32F407: the bootloader fits its 16 KB sector, the application its 208 KB primary
    # region, and static RAM stays below the 128 KB SRAM with room for the stack
    assert sizes["stm32f4/boot"][0] <= 16 * 1024 and sizes["stm32f4/app"][0] <= 208 * 1024 - 256
    assert sizes["stm32f4/app"][1] <= 112 * 1024 and sizes["stm32f4/boot"][1] <= 112 * 1024
    assert sizes["qemu/boot"][0] <= 64 * 1024


def _sources_mk(name: str) -> list[str]:
    """Variable `name` of firmware/sources.mk, paths relative to firmware/."""
    text = re.sub(r"\\\n", " ", (FIRMWARE / "sources.mk").read_text())
    m = re.search(rf"^{name}\s*:=([^#\n]*)", text, re.M)
    assert m is not None, f"firmware/sources.mk has no {name}"
    return m.group(1).split()


def test_one_source_list_names_every_application_file():
    """A C file in app/ that firmware/sources.mk does not list is built by none of the
    builds (Makefile, posix.mk, pysg/_build_device.py all take the list from there)."""
    listed = set(_sources_mk("SG_FW_APP_SRCS")) | set(_sources_mk("SG_FW_HDRS"))
    on_disk = {p.relative_to(FIRMWARE).as_posix() for p in (FIRMWARE / "app").glob("*.[ch]")}
    assert on_disk <= listed, sorted(on_disk - listed)


def test_one_qemu_board_port():
    """Every program run on QEMU mps2-an386 (firmware, the runtime's Cortex-M4 tests,
    bench/device_cost) links the one start-up file and memory map in the firmware's
    board folder: no other linker script or vector table exists in the repository."""
    root = FIRMWARE.parent
    dirs = ("firmware", "runtime_c", "bench", "tests", "tools")
    scripts = {p.relative_to(root).as_posix() for d in dirs for p in (root / d).glob("**/*.ld")
               if "build" not in p.relative_to(root).parts}
    assert all(s.startswith("firmware/boards/") for s in scripts), sorted(scripts)
    port = _sources_mk("SG_FW_MPS2_DIR")[0]
    assert {s for s in scripts if "mps2" in s} == {f"firmware/{port}/{n}" for n in
                                                  ("mps2_an386.ld", "boot.ld", "app.ld", "semihost.ld")}
    vectors = [p.relative_to(root).as_posix() for d in ("firmware", "runtime_c", "bench")
               for p in (root / d).glob("**/*.c") if '".vectors"' in p.read_text(errors="replace")]
    assert sorted(vectors) == ["firmware/boards/qemu-mps2-an386/startup.c", "firmware/boards/stm32f4/startup.c"]
    for user in ("runtime_c/Makefile", "bench/device_cost/Makefile"):
        assert "SG_FW_MPS2_STARTUP" in (root / user).read_text(), user
