# SPDX-License-Identifier: MIT
"""The SpikingGamma patch-conv kernels (stride = kernel, padding 0; SG_FLAG_PATCH, chosen
by the loader) against the generic conv kernel they replace: the runtime built with
-DSG_NO_PATCH (the flag never set, every conv through the tap search) passes the same
golden cases from pysg.intref, among them the patch-conv ones (conv_patch,
conv_patch_dense in runtime_c/tests/gen_golden.py), and test_runtime checks the flag is
set exactly where it should be in each build. The default build runs them in
test_runtime_c_unit.py; both equal the reference, so each other.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_runtime_c_unit import assert_all_pass, need

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "runtime_c"


def test_generic_conv_build_gives_the_golden_logits(tmp_path):
    need("gcc")
    b = tmp_path / "build"
    cmd = ["make", "--no-print-directory", "-C", str(RUNTIME), f"B={b}", f"PYTHON={sys.executable}",
           "CC=gcc -DSG_NO_PATCH", "golden", f"{b}/host/test_runtime"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    cases = (b / "golden" / "cases.txt").read_text().split()
    assert {"conv_patch", "conv_patch_dense"} <= set(cases)
    run = subprocess.run([str(b / "host" / "test_runtime"), str(b / "golden")], capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stdout[-3000:]
    assert_all_pass(run.stdout)
    assert f"({len(cases)} golden cases)" in run.stdout


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
