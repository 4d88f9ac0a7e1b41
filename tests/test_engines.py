# SPDX-License-Identifier: MIT
"""One engine interface (pysg.engines, pysg.jobs): `--engine ref` runs every model kind and
equals the C runtime, through the CLI and the library; the engine layer never imports
pysg.converters; a missing C extension gives one clear error."""
import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pysg import jobs
from pysg.cli import main
from pysg.engines import EngineNotAvailable, create_engine
from pysg.recipes import BUNDLED_MODEL, BUNDLED_SAMPLES
from pysg.scoring import SPIKING_GAMMA, WHOLE_WINDOW

pytest.importorskip("flatbuffers")
from pysg.converters.sgm import export_network  # noqa: E402
from pysg.converters.tflite_sgm import tflite_to_sgm  # noqa: E402
from pysg.converters.tflite_writer import OpSpec, TensorSpec, write_tflite  # noqa: E402
from pysg.model.network import Network  # noqa: E402

RECORDING = next(BUNDLED_SAMPLES.glob("*.aedat"))


def _cnn_tflite(seed: int = 3) -> bytes:
    """input (1, 8, 8, 4) -> 3x3 conv stride 2 (6 ch, ReLU) -> reshape -> FC 96 -> 11."""
    rng = np.random.default_rng(seed)
    q = lambda s, zp: ([np.float32(s)], [zp])  # noqa: E731
    t = [TensorSpec("input", (1, 8, 8, 4), "int8", *q(0.05, -128)),
         TensorSpec("w1", (6, 3, 3, 4), "int8", [np.float32(0.01)] * 6, [0] * 6, 0,
                    rng.integers(-127, 128, (6, 3, 3, 4), dtype=np.int8)),
         TensorSpec("b1", (6,), "int32", [np.float32(0.0005)] * 6, [0] * 6, 0,
                    rng.integers(-2000, 2000, 6).astype(np.int32)),
         TensorSpec("a1", (1, 4, 4, 6), "int8", *q(0.08, -128)),
         TensorSpec("shape", (2,), "int32", data=np.array([1, 96], np.int32)),
         TensorSpec("flat", (1, 96), "int8", *q(0.08, -128)),
         TensorSpec("w2", (11, 96), "int8", [np.float32(0.01)], [0], 0,
                    rng.integers(-127, 128, (11, 96), dtype=np.int8)),
         TensorSpec("b2", (11,), "int32", [np.float32(0.0008)], [0], 0, rng.integers(-500, 500, 11).astype(np.int32)),
         TensorSpec("out", (1, 11), "int8", *q(0.3, 0))]
    ops = [OpSpec("CONV_2D", [0, 1, 2], [3], dict(padding="SAME", stride_h=2, stride_w=2, activation="RELU")),
           OpSpec("RESHAPE", [3, 4], [5], dict(new_shape=[1, 96])),
           OpSpec("FULLY_CONNECTED", [5, 6, 7], [8], dict(activation="NONE"))]
    return write_tflite(t, ops, [0], [8])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    v1, v2 = root / "gesture.sgm", root / "cnn.sgm"
    v1.write_bytes(export_network(Network.load(BUNDLED_MODEL)))
    v2.write_bytes(tflite_to_sgm(_cnn_tflite(), input="events", window_steps=4, slices=2, polarities=2,
                                 sensor=(128, 128), count_map="count"))
    return {"v1": v1, "v2": v2}


@pytest.mark.parametrize("kind", ["v1", "v2"])
def test_library_evaluate_ref_equals_c(models, kind):
    got = {e: jobs.evaluate(models[kind], BUNDLED_SAMPLES, engine=e, keep_logits=True) for e in ("ref", "c")}
    ref, c = got["ref"], got["c"]
    assert len(ref.samples) == len(c.samples) == 11
    for a, b in zip(ref.samples, c.samples):
        assert a.prediction == b.prediction and a.steps == b.steps
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.logits, b.logits)
        assert (a.spikes, a.synops) == (b.spikes, b.synops)
    assert ref.summary.pop("engine") == "ref" and c.summary.pop("engine") == "c"
    assert ref.summary == c.summary
    assert len({s.prediction for s in c.samples}) > 1 or kind == "v2"  # the comparison is not of constants


@pytest.mark.parametrize("kind", ["v1", "v2"])
def test_library_run_ref_equals_c(models, kind):
    ref, c = (jobs.run_file(models[kind], RECORDING, engine=e) for e in ("ref", "c"))
    np.testing.assert_array_equal(ref.pop("logits"), c.pop("logits"))
    assert ref == c
    assert ref["synops"] > 0 and len(set(ref["scores"])) > 1


