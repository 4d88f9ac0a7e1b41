# SPDX-License-Identifier: MIT
"""Live recognition: an event source streamed through an engine (the C runtime by
default, any engine of `pysg.engines`), with a prediction per time window.

The first event sets the time origin. Windows are whole numbers of steps
(`window_ms` rounded to the model's dt); at the end of each window the runtime's
scores (logits summed over the window's steps) give that window's prediction and are
cleared for the next one. The runtime state itself carries on: the network keeps its
memory across windows, as on a device.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np


def live_predictions(model, source: Iterable[np.ndarray], *, window_ms: float = 500.0,
                     engine: str | None = None, crop=None, downsample=None,
                     on_mapping=None, totals: dict | None = None) -> Iterator[dict]:
    """Yield one dict per window: t_start_us, t_end_us, prediction (label),
    prediction_index, events (fed to the engine in the window, after the mapping), spikes (hidden,
    in the window).
    The source's events are mapped onto the model's sensor by
    `pysg.preprocess.sensor_mapping` (its `width`/`height`, `crop`, `downsample`);
    `on_mapping(mapping)` is told the mapping before the first window; `totals` (a dict)
    keeps `events_in` (the source's events so far) and `events_dropped` (of those, left
    out by the mapping or the engine) up to date at each window.
    `model`: anything `pysg.jobs.load_model` takes, or an engine; `engine`: "c" (default
    for an .sgm model), "ref", ..."""
    from .jobs import open_engine
    from .preprocess import apply_mapping, sensor_mapping

    rt = open_engine(model, engine)
    rt.reset()
    mapping = sensor_mapping((getattr(source, "width", None), getattr(source, "height", None)),
                             tuple(rt.model.info.sensor_size), crop=crop, downsample=downsample)
    if on_mapping:
        on_mapping(mapping)
    if totals is None:
        totals = {}
    totals.update(events_in=0, events_dropped=0)
    map_dropped = 0
    window_steps = max(1, int(round(window_ms * 1000 / rt.dt_us)))
    dt = rt.dt_us
    t0 = None
    boundary = window_steps  # step index that ends the current window
    fed = 0
    spikes_before = 0

    def close(end_step: int) -> dict:
        nonlocal fed, spikes_before
        stats = rt.stats
        spikes = sum(stats["spikes"])
        row = {"t_start_us": t0 + (end_step - window_steps) * dt, "t_end_us": t0 + end_step * dt,
               "prediction": rt.labels[rt.prediction] if rt.prediction >= 0 else None,
               "prediction_index": rt.prediction, "events": fed, "spikes": spikes - spikes_before}
        totals["events_dropped"] = map_dropped + int(stats["events_dropped"])
        fed, spikes_before = 0, spikes
        rt.score_from(end_step)
        return row

    for batch in source:
        totals["events_in"] += batch.size
        mapped = apply_mapping(batch, mapping)   # the events the model's sensor sees (stateless: per batch)
        map_dropped += batch.size - mapped.size
        totals["events_dropped"] = map_dropped + int(rt.stats["events_dropped"])
        batch = mapped
        if batch.size == 0:
            continue
        t = batch["t"]
        if t0 is None:
            t0 = int(t[0])
            rt.set_origin(t0)
        while batch.size:
            k = int(np.searchsorted(t, t0 + boundary * dt, side="left"))
            rt.feed(batch[:k])
            fed += k
            if k == batch.size:
                break
            rt.advance_to(t0 + boundary * dt)
            yield close(boundary)
            boundary += window_steps
            batch, t = batch[k:], t[k:]
    if t0 is not None and fed:
        rt.advance_to(t0 + boundary * dt)
        yield close(boundary)
