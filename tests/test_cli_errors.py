# SPDX-License-Identifier: MIT
"""Bad input and environment end in exit status 2 and one line naming the file/port and
the fix (no traceback); Ctrl-C exits 130 and leaves no half-written output; a reader that
goes away (`| head`) ends the command quietly; --version, global options, help defaults."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pysg.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "pysg" / "data" / "samples"
RECORDING = SAMPLES / "user01_fluorescent.aedat"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.support.tiny import tiny_dataset_and_model

    root = tmp_path_factory.mktemp("errors")
    data, model = tiny_dataset_and_model(root)
    sgm = root / "m.sgm"
    assert main(["--quiet", "export", str(model), "-o", str(sgm)]) == 0
    return root, data, model, sgm


def _refused(capsys, argv, *names) -> str:
    """main(argv) exits 2 with one stderr line containing every name."""
    capsys.readouterr()
    assert main(list(map(str, argv))) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert len(err) == 1, err
    for n in names:
        assert str(n) in err[0], (n, err[0])
    return err[0]


@pytest.mark.parametrize("cmd", ["info", "inspect", "run-model", "run-events"])
def test_a_directory_where_a_file_is_expected(tiny, cmd, capsys):
    root, data, model, sgm = tiny
    argv = {"info": ["info", data], "inspect": ["inspect", data], "run-model": ["run", data, RECORDING],
            "run-events": ["run", sgm, data]}[cmd]
    line = _refused(capsys, argv, data)
    assert "directory" in line and "file" in line


def _unwritable_dir(tmp_path) -> Path:
    """A folder no file can be created in: /proc for root (permission bits do not stop
    root), else a folder with its write bit cleared."""
    if os.geteuid() == 0:
        return Path("/proc")
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    return d


def test_output_on_an_unwritable_path_is_refused_before_the_work(tiny, tmp_path, capsys):
    root, data, model, sgm = tiny
    ro = _unwritable_dir(tmp_path)
    line = _refused(capsys, ["export", model, "-o", ro / "x.sgm"], ro / "x.sgm")
    assert "writ" in line
    # train: refused before epoch 1 (no epoch line, no checkpoint)
    capsys.readouterr()
    assert main(["--quiet", "train", str(data), "-o", str(ro / "m.npz"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "epoch 1" not in err and str(ro / "m.npz") in err
    _refused(capsys, ["eval", model, data, "--plot", ro / "c.png"], ro / "c.png")
    _refused(capsys, ["plot", "curves", root / "h.json", "-o", ro / "h.png"], ro / "h.png")


def test_train_into_a_missing_folder_is_refused_before_epoch_1(tiny, tmp_path, capsys):
    _, data, *_ = tiny
    out = tmp_path / "missing" / "dir" / "m.npz"
    capsys.readouterr()
    assert main(["--quiet", "train", str(data), "-o", str(out), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "epoch 1" not in err and str(out.parent) in err and "mkdir" in err
    assert not out.parent.exists()


def test_train_epochs_0_and_resume_without_checkpoint(tiny, tmp_path, capsys):
    _, data, *_ = tiny
    _refused(capsys, ["--quiet", "train", data, "-o", tmp_path / "m.npz", "--epochs", "0"], "--epochs 0")
    line = _refused(capsys, ["--quiet", "train", data, "-o", tmp_path / "m.npz", "--epochs", "1", "--resume"],
                    tmp_path / "m.npz.ckpt")
    assert "no checkpoint" in line
    assert not (tmp_path / "m.npz").exists()


def test_dump_logits_into_a_directory_is_refused(tiny, tmp_path, capsys):
    _, _, _, sgm = tiny
    d = tmp_path / "logits"
    d.mkdir()
    _refused(capsys, ["run", sgm, RECORDING, "--one-sample", "--dump-logits", d], d)
    assert not Path(str(d) + ".npy").exists() and list(d.iterdir()) == []


def test_plot_confusion_of_a_curves_file(tiny, capsys):
    root, *_ = tiny
    line = _refused(capsys, ["plot", "confusion", root / "h.json", "-o", root / "c.png"], root / "h.json")
    assert "pysg eval --json" in line
    assert not (root / "c.png").exists()


def test_dv_tcp_server_not_running(tiny, capsys):
    *_, sgm = tiny
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = _refused(capsys, ["run", sgm, "--source", f"tcp://127.0.0.1:{port}"], f"127.0.0.1:{port}")
    assert "running" in line


def test_camera_without_dv_processing(tiny):
    *_, sgm = tiny
    code = ("import sys; sys.modules['dv_processing'] = None\n"
            "from pysg.cli import main\n"
            f"sys.exit(main(['run', {str(sgm)!r}, '--source', 'camera']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "dv-processing" in r.stderr and "install" in r.stderr


def test_output_piped_into_head_ends_quietly(tiny):
    """The reader closes the pipe after one line: exit 0, nothing on stderr."""
    *_, sgm = tiny
    p = subprocess.Popen([sys.executable, "-m", "pysg.cli", "run", str(sgm), str(RECORDING), "--window-ms", "20",
                          "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(120) == 0, err
    assert first.startswith(b"{") and "Traceback" not in err and "BrokenPipe" not in err


def _interrupt(argv, wait_for: Path | None = None, after: float = 2.0) -> tuple[int, str]:
    # SIGINT as a terminal delivers it: a runner started in the background (nohup, `cmd &`
    # without job control) ignores SIGINT, and Python then never raises KeyboardInterrupt
    p = subprocess.Popen([sys.executable, "-m", "pysg.cli", *map(str, argv)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while wait_for is not None and not any(wait_for.parent.glob(f".{wait_for.name}.*")) \
            and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    time.sleep(after)
    assert p.poll() is None, "finished before the interrupt: give it more work"
    p.send_signal(signal.SIGINT)
    rc = p.wait(60)
    out, err = p.communicate()
    return rc, err.decode()


def test_ctrl_c_in_synth_exits_130_and_leaves_no_dataset(tmp_path):
    out = tmp_path / "big"
    rc, err = _interrupt(["synth", out, "--train-users", "20", "--test-users", "6", "--workers", "1"],
                         wait_for=out, after=1.0)
    assert rc == 130 and "Traceback" not in err and "interrupted" in err
    assert list(tmp_path.iterdir()) == []  # neither the dataset nor its hidden .part folder


def test_ctrl_c_in_train_exits_130_and_leaves_no_model(tiny, tmp_path):
    _, data, *_ = tiny
    out = tmp_path / "m.npz"
    rc, err = _interrupt(["train", data, "-o", out, "--epochs", "1000"], after=4.0)
    assert rc == 130 and "Traceback" not in err
    assert not out.exists()


def test_version_and_global_options_anywhere(tiny, capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"pysg {version('pysg')}"
    root, data, model, sgm = tiny
    for argv in (["--quiet", "inspect", str(sgm)], ["inspect", str(sgm), "--quiet"]):
        assert main(argv) == 0
        assert "arena" in capsys.readouterr().out
    for argv in (["--json", "inspect", str(sgm)], ["inspect", str(sgm), "--json"], ["--json", "--quiet", "inspect",
                                                                                   str(sgm)]):
        assert main(argv) == 0
        assert json.loads(capsys.readouterr().out)["file_bytes"] == sgm.stat().st_size


def test_help_shows_every_default(capsys):
    """Every argument of every subcommand has help text; every option with a default shows it."""
    import argparse

    from pysg.cli.parser import build_parser

    def walk(p, name):
        text = " ".join(p.format_help().split())
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    yield from walk(sub, f"{name} {sub_name}")
            elif action.dest not in ("help", "version"):
                yield name, action, text

    seen = 0
    for name, action, text in walk(build_parser(), "pysg"):
        assert action.help, (name, action.dest)
        if action.option_strings and action.default is not None and action.default is not False:
            stated = "default" in action.help and str(action.default).removesuffix(".0") in action.help
            assert stated or f"(default: {action.default})" in text, (name, action.dest)
        seen += 1
    assert seen > 50


def test_synth_text_rounds_seconds(tmp_path, capsys):
    assert main(["--quiet", "synth", str(tmp_path / "d"), "--train-users", "1", "--test-users", "1",
                 "--lightings-per-user", "1", "--seconds", "0.9", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    gs = out.split("gesture_s=")[1].split(",")[0].strip()
    assert len(gs) <= 8 and abs(float(gs) - 0.9 * 11 * 2) < 1e-9, out


def _stderr_on_a_terminal(argv) -> tuple[int, str]:
    """Run `pysg argv` with stderr on a pseudo-terminal (as a person sees it)."""
    import pty

    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    p = subprocess.Popen([sys.executable, "-m", "pysg.cli", *map(str, argv)], stdout=subprocess.PIPE,
                         stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not b:
            break
        chunks.append(b)
    os.close(master)
    p.stdout.read()
    p.stdout.close()
    return p.wait(120), b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("cmd", ["synth", "train", "eval", "run-gestures"])
def test_progress_bars_on_a_terminal_only(tiny, tmp_path, cmd):
    root, data, model, sgm = tiny
    argv = {"synth": ["synth", tmp_path / "d", "--train-users", "1", "--test-users", "1", "--lightings-per-user",
                      "1", "--seconds", "0.6", "--workers", "1"],
            "train": ["train", data, "-o", tmp_path / "m.npz", "--epochs", "1"],
            "eval": ["eval", model, data],
            "run-gestures": ["run", sgm, RECORDING]}[cmd]
    desc = {"synth": "synthesising", "train": "training", "eval": "evaluating", "run-gestures": "gestures"}[cmd]
    rc, err = _stderr_on_a_terminal(argv)
    assert rc == 0 and desc in err and "%|" in err, err[-500:]
    if cmd == "synth":
        (tmp_path / "d").rename(tmp_path / "d1")
    if cmd == "train":
        (tmp_path / "m.npz").unlink()
        (tmp_path / "m.npz.ckpt").unlink()
    rc, err = _stderr_on_a_terminal([*argv, "--json"])  # --json: no bar
    assert rc == 0 and "%|" not in err and desc not in err, err[-500:]
    r = subprocess.run([sys.executable, "-m", "pysg.cli", *map(str, argv)], capture_output=True, text=True,
                       timeout=300, input="") if cmd != "synth" else None
    if r is not None:  # stderr not a terminal: no bar
        assert r.returncode == 0 and "%|" not in r.stderr, r.stderr[-500:]


def test_ctrl_c_in_run_exits_130(tiny):
    *_, sgm = tiny
    rc, err = _interrupt(["run", sgm, "--source", RECORDING, "--speed", "1", "--window-ms", "500"], after=2.0)
    assert rc == 130 and "Traceback" not in err and "interrupted" in err


def _rgb_tflite() -> bytes:
    """An int8 network with a 16x16x3 input (3 channels: no event-count frame of 2 polarities
    x slices fits it): conv 3x3 stride 2 -> fully connected 5."""
    import numpy as np

    from pysg.converters.tflite_writer import OpSpec, TensorSpec, write_tflite
    from tests.support.qnet_models import int8_act

    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, (4, 3, 3, 3), dtype=np.int8)
    wf = rng.integers(-127, 128, (5, 256), dtype=np.int8)
    t = [int8_act("x", (1, 16, 16, 3), 0.05, 0), TensorSpec("w", w.shape, "int8", [np.float32(0.01)], [0], 0, w),
         int8_act("h", (1, 8, 8, 4), 0.2, -5),
         TensorSpec("wf", wf.shape, "int8", [np.float32(0.01)], [0], 0, wf), int8_act("y", (1, 5), 0.5, 0)]
    ops = [OpSpec("CONV_2D", [0, 1, -1], [2], {"padding": "SAME", "stride_w": 2, "stride_h": 2}),
           OpSpec("FULLY_CONNECTED", [2, 3, -1], [4], {})]
    return write_tflite(t, ops, [0], [4])


def test_convert_without_flags_makes_a_non_event_input_a_tensor_and_says_so(tmp_path, capsys):
    pytest.importorskip("tflite", reason="convert reads .tflite with the tflite extra")
    from pysg.sgm import inspect_sgm

    src = tmp_path / "rgb.tflite"
    src.write_bytes(_rgb_tflite())
    capsys.readouterr()
    assert main(["convert", str(src), "-o", str(tmp_path / "rgb.sgm")]) == 0
    err = capsys.readouterr().err
    assert "--input tensor" in err and "3 slices" in err
    assert inspect_sgm(str(tmp_path / "rgb.sgm"))["input"]["kind"] == "tensor"
    # asked for explicitly, events stays an error, and nothing is written
    assert main(["convert", str(src), "-o", str(tmp_path / "ev.sgm"), "--input", "events"]) == 2
    assert "3 slices" in capsys.readouterr().err and not (tmp_path / "ev.sgm").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
