# SPDX-License-Identifier: MIT
"""The SpikingGamma kernels' Cortex-M4 DSP paths (runtime_c/src/engines/gamma/
sg_gamma_neuron.c and sg_gamma_kernels.c under __ARM_FEATURE_DSP: the x of a neuron with
QADD, the K = 4 decay of small neurons with SMLABB / SMLATB, pairs of patch-conv inputs
with SMLABB) against the portable C that stays the reference, on QEMU mps2-an386:

- the portable build (-DSG_NO_DSP) passes the same golden tests as the DSP build
  (test_runtime_c_unit.py's test_cortexm4_under_qemu): both give the Python integer
  reference's logits at every step, so each other's;
- the two variants in one image, on states and constants at the edges of the DSP fast
  paths, give the same x and the same bucket decays of every neuron bit for bit;
- the DSP instructions are really in the DSP build and absent from the portable one.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_runtime_c_unit import assert_all_pass, need

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "runtime_c"
GAMMA = RUNTIME / "src" / "engines" / "gamma"
KERNELS = (GAMMA / "sg_gamma_kernels.c", GAMMA / "sg_gamma_neuron.c")  # synaptic side, neuron side
M4 = ["arm-none-eabi-gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-mcpu=cortex-m4", "-mthumb",
      "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Os", f"-I{RUNTIME / 'include'}"]
DSP_OPS = ("qadd", "qsub", "smmulr", "smlad", "smlabb", "smlatb")  # DSP-extension instructions
USED_OPS = {"qadd", "smlabb", "smlatb"}  # the ones the DSP paths use
RENAMED = ("sg_decay_stage", "sg_pool_index", "sg_scatter_dense", "sg_scatter_dense2", "sg_scatter", "sg_fanout",
           "sg_stage_x", "sg_patch_scatter")
QEMU = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none"]


def _mnemonics(obj: Path) -> set[str]:
    """Every instruction mnemonic of an object ("   4a:\tstr.w\tr3, [r8]" -> "str")."""
    out = subprocess.run(["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", str(obj)], capture_output=True,
                         text=True, check=True).stdout
    return {parts[1].split(".")[0].strip() for parts in (line.split("\t") for line in out.splitlines())
            if len(parts) >= 2 and parts[0].strip().endswith(":")}


def test_dsp_instructions_only_in_the_dsp_build(tmp_path):
    need("arm-none-eabi-gcc")
    dsp, port = set(), set()
    for src in KERNELS:
        d, p = tmp_path / f"dsp_{src.stem}.o", tmp_path / f"port_{src.stem}.o"
        subprocess.run([*M4, "-c", str(src), "-o", str(d)], check=True)
        subprocess.run([*M4, "-DSG_NO_DSP", "-c", str(src), "-o", str(p)], check=True)
        dsp |= _mnemonics(d)
        port |= _mnemonics(p)
    assert USED_OPS <= dsp
    assert not set(DSP_OPS) & port


def test_dsp_and_portable_kernels_agree_on_edge_states(tmp_path):
    """Both variants in one Cortex-M4 image (the portable one also with -DSG_NO_PATCH: its
    sg_scatter ignores the patch flag and searches the taps); 400 rounds of x (two runs each: all neurons,
    and from mid-channel) on K = 1..6, dense and conv stages, sums around +-2^31, every
    shift 0..62, and of the bucket decays (states at the +-2^14 bounds of the K = 4 SMLAxB
    path, near their neighbours, Q15 decays 0..32767), and of patch-conv scatters (every
    input of a stride = kernel conv, rows and columns no patch covers; and up to 16 inputs
    of one output position at once, counts on both sides of 2^15: against the generic conv
    kernel)."""
    need("arm-none-eabi-gcc", "qemu-system-arm")
    fw = ROOT / "firmware"
    port_dir = fw / "boards" / "qemu-mps2-an386"
    renames = [f"-D{n}=pt_{n[3:]}" for n in RENAMED]
    ports = [tmp_path / f"port_{src.stem}.o" for src in KERNELS]
    for src, port in zip(KERNELS, ports):
        subprocess.run([*M4, "-DSG_NO_DSP", "-DSG_NO_PATCH", *renames, "-c", str(src), "-o", str(port)], check=True)
    elf = tmp_path / "test_gamma_dsp.elf"
    subprocess.run([*M4, "-DSG_MPS2_NEWLIB_CRT0", f"-I{fw / 'boards'}", f"-I{port_dir}", "--specs=rdimon.specs",
                    f"-L{port_dir}", "-T", "semihost.ld", "-Wl,--gc-sections",
                    str(RUNTIME / "tests" / "test_gamma_dsp.c"), *map(str, KERNELS), str(port_dir / "startup.c"),
                    *map(str, ports), "-o", str(elf)], check=True)
    p = subprocess.run([*QEMU, "-semihosting-config", "enable=on,target=native,arg=test_gamma_dsp",
                        "-kernel", str(elf)], capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0 and "2800 checks, 0 failures" in p.stdout, p.stdout[-3000:] + p.stderr[-1000:]


def test_portable_build_gives_the_golden_logits_on_cortexm4(tmp_path):
    """The -DSG_NO_DSP runtime through the golden per-step logits on the M4 (the DSP
    build runs the same in test_runtime_c_unit.py): equal to the reference, so equal."""
    need("gcc", "arm-none-eabi-gcc", "qemu-system-arm")
    b = tmp_path / "build"
    cmd = ["make", "--no-print-directory", "-C", str(RUNTIME), f"B={b}", f"PYTHON={sys.executable}",
           "M4_CC=arm-none-eabi-gcc -DSG_NO_DSP", "golden", f"{b}/cortexm4/test_runtime.elf"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for src in KERNELS:
        assert not set(DSP_OPS) & _mnemonics(b / "cortexm4" / "engines" / "gamma" / f"{src.stem}.o")
    run = subprocess.run([*QEMU, "-semihosting-config", f"enable=on,target=native,arg=test_runtime,arg={b}/golden",
                          "-kernel", str(b / "cortexm4" / "test_runtime.elf")], capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:]
    assert_all_pass(run.stdout)
    assert "golden cases" in run.stdout


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
