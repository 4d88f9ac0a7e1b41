# SPDX-License-Identifier: MIT
"""Rebuild the data shipped inside the package for `pysg demo`.

* pysg/data/gesture_model.npz: a model trained by `pysg train` with its defaults on
  `pysg synth` with its defaults (pass it as MODEL);
* pysg/data/samples/: one recording of a person who is in no generated training set
  (another seed), all 11 gestures, in the DVS128 Gesture layout (test split).

    pysg synth data/ && pysg train data/ -o gesture.npz
    python tools/make_bundle.py gesture.npz
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from pysg.datasets.gesture import labels_name, write_labels_csv, write_trials
from pysg.io.aedat31 import write_aedat31
from pysg.model import Network
from pysg.synth.dataset import synthesize_recording

DATA = Path(__file__).resolve().parent.parent / "pysg" / "data"
SEED, USER, LIGHTING = 2026, 1, "fluorescent"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    args = ap.parse_args(argv)
    Network.load(args.model)  # refuse anything that is not a model
    shutil.copyfile(args.model, DATA / "gesture_model.npz")
    samples = DATA / "samples"
    if samples.exists():
        shutil.rmtree(samples)
    samples.mkdir(parents=True)
    events, labels, start = synthesize_recording(SEED, USER, LIGHTING)
    name = f"user{USER:02d}_{LIGHTING}.aedat"
    write_aedat31(samples / name, events, start_time=start)
    write_labels_csv(samples / labels_name(name), labels)
    write_trials(samples, [], [name])
    print(f"wrote {DATA / 'gesture_model.npz'} and {samples} ({events.size} events)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
