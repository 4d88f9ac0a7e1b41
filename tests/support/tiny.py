# SPDX-License-Identifier: MIT
"""A tiny dataset and model made through the CLI itself (synth: one training and one test
person, 0.6 s gestures; train: one epoch), for tests of the commands that use them."""
from __future__ import annotations

from pathlib import Path

from pysg.cli import main


def tiny_dataset_and_model(root: Path) -> tuple[Path, Path]:
    """(data folder, model .npz) under `root`; the training history is root/h.json."""
    data = root / "data"
    assert main(["--quiet", "synth", str(data), "--train-users", "1", "--test-users", "1",
                 "--lightings-per-user", "1", "--seconds", "0.6", "--workers", "1"]) == 0
    model = root / "m.npz"
    assert main(["--quiet", "train", str(data), "-o", str(model), "--epochs", "1",
                 "--history", str(root / "h.json")]) == 0
    return data, model
