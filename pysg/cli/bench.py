# SPDX-License-Identifier: MIT
"""`pysg bench MODEL [RECORDING]` (pysg.benchmark)."""
from __future__ import annotations

import json


def cmd_bench(args) -> int:
    from ..benchmark import benchmark

    r = benchmark(args.model, args.events, engine=args.engine)
    if args.json:
        print(json.dumps(r))
        return 0
    lat, tp = r["latency_us"], r["throughput"]
    print(f"{r['model']} on {r['recording']} (engine {r['engine']}): {r['steps']} steps of {r['dt_us']} us, "
          f"{r['events']} events ({r['events_dropped']} dropped)")
    print(f"  latency per step (us): p50 {lat['p50']:.1f}, p90 {lat['p90']:.1f}, p99 {lat['p99']:.1f}, "
          f"max {lat['max']:.1f}, mean {lat['mean']:.1f}")
    print(f"  throughput: {tp['steps_per_s']:.0f} steps/s, {tp['events_per_s']:.0f} events/s, "
          f"{tp['x_real_time']:.1f} x real time")
    print(f"  model {r['model_bytes']} bytes, arena " + (f"{r['arena_bytes']} bytes" if r["arena_bytes"] is not None
                                                      else "- (float)") + f", peak RSS {r['peak_rss_bytes']} bytes")
    return 0
