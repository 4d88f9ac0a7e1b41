# SPDX-License-Identifier: MIT
"""Power cuts during uploads, on the real firmware in QEMU.

A timer stops QEMU at a random moment of `Device.upload_model` (or of a firmware
upload), saves the 4 MB flash with the monitor's pmemsave and quits: a power cut at
whatever the guest was doing. A new QEMU then boots from that flash. The device must
boot, answer, and serve a whole valid model, the old one or (when the cut came after
the activation) the new one, giving the integer reference's logits for it."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

if shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None:
    pytest.skip("needs qemu-system-arm and arm-none-eabi-gcc", allow_module_level=True)

from pysg import intref  # noqa: E402
from pysg.datasets.binning import bin_events  # noqa: E402
from pysg.datasets.gesture import read_labels_csv  # noqa: E402
from pysg.device import qemu as q  # noqa: E402
from pysg.device.client import Device  # noqa: E402
from pysg.io import read_events  # noqa: E402
from pysg.sgm import load_sgm  # noqa: E402

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parent.parent / "pysg" / "data" / "samples"
MODEL_TRIALS = 8      # random cut times over a whole model upload (+ read-back + activate)
FIRMWARE_TRIALS = 3   # random cut times over a firmware upload (+ reset into the bootloader)
STEPS = 60            # steps streamed to check the served model


@pytest.fixture(scope="module")
def models() -> dict[int, bytes]:
    """Two different valid models (the bundled network at 10 ms and at 5 ms), by CRC-32."""
    from pysg.converters.sgm import export_network
    from pysg.model.network import Network
    from pysg.recipes import BUNDLED_MODEL

    net = Network.load(BUNDLED_MODEL)
    out = [export_network(net, dt_us=10_000), export_network(net, dt_us=5_000)]
    assert out[0] != out[1]
    return {zlib.crc32(m): m for m in out}


@pytest.fixture(scope="module")
def gesture_events() -> np.ndarray:
    row = read_labels_csv(SAMPLES / "user01_fluorescent_labels.csv")[0]
    ev = read_events(SAMPLES / "user01_fluorescent.aedat").events
    ev = ev[(ev["t"] >= row["t_start"]) & (ev["t"] < row["t_end"])].copy()
    ev["t"] -= row["t_start"]
    return ev


def _check_served(url: str, models: dict[int, bytes], events: np.ndarray) -> int:
    """The device answers and its active model is one of `models`, whole, computing the
    reference's logits; returns that model's CRC-32."""
    with Device(url) as dev:
        info = dev.info()
        assert info.active_slot is not None, "no valid model after the power cut"
        crc = info.slots[info.active_slot].crc
        assert crc in models, f"active slot holds an unknown image (crc {crc:08x})"
        model = load_sgm(models[crc])
        ev = events[events["t"] < STEPS * model.dt_us]
        frames = bin_events(ev, duration_us=STEPS * model.dt_us, dt_us=model.dt_us,
                            sensor_size=model.sensor_size, downsample=model.downsample,
                            channels=model.input_shape[0])
        np.testing.assert_array_equal(dev.stream_frames(frames), intref.run(model, frames[:, None]).logits[:, 0])
        return crc


HOST = [sys.executable, "-c", "import sys; from pysg.cli import main; sys.exit(main(sys.argv[1:]))", "--quiet"]


def _pysg(args: list[str]) -> float:
    """Run `pysg ARGS` to completion; its wall time in seconds."""
    t0 = time.monotonic()
    subprocess.run(HOST + args, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def _cut_during(qd: q.QemuDevice, dump: Path, delay: float, args: list[str]) -> None:
    """Run `pysg ARGS` (an upload) and cut the power `delay` seconds later; then stop
    the host tool (it would go on trying to reconnect)."""
    host = subprocess.Popen(HOST + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(delay)
        qd.power_cut(dump)
    finally:
        host.kill()
        host.wait()


def test_power_cut_during_model_upload_keeps_a_valid_model(firmware, models, gesture_events, tmp_path):
    old, new = list(models)
    files = {}
    for crc, data in models.items():
        files[crc] = tmp_path / f"{crc:08x}.sgm"
        files[crc].write_bytes(data)
    rng = np.random.default_rng(20261128)
    outcome = {"old": 0, "new": 0}
    with q.start(app_image=firmware) as qd:
        t_flash = _pysg(["flash", "--port", qd.url, str(files[old])])  # how long a whole `pysg flash` takes here
        dump = tmp_path / "flash.bin"
        for trial in range(MODEL_TRIALS):
            delay = float(rng.uniform(0.0, t_flash))

            _cut_during(qd, dump, delay, ["flash", "--port", qd.url, str(files[new])])
            qd = q.start(flash_dump=dump)
            served = _check_served(qd.url, models, gesture_events)
            outcome["old" if served == old else "new"] += 1
            print(f"\ncut at {delay:.2f} s of {t_flash:.2f} s: {'old' if served == old else 'new'} model active")
            if served == new:  # go on cutting uploads of the model that is not active
                old, new = new, old
        # the device still takes a whole upload afterwards
        with Device(qd.url) as dev:
            dev.upload_model(models[new])
        assert _check_served(qd.url, models, gesture_events) == new
        qd.close()
    print(f"\nmodel upload power cuts: {MODEL_TRIALS} trials, {MODEL_TRIALS} devices booted with a valid model "
          f"(old model kept {outcome['old']}, new model active {outcome['new']})")


def test_power_cut_during_firmware_upload_boots_a_valid_image(firmware, models, gesture_events, tmp_path):
    crc = next(iter(models))
    rng = np.random.default_rng(7)
    versions = []
    with q.start(app_image=firmware) as qd:
        with Device(qd.url) as dev:
            dev.upload_model(models[crc])
            v1 = dev.hello_info.fw_version
        t_flash = _pysg(["flash", "--port", qd.url, "--firmware", str(firmware)])  # upload, reset, copy, boot
        dump = tmp_path / "flash.bin"
        for trial in range(FIRMWARE_TRIALS):
            delay = float(rng.uniform(0.0, t_flash))

            _cut_during(qd, dump, delay, ["flash", "--port", qd.url, "--firmware", str(firmware)])
            qd = q.start(flash_dump=dump)
            with Device(qd.url) as dev:
                versions.append(dev.hello_info.fw_version)
            assert _check_served(qd.url, models, gesture_events) == crc
        qd.close()
    assert versions == [v1] * FIRMWARE_TRIALS  # the same image re-flashed: the version stays
    print(f"\nfirmware upload power cuts: {FIRMWARE_TRIALS} trials, {FIRMWARE_TRIALS} devices booted and served "
          f"the model")
