# SPDX-License-Identifier: MIT
"""The esptool-style device commands against the real firmware in qemu-system-arm
(mps2-an386): slots after two uploads, roll back with `device activate`, `read-model`
byte-identical to the file flashed, `stats` after a stream, and `--baud` refused with
one line (this board cannot change its rate)."""
from __future__ import annotations

import json
import shutil
import zlib

import numpy as np
import pytest

if shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None:
    pytest.skip("needs qemu-system-arm and arm-none-eabi-gcc", allow_module_level=True)

from pysg.cli import main  # noqa: E402
from pysg.device import qemu as q  # noqa: E402
from pysg.device.client import Device  # noqa: E402

pytestmark = pytest.mark.slow


def test_qemu_slots_activate_read_model_stats_baud(firmware, tmp_path, capsys):
    from pysg.converters.sgm import export_network
    from pysg.model.network import Network
    from pysg.recipes import BUNDLED_MODEL

    net = Network.load(BUNDLED_MODEL)
    a, b = tmp_path / "a.sgm", tmp_path / "b.sgm"
    a.write_bytes(export_network(net))
    b.write_bytes(export_network(net.retarget_dt(20000)))

    def js(*argv):
        rc = main(["--quiet", *map(str, argv), "--json"])
        out, err = capsys.readouterr()
        assert rc == 0, err
        return json.loads(out.splitlines()[-1])

    with q.start(app_image=firmware) as qd:
        js("flash", a, "--port", qd.url)
        js("flash", b, "--port", qd.url)
        slots = js("device", "slots", "--port", qd.url)["slots"]
        assert [(s["state"], s["active"], s["crc32"]) for s in slots] == \
            [("valid", False, f"0x{zlib.crc32(a.read_bytes()):08x}"), ("valid", True, f"0x{zlib.crc32(b.read_bytes()):08x}")]
        r = js("device", "activate", "A", "--port", qd.url)
        assert r["active"] == "A" and r["changed"] and [s["state"] for s in r["slots"]] == ["valid", "valid"]
        js("device", "read-model", "-o", tmp_path / "back.sgm", "--port", qd.url)
        assert (tmp_path / "back.sgm").read_bytes() == a.read_bytes()
        # a reset runs the bootloader, which keeps the choice; then forward to B and back to A
        assert js("device", "reset", "--port", qd.url)["reset"]
        assert js("device", "info", "--port", qd.url)["info"]["active_slot"] == 0
        assert js("device", "activate", "B", "--port", qd.url)["active"] == "B"
        assert js("device", "info", "--port", qd.url)["model"]["dt_us"] == 20000
        assert js("device", "activate", "A", "--port", qd.url)["active"] == "A"

        with Device(qd.url) as dev:
            before = dev.stats()
            frames = np.random.default_rng(2).integers(0, 2, (5, *dev.model_header().input_shape)).astype(np.uint8)
            dev.stream_frames(frames)
        st = js("device", "stats", "--port", qd.url)
        assert st["steps"] - before.steps == 5 and st["events"] - before.events_in == int(frames.sum())

        # flash's two JSON shapes (a model, a firmware image) against docs/CLI.md's table
        from tests.test_cli_vocabulary import _validate

        _validate("flash", [js("flash", a, "--port", qd.url)])
        fw = js("flash", "--firmware", firmware, "--port", qd.url)
        _validate("flash", [fw])
        assert fw["what"] == "firmware" and fw["slot"] is None and fw["version"] == "0.1.0"
        assert js("device", "info", "--port", qd.url)["model"]["dt_us"] == 10000  # the model survives the update

        rc = main(["device", "info", "--port", qd.url, "--baud", "921600"])
        err = capsys.readouterr().err
        assert rc == 2 and "baud" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
