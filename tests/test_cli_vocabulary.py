# SPDX-License-Identifier: MIT
"""Every command's `--json` output against docs/CLI.md's tables (the contract): each
documented key present with its documented type, no undocumented key, strict JSON (no
NaN). Device commands run against the POSIX emulated device.

Truth for the new `run` shapes: per gesture, the Python integer reference (pysg.intref)
on the gesture's frames binned by pysg.datasets.binning, as tests/test_device_host.py
computes it; per window, the device (the firmware's own scoring) streaming the same
file."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from pysg.cli import main

DOC = Path(__file__).resolve().parent.parent / "docs" / "CLI.md"
SAMPLES = Path(__file__).resolve().parent.parent / "pysg" / "data" / "samples"
RECORDING = SAMPLES / "user01_fluorescent.aedat"
LABELS = SAMPLES / "user01_fluorescent_labels.csv"

# ------------------------------------------------------------------ the contract


def _tables() -> dict[str, dict[str, tuple[str, bool]]]:
    """{section name: {key path: (type, optional)}} from the `<!-- json: NAME -->` markers
    (several markers before one table share it)."""
    out: dict[str, dict[str, tuple[str, bool]]] = {}
    pending: list[str] = []
    table: dict[str, tuple[str, bool]] | None = None
    for line in DOC.read_text().splitlines():
        m = re.fullmatch(r"<!-- json: ([\w-]+) -->", line.strip())
        if m:
            pending.append(m.group(1))
            continue
        if pending and line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            if cells[0] in ("key", "---"):
                table = {}
                for name in pending:
                    out[name] = table
                continue
            typ = cells[1]
            table[cells[0]] = (typ.rstrip("?"), typ.endswith("?"))
        elif pending and table is not None and not line.startswith("|"):
            pending, table = [], None
    return out


TABLES = _tables()


def _split_alternatives(typ: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in typ:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "|" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


def _type_ok(value, typ: str) -> bool:
    for alt in _split_alternatives(typ):
        alt = alt.strip()
        if alt == "null" and value is None:
            return True
        if alt == "int" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if alt == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if alt == "str" and isinstance(value, str):
            return True
        if alt == "bool" and isinstance(value, bool):
            return True
        if alt == "object" and isinstance(value, dict):
            return True
        if alt.startswith("list[") and isinstance(value, list) and all(_type_ok(v, alt[5:-1]) for v in value):
            return True
    return False


def _check(obj: dict, schema: dict[str, tuple[str, bool]], prefix: str = "") -> list[str]:
    """Problems of one JSON object (at `prefix`) against the table."""
    children = {k[len(prefix):]: v for k, v in schema.items()
                if k.startswith(prefix) and "." not in k[len(prefix):] and "[]" not in k[len(prefix):]}
    bad = []
    for key, (typ, optional) in children.items():
        if key not in obj:
            if not optional:
                bad.append(f"{prefix}{key}: documented, missing")
            continue
        value = obj[key]
        if not _type_ok(value, typ):
            bad.append(f"{prefix}{key}: {value!r:.60} is not {typ}")
            continue
        if isinstance(value, dict):
            bad += _check(value, schema, f"{prefix}{key}.") if any(
                k.startswith(f"{prefix}{key}.") for k in schema) else []
        elif isinstance(value, list) and any(k.startswith(f"{prefix}{key}[].") for k in schema):
            for item in value:
                bad += _check(item, schema, f"{prefix}{key}[].")
    bad += [f"{prefix}{key}: not documented in docs/CLI.md" for key in obj if key not in children]
    return bad


def _strict(text: str):
    def no_constant(name):
        raise AssertionError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=no_constant)


def _json_out(capsys) -> list[dict]:
    return [_strict(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def _validate(section: str, rows: list[dict]):
    assert rows, f"{section}: no output"
    for row in rows:
        problems = _check(row, TABLES[section])
        assert not problems, f"{section}: " + "; ".join(problems)


def test_the_doc_has_a_table_per_json_output():
    assert set(TABLES) >= {"synth", "train", "eval", "demo", "export", "convert", "inspect", "run", "run-gestures",
                           "run-windows", "info", "flash", "stream-gestures", "device-info", "device-list",
                           "device-reset", "device-stats", "device-slots", "device-activate", "device-read-model",
                           "bench"}
    for name, table in TABLES.items():
        assert table, name
        for key, (typ, _) in table.items():
            assert all(_type_ok_form(a.strip()) for a in _split_alternatives(typ)), (name, key, typ)


def _type_ok_form(alt: str) -> bool:
    return alt in ("int", "float", "str", "bool", "null", "object") or (
        alt.startswith("list[") and alt.endswith("]") and all(_type_ok_form(a.strip())
                                                               for a in _split_alternatives(alt[5:-1])))


def test_the_validator_refuses_what_it_should():
    """The checker itself: a missing key, an extra key, a wrong type, a NaN all fail."""
    schema = {"a": ("int", False), "b": ("str|null", False), "c": ("float", True), "l": ("list[object]", False),
              "l[].x": ("int", False)}
    assert _check({"a": 1, "b": None, "l": [{"x": 2}]}, schema) == []
    assert _check({"a": 1, "l": []}, schema) == ["b: documented, missing"]
    assert _check({"a": 1, "b": "s", "l": [], "z": 0}, schema) == ["z: not documented in docs/CLI.md"]
    assert _check({"a": 1.5, "b": "s", "l": []}, schema)[0].startswith("a: ")
    assert _check({"a": True, "b": "s", "l": []}, schema)[0].startswith("a: ")
    assert _check({"a": 1, "b": "s", "l": [{"x": 1, "y": 2}]}, schema) == ["l[].y: not documented in docs/CLI.md"]
    with pytest.raises(AssertionError, match="NaN"):
        _strict('{"a": NaN}')


# ------------------------------------------------------------------ host commands


def _run(capsys, *argv) -> list[dict]:
    capsys.readouterr()
    assert main(["--quiet", *map(str, argv), "--json"]) == 0
    return _json_out(capsys)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """synth -> train -> export, each command's JSON kept."""
    root = tmp_path_factory.mktemp("vocab")
    data, model, sgm = root / "data", root / "m.npz", root / "m.sgm"
    outs = {}
    for name, argv in (
            ("synth", ["synth", data, "--train-users", "1", "--test-users", "1", "--lightings-per-user", "1",
                       "--seconds", "0.6", "--workers", "1"]),
            ("train", ["train", data, "-o", model, "--epochs", "1", "--history", root / "h.json"]),
            ("export", ["export", model, "-o", sgm])):
        outs[name] = _capture(argv)
    return root, data, model, sgm, outs


