# SPDX-License-Identifier: MIT
"""Real event-camera recordings from faery's source distribution (tests/data: Prophesee
EVT 2.0 Gen3, EVT 3.0 IMX636 crossing the 24-bit time wrap, DAT, DAVIS346 LZ4 AEDAT 4.0)
and aermanager's (test/data: two DVXplorer 320x240 AEDAT 4.0 recordings), fetched with
pip into a cache dir on first use (never committed)."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile

FAERY = "faery==0.7.1"
FILES = ("evt2.raw", "evt3.raw", "gen4.dat", "davis346.aedat4")
CACHE = pathlib.Path(os.environ.get("PYSG_TEST_CACHE", pathlib.Path.home() / ".cache" / "pysg-tests")) / "faery-0.7.1"


def fetch_real_recordings() -> pathlib.Path | str:
    """tests/data of the faery sdist, or the reason it could not be fetched."""
    data = CACHE / "data"
    if all((data / f).is_file() for f in FILES):
        return data
    with tempfile.TemporaryDirectory() as tmp:
        dest = pathlib.Path(tmp) / "dl"
        env = dict(os.environ, TMPDIR=tmp)
        # The sdist needs a Rust toolchain and crates.io just to prepare its
        # metadata; --no-clean keeps pip's unpacked copy when that step fails.
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-clean",
                               "--no-binary", "faery", FAERY, "-d", str(dest)],
                              capture_output=True, text=True, env=env, timeout=600)
        found = None
        for sdist in dest.glob("faery-*.tar.gz") if dest.exists() else []:
            with tarfile.open(sdist) as tar:
                tar.extractall(pathlib.Path(tmp) / "x", filter="data")
            found = next((pathlib.Path(tmp) / "x").glob("*/tests/data"), None)
        if found is None:
            found = next(pathlib.Path(tmp).glob("pip-download-*/faery*/tests/data"), None)
        if found is None or not all((found / f).is_file() for f in FILES):
            return f"pip could not fetch the {FAERY} sdist: {proc.stderr.strip().splitlines()[-1:]}"
        data.mkdir(parents=True, exist_ok=True)
        for f in FILES:
            shutil.copyfile(found / f, data / f)
    return data


AERMANAGER = "aermanager==0.3.0"
AER_FILES = {"dvxplorer_class1.aedat4": "test/data/class1/test.aedat4",
             "dvxplorer_class2.aedat4": "test/data/class2/data_sample.aedat4"}
AER_CACHE = CACHE.parent / "aermanager-0.3.0"


def fetch_aermanager_recordings() -> pathlib.Path | str:
    """The two DVXplorer recordings (AEDAT 4.0, 320x240) of the aermanager sdist's
    test/data, or the reason they could not be fetched (the wheel has no data)."""
    data = AER_CACHE / "data"
    if all((data / f).is_file() for f in AER_FILES):
        return data
    with tempfile.TemporaryDirectory() as tmp:
        dest = pathlib.Path(tmp) / "dl"
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                               AERMANAGER, "-d", str(dest)], capture_output=True, text=True,
                              env=dict(os.environ, TMPDIR=tmp), timeout=600)
        sdists = sorted(dest.glob("aermanager-*.tar.gz")) if dest.exists() else []
        if not sdists:
            return f"pip could not fetch the {AERMANAGER} sdist: {proc.stderr.strip().splitlines()[-1:]}"
        with tarfile.open(sdists[0]) as tar:
            tar.extractall(pathlib.Path(tmp) / "x", filter="data")
        root = next((pathlib.Path(tmp) / "x").glob("aermanager-*"), None)
        if root is None or not all((root / src).is_file() for src in AER_FILES.values()):
            return f"the {AERMANAGER} sdist has no {sorted(AER_FILES.values())}"
        data.mkdir(parents=True, exist_ok=True)
        for name, src in AER_FILES.items():
            shutil.copyfile(root / src, data / name)
    return data
