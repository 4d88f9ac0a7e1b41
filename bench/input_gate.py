# SPDX-License-Identifier: MIT
"""What stage 0's input gate keeps of recordings: each file mapped onto a model's sensor as
every command maps it (pysg.preprocess.sensor_mapping), binned as the engines bin it, then
the events and the active (input, step) cells whose count reaches the gate.

    python -m bench.input_gate FILE [FILE ...] [--model M | --min-count 3 --dt-ms 40]

Without --model: the recipe's network (128x128 sensor, 2x32x32 input, 40 ms, gate 3)."""
from __future__ import annotations

import argparse
import json

import numpy as np

from pysg.datasets.binning import bin_events
from pysg.io import read_events
from pysg.model.network import input_counts
from pysg.preprocess import apply_mapping, sensor_mapping


def gate_report(path: str, *, sensor: tuple[int, int], downsample: int, channels: int, dt_us: int,
                min_count: int) -> dict:
    f = read_events(path)
    mapping = sensor_mapping(None if f.width is None else (f.width, f.height), sensor)
    ev = apply_mapping(f.events, mapping)
    if ev.size == 0:
        raise SystemExit(f"{path}: no events on the model's sensor")
    ev = ev.copy()
    ev["t"] -= ev["t"].min()
    seconds = (int(ev["t"].max()) + 1) / 1e6
    counts = bin_events(ev, duration_us=int(ev["t"].max()) + 1, dt_us=dt_us, sensor_size=sensor,
                        downsample=downsample, channels=channels).astype(np.int64)
    active = counts[counts > 0]
    kept = input_counts(active, min_count)
    return {"file": path, "recording": [f.width, f.height], "events": int(active.sum()), "seconds": seconds,
            "events_per_s": active.sum() / seconds, "active_cells": int(active.size),
            "cells_with_one_event": float(np.mean(active == 1)),
            "events_kept": float(kept.sum() / active.sum()), "cells_kept": float(np.mean(kept > 0))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--model", help="a float .npz or .sgm model: its sensor, input, step and gate")
    ap.add_argument("--min-count", type=int, default=None, help="the gate (default: the model's or the recipe's)")
    ap.add_argument("--dt-ms", type=float, default=None, help="the step (default: the model's or the recipe's)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.model:  # a float .npz (its config's gate) or a SpikingGamma .sgm (stage 0's)
        from pysg.jobs import load_model

        lm = load_model(args.model)
        info, obj = lm.info, lm.obj
        gate = obj.config.input_min_count if hasattr(obj, "config") else getattr(obj.stages[0], "min_count", 0)
        sensor, ds, ch, dt_us = info.sensor_size, info.downsample, info.input_shape[0], info.dt_us
    else:
        from pysg.recipes import default_network

        cfg = default_network().config
        sensor, ds, ch, dt_us, gate = cfg.sensor_size, cfg.downsample, cfg.input_shape[0], cfg.dt_us, cfg.input_min_count
    dt_us = dt_us if args.dt_ms is None else int(round(args.dt_ms * 1000))
    gate = gate if args.min_count is None else args.min_count
    for path in args.files:
        r = gate_report(path, sensor=tuple(sensor), downsample=ds, channels=ch, dt_us=dt_us, min_count=gate)
        print(json.dumps(r) if args.json else
              f"{path}: {r['recording'][0]}x{r['recording'][1]}, {r['events_per_s'] / 1e3:.0f} k events/s on the "
              f"sensor; {r['cells_with_one_event']:.2f} of the active cells hold one event; a gate of {gate} at "
              f"{dt_us / 1000:g} ms keeps {r['events_kept']:.2f} of the events and {r['cells_kept']:.2f} of the "
              f"active cells")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
