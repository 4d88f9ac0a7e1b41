# SPDX-License-Identifier: MIT
"""`pysg bench MODEL [RECORDING]`: the JSON's numbers agree with the recording (steps =
its duration / dt), with `pysg inspect` (arena), with the file (model bytes), with each
other (percentiles ordered, throughput = steps / time), and the C runtime with its
integer reference (same prediction, same dropped events)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pysg.cli import main
from pysg.converters.sgm import export_network
from pysg.io import read_events
from pysg.model.network import Network
from pysg.recipes import BUNDLED_MODEL
from tests.support.bundled import RECORDING


@pytest.fixture(scope="module")
def sgm(tmp_path_factory):
    p = tmp_path_factory.mktemp("bench") / "g.sgm"
    p.write_bytes(export_network(Network.load(BUNDLED_MODEL)))
    return p


def run_json(capsys, *argv) -> dict:
    assert main(["bench", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def check_consistent(r: dict, model_path, n_events: int, t_first: int, t_last: int) -> None:
    dt = r["dt_us"]
    assert r["steps"] == (t_last - t_first) // dt + 1
    assert math.isclose(r["duration_s"], r["steps"] * dt / 1e6)
    assert r["events_in"] == n_events and 0 <= r["events_dropped"] <= n_events
    lat = r["latency_us"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["mean"] <= lat["max"] and lat["mean"] * r["steps"] <= r["total_s"] * 1e6 * 1.001
    tp = r["throughput"]
    assert math.isclose(tp["steps_per_s"], r["steps"] / r["total_s"])
    assert math.isclose(tp["events_per_s"], n_events / r["total_s"])
    assert math.isclose(tp["x_real_time"], r["duration_s"] / r["total_s"])
    assert r["model_bytes"] == model_path.stat().st_size
    assert 10 << 20 < r["peak_rss_bytes"] < 8 << 30


def test_bench_c_and_ref_on_bundled_recording(capsys, sgm):
    ev = read_events(RECORDING).events
    t = ev["t"].astype(np.int64)
    c = run_json(capsys, sgm)  # default engine c, default recording: the bundled one
    assert c["engine"] == "c" and c["recording"] == str(RECORDING) and c["dt_us"] == 10000
    check_consistent(c, sgm, len(ev), int(t.min()), int(t.max()))
    assert main(["inspect", str(sgm), "--json"]) == 0
    assert c["arena_bytes"] == json.loads(capsys.readouterr().out)["arena_bytes"] > 0

    ref = run_json(capsys, sgm, RECORDING, "--engine", "ref")
    check_consistent(ref, sgm, len(ev), int(t.min()), int(t.max()))
    assert (ref["steps"], ref["events_dropped"], ref["prediction"], ref["arena_bytes"]) == \
        (c["steps"], c["events_dropped"], c["prediction"], c["arena_bytes"])


def test_bench_float_and_a_short_recording(capsys, tmp_path):
    ev = read_events(RECORDING).events
    part = ev[(ev["t"] >= ev["t"][0]) & (ev["t"] < ev["t"][0] + 1_000_000)]
    rec = tmp_path / "short.npy"
    np.save(rec, part)
    r = run_json(capsys, BUNDLED_MODEL, rec, "--engine", "float")
    check_consistent(r, BUNDLED_MODEL, len(part), int(part["t"].min()), int(part["t"].max()))
    assert r["arena_bytes"] is None and r["steps"] <= 100


def test_bench_text_and_bad_input(capsys, sgm, tmp_path):
    assert main(["bench", str(sgm)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[4].startswith("  prediction ")
    assert out[0].startswith(f"{sgm} on {RECORDING} (engine c): 2672 steps of 10000 us")
    assert out[1].startswith("  latency per step (us): p50 ") and "x real time" in out[2] and "arena" in out[3]
    assert main(["bench", str(sgm), "--engine", "float"]) == 2
    err = capsys.readouterr().err
    assert "float .npz" in err and len(err.strip().splitlines()) == 1


def test_bench_maps_a_larger_recording_onto_the_sensor(capsys, sgm, tmp_path):
    """A 256x256 recording made from the bundled one (x -> 2x + 1) maps back onto the 128x128
    sensor by the default rule (whole window, downsample 2): the same steps and prediction as
    the original; a 1280x720 placement of it (offset into the right half) is dropped in part,
    and the counts equal pysg.preprocess's mapping applied by hand."""
    from pysg.io.aedat4_writer import write_aedat4
    from pysg.preprocess import apply_mapping, sensor_mapping

    ev = read_events(RECORDING).events
    ev = ev[ev["t"] < ev["t"][0] + 2_000_000]
    big = ev.copy()
    big["x"], big["y"] = ev["x"].astype(np.int64) * 2 + 1, ev["y"].astype(np.int64) * 2 + 1
    write_aedat4(tmp_path / "big.aedat4", big, width=256, height=256)
    small = tmp_path / "small.npy"
    np.save(small, ev)
    want = run_json(capsys, sgm, small)
    got = run_json(capsys, sgm, tmp_path / "big.aedat4")
    assert got["mapping"] == {"recording": [256, 256], "sensor": [128, 128], "crop": [0, 0, 256, 256],
                              "downsample": 2, "offset": [0, 0], "source": "default"}
    assert (got["steps"], got["prediction"], got["events_in"], got["events_dropped"]) == \
        (want["steps"], want["prediction"], len(ev), 0)
    wide = ev.copy()
    wide["x"] = ev["x"].astype(np.int64) * 5 + 700  # 700..1335: partly right of the 1280-pixel sensor
    wide = wide[wide["x"] < 1280]
    write_aedat4(tmp_path / "wide.aedat4", wide, width=1280, height=720)
    got = run_json(capsys, sgm, tmp_path / "wide.aedat4")
    m = sensor_mapping((1280, 720), (128, 128))
    assert got["events_in"] == len(wide) and got["events_dropped"] == len(wide) - len(apply_mapping(wide, m))
    assert got["events_dropped"] > 0 and got["mapping"]["crop"] == list(m.crop)
