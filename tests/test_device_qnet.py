# SPDX-License-Identifier: MIT
"""An imported int8 CNN (`pysg convert`, version 2 .sgm) on the devices: flashed to the
POSIX emulated device and to the firmware in QEMU, streamed the bundled recording's
event counts, the per-step logits and per-gesture scores equal the Python reference
pysg.qnet.QnetRef (itself equal to TFLite Micro on the same frames:
tests/test_tflite_convert.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pysg._sg_device", reason="the POSIX device extension is not built (pip install -e .)")
pytest.importorskip("tflite", reason="the tflite package writes the CNN")

from pysg.converters.tflite_sgm import tflite_to_sgm  # noqa: E402
from pysg.cli import main  # noqa: E402
from pysg.datasets.binning import bin_events  # noqa: E402
from pysg.datasets.gesture import read_labels_csv, write_labels_csv  # noqa: E402
from pysg.device.client import Device  # noqa: E402
from pysg.device.posix import start_posix_device  # noqa: E402
from pysg.io import read_events  # noqa: E402
from pysg.qnet import QnetRef  # noqa: E402
from tests.support.cli_output import json_lines  # noqa: E402
from tests.support.qnet_models import built_cnn  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "pysg" / "data" / "samples"
RECORDING = SAMPLES / "user01_fluorescent.aedat"
LABELS = SAMPLES / "user01_fluorescent_labels.csv"
FAST = {"reply_timeout": 0.2, "bytes_per_s": 1e7}


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("cnn") / "cnn.sgm"
    p.write_bytes(tflite_to_sgm(built_cnn(), dt_ms=10, window_steps=20, sensor=(128, 128)))
    return p


@pytest.fixture(scope="module")
def reference(cnn_file):
    """Per gesture: the (T, 2, 32, 32) counts, the reference's per-step logits and scores."""
    ref = QnetRef(cnn_file.read_bytes())
    m = ref.model
    events = read_events(RECORDING).events
    out = []
    for row in read_labels_csv(LABELS):
        ev = events[(events["t"] >= row["t_start"]) & (events["t"] < row["t_end"])].copy()
        ev["t"] -= row["t_start"]
        counts = bin_events(ev, duration_us=int(row["t_end"] - row["t_start"]), dt_us=m.dt_us,
                            sensor_size=m.sensor_size, downsample=m.downsample, channels=m.polarities)
        ref.reset()
        logits = np.stack([ref.step_counts(c) for c in counts])
        out.append({"frames": counts, "logits": logits, "scores": ref.scores.copy()})
    return out


def test_posix_device_runs_the_imported_cnn(cnn_file, reference, tmp_path, capsys):
    with start_posix_device(tmp_path / "flash.bin", tcp_port=0) as dev:
        assert main(["--quiet", "flash", "--port", dev.url, str(cnn_file), "--json"]) == 0
        assert json_lines(capsys)[-1]["file_bytes"] == cnn_file.stat().st_size
        assert main(["--quiet", "stream", "--port", dev.url, str(RECORDING), "--json"]) == 0
        rows = json_lines(capsys)
        assert len(rows) == len(reference)
        for row, ref in zip(rows, reference):
            assert row["steps"] == len(ref["frames"])
            assert row["scores"] == ref["scores"].tolist()  # every step with a whole 200 ms window
        with Device(dev.url, **FAST) as d:
            assert d.model_header().input_shape == (2, 32, 32) and d.model_header().warmup == 0.0
            for ref in reference[:3]:
                np.testing.assert_array_equal(d.stream_frames(ref["frames"]), ref["logits"])
            assert d.stats().synops > 0
    assert len({r["prediction_index"] for r in rows}) > 1  # not a constant answer


def test_device_refuses_a_network_beyond_its_arena(cnn_file, tmp_path):
    """A 2 s window with a lossless event ring (201 steps x 2048 cells of entries) needs
    ~1.7 MB of arena: MODEL_END refuses it at the header's arena_bytes and the active
    model stays."""
    from pysg.device.ops import Status
    from pysg.device.protocol import DeviceError
    from pysg.sgm import encode_qmodel, load_sgm

    q = load_sgm(tflite_to_sgm(built_cnn(), dt_ms=10, window_steps=200, sensor=(128, 128)))
    q.input.ring_entries = 201 * q.cells
    big = encode_qmodel(q)
    assert load_sgm(big).arena_bytes > 262144
    with start_posix_device(tmp_path / "flash.bin", tcp_port=0) as dev, Device(dev.url, **FAST) as d:
        first = d.upload_model(cnn_file.read_bytes())
        assert d.info().arena_capacity == 262144
        with pytest.raises(DeviceError) as e:
            d.upload_model(big)
        assert e.value.status == Status.ERR_MODEL and e.value.error_offset == 20  # arena_bytes
        assert e.value.sg_status == -11  # SG_ERR_ARENA
        assert d.info().active_slot == first.slot


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_qemu_firmware_runs_the_imported_cnn(cnn_file, reference, tmp_path, capsys):
    from pysg.device import qemu as q

    q.build(("qemu",))
    csv = tmp_path / "labels.csv"
    write_labels_csv(csv, read_labels_csv(LABELS)[:2])  # the emulated UART is slow: two gestures
    with q.start(app_image=q.BUILD_DIR / "app.img") as qd:
        assert main(["--quiet", "flash", "--port", qd.url, str(cnn_file), "--json"]) == 0
        assert json_lines(capsys)[-1]["file_bytes"] == cnn_file.stat().st_size
        assert main(["--quiet", "stream", "--port", qd.url, str(RECORDING), "--labels", str(csv), "--json"]) == 0
        rows = json_lines(capsys)
        assert [r["scores"] for r in rows] == [ref["scores"].tolist() for ref in reference[:2]]
        with Device(qd.url) as d:
            np.testing.assert_array_equal(d.stream_frames(reference[0]["frames"]), reference[0]["logits"])
