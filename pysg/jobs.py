# SPDX-License-Identifier: MIT
"""The jobs behind `pysg eval`, `run`, `demo` and live input, for every engine and kind.

* `load_model(src, engine=, dt_ms=)`: a path, bytes, Network or parsed .sgm model as a
  `LoadedModel` that knows its kind (sniffs .npz vs .sgm once); a float .npz asked for by
  an integer engine is quantised here (`pysg.converters.sgm.export_network`, with --dt-ms
  retargeting), the only place the engine layer's users reach the converters.
* `open_engine(model, engine)`: an engine of the registry (`pysg.engines`).
* `evaluate(model, data, engine=)`: a dataset folder's split or an in-memory
  SequenceData (or a list of samples): per-sample results and the summary
  `pysg.metrics.classification_summary` builds.
* `run(model, events, engine=)`: one recording as one sample: per-step logits,
  prediction, scores and statistics.

Every sample is scored by its kind's one rule (`pysg.scoring`).
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .engines import LoadedModel, create_engine, kind_named, kind_of
from .engines.base import BatchResult, bin_sample
from .metrics import classification_summary

__all__ = ["load_model", "open_engine", "default_engine", "evaluate", "iter_samples", "run", "run_file",
           "Evaluation", "SampleResult", "accuracy_at_onset"]

_ZIP = b"PK\x03\x04"  # a float .npz model


def _dt_us(dt_ms: float | None) -> int | None:
    return None if dt_ms is None else int(round(dt_ms * 1000))


def load_model(src: Any, *, engine: str | None = None, dt_ms: float | None = None) -> LoadedModel:
    """A model of a known kind from a path (.npz or .sgm), .sgm bytes, a Network or a
    parsed .sgm model. With an integer engine ("ref", "c") a float network is quantised
    to .sgm in memory, as `pysg export` does; `dt_ms` retargets a float network's step
    (an .sgm model runs at its own dt: asking for another one is an error)."""
    from .model.network import Network

    if isinstance(src, LoadedModel):
        model = src
    elif isinstance(src, (bytes, bytearray, memoryview)):
        model = _from_sgm(bytes(src), "<bytes>", engine)
    elif isinstance(src, (str, os.PathLike)):
        from .io.model_file import read_model_bytes

        data = read_model_bytes(src)  # a file larger than any valid model is refused before it is read
        if data[:4] == _ZIP:
            model = LoadedModel(kind_named("float"), Network.load(src), None, str(src))
        else:
            model = _from_sgm(data, str(src), engine)
    elif isinstance(src, Network):
        model = LoadedModel(kind_of(src), src)
    else:  # a parsed .sgm model (encoded only if the C runtime is asked for: open_engine)
        model = LoadedModel(kind_of(src), src)
    if not model.kind.integer:
        net = model.obj
        if dt_ms is not None and _dt_us(dt_ms) != net.config.dt_us:
            model = LoadedModel(model.kind, net.retarget_dt(_dt_us(dt_ms)), None, model.source)
        if engine is not None and engine != "float":  # an integer engine: quantise
            from pysg.converters.sgm import export_network

            model = _from_sgm(export_network(model.obj), model.source, None)
        return model
    if dt_ms is not None and _dt_us(dt_ms) != model.info.dt_us:
        raise ValueError(f"{model.source}: an .sgm model runs at its own dt ({model.info.dt_us} us); "
                         "re-export with --dt-ms instead")
    if engine == "c" and model.data is None and model.kind.writer:  # the C runtime loads the file's bytes
        module, _, fn = model.kind.writer.partition(":")
        model = LoadedModel(model.kind, model.obj, getattr(importlib.import_module(module), fn)(model.obj),
                            model.source)
    return model


def _from_sgm(data: bytes, source: str, engine: str | None) -> LoadedModel:
    """An .sgm file's kind from its parsed model. The engine that runs it validates it
    first: for the C runtime its own loader (its error names the C status)."""
    from .sgm import load_sgm

    if engine == "c":
        from .engines.native import validate

        validate(data)
    obj = load_sgm(data)
    return LoadedModel(kind_of(obj), obj, data, source)


def default_engine(model: Any) -> str:
    """"float" for a float network; "c" for an .sgm model ("ref" when the C runtime is not built)."""
    from . import _native
    from .model.network import Network

    if isinstance(model, LoadedModel):
        integer = model.kind.integer
    elif isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as f:
            integer = f.read(4) != _ZIP
    else:
        integer = not isinstance(model, Network)
    if not integer:
        return "float"
    return "c" if _native.available() else "ref"


def open_engine(model: Any, engine: str | None = None, *, dt_ms: float | None = None):
    """An engine (`pysg.engines`) running `model`; an engine passed in is returned as is."""
    if hasattr(model, "classify_batch") and hasattr(model, "model"):
        return model
    name = engine or default_engine(model)
    return create_engine(name, load_model(model, engine=name, dt_ms=dt_ms))


# ------------------------------------------------------------------ evaluate


@dataclass
class SampleResult:
    index: int
    label: int                     # true class index (-1: unknown)
    prediction: int
    scores: np.ndarray             # (n_classes,)
    steps: int
    spikes: float
    synops: float
    logits: np.ndarray | None = None  # (steps, n_classes) if asked
    source: str = ""
    t_start: int = 0
    duration_us: int = 0           # the sample's interval is [t_start, t_start + duration_us) µs


@dataclass
class Evaluation:
    summary: dict                  # pysg.metrics.classification_summary (+ classes, split)
    samples: list[SampleResult] = field(default_factory=list)


def _batches(data: Any, info, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, list]]:
    """(frames (B, T, C*H*W) uint16, lengths, labels, [(source, t_start, duration_us)]) per batch of
    a SequenceData or an iterable of samples (events relative to the sample's start)."""
    if hasattr(data, "frames") and hasattr(data, "lengths"):
        if data.dt_us != info.dt_us:
            raise ValueError(f"data binned at dt={data.dt_us} us, model runs at dt={info.dt_us} us")
        n = len(data)
        for s0 in range(0, n, batch_size):
            idx = np.arange(s0, min(n, s0 + batch_size))
            lengths = np.asarray(data.lengths[idx])
            frames = data.frames[idx, :int(lengths.max())]
            yield frames.reshape(len(idx), frames.shape[1], -1), lengths, np.asarray(data.labels[idx]), \
                [("", 0, int(n) * data.dt_us) for n in lengths]
        return
    batch: list = []
    for s in data:
        batch.append(s)
        if len(batch) == batch_size:
            yield _bin_batch(batch, info)
            batch = []
    if batch:
        yield _bin_batch(batch, info)


def _bin_batch(samples: list, info):
    """Each sample's T = ceil(duration / dt) steps of counts, zero-padded to the longest."""
    lengths = np.array([-(-int(s.duration_us) // info.dt_us) for s in samples], np.int64)
    n = int(np.prod(info.input_shape))
    frames = np.zeros((len(samples), int(lengths.max()), n), np.uint16)
    for i, s in enumerate(samples):
        frames[i, :lengths[i]] = bin_sample(info, s.events, int(lengths[i]))
    return frames, lengths, np.array([s.label for s in samples], np.int64), \
        [(str(getattr(s, "source", "")), int(getattr(s, "t_start", 0)), int(s.duration_us)) for s in samples]


def iter_samples(engine, data: Iterable, *, batch_size: int = 64, keep_logits: bool = False,
                 progress: Callable[[int], None] | None = None) -> Iterator[SampleResult]:
    """Per-sample results of `engine` on `data` (SequenceData or samples), in order,
    each scored by the model kind's rule."""
    info, rule = engine.model.info, engine.model.rule
    k = 0
    for frames, lengths, labels, where in _batches(data, info, batch_size):
        starts = np.array([rule.first_step(int(n)) for n in lengths], np.int64)
        r: BatchResult = engine.classify_batch(frames, lengths, starts, keep_logits=keep_logits)
        preds = r.predictions
        for i in range(len(lengths)):
            n = int(lengths[i])
            yield SampleResult(k, int(labels[i]), int(preds[i]), r.scores[i], n, float(r.spikes[i]),
                               float(r.synops[i]), None if r.logits is None else r.logits[:n, i],
                               where[i][0], where[i][1], where[i][2])
            k += 1
        if progress:
            progress(len(lengths))


class MappedSamples:
    """Samples (with `.events`, `.source`) on the model's sensor by the one mapping
    (`pysg.preprocess.sensor_mapping`, the recording's size from its file header);
    counts the events in and those dropped by the mapping or off the input grid."""

    def __init__(self, samples: Iterable, info, crop=None, downsample=None):
        self.samples, self.info, self.crop, self.downsample = samples, info, crop, downsample
        self.events_in = self.events_dropped = 0
        self.mapping = None
        self._sizes: dict[str, tuple] = {}

    def _size(self, source: str) -> tuple:
        if source not in self._sizes:
            from .io import _geometry, detect_format

            try:
                self._sizes[source] = _geometry(source, detect_format(source), {})
            except OSError:
                self._sizes[source] = (None, None)
        return self._sizes[source]

    def __iter__(self):
        from dataclasses import replace

        from .engines.base import input_cells
        from .preprocess import apply_mapping, sensor_mapping

        for s in self.samples:
            src = str(getattr(s, "source", "") or "")
            m = sensor_mapping(self._size(src) if src else None, tuple(self.info.sensor_size), crop=self.crop,
                               downsample=self.downsample)
            self.mapping = self.mapping or m
            ev = apply_mapping(s.events, m)
            self.events_in += len(s.events)
            self.events_dropped += len(s.events) - len(ev) + int((~input_cells(self.info, ev)[1]).sum())
            yield replace(s, events=ev)


def evaluate(model: Any, data: Any, *, engine: str | None = None, split: str = "test", dt_ms: float | None = None,
             batch_size: int = 64, keep_logits: bool = False, crop=None, downsample=None,
             progress: Callable[[int], None] | None = None, chunk_events: int = 1_000_000,
             at_ms: Iterable[float] = ()) -> Evaluation:
    """Accuracy and activity of `engine` on `data`: a DVS128-Gesture-layout folder or a `tonic:` spec (its
    `split`), a SequenceData, or a list of samples. `model`: anything `load_model` takes,
    or an engine. The summary has the keys `pysg eval --json` prints; for a folder also
    `events_in`, `events_dropped` and the `mapping` of its recordings onto the model's
    sensor (`pysg.preprocess.sensor_mapping`; `crop`/`downsample` override it).

    Bounded memory: a folder's recordings are read in chunks of `chunk_events` and each
    labelled gesture fed to an engine as they pass (`pysg.chunked.stream_gestures`), with
    the same results as binning each gesture whole; an engine without `feed` (a device)
    gets each gesture binned, one recording in memory at a time.

    `at_ms`: also the accuracy of the decision t ms after each gesture's onset, for each t
    (summary `at_onset`; `accuracy_at_onset`)."""
    at_ms = sorted({float(t) for t in at_ms})
    keep_logits = keep_logits or bool(at_ms)
    eng = open_engine(model, engine, dt_ms=dt_ms)
    folder = isinstance(data, (str, os.PathLike))
    mapped = None
    from .datasets.tonic_adapter import is_tonic_spec, open_split  # a folder, or a tonic: spec (docs/DATASETS.md)

    if folder and hasattr(eng, "feed") and not is_tonic_spec(str(data)):
        results, mapped = _evaluate_streamed(eng, data, split, crop, downsample, keep_logits, progress, chunk_events)
    else:
        if folder:
            info = eng.model.info
            samples = open_split(data, split, sensor=tuple(info.sensor_size), n_classes=info.n_classes)
            data = mapped = MappedSamples(samples, info, crop, downsample)
        results = list(iter_samples(eng, data, batch_size=batch_size, keep_logits=keep_logits, progress=progress))
    info = eng.model.info
    lengths = np.array([r.steps for r in results], np.int64)
    summary = classification_summary([r.prediction for r in results], [r.label for r in results],
                                     n_classes=info.n_classes, spikes=[r.spikes for r in results],
                                     synops=[r.synops for r in results], seconds=lengths * (info.dt_us / 1e6),
                                     lengths=lengths, hidden_neurons=info.hidden_neurons,
                                     dense_macs_per_step=info.dense_macs_per_step, dt_us=info.dt_us,
                                     engine=eng.name)
    if folder:
        summary["classes"] = list(info.labels)
        summary["split"] = split
        summary["events_in"], summary["events_dropped"] = mapped.events_in, mapped.events_dropped
        summary["mapping"] = mapped.mapping.to_dict() if mapped.mapping else None
    if at_ms:
        summary["at_onset"] = accuracy_at_onset(results, at_ms, info.dt_us, eng.model.rule)
    return Evaluation(summary, results)


def accuracy_at_onset(results: list[SampleResult], at_ms: Iterable[float], dt_us: int, rule) -> list[dict]:
    """Earlier decisions: for each t, the accuracy of every gesture's decision t ms after its
    onset, i.e. the kind's scoring rule over its first ceil(t / dt) steps (`pysg.scoring.
    decision_at`: the gesture as if it had ended at t). A gesture shorter than t counts with
    its final decision (`n_ended` says how many). Needs the results' per-step logits."""
    from .scoring import decision_at

    rows = []
    for t in at_ms:
        steps = -(-int(round(t * 1000)) // dt_us)
        right = ended = 0
        for r in results:
            if r.logits is None:
                raise ValueError("accuracy_at_onset needs per-step logits (evaluate(..., keep_logits=True))")
            ended += r.steps <= steps
            right += decision_at(r.logits, rule, steps) == r.label
        rows.append({"ms": t, "steps": steps, "accuracy": right / max(1, len(results)), "n_ended": ended})
    return rows


@dataclass
class _Counts:
    events_in: int = 0
    events_dropped: int = 0
    mapping: Any = None


def _evaluate_streamed(eng, root, split: str, crop, downsample, keep_logits: bool, progress,
                       chunk_events: int) -> tuple[list[SampleResult], _Counts]:
    """Each recording of the split once, in chunks; its gestures in label order, then the
    next recording's (the order GestureDataset gives)."""
    from pathlib import Path

    from .chunked import GestureRow, RecordingUnordered, recording_chunks, sorted_recording, stream_gestures
    from .datasets.gesture import labels_name, read_labels_csv, read_trials
    from .io import _geometry, detect_format
    from .preprocess import sensor_mapping

    info = eng.model.info
    counts = _Counts()
    pool = [eng]                       # engines for overlapping gestures, reused across recordings
    results: list[SampleResult] = []
    k = 0
    for name in read_trials(root, split):
        path = str(Path(root) / name)
        rows = [GestureRow(k + i, int(r["cls"]) - 1, int(r["t_start"]), int(r["t_end"]))
                for i, r in enumerate(read_labels_csv(Path(root) / labels_name(name)))]
        k += len(rows)
        try:
            size = _geometry(path, detect_format(path), {})
        except OSError:
            size = (None, None)
        m = sensor_mapping(size, tuple(info.sensor_size), crop=crop, downsample=downsample)
        counts.mapping = counts.mapping or m

        def run(chunks):
            return stream_gestures(chunks, rows, info, lambda: create_engine(eng.name, eng.model), m,
                                   keep_logits=keep_logits, pool=pool)

        try:
            done = run(recording_chunks(path, chunk_events))
        except RecordingUnordered:
            done = run([sorted_recording(path)])
        for s in done:
            counts.events_in += s.events_in
            counts.events_dropped += s.events_in - s.events_kept + s.events_off_grid
            results.append(SampleResult(s.row.index, s.row.label, int(np.argmax(s.scores)), s.scores, s.n_steps,
                                        s.spikes, s.synops, s.logits, path, s.row.t_start,
                                        s.row.t_end - s.row.t_start))
        if progress and done:
            progress(len(done))
    return results, counts


# ------------------------------------------------------------------ run


def run(model: Any, events: np.ndarray, *, engine: str | None = None, dt_ms: float | None = None) -> dict:
    """One recording as one sample: origin at its first event, T = steps up to its last
    event, scored by the kind's rule. Returns prediction (label), prediction_index, scores,
    steps, spikes (per hidden entry), synops and logits ((T, n_classes); int32 for an
    integer model)."""
    eng = open_engine(model, engine, dt_ms=dt_ms)
    if len(events) == 0:
        raise ValueError("no events")
    t = events["t"]
    t0 = int(t.min())
    n_steps = (int(t.max()) - t0) // eng.dt_us + 1
    eng.reset()
    eng.score_from(eng.model.rule.first_step(n_steps))
    logits = eng.run_events(events, t0_us=t0, n_steps=n_steps, reset=False)
    if eng.model.kind.integer:
        logits = logits.astype(np.int32)
    return _run_result(eng, n_steps, len(events), logits)


def _run_result(eng, n_steps: int, n_events: int, logits: np.ndarray) -> dict:
    """What `run` returns, read off the engine after the last step."""
    pred, st = eng.prediction, eng.stats
    return {"prediction": eng.labels[pred], "prediction_index": pred, "scores": eng.scores.tolist(), "steps": int(n_steps),
            "spikes": st["spikes"], "synops": st["synops"], "events_in": int(n_events),
            "events_dropped": int(st["events_dropped"]), "logits": logits}


def map_recording(model_info, recording, *, crop=None, downsample=None):
    """A recording (`pysg.io.EventFile`) on the model's sensor by the one mapping
    (`pysg.preprocess.sensor_mapping`): (events, mapping, events dropped by it)."""
    from .preprocess import apply_mapping, sensor_mapping

    m = sensor_mapping((recording.width, recording.height), tuple(model_info.sensor_size), crop=crop,
                       downsample=downsample)
    events = apply_mapping(recording.events, m)
    return events, m, int(len(recording.events) - len(events))


def run_file(model: Any, events_path, *, engine: str | None = None, crop=None, downsample=None,
             warn: Callable[[str], None] | None = None, chunk_events: int = 1_000_000) -> dict:
    """`pysg run`: one recording (any format pysg.io reads), mapped onto the model's sensor
    (`pysg.preprocess.sensor_mapping`), through an engine, as `run` does with the whole
    file. `events_in` counts the file's events, `events_dropped` those the mapping or the
    engine left out; `mapping` says how; `warn` gets `pysg.preprocess.drop_warning`'s line
    when more than 20 % are dropped.

    Bounded memory: the file is read twice in chunks of `chunk_events` (`pysg.io.iter_events`):
    once for the mapped events' time range, once feeding the engine step by step
    (`feed` + `advance_to`), so memory holds one chunk plus the logits (steps x classes).
    A recording whose mapped events are not in time order is read whole and sorted."""
    from .chunked import MappedRecording
    from .preprocess import drop_warning

    eng = open_engine(model, engine)
    rec = MappedRecording(events_path, eng.model.info, crop=crop, downsample=downsample, chunk_events=chunk_events)
    m, n_in = rec.mapping, rec.events_in
    if rec.events_kept == 0:
        raise ValueError(f"{events_path}: no events left after mapping the {m.recording[0]}x{m.recording[1]} "
                         f"recording onto the model's sensor (window {m.crop}); choose --crop X,Y,W,H / "
                         "--downsample N")
    r = _run_chunks(eng, rec.chunks(), rec.t_min, (rec.t_max - rec.t_min) // eng.dt_us + 1)
    r["events_in"] = n_in
    r["events_dropped"] += rec.events_dropped
    r["mapping"] = m.to_dict()
    line = drop_warning(str(events_path), r["events_in"], r["events_dropped"], m)
    if line and warn:
        warn(line)
    return r


def _run_chunks(eng, chunks: Iterable[np.ndarray], t0: int, n_steps: int) -> dict:
    """`run` over time-ordered chunks of one recording: origin t0, n_steps steps, each
    step's logits kept (`pysg.chunked.StepFeeder`)."""
    from .chunked import StepFeeder

    f = StepFeeder(eng, t0, n_steps, keep_logits=True)
    for ev in chunks:
        f.feed(ev)
    f.finish()
    return _run_result(eng, n_steps, f.n_events, f.logits)
