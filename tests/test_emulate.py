# SPDX-License-Identifier: MIT
"""`pysg emulate --qemu` outside a source checkout: a one-line error that says what to do."""
from __future__ import annotations

from pysg.cli import main
from pysg.device import qemu as q


def test_qemu_emulation_needs_a_source_checkout(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(q, "FIRMWARE_DIR", tmp_path / "firmware")
    monkeypatch.setattr(q, "BUILD_DIR", tmp_path / "firmware" / "build" / "qemu")
    assert main(["emulate", "--qemu"]) == 2
    err = capsys.readouterr().err
    assert "source checkout" in err and "pip install -e ." in err and "Traceback" not in err
