# SPDX-License-Identifier: MIT
"""`pysg bench`: a model's cost on a recording, as TFLite's benchmark_model reports it.

    from pysg.benchmark import benchmark
    r = benchmark("model.sgm")              # the bundled recording, the C runtime
    r["latency_us"]["p99"], r["throughput"]["x_real_time"], r["arena_bytes"]

The recording runs as one sample from its first event: step k covers
[t0 + k dt, t0 + (k + 1) dt); each step's latency is the wall-clock time of feeding its
events and completing it (`feed` + `advance_to`: the input mapping and the network's
step, the work a device does per step). steps = floor((t_last - t0) / dt) + 1.

A recording of another size is first mapped onto the model's sensor by the one mapping
(`pysg.preprocess.sensor_mapping`, as `pysg run` does): `events_in` counts the
recording's events, `events_dropped` those the mapping or the runtime left out, `mapping`
says how ("identity" for a file of the sensor's size or one that records no size).
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["benchmark", "BUNDLED_RECORDING"]

BUNDLED_RECORDING = Path(__file__).resolve().parent / "data" / "samples" / "user01_fluorescent.aedat"
PERCENTILES = (50, 90, 99)


def _peak_rss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)  # Linux reports KiB, macOS bytes


def benchmark(model, events_path=None, *, engine: str = "c", crop: tuple | None = None,
              downsample: int | None = None) -> dict:
    """Run `model` (.sgm or float .npz path) on a recording (default: the bundled one) with
    `engine` ("c", "ref", or "float" for a float .npz) one step at a time; the JSON of
    `pysg bench --json` (docs/CLI.md)."""
    from .io import read_events
    from .jobs import load_model, map_recording, open_engine

    if engine not in ("c", "ref", "float"):
        raise ValueError(f"--engine {engine}: give c, ref or float")
    path = Path(model)
    if engine == "float" and path.read_bytes()[:4] != b"PK\x03\x04":
        raise ValueError(f"{model}: --engine float needs a float .npz model; an .sgm runs on c or ref")
    rec = BUNDLED_RECORDING if events_path is None else Path(events_path)
    recording = read_events(rec)
    n_in = len(recording.events)
    if n_in == 0:
        raise ValueError(f"{rec}: no events to run the model on")
    loaded = load_model(path, engine=engine)
    events, m, _ = map_recording(loaded.info, recording, crop=crop, downsample=downsample)
    mapping = m.to_dict()
    if len(events) == 0:
        raise ValueError(f"{rec}: none of its {n_in} events falls on the model's sensor (mapping {mapping}); "
                         "choose the window with --crop X,Y,W,H")
    t = events["t"].astype(np.int64)
    if (np.diff(t) < 0).any():
        order = np.argsort(t, kind="stable")
        events, t = events[order], t[order]

    eng = open_engine(loaded, engine)
    dt = int(eng.dt_us)
    t0 = int(t[0])
    n_steps = (int(t[-1]) - t0) // dt + 1
    bounds = np.searchsorted(t, t0 + np.arange(n_steps + 1, dtype=np.int64) * dt, side="left")

    eng.reset()
    eng.set_origin(t0)
    lat = np.empty(n_steps, np.float64)
    clock = time.perf_counter_ns
    start = clock()
    for k in range(n_steps):
        a = clock()
        if bounds[k + 1] > bounds[k]:
            eng.feed(events[bounds[k]:bounds[k + 1]])
        eng.advance_to(t0 + (k + 1) * dt)
        lat[k] = (clock() - a) / 1000.0
    total_s = (clock() - start) / 1e9
    if eng.step_index != n_steps:
        raise RuntimeError(f"the engine ran {eng.step_index} steps, expected {n_steps}")
    st = eng.stats

    if engine == "c":
        arena = int(eng.arena_bytes)
    elif engine == "ref":
        from .sgm import inspect_sgm

        arena = int(inspect_sgm(loaded.data if loaded.data is not None else str(path))["arena_bytes"])
    else:
        arena = None
    model_bytes = len(loaded.data) if loaded.data is not None else path.stat().st_size
    duration_s = n_steps * dt / 1e6
    return {
        "model": str(path), "recording": str(rec), "engine": engine, "dt_us": dt,
        "steps": n_steps, "events_in": n_in,
        "events_dropped": n_in - len(events) + int(_stat(st, "events_dropped")), "mapping": mapping,
        "duration_s": duration_s, "total_s": total_s,
        "latency_us": {**{f"p{p}": float(np.percentile(lat, p)) for p in PERCENTILES},
                       "max": float(lat.max()), "mean": float(lat.mean())},
        "throughput": {"steps_per_s": n_steps / total_s, "events_per_s": n_in / total_s,
                       "x_real_time": duration_s / total_s},
        "arena_bytes": arena, "model_bytes": int(model_bytes), "peak_rss_bytes": _peak_rss_bytes(),
        "prediction": (eng.labels[int(eng.prediction)] if int(eng.prediction) >= 0 else None),
        "prediction_index": int(eng.prediction),
    }


def _stat(st, name: str) -> int:
    return st[name] if isinstance(st, dict) else getattr(st, name)