@pytest.mark.parametrize("kind", ["v1", "v2"])
def test_cli_eval_and_run_ref_equal_c(models, kind, tmp_path, capsys):
    out = {}
    for e in ("ref", "c"):
        assert main(["eval", str(models[kind]), str(BUNDLED_SAMPLES), "--engine", e, "--json"]) == 0
        ev = json.loads(capsys.readouterr().out)
        dump = tmp_path / f"{e}.npy"
        assert main(["run", str(models[kind]), str(RECORDING), "--one-sample", "--engine", e, "--json",
                     "--dump-logits", str(dump)]) == 0
        out[e] = ev, json.loads(capsys.readouterr().out), np.load(dump)
    (ev_r, run_r, lg_r), (ev_c, run_c, lg_c) = out["ref"], out["c"]
    assert ev_r.pop("engine") == "ref" and ev_c.pop("engine") == "c"
    assert ev_r == ev_c and ev_r["n"] == 11
    assert run_r == run_c
    assert lg_r.dtype == lg_c.dtype == np.int32 and lg_r.shape == (run_r["steps"], 11)
    np.testing.assert_array_equal(lg_r, lg_c)


def test_live_ref_equals_c(models):
    from pysg.io import read_events
    from pysg.live import live_predictions

    ev = read_events(RECORDING).events
    chunks = np.array_split(ev, 7)
    rows = {e: list(live_predictions(models["v1"], chunks, window_ms=700, engine=e)) for e in ("ref", "c")}
    assert rows["ref"] == rows["c"] and len(rows["c"]) > 5


def test_engines_share_the_time_base(models):
    """feed / advance_to / step / score_from mean the same on the reference and the C runtime."""
    from pysg.io import read_events

    ev = read_events(RECORDING).events[:20_000]
    t0 = int(ev["t"][0])
    engines = [jobs.open_engine(models["v1"], e) for e in ("ref", "c")]
    for eng in engines:
        eng.reset()
        eng.score_from(3)
        eng.set_origin(t0 - 5_000)
        for part in np.array_split(ev, 5):
            eng.feed(part)
        eng.advance_to(int(ev["t"][-1]) + 25_000)
        eng.step(np.ones(eng.input_shape, np.uint16))
    ref, c = engines
    assert ref.step_index == c.step_index > 0
    assert ref.stats == c.stats
    np.testing.assert_array_equal(ref.logits, c.logits)
    np.testing.assert_array_equal(ref.scores, c.scores)
    assert ref.prediction == c.prediction
    for eng in engines:  # an event before the open step is refused by both
        with pytest.raises((ValueError, RuntimeError)):
            eng.feed(ev[:1])


def test_scoring_rule_is_the_kinds(models):
    assert jobs.load_model(models["v1"]).rule == SPIKING_GAMMA
    assert jobs.load_model(models["v2"]).rule == WHOLE_WINDOW
    assert jobs.load_model(BUNDLED_MODEL).rule == SPIKING_GAMMA
    assert SPIKING_GAMMA.first_step(99) == math.floor(0.2 * 99)


def test_float_engine_refuses_an_sgm_and_eval_says_so(models, capsys):
    with pytest.raises(EngineNotAvailable, match="float"):
        create_engine("float", jobs.load_model(models["v2"]))
    assert main(["eval", str(models["v2"]), str(BUNDLED_SAMPLES), "--engine", "float"]) == 2
    assert "engine 'float'" in capsys.readouterr().err


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


def test_the_engine_layer_never_imports_the_converters(models):
    r = _python(f"""
        import sys
        import numpy as np
        import pysg.engines, pysg.engines.native, pysg.jobs, pysg.qnet, pysg.intref, pysg.sgm, pysg.runtime
        import pysg.scoring, pysg.live
        from pysg.io import read_events
        ev = read_events({str(RECORDING)!r}).events[:5000]
        for kind in ({str(models['v1'])!r}, {str(models['v2'])!r}):
            for engine in ("ref", "c"):
                pysg.jobs.run(kind, ev, engine=engine)
        bad = sorted(m for m in sys.modules if m.startswith("pysg.converters"))
        print("converters:", bad)
        sys.exit(1 if bad else 0)
        """)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_missing_extension_is_one_clear_error(models):
    r = _python(f"""
        import sys, importlib.abc

        class Missing(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "pysg._sg_runtime":
                    raise ImportError("No module named 'pysg._sg_runtime'")

        sys.meta_path.insert(0, Missing())
        from pysg import _native
        assert not _native.available()
        try:
            _native.require("the test")
        except _native.NativeUnavailableError as e:
            print("ERROR:", e)
        import pysg.io.evt, pysg.io.aedat4  # the decoders keep their numpy reference
        assert pysg.io.evt._lib is None
        from pysg.cli import main
        print("RC", main(["run", {str(models['v1'])!r}, {str(RECORDING)!r}, "--engine", "c", "--json"]))
        print("DEFAULT", main(["run", {str(models['v1'])!r}, {str(RECORDING)!r}, "--json"]))
        """)
    assert r.returncode == 0, r.stderr
    err = [ln for ln in r.stdout.splitlines() if ln.startswith("ERROR:")]
    assert err and "pysg._sg_runtime is not built" in err[0] and "pip install" in err[0]
    assert "RC 2" in r.stdout and "DEFAULT 0" in r.stdout
    assert "pysg run: error:" in r.stderr and "pip install" in r.stderr and "Traceback" not in r.stderr
    assert "falling back to --engine ref" in r.stderr
