# SPDX-License-Identifier: MIT
"""The TFLite baseline of the gesture task: a small int8 frame CNN run by LiteRT.

``build_baseline`` trains the float CNN (cnn.py) on a DVS128-Gesture-layout folder's
train split, quantises it post-training into an int8 .tflite (quant.py, written without
TensorFlow), checks the int8 model in LiteRT against the float one on the test split and
caches the .tflite and a JSON of its facts under ``~/.cache/pysg-bench`` (keyed on the
configuration and the dataset's files), so a rerun of the bench skips training.

Decision rule per gesture: argmax over classes of the mean logits of the gesture's
frames (for the int8 model: the sum of the int8 logits, the same argmax since the
logits share one scale and zero point).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .cnn import TrainConfig, forward, macs_per_frame, train
from .frames import INPUT_SCALE, INPUT_ZERO_POINT, event_frames
from .quant import quantize_to_tflite, reference_logits

__all__ = [
    "CACHE_DIR",
    "N_CLASSES",
    "BaselineConfig",
    "BaselineModel",
    "build_baseline",
    "dataset_key",
    "gesture_accuracy",
    "litert_interpreter",
    "litert_logits",
    "load_split_frames",
    "reference_logits",
]

N_CLASSES = 11
CACHE_DIR = Path(os.environ.get("PYSG_BENCH_CACHE", Path.home() / ".cache" / "pysg-bench"))


@dataclass(frozen=True)
class BaselineConfig:
    """Frames of ``window_ms`` in ``slices`` time slices; training frames every
    ``train_hop_ms``; the accuracy check of the int8 model uses frames every
    ``eval_hop_ms``. The defaults are the smallest CNN tried that is at least as accurate
    as pysg's model on the synthetic test split (channels (2, 4, 8): 83 %; (4, 8, 16):
    97-98 % over two seeds; (8, 16, 32): 98.5 %)."""
    window_ms: int = 200
    slices: int = 2
    train_hop_ms: int = 50
    eval_hop_ms: int = 10
    channels: tuple[int, int, int] = (4, 8, 16)
    epochs: int = 10
    batch: int = 64
    lr: float = 2e-3
    shift: int = 0
    seed: int = 0
    calib_frames: int = 2000


@dataclass
class BaselineModel:
    path: Path          # the int8 .tflite
    meta: dict          # config, MACs, float / int8 accuracies, training time

    @property
    def model_bytes(self) -> bytes:
        return self.path.read_bytes()


def load_split_frames(root: str | os.PathLike, split: str, window_ms: int, hop_ms: int, slices: int = 1):
    """(int8 frames (N, 32, 32, 2 slices), gesture index per frame, label per gesture) of a split."""
    from pysg.datasets.gesture import GestureDataset

    ds = GestureDataset(root, split)
    frames, owner, labels = [], [], np.empty(len(ds), np.int64)
    for i, s in enumerate(ds):
        f = event_frames(s.events, s.duration_us, window_ms=window_ms, hop_ms=hop_ms, slices=slices)
        frames.append(f)
        owner.append(np.full(len(f), i, np.int64))
        labels[i] = s.label
    return np.concatenate(frames), np.concatenate(owner), labels


def gesture_accuracy(frame_logits: np.ndarray, owner: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of argmax(mean logits over each gesture's frames); a gesture without a
    frame counts as wrong."""
    sums = np.zeros((len(labels), frame_logits.shape[1]))
    np.add.at(sums, owner, frame_logits.astype(np.float64))
    have = np.bincount(owner, minlength=len(labels)) > 0
    return float(np.mean((sums.argmax(1) == labels) & have))


def dequantize_frames(frames: np.ndarray) -> np.ndarray:
    return ((frames.astype(np.float32) - INPUT_ZERO_POINT) * INPUT_SCALE).astype(np.float32)


def litert_interpreter(model: bytes, *, threads: int = 1, reference: bool = False):
    """LiteRT interpreter: the default op resolver (int8 through XNNPACK) or, with
    ``reference``, TFLite's reference kernels without delegates."""
    from pysg.converters.tflite_interpreter import interpreter_module

    tfl = interpreter_module()
    kw = {"experimental_op_resolver_type": tfl.OpResolverType.BUILTIN_REF} if reference else {}
    it = tfl.Interpreter(model_content=model, num_threads=threads, **kw)
    it.allocate_tensors()
    return it


