# SPDX-License-Identifier: MIT
"""Event transforms: frozen dataclasses over pure functions (tonic style).

Each transform's docstring gives its exact rule, so the C runtime can
implement the identical filter. Events are EVENT_DTYPE-compatible structured
arrays (fields x, y, t, p), processed in array order ("stream order"); the
output keeps that order and never contains events that were not in the input.

One-shot use: ``transform(events)``. Streaming use: ``f = transform.stream()``
then ``f(batch)`` for each batch; filters with memory (refractory, background
activity) carry their state in the returned :class:`Stateful`, so feeding a
stream in batches gives exactly the events of one call on the whole stream.

Functional core, for ports: ``state = t.init_state()`` then
``out, state = t.apply(events, state)`` (``apply`` updates a filter's
per-pixel map in place rather than copying it each batch).

``to_dict``/``from_dict`` serialise a transform (``{"type": name, ...}``)
through the :data:`TRANSFORMS` registry.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "MAX_MAP_PIXELS",
    "TRANSFORMS",
    "BackgroundActivityFilter",
    "Compose",
    "Crop",
    "Downsample",
    "PixelTimeMap",
    "PolarityChannels",
    "RefractoryFilter",
    "Stateful",
    "SensorMapping",
    "apply_mapping",
    "drop_warning",
    "from_mapping_dict",
    "parse_crop",
    "sensor_mapping",
    "background_activity_filter",
    "crop",
    "downsample",
    "from_dict",
    "polarity_channels",
    "refractory_filter",
    "to_dict",
]

_NONE = np.iinfo(np.int64).min          # "no event yet" in a PixelTimeMap
# Largest per-pixel map (pixels) a filter builds: 16 Mi pixels = 128 MiB, a 4096 x 4096 sensor.
MAX_MAP_PIXELS = 1 << 24


def _check_events(name: str, events: np.ndarray) -> np.ndarray:
    names = getattr(getattr(events, "dtype", None), "names", None) or ()
    missing = [f for f in ("x", "y", "t", "p") if f not in names]
    if missing:
        raise ValueError(f"{name}: events need fields x, y, t, p (missing {', '.join(missing)})")
    return events


def _int(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- #
# Per-pixel state
# --------------------------------------------------------------------------- #
class PixelTimeMap:
    """A per-pixel int64 timestamp map (``_NONE`` = no event yet), indexed
    ``[y, x]``, grown on demand to cover every pixel seen (a C port sizes it
    to the sensor)."""

    def __init__(self) -> None:
        self.t = np.full((0, 0), _NONE, dtype=np.int64)

    def ensure(self, x: np.ndarray, y: np.ndarray) -> None:
        if not x.size:
            return
        h, w = int(y.max()) + 1, int(x.max()) + 1
        if h > self.t.shape[0] or w > self.t.shape[1]:
            if max(h, self.t.shape[0]) * max(w, self.t.shape[1]) > MAX_MAP_PIXELS:
                raise ValueError(f"pixel ({int(x.max())}, {int(y.max())}) needs a per-pixel map larger than "
                                 f"{MAX_MAP_PIXELS} pixels; crop the events first (pysg.preprocess.Crop)")
            grown = np.full((max(h, self.t.shape[0]), max(w, self.t.shape[1])), _NONE, dtype=np.int64)
            grown[:self.t.shape[0], :self.t.shape[1]] = self.t
            self.t = grown

    def get(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Timestamps at (x, y); ``_NONE`` outside the map (incl. negative coordinates)."""
        out = np.full(x.shape, _NONE, dtype=np.int64)
        inside = (x >= 0) & (y >= 0) & (x < self.t.shape[1]) & (y < self.t.shape[0])
        out[inside] = self.t[y[inside], x[inside]]
        return out

    def copy(self) -> PixelTimeMap:
        m = PixelTimeMap()
        m.t = self.t.copy()
        return m


