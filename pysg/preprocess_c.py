# SPDX-License-Identifier: MIT
"""The event filters of :mod:`pysg.preprocess` on the C runtime (``sg_preprocess.h``).

Thin cffi wrappers, exact with the numpy transforms: events in (any x, y, t, p
integer structured array, converted by :func:`pysg._native.as_sg_events`), events
out as :data:`pysg.events.EVENT_DTYPE` arrays, never modifying the input.

* :func:`crop_c`, :func:`downsample_c`: stateless, as :class:`~pysg.preprocess.Crop`
  and :class:`~pysg.preprocess.Downsample`;
* :class:`RefractoryFilterC`, :class:`BackgroundActivityFilterC`: streaming filters
  (``f(batch)`` per batch, ``f.reset()`` for a new stream) over a per-pixel map of the
  given sensor size, which the object owns (``sg_*_state_size`` bytes). Unlike the
  numpy map, which grows, an event outside ``width x height`` raises ValueError and
  leaves the state unchanged.

:func:`from_transform` builds the C twin of a numpy transform.
"""
from __future__ import annotations

import numpy as np

from . import preprocess as _pp
from .events import EVENT_DTYPE
from ._native import as_sg_events, check as _check, require

ffi, lib = require("pysg.preprocess_c")

__all__ = ["BackgroundActivityFilterC", "RefractoryFilterC", "crop_c", "downsample_c", "from_transform"]

_U32 = 0xFFFFFFFF
_I64 = (1 << 63) - 1


