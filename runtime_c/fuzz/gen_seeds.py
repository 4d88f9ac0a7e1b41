# SPDX-License-Identifier: MIT
"""Seeds of fuzz/fuzz_loader.c for the imported int8 networks (.sgm version 2): random
conv -> depthwise -> pool -> fully connected networks written by pysg.converters'
TFLite writer and converted with event-count input (1 and 2 polarity channels) and
tensor input; and for the layered spiking networks (.sgm version 3): the golden models
of tests/gen_snn_golden.py (every synaptic kind, neuron, reset and flag) drawn with
several seeds. Needs only pysg (no TFLite Micro, no test tools), so `make fuzz-short`
runs on any machine with pysg installed; the version 1 seeds come from
tests/gen_golden.py, which needs only pysg too.

    python -m runtime_c.fuzz.gen_seeds OUT_DIR        (from the repository root)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pysg.converters.tflite_graph import read_tflite
from pysg.converters.tflite_sgm import tflite_to_sgm
from tests.support.qnet_models import random_network


def seeds() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for seed in range(40):
        tfl = random_network(np.random.default_rng([7, seed]))
        channels = read_tflite(tfl).tensors[0].shape[3]
        out[f"qnet_tensor_{seed}.sgm"] = tflite_to_sgm(tfl, input="tensor")
        if channels in (2, 4):  # 1 or 2 slices of 2 polarity channels
            out[f"qnet_events_{seed}.sgm"] = tflite_to_sgm(tfl, input="events", window_steps=4, count_map="count")
        elif channels in (1, 3):  # slices of one (summed) polarity channel
            out[f"qnet_events1_{seed}.sgm"] = tflite_to_sgm(tfl, input="events", window_steps=3 * channels,
                                                           polarities=1)
        if len(out) >= 24:
            break
    return out


def snn_seeds() -> dict[str, bytes]:
    """Version 3 seeds: gen_snn_golden's five networks, drawn with four seeds."""
    from pysg.sgm import encode_snn
    from runtime_c.tests.gen_snn_golden import sample_models

    return {f"snn_{name}_{seed}.sgm": encode_snn(model)
            for seed in range(4) for name, model in sample_models(20261205 + seed).items()}


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    v2, v3 = seeds(), snn_seeds()
    for name, data in {**v2, **v3}.items():
        (out / name).write_bytes(data)
    print(f"{len(v2)} version 2 and {len(v3)} version 3 seeds in {out}")


if __name__ == "__main__":
    main(sys.argv[1])
