# SPDX-License-Identifier: MIT
"""The device commands end to end against the real firmware (bootloader + application)
in qemu-system-arm -M mps2-an386: `pysg flash` of a model (read back bit-exact),
`pysg stream` per gesture equal to the integer reference pysg.intref, per-step logits
equal, and `pysg flash --firmware` of a new application version through the bootloader
(the model stays active and still gives the reference's logits)."""
from __future__ import annotations

import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

if shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None:
    pytest.skip("needs qemu-system-arm and arm-none-eabi-gcc", allow_module_level=True)

from pysg import intref  # noqa: E402
from pysg.cli import main  # noqa: E402
from pysg.datasets.binning import bin_events  # noqa: E402
from pysg.datasets.gesture import read_labels_csv, write_labels_csv  # noqa: E402
from pysg.device import qemu as q  # noqa: E402
from pysg.device.client import Device  # noqa: E402
from pysg.io import read_events  # noqa: E402
from pysg.sgm import load_sgm  # noqa: E402
from tests.support.cli_output import json_lines  # noqa: E402

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parent.parent / "pysg" / "data" / "samples"
RECORDING = SAMPLES / "user01_fluorescent.aedat"
N_GESTURES = 3          # the emulated UART moves ~45 KB/s: three gestures take ~5 s
V2 = 0x000200


@pytest.fixture(scope="module")
def firmware_v2(tmp_path_factory):
    """The same application built as version 0.2.0 into a private build folder."""
    out = tmp_path_factory.mktemp("fw-v2")
    img = out / "qemu" / "app.img"
    subprocess.run(["make", "-C", str(q.FIRMWARE_DIR), f"FW_B={out}", f"FW_VERSION=0x{V2:06x}", str(img)],
                   check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return img


@pytest.fixture(scope="module")
def sgm_file(tmp_path_factory) -> Path:
    from pysg.converters.sgm import export_network
    from pysg.model.network import Network
    from pysg.recipes import BUNDLED_MODEL

    p = tmp_path_factory.mktemp("model") / "gesture.sgm"
    p.write_bytes(export_network(Network.load(BUNDLED_MODEL)))
    return p


@pytest.fixture(scope="module")
def gestures(sgm_file, tmp_path_factory):
    """A labels CSV with the first gestures, and per gesture the reference frames, logits, scores."""
    model = load_sgm(sgm_file.read_bytes())
    labels = read_labels_csv(SAMPLES / "user01_fluorescent_labels.csv")[:N_GESTURES]
    csv = tmp_path_factory.mktemp("labels") / "labels.csv"
    write_labels_csv(csv, labels)
    events = read_events(RECORDING).events
    refs = []
    for row in labels:
        ev = events[(events["t"] >= row["t_start"]) & (events["t"] < row["t_end"])].copy()
        ev["t"] -= row["t_start"]
        frames = bin_events(ev, duration_us=int(row["t_end"] - row["t_start"]), dt_us=model.dt_us,
                            sensor_size=model.sensor_size, downsample=model.downsample,
                            channels=model.input_shape[0])
        r = intref.run(model, frames[:, None])
        refs.append({"frames": frames, "logits": r.logits[:, 0],
                     "scores": intref.scores(r.logits, np.array([len(frames)]))[0]})
    return csv, refs


def test_qemu_flash_stream_and_firmware_update(firmware, firmware_v2, sgm_file, gestures, capsys):
    csv, refs = gestures
    data = sgm_file.read_bytes()
    with q.start(app_image=firmware) as qd:
        assert main(["--quiet", "flash", "--port", qd.url, str(sgm_file), "--json"]) == 0
        flashed = json_lines(capsys)[-1]
        assert flashed["device"] == q.BOARD_NAME and flashed["crc32"] == f"0x{zlib.crc32(data):08x}"

        assert main(["--quiet", "stream", "--port", qd.url, str(RECORDING), "--labels", str(csv), "--json"]) == 0
        rows = json_lines(capsys)
        assert len(rows) == N_GESTURES
        for row, ref in zip(rows, refs):
            assert row["scores"] == ref["scores"].tolist()
            assert row["prediction_index"] == int(ref["scores"].argmax())

        with Device(qd.url) as dev:
            assert dev.read_model(flashed["slot"]) == data
            np.testing.assert_array_equal(dev.stream_frames(refs[0]["frames"]), refs[0]["logits"])
            assert dev.hello_info.fw_version != V2

        # a new application through the bootloader; the model slot is kept
        assert main(["--quiet", "flash", "--port", qd.url, "--firmware", str(firmware_v2), "--json"]) == 0
        assert json_lines(capsys)[-1]["version"] == "0.2.0"  # as HELLO's fw_version (docs/CLI.md)
        assert main(["device", "info", "--port", qd.url, "--json"]) == 0
        info = json_lines(capsys)[-1]
        assert info["hello"]["fw_version"] == "0.2.0" and info["info"]["fw_version"] == "0.2.0"
        assert info["info"]["fw_confirmed"] is True
        assert info["info"]["active_slot"] == flashed["slot"]
        with Device(qd.url) as dev:
            np.testing.assert_array_equal(dev.stream_frames(refs[1]["frames"]), refs[1]["logits"])


def test_qemu_upload_through_one_percent_faults(firmware, sgm_file):
    from pysg.device.faultproxy import FaultProxy

    data = sgm_file.read_bytes()
    with q.start(app_image=firmware) as qd, FaultProxy(qd.url, drop=0.01, corrupt=0.01, seed=11) as px:
        with Device(px.url, reply_timeout=0.5) as dev:
            r = dev.upload_model(data)
            assert dev.read_model(r.slot) == data and dev.info().active_slot == r.slot
            resends = dev.link.counters.resends
            dropped = dev.stats().frames_dropped
    c = px.counters
    print(f"\nQEMU through 1 %/frame faults: upload bit-exact, {c.to_device.dropped + c.to_device.corrupted} faults "
          f"to the device ({dropped} frames it dropped), {c.to_host.dropped + c.to_host.corrupted} to the host, "
          f"{resends} resends")
    assert c.to_device.dropped + c.to_device.corrupted + c.to_host.dropped + c.to_host.corrupted > 0
    assert resends > 0
