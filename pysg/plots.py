# SPDX-License-Identifier: MIT
"""PNG plots (matplotlib, headless): training curves, confusion matrix, an event-frame
strip and a spike raster."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# Eleven colours a reader can tell apart (matplotlib's tab10 and black), one per gesture
# class; a twelfth class and beyond reuse them with a dashed line.
CLASS_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                 "tab:gray", "tab:olive", "tab:cyan", "black")
ON_COLOUR, OFF_COLOUR = (1.0, 0.2, 0.2), (0.2, 0.3, 1.0)


def class_style(index: int) -> dict:
    """Line colour and style of class ``index`` (distinct for the first 11 classes)."""
    return {"color": CLASS_COLOURS[index % len(CLASS_COLOURS)],
            "linestyle": "-" if index < len(CLASS_COLOURS) else "--"}


def plot_history(history: dict, out: str | Path) -> None:
    """Loss and accuracy per epoch (a `pysg train --history` JSON)."""
    fig = history_figure(history)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)


def history_figure(history: dict):
    """The matplotlib Figure of :func:`plot_history` (the caller closes it)."""
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(history["epoch"], history["loss"], marker="o")
    a.set(xlabel="epoch", ylabel="training loss", yscale="log")
    b.plot(history["epoch"], np.array(history["train_accuracy"]) * 100, marker="o", label="train")
    val = np.array(history.get("val_accuracy", []), dtype=float)
    if val.size and not np.all(np.isnan(val)):
        b.plot(history["epoch"], val * 100, marker="s", label="validation")
    b.set(xlabel="epoch", ylabel="accuracy (%)", ylim=(0, 100))
    from matplotlib.ticker import MaxNLocator

    for ax in (a, b):
        if len(history["epoch"]) <= 12:  # a few epochs: a tick at each (one epoch would get 0.95, 0.975, ...)
            ax.set_xticks(history["epoch"])
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    b.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)  # beside the curves, never on them
    fig.tight_layout()
    return fig


def plot_onset_accuracy(curves: dict[str, dict], out: str | Path, *, title: str = "") -> None:
    """Accuracy against time since gesture onset, one line per model: `curves` maps a label
    to {"at_onset": rows as `pysg eval --at-ms` gives them, "accuracy": the final one}. Each
    model's final accuracy is drawn as a dotted line of its colour."""
    fig = onset_figure(curves, title=title)
    fig.savefig(out, dpi=120)
    _pyplot().close(fig)


