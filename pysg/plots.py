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


def plot_history(history: dict, out: str | Path) -> None:
    """Loss and accuracy per epoch (a `pysg train --history` JSON)."""
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(history["epoch"], history["loss"], marker="o")
    a.set(xlabel="epoch", ylabel="training loss", yscale="log")
    b.plot(history["epoch"], np.array(history["train_accuracy"]) * 100, marker="o", label="train")
    val = np.array(history.get("val_accuracy", []), dtype=float)
    if val.size and not np.all(np.isnan(val)):
        b.plot(history["epoch"], val * 100, marker="s", label="validation")
    b.set(xlabel="epoch", ylabel="accuracy (%)")
    b.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_confusion(confusion: np.ndarray, classes: list[str], out: str | Path) -> None:
    """Rows: true class, columns: predicted class, counts in the cells."""
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
    ax.set(xlabel="predicted", ylabel="true", title=f"accuracy {acc * 100:.1f} % (n = {c.sum()})")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _sample(folder, index: int):
    from .datasets.gesture import GestureDataset

    ds = GestureDataset(folder, "test")
    if not 0 <= index < len(ds):
        raise ValueError(f"{folder}: test split has {len(ds)} samples, no sample {index}")
    return ds[index]


def plot_event_strip(folder, out: str | Path, *, sample: int = 0, frames: int = 8,
                     window_ms: float = 50.0) -> None:
    """Event frames (ON red, OFF blue) at evenly spaced times of one test sample."""
    from .datasets.gesture import GESTURE_CLASSES

    plt = _pyplot()
    s = _sample(folder, sample)
    fig, axes = plt.subplots(1, frames, figsize=(2 * frames, 2.3))
    win = int(window_ms * 1000)
    for i, ax in enumerate(axes):
        t0 = int(i * (s.duration_us - win) / max(1, frames - 1))
        ev = s.events[(s.events["t"] >= t0) & (s.events["t"] < t0 + win)]
        img = np.ones((128, 128, 3))
        on, off = ev[ev["p"] == 1], ev[ev["p"] == 0]
        img[off["y"], off["x"]] = (0.2, 0.3, 1.0)
        img[on["y"], on["x"]] = (1.0, 0.2, 0.2)
        ax.imshow(img)
        ax.set_title(f"{t0 / 1000:.0f} ms", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{GESTURE_CLASSES[s.label]} ({Path(s.source).name})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_raster(model, folder, out: str | Path, *, sample: int = 0) -> None:
    """Hidden-layer spikes over time and the output logits of one test sample."""
    from .model import Network
    from .train.trainer import data_for

    plt = _pyplot()
    net = model if isinstance(model, Network) else Network.load(model)
    s = _sample(folder, sample)
    data = data_for(net, [s])
    flat = data.frames[0].reshape(data.frames.shape[1], -1)
    state = net.init_state(1)
    spikes = [[] for _ in net.stages[:-1]]
    logits = []
    for t in range(len(flat)):
        logits.append(net.step(state, flat[t:t + 1])[0].copy())
        for l in range(len(spikes)):
            spikes[l].append(np.flatnonzero(state.s[l][0]))
    dt_s = net.config.dt_us / 1e6
    n_panels = len(spikes) + 1
    fig, axes = plt.subplots(n_panels, 1, figsize=(9, 2.5 * n_panels), sharex=True)
    for l, sp in enumerate(spikes):
        ts = np.concatenate([np.full(len(ids), t * dt_s) for t, ids in enumerate(sp)] or [np.empty(0)])
        ids = np.concatenate(sp or [np.empty(0)])
        axes[l].scatter(ts, ids, s=1, c="k")
        axes[l].set(ylabel=f"stage {l} neuron")
    lg = np.array(logits)
    for c in range(lg.shape[1]):
        axes[-1].plot(np.arange(len(lg)) * dt_s, lg[:, c], lw=1, label=net.config.classes[c] if net.config.classes else c)
    axes[-1].set(xlabel="time (s)", ylabel="logit")
    axes[-1].legend(fontsize=6, ncol=4)
    truth = net.config.classes[s.label] if net.config.classes else s.label
    fig.suptitle(f"true class: {truth}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
