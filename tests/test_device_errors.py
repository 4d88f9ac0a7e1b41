# SPDX-License-Identifier: MIT
"""Device commands given a bad port or a busy TCP port end with exit 2 and one line that
says what is wrong, not a traceback nor a hint at a build that is fine."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from pysg.device.link import LinkError, open_port


def pysg(*args):
    return subprocess.run([sys.executable, "-m", "pysg.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_socket_url_without_a_port():
    got = pysg("device", "info", "--port", "socket://localhost")
    assert got.returncode == 2 and "needs a port" in got.stderr and len(got.stderr.strip().splitlines()) == 1
    with pytest.raises(LinkError, match="needs a port"):
        open_port("socket://localhost")


def test_emulate_on_a_busy_port_says_so(tmp_path):
    pytest.importorskip("pysg._sg_device", reason="the POSIX device extension is not built")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        got = pysg("emulate", "--tcp", s.getsockname()[1], "--flash", tmp_path / "f.bin")
    assert got.returncode == 2, got.stderr
    assert "in use by another program" in got.stderr and "pip install" not in got.stderr
