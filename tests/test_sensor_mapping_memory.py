# SPDX-License-Identifier: MIT
"""Bounded memory (issue 14, item 4): `pysg run` reads a recording in chunks and feeds
it step by step (peak RSS does not grow with the number of events: bench/run_memory.py),
and a model file larger than any valid model is refused before it is read."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from pysg import _native
from pysg.cli import main
from pysg.io.model_file import MAX_MODEL_BYTES, read_model_bytes

ROOT = Path(__file__).resolve().parents[1]


def test_model_file_larger_than_any_valid_model_is_refused_unread(tmp_path, capsys):
    big = tmp_path / "big.sgm"
    with open(big, "wb") as f:          # sparse: 4 GiB + 1 byte, a valid header's magic first
        f.write(b"PSGM")
        f.truncate(MAX_MODEL_BYTES + 2)
    assert MAX_MODEL_BYTES == 2**32 - 1  # the .sgm header's file_size is a u32 (docs/FORMAT.md)
    tracemalloc.start()
    with pytest.raises(ValueError, match="larger than any valid model"):
        read_model_bytes(big)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20                 # nothing of it was read
    rec = tmp_path / "r.npy"
    import numpy as np

    from pysg.events import make_events
    np.save(rec, make_events([1], [2], [0], [1]))
    assert main(["run", str(big), str(rec)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(big) in err[0] and "larger than any valid model" in err[0]


def test_a_stream_without_a_model_header_is_refused_after_64_bytes(tmp_path):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    with pytest.raises(ValueError, match="/dev/zero: byte offset 0: not a regular file and no .sgm header"):
        read_model_bytes("/dev/zero")


def test_a_model_through_a_pipe_is_read_to_its_file_size(tmp_path):
    from pysg.converters.sgm import export_network
    from pysg.model.network import Network
    from pysg.recipes import BUNDLED_MODEL

    data = export_network(Network.load(BUNDLED_MODEL))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                           # the writer: the model, then 3 bytes too many
        os.close(r)
        os.write(w, data)
        os.close(w)
        os._exit(0)
    os.close(w)
    try:
        assert read_model_bytes(f"/dev/fd/{r}") == data
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.write(w, data + b"xyz")
        os.close(w)
        os._exit(0)
    os.close(w)
    try:
        with pytest.raises(ValueError, match=f"byte offset {len(data)}: more bytes than the header's file_size"):
            read_model_bytes(f"/dev/fd/{r}")
    finally:
        os.close(r)
        os.waitpid(pid, 0)


@pytest.mark.skipif(not _native.available(), reason="the C runtime extension is not built")
def test_run_eval_and_stream_peak_rss_do_not_grow_with_the_recording():
    """bench/run_memory.py at test size: 1 M and 4 M events (four chunks; the 50 M runs are in
    BENCHMARKS.md): run, eval and stream, peak RSS within 2x each."""
    out = subprocess.run([sys.executable, "-m", "bench.run_memory", "--events", "1000000", "4000000", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    for command in ("run", "eval", "stream"):
        small, large = [row for row in r["rows"] if row["command"] == command]
        assert (small["events_in"], large["events_in"]) == (1_000_000, 4_000_000), command
        assert large["peak_rss_kib"] <= 2 * small["peak_rss_kib"] and r["ratios"][command] <= 2, command
    assert [row["gestures"] for row in r["rows"] if row["command"] == "eval"] == [1, 2]   # 2 s gestures
