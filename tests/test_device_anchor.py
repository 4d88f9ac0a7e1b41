# SPDX-License-Identifier: MIT
"""bench.device_anchor and bench.device_cost's CMSIS-NN kind, the parts that run without
QEMU or a CMSIS-NN checkout: where the CMSIS sources come from (a checkout, or a bare git
mirror checked out once into the cache), which model files the anchor takes, and the
one-line errors for wrong folders and models. The QEMU runs themselves are benchmarks
(BENCHMARKS.md, "The device anchor"), each checked bit for bit against the reference."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import device_anchor, device_cost
from pysg.converters.sgm import export_network
from pysg.model.network import Network
from pysg.recipes import BUNDLED_MODEL
from pysg.sgm import SgmQModel, load_sgm

ROOT = Path(__file__).resolve().parents[1]
NN = ("ARM-software/CMSIS-NN", "Include/arm_nnfunctions.h")


def _bare_mirror(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "src"
    for name, text in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(src)]
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    bare = tmp_path / "mirror.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(bare)], check=True)
    return bare


def test_bare_mirror_is_checked_out_once_into_the_cache(tmp_path):
    bare = _bare_mirror(tmp_path, {"Include/arm_nnfunctions.h": "/* api */\n", "Source/a.c": "int a;\n"})
    cache = tmp_path / "cache"
    cache.mkdir()
    got = device_cost.cmsis_checkout(bare, *NN, cache=cache)
    assert got.parent == cache and (got / "Include" / "arm_nnfunctions.h").read_text() == "/* api */\n"
    assert (got / "Source" / "a.c").is_file()
    (got / "Source" / "a.c").write_text("kept\n")  # a second call reuses the checkout
    assert device_cost.cmsis_checkout(bare, *NN, cache=cache) == got
    assert (got / "Source" / "a.c").read_text() == "kept\n"
    assert device_cost.cmsis_commit(bare) == subprocess.run(
        ["git", f"--git-dir={bare}", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def test_core_checkout_resolves_to_its_include_folder(tmp_path):
    inc = tmp_path / "CMSIS_6" / "CMSIS" / "Core" / "Include"
    inc.mkdir(parents=True)
    (inc / "cmsis_compiler.h").write_text("\n")
    assert device_cost.cmsis_checkout(tmp_path / "CMSIS_6", "ARM-software/CMSIS_6", "cmsis_compiler.h") == inc
    assert device_cost.cmsis_checkout(inc, "ARM-software/CMSIS_6", "cmsis_compiler.h") == inc


def test_wrong_folder_is_named(tmp_path):
    with pytest.raises(device_cost.BenchError, match=r"empty: not a checkout of ARM-software/CMSIS-NN "
                                                     r"\(no Include/arm_nnfunctions.h\)"):
        device_cost.cmsis_checkout(tmp_path / "empty", *NN)


def test_kind_cmsis_without_checkouts_exits_2():
    p = subprocess.run([sys.executable, "-m", "bench.device_cost", "--kind", "cmsis", "--model", "x.sgm"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 2 and "--kind cmsis needs --cmsis-nn DIR" in p.stderr, p.stderr


def test_make_cmsis_names_a_bad_checkout(tmp_path):
    p = subprocess.run(["make", "-s", "-C", str(ROOT / "bench" / "device_cost"), "cmsis", f"B={tmp_path}/b",
                        f"CMSIS_NN={tmp_path}", f"CMSIS_CORE={tmp_path}"], capture_output=True, text=True,
                       timeout=60, check=False)
    assert p.returncode != 0
    assert f"CMSIS_NN={tmp_path}: not a checkout of ARM-software/CMSIS-NN" in p.stderr, p.stderr


def test_anchor_takes_a_tflite_and_a_version2_sgm(tmp_path):
    """A .tflite is converted as the benches convert the baseline CNN (10 ms steps, a 200 ms
    window of 20 steps, the DVS128's sensor); a version 2 .sgm is taken as it is."""
    from tests.support.qnet_models import built_cnn

    tfl = tmp_path / "cnn.tflite"
    tfl.write_bytes(built_cnn())
    data = device_anchor.cnn_sgm(tfl, 10.0)
    m = load_sgm(data)
    assert isinstance(m, SgmQModel)
    assert (m.dt_us, m.sensor_size, m.input_shape) == (10_000, (128, 128), (32, 32, 4))
    assert [q.kind for q in m.layers] == [3, 3, 3, 5]  # conv x 3, fully connected (FORMAT.md 7.1)
    sgm = tmp_path / "cnn.sgm"
    sgm.write_bytes(data)
    assert device_anchor.cnn_sgm(sgm, 5.0) == data


@pytest.mark.parametrize("what", ["spiking", "garbage", "missing"])
def test_anchor_rejects_what_is_not_an_int8_cnn(tmp_path, what):
    path = tmp_path / "m.sgm"
    if what == "spiking":
        path.write_bytes(export_network(Network.load(BUNDLED_MODEL), dt_us=10_000))
    elif what == "garbage":
        path.write_bytes(b"not a model")
    want = {"spiking": "a SpikingGamma .sgm", "garbage": "not a readable .sgm", "missing": "no such file"}[what]
    with pytest.raises(device_anchor.AnchorError, match=want):
        device_anchor.cnn_sgm(path, 10.0)
    nn, core = tmp_path / "nn", tmp_path / "core"  # folders that pass the checkout check
    (nn / "Include").mkdir(parents=True)
    (nn / "Include" / "arm_nnfunctions.h").write_text("\n")
    core.mkdir()
    (core / "cmsis_compiler.h").write_text("\n")
    cmd = [sys.executable, "-m", "bench.device_anchor", "--cmsis-nn", str(nn), "--cmsis-core", str(core),
           "--model", str(path)]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1, p.stderr
    assert lines[0].startswith(f"device_anchor: --model {path}: ") and want in lines[0]
