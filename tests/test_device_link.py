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


class _LossyScriptedDevice:
    """A TCP device that echoes INFO payloads (status OK), written from the frame layout
    (cobs + zlib via tests/support/device_link.py); it ignores the first try of every
    request whose seq is in `lose_first`, and every request while `dead`."""

    def __init__(self, lose_first=()):
        import socket
        import threading

        from cobs import cobs

        self.lose_first, self.dead, self.tries = set(lose_first), False, []
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self._srv.getsockname()[1]}"

        def serve():
            conn, _ = self._srv.accept()
            buf = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while b"\0" in buf:
                    f, buf = buf.split(b"\0", 1)
                    if not f:
                        continue
                    p = cobs.decode(f)
                    op, seq, n = p[0], p[1], int.from_bytes(p[2:4], "little")
                    self.tries.append((seq, time.monotonic()))
                    if self.dead or seq in self.lose_first:
                        self.lose_first.discard(seq)
                        continue
                    conn.sendall(raw.frame(op | 0x80, seq, b"\0" + p[4:4 + n]))

        threading.Thread(target=serve, daemon=True).start()


def test_a_lost_frame_costs_a_measured_round_trip_not_the_fixed_timeout():
    from pysg.device.link import MIN_RTO, Link, LinkError
    from pysg.device.ops import Op

    dev = _LossyScriptedDevice(lose_first={21})
    link = Link.open(dev.url, reply_timeout=1.0, retries=2, bytes_per_s=1e7)
    try:
        for i in range(20):   # seq 1..20 answered at once: the round trip is measured
            assert link.command(Op.INFO, bytes([i])) == bytes([i])
        assert link.counters.rtt_samples == 20 and link.rto is not None and MIN_RTO <= link.rto < 0.2
        t0 = time.monotonic()
        assert link.command(Op.INFO, b"lost once") == b"lost once"      # seq 21: first try lost
        assert time.monotonic() - t0 < 0.4          # the fixed timeout would have taken 1 s
        assert link.counters.resends == 1 and [s for s, _ in dev.tries].count(21) == 2
        # a device that stopped answering: prompt resends (the last one waits out the
        # rest), but declared lost no sooner than the fixed timeouts would have (3 x 1 s)
        dev.dead = True
        t0 = time.monotonic()
        with pytest.raises(LinkError, match=r"no reply to INFO .* after \d+ tries"):
            link.command(Op.INFO)
        assert time.monotonic() - t0 >= 3.0 - 0.05
        times = [t for s, t in dev.tries if s == 22]
        assert len(times) == 3 and times[1] - times[0] < 0.4 and times[2] - times[1] < 0.4
    finally:
        link.close()


@pytest.mark.slow
def test_pysg_flash_through_a_lossy_link_reports_retries_and_frame_size(device, sgm_bytes, tmp_path, capsys):
    from pysg.cli import main
    from tests.support.cli_output import json_lines

    path = tmp_path / "gesture.sgm"
    path.write_bytes(sgm_bytes)
    with FaultProxy(device.url, drop=5e-4, corrupt=5e-4, seed=4, unit="byte") as px:
        assert main(["--quiet", "flash", "--port", px.url, str(path), "--json"]) == 0
        faults = px.counters.to_device.dropped + px.counters.to_device.corrupted
    out = json_lines(capsys)[-1]
    assert faults > 0 and out["retries"] > 0 and 64 <= out["frame_bytes"] <= 4092
    assert out["file_bytes"] == len(sgm_bytes) and out["crc32"] == f"0x{zlib.crc32(sgm_bytes):08x}"
    inf, back = _raw_state(device.url, len(sgm_bytes))
    assert inf["active"] == out["slot"] and back == sgm_bytes
