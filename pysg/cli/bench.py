# SPDX-License-Identifier: MIT
"""`pysg bench MODEL [RECORDING]` (pysg.benchmark)."""
from __future__ import annotations

import sys

from .common import dumps


def cmd_bench(args) -> int:
    from ..benchmark import benchmark
    from ..preprocess import drop_warning, from_mapping_dict

    r = benchmark(args.model, args.events, engine=args.engine, crop=args.crop, downsample=args.downsample)
    line = drop_warning(r["recording"], r["events_in"], r["events_dropped"], from_mapping_dict(r["mapping"]))
    if line:
        print(line, file=sys.stderr)
    if args.json:
        print(dumps(r))
        return 0
    lat, tp = r["latency_us"], r["throughput"]
    print(f"{r['model']} on {r['recording']} (engine {r['engine']}): {r['steps']} steps of {r['dt_us']} us, "
          f"{r['events_in']} events ({r['events_dropped']} dropped"
          + (f"; mapping {_mapping_text(r['mapping'])}" if r["mapping"]["source"] != "identity" else "") + ")")
    print(f"  latency per step (us): p50 {lat['p50']:.1f}, p90 {lat['p90']:.1f}, p99 {lat['p99']:.1f}, "
          f"max {lat['max']:.1f}, mean {lat['mean']:.1f}")
    print(f"  throughput: {tp['steps_per_s']:.0f} steps/s, {tp['events_per_s']:.0f} events/s, "
          f"{tp['x_real_time']:.1f} x real time")
    print(f"  model {r['model_bytes']} bytes, arena " + (f"{r['arena_bytes']} bytes" if r["arena_bytes"] is not None
                                                      else "- (float)") + f", peak RSS {r['peak_rss_bytes']} bytes")
    print(f"  prediction {r['prediction'] or '-'} (class {r['prediction_index']}) over the whole recording")
    return 0


def _mapping_text(m: dict) -> str:
    x, y, w, h = m["crop"]
    return f"window {x},{y},{w},{h} of {m['recording'][0]}x{m['recording'][1]}, downsample {m['downsample']} ({m['source']})"
