# SPDX-License-Identifier: MIT
"""The firmware's C-level checks that are not end-to-end tests: the protocol fuzzer
(libFuzzer + ASan/UBSan on the frame receiver and op handlers) for a short run, and
the per-board flash/RAM report within the boards' budgets."""
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
