# SPDX-License-Identifier: MIT
"""The jobs behind the `pysg` command, as library functions a user can call.

`default_network` is the recommended gesture architecture; `train_folder` and
`evaluate_folder` run the recommended recipe on a DVS128-Gesture-layout folder
(the real dataset or one written by `pysg synth`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .datasets.gesture import GESTURE_CLASSES, mirror_labels
from .model import Conv2d, Dense, Flatten, Network, NetworkConfig
from .model.network import scaled_min_count
from .train.gradients import CREDIT_MODES
from .train.trainer import SequenceData, TrainConfig, Trainer, calibrate, data_for

DATA_DIR = Path(__file__).parent / "data"
BUNDLED_MODEL = DATA_DIR / "gesture_model.npz"
BUNDLED_SAMPLES = DATA_DIR / "samples"


# the recipe's step: a quarter of the steps (neuron updates) of 10 ms, as accurate on the hard set
# (with the delays below: 82.7 % float at 40 ms, 83.2 / 82.3 % at 20 ms; BENCHMARKS.md)
DEFAULT_DT_MS = 40.0
# The dense layer reads convolution channel c through an axonal delay of DEFAULT_DELAYS_MS[c % 4]:
# it sees each arm movement at four ages, which can tell clockwise from anticlockwise (hard set,
# float: +2.8 and +0.5 points at two seeds; 0..120 ms was worse, 0..600 ms no better; docs/MODEL.md).
DEFAULT_DELAYS_MS = (0.0, 120.0, 200.0, 320.0)
# An input (a 4x4 block of sensor pixels, one polarity) is taken in a 40 ms step only when at least
# 3 of its events arrive: the background activity's scattered events seldom do, a moving edge does.
# Hard set: the first layer's executed MACs / 7, a quarter fewer Cortex-M4 instructions, the same
# accuracy within a seed's spread (85.1 % float over three seeds, 85.4 % without; BENCHMARKS.md,
# "The input gate").
DEFAULT_INPUT_MIN_COUNT = 3


def default_min_count(dt_us: int) -> int:
    """The recipe's input gate at another step, scaled as `Network.retarget_dt` scales a
    model's (1 keeps every event)."""
    return scaled_min_count(DEFAULT_INPUT_MIN_COUNT, int(DEFAULT_DT_MS * 1000), dt_us)


def default_network(*, dt_us: int = int(DEFAULT_DT_MS * 1000), seed: int = 0, classes=GESTURE_CLASSES,
                    input_min_count: int | None = None) -> Network:
    """The recommended gesture network: 128x128 DVS -> 2x32x32 (ON/OFF counts) ->
    16 convolutional SpikingGamma channels (4x4 patches at stride 4: a 16x8x8 map, each
    input event reaches exactly 16 neurons) -> 96 SpikingGamma neurons -> 11 outputs,
    K = 4 buckets, 40 ms steps; the 96 read the map through the axonal delays of
    DEFAULT_DELAYS_MS (fixed, one per channel); an input's events of a step reach the
    convolution only when there are `input_min_count` of them (None: the recipe's,
    `default_min_count`; 0 keeps every event). About 101 k weights and 25.2 KiB of state
    (the delays' spike ring 1.1 KiB of it, the input gate's counts 2 KiB): it fits the
    STM32 port (docs/PORTING.md). The convolution's shared local weights are what lets it
    learn gestures under clutter and camera shake (BENCHMARKS.md, "A SpikingGamma recipe
    for the hard set")."""
    cfg = NetworkConfig(
        input_shape=(2, 32, 32),
        layers=[Conv2d(16, 4, stride=4), Flatten(), Dense(96), Dense(len(classes))],
        n_buckets=4,
        dt_us=dt_us,
        input_gain=1.0,
        classes=list(classes),
        sensor_size=(128, 128),
        downsample=4,
        input_min_count=default_min_count(dt_us) if input_min_count is None else input_min_count,
    )
    net = Network(cfg, rng=np.random.default_rng(seed))
    conv = net.stages[0].syn.out_shape  # (channels, 8, 8)
    steps = [int(round(ms * 1000 / dt_us)) for ms in DEFAULT_DELAYS_MS]
    per_channel = np.array([steps[c % len(steps)] for c in range(conv[0])], np.uint8)
    net.params["1.delays"] = np.repeat(per_channel, conv[1] * conv[2])
    return net


def load_split(root, split: str, net: Network, *, dt_us: int | None = None,
               progress: Callable[[int], None] | None = None) -> SequenceData:
    """A split binned for `net`, each recording mapped onto its sensor by the one mapping
    every command uses (pysg.preprocess.sensor_mapping); the data's events_in,
    events_dropped and mapping say what that kept."""
    from .datasets.tonic_adapter import open_split  # a folder, or a tonic: spec (docs/DATASETS.md)
    from .jobs import MappedSamples, load_model

    samples = MappedSamples(open_split(root, split, sensor=net.config.sensor_size, n_classes=net.n_classes),
                            load_model(net).info)
    data = data_for(net, samples, dt_us=dt_us, progress=progress)
    data.events_in, data.events_dropped, data.mapping = samples.events_in, samples.events_dropped, samples.mapping
    return data


def recipe_config(net: Network, *, seed: int, credit: str | None = None, mirror: bool = True,
                  epochs: int | None = None) -> TrainConfig:
    """The recipe's TrainConfig for `net`: TrainConfig's defaults, with `credit` and `epochs`
    when given, and left-right mirrored copies of half the samples when `mirror` and the
    network's classes have known mirror images (the 11 gestures; hard set, six paired runs:
    +1.4 points on average, worst run 84.5 % against 81.4 % without; BENCHMARKS.md
    "Augmentation")."""
    cfg = TrainConfig(seed=seed) if credit is None else TrainConfig(seed=seed, credit=credit)
    if epochs is not None:
        cfg.epochs = epochs
    if mirror:
        cfg.mirror = mirror_labels(net.config.classes)
    return cfg


