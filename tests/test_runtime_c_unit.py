# SPDX-License-Identifier: MIT
"""Builds the C runtime (runtime_c/) and runs its C unit tests, so `make test` covers them.

Golden vectors come from the Python integer reference (runtime_c/tests/gen_golden.py);
the C test program compares every step bit-exactly and prints the first difference.
Each build target is its own test. The cross builds FAIL (never skip) when their
toolchain is missing: install them with
  apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
      qemu-user-static gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm \
      clang libclang-rt-14-dev
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "runtime_c"
PACKAGES = {
    "gcc": "gcc",
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
    "qemu-aarch64-static": "qemu-user-static",
    "arm-none-eabi-gcc": "gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "clang": "clang libclang-rt-14-dev",
    "qemu-system-arm": "qemu-system-arm",
}


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pkgs = " ".join(PACKAGES[t] for t in missing)
        pytest.fail(f"{', '.join(missing)} not installed: apt-get install -y --no-install-recommends {pkgs}")


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    """A private build directory with the golden data generated once."""
    need("gcc")
    b = tmp_path_factory.mktemp("runtime_c") / "build"
    make(b, "golden")
    return b


def make(b: Path, *targets: str, timeout: int = 600) -> str:
    cmd = ["make", "--no-print-directory", "-C", str(RUNTIME), f"B={b}", f"PYTHON={sys.executable}", *targets]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    out = p.stdout + p.stderr
    if p.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({p.returncode}):\n{out[-6000:]}")
    return out


def assert_all_pass(out: str) -> None:
    assert " 0 failures" in out, out[-4000:]


def test_host_golden_and_rejection(build_dir):
    assert_all_pass(make(build_dir, "test-host"))
    assert (build_dir / "host" / "libsgrt.a").is_file() and (build_dir / "host" / "libsgrt.so").is_file()


def test_asan_ubsan(build_dir):
    assert_all_pass(make(build_dir, "test-asan"))


def test_no_heap_or_stdio_in_runtime(build_dir):
    assert "check-nomalloc: no" in make(build_dir, "check-nomalloc")


def test_aarch64_under_qemu(build_dir):
    need("aarch64-linux-gnu-gcc", "qemu-aarch64-static")
    assert_all_pass(make(build_dir, "test-aarch64"))


def test_cortexm4_build_size_and_no_heap(build_dir):
    need("arm-none-eabi-gcc")
    make(build_dir, "cortexm4")
    out = make(build_dir, "check-nomalloc")
    assert "cortexm4" not in out.split("check-nomalloc:")[0]
    objs = sorted(str(p) for p in (build_dir / "cortexm4").rglob("*.o"))  # src/ is split into folders
    assert objs
    size = subprocess.run(["arm-none-eabi-size", "-t", *objs],
                          capture_output=True, text=True, check=True).stdout
    total = int(size.strip().splitlines()[-1].split()[0])
    # code-size budget for the whole runtime on Cortex-M4: 24 KiB for SpikingGamma + imported
    # int8 networks, 8 KiB more for the layered spiking networks (.sgm version 3)
    assert 0 < total < 32 * 1024, size


def test_cortexm4_under_qemu(build_dir):
    """The same golden and rejection tests on a Cortex-M4F (QEMU mps2-an386, semihosting)."""
    need("arm-none-eabi-gcc", "qemu-system-arm")
    assert_all_pass(make(build_dir, "test-cortexm4"))


@pytest.mark.slow
def test_fuzz_loader_smoke(build_dir):
    need("clang")
    make(build_dir, "fuzz")
    corpus = build_dir / "fuzz" / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for f in (build_dir / "golden").glob("*.sgm"):
        shutil.copy(f, corpus)
    p = subprocess.run([str(build_dir / "fuzz" / "fuzz_loader"), "-max_total_time=10", "-print_final_stats=1",
                        f"-artifact_prefix={build_dir}/fuzz/", str(corpus)],
                       capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stderr[-4000:]


# ------------------------------------------------------------------ structure (issue 12)


def test_bootloader_links_only_crc_and_status(tmp_path):
    """SG_CRC_SRCS, what the bootloader links, is the CRC and the status names alone: a
    program calling sg_crc32 and sg_status_str builds from them and nothing else."""
    need("gcc")
    from pysg._build_runtime import runtime_sources

    srcs = runtime_sources("SG_CRC_SRCS")
    assert sorted(Path(s).name for s in srcs) == ["sg_crc32.c", "sg_status.c"]
    main = tmp_path / "crc_main.c"
    main.write_text('#include <stdio.h>\n#include "sg_runtime.h"\n'
                    'int main(void) { static const uint8_t s[] = "123456789";\n'
                    '  printf("%08x %s\\n", (unsigned)sg_crc32(0, s, 9), sg_status_str(SG_ERR_CRC));\n'
                    '  return 0; }\n')
    exe = tmp_path / "crc"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic",
                    *(f"-I{d}" for d in runtime_sources("SG_INC_DIRS")), str(main), *srcs, "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    assert out.startswith("cbf43926 SG_ERR_CRC"), out


def test_kind_dispatch_only_in_the_engines():
    """The shared code (core/, load/, host/) never tests a model kind or reads a kind's
    views or state: it calls through the engine table (core/sg_engines.c holds the one
    version lookup)."""
    patterns = [r"format_version\s*[!=]=", r"\bnet\.(gamma|qnet)\b", r"\bstate\.(gamma|qnet)\b",
                r"\bSG_Q?KIND_\w+", r"\bSG_L[12]_\w+"]
    bad = []
    for path in sorted((RUNTIME / "src").rglob("*.[ch]")):
        rel = path.relative_to(RUNTIME / "src").as_posix()
        if rel.startswith("engines/") or rel == "core/sg_engines.c":
            continue
        text = path.read_text(encoding="utf-8")
        bad += [(rel, p) for p in patterns if re.search(p, text)]
    assert not bad, bad


def test_runtime_sources_stay_small():
    """Rooms one can hold in one's head: no runtime source file over 500 lines."""
    long = {p.relative_to(RUNTIME).as_posix(): n for p in (RUNTIME / "src").rglob("*.[ch]")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert not long, long
