# SPDX-License-Identifier: MIT
"""Data jobs: `pysg synth`, `train`, `eval`, `demo`."""
from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .common import _bar, _engine, _jobs


def cmd_synth(args) -> int:
    from ..synth.dataset import synthesize_dataset

    n_files = (args.train_users + args.test_users) * args.lightings_per_user
    with _bar(n_files, "synthesising", "file", args.quiet) as bar:
        summary = synthesize_dataset(args.out_dir, train_users=args.train_users, test_users=args.test_users,
                                     seconds=args.seconds, seed=args.seed,
                                     lightings_per_user=args.lightings_per_user, workers=args.workers,
                                     progress=lambda *_: bar.update(1))
    print(json.dumps(summary, indent=1, default=str) if args.json else
          f"wrote {args.out_dir}: " + ", ".join(f"{k}={v}" for k, v in summary.items()
                                                 if not isinstance(v, (list, dict))))
    return 0


def cmd_train(args) -> int:
    from ..recipes import train_folder

    bar = None

    def on_binned(train, trainer):
        nonlocal bar
        remaining = trainer.cfg.epochs - trainer.epoch
        bar = _bar(len(train) * remaining, "training", "sample", args.quiet)

    def on_epoch(tr):
        h = tr.history
        msg = (f"epoch {h.epoch[-1]}/{tr.cfg.epochs}: loss {h.loss[-1]:.4f} "
               f"train accuracy {h.train_accuracy[-1]:.3f} ({h.seconds[-1]:.1f} s)")
        if bar is not None:
            bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr)

    trainer = train_folder(args.data_dir, args.output, epochs=args.epochs, dt_ms=args.dt_ms, seed=args.seed,
                           resume=args.resume, on_binned=on_binned, on_epoch=on_epoch,
                           on_batch=lambda n, loss: bar.update(n) if bar is not None else None)
    if bar is not None:
        bar.close()
    h = trainer.history
    out = {"model": str(args.output), "epochs": trainer.epoch, "seconds": float(sum(h.seconds)),
           "final_loss": h.loss[-1] if h.loss else None,
           "train_accuracy": h.train_accuracy[-1] if h.train_accuracy else None}
    if args.history:
        Path(args.history).write_text(json.dumps(asdict(h)))
    print(json.dumps(out) if args.json else
          f"saved {args.output} after {out['epochs']} epochs ({out['seconds']:.0f} s), "
          f"train accuracy {out['train_accuracy']:.3f}")
    return 0


def _eval_summary(r: dict) -> str:
    return (f"accuracy {r['accuracy'] * 100:.2f} % on {r['n']} samples ({r['split']} split, dt {r['dt_us']} us); "
            f"{r['spikes_per_sample']:.0f} spikes/sample, "
            f"{r['spikes_per_neuron_per_second']:.1f} spikes/neuron/s, "
            f"{r['synops_per_sample']:.3g} synaptic ops/sample vs {r['dense_macs_per_sample']:.3g} dense MACs")


def cmd_eval(args) -> int:
    try:
        result = _jobs().evaluate(args.model, args.data_dir, engine=_engine(args.engine, args.model),
                                  split=args.split, dt_ms=args.dt_ms, crop=args.crop,
                                  downsample=args.downsample).summary
    except ImportError as e:
        raise ValueError(str(e)) from None
    if args.plot:
        from ..plots import plot_confusion

        plot_confusion(np.array(result["confusion"]), result["classes"], args.plot)
    result.pop("predictions", None) if not args.json else None
    from ..preprocess import drop_warning, from_mapping_dict

    line = drop_warning(str(args.data_dir), result["events_in"], result["events_dropped"],
                        from_mapping_dict(result["mapping"]))
    if line:
        print(line, file=sys.stderr)
    print(json.dumps(result) if args.json else _eval_summary(result))
    return 0


def cmd_demo(args) -> int:
    from ..recipes import BUNDLED_MODEL, BUNDLED_SAMPLES, demo

    result = demo(BUNDLED_MODEL, BUNDLED_SAMPLES, engine=args.engine)
    if args.json:
        print(json.dumps(result))
        return 0
    for row in result["samples"]:
        mark = "ok " if row["predicted"] == row["label"] else "MISS"
        print(f"{mark} {row['file']} {row['t_start_us'] / 1e6:8.2f} s  true {row['label']:<28} "
              f"predicted {row['predicted']}")
    print(f"accuracy {result['accuracy'] * 100:.1f} % on the {result['n']} gestures of the bundled recordings "
          f"(engine: {result['engine']})")
    return 0
