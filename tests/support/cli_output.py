# SPDX-License-Identifier: MIT
"""Reading what `pysg ... --json` printed in a test."""
from __future__ import annotations

import json


def json_lines(capsys) -> list[dict]:
    """The JSON objects printed (one per line) since ``capsys`` (pytest's fixture) was last read."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
