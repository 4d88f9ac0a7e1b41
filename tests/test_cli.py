# SPDX-License-Identifier: MIT
"""The `pysg` command end to end on a tiny generated dataset, and its errors."""
import json
import shutil

import numpy as np
import pytest

from pysg.cli import main
from pysg.datasets.gesture import GESTURE_CLASSES, read_trials


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.support.tiny import tiny_dataset_and_model

    root = tmp_path_factory.mktemp("cli")
    data, model = tiny_dataset_and_model(root)
    return root, data, model


def test_synth_writes_the_dataset_layout(tiny):
    _, data, _ = tiny
    assert len(read_trials(data, "train")) == 1 and len(read_trials(data, "test")) == 1


def test_eval_json_has_the_promised_keys(tiny, capsys):
    root, data, model = tiny
    capsys.readouterr()
    assert main(["eval", str(model), str(data), "--json", "--plot", str(root / "conf.png")]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["n"] == 11
    assert np.array(r["confusion"]).shape == (11, 11) and np.sum(r["confusion"]) == 11
    assert 0.0 <= r["accuracy"] <= 1.0
    assert r["spikes_per_sample"] >= 0 and r["synops_per_sample"] > 0
    assert r["classes"] == list(GESTURE_CLASSES)
    assert (root / "conf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_resume_runs_further_epochs(tiny, capsys):
    root, data, model = tiny
    capsys.readouterr()
    assert main(["--quiet", "train", str(data), "-o", str(model), "--epochs", "2", "--resume", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs"] == 2


@pytest.mark.parametrize("what", ["curves", "events", "raster"])
def test_plots_are_png(tiny, what):
    root, data, model = tiny
    src = root / "h.json" if what == "curves" else data
    extra = ["--model", str(model)] if what == "raster" else []
    out = root / f"{what}.png"
    assert main(["plot", what, str(src), "-o", str(out), *extra]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_corrupt_recording_gives_a_clear_error(tiny, tmp_path, capsys):
    _, data, model = tiny
    bad = shutil.copytree(data, tmp_path / "bad")
    rec = bad / read_trials(data, "test")[0]
    raw = rec.read_bytes()
    rec.write_bytes(raw[: len(raw) - 5])  # cut inside the last packet
    capsys.readouterr()
    assert main(["eval", str(model), str(bad)]) == 2
    err = capsys.readouterr().err
    assert rec.name in err and "byte offset" in err


def test_bad_labels_and_missing_model_give_clear_errors(tiny, tmp_path, capsys):
    _, data, model = tiny
    bad = shutil.copytree(data, tmp_path / "bad")
    labels = next(bad.glob("*_labels.csv"))
    lines = labels.read_text().splitlines()
    lines[3] = "4,notanumber,12"
    labels.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    split = "train" if labels.name.replace("_labels.csv", ".aedat") in read_trials(data, "train") else "test"
    assert main(["eval", str(model), str(bad), "--split", split]) == 2
    err = capsys.readouterr().err
    assert labels.name in err and "line 4" in err
    assert main(["eval", str(tmp_path / "nope.npz"), str(data)]) == 2
    assert "nope.npz" in capsys.readouterr().err


def test_demo_recognises_the_bundled_recordings(capsys):
    # The shipped model and recording belong together: a person absent from training.
    assert main(["demo", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["n"] == 11
    assert sorted(s["truth"] for s in r["samples"]) == sorted(GESTURE_CLASSES)
    assert r["accuracy"] >= 10 / 11


def test_export_inspect_run_end_to_end(tiny, capsys):
    root, data, model = tiny
    sgm = root / "m.sgm"
    assert main(["export", str(model), "-o", str(sgm), "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert main(["inspect", str(sgm), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    for key in ("format_version", "layers", "file_bytes", "arena_bytes", "labels", "dt_us"):
        assert key in info, key
    assert info["file_bytes"] == sgm.stat().st_size == exported["file_bytes"]
    assert info["labels"] == list(GESTURE_CLASSES) and info["dt_us"] == 40_000  # the recipe trains at 40 ms
    rec = data / read_trials(data, "test")[0]
    dump = root / "logits.npy"
    alone = shutil.copy(rec, root / "alone.aedat")  # no labels CSV beside it: the whole file is one sample
    assert main(["run", str(sgm), str(alone), "--json", "--dump-logits", str(dump)]) == 0
    r = json.loads(capsys.readouterr().out)
    logits = np.load(dump)
    assert logits.dtype == np.int32 and logits.shape == (r["steps"], 11)
    assert r["prediction"] == GESTURE_CLASSES[r["prediction_index"]]
    assert r["synops"] > 0 and len(r["scores"]) == 11
    # The reference engine agrees with the float model on the test split within a point.
    assert main(["eval", str(sgm), str(data), "--engine", "ref", "--json"]) == 0
    ref = json.loads(capsys.readouterr().out)
    assert main(["eval", str(model), str(data), "--json"]) == 0
    flt = json.loads(capsys.readouterr().out)
    assert ref["n"] == flt["n"] == 11
    assert sum(a["prediction_index"] == b["prediction_index"] for a, b in zip(ref["samples"], flt["samples"])) >= 10


def test_inspect_names_the_bad_field(tiny, tmp_path, capsys):
    root, data, model = tiny
    sgm = tmp_path / "m.sgm"
    assert main(["--quiet", "export", str(model), "-o", str(sgm)]) == 0
    raw = bytearray(sgm.read_bytes())
    raw[0] ^= 0xFF
    sgm.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(["inspect", str(sgm)]) == 2
    err = capsys.readouterr().err
    assert "offset 0" in err or "byte offset 0" in err


def test_info_reports_the_recording(tiny, capsys):
    from pysg.io.aedat31 import read_aedat31

    _, data, _ = tiny
    rec = data / read_trials(data, "test")[0]
    ev = read_aedat31(rec)
    capsys.readouterr()
    assert main(["info", str(rec), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["format"], r["width"], r["height"]) == ("aedat31", 128, 128)
    assert r["n_events"] == ev.size and r["n_on"] == int(ev["p"].sum())
    assert (r["t_first"], r["t_last"]) == (int(ev["t"][0]), int(ev["t"][-1]))


def test_train_credit_is_the_checkpoints_and_changes_the_first_stage(tiny, tmp_path, capsys):
    """--credit reaches the trainer and its checkpoint: "all" and the default ("traced")
    train the same first epoch to different convolution weights; a resume asking for
    another credit than the checkpoint's is refused by name."""
    import zipfile

    from pysg.model.network import Network

    _, data, _ = tiny
    models = {}
    for credit in ("all", None):
        out = tmp_path / f"{credit}.npz"
        args = ["--quiet", "train", str(data), "-o", str(out), "--epochs", "1"]
        assert main(args + ([] if credit is None else ["--credit", credit])) == 0
        with zipfile.ZipFile(str(out) + ".ckpt") as zf:
            assert json.loads(zf.read("trainer.json"))["train_config"]["credit"] == (credit or "traced")
        models[credit] = Network.load(out)
    a, t = models["all"].params, models[None].params
    assert not np.allclose(a["0.W"], t["0.W"])
    capsys.readouterr()
    assert main(["--quiet", "train", str(data), "-o", str(tmp_path / "all.npz"), "--epochs", "2", "--resume",
                 "--credit", "traced"]) == 2
    err = capsys.readouterr().err
    assert "credit 'all'" in err and "'traced'" in err and len(err.strip().splitlines()) == 1


def test_train_gates_the_input_as_told(tiny, tmp_path, capsys):
    """--min-count reaches the trained model (and its .sgm), the recipe's gate is 3 at 40 ms;
    a resume asking another gate is refused in one line."""
    from pysg.model.network import Network
    from pysg.converters.sgm import export_network
    from pysg.sgm import load_sgm

    _, data, _ = tiny
    gates = {}
    for flag in ([], ["--min-count", "0"], ["--min-count", "5"]):
        out = tmp_path / f"g{len(flag) and flag[1]}.npz"
        assert main(["--quiet", "train", str(data), "-o", str(out), "--epochs", "1", *flag]) == 0
        net = Network.load(out)
        gates[tuple(flag)] = net.config.input_min_count
        assert load_sgm(export_network(net)).stages[0].min_count == net.config.input_min_count
    assert gates == {(): 3, ("--min-count", "0"): 0, ("--min-count", "5"): 5}
    capsys.readouterr()
    assert main(["--quiet", "train", str(data), "-o", str(tmp_path / "g5.npz"), "--epochs", "2", "--resume",
                 "--min-count", "3"]) == 2
    err = capsys.readouterr().err
    assert "at least 5 events per step, asked for 3" in err and len(err.strip().splitlines()) == 1


def test_train_mirrors_gestures_unless_told_not_to(tiny, tmp_path, capsys):
    """The recipe flips half the gestures with their mirror image's label (the checkpoint
    says which label each class becomes); --no-mirror trains without, to other weights; a
    resume asking otherwise than its checkpoint is refused in one line."""
    import zipfile

    from pysg.model.network import Network

    _, data, _ = tiny
    models = {}
    for flag in ([], ["--no-mirror"]):
        out = tmp_path / f"m{len(flag)}.npz"
        assert main(["--quiet", "train", str(data), "-o", str(out), "--epochs", "1", *flag]) == 0
        with zipfile.ZipFile(str(out) + ".ckpt") as zf:
            mirror = json.loads(zf.read("trainer.json"))["train_config"]["mirror"]
        assert mirror == (None if flag else [0, 2, 1, 6, 5, 4, 3, 7, 8, 9, 10])
        models[len(flag)] = Network.load(out)
    assert not np.allclose(models[0].params["0.W"], models[1].params["0.W"])
    capsys.readouterr()
    assert main(["--quiet", "train", str(data), "-o", str(tmp_path / "m0.npz"), "--epochs", "2", "--resume",
                 "--no-mirror"]) == 2
    err = capsys.readouterr().err
    assert "with mirrored gestures" in err and "asked without" in err and len(err.strip().splitlines()) == 1
