# SPDX-License-Identifier: MIT
"""Data jobs: `pysg synth`, `train`, `eval`, `demo`."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .common import _bar, _engine, _jobs, check_output, dumps, write_atomic


def cmd_synth(args) -> int:
    from ..synth.dataset import synthesize_dataset

    out = Path(args.out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out}: exists and is not an empty folder; give a new folder (synth writes the whole "
                         f"dataset at once)")
    check_output(out, "OUT_DIR") if not out.exists() else None
    n_files = (args.train_users + args.test_users) * args.lightings_per_user
    # atomic: the dataset is built in a hidden folder beside OUT_DIR and renamed onto it when
    # complete, so an interrupted synth (Ctrl-C) leaves no half-written dataset
    part = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        with _bar(n_files, "synthesising", "file", args.quiet) as bar:
            summary = synthesize_dataset(part, train_users=args.train_users, test_users=args.test_users,
                                         seconds=args.seconds, seed=args.seed,
                                         lightings_per_user=args.lightings_per_user, workers=args.workers,
                                         difficulty=args.difficulty, progress=lambda *_: bar.update(1))
        if out.exists():
            out.rmdir()
        os.replace(part, out)
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise
    summary = _synth_json(summary)
    print(dumps(summary) if args.json else
          f"wrote {args.out_dir}: " + ", ".join(f"{k}={v}" for k, v in summary.items()
                                                 if not isinstance(v, (list, dict))))
    return 0


def _synth_json(summary: dict) -> dict:
    """docs/CLI.md's synth keys: counts n_*, the size dataset_bytes, seconds rounded to
    the microsecond the recordings resolve (gesture_s=19.8, not 19.799999999999997)."""
    return {"n_files": int(summary["files"]), "n_samples": int(summary["samples"]),
            "n_events": int(summary["events"]), "dataset_bytes": int(summary["bytes"]),
            "gesture_s": round(float(summary["gesture_s"]), 6),
            "train": [str(x) for x in summary["train"]], "test": [str(x) for x in summary["test"]]}


def _dataset(path, split: str) -> None:
    """A DVS128-Gesture-layout folder with the split's trial list, or a one-line ValueError.
    A `tonic:` spec is checked where it is opened (pysg.datasets.tonic_adapter)."""
    from ..datasets.tonic_adapter import is_tonic_spec

    if is_tonic_spec(str(path)):
        return
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"DATA_DIR {path}: no such folder; give a dataset folder (`pysg synth DIR` makes one)")
    if not (folder / f"trials_to_{split}.txt").is_file():
        raise ValueError(f"DATA_DIR {path}: not a dataset folder (no trials_to_{split}.txt; the DVS128 Gesture "
                         "layout, as `pysg synth DIR` writes it)")


def cmd_train(args) -> int:
    # every refusal before epoch 1
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs {args.epochs}: give at least 1 (or leave it out for the recipe's)")
    _dataset(args.data_dir, "train")
    check_output(args.output, "-o")
    if args.history:
        check_output(args.history, "--history")
    ckpt = Path(args.output).with_name(Path(args.output).name + ".ckpt")
    if args.resume and not ckpt.is_file():
        raise ValueError(f"--resume: no checkpoint {ckpt} (it is written after each epoch of a run with the same "
                         f"-o); drop --resume to start over")

    bar = None
    counts = {"events_in": None, "events_dropped": None, "mapping": None}

    def on_binned(train, trainer):
        nonlocal bar
        from ..preprocess import drop_warning

        # the split's events and what the sensor mapping left out (None: a --ddp rank reads
        # only its own recordings, as it trains)
        m = getattr(train, "mapping", None)
        counts.update(events_in=getattr(train, "events_in", None), events_dropped=getattr(train, "events_dropped", None),
                      mapping=m.to_dict() if m is not None else None)
        line = counts["events_in"] and drop_warning(str(args.data_dir), counts["events_in"], counts["events_dropped"], m)
        if line and not args.quiet:
            print(line, file=sys.stderr)
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

    rank = _train_rank(args)
    if rank != 0:  # the other ranks of a torchrun job train silently; rank 0 reports
        args.quiet, on_epoch = True, None
    trainer = _train_backend(args)(args.data_dir, args.output, epochs=args.epochs, dt_ms=args.dt_ms,
                                   seed=args.seed, resume=args.resume, credit=args.credit,
                                   mirror=False if args.no_mirror else None, min_count=args.min_count,
                                   on_binned=on_binned, on_epoch=on_epoch,
                                   on_batch=lambda n, loss: bar.update(n) if bar is not None else None)
    if bar is not None:
        bar.close()
    if rank != 0:
        return 0
    h = trainer.history
    out = {"model": str(args.output), "epochs": trainer.epoch, "seconds": float(sum(h.seconds)),
           "final_loss": h.loss[-1] if h.loss else None,
           "train_accuracy": h.train_accuracy[-1] if h.train_accuracy else None, **counts}
    if args.history:
        write_atomic(args.history, lambda f: f.write(dumps(asdict(h)).encode()))
    print(dumps(out) if args.json else
          f"saved {args.output} after {out['epochs']} epochs ({out['seconds']:.0f} s), "
          f"train accuracy {out['train_accuracy']:.3f}"
          + (f"; {out['events_in']} events in, {out['events_dropped']} dropped" if out["events_in"] is not None
             else ""))
    return 0


def _train_rank(args) -> int:
    """This process's rank in a torchrun job (0 without --ddp); refuses torch-only options
    on the numpy backend."""
    if args.backend == "numpy" and (args.device != "cpu" or args.ddp or args.threads):
        raise ValueError("--device, --ddp and --threads are options of --backend torch")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads {args.threads}: give at least 1")
    return int(os.environ.get("RANK", "0")) if args.ddp else 0


def _train_backend(args):
    """The training job of --backend: pysg.recipes.train_folder or its torch port."""
    if args.backend == "numpy":
        from ..recipes import train_folder

        return train_folder
    try:
        from ..train.torch_recipe import train_folder_torch
    except ImportError as e:
        raise ValueError(str(e)) from None
    from functools import partial

    return partial(train_folder_torch, device=args.device, ddp=args.ddp, threads=args.threads)


def _eval_summary(r: dict) -> str:
    return (f"accuracy {r['accuracy'] * 100:.2f} % on {r['n']} samples ({r['split']} split, dt {r['dt_us']} us); "
            f"{r['spikes_per_sample']:.0f} spikes/sample, "
            f"{r['spikes_per_neuron_per_second']:.1f} spikes/neuron/s, "
            f"{r['synops_per_sample']:.3g} synaptic ops/sample vs {r['dense_macs_per_sample']:.3g} dense MACs")


def cmd_eval(args) -> int:
    _dataset(args.data_dir, args.split)
    if args.plot:
        check_output(args.plot, "--plot")
    try:
        from ..datasets.tonic_adapter import open_split

        with _bar(len(open_split(args.data_dir, args.split)), "evaluating", "sample", args.quiet) as bar:
            ev = _jobs().evaluate(args.model, args.data_dir, engine=_engine(args.engine, args.model),
                                  split=args.split, dt_ms=args.dt_ms, crop=args.crop, downsample=args.downsample,
                                  progress=bar.update, at_ms=args.at_ms or ())
    except ImportError as e:
        raise ValueError(str(e)) from None
    result = dict(ev.summary)
    if args.plot:
        from ..plots import plot_confusion

        plot_confusion(np.array(result["confusion"]), result["classes"], args.plot)
    result.pop("predictions", None)
    classes = result["classes"]
    result["samples"] = [_sample_row(r, classes) for r in ev.samples]
    from ..preprocess import drop_warning, from_mapping_dict

    line = drop_warning(str(args.data_dir), result["events_in"], result["events_dropped"],
                        from_mapping_dict(result["mapping"]))
    if line:
        print(line, file=sys.stderr)
    print(dumps(result) if args.json else _eval_summary(result) + "".join(
        f"\n{row['ms']:g} ms after onset: accuracy {row['accuracy'] * 100:.2f} % ({row['n_ended']} gestures "
        f"ended before)" for row in result.get("at_onset", ())))
    return 0


def _name(classes, i: int):
    return classes[i] if 0 <= i < len(classes) else None


def _sample_row(r, classes) -> dict:
    """One labelled sample as eval, demo and run print it (docs/CLI.md's sample row)."""
    return {"file": Path(r.source).name, "t_start_us": int(r.t_start), "t_end_us": int(r.t_start + r.duration_us),
            "truth": _name(classes, r.label), "truth_index": int(r.label),
            "prediction": _name(classes, r.prediction), "prediction_index": int(r.prediction)}


def cmd_demo(args) -> int:
    from ..recipes import BUNDLED_MODEL, BUNDLED_SAMPLES

    # what pysg.recipes.demo runs (every gesture of the bundled recordings' test split), printed
    # with the sample rows eval prints
    ev = _jobs().evaluate(BUNDLED_MODEL, BUNDLED_SAMPLES, engine=args.engine, split="test")
    classes = ev.summary["classes"]
    result = {"engine": args.engine, "accuracy": float(ev.summary["accuracy"]), "n": len(ev.samples),
              "events_in": int(ev.summary["events_in"]), "events_dropped": int(ev.summary["events_dropped"]),
              "samples": [_sample_row(r, classes) for r in ev.samples]}
    if args.json:
        print(dumps(result))
        return 0
    for row in result["samples"]:
        mark = "ok " if row["prediction_index"] == row["truth_index"] else "MISS"
        print(f"{mark} {row['file']} {row['t_start_us'] / 1e6:8.2f} s  truth {row['truth']:<28} "
              f"prediction {row['prediction']}")
    print(f"accuracy {result['accuracy'] * 100:.1f} % on the {result['n']} gestures of the bundled recordings "
          f"(engine: {result['engine']}); {result['events_dropped']} of {result['events_in']} events dropped")
    return 0
