# SPDX-License-Identifier: MIT
"""The emulated device's TCP line: a host that connects while another sits idle takes
the line over (one forgotten connection no longer locks everyone out); an active host
keeps it, and the newcomer is answered once the line is free. The device keeps its
state (model, slots) across the change."""
from __future__ import annotations

import socket
import time

import pytest

from pysg.device.client import Device
from pysg.device.posix import start_posix_device
from tests.support.device_link import RawLink, hello

TAKEOVER_S = 2.0  # SG_POSIX_TAKEOVER_MS in firmware/boards/posix/sg_board_posix.c


@pytest.fixture()
def device(tmp_path):
    with start_posix_device(tmp_path / "flash.bin") as dev:
        yield dev


def test_an_idle_connection_does_not_lock_others_out(device):
    idle = RawLink(device.url)  # connects, then says nothing
    try:
        start = time.monotonic()
        with Device(device.url) as dev:
            info = dev.connect()
        took = time.monotonic() - start
        assert info.name and TAKEOVER_S * 0.9 <= took < TAKEOVER_S + 10, took
        idle.sock.settimeout(5)
        assert idle.sock.recv(1) == b""  # the idle host was hung up on
    finally:
        idle.close()


def test_an_active_host_keeps_the_line(device):
    active = RawLink(device.url)
    hello(active)
    waiting = RawLink(device.url)  # queued behind the active host
    try:
        waiting.sock.settimeout(0.2)
        end = time.monotonic() + 2 * TAKEOVER_S
        while time.monotonic() < end:  # a request every 0.3 s: never idle for the takeover time
            assert hello(active)["name"]
            with pytest.raises(socket.timeout):
                waiting.sock.recv(1)
            time.sleep(0.3)
        active.close()  # the line is free: the queued host is served at once
        waiting.sock.settimeout(10)
        assert hello(waiting)["name"]
    finally:
        active.close()
        waiting.close()


def test_two_devices_cannot_share_one_flash_file(device):
    from pysg.device.posix import PosixDeviceError

    with pytest.raises(PosixDeviceError, match="in use by another emulated device"):
        start_posix_device(device.flash_path)
    with Device(device.url) as dev:  # the first device is unharmed
        assert dev.connect().name
