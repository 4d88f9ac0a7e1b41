# SPDX-License-Identifier: MIT
"""Where a hard synthetic recording's events come from (pysg synth --difficulty hard,
docs/SYNTH.md): the recording with every effect, then with one effect switched off at a
time (each effect has its own random stream, so the rest of the file stays the same), and
with all four off; the share of each effect is the events it adds.

    python -m bench.synth_budget [--seed 0] [--user 51] [--lighting fluorescent_led] [--seconds 2]
"""
from __future__ import annotations

import argparse
from dataclasses import replace


def main(argv: list[str] | None = None) -> int:
    from pysg.synth.dataset import DEFAULT_DVS, LEAD_IN_S, OFFSET_US, PAUSE_S, user_style
    from pysg.synth.hard import HARD, synthesize_hard_recording

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--user", type=int, default=51)
    ap.add_argument("--lighting", default="fluorescent_led")
    ap.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args(argv)

    def events(cfg) -> int:
        ev, _, _ = synthesize_hard_recording(a.seed, a.user, a.lighting, seconds=a.seconds, dvs_config=DEFAULT_DVS,
                                             base_style=user_style(a.seed, a.user)[0], offset_us=OFFSET_US,
                                             lead_in_s=LEAD_IN_S, pause_s=PAUSE_S, cfg=cfg)
        return ev.size, (int(ev["t"].max()) - int(ev["t"].min())) * 1e-6

    off = {"background activity": dict(noise_hz=(0.0, 0.0)), "hot pixels": dict(hot_pixels=(0, 0)),
           "camera shake": dict(shake_px=(0.0, 0.0)), "passers-by": dict(passerby_hz=(0.0, 0.0))}
    full, span = events(HARD)
    print(f"user{a.user:02d}_{a.lighting} (seed {a.seed}): {full:,} events over {span:.1f} s = {full / span:,.0f} /s")
    for name, kw in off.items():
        n, _ = events(replace(HARD, **kw))
        print(f"  {name}: {full - n:,} events ({100 * (full - n) / full:.1f} %)")
    rest, _ = events(replace(HARD, **{k: v for kw in off.values() for k, v in kw.items()}))
    print(f"  the rest (person, lighting flicker, sensor leak and shot noise): {rest:,} ({100 * rest / full:.1f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
