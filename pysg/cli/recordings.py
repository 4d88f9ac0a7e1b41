# SPDX-License-Identifier: MIT
"""Recordings: `pysg run` (a model on an event file or a live source), `info`, `plot`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .common import _bar, _c_or_ref, _jobs, atomic_path, check_output, dumps, print_window, write_atomic


def cmd_run(args) -> int:
    if args.source:
        return _run_live(args)
    if not args.events:
        raise ValueError("give an EVENTS file, or --source SPEC for live input")
    labels_path = args.labels
    if args.one_sample and (labels_path is not None or args.window_ms is not None):
        raise ValueError("--one-sample runs the whole recording as one sample: drop --labels / --window-ms")
    if labels_path is None and args.window_ms is None and not args.one_sample:
        beside = Path(args.events).with_name(Path(args.events).stem + "_labels.csv")
        if beside.is_file():
            labels_path = beside
            print(f"pysg run: one prediction per gesture of {beside.name} (give --window-ms for windows)",
                  file=sys.stderr)
    if args.dump_logits and (labels_path is not None or args.window_ms is not None):
        raise ValueError("--dump-logits saves one sample's logits: add --one-sample (a labels CSV beside the "
                         "recording makes a sample per gesture), without --window-ms")
    if args.dump_logits:
        check_output(args.dump_logits, "--dump-logits")
    from ..io import read_events

    engine = args.engine or _c_or_ref()
    try:
        if labels_path is not None:
            return _run_gestures(args, _mapped_events(args, engine), labels_path, engine)
        if args.window_ms is not None:
            return _print_windows(args, [read_events(args.events).events], engine, str(args.events))
        r = _jobs().run_file(args.model, args.events, engine=engine, crop=args.crop, downsample=args.downsample,
                             warn=lambda line: print(line, file=sys.stderr))
    except ImportError as e:
        raise ValueError(str(e)) from None
    logits = r.pop("logits")
    if args.dump_logits:
        write_atomic(args.dump_logits, lambda f: np.save(f, logits))
    out = {"prediction": r["prediction"], "prediction_index": int(r["prediction_index"]), "scores": r["scores"],
           "steps": r["steps"], "spikes": int(sum(r["spikes"])), "spikes_per_stage": [int(x) for x in r["spikes"]],
           "synops": int(r["synops"]), "events_in": int(r["events_in"]), "events_dropped": int(r["events_dropped"]),
           "mapping": r["mapping"]}
    print(dumps(out) if args.json else
          f"prediction {out['prediction']} (class {out['prediction_index']}) after {out['steps']} steps; "
          f"{out['spikes']} spikes (per hidden stage {out['spikes_per_stage']}), {out['synops']} synaptic events; "
          f"{out['events_in'] - out['events_dropped']} of {out['events_in']} events used")
    return 0


def _mapped_events(args, engine):
    """The recording's events on the model's sensor (the one mapping, pysg.preprocess); its
    events_in / events_dropped / mapping as one JSON line on stderr, the drop warning too."""
    from ..io import read_events
    from ..preprocess import drop_warning

    jobs = _jobs()
    recording = read_events(args.events)
    events, mapping, dropped = jobs.map_recording(jobs.load_model(args.model, engine=engine).info, recording,
                                                  crop=args.crop, downsample=args.downsample)
    if not getattr(args, "said_quiet", args.quiet):  # as `pysg stream`: the rows on stdout, the totals here
        print("pysg run: " + json.dumps({"events_in": len(recording.events), "events_dropped": dropped,
                                         "mapping": mapping.to_dict()}), file=sys.stderr)
    line = drop_warning(str(args.events), len(recording.events), dropped, mapping)
    if line:
        print(line, file=sys.stderr)
    return events


def _run_gestures(args, events, labels_path, engine) -> int:
    """One sample per labelled gesture, cut as pysg.datasets.gesture.GestureDataset and
    `pysg stream` cut it, each scored by the model kind's rule (pysg.scoring)."""
    from types import SimpleNamespace

    from ..datasets.gesture import read_labels_csv
    from .data import _sample_row

    labels = read_labels_csv(labels_path)
    order = np.argsort(events["t"], kind="stable")
    events = events[order]
    t = events["t"]

    def samples():
        for row in labels:
            cls, t_start, t_end = int(row["cls"]), int(row["t_start"]), int(row["t_end"])
            lo, hi = np.searchsorted(t, [t_start, t_end], side="left")
            ev = events[lo:hi].copy()
            ev["t"] -= t_start
            yield SimpleNamespace(events=ev, label=cls - 1, duration_us=t_end - t_start, t_start=t_start,
                                  source=str(args.events))

    jobs = _jobs()
    eng = jobs.open_engine(args.model, engine)
    classes = list(eng.labels)
    hits = 0
    with _bar(len(labels), "gestures", "gesture", args.quiet or args.json) as bar:
        for r in jobs.iter_samples(eng, samples(), batch_size=1, progress=lambda n: bar.update(n)):
            row = _sample_row(r, classes)
            hits += row["prediction_index"] == row["truth_index"]
            if args.json:
                print(dumps(row), flush=True)
            else:
                mark = "ok " if row["prediction_index"] == row["truth_index"] else "MISS"
                bar.write(f"{mark} {row['t_start_us'] / 1e6:8.2f} s  truth {row['truth']:<28} "
                          f"prediction {row['prediction']}", file=sys.stdout)
    if not args.json:
        print(f"accuracy {hits / max(1, len(labels)) * 100:.1f} % on the {len(labels)} gestures of {labels_path}")
    return 0


