# SPDX-License-Identifier: MIT
"""A plain `pip install .` (no extras) into a fresh virtual environment without the
system's site-packages runs every main command of a new user: synth, train, eval,
export, convert (a .tflite), inspect, run, info, plot, and emulate + flash + stream.
An import that setup.py does not declare fails here."""
from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
import venv

import pytest

from tests.support.qnet_models import built_cnn

ROOT = pathlib.Path(__file__).resolve().parent.parent
RECORDING = ROOT / "pysg" / "data" / "samples" / "user01_fluorescent.aedat"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """(pysg executable, its python, work dir) of `pip install <checkout>` in a new venv."""
    work = tmp_path_factory.mktemp("plain")
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    py = env_dir / "bin" / "python"
    src = work / "src"  # a copy without build products, as a fresh clone has
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.so", "__pycache__",
                                                             "*.egg-info", ".pytest_cache", ".hypothesis"))
    got = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(src)],
                         capture_output=True, text=True, timeout=1200)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
    return env_dir / "bin" / "pysg", py, work


def pysg(plain, *args, expect: int = 0, timeout: float = 600) -> str:
    exe, _, work = plain
    got = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=work, timeout=timeout)
    assert got.returncode == expect, f"pysg {' '.join(map(str, args))}: {got.stdout[-2000:]}{got.stderr[-2000:]}"
    return got.stdout


def test_no_extras_and_only_declared_packages(plain):
    _, py, _ = plain
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True,
                            check=True).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert "pysg" in names
    for absent in ("pytest", "hypothesis", "faery", "dv-processing", "tflite-micro", "ai-edge-litert", "torch"):
        assert absent not in names, f"{absent} came with a plain install"


def test_a_new_users_session(plain):
    _, _, work = plain
    data, model, sgm = work / "data", work / "m.npz", work / "m.sgm"
    pysg(plain, "--quiet", "synth", data, "--train-users", "1", "--test-users", "1", "--lightings-per-user", "1",
         "--seconds", "0.6", "--workers", "1")
    pysg(plain, "--quiet", "train", data, "-o", model, "--epochs", "1", "--history", work / "h.json")
    r = json.loads(pysg(plain, "eval", model, data, "--json"))
    assert r["n"] == 11 and 0 <= r["accuracy"] <= 1
    pysg(plain, "export", model, "-o", sgm)
    assert json.loads(pysg(plain, "inspect", sgm, "--json"))["format_version"] == 1
    (work / "cnn.tflite").write_bytes(built_cnn())
    pysg(plain, "convert", work / "cnn.tflite", "-o", work / "cnn.sgm", "--sensor", "128x128")
    assert json.loads(pysg(plain, "inspect", work / "cnn.sgm", "--json"))["format_version"] == 2
    for m in (sgm, work / "cnn.sgm"):
        out = json.loads(pysg(plain, "run", m, RECORDING, "--one-sample", "--json"))
        dt_us = json.loads(pysg(plain, "inspect", m, "--json"))["dt_us"]
        assert out["steps"] * dt_us > 20_000_000, out  # the whole recording (26.7 s), at the model's step
    info = json.loads(pysg(plain, "info", RECORDING, "--json"))
    assert (info["width"], info["height"], info["n_events"]) == (128, 128, 635843)
    pysg(plain, "plot", "events", data, "-o", work / "ev.png")
    pysg(plain, "plot", "curves", work / "h.json", "-o", work / "h.png")
    for png in ("ev.png", "h.png"):
        assert (work / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_emulate_flash_stream(plain):
    exe, _, work = plain
    emu = subprocess.Popen([str(exe), "emulate", "--tcp", "0", "--flash", str(work / "dev.bin")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=work)
    try:
        line = emu.stdout.readline()
        url = re.search(r"socket://\S+", line)
        assert url, f"emulate printed {line!r}; stderr {emu.stderr.read() if emu.poll() is not None else ''}"
        model = work / "flash.sgm"
        pysg(plain, "export", str(ROOT / "pysg" / "data" / "gesture_model.npz"), "-o", model)
        pysg(plain, "flash", "--port", url[0], model)
        start = time.monotonic()
        out = [json.loads(x) for x in pysg(plain, "stream", "--port", url[0], RECORDING, "--json").splitlines()
               if x.startswith("{")]
        assert time.monotonic() - start < 300
        # one row per labelled gesture of the recording (its labels CSV lies beside it)
        assert len(out) == 11 and all(len(o["scores"]) == 11 and "prediction_index" in o for o in out), out[:2]
    finally:
        emu.terminate()
        try:
            emu.wait(timeout=20)
        except subprocess.TimeoutExpired:
            emu.kill()


@pytest.mark.skipif(sys.platform != "linux", reason="venv layout of Linux")
def test_the_extensions_are_built_and_fresh(plain):
    _, py, work = plain
    got = subprocess.run([str(py), "-W", "error", "-c", "import pysg._native as n; n.require(); print(n.available())"],
                         capture_output=True, text=True, cwd=work, env={**os.environ, "PYTHONPATH": ""})
    assert got.returncode == 0 and got.stdout.strip() == "True", got.stderr[-2000:]
