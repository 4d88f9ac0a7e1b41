# SPDX-License-Identifier: MIT
"""Live recognition windows against the per-step logits of the same run, over a file
replay and over DV's TCP stream."""
import json

import numpy as np
import pytest

from pysg.converters.sgm import export_network
from pysg.cli import main
from pysg.io import read_events
from pysg.io.sources import FileSource, TcpSource
from pysg.live import live_predictions
from pysg.model import Network
from pysg.recipes import BUNDLED_MODEL, BUNDLED_SAMPLES
from pysg.runtime import Runtime
from tests.support.event_server import Server, stream_bytes

RECORDING = next(BUNDLED_SAMPLES.glob("*.aedat"))


@pytest.fixture(scope="module")
def model_bytes():
    return export_network(Network.load(BUNDLED_MODEL))


def expected_windows(model_bytes, ev, window_ms):
    """Window predictions from the per-step logits of one whole run (argmax of the
    window's summed logits, smallest index on ties)."""
    rt = Runtime(model_bytes)
    w = int(round(window_ms * 1000 / rt.dt_us))
    steps = (int(ev["t"][-1]) - int(ev["t"][0])) // rt.dt_us + 1
    logits = rt.run_events(ev, n_steps=-(-steps // w) * w).astype(np.int64)  # whole windows
    return [int(np.argmax(logits[a:a + w].sum(axis=0))) for a in range(0, len(logits), w)]


def test_file_replay_windows_match_per_step_logits(model_bytes):
    ev = read_events(RECORDING).events[:120_000]
    rows = list(live_predictions(model_bytes, FileSource(RECORDING, speed=None), window_ms=700))
    full = list(live_predictions(model_bytes, [ev], window_ms=700))
    assert [r["prediction_index"] for r in full] == expected_windows(model_bytes, ev, 700)
    assert sum(r["events"] for r in full) == ev.size
    assert rows[0]["t_start_us"] == int(ev["t"][0])
    assert all(b["t_start_us"] == a["t_end_us"] for a, b in zip(rows, rows[1:]))
    assert sum(r["events"] for r in rows) == read_events(RECORDING).events.size


def test_tcp_stream_windows_equal_the_file(model_bytes, tmp_path):
    ev = read_events(RECORDING).events[:60_000]
    with Server(stream_bytes(tmp_path, ev, compression="lz4")) as srv:
        with TcpSource("127.0.0.1", srv.port, timeout=10) as source:
            rows = list(live_predictions(model_bytes, source, window_ms=500))
    assert [r["prediction_index"] for r in rows] == expected_windows(model_bytes, ev, 500)


def test_cli_run_source_prints_json_windows(model_bytes, tmp_path, capsys):
    sgm = tmp_path / "m.sgm"
    sgm.write_bytes(model_bytes)
    assert main(["run", str(sgm), "--source", str(RECORDING), "--window-ms", "2000", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) >= 13 and all(r["prediction"] for r in rows)
    assert main(["run", str(sgm)]) == 2
    assert "--source" in capsys.readouterr().err