def _print_windows(args, source, engine, name: str) -> int:
    """One prediction per window of a file or a live source, its events mapped onto the
    model's sensor batch by batch (the mapping and the totals go to stderr)."""
    from ..live import live_predictions
    from ..preprocess import drop_warning

    used = []

    def said(m):
        used.append(m)
        if not getattr(args, "said_quiet", args.quiet):
            print("pysg run: " + json.dumps({"mapping": m.to_dict()}), file=sys.stderr)

    totals = {"events_in": 0, "events_dropped": 0}
    for row in live_predictions(args.model, source, window_ms=args.window_ms or 500.0, engine=engine,
                                crop=args.crop, downsample=args.downsample, on_mapping=said, totals=totals):
        print_window(row, args.json)
    if not getattr(args, "said_quiet", args.quiet):  # the totals, as run per gesture and stream print them
        print("pysg run: " + json.dumps(totals | {"mapping": used[0].to_dict() if used else None}), file=sys.stderr)
    line = drop_warning(name, totals["events_in"], totals["events_dropped"], used[0] if used else None)
    if line:
        print(line, file=sys.stderr)
    return 0


def _run_live(args) -> int:
    from ..io.sources import open_source

    if args.dump_logits:
        raise ValueError("--source prints one prediction per window (no --dump-logits)")
    kwargs = {"speed": args.speed} if not args.source.startswith(("tcp:", "camera")) else {}
    from ..io.sources.base import SourceUnavailableError

    try:
        with open_source(args.source, **kwargs) as source:
            return _print_windows(args, source, args.engine or _c_or_ref(), args.source)
    except SourceUnavailableError as e:  # connection refused, no camera, dv-processing missing
        raise ValueError(str(e)) from None


def cmd_info(args) -> int:
    from ..io import info

    r = info(args.events)
    r.update(_info_drops(args, r))
    print(dumps(r) if args.json else
          f"{args.events}: {r['format']}, {r['width']}x{r['height']}, {r['n_events']} events "
          f"({r['n_on']} ON), t {r['t_first']} .. {r['t_last']} us; {r['events_dropped']} of {r['events_in']} "
          f"events dropped ({_DROPPED_BY[r['dropped_by']]})")
    return 0


_DROPPED_BY = {"sensor": "outside the recording's declared sensor",
               "model": "by the sensor mapping onto --model's sensor"}


def _info_drops(args, r: dict) -> dict:
    """events_in / events_dropped of `pysg info`: without --model, the events outside the
    sensor the file declares (x >= width, y >= height); with --model M, what the one sensor
    mapping (pysg.preprocess.sensor_mapping, as run/eval/stream/bench apply it) leaves out.
    Counted chunk by chunk (pysg.io.iter_events)."""
    from ..io import iter_events
    from ..preprocess import apply_mapping, sensor_mapping

    m = None
    if args.model is not None:
        sensor = _jobs().load_model(args.model, engine="ref" if Path(args.model).suffix == ".sgm" else None)
        size = (r["width"], r["height"]) if r["geometry_source"] == "file" else None
        m = sensor_mapping(size, tuple(sensor.info.sensor_size), crop=args.crop, downsample=args.downsample)
    elif args.crop is not None or args.downsample is not None:
        raise ValueError("--crop / --downsample choose the mapping onto a model's sensor: add --model MODEL")
    dropped = 0
    w, h = r["width"], r["height"]
    for ev in iter_events(args.events):
        if m is not None:
            dropped += int(ev.size - apply_mapping(ev, m).size)
        elif w is not None and h is not None:
            dropped += int(((ev["x"] >= w) | (ev["y"] >= h)).sum())
    line = None
    if m is not None:
        from ..preprocess import drop_warning

        line = drop_warning(str(args.events), r["n_events"], dropped, m)
    if line:
        print(line, file=sys.stderr)
    return {"events_in": r["n_events"], "events_dropped": dropped, "dropped_by": "model" if m else "sensor",
            "mapping": m.to_dict() if m is not None else None}


def _read_json(path, what: str, key: str) -> dict:
    try:
        r = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e}); give {what}") from None
    if not isinstance(r, dict) or key not in r:
        raise ValueError(f"{path}: no {key!r} key; give {what}")
    return r


def cmd_plot(args) -> int:
    from .. import plots

    check_output(args.output, "-o")
    with atomic_path(args.output) as out:
        if args.what == "curves":
            plots.plot_history(_read_json(args.input, "the --history JSON of `pysg train`", "loss"), out)
        elif args.what == "confusion":
            r = _read_json(args.input, "the output of `pysg eval --json`", "confusion")
            plots.plot_confusion(np.array(r["confusion"]), r["classes"], out)
        elif args.what == "events":
            counts = plots.plot_event_strip(args.input, out, sample=args.sample)
        elif args.what == "raster":
            if not args.model:
                raise ValueError("pysg plot raster needs --model MODEL")
            counts = plots.plot_raster(args.model, args.input, out, sample=args.sample)
    if args.what in ("events", "raster"):  # the events shown, and those the mapping left out
        print(f"wrote {args.output} ({counts['events_in']} events in, {counts['events_dropped']} dropped)")
    else:
        print(f"wrote {args.output}")
    return 0
