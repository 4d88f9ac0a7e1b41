# SPDX-License-Identifier: MIT
"""Recordings: `pysg run` (a model on an event file or a live source), `info`, `plot`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .common import _c_or_ref, _jobs


def cmd_run(args) -> int:
    if args.source:
        return _run_live(args)
    if not args.events:
        raise ValueError("give an EVENTS file, or --source SPEC for live input")
    try:
        r = _jobs().run_file(args.model, args.events, engine=args.engine or _c_or_ref(), crop=args.crop,
                             downsample=args.downsample, warn=lambda line: print(line, file=sys.stderr))
    except ImportError as e:
        raise ValueError(str(e)) from None
    logits = r.pop("logits")
    if args.dump_logits:
        np.save(args.dump_logits, logits)
    print(json.dumps(r) if args.json else
          f"prediction {r['prediction']} (class {r['label_index']}) after {r['steps']} steps; "
          f"spikes per hidden stage {r['spikes']}, {r['synops']} synaptic events; "
          f"{r['events_in'] - r['events_dropped']} of {r['events_in']} events used")
    return 0


def _run_live(args) -> int:
    from ..io.sources import open_source
    from ..live import live_predictions

    if args.dump_logits:
        raise ValueError("--source prints one prediction per window (no --dump-logits)")
    kwargs = {"speed": args.speed} if not args.source.startswith(("tcp:", "camera")) else {}
    with open_source(args.source, **kwargs) as source:
        used = []

        def said(m):
            used.append(m)
            if not args.quiet:
                print("pysg run: " + json.dumps({"mapping": m.to_dict()}), file=sys.stderr)

        totals = {"events_in": 0, "events_dropped": 0}
        for row in live_predictions(args.model, source, window_ms=args.window_ms, engine=args.engine or _c_or_ref(),
                                    crop=args.crop, downsample=args.downsample, on_mapping=said, totals=totals):
            print(json.dumps(row) if args.json else
                  f"{row['t_start_us'] / 1e6:10.3f} s  {row['prediction'] or '-':<28} "
                  f"{row['events']:>7} events {row['spikes']:>6} spikes", flush=True)
    from ..preprocess import drop_warning

    if not args.quiet:
        print("pysg run: " + json.dumps(totals), file=sys.stderr)
    line = drop_warning(args.source, totals["events_in"], totals["events_dropped"], used[0] if used else None)
    if line:
        print(line, file=sys.stderr)
    return 0


def cmd_info(args) -> int:
    from ..io import info

    r = info(args.events)
    print(json.dumps(r) if args.json else
          f"{args.events}: {r['format']}, {r['width']}x{r['height']}, {r['n_events']} events "
          f"({r['n_on']} ON), t {r['t_first']} .. {r['t_last']} us")
    return 0


def cmd_plot(args) -> int:
    from .. import plots

    if args.what == "curves":
        plots.plot_history(json.loads(Path(args.input).read_text()), args.output)
    elif args.what == "confusion":
        r = json.loads(Path(args.input).read_text())
        plots.plot_confusion(np.array(r["confusion"]), r["classes"], args.output)
    elif args.what == "events":
        plots.plot_event_strip(args.input, args.output, sample=args.sample)
    elif args.what == "raster":
        if not args.model:
            raise ValueError("pysg plot raster needs --model MODEL")
        plots.plot_raster(args.model, args.input, args.output, sample=args.sample)
    print(f"wrote {args.output}")
    return 0
