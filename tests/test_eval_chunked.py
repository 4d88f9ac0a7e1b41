# SPDX-License-Identifier: MIT
"""`pysg eval` in bounded memory (issue 14): a folder's recordings are read in chunks and
each labelled gesture fed to an engine as they pass (pysg.chunked). The oracle is the
whole-array path: the recording decoded whole, each gesture sliced, binned and run by
`classify_batch` (pysg.jobs.iter_samples over GestureDataset, what eval did before).
Chunks of a few thousand events cut every gesture many times."""
from __future__ import annotations

import datetime
import shutil
from pathlib import Path

import numpy as np
import pytest

from pysg import _native, jobs
from pysg.chunked import GestureRow, RecordingUnordered, stream_gestures
from pysg.datasets.gesture import GestureDataset, write_labels_csv, write_trials
from pysg.io.aedat31 import write_aedat31
from pysg.recipes import BUNDLED_MODEL, BUNDLED_SAMPLES
from tests.support.realdata import fetch_real_recordings

ENGINES = ["ref", "float"] + (["c"] if _native.available() else [])


def whole_array(root, engine: str, split: str = "test"):
    """The oracle: per-gesture binned samples through classify_batch (batch 1 for the float
    network: its batched numpy path rounds differently with the batch's size)."""
    eng = jobs.open_engine(BUNDLED_MODEL, engine)
    mapped = jobs.MappedSamples(GestureDataset(root, split), eng.model.info)
    out = list(jobs.iter_samples(eng, mapped, batch_size=1 if engine == "float" else 64, keep_logits=True))
    return out, mapped


def assert_same(expected, got):
    assert len(expected) == len(got) > 0
    for a, b in zip(expected, got):
        assert (a.index, a.label, a.prediction, a.steps, a.t_start, a.duration_us) == \
               (b.index, b.label, b.prediction, b.steps, b.t_start, b.duration_us)
        assert Path(a.source).name == Path(b.source).name
        assert np.array_equal(a.scores, b.scores)
        assert (a.spikes, a.synops) == (b.spikes, b.synops)
        assert np.array_equal(a.logits, b.logits)


def overlapping_folder(root: Path, events: np.ndarray, width: int, height: int) -> Path:
    """One test recording with gestures that overlap, repeat, start before the first event
    and end after the last (one after every event: steps without input)."""
    root.mkdir()
    name = "user01_lab.aedat"
    write_aedat31(root / name, events, width=width, height=height, start_time=datetime.datetime(2020, 1, 1))
    t = events["t"]
    t0, t1 = int(t[0]), int(t[-1])
    span = t1 - t0

    def at(x: int) -> int:   # the time of an event: the interval's ends fall on events
        return int(t[min(len(t) - 1, np.searchsorted(t, x))])

    rows = [(1, at(t0 + span // 10), at(t0 + span // 2)), (2, at(t0 + span // 3), at(t0 + 2 * span // 3)),
            (3, at(t0 + span // 3), at(t0 + 2 * span // 3)),                 # overlapping, the same interval
            (4, max(0, t0 - 5000), at(t0 + span // 20)),                     # starts before the first event
            (5, at(t0 + 9 * span // 10), t1 + 40_000), (6, t1 + 50_000, t1 + 90_000),  # ends after, after all
            (7, at(t0 + 12_345), at(t0 + 12_345) + 1)]                       # one microsecond
    write_labels_csv(root / "user01_lab_labels.csv", rows)
    write_trials(root, [], [name])
    return root


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("chunk", [3_000, 77_777])
def test_bundled_recording_chunked_equals_whole(engine, chunk):
    expected, mapped = whole_array(BUNDLED_SAMPLES, engine)
    ev = jobs.evaluate(BUNDLED_MODEL, BUNDLED_SAMPLES, engine=engine, keep_logits=True, chunk_events=chunk)
    assert_same(expected, ev.samples)
    assert (ev.summary["events_in"], ev.summary["events_dropped"]) == (mapped.events_in, mapped.events_dropped)
    assert ev.summary["accuracy"] == jobs.evaluate(BUNDLED_MODEL, BUNDLED_SAMPLES, engine=engine).summary["accuracy"]


@pytest.mark.parametrize("engine", ENGINES)
def test_overlapping_gestures_on_synthetic_events(tmp_path, engine):
    src = GestureDataset(BUNDLED_SAMPLES, "test")._events("user01_fluorescent.aedat")[:120_000]
    root = overlapping_folder(tmp_path / "syn", src, 128, 128)
    expected, mapped = whole_array(root, engine)
    for keep in (True, False):
        ev = jobs.evaluate(BUNDLED_MODEL, root, engine=engine, keep_logits=keep, chunk_events=2_500)
        if keep:
            assert_same(expected, ev.samples)
        assert [(s.prediction, s.scores.tolist(), s.spikes, s.synops) for s in ev.samples] == \
               [(s.prediction, s.scores.tolist(), s.spikes, s.synops) for s in expected]
        assert ev.summary["events_in"] == mapped.events_in


@pytest.mark.parametrize("engine", ENGINES)
def test_real_davis346_recording_chunked_equals_whole(tmp_path, engine):
    data = fetch_real_recordings()
    if isinstance(data, str):
        pytest.skip(data)
    from pysg.io import read_events

    rec = read_events(Path(data) / "davis346.aedat4")
    root = overlapping_folder(tmp_path / "real", rec.events, rec.width, rec.height)
    expected, mapped = whole_array(root, engine)
    ev = jobs.evaluate(BUNDLED_MODEL, root, engine=engine, keep_logits=True, chunk_events=4_000)
    assert_same(expected, ev.samples)
    assert (ev.summary["events_in"], ev.summary["events_dropped"]) == (mapped.events_in, mapped.events_dropped)
    assert mapped.events_dropped > 0 and ev.summary["mapping"]["downsample"] == 3   # 346x260 onto 128x128


def test_unordered_chunks_are_refused_and_the_recording_is_read_whole(tmp_path, monkeypatch):
    eng = jobs.open_engine(BUNDLED_MODEL, "ref")
    ev = GestureDataset(BUNDLED_SAMPLES, "test")._events("user01_fluorescent.aedat")[:20_000]
    from pysg.preprocess import sensor_mapping

    m = sensor_mapping((128, 128), (128, 128))
    rows = [GestureRow(0, 0, int(ev["t"][0]), int(ev["t"][-1]) + 1)]
    with pytest.raises(RecordingUnordered):
        stream_gestures([ev[10_000:], ev[:10_000]], rows, eng.model.info, lambda: eng, m)
    # evaluate then feeds the recording sorted, whole: the same results as in order
    root = overlapping_folder(tmp_path / "u", ev, 128, 128)
    expected, _ = whole_array(root, "ref")
    import pysg.chunked as chunked

    real = chunked.recording_chunks
    monkeypatch.setattr(chunked, "recording_chunks", lambda p, n: reversed(list(real(p, n))))
    assert_same(expected, jobs.evaluate(BUNDLED_MODEL, root, engine="ref", keep_logits=True,
                                        chunk_events=3_000).samples)
