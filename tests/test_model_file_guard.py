# SPDX-License-Identifier: MIT
"""`pysg inspect` and `pysg flash` read a model file through the size guard
(pysg.io.model_file, issue 14): /dev/zero, a 3 GB sparse file and a 3 GB file behind a
valid model header are refused before they are read whole. Each command runs in a child
process under a 1 GiB address-space limit (reading the file would fail with MemoryError,
a traceback, not exit 2) and reports its peak RSS (VmHWM)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pysg.converters.sgm import export_network
from pysg.model.network import Network
from pysg.recipes import BUNDLED_MODEL

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from pysg.cli import main
rc = main(sys.argv[1:])
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"rc": rc, "peak_kib": hwm}))
"""


def run_cli(*argv) -> tuple[int, int, list[str]]:
    out = subprocess.run([sys.executable, "-c", CHILD, *map(str, argv)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["rc"], r["peak_kib"], out.stderr.strip().splitlines()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("big")
    zeros = d / "zeros.sgm"
    with open(zeros, "wb") as f:                      # sparse: no byte of it is on disk
        f.truncate(3 * 10**9)
    sgm = export_network(Network.load(BUNDLED_MODEL))
    behind = d / "behind.sgm"
    with open(behind, "wb") as f:                     # a valid model, then 3 GB its header does not count
        f.write(sgm)
        f.truncate(3 * 10**9)
    from pysg.device.image import make_image

    image = make_image(b"\x5a" * 1000, 0x1000, 0x000100, "posix")   # a valid image, then 3 GB more
    behind_fw = d / "behind.img"
    with open(behind_fw, "wb") as f:
        f.write(image)
        f.truncate(3 * 10**9)
    return {"zeros": zeros, "behind": behind, "size": len(sgm), "behind_fw": behind_fw}


CASES = {
    "inspect /dev/zero": (["inspect", "/dev/zero"], "/dev/zero", "not a regular file and no .sgm header"),
    "inspect 3 GB of zeros": (["inspect", "{zeros}"], "{zeros}",
                              "byte offset 0 (magic): b'\\x00\\x00\\x00\\x00': neither an .sgm model"),
    "inspect 3 GB behind a model": (["inspect", "{behind}"], "{behind}",
                                    "byte offset {size}: 3000000000 bytes, more than the header's file_size {size}"),
    "flash /dev/zero": (["flash", "/dev/zero", "--port", "socket://127.0.0.1:9"], "/dev/zero",
                        "not a regular file and no .sgm header"),
    "flash 3 GB of zeros": (["flash", "{zeros}", "--port", "socket://127.0.0.1:9"], "{zeros}",
                            "neither an .sgm model"),
    "flash 3 GB behind a model": (["flash", "{behind}", "--port", "socket://127.0.0.1:9"], "{behind}",
                                  "more than the header's file_size {size}"),
    "flash --dt-ms, 3 GB of zeros": (["flash", "{zeros}", "--dt-ms", "5", "--port", "socket://127.0.0.1:9"],
                                     "{zeros}", "--dt-ms applies to a float .npz model"),
    "flash --firmware /dev/zero": (["flash", "--firmware", "/dev/zero", "--port", "socket://127.0.0.1:9"],
                                   "/dev/zero", "not a firmware image: magic 0x00000000 is not"),
    "flash --firmware 3 GB behind an image": (["flash", "--firmware", "{behind_fw}", "--port",
                                               "socket://127.0.0.1:9"], "{behind_fw}",
                                              "the file is longer than the 1000-byte binary its header announces"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_before_it_is_read_whole(files, case):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    argv, name, message = CASES[case]
    fill = {k: str(v) for k, v in files.items()}
    rc, peak_kib, err = run_cli(*[a.format(**fill) for a in argv])
    assert rc == 2, err
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert name.format(**fill) in err[0] and message.format(**fill) in err[0], err[0]
    assert peak_kib < 256 * 1024, peak_kib                # a 3 GB read would be 3 GB resident


def test_a_valid_firmware_image_reads_whole_and_a_short_one_is_refused(tmp_path):
    from pysg.device.image import ImageError, check_image, make_image, read_image_file

    image = make_image(bytes(range(256)) * 8, 0x1000, 0x000100, "posix")
    good = tmp_path / "app.img"
    good.write_bytes(image)
    assert read_image_file(good) == image and check_image(image).size == 2048
    short = tmp_path / "short.img"
    short.write_bytes(image[:-1])
    with pytest.raises(ImageError, match="shorter than the 2048-byte binary") as exc:
        read_image_file(short)
    assert exc.value.field == "size"


def test_the_guard_reads_a_valid_model_whole(files, tmp_path, capsys):
    from pysg.cli import main

    good = tmp_path / "good.sgm"
    good.write_bytes(export_network(Network.load(BUNDLED_MODEL)))
    assert main(["inspect", str(good), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["file_bytes"] == files["size"]
