# SPDX-License-Identifier: MIT
"""A new user's pass over every command: each option's `--help` says what it does and its
default; each usage error (a bad number, an unknown choice, a missing argument) and each
missing file ends in one line on stderr, exit status 2, naming the option or the file.
Truth: argparse's own description of every command (walked, not listed by hand)."""
from __future__ import annotations

import argparse
import re

import pytest

from pysg.cli import main
from pysg.cli.parser import build_parser


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(argv prefix, parser) of every command and subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sp in action.choices.items():
                yield (*prefix, name), sp
                yield from _commands(sp, (*prefix, name))


COMMANDS = [(argv, p) for argv, p in _commands(build_parser())
            if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)]


def test_every_command_is_walked():
    names = {" ".join(argv) for argv, _ in COMMANDS}
    assert {"run", "info", "bench", "flash", "device activate", "device read-model", "emulate"} <= names
    assert len(names) >= 21  # 14 commands, 7 device subcommands


@pytest.mark.parametrize("argv", [" ".join(a) for a, _ in COMMANDS])
def test_help_describes_every_option_with_its_default(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main([*argv.split(), "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    parser = dict((" ".join(a), p) for a, p in COMMANDS)[argv]
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help, f"pysg {argv}: {action.option_strings or action.dest} has no help text"
        block = parser._get_formatter()._format_action(action)  # the option's lines of the help printed
        assert " ".join(block.split()) in " ".join(text.split())  # as printed, whatever the column widths
        flag = isinstance(action, (argparse._StoreTrueAction, argparse._VersionAction))
        if action.option_strings and not action.required and not flag:
            assert "default" in block.lower(), f"pysg {argv} {action.option_strings[-1]}: no default: {block!r}"


def _usage_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, err)
    return err


@pytest.mark.parametrize("argv", [" ".join(a) for a, _ in COMMANDS])
def test_bad_arguments_are_one_line(argv, capsys):
    parser = dict((" ".join(a), p) for a, p in COMMANDS)[argv]
    required = [a for a in parser._actions if a.required or (not a.option_strings and a.nargs is None)]
    if required:  # nothing given: the missing argument is named
        err = _usage_error(argv.split(), capsys)
        assert "required" in err and f"see pysg {argv} --help" in err
    base = []
    for a in required:
        base += ([a.option_strings[0]] if a.option_strings else []) + [a.choices and sorted(a.choices)[0] or "x"]
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        opt = action.option_strings[-1]
        if action.type in (int, float) or getattr(action.type, "__name__", "") in ("int", "float"):
            err = _usage_error([*argv.split(), *base, opt, "abc"], capsys)
            assert opt in err and "abc" in err
        elif action.choices:
            err = _usage_error([*argv.split(), *base, opt, "zzz"], capsys)
            assert opt in err and "invalid choice" in err


@pytest.mark.parametrize("argv", [
    "info nofile.aedat", "run nofile.sgm nofile.aedat", "inspect nofile.sgm", "export nofile.npz -o x.sgm",
    "bench nofile.sgm", "plot curves nofile.json -o x.png", "stream nofile.aedat --port socket://127.0.0.1:1",
    "flash nofile.sgm --port socket://127.0.0.1:1", "eval nofile.sgm nodata", "train nodata -o m.npz"])
def test_a_missing_file_is_one_line_naming_it(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv.split()) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "Errno" not in err, err
    assert re.search(r"no(file|data)", err) and ("no such" in err or "not a" in err), err


def test_a_device_that_does_not_answer_is_one_line_exit_2(capsys):
    for argv in (["device", "info", "--port", "socket://127.0.0.1:1"], ["device", "info", "--port", "/dev/nonexistent"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and argv[-1] in err and "Traceback" not in err