def start_trainer(out_path, *, dt_ms: float | None, seed: int, epochs: int | None, resume: bool,
                  new: Callable[[Network, TrainConfig], Trainer],
                  resumed: Callable[[Path, int | None], Trainer],
                  credit: str | None = None, mirror: bool | None = None,
                  min_count: int | None = None) -> tuple[Trainer, Path]:
    """The recipe's trainer, for either backend: resumed from `<out_path>.ckpt` when asked
    and there (its dt and credit must be `dt_ms` and `credit` when they are asked for), else
    `new` on the default network and `recipe_config` (at `dt_ms`, the recipe's DEFAULT_DT_MS
    if None; with `credit`, TrainConfig's if None; mirrored gestures unless `mirror` is
    False; the input gate `min_count`, the recipe's if None); returns it and the checkpoint
    path. A resumed run keeps its checkpoint's credit, mirroring and input gate, and
    refuses others asked for."""
    if credit is not None and credit not in CREDIT_MODES:
        raise ValueError(f"credit must be one of {CREDIT_MODES}, got {credit!r}")
    out_path = Path(out_path)
    ckpt = out_path.with_name(out_path.name + ".ckpt")
    dt_us = int(round((DEFAULT_DT_MS if dt_ms is None else dt_ms) * 1000))
    if resume and ckpt.exists():
        trainer = resumed(ckpt, epochs)
        if dt_ms is not None and trainer.net.config.dt_us != dt_us:
            raise ValueError(f"{ckpt}: checkpoint runs at dt={trainer.net.config.dt_us} us, asked for {dt_us} us")
        if credit is not None and trainer.cfg.credit != credit:
            raise ValueError(f"{ckpt}: checkpoint trains with credit {trainer.cfg.credit!r}, asked for {credit!r}")
        if mirror is not None and (trainer.cfg.mirror is not None) != mirror:
            raise ValueError(f"{ckpt}: checkpoint trains {'with' if trainer.cfg.mirror else 'without'} mirrored "
                             f"gestures, asked {'with' if mirror else 'without'}")
        if min_count is not None and max(trainer.net.config.input_min_count, 1) != max(min_count, 1):
            raise ValueError(f"{ckpt}: checkpoint's network takes inputs of at least "
                             f"{trainer.net.config.input_min_count} events per step, asked for {min_count}")
        return trainer, ckpt
    net = default_network(dt_us=dt_us, seed=seed, input_min_count=min_count)
    return new(net, recipe_config(net, seed=seed, credit=credit, mirror=mirror is not False, epochs=epochs)), ckpt


def train_folder(data_dir, out_path, *, epochs: int | None = None, dt_ms: float | None = None, seed: int = 0,
                 resume: bool = False, credit: str | None = None, mirror: bool | None = None,
                 min_count: int | None = None, on_batch=None, on_epoch=None, on_binned=None) -> Trainer:
    """Train the default network with the default recipe on `data_dir`'s train split.

    A checkpoint `<out_path>.ckpt` is written after every epoch; with `resume=True`
    training continues from it. The final model is saved to `out_path`."""
    trainer, ckpt = start_trainer(out_path, dt_ms=dt_ms, seed=seed, epochs=epochs, resume=resume, new=Trainer,
                                  resumed=lambda path, epochs: Trainer.resume(path, epochs=epochs), credit=credit,
                                  mirror=mirror, min_count=min_count)
    net = trainer.net
    train = load_split(data_dir, "train", net)
    if on_binned:
        on_binned(train, trainer)
    if trainer.epoch == 0:
        calibrate(net, train)
    trainer.fit(train, checkpoint=ckpt, on_batch=on_batch, on_epoch=on_epoch)
    net.save(out_path)
    return trainer


def evaluate_folder(model, data_dir, *, split: str = "test", dt_ms: float | None = None,
                    progress: Callable[[int], None] | None = None) -> dict:
    """Evaluate a float model (path or Network) on a folder split; `dt_ms` retargets the
    model's time step first (decays re-derived, see Network.retarget_dt)."""
    from .jobs import evaluate

    return evaluate(model, data_dir, engine="float", split=split, dt_ms=dt_ms, progress=progress).summary


def demo(model_path=BUNDLED_MODEL, samples_dir=BUNDLED_SAMPLES, *, engine: str = "c") -> dict:
    """The main job: recognise the gestures of the bundled recordings with the bundled
    model. Returns per-sample rows (file, interval, true and predicted class) and the
    accuracy.

    engine "c" (default): the float model is exported to .sgm in memory and every
    gesture (origin at the interval start, ceil(duration / dt) steps) runs on the C
    runtime; "ref": the same on the integer reference; "float": the float model."""
    from .jobs import evaluate

    if engine not in ("c", "ref", "float"):
        raise ValueError(f"demo: engine must be 'c', 'ref' or 'float', got {engine!r}")
    ev = evaluate(model_path, samples_dir, engine=engine, split="test")
    classes = ev.summary["classes"]
    rows = [{"file": Path(r.source).name, "t_start_us": int(r.t_start), "label": classes[r.label],
             "predicted": classes[r.prediction]} for r in ev.samples]
    return {"engine": engine, "accuracy": float(ev.summary["accuracy"]), "n": len(rows), "samples": rows}
