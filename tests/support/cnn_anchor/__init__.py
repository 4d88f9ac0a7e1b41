# SPDX-License-Identifier: MIT
"""The strong frame-CNN anchor of the gesture task: 8 time bins x 2 polarities x 32 x 32
of a gesture (or of its first t ms), 3 conv layers of 32-64 channels, trained in torch
with augmentation, int8 in LiteRT (issue 15).

``build_anchor`` trains the float model (model.py) on a DVS128-Gesture-layout folder's
train split, quantises it (export.py) and caches the torch weights, the int8 .tflite and
a JSON of its facts under ``~/.cache/pysg-bench`` keyed on the configuration and the
dataset's files, so a rerun skips training. Only data.py is imported here: torch is
imported when a model is built or loaded.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..cnn_baseline import CACHE_DIR, dataset_key
from .data import SplitEvents, bin_windows, load_events, to_float, to_int8

__all__ = ["AnchorModel", "build_anchor", "calibration_windows", "inputs"]

_VERSION = 1


@dataclass
class AnchorModel:
    net: object          # model.AnchorNet, eval mode
    tflite: bytes        # the int8 model
    path: Path           # where the .tflite is cached
    meta: dict           # config, training time, MACs


def inputs(ev: SplitEvents, index: np.ndarray, start: np.ndarray, end: np.ndarray,
           n_bins: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(float NCHW for torch, int8 NHWC for LiteRT) inputs of the windows [start, end)."""
    c = bin_windows(ev, index, start, end, n_bins)
    return to_float(c), np.ascontiguousarray(to_int8(c).transpose(0, 2, 3, 1))


def calibration_windows(ev: SplitEvents, cfg, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibration inputs: every training gesture whole, plus one training-style window
    (prefix or cropped whole, model.sample_windows) of each, without augmentation."""
    from .model import sample_windows

    idx = np.arange(len(ev))
    s, e = sample_windows(ev, idx, cfg, np.random.default_rng(seed))
    return np.concatenate([idx, idx]), np.concatenate([np.zeros(len(ev), np.int64), s]), \
        np.concatenate([ev.durations, e])


def build_anchor(root: str | Path, cfg=None, *, log=print) -> AnchorModel:
    """The cached anchor of ``root`` (trained on its train split first when not cached)."""
    import torch

    from .export import fold, graph_macs, quantize_anchor
    from .model import AnchorConfig, AnchorNet, train_anchor

    cfg = cfg or AnchorConfig()
    root = Path(root)
    key = hashlib.sha256(json.dumps([asdict(cfg), dataset_key(root), _VERSION], sort_keys=True).encode())
    stem = CACHE_DIR / f"anchor_cnn_{key.hexdigest()[:16]}"
    pt, tfl, meta_path = stem.with_suffix(".pt"), stem.with_suffix(".tflite"), stem.with_suffix(".json")
    torch.set_num_threads(1)
    net = AnchorNet(cfg)
    if pt.is_file() and tfl.is_file() and meta_path.is_file():
        net.load_state_dict(torch.load(pt))
        net.eval()
        return AnchorModel(net, tfl.read_bytes(), tfl, json.loads(meta_path.read_text()))
    ev = load_events(root, "train")
    log(f"cnn anchor: training on {len(ev)} gestures of {root}, {cfg.epochs} epochs")
    t0 = time.perf_counter()
    net = train_anchor(ev, cfg, log=log)
    train_s = time.perf_counter() - t0
    cal_idx, cal_s, cal_e = calibration_windows(ev, cfg, cfg.seed + 1)
    xf, _ = inputs(ev, cal_idx, cal_s, cal_e, cfg.n_bins)
    model = quantize_anchor(fold(net), xf.transpose(0, 2, 3, 1))
    meta = {"config": asdict(cfg), "train_seconds": round(train_s, 1), "train_gestures": len(ev),
            "calibration_inputs": len(cal_idx), "model_bytes": len(model), **graph_macs(model)}
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), pt)
    tfl.write_bytes(model)
    meta_path.write_text(json.dumps(meta, indent=1))
    return AnchorModel(net, model, tfl, meta)
