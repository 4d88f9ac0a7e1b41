# SPDX-License-Identifier: MIT
"""`pysg stream` in bounded memory (issue 14): a recording goes to the device as
time-ordered chunks (pysg.chunked.MappedRecording), each window binned and sent once the
chunks pass its end; each labelled gesture gathered as they pass. Oracle: the whole
recording binned at once (pysg.datasets.binning.bin_events) and run by the integer
reference: per window its steps' logits, their sum's argmax and its event count; and the
whole-array call of the same method. Chunks of a few thousand events cut every window."""
from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest

from pysg import jobs
from pysg.chunked import MappedRecording
from pysg.converters.sgm import export_network
from pysg.datasets.binning import bin_events
from pysg.datasets.gesture import read_labels_csv
from pysg.device.client import Device
from pysg.device.posix import start_posix_device
from pysg.io import read_events
from pysg.io.aedat31 import write_aedat31
from pysg.model.network import Network
from pysg.recipes import BUNDLED_MODEL
from tests.support.bundled import RECORDING
from tests.support.realdata import fetch_real_recordings


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    sgm = export_network(Network.load(BUNDLED_MODEL))
    with start_posix_device(tmp_path_factory.mktemp("dev") / "flash.bin") as d:
        with Device(d.url) as dev:
            dev.upload_model(sgm)
            yield dev, sgm


def reference_windows(sgm: bytes, events: np.ndarray, w: int) -> list[dict]:
    """Every window of `events` (mapped, sorted) from the whole recording binned at once."""
    eng = jobs.open_engine(sgm, "ref")
    info, dt = eng.model.info, eng.dt_us
    t = events["t"].astype(np.int64)
    t0 = int(t[0])
    n_win = -(-((int(t[-1]) - t0) // dt + 1) // w)
    rel = events.copy()
    rel["t"] = t - t0
    frames = bin_events(rel, duration_us=n_win * w * dt, dt_us=dt, sensor_size=tuple(info.sensor_size),
                        downsample=info.downsample, channels=info.input_shape[0])
    logits = eng.run_frames(frames.reshape(len(frames), -1)).astype(np.int32)
    bounds = np.searchsorted(t, t0 + np.arange(n_win + 1) * w * dt, side="left")
    return [{"t_start_us": t0 + k * w * dt, "prediction_index": int(np.argmax(logits[k * w:(k + 1) * w].sum(0))),
             "events": int(bounds[k + 1] - bounds[k]), "logits": logits[k * w:(k + 1) * w]} for k in range(n_win)]


def check_windows(dev, sgm, path: Path, chunk: int, window_ms: float) -> int:
    rec = MappedRecording(path, dev.model_header(), chunk_events=chunk)
    assert rec.ordered
    whole = np.concatenate(list(rec.chunks()))
    assert len(whole) == rec.events_kept
    got = list(dev.stream_events(rec.chunks(), window_ms=window_ms, logits=True))
    want = reference_windows(sgm, whole, int(round(window_ms * 1000 / dev.model_header().dt_us)))
    assert len(got) == len(want) > 2
    for g, r in zip(got, want):
        assert (g["t_start_us"], g["prediction_index"], g["events"]) == \
               (r["t_start_us"], r["prediction_index"], r["events"])
        assert np.array_equal(g["logits"], r["logits"])
    same = list(dev.stream_events(whole, window_ms=window_ms, logits=True))   # the array, one chunk
    assert [{k: v for k, v in r.items() if k != "logits"} for r in same] == \
           [{k: v for k, v in r.items() if k != "logits"} for r in got]
    return rec.events_dropped


@pytest.mark.parametrize("chunk", [2_000, 100_000])
def test_windows_of_the_bundled_recording_chunked(device, chunk):
    dev, sgm = device
    assert check_windows(dev, sgm, RECORDING, chunk, 500.0) == 0


def test_windows_of_synthetic_events_on_every_step_boundary(device, tmp_path):
    """Events at exact multiples of dt from the first: every window's end has events."""
    from pysg.events import make_events

    dev, sgm = device
    rng = np.random.default_rng(3)
    n = 40_000
    t = np.sort(rng.integers(0, 400, n)) * 10_000 + 1_000_000
    path = tmp_path / "grid.npy"
    np.save(path, make_events(rng.integers(0, 128, n), rng.integers(0, 128, n), t, rng.integers(0, 2, n)))
    assert check_windows(dev, sgm, path, 1_500, 100.0) == 0


def test_windows_of_a_real_davis346_recording_chunked(device, tmp_path):
    data = fetch_real_recordings()
    if isinstance(data, str):
        pytest.skip(data)
    dev, sgm = device
    assert check_windows(dev, sgm, Path(data) / "davis346.aedat4", 3_000, 120.0) > 0  # 346x260 onto 128x128


def test_gestures_chunked_equal_the_whole_array(device, tmp_path):
    dev, sgm = device
    labels = read_labels_csv(RECORDING.with_name("user01_fluorescent_labels.csv"))
    rows = [(int(r["cls"]), int(r["t_start"]), int(r["t_end"])) for r in labels]
    rows.insert(3, (rows[2][0], rows[2][1] + 500_000, rows[3][2]))        # overlaps two others
    from pysg.datasets.gesture import LABEL_DTYPE

    lab = np.array(rows, LABEL_DTYPE)
    rec = MappedRecording(RECORDING, dev.model_header(), chunk_events=5_000)
    got = list(dev.stream_gestures(rec.chunks(), lab, logits=True))
    want = list(dev.stream_gestures(read_events(RECORDING).events, lab, logits=True))
    assert len(got) == len(lab) == 12
    for g, r in zip(got, want):
        assert {k: v for k, v in g.items() if k != "logits"} == {k: v for k, v in r.items() if k != "logits"}
        assert np.array_equal(g["logits"], r["logits"])
    # the oracle for the scores: the integer reference on each gesture binned whole
    ev = jobs.evaluate(sgm, RECORDING.parent, engine="ref")
    by_interval = {(s.t_start, s.t_start + s.duration_us): s for s in ev.samples}
    for g in got:
        s = by_interval.get((g["t_start_us"], g["t_end_us"]))
        if s is not None:
            assert g["scores"] == s.scores.tolist() and g["prediction_index"] == s.prediction


def test_an_unordered_recording_is_streamed_sorted(device, tmp_path):
    dev, sgm = device
    ev = read_events(RECORDING).events[:60_000]
    a, b = tmp_path / "a.aedat", tmp_path / "b.aedat"
    write_aedat31(a, ev[30_000:], start_time=datetime.datetime(2020, 1, 1))
    write_aedat31(b, ev[:30_000], start_time=datetime.datetime(2020, 1, 1))
    # the packets of b after a's: one file whose second half is earlier in time
    head_a, head_b = a.read_bytes(), b.read_bytes()
    cut = head_b.index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n")
    path = tmp_path / "unordered.aedat"
    path.write_bytes(head_a + head_b[cut:])
    rec = MappedRecording(path, dev.model_header(), chunk_events=4_000)
    assert not rec.ordered and rec.events_in == 60_000
    got = list(dev.stream_events(rec.chunks(), window_ms=200.0, logits=True))
    want = reference_windows(sgm, ev, 20)
    assert [(g["prediction_index"], g["events"]) for g in got] == [(r["prediction_index"], r["events"]) for r in want]