def litert_logits(it, frames: np.ndarray) -> np.ndarray:
    """int8 logits (N, n_classes) of int8 frames, one invoke per frame."""
    i_in, i_out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    out = np.empty((len(frames), it.get_output_details()[0]["shape"][-1]), np.int8)
    for k in range(len(frames)):
        it.set_tensor(i_in, frames[k:k + 1])
        it.invoke()
        out[k] = it.get_tensor(i_out)[0]
    return out


def dataset_key(root: Path) -> str:
    h = hashlib.sha256()
    for name in sorted(os.listdir(root)):
        st = (root / name).stat()
        h.update(f"{name}:{st.st_size}:{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:16]


def build_baseline(root: str | os.PathLike, cfg: BaselineConfig = BaselineConfig(), *,
                   cache_dir: str | os.PathLike | None = None, log=print) -> BaselineModel:
    """The cached int8 baseline for ``root``, training it first when not cached."""
    root = Path(root)
    cache = Path(cache_dir) if cache_dir is not None else CACHE_DIR
    key = hashlib.sha256(json.dumps([asdict(cfg), dataset_key(root), 1], sort_keys=True).encode()).hexdigest()[:16]
    path, meta_path = cache / f"gesture_cnn_{key}.tflite", cache / f"gesture_cnn_{key}.json"
    if path.is_file() and meta_path.is_file():
        return BaselineModel(path, json.loads(meta_path.read_text()))
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    xq, owner, labels = load_split_frames(root, "train", cfg.window_ms, cfg.train_hop_ms, cfg.slices)
    y = labels[owner]
    log(f"cnn baseline: {len(xq)} training frames from {len(labels)} gestures; training {cfg.epochs} epochs")
    tc = TrainConfig(cfg.channels, cfg.epochs, cfg.batch, cfg.lr, seed=cfg.seed, shift=cfg.shift)
    params = train(dequantize_frames(xq), y, tc, N_CLASSES,
                   progress=lambda e, loss: log(f"  epoch {e + 1}: loss {loss:.4f} ({time.perf_counter() - t0:.0f} s)"))
    train_s = time.perf_counter() - t0
    rng = np.random.default_rng(cfg.seed + 1)
    calib = dequantize_frames(xq[rng.choice(len(xq), min(cfg.calib_frames, len(xq)), replace=False)])
    model = quantize_to_tflite(params, calib)
    tq, towner, tlabels = load_split_frames(root, "test", cfg.window_ms, cfg.eval_hop_ms, cfg.slices)
    float_logits = np.concatenate([forward(params, dequantize_frames(tq[k:k + 512])) for k in range(0, len(tq), 512)])
    int8_logits = litert_logits(litert_interpreter(model), tq)
    ref_logits = reference_logits(model, tq)
    diff = np.abs(int8_logits.astype(np.int16) - ref_logits.astype(np.int16))
    meta = {
        "config": asdict(cfg), "macs_per_frame": macs_per_frame(cfg.channels, N_CLASSES, 2 * cfg.slices),
        "train_seconds": round(train_s, 1), "train_frames": len(xq), "train_gestures": len(labels),
        "test_gestures": len(tlabels), "test_frames": len(tq),
        "float_accuracy": gesture_accuracy(float_logits, towner, tlabels),
        "float_frame_accuracy": float(np.mean(float_logits.argmax(1) == tlabels[towner])),
        "int8_litert_accuracy": gesture_accuracy(int8_logits, towner, tlabels),
        "int8_litert_frame_accuracy": float(np.mean(int8_logits.argmax(1) == tlabels[towner])),
        "int8_reference_accuracy": gesture_accuracy(ref_logits, towner, tlabels),
        "litert_vs_reference_max_abs_diff": int(diff.max()),
        "litert_vs_reference_frac_differing": float(np.mean(diff > 0)),
        "model_bytes": len(model),
    }
    path.write_bytes(model)
    meta_path.write_text(json.dumps(meta, indent=1))
    log(f"cnn baseline: float {meta['float_accuracy']:.4f}, int8 LiteRT {meta['int8_litert_accuracy']:.4f} "
        f"-> {path}")
    return BaselineModel(path, meta)