def _param(name: str, value, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ValueError(f"{name} must be <= {hi}, got {value!r}")
    return int(value)


def _work_copy(events: np.ndarray) -> np.ndarray:
    """A private C-layout copy the C code may compact in place."""
    ev = as_sg_events(events)
    return ev.copy() if ev is events else ev


def _out(ev: np.ndarray, n: int) -> np.ndarray:
    out = np.empty(n, EVENT_DTYPE)
    for f in ("x", "y", "t", "p"):
        out[f] = ev[f][:n]
    return out


def _ptr(ev: np.ndarray):
    return ffi.from_buffer("sg_event[]", ev) if len(ev) else ffi.NULL


def crop_c(events: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """:func:`pysg.preprocess.crop` in C (``sg_crop``)."""
    x0, y0 = _param("x0", x0, 0), _param("y0", y0, 0)
    w, h = _param("w", w, 1), _param("h", h, 1)
    ev = _work_copy(events)
    n_kept = ffi.new("size_t *")
    # beyond 32 bits: x0/y0 keep nothing and w/h keep everything either way (x, y < 2^16)
    _check(lib.sg_crop(min(x0, _U32), min(y0, _U32), min(w, _U32), min(h, _U32), _ptr(ev), len(ev), n_kept),
           what="sg_crop")
    return _out(ev, int(n_kept[0]))


def downsample_c(events: np.ndarray, factor: int) -> np.ndarray:
    """:func:`pysg.preprocess.downsample` in C (``sg_downsample``)."""
    factor = _param("factor", factor, 1)
    ev = _work_copy(events)
    _check(lib.sg_downsample(min(factor, _U32), _ptr(ev), len(ev)), what="sg_downsample")
    return _out(ev, len(ev))


class _MapFilter:
    """A C filter struct plus the per-pixel map memory it points into."""
    _ctype = ""
    _size_fn = ""
    _filter_fn = ""
    _reset_fn = ""

    def __init__(self, width: int, height: int) -> None:
        self.width = _param("width", width, 1, 0xFFFF)
        self.height = _param("height", height, 1, 0xFFFF)
        self.state_bytes = int(getattr(lib, self._size_fn)(self.width, self.height))
        if self.state_bytes == 0:
            raise ValueError(f"a {self.width} x {self.height} pixel map does not fit in memory")
        self._mem = ffi.new("int64_t[]", self.state_bytes // 8)
        self._f = ffi.new(f"{self._ctype} *")
        self._n_kept = ffi.new("size_t *")

    @property
    def state(self) -> np.ndarray:
        """The per-pixel map (height, width) int64, ``SG_PIXEL_NONE`` = INT64_MIN (a copy)."""
        return np.frombuffer(ffi.buffer(self._mem), np.int64).reshape(self.height, self.width).copy()

    def reset(self) -> None:
        """Forget every pixel's last event (a new stream)."""
        _check(getattr(lib, self._reset_fn)(self._f), what=self._reset_fn)

    def __call__(self, events: np.ndarray) -> np.ndarray:
        """Filter the next batch of the stream; returns the kept events (EVENT_DTYPE)."""
        ev = _work_copy(events)
        if len(ev) and (int(ev["x"].max()) >= self.width or int(ev["y"].max()) >= self.height):
            raise ValueError(f"{type(self).__name__}: an event at ({int(ev['x'].max())}, {int(ev['y'].max())}) "
                             f"(max x, max y) lies outside the {self.width} x {self.height} pixel map; "
                             "crop the events first (crop_c) or size the filter to the sensor")
        status = getattr(lib, self._filter_fn)(self._f, _ptr(ev), len(ev), self._n_kept)
        _check(status, what=self._filter_fn)
        return _out(ev, int(self._n_kept[0]))


class RefractoryFilterC(_MapFilter):
    """:class:`pysg.preprocess.RefractoryFilter` in C (``sg_refractory_*``), streaming
    over a ``width x height`` sensor."""
    _ctype, _size_fn, _filter_fn, _reset_fn = ("sg_refractory", "sg_refractory_state_size",
                                               "sg_refractory_filter", "sg_refractory_reset")

    def __init__(self, refractory_us: int, width: int, height: int) -> None:
        super().__init__(width, height)
        self.refractory_us = _param("refractory_us", refractory_us, 0, _I64)
        _check(lib.sg_refractory_init(self._f, self.refractory_us, self.width, self.height, self._mem,
                                      self.state_bytes), what="sg_refractory_init")

    def __repr__(self) -> str:
        return f"RefractoryFilterC(refractory_us={self.refractory_us}, width={self.width}, height={self.height})"


class BackgroundActivityFilterC(_MapFilter):
    """:class:`pysg.preprocess.BackgroundActivityFilter` in C (``sg_baf_*``), streaming
    over a ``width x height`` sensor."""
    _ctype, _size_fn, _filter_fn, _reset_fn = ("sg_baf", "sg_baf_state_size", "sg_baf_filter", "sg_baf_reset")

    def __init__(self, window_us: int, width: int, height: int, neighbourhood: int = 1) -> None:
        super().__init__(width, height)
        self.window_us = _param("window_us", window_us, 0, _I64)
        self.neighbourhood = _param("neighbourhood", neighbourhood, 1, 0xFFFF)
        _check(lib.sg_baf_init(self._f, self.window_us, self.neighbourhood, self.width, self.height, self._mem,
                               self.state_bytes), what="sg_baf_init")

    def __repr__(self) -> str:
        return (f"BackgroundActivityFilterC(window_us={self.window_us}, width={self.width}, "
                f"height={self.height}, neighbourhood={self.neighbourhood})")


def from_transform(transform, width: int, height: int):
    """The C twin of a numpy transform for a ``width x height`` input: a streaming
    callable (``f(batch)``); Crop and Downsample become stateless callables."""
    if isinstance(transform, _pp.Crop):
        return lambda ev: crop_c(ev, transform.x0, transform.y0, transform.w, transform.h)
    if isinstance(transform, _pp.Downsample):
        return lambda ev: downsample_c(ev, transform.factor)
    if isinstance(transform, _pp.RefractoryFilter):
        return RefractoryFilterC(transform.refractory_us, width, height)
    if isinstance(transform, _pp.BackgroundActivityFilter):
        return BackgroundActivityFilterC(transform.window_us, width, height, transform.neighbourhood)
    raise ValueError(f"from_transform: no C filter for {type(transform).__name__}; "
                     "C filters: Crop, Downsample, RefractoryFilter, BackgroundActivityFilter")

