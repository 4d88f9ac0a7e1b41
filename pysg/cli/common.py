# SPDX-License-Identifier: MIT
"""Helpers the command modules share: progress bars and the default engine."""
from __future__ import annotations

import sys
from pathlib import Path


def _bar(total: int | None, desc: str, unit: str = "it", quiet: bool = False):
    """A tqdm bar on stderr: off with --quiet or --json (main sets quiet), and when stderr is
    not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=quiet or None, leave=False, file=sys.stderr)


def _engine(requested: str | None, model) -> str:
    """--engine default: the C runtime for an .sgm model (the integer reference, with a
    warning, when the extension is not built), the float model otherwise."""
    if requested is not None:
        return requested
    if Path(model).suffix.lower() != ".sgm":
        return "float"
    return _c_or_ref()


def _c_or_ref() -> str:
    from .. import _native

    try:
        _native.require("--engine c")
    except ImportError as e:
        print(f"pysg: warning: {e}; falling back to --engine ref", file=sys.stderr)
        return "ref"
    return "c"


def _jobs():
    """pysg.jobs; a missing C extension becomes a one-line error (ValueError) in the CLI."""
    from .. import jobs

    return jobs


def crc_hex(value: int) -> str:
    """A CRC-32 as the CLI prints it, in text and JSON alike: "0x1234abcd"."""
    return f"0x{int(value) & 0xFFFFFFFF:08x}"


def strict(obj):
    """`obj` with every float NaN/inf replaced by None, so json.dumps writes strict JSON
    (null) instead of NaN."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    return obj


def dumps(obj) -> str:
    """Strict JSON (no NaN): what every `--json` prints."""
    import json

    return json.dumps(strict(obj), allow_nan=False)


WINDOW_KEYS = ("t_start_us", "t_end_us", "prediction", "prediction_index", "events", "spikes")


def print_window(row: dict, as_json: bool) -> None:
    """One window's prediction, as `run --window-ms`/`--source` and `stream --window-ms`
    print it (the keys of docs/CLI.md's run-windows table)."""
    out = {k: row[k] if k == "prediction" else int(row[k]) for k in WINDOW_KEYS}
    print(dumps(out) if as_json else
          f"{out['t_start_us'] / 1e6:10.3f} s  {out['prediction'] or '-':<28} "
          f"{out['events']:>7} events {out['spikes']:>6} spikes", flush=True)


def model_info(info: dict) -> dict:
    """export/convert/inspect JSON: the payload CRC as a hex string."""
    out = dict(info)
    if "payload_crc32" in out:
        out["payload_crc32"] = crc_hex(out["payload_crc32"])
    return out


def check_output(path, option: str = "output") -> Path:
    """Refuse an output path that cannot be written, before any long work starts: a
    directory, a missing parent folder, a read-only folder (one-line ValueError)."""
    import os

    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{option} {p}: is a directory; give a file name, e.g. {p / 'out'}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"{option} {p}: the folder {parent} does not exist; create it first (mkdir -p {parent})")
    import tempfile

    try:  # a real probe: permission bits do not stop root, a read-only mount stops everyone
        with tempfile.NamedTemporaryFile(prefix=f".{p.name}.", suffix=".probe", dir=parent):
            pass
        if p.exists() and not os.access(p, os.W_OK):
            raise PermissionError(f"{p} is read-only")
    except OSError as e:
        raise ValueError(f"{option} {p}: not writable ({e.strerror or e}); choose a path in a folder you can "
                         f"write") from None
    return p


def write_atomic(path, write) -> None:
    """write(f) into a temporary file beside `path`, renamed onto `path` only when complete:
    an interrupted command (Ctrl-C) leaves no half-written output."""
    import os
    import tempfile

    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent if str(p.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, p)
    except BaseException:
        os.unlink(tmp)
        raise


class atomic_path:
    """`with atomic_path(path) as tmp:` a temporary path beside `path` for a writer that takes
    a path; renamed onto `path` when the block completes, removed if it fails or is interrupted."""

    def __init__(self, path):
        self.path = Path(path)

    def __enter__(self) -> str:
        import os
        import tempfile

        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=f".part{self.path.suffix}",
                                        dir=self.path.parent if str(self.path.parent) else ".")
        os.close(fd)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        import os

        if exc_type is None:
            os.replace(self.tmp, self.path)
        elif os.path.exists(self.tmp):
            os.unlink(self.tmp)