def _groups(pix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable grouping by pixel id: (order, group starts in order, group sizes)."""
    order = np.argsort(pix, kind="stable")
    sp = pix[order]
    starts = np.flatnonzero(np.concatenate(([True], sp[1:] != sp[:-1])))
    sizes = np.diff(np.append(starts, pix.size))
    return order, starts, sizes


# --------------------------------------------------------------------------- #
# Pure functions
# --------------------------------------------------------------------------- #
def crop(events: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """Keep ``x0 <= x < x0 + w`` and ``y0 <= y < y0 + h``; output ``x - x0``, ``y - y0``."""
    _check_events("crop", events)
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    out = events[(x >= x0) & (x < x0 + w) & (y >= y0) & (y < y0 + h)].copy()
    out["x"] -= x0
    out["y"] -= y0
    return out


def downsample(events: np.ndarray, factor: int) -> np.ndarray:
    """``x // factor``, ``y // factor`` (the mapping of
    :func:`pysg.datasets.binning.bin_events`); every event is kept."""
    _check_events("downsample", events)
    out = events.copy()
    if factor != 1:
        out["x"] //= factor
        out["y"] //= factor
    return out


def polarity_channels(events: np.ndarray, channels: int) -> np.ndarray:
    """``p`` becomes the channel index of binning: unchanged for 2 channels
    (0 = OFF, 1 = ON), 0 for every event with 1 channel."""
    _check_events("polarity_channels", events)
    out = events.copy()
    if channels == 1:
        out["p"] = 0
    return out


def refractory_filter(events: np.ndarray, refractory_us: int, last: PixelTimeMap) -> np.ndarray:
    """See :class:`RefractoryFilter`; ``last`` (kept-event times) is updated in place."""
    _check_events("refractory_filter", events)
    n = events.size
    keep = np.zeros(n, dtype=bool)
    if not n:
        return events[keep]
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    t = events["t"].astype(np.int64)
    last.ensure(x, y)
    width = last.t.shape[1]
    order, starts, sizes = _groups(y * width + x)
    first = order[starts]
    gx, gy = x[first], y[first]
    gl = last.t[gy, gx]                                   # per pixel group: last kept t
    by_size = np.argsort(-sizes, kind="stable")           # active groups = a prefix
    sorted_sizes = sizes[by_size]
    # Round r handles the r-th event (in stream order) of every pixel that has one:
    # exact sequential semantics, one numpy step per event of the busiest pixel.
    for r in range(int(sorted_sizes[0])):
        g = by_size[:int(np.searchsorted(-sorted_sizes, -r, side="left"))]
        e = order[starts[g] + r]
        te, lg = t[e], gl[g]
        ok = (lg == _NONE) | (te - np.where(lg == _NONE, 0, lg) >= refractory_us)
        keep[e] = ok
        gl[g[ok]] = te[ok]
    last.t[gy, gx] = gl
    return events[keep]


def background_activity_filter(events: np.ndarray, window_us: int, neighbourhood: int,
                               last: PixelTimeMap) -> np.ndarray:
    """See :class:`BackgroundActivityFilter`; ``last`` (every event's time) is updated in place."""
    _check_events("background_activity_filter", events)
    n = events.size
    if not n:
        return events[np.zeros(0, dtype=bool)]
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    t = events["t"].astype(np.int64)
    last.ensure(x, y)
    r = neighbourhood
    # Pixel ids on a grid padded by r, so that a neighbour's id is id + constant
    # (monotone): the queries below come out sorted, and searchsorted stays fast.
    row = 65536 + 2 * r
    pid = (y + r) * row + (x + r)
    order = np.argsort(pid, kind="stable")               # by (pixel, stream position)
    sp = pid[order]
    new_pixel = np.concatenate(([True], sp[1:] != sp[:-1]))
    upix = sp[new_pixel]
    stride = n + 1
    skeys = (np.cumsum(new_pixel) - 1) * stride + order  # sorted (rank, position) keys
    xs, ys, ts = x[order], y[order], t[order]
    keep_sorted = np.zeros(n, dtype=bool)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dx == 0 and dy == 0:
                continue
            # latest event at the neighbour before this one: in this batch, else the map
            tn = last.get(xs + dx, ys + dy)
            q = sp + (dy * row + dx)
            nr = np.searchsorted(upix, q)
            present = nr < upix.size
            present[present] = upix[nr[present]] == q[present]
            k = np.flatnonzero(present)
            pos = np.searchsorted(skeys, nr[k] * stride + order[k]) - 1   # last key < (pixel, i)
            hit = pos >= 0
            hit[hit] = skeys[pos[hit]] // stride == nr[k][hit]
            tn[k[hit]] = t[skeys[pos[hit]] % stride]
            ok = tn != _NONE
            d = ts - np.where(ok, tn, 0)
            keep_sorted |= ok & (d >= 0) & (d <= window_us)
    keep = np.zeros(n, dtype=bool)
    keep[order] = keep_sorted
    # map update: each pixel's last event of the batch, in stream order
    j = order[np.append(np.flatnonzero(new_pixel)[1:] - 1, n - 1)]
    last.t[y[j], x[j]] = t[j]
    return events[keep]


# --------------------------------------------------------------------------- #
# Transforms
# --------------------------------------------------------------------------- #
class _Transform:
    """Mixin: one-shot ``__call__``, streaming ``stream()``, stateless default."""
    name: ClassVar[str] = ""

    def init_state(self) -> Any:
        return None

    def apply(self, events: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return self.apply(events, self.init_state())[0]

    def stream(self) -> Stateful:
        """A callable that filters consecutive batches of one stream."""
        return Stateful(self)


class Stateful:
    """A transform plus its state across batches: ``f(batch)`` for each batch
    of a stream gives the same events as ``transform(whole_stream)``."""

    def __init__(self, transform: _Transform) -> None:
        self.transform = transform
        self.state = transform.init_state()

    def __call__(self, events: np.ndarray) -> np.ndarray:
        out, self.state = self.transform.apply(events, self.state)
        return out

    def reset(self) -> None:
        self.state = self.transform.init_state()


@dataclass(frozen=True)
class Crop(_Transform):
    """Keep events with ``x0 <= x < x0 + w`` and ``y0 <= y < y0 + h``, moved to
    the crop's origin: ``x' = x - x0``, ``y' = y - y0``. t, p unchanged.

    The output sensor is ``(w, h)``.
    """
    x0: int
    y0: int
    w: int
    h: int
    name: ClassVar[str] = "Crop"

    def __post_init__(self) -> None:
        _int("Crop.x0", self.x0, 0)
        _int("Crop.y0", self.y0, 0)
        _int("Crop.w", self.w, 1)
        _int("Crop.h", self.h, 1)

    def apply(self, events, state):
        return crop(events, self.x0, self.y0, self.w, self.h), state


@dataclass(frozen=True)
class Downsample(_Transform):
    """``x' = x // factor``, ``y' = y // factor`` (integer floor division, the
    mapping of ``bin_events(..., downsample=factor)``); every event is kept, t
    and p unchanged. A ``(W, H)`` sensor becomes ``(W // factor, H // factor)``
    when factor divides both, as binning requires.
    """
    factor: int
    name: ClassVar[str] = "Downsample"

    def __post_init__(self) -> None:
        _int("Downsample.factor", self.factor, 1)

    def apply(self, events, state):
        return downsample(events, self.factor), state


@dataclass(frozen=True)
class PolarityChannels(_Transform):
    """Map polarity to the input channel of binning: with ``channels=2``
    (default) ``p`` is unchanged (channel 0 = OFF, 1 = ON, a no-op marker);
    with ``channels=1`` every ``p`` becomes 0 (both polarities summed)."""
    channels: int = 2
    name: ClassVar[str] = "PolarityChannels"

    def __post_init__(self) -> None:
        if self.channels not in (1, 2) or isinstance(self.channels, bool):
            raise ValueError(f"PolarityChannels.channels must be 1 or 2, got {self.channels!r}")

    def apply(self, events, state):
        return polarity_channels(events, self.channels), state


@dataclass(frozen=True)
class RefractoryFilter(_Transform):
    """Drop events that come too soon after the last kept event of their pixel.

    Rule, for events in stream order, with ``L[x, y]`` = timestamp of the last
    *kept* event at pixel (x, y) (initially none), polarity ignored::

        keep e  iff  L[e.x, e.y] is none  or  e.t - L[e.x, e.y] >= refractory_us
        if kept:     L[e.x, e.y] = e.t

    Dropped events do not update ``L``. Pixels are the (x, y) the filter
    receives: place it before :class:`Downsample` to filter sensor pixels
    (the intended use). Unsorted timestamps are allowed (a negative difference
    is < refractory_us: dropped). ``refractory_us = 0`` keeps everything.
    """
    refractory_us: int
    name: ClassVar[str] = "RefractoryFilter"

    def __post_init__(self) -> None:
        _int("RefractoryFilter.refractory_us", self.refractory_us, 0)

    def init_state(self) -> PixelTimeMap:
        return PixelTimeMap()

    def apply(self, events, state):
        return refractory_filter(events, self.refractory_us, state), state


@dataclass(frozen=True)
class BackgroundActivityFilter(_Transform):
    """The classic background-activity (nearest-neighbour correlation) filter.

    Rule, for events in stream order, with ``T[x, y]`` = timestamp of the last
    event (kept or not) at pixel (x, y) (initially none), polarity ignored,
    ``r = neighbourhood``::

        support(e) = any neighbour (x', y') != (e.x, e.y) with
                     |x' - e.x| <= r, |y' - e.y| <= r, x', y' >= 0,
                     T[x', y'] not none and 0 <= e.t - T[x', y'] <= window_us
        keep e  iff  support(e)
        then (always) T[e.x, e.y] = e.t

    The event's own pixel never supports it; ``T`` is updated by every event,
    including dropped ones. With r = 1 the neighbours are the 8 pixels around.
    Like :class:`RefractoryFilter`, it sees the (x, y) it receives.
    """
    window_us: int
    neighbourhood: int = 1
    name: ClassVar[str] = "BackgroundActivityFilter"

    def __post_init__(self) -> None:
        _int("BackgroundActivityFilter.window_us", self.window_us, 0)
        _int("BackgroundActivityFilter.neighbourhood", self.neighbourhood, 1)

    def init_state(self) -> PixelTimeMap:
        return PixelTimeMap()

    def apply(self, events, state):
        return background_activity_filter(events, self.window_us, self.neighbourhood, state), state


@dataclass(frozen=True)
class Compose(_Transform):
    """Apply ``transforms`` in order; each gets the previous one's output."""
    transforms: tuple = ()
    name: ClassVar[str] = "Compose"

    def __post_init__(self) -> None:
        object.__setattr__(self, "transforms", tuple(self.transforms))
        for tr in self.transforms:
            if not isinstance(tr, _Transform):
                raise TypeError(f"Compose: {tr!r} is not a pysg.preprocess transform")

    def init_state(self) -> tuple:
        return tuple(tr.init_state() for tr in self.transforms)

    def apply(self, events, state):
        new = []
        for tr, st in zip(self.transforms, state):
            events, st = tr.apply(events, st)
            new.append(st)
        return events, tuple(new)


TRANSFORMS: dict[str, type] = {c.name: c for c in (Crop, Downsample, PolarityChannels, RefractoryFilter,
                                                    BackgroundActivityFilter, Compose)}


def to_dict(transform: _Transform) -> dict[str, Any]:
    """``{"type": name, **fields}``; Compose nests its transforms as a list."""
    if isinstance(transform, Compose):
        return {"type": "Compose", "transforms": [to_dict(tr) for tr in transform.transforms]}
    return {"type": transform.name, **dataclasses.asdict(transform)}


def from_dict(d: dict[str, Any]) -> _Transform:
    """Inverse of :func:`to_dict`."""
    kind = d.get("type")
    if kind not in TRANSFORMS:
        raise ValueError(f"from_dict: unknown transform type {kind!r}; known: {sorted(TRANSFORMS)}")
    fields = {k: v for k, v in d.items() if k != "type"}
    if kind == "Compose":
        return Compose(tuple(from_dict(x) for x in fields.get("transforms", ())))
    return TRANSFORMS[kind](**fields)


# --------------------------------------------------------------------------- #
# Sensor mapping: a recording of any size onto a model's sensor
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class SensorMapping:
    """How a recording of ``recording`` = (W, H) pixels becomes events of a model's
    ``sensor`` = (Wm, Hm): keep the window ``crop`` = (x0, y0, w, h) of the recording
    (x0, y0 may be negative: a recording smaller than the window is centred in it),
    then ``x' = (x - x0) // downsample + offset[0]``, ``y' = (y - y0) // downsample +
    offset[1]``; an event outside the window or off the model's sensor is dropped.
    ``source``: "identity" (same size), "default" (the rule of :func:`sensor_mapping`)
    or "option" (``--crop``/``--downsample``)."""
    recording: tuple
    sensor: tuple
    crop: tuple
    downsample: int
    offset: tuple
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"recording": list(self.recording), "sensor": list(self.sensor), "crop": list(self.crop),
                "downsample": self.downsample, "offset": list(self.offset), "source": self.source}


def from_mapping_dict(d: dict[str, Any] | None) -> SensorMapping | None:
    """Inverse of :meth:`SensorMapping.to_dict` (None for None)."""
    if d is None:
        return None
    return SensorMapping(tuple(d["recording"]), tuple(d["sensor"]), tuple(d["crop"]), int(d["downsample"]),
                         tuple(d["offset"]), str(d["source"]))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def sensor_mapping(recording: tuple | None, sensor: tuple, *, crop: tuple | None = None,
                   downsample: int | None = None) -> SensorMapping:
    """The one mapping of a recording onto a model's sensor (docs/ARCHITECTURE.md, "Recordings
    of another size"). With ``Wr x Hr`` the recording and ``Wm x Hm`` the model's sensor:

    1. window: ``crop`` if given; else, with ``downsample`` = n given, the centred
       ``n*Wm x n*Hm`` window; else the largest centred window of the model's aspect ratio,
       ``w = min(Wr, Hr*Wm // Hm)``, ``h = min(Hr, Wr*Hm // Wm)``, ``x0 = (Wr - w) // 2``,
       ``y0 = (Hr - h) // 2`` (a recording no larger than the sensor: the whole of it);
    2. factor: ``downsample`` if given, else the smallest integer n >= 1 with which the
       window fits the sensor: ``n = max(1, ceil(w / Wm), ceil(h / Hm))``;
    3. the downsampled window (``ceil(w/n) x ceil(h/n)``) is centred on the sensor:
       ``offset = ((Wm - ceil(w/n)) // 2, (Hm - ceil(h/n)) // 2)`` (never negative).

    A recording of the sensor's size maps to itself. ``recording`` None (a file that
    records no size): the identity, events off the sensor dropped."""
    wm, hm = (int(v) for v in sensor)
    if recording is None or None in tuple(recording):
        if crop is None and downsample is None:
            return SensorMapping((wm, hm), (wm, hm), (0, 0, wm, hm), 1, (0, 0), "identity")
        recording = (wm, hm)
    wr, hr = (int(v) for v in recording)
    if downsample is not None:
        _int("downsample", downsample, 1)
    source = "option" if crop is not None or downsample is not None else "default"
    if crop is not None:
        x0, y0, w, h = (int(v) for v in crop)
        if w < 1 or h < 1 or x0 < 0 or y0 < 0 or x0 + w > wr or y0 + h > hr:
            raise ValueError(f"crop {x0},{y0},{w},{h} is not inside the {wr}x{hr} recording "
                             "(give --crop X,Y,W,H with X+W <= width and Y+H <= height)")
    elif downsample is not None:
        w, h = wm * downsample, hm * downsample
        x0, y0 = (wr - w) // 2, (hr - h) // 2
    else:
        if (wr, hr) == (wm, hm):
            return SensorMapping((wr, hr), (wm, hm), (0, 0, wm, hm), 1, (0, 0), "identity")
        if wr <= wm and hr <= hm:   # a smaller recording: whole, centred
            w, h = wr, hr
        else:
            w, h = min(wr, hr * wm // hm), min(hr, wr * hm // wm)
        x0, y0 = (wr - w) // 2, (hr - h) // 2
    n = downsample if downsample is not None else max(1, _ceil_div(w, wm), _ceil_div(h, hm))
    off = (max(0, (wm - _ceil_div(w, n)) // 2), max(0, (hm - _ceil_div(h, n)) // 2))
    return SensorMapping((wr, hr), (wm, hm), (x0, y0, w, h), int(n), off, source)


def apply_mapping(events: np.ndarray, m: SensorMapping) -> np.ndarray:
    """The events of ``events`` that the mapping keeps, in stream order, in the model's
    sensor coordinates (t, p unchanged)."""
    _check_events("apply_mapping", events)
    x0, y0, w, h = m.crop
    dx = events["x"].astype(np.int64) - x0
    dy = events["y"].astype(np.int64) - y0
    n = m.downsample
    qx, qy = dx // n + m.offset[0], dy // n + m.offset[1]
    keep = (dx >= 0) & (dx < w) & (dy >= 0) & (dy < h) & (qx < m.sensor[0]) & (qy < m.sensor[1])
    out = events[keep].copy()
    out["x"] = qx[keep]
    out["y"] = qy[keep]
    return out


DROP_WARNING = 0.20  # more than this fraction of a recording's events dropped: warn on stderr


def drop_warning(name: str, events_in: int, events_dropped: int, mapping: SensorMapping | None) -> str | None:
    """The one-line stderr warning when more than 20 % of the events are dropped (None
    otherwise), saying why and how to choose another mapping."""
    if events_in <= 0 or events_dropped <= DROP_WARNING * events_in:
        return None
    why = "off the model's sensor or input grid"
    if mapping is not None and mapping.source != "identity":
        rw, rh = mapping.recording
        x0, y0, w, h = mapping.crop
        why = (f"outside the {w}x{h} window at ({x0},{y0}) of the {rw}x{rh} recording that maps onto the "
               f"model's {mapping.sensor[0]}x{mapping.sensor[1]} sensor (downsample {mapping.downsample}, "
               f"{mapping.source} mapping)")
    return (f"warning: {name}: {events_dropped} of {events_in} events ({100 * events_dropped / events_in:.0f} %) "
            f"dropped, {why}; choose another window with --crop X,Y,W,H and --downsample N")


def parse_crop(text: str) -> tuple[int, int, int, int]:
    """``"X,Y,W,H"`` as four integers (X, Y >= 0; W, H >= 1)."""
    parts = text.split(",")
    try:
        vals = tuple(int(v) for v in parts)
    except ValueError:
        vals = ()
    if len(vals) != 4 or vals[0] < 0 or vals[1] < 0 or vals[2] < 1 or vals[3] < 1:
        raise ValueError(f"--crop {text!r}: give X,Y,W,H (four integers, e.g. --crop 43,0,260,260)")
    return vals  # type: ignore[return-value]
