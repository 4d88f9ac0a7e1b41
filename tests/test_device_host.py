# SPDX-License-Identifier: MIT
"""pysg.device and the device commands end to end against the POSIX emulated device
(the firmware application compiled for the desktop, `python -m pysg.device.posix`).

Truth: the bundled model exported to .sgm (bytes read back), the Python integer
reference pysg.intref (per-step logits, per-gesture scores and predictions), pysg.live
on the C runtime (per-window predictions), the Python .sgm loader (offset of a bad
field). Faults: pysg.device.faultproxy between host and device."""
from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pysg._sg_device", reason="the POSIX device extension is not built (pip install -e .)")

from pysg import intref  # noqa: E402
from pysg.cli import main  # noqa: E402
from pysg.datasets.binning import bin_events  # noqa: E402
from pysg.datasets.gesture import read_labels_csv  # noqa: E402
from pysg.device.client import Device  # noqa: E402
from pysg.device.faultproxy import FaultProxy  # noqa: E402
from pysg.device.ops import Status  # noqa: E402
from pysg.device.posix import start_posix_device  # noqa: E402
from pysg.device.protocol import DeviceError  # noqa: E402
from pysg.io import read_events  # noqa: E402
from pysg.sgm import SgmFormatError, load_sgm, resign  # noqa: E402
from tests.support.cli_output import json_lines  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "pysg" / "data" / "samples"
RECORDING = SAMPLES / "user01_fluorescent.aedat"
LABELS = SAMPLES / "user01_fluorescent_labels.csv"
FAST = {"reply_timeout": 0.2, "bytes_per_s": 1e7}   # the POSIX device answers in microseconds


@pytest.fixture(scope="module")
def sgm_bytes() -> bytes:
    from pysg.converters.sgm import export_network
    from pysg.model.network import Network
    from pysg.recipes import BUNDLED_MODEL

    return export_network(Network.load(BUNDLED_MODEL))


