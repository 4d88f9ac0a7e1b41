# SPDX-License-Identifier: MIT
"""Uploads through a lossy link (issue 14 item 6): fast, visible, and safe when hopeless.

The POSIX emulated device behind pysg.device.faultproxy, which drops and flips bytes with
seeded probabilities each way. Truth: the bundled model's .sgm bytes and zlib.crc32,
read back and checked with the raw-frame client tests/support/device_link.py (cobs +
zlib, not pysg.device) straight from the device after the proxy is gone."""
from __future__ import annotations

import time
import zlib

import pytest

pytest.importorskip("pysg._sg_device", reason="the POSIX device extension is not built (pip install -e .)")

from pysg.device.client import Device  # noqa: E402
from pysg.device.faultproxy import FaultProxy  # noqa: E402
from pysg.device.posix import start_posix_device  # noqa: E402
from pysg.device.upload import UploadStalled  # noqa: E402
from tests.support import device_link as raw  # noqa: E402

LOCAL = {"bytes_per_s": 1e7}   # TCP to the POSIX device: transfer time is nothing, round trips are measured


@pytest.fixture(scope="module")
def sgm_bytes() -> bytes:
    from pysg.converters.sgm import export_network
    from pysg.model.network import Network
    from pysg.recipes import BUNDLED_MODEL

    return export_network(Network.load(BUNDLED_MODEL))


@pytest.fixture()
def device(tmp_path):
    with start_posix_device(tmp_path / "flash.bin", tcp_port=0) as dev:
        yield dev


def _raw_state(url: str, size: int) -> tuple[dict, bytes | None]:
    """INFO and the active slot's first `size` bytes, over raw frames (no pysg.device)."""
    link = raw.RawLink(url)
    try:
        raw.hello(link)
        inf = raw.info(link)
        active = inf["active"]
        data = raw.read_model(link, active, size) if active in (0, 1) else None
        return inf, data
    finally:
        link.close()


@pytest.mark.slow
def test_upload_at_1e3_per_byte_each_way_completes_verifies_and_reports_retries(device, sgm_bytes):
    seen = []
    with FaultProxy(device.url, drop=1e-3, corrupt=1e-3, seed=1, unit="byte") as px, \
            Device(px.url, **LOCAL) as dev:
        top = dev.hello_info.max_payload - 4

        def progress(done, total):
            s = dev.upload_status
            seen.append((done, total, s.retries, s.frame))

        t0 = time.monotonic()
        r = dev.upload_model(sgm_bytes, progress=progress)
        seconds = time.monotonic() - t0
    assert px.counters.to_device.dropped + px.counters.to_device.corrupted > 50   # the link really was bad
    assert px.counters.to_host.dropped + px.counters.to_host.corrupted > 5
    assert seconds < 120.0, f"{seconds:.0f} s for {len(sgm_bytes)} bytes at 1e-3 + 1e-3 per byte"
    # progress: bytes done never go back and reach the total; retries are counted and
    # the frame size came down from the device's maximum
    dones = [d for d, _, _, _ in seen]
    assert dones == sorted(dones) and dones[-1] == len(sgm_bytes) and {t for _, t, _, _ in seen} == {len(sgm_bytes)}
    assert seen[-1][2] > 0 and r.retries >= seen[-1][2]
    assert min(f for _, _, _, f in seen) < top // 4
    # the device holds exactly the file, and runs it
    inf, back = _raw_state(device.url, len(sgm_bytes))
    assert inf["active"] == r.slot
    assert inf["slots"][r.slot]["size"] == len(sgm_bytes) and inf["slots"][r.slot]["crc"] == zlib.crc32(sgm_bytes)
    assert back == sgm_bytes


@pytest.mark.slow
def test_a_hopeless_link_stops_with_a_clear_error_in_bounded_time_and_keeps_the_active_model(device, sgm_bytes):
    with Device(device.url, **LOCAL) as dev:   # a first model over a clean link
        first = dev.upload_model(sgm_bytes)
    before, _ = _raw_state(device.url, 0)
    assert before["active"] == first.slot

    with FaultProxy(device.url, seed=2, unit="byte") as px, Device(px.url, **LOCAL) as dev:
        dev.stall_timeout = 5.0

        def progress(done, total):
            if done >= 20_000:       # a third of the way: the link turns hopeless
                px.set_rates(drop=0.3, corrupt=0.3)

        t0 = time.monotonic()
        with pytest.raises(UploadStalled, match=r"stalled at byte \d+ of 69896: nothing got through for \d+ s "
                                                r"\(\d+ retries, frames down to \d+ B.*active model is unchanged"):
            dev.upload_model(sgm_bytes, progress=progress)
        seconds = time.monotonic() - t0
    assert seconds < 40.0
    assert px.counters.to_device.dropped > 0
    # the device still runs the first model, bit for bit
    after, back = _raw_state(device.url, len(sgm_bytes))
    assert after["active"] == before["active"] == first.slot
    assert after["slots"][first.slot] == before["slots"][first.slot]
    assert back == sgm_bytes
