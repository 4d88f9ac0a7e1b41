# SPDX-License-Identifier: MIT
"""`pysg plot` from the command line: the raster names truth and prediction (the
prediction `pysg eval` makes for that sample, by the model kind's scoring rule),
`plot events` takes one recording, confusion axes use the CLI's vocabulary."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pysg.cli import main
from pysg.io import read_events
from pysg.plots import _pyplot, raster_figure
from pysg.recipes import BUNDLED_MODEL, BUNDLED_SAMPLES

PNG = b"\x89PNG\r\n\x1a\n"


def _json_of(argv) -> dict:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["--quiet", *map(str, argv), "--json"]) == 0
    return json.loads(buf.getvalue())


@pytest.fixture(scope="module")
def bundled_eval(tmp_path_factory):
    out = tmp_path_factory.mktemp("plots") / "eval.json"
    r = _json_of(["eval", BUNDLED_MODEL, BUNDLED_SAMPLES])
    out.write_text(json.dumps(r))
    return out, r


@pytest.fixture(scope="module")
def weak(tmp_path_factory):
    """A model trained one epoch on a tiny synthetic set: most predictions wrong, so the
    title's prediction cannot be the truth printed twice."""
    root = tmp_path_factory.mktemp("weak")
    data, model = root / "data", root / "m.npz"
    _json_of(["synth", data, "--train-users", "1", "--test-users", "1", "--lightings-per-user", "1",
              "--seconds", "0.6", "--workers", "1"])
    _json_of(["train", data, "-o", model, "--epochs", "1"])
    return data, model, _json_of(["eval", model, data])


def test_raster_title_names_truth_and_the_eval_prediction(weak, tmp_path):
    data, model, ev = weak
    wrong = [i for i, r in enumerate(ev["samples"]) if r["prediction_index"] != r["truth_index"]]
    right = [i for i, r in enumerate(ev["samples"]) if r["prediction_index"] == r["truth_index"]]
    assert wrong, "the weak model should miss some samples"
    for sample in wrong[:2] + right[:1]:
        row = ev["samples"][sample]
        fig = raster_figure(model, data, sample=sample)
        try:
            title = fig._suptitle.get_text()
        finally:
            _pyplot().close(fig)
        assert f"truth: {row['truth']} " in title and f"prediction: {row['prediction']} " in title, title
        assert ("(correct)" in title) == (sample in right)
    out = tmp_path / "r.png"
    assert main(["plot", "raster", str(data), "--model", str(model), "--sample", str(wrong[0]), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG


def test_plot_events_of_one_recording_from_the_cli(tmp_path, capsys):
    rec = next(Path(BUNDLED_SAMPLES).glob("*.aedat"))
    out = tmp_path / "ev.png"
    assert main(["plot", "events", str(rec), "-o", str(out)]) == 0
    n = read_events(rec).events.size                    # drawn at its own size: nothing dropped
    assert capsys.readouterr().out.strip() == f"wrote {out} ({n} events in, 0 dropped)"
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 10_000


def test_confusion_plot_of_eval_json(bundled_eval, tmp_path):
    src, _ = bundled_eval
    out = tmp_path / "c.png"
    assert main(["plot", "confusion", str(src), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG
