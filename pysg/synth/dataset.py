# SPDX-License-Identifier: MIT
"""Synthesize a DVS128-Gesture-style dataset: rendered gestures -> DVS emulator ->
AEDAT 3.1 files in the published folder layout.

Layout written under ``out_dir`` (as ``pysg.datasets.gesture`` reads it)::

    trials_to_train.txt            user01 .. user<train_users>, one file per lighting
    trials_to_test.txt             the next test_users users (disjoint from train)
    userNN_<lighting>.aedat        AEDAT 3.1, 128 x 128, all 11 gestures
    userNN_<lighting>_labels.csv   class,startTime_usec,endTime_usec

One recording: the person stands still at rest for a short lead-in, then performs
the 11 gestures in a random order, each for ``seconds`` (the labelled interval,
blending in from and out to rest inside it), separated by random pauses of 0.25 to
0.6 s in which the person is still (only sensor noise and flicker events). Frames
are rendered at ``fps`` (250 by default) on a fixed grid and fed to
``DVSEmulator`` whose events carry interpolated µs timestamps. Timestamps start at
a random offset of 2 to 60 s, like a real recording.

Randomness: per user ``SeedSequence(seed, spawn_key=(user,))`` draws the person
(``UserStyle``) and which ``lightings_per_user`` lightings they are recorded under;
per file ``SeedSequence(seed, spawn_key=(user, 1 + lighting index))`` draws the
lighting, gesture order, pauses, repetitions and the sensor (DVS mismatch and
noise). Files therefore depend only on ``seed`` and their name, never on the
number of workers, and the same seed gives identical bytes.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

import numpy as np

from pysg.datasets.gesture import GESTURE_CLASSES, LIGHTINGS, labels_name, write_labels_csv, write_trials
from pysg.events import EVENT_DTYPE
from pysg.io.aedat31 import write_aedat31
from pysg.synth.dvs import DVSConfig, DVSEmulator
from pysg.synth.gestures import Renderer, Repetition, UserStyle, pose

__all__ = ["DEFAULT_DVS", "synthesize_dataset", "synthesize_recording", "user_style"]

SENSOR = 128
#: Sensor model used by ``synthesize_dataset`` (shot noise is scaled per lighting).
DEFAULT_DVS = DVSConfig(cutoff_hz=400.0)
LEAD_IN_S = (0.3, 0.6)
PAUSE_S = (0.25, 0.6)
OFFSET_US = (2_000_000, 60_000_000)
_EPOCH = _dt.datetime(2017, 1, 1, tzinfo=_dt.timezone.utc)

ProgressFn = Callable[[int, int, str], None]


def _user_seq(seed: int, user: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(user,))


def user_style(seed: int, user: int) -> tuple[UserStyle, tuple[str, ...]]:
    """The person of user number ``user`` (1-based) and the order of lightings they
    are recorded under (the first ``lightings_per_user`` are used)."""
    rng = np.random.default_rng(_user_seq(seed, user))
    style = UserStyle.draw(rng)
    order = rng.permutation(len(LIGHTINGS))
    return style, tuple(LIGHTINGS[int(i)] for i in order)


def synthesize_recording(seed: int, user: int, lighting: str, *, seconds: float = 2.0,
                         fps: float = 250.0, dvs_config: DVSConfig = DEFAULT_DVS, difficulty: str = "easy"
                         ) -> tuple[np.ndarray, list[tuple[int, int, int]], _dt.datetime]:
    """One recording of user ``user`` under ``lighting``: returns (events sorted by t,
    label rows (class 1..11, t_start_us, t_end_us), a start time for the file header).
    Deterministic in (seed, user, lighting, difficulty)."""
    if lighting not in LIGHTINGS:
        raise ValueError(f"unknown lighting {lighting!r}; expected one of {', '.join(LIGHTINGS)}")
    if not seconds > 0 or not fps > 0:
        raise ValueError(f"seconds and fps must be > 0, got {seconds!r}, {fps!r}")
    return DIFFICULTIES[_check_difficulty(difficulty)](seed, user, lighting, seconds, fps, dvs_config)


def _easy_recording(seed: int, user: int, lighting: str, seconds: float, fps: float, dvs_config: DVSConfig):
    base, _ = user_style(seed, user)
    file_seq = np.random.SeedSequence(seed, spawn_key=(user, 1 + LIGHTINGS.index(lighting)))
    light_seq, plan_seq, dvs_seq = file_seq.spawn(3)
    style = base.relit(lighting, np.random.default_rng(light_seq))
    plan = np.random.default_rng(plan_seq)

    # Timeline (µs from the recording start): lead-in, then gesture + pause each.
    order = plan.permutation(len(GESTURE_CLASSES))
    t0_us = int(plan.integers(*OFFSET_US))
    gesture_us = int(round(seconds * 1e6))
    segments = []  # (start_us, class, repetition) relative to t0_us
    cursor = int(round(plan.uniform(*LEAD_IN_S) * 1e6))
    for cls in order:
        segments.append((cursor, int(cls), Repetition.draw(plan)))
        cursor += gesture_us + int(round(plan.uniform(*PAUSE_S) * 1e6))
    total_us = cursor
    start_time = _EPOCH + _dt.timedelta(seconds=int(plan.integers(0, 3 * 365 * 86400)))

    cfg = replace(dvs_config, shot_rate_hz=dvs_config.shot_rate_hz * style.noise_factor)
    emu = DVSEmulator(SENSOR, SENSOR, cfg, np.random.default_rng(dvs_seq))
    ren = Renderer(style, SENSOR, SENSOR)

    n_frames = int(math.floor(total_us * fps / 1e6))
    frame_us = np.rint(np.arange(n_frames + 1) * (1e6 / fps)).astype(np.int64)
    starts = np.array([s[0] for s in segments], dtype=np.int64)
    seg_of = np.searchsorted(starts, frame_us, side="right") - 1  # -1 = lead-in
    chunks = []
    for k in range(n_frames + 1):
        t = int(frame_us[k])
        t_s = t * 1e-6
        j = int(seg_of[k])
        rel = t - starts[j] if j >= 0 else -1
        if 0 <= rel <= gesture_us:
            _, cls, rep = segments[j]
            img = ren.frame(pose(cls, style, rel * 1e-6, rep, seconds), t_s)
        else:
            img = ren.rest_frame(t_s)
        if k == 0:
            emu.reset(img, t0_us + t)
        else:
            ev = emu.step(img, t0_us + t)
            if ev.size:
                chunks.append(ev)
    events = np.concatenate(chunks) if chunks else np.empty(0, dtype=EVENT_DTYPE)
    labels = [(cls + 1, t0_us + int(s), t0_us + int(s) + gesture_us) for s, cls, _ in segments]
    return events, labels, start_time


def _hard_recording(seed: int, user: int, lighting: str, seconds: float, fps: float, dvs_config: DVSConfig):
    from pysg.synth.hard import synthesize_hard_recording

    return synthesize_hard_recording(seed, user, lighting, seconds=seconds, fps=fps, dvs_config=dvs_config,
                                     base_style=user_style(seed, user)[0], offset_us=OFFSET_US,
                                     lead_in_s=LEAD_IN_S, pause_s=PAUSE_S)


#: ``--difficulty``: the easy set (the original one) and the hard one (pysg.synth.hard, docs/SYNTH.md).
DIFFICULTIES: dict[str, Callable] = {"easy": _easy_recording, "hard": _hard_recording}


def _check_difficulty(difficulty: str) -> str:
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty {difficulty!r}; expected one of {', '.join(DIFFICULTIES)}")
    return difficulty


def _synth_file(job: tuple) -> dict:
    out_dir, name, seed, user, lighting, seconds, fps, dvs_config, difficulty = job
    events, labels, start_time = synthesize_recording(seed, user, lighting, seconds=seconds, fps=fps,
                                                      dvs_config=dvs_config, difficulty=difficulty)
    path = Path(out_dir) / name
    write_aedat31(path, events, width=SENSOR, height=SENSOR, start_time=start_time)
    labels_path = Path(out_dir) / labels_name(name)
    write_labels_csv(labels_path, labels)
    return {"name": name, "events": int(events.size), "samples": len(labels),
            "gesture_us": sum(b - a for _, a, b in labels),
            "bytes": path.stat().st_size + labels_path.stat().st_size}


def _check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo \
            or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ValueError(f"synthesize_dataset: {name} must be an integer {rng}, got {value!r}")
    return int(value)


def synthesize_dataset(out_dir: str | os.PathLike, *, train_users: int = 20, test_users: int = 6,
                       seconds: float = 2.0, seed: int = 0, lightings_per_user: int = 3,
                       workers: int | None = None, progress: ProgressFn | None = None,
                       fps: float = 250.0, dvs_config: DVSConfig = DEFAULT_DVS, difficulty: str = "easy") -> dict:
    """Write a synthetic DVS128 Gesture dataset under ``out_dir`` (created if needed).

    Args:
        out_dir: dataset root.
        train_users, test_users: users 1..train_users form the train split, the next
            test_users the test split.
        seconds: length of each gesture (the labelled interval), > 0.
        seed: master seed; same seed -> identical files.
        lightings_per_user: recordings per user (1..5), each under another lighting.
        workers: processes (None: one per core, 1: in this process).
        progress: called as ``progress(done, total, file_name)`` after each file.
        fps: render rate in frames per second.
        dvs_config: sensor model (its shot-noise rate is scaled per lighting).
        difficulty: "easy" (the default set) or "hard" (docs/SYNTH.md).

    Returns:
        {"files", "samples", "events", "bytes" (aedat + labels + trials lists),
        "train": [names], "test": [names], "gesture_s" (labelled seconds in total)}.
    """
    train_users = _check_int("train_users", train_users, 0)
    test_users = _check_int("test_users", test_users, 0)
    if train_users + test_users == 0:
        raise ValueError("synthesize_dataset: no users (train_users + test_users == 0)")
    lightings_per_user = _check_int("lightings_per_user", lightings_per_user, 1, len(LIGHTINGS))
    seed = _check_int("seed", seed, 0)
    difficulty = _check_difficulty(difficulty)
    if workers is not None:
        workers = _check_int("workers", workers, 1)
    if not (isinstance(seconds, (int, float)) and seconds > 0) or not (isinstance(fps, (int, float)) and fps > 0):
        raise ValueError(f"synthesize_dataset: seconds and fps must be > 0, got {seconds!r}, {fps!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    width = max(2, len(str(train_users + test_users)))
    splits: dict[str, list[str]] = {"train": [], "test": []}
    jobs = []
    for user in range(1, train_users + test_users + 1):
        _, lightings = user_style(seed, user)
        chosen = sorted(lightings[:lightings_per_user], key=LIGHTINGS.index)
        for lighting in chosen:
            name = f"user{user:0{width}d}_{lighting}.aedat"
            splits["train" if user <= train_users else "test"].append(name)
            jobs.append((str(out), name, seed, user, lighting, float(seconds), float(fps), dvs_config,
                         difficulty))

    total = len(jobs)
    results = []
    if workers is None:
        workers = os.cpu_count() or 1
    workers = min(workers, total)
    if workers <= 1:
        for job in jobs:
            results.append(_synth_file(job))
            if progress is not None:
                progress(len(results), total, results[-1]["name"])
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_synth_file, job) for job in jobs]
            for fut in as_completed(futures):
                results.append(fut.result())
                if progress is not None:
                    progress(len(results), total, results[-1]["name"])

    write_trials(out, splits["train"], splits["test"])
    trial_bytes = sum((out / f).stat().st_size for f in ("trials_to_train.txt", "trials_to_test.txt"))
    return {
        "files": total,
        "samples": sum(r["samples"] for r in results),
        "events": sum(r["events"] for r in results),
        "bytes": sum(r["bytes"] for r in results) + trial_bytes,
        "train": splits["train"],
        "test": splits["test"],
        "gesture_s": sum(r["gesture_us"] for r in results) / 1e6,
    }
