# SPDX-License-Identifier: MIT
"""A recording of another size is mapped onto the model's sensor by one rule
(`pysg.preprocess.sensor_mapping`, docs/ARCHITECTURE.md "Recordings of another size"), on the
host, before any engine: run (C and reference), eval, live sources and the device stream
see the same events. Truth: windows worked out by hand from the documented rule, event
counts from plain numpy over the decoded file, and the integer reference engine."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pysg import _native
from pysg.cli import main
from pysg.events import EVENT_DTYPE
from pysg.io import read_events
from pysg.preprocess import apply_mapping, drop_warning, parse_crop, sensor_mapping

needs_c = pytest.mark.skipif(not _native.available(), reason="the C runtime extension is not built")

# (recording, crop (x0, y0, w, h), downsample, offset) onto a 128 x 128 sensor, by hand:
# the largest centred square, the smallest integer factor that fits, centred on the sensor.
RULE_128 = [
    ((128, 128), (0, 0, 128, 128), 1, (0, 0)),          # DVS128: the identity
    ((346, 260), (43, 0, 260, 260), 3, (20, 20)),       # DAVIS346: 260/3 -> 87 px, (128-87)//2
    ((240, 180), (30, 0, 180, 180), 2, (19, 19)),       # DAVIS240: 90 px
    ((320, 240), (40, 0, 240, 240), 2, (4, 4)),         # DVXplorer Lite: 120 px
    ((640, 480), (80, 0, 480, 480), 4, (4, 4)),         # DVXplorer / Gen3: 120 px
    ((1280, 720), (280, 0, 720, 720), 6, (4, 4)),       # IMX636: 120 px
    ((64, 48), (0, 0, 64, 48), 1, (32, 40)),            # smaller: whole, centred
    ((128, 300), (0, 86, 128, 128), 1, (0, 0)),         # taller than wide
]


@pytest.mark.parametrize("recording,crop,ds,offset", RULE_128)
def test_default_rule_by_hand(recording, crop, ds, offset):
    m = sensor_mapping(recording, (128, 128))
    assert (m.crop, m.downsample, m.offset) == (crop, ds, offset)
    assert m.source == ("identity" if recording == (128, 128) else "default")


def test_non_square_sensor_and_overrides():
    m = sensor_mapping((640, 480), (64, 32))          # aspect 2:1 -> 640 x 320 window, factor 10
    assert (m.crop, m.downsample, m.offset) == ((0, 80, 640, 320), 10, (0, 0))
    m = sensor_mapping((346, 260), (128, 128), downsample=2)  # the 256 x 256 centred window
    assert (m.crop, m.downsample, m.offset, m.source) == ((45, 2, 256, 256), 2, (0, 0), "option")
    m = sensor_mapping((346, 260), (128, 128), crop=(10, 20, 200, 100))
    assert (m.crop, m.downsample, m.offset) == ((10, 20, 200, 100), 2, (14, 39))
    with pytest.raises(ValueError, match="not inside the 346x260 recording"):
        sensor_mapping((346, 260), (128, 128), crop=(200, 0, 200, 10))
    assert sensor_mapping(None, (128, 128)).source == "identity"


def test_apply_mapping_events_by_hand():
    ev = np.zeros(6, EVENT_DTYPE)
    # DAVIS346 -> 128: window x 43..302, y 0..259, //3, +20
    ev["x"] = [42, 43, 302, 303, 100, 345]
    ev["y"] = [0, 0, 259, 10, 130, 259]
    ev["t"] = np.arange(6) * 10
    ev["p"] = [0, 1, 1, 0, 1, 0]
    out = apply_mapping(ev, sensor_mapping((346, 260), (128, 128)))
    assert out["t"].tolist() == [10, 20, 40]                     # x=42 and x>=303 dropped, order kept
    assert out["x"].tolist() == [20, (302 - 43) // 3 + 20, (100 - 43) // 3 + 20]
    assert out["y"].tolist() == [20, 259 // 3 + 20, 130 // 3 + 20]
    assert out["p"].tolist() == [1, 1, 1]


def test_parse_crop_and_warning_threshold():
    assert parse_crop("43,0,260,260") == (43, 0, 260, 260)
    for bad in ("1,2,3", "a,b,c,d", "-1,0,5,5", "0,0,0,5"):
        with pytest.raises(ValueError, match="X,Y,W,H"):
            parse_crop(bad)
    m = sensor_mapping((640, 480), (128, 128))
    assert drop_warning("f", 100, 20, m) is None                  # 20 %: no warning
    line = drop_warning("f", 100, 21, m)
    assert "21 of 100 events (21 %) dropped" in line and "480x480 window at (80,0)" in line and "--crop" in line


# ------------------------------------------------------------------ the real recordings

REAL = {  # file: (package, format, width, height, events in the file: the counts, pysg info)
    "davis346.aedat4": ("faery", "aedat4", 346, 260, 78_830),
    "evt2.raw": ("faery", "evt2", 640, 480, 521_252),
    "evt3.raw": ("faery", "evt3", 1280, 720, 1_218_618),
    "gen4.dat": ("faery", "dat", 1280, 720, 1_218_618),
    "dvxplorer_class1.aedat4": ("aermanager", "aedat4", 320, 240, 111_954),
    "dvxplorer_class2.aedat4": ("aermanager", "aedat4", 320, 240, 323_963),
}


@pytest.fixture(scope="module")
def aer_data():
    from tests.support.realdata import fetch_aermanager_recordings

    got = fetch_aermanager_recordings()
    if isinstance(got, str):
        pytest.skip(got)
    return got


@pytest.fixture(scope="module")
def sgm_path(tmp_path_factory):
    from pysg.converters.sgm import export_network
    from pysg.model.network import Network
    from pysg.recipes import BUNDLED_MODEL

    p = tmp_path_factory.mktemp("model") / "gesture.sgm"
    p.write_bytes(export_network(Network.load(BUNDLED_MODEL)))
    return p


def _run(capsys, *argv):
    assert main(list(argv)) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.err


@needs_c
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_recording_c_equals_reference_and_most_events_kept(name, request, sgm_path, tmp_path, capsys):
    package, fmt, w, h, n = REAL[name]
    path = request.getfixturevalue("real_data" if package == "faery" else "aer_data") / name
    rec = read_events(path)
    assert (rec.format, rec.width, rec.height, rec.events.size) == (fmt, w, h, n)
    got = {}
    for engine in ("c", "ref"):
        dump = tmp_path / f"{engine}.npy"
        r, err = _run(capsys, "run", str(sgm_path), str(path), "--json", "--engine", engine,
                      "--dump-logits", str(dump))
        got[engine] = (r, np.load(dump), err)
    (rc, lc, err), (rr, lr, _) = got["c"], got["ref"]
    np.testing.assert_array_equal(lc, lr)                          # logits per step, C == reference
    assert lc.shape[0] == rc["steps"] > 0 and rc["scores"] == rr["scores"]
    # events_in / events_dropped against plain numpy over the decoded file and the hand rule
    x0, y0, cw, ch = next(c for r_, c, _, _ in RULE_128 if r_ == (w, h))
    x, y = rec.events["x"].astype(np.int64), rec.events["y"].astype(np.int64)
    outside = int((~((x >= x0) & (x < x0 + cw) & (y >= y0) & (y < y0 + ch))).sum())
    for r in (rc, rr):
        assert r["events_in"] == n and r["events_dropped"] == outside
        assert r["mapping"]["recording"] == [w, h] and r["mapping"]["crop"] == [x0, y0, cw, ch]
    assert outside < n / 2                                         # most events are kept
    assert ("warning:" in err) == (outside > 0.2 * n)              # said on stderr when > 20 % dropped
    if "warning:" in err:
        assert f"{outside} of {n} events" in err and "--crop" in err


@needs_c
def test_overrides_on_a_real_recording(real_data, sgm_path, capsys):
    path = str(real_data / "davis346.aedat4")
    r, err = _run(capsys, "run", sgm_path.as_posix(), path, "--json", "--crop", "100,100,64,64")
    ev = read_events(path).events
    x, y = ev["x"].astype(np.int64), ev["y"].astype(np.int64)
    inside = int(((x >= 100) & (x < 164) & (y >= 100) & (y < 164)).sum())
    assert r["events_dropped"] == ev.size - inside and r["mapping"]["source"] == "option"
    assert r["mapping"]["downsample"] == 1 and r["mapping"]["offset"] == [32, 32]
    assert "warning:" in err and "64x64 window at (100,100)" in err
    r, _ = _run(capsys, "run", sgm_path.as_posix(), path, "--json", "--downsample", "2")
    assert r["mapping"]["crop"] == [45, 2, 256, 256] and r["mapping"]["downsample"] == 2
    assert main(["run", sgm_path.as_posix(), path, "--crop", "300,0,100,100"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not inside the 346x260 recording" in err[0]
    with pytest.raises(SystemExit) as e:
        main(["run", sgm_path.as_posix(), path, "--crop", "1,2,3"])
    assert e.value.code == 2


@needs_c
def test_live_source_maps_like_run(real_data, sgm_path, capsys):
    """`run --source FILE` feeds the same mapped events: its window scores sum to what
    the engine gives the mapped recording (C == reference here too)."""
    from pysg.io.sources import FileSource
    from pysg.live import live_predictions

    path = real_data / "davis346.aedat4"
    rows = {}
    for engine in ("c", "ref"):
        totals = {}
        with FileSource(path) as src:
            rows[engine] = list(live_predictions(sgm_path, src, window_ms=500, engine=engine, totals=totals))
        ev = read_events(path).events
        r, _ = _run(capsys, "run", str(sgm_path), str(path), "--json", "--engine", engine)
        assert totals["events_in"] == ev.size == r["events_in"]
        assert totals["events_dropped"] == r["events_dropped"] == ev.size - sum(w["events"] for w in rows[engine])
    assert rows["c"] == rows["ref"]
    assert main(["run", str(sgm_path), "--source", str(path), "--json"]) == 0
    out = capsys.readouterr()
    assert [json.loads(x) for x in out.out.splitlines()] == rows["c"]
    assert '"source": "default"' in out.err and '"events_in": 78830' in out.err


def test_eval_reports_mapping(tmp_path, sgm_path, capsys):
    """eval on a DVS128-layout folder: the identity (nothing dropped); a --crop drops
    exactly the events outside it, counted from the decoded samples."""
    from pysg.datasets.gesture import GestureDataset
    pytest.importorskip("scipy")
    from pysg.synth.dataset import synthesize_dataset

    synthesize_dataset(tmp_path / "ds", train_users=1, test_users=1, lightings_per_user=1, seconds=1.0, seed=3,
                       workers=1)
    samples = list(GestureDataset(tmp_path / "ds", "test"))
    n = sum(s.events.size for s in samples)
    r, err = _run(capsys, "eval", str(sgm_path), str(tmp_path / "ds"), "--json", "--engine", "ref")
    assert (r["events_in"], r["events_dropped"], r["mapping"]["source"]) == (n, 0, "identity") and not err
    r, err = _run(capsys, "eval", str(sgm_path), str(tmp_path / "ds"), "--json", "--engine", "ref",
                  "--crop", "16,16,96,96")
    inside = sum(int(((s.events["x"] >= 16) & (s.events["x"] < 112) & (s.events["y"] >= 16)
                      & (s.events["y"] < 112)).sum()) for s in samples)
    assert r["events_dropped"] == n - inside and r["mapping"]["crop"] == [16, 16, 96, 96]


@pytest.mark.skipif(not _native.available(), reason="the C runtime extension is not built")
def test_device_stream_maps_like_live(real_data, sgm_path, tmp_path, capsys):
    """The device path: `pysg stream` of a DAVIS346 recording on the POSIX device gives
    the rows `run --source` gives on the host (C runtime), mapping included."""
    pytest.importorskip("pysg._sg_device", reason="the POSIX device extension is not built")
    from pysg.device.posix import start_posix_device

    path = real_data / "davis346.aedat4"
    with start_posix_device(tmp_path / "flash.bin", tcp_port=0) as dev:
        assert main(["flash", str(sgm_path), "--port", dev.url]) == 0
        capsys.readouterr()
        assert main(["stream", str(path), "--port", dev.url, "--window-ms", "500", "--json"]) == 0
        out = capsys.readouterr()
    rows = [json.loads(x) for x in out.out.splitlines()]
    assert main(["run", str(sgm_path), "--source", str(path), "--json"]) == 0
    want = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rows == want and len(rows) >= 4
    assert '"crop": [43, 0, 260, 260]' in out.err and '"events_in": 78830' in out.err


@needs_c
@pytest.mark.parametrize("engine", ["c", "ref"])
@pytest.mark.parametrize("name", ["davis346.aedat4", "evt3.raw"])
def test_run_file_in_chunks_equals_the_whole_recording(name, engine, real_data, sgm_path):
    """`run_file` reads in chunks and feeds step by step (bounded memory); with chunks of
    997 events (chunk edges inside steps) it gives what `run` gives on the whole mapped
    recording at once: logits per step, scores, statistics."""
    from pysg import jobs

    rec = read_events(real_data / name)
    eng = jobs.open_engine(sgm_path, engine)
    m = sensor_mapping((rec.width, rec.height), tuple(eng.model.info.sensor_size))
    kept = apply_mapping(rec.events, m)
    whole = jobs.run(eng, kept)
    chunked = jobs.run_file(sgm_path, real_data / name, engine=engine, chunk_events=997)
    np.testing.assert_array_equal(chunked.pop("logits"), whole.pop("logits"))
    assert chunked.pop("mapping") == m.to_dict()
    assert chunked.pop("events_in") == rec.events.size and whole.pop("events_in") == kept.size
    assert chunked.pop("events_dropped") == whole.pop("events_dropped") + rec.events.size - kept.size
    assert chunked == whole