def _capture(argv) -> list[dict]:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["--quiet", *map(str, argv), "--json"]) == 0
    return [_strict(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_synth_train_export(made):
    *_, outs = made
    for name in ("synth", "train", "export"):
        _validate(name, outs[name])
    assert outs["synth"][0]["gesture_s"] == round(outs["synth"][0]["gesture_s"], 6)


def test_history_is_strict_json(made):
    root = made[0]
    h = _strict((root / "h.json").read_text())
    assert h["val_accuracy"] == [None]  # not measured: null, not NaN


def test_eval_float_and_ref_engines(made, capsys):
    root, data, model, sgm, _ = made
    for argv in ((model, data), (model, data, "--engine", "ref", "--at-ms", "200,50")):
        rows = _run(capsys, "eval", *argv)
        _validate("eval", rows)
        assert rows[0]["engine"] == (argv[3] if len(argv) > 2 else "float")
        assert ("at_onset" in rows[0]) == (len(argv) > 2)


def test_run_source_and_bench_float(bundled_sgm, tmp_path, capsys):
    from pysg.io import read_events
    from pysg.recipes import BUNDLED_MODEL

    rows = _run(capsys, "run", bundled_sgm, "--source", RECORDING, "--window-ms", "700")
    _validate("run-windows", rows)
    assert sum(r["events"] for r in rows) == len(read_events(RECORDING).events)
    ev = read_events(RECORDING).events
    short = tmp_path / "short.npy"
    np.save(short, ev[ev["t"] < ev["t"][0] + 500_000])
    r = _run(capsys, "bench", BUNDLED_MODEL, short, "--engine", "float")
    _validate("bench", r)
    assert r[0]["arena_bytes"] is None and r[0]["engine"] == "float"


def test_eval_lists_each_sample(made, capsys):
    root, data, model, sgm, _ = made
    from pysg.datasets.gesture import GestureDataset

    rows = _run(capsys, "eval", sgm, data)
    _validate("eval", rows)
    ds = GestureDataset(data, "test")
    samples = rows[0]["samples"]
    assert len(samples) == len(ds) == rows[0]["n"]
    for got, i in zip(samples, range(len(ds))):
        s = ds[i]
        assert (got["file"], got["t_start_us"], got["t_end_us"], got["truth_index"]) == \
            (Path(s.source).name, s.t_start, s.t_end, s.label)
    confusion = np.zeros((11, 11), int)
    for s in samples:
        confusion[s["truth_index"], s["prediction_index"]] += 1
    assert confusion.tolist() == rows[0]["confusion"]


def test_inspect_and_info(made, capsys):
    root, data, model, sgm, _ = made
    rows = _run(capsys, "inspect", sgm)
    _validate("inspect", rows)
    import zlib

    raw = sgm.read_bytes()
    assert rows[0]["payload_crc32"] == f"0x{zlib.crc32(raw[64:]):08x}"  # FORMAT.md: the payload after the 64-byte header
    _validate("info", _run(capsys, "info", RECORDING))


def test_convert_and_inspect_a_converted_model(tmp_path, capsys):
    pytest.importorskip("tflite", reason="convert reads .tflite with the tflite extra")
    from tests.support.qnet_models import built_cnn

    src = tmp_path / "cnn.tflite"
    src.write_bytes(built_cnn())
    rows = _run(capsys, "convert", src, "-o", tmp_path / "cnn.sgm")
    _validate("convert", rows)
    assert rows[0]["format_version"] == 2 and "input" in rows[0]
    _validate("inspect", _run(capsys, "inspect", tmp_path / "cnn.sgm"))


def test_demo(capsys):
    rows = _run(capsys, "demo")
    _validate("demo", rows)
    assert rows[0]["n"] == len(rows[0]["samples"]) == 11


@pytest.fixture(scope="module")
def bundled_sgm(tmp_path_factory) -> Path:
    from pysg.converters.sgm import export_network
    from pysg.model.network import Network
    from pysg.recipes import BUNDLED_MODEL

    p = tmp_path_factory.mktemp("bundled") / "gesture.sgm"
    p.write_bytes(export_network(Network.load(BUNDLED_MODEL)))
    return p


def test_run_one_sample(bundled_sgm, tmp_path, capsys):
    alone = shutil.copy(RECORDING, tmp_path / "alone.aedat")  # no labels CSV beside it
    rows = _run(capsys, "run", bundled_sgm, alone)
    _validate("run", rows)
    assert len(rows) == 1 and rows[0]["spikes"] == sum(rows[0]["spikes_per_stage"])


def test_run_per_gesture_equals_the_integer_reference(bundled_sgm, capsys):
    from pysg import intref
    from pysg.datasets.binning import bin_events
    from pysg.datasets.gesture import read_labels_csv
    from pysg.io import read_events
    from pysg.sgm import load_sgm

    for engine in ("c", "ref"):
        rows = _run(capsys, "run", bundled_sgm, RECORDING, "--engine", engine)  # the labels CSV is beside it
        _validate("run-gestures", rows)
        model = load_sgm(bundled_sgm.read_bytes())
        events, labels = read_events(RECORDING).events, read_labels_csv(LABELS)
        assert len(rows) == len(labels)
        for row, lab in zip(rows, labels):
            ev = events[(events["t"] >= lab["t_start"]) & (events["t"] < lab["t_end"])].copy()
            ev["t"] -= lab["t_start"]
            frames = bin_events(ev, duration_us=int(lab["t_end"] - lab["t_start"]), dt_us=model.dt_us,
                                sensor_size=model.sensor_size, downsample=model.downsample,
                                channels=model.input_shape[0])
            r = intref.run(model, frames[:, None])
            want = int(intref.scores(r.logits, np.array([len(frames)]))[0].argmax())
            assert (row["t_start_us"], row["t_end_us"]) == (lab["t_start"], lab["t_end"])
            assert row["truth_index"] == lab["cls"] - 1 and row["truth"] == model.labels[lab["cls"] - 1]
            assert row["prediction_index"] == want and row["prediction"] == model.labels[want]


def test_run_honours_window_ms(bundled_sgm, capsys):
    from pysg.io import read_events

    rows = _run(capsys, "run", bundled_sgm, RECORDING, "--window-ms", "700")
    _validate("run-windows", rows)
    t = read_events(RECORDING).events["t"]
    assert sum(r["events"] for r in rows) == t.size
    assert rows[0]["t_start_us"] == int(t.min()) and all(r["t_end_us"] - r["t_start_us"] == 700_000 for r in rows)
    assert len(rows) == -(-((int(t.max()) - int(t.min())) // 10_000 + 1) // 70)


# ------------------------------------------------------------------ device commands


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    pytest.importorskip("pysg._sg_device", reason="the POSIX device extension is not built (pip install -e .)")
    from pysg.device.posix import start_posix_device

    with start_posix_device(tmp_path_factory.mktemp("flash") / "flash.bin", tcp_port=0) as dev:
        yield dev


@pytest.fixture(scope="module")
def flashed(device, bundled_sgm):
    return _capture(["flash", "--port", device.url, bundled_sgm])


def test_device_info_without_a_model(device):
    """Before the first flash (module fixtures: this test runs before test_flash)."""
    import contextlib
    import io

    from pysg.device.client import Device

    with Device(device.url) as dev:
        if dev.info().active_slot is not None:
            pytest.skip("the module's device already holds a model")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["--quiet", "device", "info", "--port", device.url, "--json"]) == 0
    rows = [_strict(buf.getvalue())]
    _validate("device-info", rows)
    assert rows[0]["model"] is None and rows[0]["info"]["active_slot"] is None


def test_flash(flashed):
    _validate("flash", flashed)


def test_device_info(device, flashed, capsys):
    _validate("device-info", _run(capsys, "device", "info", "--port", device.url))


def test_stream_per_gesture(device, flashed, capsys):
    capsys.readouterr()
    assert main(["stream", str(RECORDING), "--port", device.url, "--json"]) == 0
    out, err = capsys.readouterr()
    _validate("stream-gestures", [_strict(ln) for ln in out.splitlines()])
    assert _stderr_totals(err, "pysg stream:")["events_in"] > 0


def test_stream_windows_equal_run_windows(device, flashed, bundled_sgm, capsys):
    rows = _run(capsys, "stream", RECORDING, "--port", device.url, "--window-ms", "700")
    _validate("run-windows", rows)
    assert rows == _run(capsys, "run", bundled_sgm, RECORDING, "--window-ms", "700", "--engine", "c")


def _doc_text(section: str) -> list[str]:
    """The text example of a docs/CLI.md section: its fenced block, else its `Text:` span."""
    body = DOC.read_text().split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    fenced = re.search(r"```\n(.*?)```", body, re.S)
    if fenced:
        return fenced.group(1).splitlines()
    return [re.search(r"Text:[^`]*`([^`]*)`", body).group(1)]


def _text_pattern(example: str) -> re.Pattern:
    """An example line as a pattern: numbers, CRCs, paths and ports are placeholders, the
    words and their order are the contract."""
    out = []
    for tok in re.split(r"(\s+)", example):
        if tok.isspace() or not tok:
            out.append(r"\s+" if tok else "")
        elif re.fullmatch(r"0x[0-9a-f]{8}\W*", tok):
            out.append(r"0x[0-9a-f]{8}" + re.escape(tok[10:]))
        elif "/" in tok or tok.startswith(("PORT", "FILE")) or re.search(r"\.(sgm|aedat)\W*$", tok):
            out.append(r"\S+")
        elif re.fullmatch(r"[AB](\W*|'s)", tok):  # a slot name
            out.append("[AB]" + re.escape(tok[1:]))
        else:
            out.append(re.sub(r"(\\-)?\d+(\\\.\d+)?", r"-?\\d+(\\.\\d+)?", re.escape(tok)))
    return re.compile("".join(out))


def test_text_pattern_refuses_what_it_should():
    pat = _text_pattern("posix: reset, answering again on PORT")
    assert pat.fullmatch("posix: reset, answering again on socket://127.0.0.1:5000")
    assert not pat.fullmatch("posix: reset; answering on socket://127.0.0.1:5000")
    pat = _text_pattern("m.sgm: slot B's model, 69896 bytes, CRC-32 0x1234abcd (equal to the slot's)")
    assert pat.fullmatch("/tmp/x/r.sgm: slot B's model, 12 bytes, CRC-32 0x00ff00ff (equal to the slot's)")
    assert not pat.fullmatch("/tmp/x/r.sgm: slot B's model, 12 bytes, CRC-32 16711935 (equal to the slot's)")


def _text(capsys, *argv) -> list[str]:
    capsys.readouterr()
    assert main(["--quiet", *map(str, argv)]) == 0
    return capsys.readouterr().out.splitlines()


def test_bench_text_and_json(bundled_sgm, capsys):
    from pysg.io import read_events

    r = _run(capsys, "bench", bundled_sgm)
    _validate("bench", r)
    n = len(read_events(RECORDING).events)
    assert r[0]["events_in"] == n and r[0]["events_dropped"] == 0 and r[0]["mapping"]["source"] == "identity"
    lines = _text(capsys, "bench", bundled_sgm)
    doc = _doc_text("bench")
    assert len(lines) == len(doc)
    for line, example in zip(lines, doc):
        assert _text_pattern(example).fullmatch(line), (line, example)


def test_info_reports_events_in_and_dropped(bundled_sgm, tmp_path, capsys):
    """Without --model: the events outside the file's declared sensor (none: pysg's readers
    refuse a file holding such events, exit 2 in one line); with --model: the sensor
    mapping's drops on a DAVIS346-sized file, equal to pysg.preprocess applied by hand."""
    from pysg.io import read_events
    from pysg.io.aedat4_writer import write_aedat4
    from pysg.io.evt3_writer import write_evt3
    from pysg.preprocess import apply_mapping, sensor_mapping

    r = _run(capsys, "info", RECORDING)
    _validate("info", r)
    ev = read_events(RECORDING).events[:20000]
    assert (r[0]["events_in"], r[0]["events_dropped"], r[0]["dropped_by"], r[0]["mapping"]) == \
        (r[0]["n_events"], 0, "sensor", None)
    assert _text_pattern(_doc_text("info")[0]).fullmatch(_text(capsys, "info", RECORDING)[0])
    bad = tmp_path / "bad.raw"  # a 128x128 EVT 3.0 file whose header claims 100x100
    write_evt3(bad, ev, width=128, height=128)
    bad.write_bytes(bad.read_bytes().replace(b"height=128;width=128", b"height=100;width=100")
                    .replace(b"geometry 128x128", b"geometry 100x100"))
    capsys.readouterr()
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "100x100" in err and len(err.strip().splitlines()) == 1

    big = ev.copy()
    big["x"] = ev["x"].astype(np.int64) * 2 + 40  # 40..294 of 346: partly outside the centred 260x260 window
    f = tmp_path / "davis.aedat4"
    write_aedat4(f, big, width=346, height=260)
    for extra, crop in (((), None), (("--crop", "10,10,200,200"), (10, 10, 200, 200))):
        r = _run(capsys, "info", f, "--model", bundled_sgm, *extra)
        _validate("info", r)
        m = sensor_mapping((346, 260), (128, 128), crop=crop)
        assert (r[0]["events_in"], r[0]["events_dropped"], r[0]["dropped_by"]) == \
            (len(big), len(big) - len(apply_mapping(big, m)), "model")
        assert r[0]["events_dropped"] > 0 and r[0]["mapping"]["crop"] == list(m.crop)


TOTALS = {k: v for k, v in TABLES["run"].items() if k.split(".")[0] in ("events_in", "events_dropped", "mapping")}


def _stderr_totals(err: str, prefix: str) -> dict:
    """The last `PREFIX {...}` line on stderr: events_in, events_dropped, mapping (run's keys)."""
    lines = [ln for ln in err.splitlines() if ln.startswith(prefix + " {")]
    totals = _strict(lines[-1][len(prefix) + 1:])
    assert not _check(totals, TOTALS), _check(totals, TOTALS)
    return totals


def test_run_per_gesture_and_per_window_report_totals_on_stderr(bundled_sgm, capsys):
    from pysg.io import read_events

    n = len(read_events(RECORDING).events)
    for extra in ((), ("--window-ms", "700"), ("--source",)):
        capsys.readouterr()
        argv = ["run", bundled_sgm, *extra, RECORDING] if extra == ("--source",) else ["run", bundled_sgm, RECORDING,
                                                                                      *extra]
        assert main([*map(str, argv), "--json"]) == 0
        totals = _stderr_totals(capsys.readouterr().err, "pysg run:")
        assert (totals["events_in"], totals["events_dropped"]) == (n, 0), extra


# ------------------------------------------------------------------ the device commands (last: they change
# the device's slots, and leave the bundled model active in slot A again)


def test_device_list_with_and_without_ports(capsys, monkeypatch):
    from serial.tools import list_ports, list_ports_common

    _validate("device-list", _run(capsys, "device", "list"))  # what this machine has
    monkeypatch.setattr(list_ports, "comports", lambda: [])
    assert _run(capsys, "device", "list") == [{"ports": []}]
    assert _text(capsys, "device", "list")[0].startswith("no serial ports found")
    usb = list_ports_common.ListPortInfo("/dev/ttyACM0", skip_link_detection=True)
    usb.vid, usb.pid, usb.description, usb.serial_number = 0x0483, 0x5740, "STM32 Virtual ComPort", "1A2B"
    usb.manufacturer = "STMicroelectronics"
    monkeypatch.setattr(list_ports, "comports", lambda: [usb])
    rows = _run(capsys, "device", "list")
    _validate("device-list", rows)
    assert rows[0]["ports"] == [{"port": "/dev/ttyACM0", "description": "STM32 Virtual ComPort",
                                 "vid_pid": "0483:5740", "serial_number": "1A2B",
                                 "manufacturer": "STMicroelectronics"}]
    assert _text(capsys, "device", "list") == [_doc_text("device list")[0]]


def _check_text(section: str, lines: list[str]) -> None:
    assert _text_pattern(_doc_text(section)[0]).fullmatch(lines[0]), (lines[0], _doc_text(section)[0])


def test_device_commands(device, flashed, bundled_sgm, tmp_path, capsys):
    import zlib

    from pysg.converters.sgm import export_network
    from pysg.model.network import Network
    from pysg.recipes import BUNDLED_MODEL

    url = device.url
    other = tmp_path / "b.sgm"
    other.write_bytes(export_network(Network.load(BUNDLED_MODEL).retarget_dt(20000)))
    _validate("flash", _run(capsys, "flash", other, "--port", url))
    rows = _run(capsys, "device", "slots", "--port", url)
    _validate("device-slots", rows)
    _check_text("device slots", [ln for ln in _text(capsys, "device", "slots", "--port", url) if ln.startswith("*")])
    active = next(s for s in rows[0]["slots"] if s["active"])
    assert active["crc32"] == f"0x{zlib.crc32(other.read_bytes()):08x}"

    stats = _run(capsys, "device", "stats", "--port", url)
    _validate("device-stats", stats)
    assert stats[0]["spikes"] == sum(stats[0]["spikes_per_stage"])
    _check_text("device stats", _text(capsys, "device", "stats", "--port", url))

    out = tmp_path / "read.sgm"
    r = _run(capsys, "device", "read-model", "-o", out, "--port", url)
    _validate("device-read-model", r)
    assert out.read_bytes() == other.read_bytes() and r[0]["crc32"] == active["crc32"]
    _check_text("device read-model", _text(capsys, "device", "read-model", "-o", out, "--port", url))

    back = "A" if active["slot"] == "B" else "B"
    r = _run(capsys, "device", "activate", back, "--port", url)
    _validate("device-activate", r)
    assert r[0]["active"] == back and r[0]["changed"]
    assert [s["state"] for s in r[0]["slots"]] == ["valid", "valid"]  # both models kept
    _check_text("device activate", _text(capsys, "device", "activate", active["slot"], "--port", url))
    r = _run(capsys, "device", "activate", back, "--port", url)  # and back to the bundled model
    assert r[0]["active"] == back

    r = _run(capsys, "device", "reset", "--port", url)
    _validate("device-reset", r)
    assert r[0]["reset"] and r[0]["hello"]["name"] == "posix"
    _check_text("device reset", _text(capsys, "device", "reset", "--port", url))
    info = _run(capsys, "device", "info", "--port", url)[0]
    assert info["info"]["slots"][info["info"]["active_slot"]]["crc32"] == \
        f"0x{zlib.crc32(bundled_sgm.read_bytes()):08x}"
