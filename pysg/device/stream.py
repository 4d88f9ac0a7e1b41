# SPDX-License-Identifier: MIT
"""Inference on a device: streams of input frames (STREAM_START, STREAM_STEPS), scoring
(SCORE_FROM, PREDICT), and recordings streamed as one sample with a prediction per
window, or as one sample per labelled gesture. The input counts are those
`pysg.datasets.binning.bin_events` gives the integer reference, so the device's logits and
predictions equal `pysg.intref`'s."""
from __future__ import annotations

import math
import struct
import time
from typing import Iterator

import numpy as np

from ..scoring import WARMUP  # the SpikingGamma rule's warm-up (pysg.scoring), kept as a name here
from .ops import REPLIES, Op, StreamFlag
from .protocol import STEPS_REPLY_FIXED, ProtocolError, encode_steps, next_steps, reply_bytes_per_step
from .replies import ModelHeader, Prediction, StreamInfo, _head, _items
from .session import Progress, Session, _Stream

__all__ = ["Streams"]


class Streams(Session):
    """Streaming inputs to the device's active model and reading its predictions."""

    def start_stream(self, *, logits: bool = True) -> StreamInfo:
        """STREAM_START: a new sample (step 0, scores cleared)."""
        r = self._cmd(Op.STREAM_START, bytes([StreamFlag.LOGITS if logits else 0]))
        h = _head(Op.STREAM_START, r)
        info = StreamInfo(h["n_classes"], (h["in_c"], h["in_h"], h["in_w"]), h["dt_us"])
        self._stream = _Stream(info, logits)
        return info

    def send_steps(self, frames: np.ndarray, *, progress: Progress | None = None) -> np.ndarray:
        """Run one step per frame of (T, C, H, W) counts; returns the (T, n_classes) int32
        logits (an empty (0, n_classes) array when the stream carries no logits)."""
        st = self._stream
        if st is None:
            raise ProtocolError("send_steps before start_stream")
        frames = np.asarray(frames)
        if frames.ndim < 2 or int(np.prod(frames.shape[1:])) != st.info.n_inputs:
            raise ValueError(f"frames of shape {frames.shape}: the device's model takes {st.info.input_shape} "
                             f"per step")
        blocks = encode_steps(frames)
        sizes = [len(b) for b in blocks]
        per = reply_bytes_per_step(st.info.n_classes, st.logits)
        top = self._link().max_payload
        if sizes and max(sizes) > top:  # before any step runs, not halfway through the sample
            next_steps(sizes, int(np.argmax(np.array(sizes) > top)), top, per)
        out = np.empty((len(blocks) if st.logits else 0, st.info.n_classes), np.int32)
        a = 0
        while a < len(blocks):
            b = next_steps(sizes, a, self._link().max_payload, per, self.frame_budget)
            n = b - a
            r = self._cmd(Op.STREAM_STEPS, b"".join(blocks[a:b]), reply_len=STEPS_REPLY_FIXED + per * n)
            h = _head(Op.STREAM_STEPS, r)
            step, n_steps = h["step"], h["n_steps"]
            if n_steps != n or step != st.step + n:
                raise ProtocolError(f"STREAM_STEPS of {n} steps from step {st.step}: the device ran {n_steps} "
                                    f"and is at step {step}")
            st.step = step
            if st.logits:
                out[a:b] = _items(Op.STREAM_STEPS, r, n * st.info.n_classes).reshape(n, st.info.n_classes)
            if progress:
                progress(b, len(blocks))
            a = b
        return out

    def stream_frames(self, frames: np.ndarray, *, logits: bool = True,
                      progress: Progress | None = None) -> np.ndarray:
        """A new stream of these frames: STREAM_START then the steps; the per-step logits."""
        self.start_stream(logits=logits)
        return self.send_steps(frames, progress=progress)

    def score_from(self, step: int) -> None:
        """Sum logits into the scores only from `step` on (clears the scores)."""
        if step < 0:
            raise ValueError(f"score_from: step must be >= 0, got {step}")
        self._cmd(Op.SCORE_FROM, struct.pack("<I", step))

    def predict(self) -> Prediction:
        r = self._cmd(Op.PREDICT)
        h = _head(Op.PREDICT, r)
        layout = REPLIES[Op.PREDICT]
        # one score per class: the stream's classes, else as many as the reply holds (a part one is missing)
        n = self._stream.info.n_classes if self._stream is not None else \
            -(-(len(r) - layout.head_size) // layout.items.size)
        return Prediction(h["step"], h["prediction"], _items(Op.PREDICT, r, n))

    def classify_frames(self, frames: np.ndarray, *, warmup: float = WARMUP, logits: bool = False,
                        progress: Progress | None = None) -> tuple[Prediction, np.ndarray]:
        """One sample: STREAM_START, SCORE_FROM floor(warmup T), the T steps, PREDICT (the
        rule of pysg.intref.scores). Returns the prediction and the logits if asked."""
        self.start_stream(logits=logits)
        self.score_from(int(math.floor(warmup * len(frames))))
        lg = self.send_steps(frames, progress=progress)
        return self.predict(), lg

    def _bin(self, events: np.ndarray, duration_us: int, mh: ModelHeader) -> np.ndarray:
        from ..datasets.binning import bin_events

        return bin_events(events, duration_us=duration_us, dt_us=mh.dt_us, sensor_size=mh.sensor_size,
                          downsample=mh.downsample, channels=mh.input_shape[0])

    def stream_events(self, events, *, window_ms: float = 500.0, logits: bool = False,
                      speed: float | None = None) -> Iterator[dict]:
        """A recording streamed as one sample, with a prediction per window (pysg.live's
        rule: windows of round(window_ms / dt) steps from the first event; each window's
        prediction sums the logits of its own steps). Yields t_start_us, t_end_us,
        prediction (label), prediction_index, events, spikes (and logits if asked).
        ``events``: an event array, or time-ordered chunks of one (`pysg.chunked.
        MappedRecording.chunks`): each window is binned and sent once the chunks pass its
        end, so memory holds a chunk and a window, never the recording.
        ``speed``: pace the recording (`Pacer`): 1 = as recorded, 2 = twice as fast; None:
        as fast as the link allows."""
        chunks = _chunks(events)
        first = next(chunks, None)
        if first is None:
            return
        t0 = int(first["t"][0])
        pace = Pacer(t0, speed)  # the clock starts now: setup time is part of the recording's
        mh = self.model_header()
        dt = mh.dt_us
        w = max(1, int(round(window_ms * 1000 / dt)))
        span = w * dt
        self.start_stream(logits=logits)
        spikes_before = sum(self.stats().spikes)
        pending, k, t_seen = first, 0, int(first["t"][-1])

        def window(ev: np.ndarray) -> dict:
            nonlocal spikes_before
            start = t0 + k * span
            pace.wait(min(start + span, t_seen))  # a window goes once the recording has reached its end
            rel = ev.copy()
            rel["t"] = ev["t"].astype(np.int64) - start
            self.score_from(k * w)
            lg = self.send_steps(self._bin(rel, span, mh))
            p = self.predict()
            spikes = sum(self.stats().spikes)
            row = {"t_start_us": start, "t_end_us": start + span,
                   "prediction": mh.labels[p.index] if p.index >= 0 else None, "prediction_index": p.index,
                   "events": int(ev.size), "spikes": spikes - spikes_before}
            spikes_before = spikes
            if logits:
                row["logits"] = lg
            return row

        for chunk in chunks:
            pending = np.concatenate([pending, chunk])
            t_seen = int(chunk["t"][-1])
            while t0 + (k + 1) * span <= t_seen:          # an event at or past its end: window k is whole
                i = int(np.searchsorted(pending["t"], t0 + (k + 1) * span, side="left"))
                yield window(pending[:i])
                pending, k = pending[i:], k + 1
        n_win = -(-((t_seen - t0) // dt + 1) // w)
        while k < n_win:
            i = int(np.searchsorted(pending["t"], t0 + (k + 1) * span, side="left"))
            yield window(pending[:i])
            pending, k = pending[i:], k + 1

    def stream_gestures(self, events, labels: np.ndarray, *, warmup: float | None = None,
                        logits: bool = False, progress: Progress | None = None,
                        speed: float | None = None) -> Iterator[dict]:
        """Each labelled gesture (a pysg.datasets.gesture.LABEL_DTYPE row: cls 1..11,
        [t_start, t_end) µs) as one sample, as pysg.datasets.gesture.GestureDataset cuts it,
        run by `pysg.jobs.iter_samples` on this device (:class:`pysg.device.engine.DeviceEngine`):
        yields t_start_us, t_end_us, truth, truth_index, prediction, prediction_index,
        steps, scores (and logits if asked). ``events``: an event array or time-ordered
        chunks (as `stream_events`): a gesture's events are gathered as the chunks pass,
        so memory holds the gestures not yet sent, never the recording. ``warmup``: default
        the model kind's rule (`pysg.scoring`). ``speed``: as `stream_events` (a gesture
        goes once the recording, from its first event, has reached the gesture's end)."""
        from types import SimpleNamespace

        from ..jobs import iter_samples
        from ..scoring import ScoringRule
        from .engine import DeviceEngine

        eng = DeviceEngine(self, rule=None if warmup is None else ScoringRule(warmup))
        names = eng.labels
        gather = _Gather(_chunks(events), labels)

        def samples():
            pace = None
            for i, row in enumerate(labels):
                cls, t_start, t_end = int(row["cls"]), int(row["t_start"]), int(row["t_end"])
                ev = gather.take(i)
                if pace is None:
                    pace = Pacer(gather.t_first, speed)
                pace.wait(t_end)
                ev["t"] -= t_start
                yield SimpleNamespace(events=ev, label=cls - 1, duration_us=t_end - t_start, t_start=t_start,
                                      source=self.url)

        for i, r in enumerate(iter_samples(eng, samples(), batch_size=1, keep_logits=logits)):
            p = r.prediction
            out = {"t_start_us": int(labels[i]["t_start"]), "t_end_us": int(labels[i]["t_end"]),
                   "truth": names[r.label] if r.label < len(names) else str(r.label + 1), "truth_index": r.label,
                   "prediction": names[p] if p >= 0 else None, "prediction_index": p,
                   "steps": r.steps, "scores": r.scores.tolist()}
            if logits:
                out["logits"] = r.logits
            if progress:
                progress(i + 1, len(labels))
            yield out


class _Gather:
    """The events of each labelled interval, collected from time-ordered chunks as far as
    the interval asked for needs; the intervals not yet taken hold their own events."""

    def __init__(self, chunks: Iterator[np.ndarray], labels: np.ndarray):
        self.chunks, self.labels = chunks, labels
        self.parts: dict[int, list[np.ndarray]] = {}
        self.taken: set[int] = set()
        self.t_seen: int | None = None
        self.t_first: int = 0
        self.done = False

    def _read(self) -> None:
        c = next(self.chunks, None)
        if c is None:
            self.done = True
            return
        if self.t_seen is None:
            self.t_first = int(c["t"][0])
        self.t_seen = int(c["t"][-1])
        t = c["t"]
        for j, row in enumerate(self.labels):
            if j not in self.taken:
                lo, hi = np.searchsorted(t, [int(row["t_start"]), int(row["t_end"])], side="left")
                if hi > lo:
                    self.parts.setdefault(j, []).append(c[lo:hi])

    def take(self, i: int) -> np.ndarray:
        """Interval i's events (a copy), once the chunks have passed its end."""
        t_end = int(self.labels[i]["t_end"])
        while not self.done and (self.t_seen is None or self.t_seen < t_end):
            self._read()
        self.taken.add(i)
        parts = self.parts.pop(i, [])
        return np.concatenate(parts) if parts else np.zeros(0, _event_dtype())


def _event_dtype():
    from ..events import EVENT_DTYPE

    return EVENT_DTYPE


def _chunks(events) -> Iterator[np.ndarray]:
    """Non-empty time-ordered chunks: an array sorted (stable) as one chunk, or the chunks given."""
    if isinstance(events, np.ndarray):
        events = [_sorted(events)]
    return (c for c in events if c.size)


class Pacer:
    """Real-time pacing of a recording: `wait(t_us)` sleeps until (t_us - t0_us) / speed of
    wall-clock time has passed since the pacer was made (at once when the host is already
    late). `speed` None: never waits (as fast as the link allows)."""

    def __init__(self, t0_us: int, speed: float | None):
        if speed is not None and not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"--speed {speed}: give a positive factor (1 = as recorded, 2 = twice as fast)")
        self.t0_us, self.speed, self.start = t0_us, speed, time.monotonic()

    def wait(self, t_us: int) -> None:
        if self.speed is None:
            return
        delay = self.start + (t_us - self.t0_us) / 1e6 / self.speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def _sorted(events: np.ndarray) -> np.ndarray:
    t = events["t"]
    if t.size > 1 and (t[1:] < t[:-1]).any():
        return events[np.argsort(t, kind="stable")]
    return events
