# SPDX-License-Identifier: MIT
"""The `pysg` command: a thin layer over library functions.

Every subcommand parses its arguments, calls one library function and prints the
result (a human summary, or JSON with --json). Errors in user input end with a one-line
message and exit status 2, never a traceback.

One module per command family: `data` (synth, train, eval, demo), `models` (export,
convert, inspect), `recordings` (run, info, plot), `device` (flash, stream, device info,
emulate); `parser` builds the argument parser, `common` holds their shared helpers.
"""
from __future__ import annotations

import sys

from .data import cmd_demo, cmd_eval, cmd_synth, cmd_train  # noqa: F401 - the commands stay importable here
from .device import cmd_device_info, cmd_emulate, cmd_flash, cmd_stream  # noqa: F401
from .models import cmd_convert, cmd_export, cmd_inspect  # noqa: F401
from .parser import build_parser
from .recordings import cmd_info, cmd_plot, cmd_run  # noqa: F401


def _global_options_first(argv: list[str]) -> list[str]:
    """Global options anywhere: --quiet before or after the subcommand (moved to the front);
    --json before the subcommand (moved to the end: every command that prints numbers takes it)."""
    rest = [a for a in argv if a != "--quiet"]
    out = (["--quiet"] if len(rest) != len(argv) else []) + rest
    first = next((i for i, a in enumerate(out) if not a.startswith("-")), len(out))  # the subcommand
    if "--json" in out[:first]:
        out = [a for i, a in enumerate(out) if not (i < first and a == "--json")] + ["--json"]
    return out


def main(argv: list[str] | None = None) -> int:
    argv = _global_options_first(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    args.said_quiet = args.quiet  # what the user asked: info lines on stderr stay with --json
    if getattr(args, "json", False):
        args.quiet = True  # no progress bars with --json
    sub = getattr(args, "device_command", None)
    name = f"pysg {args.command}{' ' + sub if sub else ''}"
    try:
        return args.func(args)
    except IsADirectoryError as e:
        print(f"{name}: error: {e.filename}: is a directory; give a file in it", file=sys.stderr)
        return 2
    except PermissionError as e:
        print(f"{name}: error: {e.filename}: permission denied; choose a path you can read/write",
              file=sys.stderr)
        return 2
    except (FileNotFoundError, NotADirectoryError) as e:
        what = "no such file or folder" if isinstance(e, FileNotFoundError) else "a part of the path is not a folder"
        print(f"{name}: error: {e.filename}: {what}; check the path" if e.filename else f"{name}: error: {e}",
              file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`pysg ... | head`): exit quietly, and keep Python's
        # shutdown from complaining about the closed stdout
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