@pytest.fixture(scope="module")
def sgm_file(sgm_bytes, tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("model") / "gesture.sgm"
    p.write_bytes(sgm_bytes)
    return p


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    with start_posix_device(tmp_path_factory.mktemp("flash") / "flash.bin", tcp_port=0) as dev:
        yield dev


@pytest.fixture(scope="module")
def recording():
    return read_events(RECORDING).events, read_labels_csv(LABELS)


@pytest.fixture(scope="module")
def reference(sgm_bytes, recording):
    """Per gesture: the frames, the reference logits (T, C) and the warm-up scores."""
    model = load_sgm(sgm_bytes)
    events, labels = recording
    out = []
    for row in labels:
        ev = events[(events["t"] >= row["t_start"]) & (events["t"] < row["t_end"])].copy()
        ev["t"] -= row["t_start"]
        frames = bin_events(ev, duration_us=int(row["t_end"] - row["t_start"]), dt_us=model.dt_us,
                            sensor_size=model.sensor_size, downsample=model.downsample,
                            channels=model.input_shape[0])
        r = intref.run(model, frames[:, None])
        scores = intref.scores(r.logits, np.array([len(frames)]))[0]
        out.append({"frames": frames, "logits": r.logits[:, 0], "scores": scores, "prediction": int(scores.argmax())})
    return out


def _flash(url, path, capsys) -> dict:
    assert main(["--quiet", "flash", "--port", url, str(path), "--json"]) == 0
    return json_lines(capsys)[-1]


# ------------------------------------------------------------------ flash and info


def test_flash_sgm_then_device_info(device, sgm_file, sgm_bytes, capsys):
    first = _flash(device.url, sgm_file, capsys)
    second = _flash(device.url, sgm_file, capsys)
    # A/B: the second upload goes to the other slot, one generation higher
    assert {first["slot"], second["slot"]} == {0, 1}
    assert second["generation"] == first["generation"] + 1
    assert second["crc32"] == f"0x{zlib.crc32(sgm_bytes):08x}" and second["file_bytes"] == len(sgm_bytes)

    assert main(["device", "info", "--port", device.url, "--json"]) == 0
    info = json_lines(capsys)[-1]
    assert info["hello"]["name"] == "posix" and {"MODEL", "STREAM"} <= set(info["hello"]["caps"])
    assert info["info"]["active_slot"] == second["slot"]
    active = info["info"]["slots"][second["slot"]]
    assert (active["file_bytes"], active["crc32"], active["generation"]) == (len(sgm_bytes), f"0x{zlib.crc32(sgm_bytes):08x}",
                                                                     second["generation"])
    model = load_sgm(sgm_bytes)
    assert info["model"]["labels"] == list(model.labels) and info["model"]["dt_us"] == model.dt_us
    assert info["info"]["arena_bytes"] == model.arena_bytes

    with Device(device.url, **FAST) as dev:  # bit-exact in flash, both slots
        for slot in (0, 1):
            assert dev.read_model(slot) == sgm_bytes


def test_flash_float_npz_exports_like_pysg_export(device, sgm_bytes, capsys):
    from pysg.recipes import BUNDLED_MODEL

    r = _flash(device.url, BUNDLED_MODEL, capsys)
    assert r["crc32"] == f"0x{zlib.crc32(sgm_bytes):08x}"
    with Device(device.url, **FAST) as dev:
        assert dev.read_model(r["slot"]) == sgm_bytes


def test_device_refusals_become_device_errors(device, sgm_bytes):
    bad = bytearray(sgm_bytes)
    struct.pack_into("<H", bad, 28, 99)  # n_stages outside 1..16, CRCs re-signed
    bad = resign(bad)
    with pytest.raises(SgmFormatError) as want:
        load_sgm(bad)
    with Device(device.url, **FAST) as dev:
        before = dev.info()
        with pytest.raises(DeviceError) as e:
            dev.upload_model(bad)
        assert e.value.status == Status.ERR_MODEL and e.value.error_offset == want.value.offset
        with pytest.raises(DeviceError) as e:
            dev.upload_model(bytes(dev.info().slot_capacity + 1))
        assert e.value.status == Status.ERR_TOO_BIG
        assert dev.info().active_slot == before.active_slot  # the active model is untouched
        assert dev.read_model(before.active_slot) == sgm_bytes


def test_upload_resumes_after_the_link_is_cut(device, sgm_bytes):
    with FaultProxy(device.url) as px, Device(px.url, **FAST) as dev:
        px.cut_after(len(sgm_bytes) // 2)
        r = dev.upload_model(sgm_bytes)
        # the port was reopened and the interrupted request resent (same seq): no new HELLO
        assert px.counters.cuts == 1 and dev.link.counters.reopens == 1 and r.reconnects == 0
        assert dev.read_model(r.slot) == sgm_bytes and dev.info().active_slot == r.slot
    # resumed, not restarted: about one model (+ the read-back requests) crossed the link
    sent = px.counters.to_device.bytes
    assert sent < 1.25 * len(sgm_bytes), sent


# ------------------------------------------------------------------ streaming


def test_stream_cli_per_gesture_equals_the_integer_reference(device, sgm_file, recording, reference, capsys):
    _flash(device.url, sgm_file, capsys)
    assert main(["--quiet", "stream", "--port", device.url, str(RECORDING), "--json"]) == 0
    rows = json_lines(capsys)
    _, labels = recording
    assert len(rows) == len(labels) == len(reference)
    for row, lab, ref in zip(rows, labels, reference):
        assert row["truth_index"] == lab["cls"] - 1
        assert row["steps"] == len(ref["frames"])
        assert row["scores"] == ref["scores"].tolist()
        assert row["prediction_index"] == ref["prediction"]


def test_stream_per_step_logits_equal_the_integer_reference(device, sgm_file, recording, reference, capsys):
    _flash(device.url, sgm_file, capsys)
    with Device(device.url, **FAST) as dev:
        for ref in reference[:4]:
            logits = dev.stream_frames(ref["frames"])
            assert logits.dtype == np.int32
            np.testing.assert_array_equal(logits, ref["logits"])
        p = dev.predict()  # scores summed from step 0 (no SCORE_FROM after STREAM_START)
        np.testing.assert_array_equal(p.scores, reference[3]["logits"].astype(np.int64).sum(axis=0))
        assert p.step == len(reference[3]["frames"])


def test_stream_cli_windows_equal_pysg_live(device, sgm_file, sgm_bytes, recording, capsys):
    from pysg.live import live_predictions

    _flash(device.url, sgm_file, capsys)
    events, _ = recording
    assert main(["stream", "--port", device.url, str(RECORDING), "--window-ms", "700", "--json"]) == 0
    rows = json_lines(capsys)
    want = list(live_predictions(sgm_bytes, [events], window_ms=700))
    assert len(rows) == len(want) > 10
    assert rows == want


# ------------------------------------------------------------------ through the fault proxy


def test_upload_and_stream_through_one_percent_faults(device, sgm_bytes, reference):
    trials, successes, resends = 5, 0, 0
    faults = {"to_device": 0, "to_host": 0}
    for seed in range(trials):
        with FaultProxy(device.url, drop=0.01, corrupt=0.01, seed=seed) as px, Device(px.url, **FAST) as dev:
            r = dev.upload_model(sgm_bytes)
            ok = dev.read_model(r.slot) == sgm_bytes and dev.info().active_slot == r.slot
            if seed == 0:  # one stream of every gesture through the damaged link
                for ref in reference:
                    np.testing.assert_array_equal(dev.stream_frames(ref["frames"]), ref["logits"])
            successes += ok
            resends += dev.link.counters.resends
            dropped = dev.stats().frames_dropped  # the device's count since it started
        c = px.counters
        faults["to_device"] += c.to_device.dropped + c.to_device.corrupted
        faults["to_host"] += c.to_host.dropped + c.to_host.corrupted
    print(f"\nfault proxy 1 %/frame drop + 1 %/frame corruption both ways: {successes}/{trials} uploads "
          f"bit-exact, {faults} faults injected, {resends} resends", file=sys.stderr)
    assert successes == trials
    assert faults["to_device"] > 0 and faults["to_host"] > 0 and resends > 0
    assert dropped > 0


def test_reset_keeps_the_active_model(device, sgm_file, sgm_bytes, capsys):
    r = _flash(device.url, sgm_file, capsys)
    with Device(device.url, **FAST) as dev:
        before = dev.info()
        dev.stats()
        hello = dev.reset()
        assert hello.name == "posix" and dev.reconnects == 1
        after = dev.info()
        assert after.active_slot == before.active_slot == r["slot"]
        assert after.uptime_ms < before.uptime_ms or after.uptime_ms < 1000
        assert dev.read_model(r["slot"]) == sgm_bytes


def test_stream_survives_a_cut_link_exactly_once(device, sgm_file, reference, capsys):
    _flash(device.url, sgm_file, capsys)
    with FaultProxy(device.url) as px, Device(px.url, **FAST) as dev:
        px.cut_after(3000)  # a frame into the stream: the device runs it, its reply is lost
        logits = dev.stream_frames(reference[5]["frames"])
        assert px.counters.cuts == 1 and dev.link.counters.reopens == 1
        # a step run twice or skipped would change every later logit
        np.testing.assert_array_equal(logits, reference[5]["logits"])
        assert dev.predict().step == len(reference[5]["frames"])


def test_byte_noise_shrinks_frames_and_the_upload_stays_exact(device, sgm_bytes):
    # 3e-4 dropped + 3e-4 corrupted per byte each way: the best frame (about 1/p bytes,
    # pysg.device.session.FrameSizer) is under the device's 4096; at 1e-4 it is above it
    with FaultProxy(device.url, drop=3e-4, corrupt=3e-4, seed=3, unit="byte") as px, \
            Device(px.url, reply_timeout=0.05, bytes_per_s=1e7) as dev:
        r = dev.upload_model(sgm_bytes)
        assert dev.read_model(r.slot) == sgm_bytes
        assert dev.link.counters.resends > 0 and dev.frame_budget < dev.hello_info.max_payload
    assert px.counters.to_device.dropped + px.counters.to_device.corrupted > 0


def test_a_step_too_dense_for_one_frame_is_refused_before_streaming(device, sgm_file, capsys):
    _flash(device.url, sgm_file, capsys)
    frames = np.zeros((3, 2, 32, 32), np.uint16)
    frames[1] = 200  # all 2048 inputs in step 1: 2048 pairs of (1-byte delta, 2-byte count) > 6144 bytes
    with Device(device.url, **FAST) as dev:
        dev.start_stream()
        with pytest.raises(ValueError, match="step 1 needs"):
            dev.send_steps(frames)
        assert dev.predict().step == 0  # not even step 0 ran


def test_pysg_emulate_prints_a_url_and_stops_cleanly(tmp_path):
    import select
    import signal
    import socket
    import subprocess

    flash = tmp_path / "flash.bin"
    proc = subprocess.Popen([sys.executable, "-m", "pysg.cli", "emulate", "--tcp", "0", "--flash", str(flash)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert select.select([proc.stdout], [], [], 30)[0], "no URL line within 30 s"
        url = proc.stdout.readline().decode().strip()
        assert url.startswith("socket://127.0.0.1:")
        with Device(url, **FAST) as dev:
            assert dev.hello_info.name == "posix"
            assert dev.info().active_slot is None  # a fresh flash file
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(20)
    assert rc == 0
    assert flash.stat().st_size == 4 * 1024 * 1024
    assert b"Traceback" not in proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    with pytest.raises(ConnectionRefusedError):  # the device process went with it
        socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5).close()


def test_upload_over_a_pty(tmp_path, sgm_bytes):
    with start_posix_device(tmp_path / "flash.bin", None, pty=True) as pty_dev:
        assert pty_dev.url.startswith("/dev/")
        with Device(pty_dev.url, **FAST) as dev:
            r = dev.upload_model(sgm_bytes)
            assert dev.read_model(r.slot) == sgm_bytes


def test_stream_without_a_model_says_how_to_flash_one(tmp_path, capsys):
    with start_posix_device(tmp_path / "flash.bin", tcp_port=0) as fresh:
        assert main(["--quiet", "stream", "--port", fresh.url, str(RECORDING), "--window-ms", "500"]) == 2
    err = capsys.readouterr().err
    assert "has no model" in err and f"pysg flash --port {fresh.url}" in err