def onset_figure(curves: dict[str, dict], *, title: str = ""):
    """The matplotlib Figure of :func:`plot_onset_accuracy` (the caller closes it)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for i, (label, c) in enumerate(curves.items()):
        colour = CLASS_COLOURS[i % len(CLASS_COLOURS)]
        ms = [r["ms"] for r in c["at_onset"]]
        ax.plot(ms, [r["accuracy"] * 100 for r in c["at_onset"]], marker="o", color=colour, label=label)
        if c.get("accuracy") is not None:
            ax.axhline(c["accuracy"] * 100, color=colour, linestyle=":", linewidth=1)
    ax.set(xlabel="time since gesture onset (ms)", ylabel="accuracy (%)", ylim=(0, 100), title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=8)  # never on the curves
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_confusion(confusion: np.ndarray, classes: list[str], out: str | Path) -> None:
    """Rows: truth, columns: prediction, counts in the cells."""
    plt = _pyplot()
    c = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(c, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    for i in range(c.shape[0]):
        for j in range(c.shape[1]):
            if c[i, j]:
                ax.text(j, i, str(c[i, j]), ha="center", va="center",
                        color="white" if c[i, j] > c.max() / 2 else "black", fontsize=8)
    acc = np.trace(c) / max(1, c.sum())
    ax.set(xlabel="prediction", ylabel="truth", title=f"accuracy {acc * 100:.1f} % (n = {c.sum()})")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _sample(folder, index: int):
    from .datasets.gesture import GestureDataset

    ds = GestureDataset(folder, "test")
    if not 0 <= index < len(ds):
        raise ValueError(f"{folder}: test split has {len(ds)} samples, no sample {index}")
    return ds[index]


def _events_to_show(source, sample: int) -> tuple[np.ndarray, int, int, str]:
    """(events with t from 0, sensor width, height, title) of test sample ``sample`` of a
    dataset folder, or of one recording file."""
    if Path(source).is_dir():
        from .datasets.gesture import GESTURE_CLASSES

        from .io import _geometry, detect_format

        s = _sample(source, sample)
        ev = s.events
        w, h = _geometry(s.source, detect_format(s.source), {})  # the recording's own sensor
        w = w if w is not None else (int(ev["x"].max()) + 1 if ev.size else 1)
        h = h if h is not None else (int(ev["y"].max()) + 1 if ev.size else 1)
        return ev, w, h, f"{GESTURE_CLASSES[s.label]} ({Path(s.source).name})"
    from .io import read_events

    f = read_events(source)
    ev = f.events.copy()
    if ev.size:
        ev["t"] -= ev["t"][0]
    width = f.width if f.width is not None else (int(ev["x"].max()) + 1 if ev.size else 1)
    height = f.height if f.height is not None else (int(ev["y"].max()) + 1 if ev.size else 1)
    return ev, width, height, f"{Path(source).name} ({f.format}, {width}x{height}, {ev.size} events)"


def plot_event_strip(source, out: str | Path, *, sample: int = 0, frames: int = 8,
                     window_ms: float = 50.0) -> dict:
    """Event frames (ON red, OFF blue) at evenly spaced times of one test sample of a
    dataset folder, or of one recording file, at the recording's own size (nothing is
    mapped or dropped); returns events_in and events_dropped (0)."""
    fig = event_strip_figure(source, sample=sample, frames=frames, window_ms=window_ms)
    fig.savefig(out, dpi=110)
    _pyplot().close(fig)
    return {"events_in": fig.pysg_events, "events_dropped": 0}


def event_strip_figure(source, *, sample: int = 0, frames: int = 8, window_ms: float = 50.0):
    """The matplotlib Figure of :func:`plot_event_strip` (the caller closes it)."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    ev, width, height, title = _events_to_show(source, sample)
    duration = int(ev["t"][-1]) + 1 if ev.size else 1
    fig, axes = plt.subplots(1, frames, figsize=(2 * frames, 1.9 * height / width + 0.8), squeeze=False)
    win = int(window_ms * 1000)
    for i, ax in enumerate(axes[0]):
        t0 = int(i * max(0, duration - win) / max(1, frames - 1))
        w = ev[(ev["t"] >= t0) & (ev["t"] < t0 + win)]
        img = np.ones((height, width, 3))
        on, off = w[w["p"] == 1], w[w["p"] == 0]
        img[off["y"], off["x"]] = OFF_COLOUR
        img[on["y"], on["x"]] = ON_COLOUR
        ax.imshow(img, interpolation="nearest")
        ax.set_title(f"{t0 / 1000:.0f}-{(t0 + win) / 1000:.0f} ms", fontsize=8)
        ax.set_xticks([0, width - 1])
        ax.set_yticks([0, height - 1])
        ax.tick_params(labelsize=6)
        if i == 0:
            ax.set_ylabel("y (pixel)", fontsize=8)
        ax.set_xlabel("x (pixel)", fontsize=8)
    fig.legend(handles=[Patch(color=ON_COLOUR, label="ON"), Patch(color=OFF_COLOUR, label="OFF")],
               loc="upper right", fontsize=8, title="polarity", title_fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    fig.pysg_events = int(ev.size)  # what plot_event_strip reports
    return fig


def plot_raster(model, folder, out: str | Path, *, sample: int = 0) -> dict:
    """Hidden-layer spikes over time and the output logits of one test sample; the title
    names the true and the predicted class. Returns the sample's events_in and
    events_dropped (by the sensor mapping onto the model, as every command maps)."""
    fig = raster_figure(model, folder, sample=sample)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return fig.pysg_counts


def raster_figure(model, folder, *, sample: int = 0):
    """The matplotlib Figure of :func:`plot_raster` (the caller closes it). The prediction
    is the float model's by its kind's scoring rule (`pysg.scoring`): logits summed from
    step floor(0.2 T) on (the warm-up before it is shaded), argmax."""
    from .model import Network
    from .scoring import SPIKING_GAMMA
    from .train.trainer import data_for

    plt = _pyplot()
    from .jobs import MappedSamples, load_model

    net = model if isinstance(model, Network) else Network.load(model)
    mapped = MappedSamples([_sample(folder, sample)], load_model(net).info)
    s = next(iter(mapped))  # on the model's sensor, as every command maps a recording
    data = data_for(net, [s])
    n_steps = int(data.lengths[0])
    flat = data.frames[0].reshape(data.frames.shape[1], -1)[:n_steps]
    state = net.init_state(1)
    spikes = [[] for _ in net.stages[:-1]]
    logits = []
    for t in range(len(flat)):
        logits.append(net.step(state, flat[t:t + 1])[0].copy())
        for l in range(len(spikes)):
            spikes[l].append(np.flatnonzero(state.s[l][0]))
    dt_s = net.config.dt_us / 1e6
    lg = np.array(logits)
    first = SPIKING_GAMMA.first_step(len(lg))
    prediction = int(np.argmax(lg[first:].sum(axis=0)))
    names = list(net.config.classes) if net.config.classes else [str(c) for c in range(lg.shape[1])]
    n_panels = len(spikes) + 1
    fig, axes = plt.subplots(n_panels, 1, figsize=(9, 2.5 * n_panels), sharex=True)
    for l, sp in enumerate(spikes):
        ts = np.concatenate([np.full(len(ids), t * dt_s) for t, ids in enumerate(sp)] or [np.empty(0)])
        ids = np.concatenate(sp or [np.empty(0)])
        axes[l].scatter(ts, ids, s=1, c="k")
        axes[l].set(ylabel=f"stage {l} neuron")
    for c in range(lg.shape[1]):
        axes[-1].plot(np.arange(len(lg)) * dt_s, lg[:, c], lw=2.2 if c == prediction else 1, label=names[c],
                      **class_style(c))
    axes[-1].axvspan(0, first * dt_s, color="0.9", zorder=0, label="warm-up (not scored)")
    axes[-1].set(xlabel="time (s)", ylabel="logit")
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    truth = names[s.label] if 0 <= s.label < len(names) else str(s.label)
    mark = "correct" if prediction == s.label else "wrong"
    fig.suptitle(f"truth: {truth}   prediction: {names[prediction]} ({mark})   "
                 f"{Path(s.source).name} at {s.t_start / 1e6:.2f} s", fontsize=10)
    fig.tight_layout()
    fig.pysg_counts = {"events_in": mapped.events_in, "events_dropped": mapped.events_dropped}
    return fig
