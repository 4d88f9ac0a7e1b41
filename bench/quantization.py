# SPDX-License-Identifier: MIT
"""Float model vs its int8 .sgm on a gesture split: accuracy, per-stage error, sizes.

The float network is exported in memory (as `pysg export` does), then both run the
same binned test split: accuracy and prediction agreement, the relative RMS error of
each stage's x(t) (float vs integer reference, live steps only), spikes and synaptic
events per sample, file and arena bytes per layer.

    python -m bench.quantization MODEL.npz DATA_DIR [--split test] [--dt-ms D]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from pysg.converters.sgm import export_network
from pysg.intref import evaluate_ref, run
from pysg.model import Network
from pysg.recipes import load_split
from pysg.sgm import inspect_sgm, load_sgm
from pysg.train.trainer import evaluate


def stage_errors(net: Network, model, data, batch: int = 64) -> list[float]:
    """Relative RMS of x per stage between the float model (float64) and the reference."""
    num = np.zeros(len(model.stages))
    den = np.zeros(len(model.stages))
    for s0 in range(0, len(data), batch):
        idx = np.arange(s0, min(len(data), s0 + batch))
        lengths = data.lengths[idx]
        t_steps = int(lengths.max())
        frames = np.moveaxis(data.frames[idx, :t_steps], 1, 0)
        ref = run(model, frames, record_x=True)
        state = net.init_state(len(idx), dtype=np.float64)
        flat = frames.reshape(t_steps, len(idx), -1)
        for t in range(t_steps):
            net.step(state, flat[t])
            live = t < lengths
            for l, st in enumerate(model.stages):
                x = state.x[l][live]
                d = x - ref.x[l][t][live] * 2.0 ** -st.x_frac_bits
                num[l] += float(np.sum(d * d))
                den[l] += float(np.sum(x * x))
    return [float(v) for v in np.sqrt(num / den)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("data_dir")
    ap.add_argument("--split", default="test")
    ap.add_argument("--dt-ms", type=float, default=None)
    args = ap.parse_args(argv)
    net = Network.load(args.model)
    if args.dt_ms is not None:
        net = net.retarget_dt(int(round(args.dt_ms * 1000)))
    model = load_sgm(export_network(net))
    data = load_split(args.data_dir, args.split, net)
    rf, rr = evaluate(net, data), evaluate_ref(model, data)
    info = inspect_sgm(model)
    out = {
        "n": rr["n"], "dt_us": net.config.dt_us,
        "float_accuracy": rf["accuracy"], "ref_accuracy": rr["accuracy"],
        "prediction_agreement": float(np.mean(np.array(rf["predictions"]) == np.array(rr["predictions"]))),
        "rel_rms_x_per_stage": stage_errors(net, model, data),
        "spikes_per_sample": [rf["spikes_per_sample"], rr["spikes_per_sample"]],
        "synops_per_sample": [rf["synops_per_sample"], rr["synops_per_sample"]],
        "file_bytes": info["file_bytes"], "arena_bytes": info["arena_bytes"],
        "weight_bytes_per_layer": [l["weight_bytes"] for l in info["layers"]],
        "arena_bytes_per_layer": [l["arena_bytes"] for l in info["layers"]],
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
