# SPDX-License-Identifier: MIT
"""A/B model slots at boot: the newest slot wins only if its header AND its model check
out. A newer slot whose model bytes changed in flash (or whose header is damaged) loses
to the older valid one, whatever its generation; with both damaged the device has no
model and says so. Truth: the bytes uploaded, read back from the active slot."""
from __future__ import annotations

import struct
import zlib

import pytest

from pysg.converters.sgm import export_network
from pysg.device.client import Device
from pysg.device.ops import SLOT_HEADER
from pysg.device.posix import start_posix_device
from pysg.model import Network
from pysg.recipes import BUNDLED_MODEL

SLOT_SIZE = 512 * 1024   # firmware/boards/posix/sg_posix.h SG_POSIX_SLOT_SIZE: slot A at 0, B after it
HEADER = SLOT_HEADER.head_size
OFF = {f.name: f.offset for f in SLOT_HEADER.head}


@pytest.fixture(scope="module")
def models() -> tuple[bytes, bytes]:
    net = Network.load(BUNDLED_MODEL)
    return export_network(net), export_network(net, dt_us=5000)  # two different valid files


def two_slots(flash, models) -> None:
    """Model 1 into slot A (generation 1), then model 2 into slot B (generation 2, active)."""
    with start_posix_device(flash) as dev, Device(dev.url) as d:
        d.connect()
        for m in models:
            d.upload_model(m)
        info = d.info()
        assert info.active_slot == 1 and [s.generation for s in info.slots] == [1, 2]


def boot(flash):
    with start_posix_device(flash) as dev, Device(dev.url) as d:
        d.connect()
        info = d.info()
        active = d.read_model(info.active_slot) if info.active_slot is not None else None
        return info, active


def flip(flash, offset: int) -> None:
    raw = bytearray(flash.read_bytes())
    raw[offset] ^= 0x40
    flash.write_bytes(bytes(raw))


@pytest.mark.parametrize("where", ["model", "header"])
def test_newer_slot_damaged_loses_to_the_older_valid_one(tmp_path, models, where):
    flash = tmp_path / "flash.bin"
    two_slots(flash, models)
    flip(flash, SLOT_SIZE + (HEADER + 1000 if where == "model" else OFF["size"]))
    info, active = boot(flash)
    assert info.active_slot == 0, info
    assert not info.slots[1].valid and info.slots[0].valid and info.slots[0].generation == 1
    assert active == models[0] and info.slots[0].crc == zlib.crc32(models[0])


def test_older_slot_damaged_keeps_the_newer(tmp_path, models):
    flash = tmp_path / "flash.bin"
    two_slots(flash, models)
    flip(flash, HEADER + 1000)
    info, active = boot(flash)
    assert info.active_slot == 1 and not info.slots[0].valid and active == models[1]


def test_both_damaged_means_no_model(tmp_path, models):
    flash = tmp_path / "flash.bin"
    two_slots(flash, models)
    flip(flash, HEADER + 1000)
    flip(flash, SLOT_SIZE + HEADER + 1000)
    info, active = boot(flash)
    assert info.active_slot is None and active is None and not any(s.valid for s in info.slots)


def test_a_newer_generation_written_over_a_valid_header_still_needs_its_model(tmp_path, models):
    """Rewrite slot A's header with a generation far ahead (its header CRC made right) but
    leave its model damaged: a header that checks out is not enough."""
    flash = tmp_path / "flash.bin"
    two_slots(flash, models)
    raw = bytearray(flash.read_bytes())
    gen_at = OFF["generation"]
    struct.pack_into("<I", raw, gen_at, 1000)
    crc_at = OFF["header_crc"]
    struct.pack_into("<I", raw, crc_at, zlib.crc32(bytes(raw[:crc_at])))
    raw[HEADER + 1000] ^= 0x40
    flash.write_bytes(bytes(raw))
    info, active = boot(flash)
    assert info.active_slot == 1 and active == models[1], info
