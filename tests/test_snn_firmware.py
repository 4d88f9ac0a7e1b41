# SPDX-License-Identifier: MIT
"""A layered spiking network (.sgm version 3, NIR's kind) on the devices: `pysg flash` to
the POSIX emulated device and to the firmware in QEMU, `pysg stream` of the bundled
recording: per-gesture scores and per-step logits equal the integer reference
pysg.engines.snn.SnnRef on the same count frames."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pysg._sg_device", reason="the POSIX device extension is not built (pip install -e .)")

from pysg.cli import main  # noqa: E402
from pysg.datasets.binning import bin_events  # noqa: E402
from pysg.datasets.gesture import read_labels_csv, write_labels_csv  # noqa: E402
from pysg.device.client import Device  # noqa: E402
from pysg.device.posix import start_posix_device  # noqa: E402
from pysg.engines.snn import SnnRef  # noqa: E402
from pysg.io import read_events  # noqa: E402
from pysg.sgm import load_sgm  # noqa: E402
from tests.support.cli_output import json_lines  # noqa: E402
from tests.test_snn_c import gesture_snn  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "pysg" / "data" / "samples"
RECORDING = SAMPLES / "user01_fluorescent.aedat"
LABELS = SAMPLES / "user01_fluorescent_labels.csv"
FAST = {"reply_timeout": 0.2, "bytes_per_s": 1e7}


@pytest.fixture(scope="module")
def snn_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("snn") / "gesture_snn.sgm"
    p.write_bytes(gesture_snn())
    return p


@pytest.fixture(scope="module")
def reference(snn_file):
    """Per gesture: the (T, 2, 16, 16) counts, the reference's per-step logits and scores."""
    m = load_sgm(snn_file.read_bytes())
    events = read_events(RECORDING).events
    out = []
    for row in read_labels_csv(LABELS):
        ev = events[(events["t"] >= row["t_start"]) & (events["t"] < row["t_end"])].copy()
        ev["t"] -= row["t_start"]
        counts = bin_events(ev, duration_us=int(row["t_end"] - row["t_start"]), dt_us=m.dt_us,
                            sensor_size=m.sensor_size, downsample=m.downsample, channels=m.input_shape[0])
        ref = SnnRef(m)
        logits = np.stack([ref.step(c.reshape(-1))[0] for c in counts]).astype(np.int64)
        out.append({"frames": counts, "logits": logits, "scores": logits.sum(axis=0)})
    return out


def test_posix_device_runs_the_spiking_network(snn_file, reference, tmp_path, capsys):
    with start_posix_device(tmp_path / "flash.bin", tcp_port=0) as dev:
        assert main(["--quiet", "flash", "--port", dev.url, str(snn_file), "--json"]) == 0
        assert json_lines(capsys)[-1]["file_bytes"] == snn_file.stat().st_size
        assert main(["--quiet", "stream", "--port", dev.url, str(RECORDING), "--json"]) == 0
        rows = json_lines(capsys)
        assert len(rows) == len(reference)
        for row, ref in zip(rows, reference):
            assert row["steps"] == len(ref["frames"])
            assert row["scores"] == ref["scores"].tolist()
            assert row["prediction_index"] == int(np.argmax(ref["scores"]))
        with Device(dev.url, **FAST) as d:
            assert d.model_header().input_shape == (2, 16, 16)
            for ref in reference[:3]:
                np.testing.assert_array_equal(d.stream_frames(ref["frames"]), ref["logits"])
            assert d.stats().synops > 0
    assert len({r["prediction_index"] for r in rows}) > 1  # not a constant answer


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_qemu_firmware_runs_the_spiking_network(snn_file, reference, tmp_path, capsys):
    """The firmware (Cortex-M4, QEMU mps2-an386) through `pysg flash` and `pysg stream`:
    the reference's scores and prediction per gesture, and per-step logits."""
    from pysg.device import qemu as q

    q.build(("qemu",))
    csv = tmp_path / "labels.csv"
    write_labels_csv(csv, read_labels_csv(LABELS)[:2])  # the emulated UART is slow: two gestures
    with q.start(app_image=q.BUILD_DIR / "app.img") as qd:
        assert main(["--quiet", "flash", "--port", qd.url, str(snn_file), "--json"]) == 0
        assert json_lines(capsys)[-1]["file_bytes"] == snn_file.stat().st_size
        assert main(["--quiet", "stream", "--port", qd.url, str(RECORDING), "--labels", str(csv), "--json"]) == 0
        rows = json_lines(capsys)
        assert [r["scores"] for r in rows] == [ref["scores"].tolist() for ref in reference[:2]]
        assert [r["prediction_index"] for r in rows] == [int(np.argmax(ref["scores"])) for ref in reference[:2]]
        with Device(qd.url) as d:
            np.testing.assert_array_equal(d.stream_frames(reference[0]["frames"]), reference[0]["logits"])
