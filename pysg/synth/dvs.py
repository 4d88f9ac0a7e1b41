# SPDX-License-Identifier: MIT
"""A DVS pixel emulator: intensity frames at known timestamps -> address events.

Written from the published DVS pixel model (Lichtsteiner et al. 2008; the frame-based
emulation described by ESIM, Rebecq et al. 2018, and v2e, Hu et al. 2021). No code of
those projects is used.

Model, per pixel (all arrays are flattened to ``height * width``; row 0 is the top of
the image, ``y`` of an event is the row, ``x`` the column):

* Photoreceptor: ``L = log(I + eps)`` of the linear intensity ``I`` (>= 0, nominally
  in [0, 1]). Optionally a first-order low-pass whose cutoff rises with intensity::

      f_c(I) = cutoff_hz * (cutoff_floor + (1 - cutoff_floor) * clip(I, 0, 1))
      Lp(t1) = Lp(t0) + (1 - exp(-2 pi f_c dt)) * (L(t1) - Lp(t0))

  (the exact solution of ``dLp/dt = 2 pi f_c (L - Lp)`` with ``L`` held at the new
  frame's value over the interval). Without it ``Lp = L``.
* Threshold mismatch: each pixel has its own ``C_on``, ``C_off`` drawn once from
  ``Normal(c_on, sigma_c)`` and ``Normal(c_off, sigma_c)``, clipped to ``>= c_min``.
* Change detection: a memorised reference ``R`` per pixel. Between two frames at
  ``t0`` and ``t1`` the signal ``D(t) = Lp(t) - R(t)`` is linear in time (``Lp``
  interpolated linearly between the frames; ``R`` drifts linearly, see leak). Every
  crossing of ``D = +k C_on`` (k = 1, 2, ...) is an ON event and every crossing of
  ``D = -k C_off`` an OFF event, at the linearly interpolated time::

      t_k = t0 + (k C - D0) / (D1 - D0) * (t1 - t0)

  so one pixel can emit several events per interval. Afterwards ``R`` moves by
  ``n_on C_on - n_off C_off``: the reference advances in whole multiples of C.
* Refractory period: an event less than ``refractory_us`` after the pixel's previous
  emitted event is dropped. The reference still advances for dropped crossings (the
  change that happens while the pixel is held in reset is lost). Within one
  interval crossings are equally spaced (``Delta = C dt / |D1 - D0|``), so the kept
  ones are found in closed form: the first crossing at or after ``last + refractory``
  and then every ``m = ceil(refractory / Delta)``-th crossing.
* Leak noise: ``R`` drifts down by ``leak_rate * C_on`` per second (per-pixel rate
  ``leak_rate_hz * clip(Normal(1, leak_jitter), 0)``), which makes a static pixel emit
  spontaneous ON events at about ``leak_rate`` Hz. When the leak is on, ``reset``
  starts each pixel at a random phase of its leak cycle (``R = L - u C_on``,
  ``u ~ U[0, 1)``) so leak events are not synchronised.
* Shot noise: Poisson events of random polarity, per pixel at rate::

      r(I) = shot_rate_hz * (1 + (shot_bright_factor - 1) * clip(I, 0, 1))

  i.e. ``shot_rate_hz`` in darkness falling to ``shot_rate_hz * shot_bright_factor`` at
  full intensity: dark scenes are noisier. Noise events obey the refractory period
  (relative to the pixel's events before the interval) and do not move ``R``.

Timestamps are rounded to whole µs. Dense per-pixel state is float32 (speed), times
are float64; a crossing within ``1e-5 C`` of a threshold counts, so a change of exactly
``N C`` gives ``N`` events despite rounding.

Everything is vectorised over pixels; the only Python loop is over frames (one
``step`` call each). All randomness comes from the ``numpy.random.Generator`` given
to the constructor, so a run is reproducible from its seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pysg.events import EVENT_DTYPE

__all__ = ["DVSConfig", "DVSEmulator"]

# Tolerance (in units of C) when counting threshold crossings, so that a change of
# exactly N*C in log intensity gives N events despite float32 rounding.
_CROSS_TOL = 1e-5


@dataclass(frozen=True)
class DVSConfig:
    """Parameters of the DVS pixel model (see the module docstring for the equations).

    Contrast thresholds and ``eps`` are in natural-log units of intensity; rates are
    per pixel in Hz; times in microseconds.
    """

    c_on: float = 0.25
    c_off: float = 0.25
    sigma_c: float = 0.03
    c_min: float = 0.01
    eps: float = 0.01
    refractory_us: float = 500.0
    leak_rate_hz: float = 0.05
    leak_jitter: float = 0.1
    shot_rate_hz: float = 0.1
    shot_bright_factor: float = 0.25
    cutoff_hz: float = 0.0
    cutoff_floor: float = 0.05

    def __post_init__(self):
        for name in ("c_on", "c_off", "c_min", "eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"DVSConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("sigma_c", "refractory_us", "leak_rate_hz", "leak_jitter",
                     "shot_rate_hz", "shot_bright_factor", "cutoff_hz"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"DVSConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 < self.cutoff_floor <= 1:
            raise ValueError(f"DVSConfig.cutoff_floor must be in (0, 1], got {self.cutoff_floor!r}")

    @classmethod
    def ideal(cls, c: float = 0.25, **overrides) -> DVSConfig:
        """A noiseless pixel array: no mismatch, no refractory period, no leak or shot
        noise, no low-pass. ``overrides`` set any other field."""
        base = dict(c_on=c, c_off=c, sigma_c=0.0, refractory_us=0.0, leak_rate_hz=0.0,
                    shot_rate_hz=0.0, cutoff_hz=0.0)
        base.update(overrides)
        return cls(**base)


def _group_ranks(counts: np.ndarray) -> np.ndarray:
    """For groups of sizes ``counts`` laid end to end, the index of each element within
    its group: counts [2, 3] -> [0, 1, 0, 1, 2]."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)


class DVSEmulator:
    """Turns a sequence of intensity frames into DVS events.

    ``reset(first_frame, t0_us)`` sets the pixel state from the first frame (no
    events); each ``step(frame, t_us)`` then returns the events between the previous
    frame time and ``t_us`` (``t_us`` strictly increasing), sorted by timestamp.
    Frames are float arrays of shape ``(height, width)``, linear intensity.
    ``config`` None means ``DVSConfig()``; all randomness (mismatch, leak phase,
    shot noise) is drawn from ``rng``.
    """

    def __init__(self, width: int, height: int, config: DVSConfig | None, rng: np.random.Generator):
        if int(width) <= 0 or int(height) <= 0 or width > 65535 or height > 65535:
            raise ValueError(f"DVSEmulator: bad sensor size {width}x{height}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"DVSEmulator: rng must be a numpy.random.Generator, got {type(rng).__name__}")
        self.width = int(width)
        self.height = int(height)
        self.config = config if config is not None else DVSConfig()
        self.rng = rng
        cfg = self.config
        n = self.width * self.height
        # Per-pixel parameters, drawn once (fixed-pattern mismatch).
        # Dense per-pixel state is float32 (speed); times are float64.
        self.c_on = np.maximum(rng.normal(cfg.c_on, cfg.sigma_c, n), cfg.c_min).astype(np.float32)
        self.c_off = np.maximum(rng.normal(cfg.c_off, cfg.sigma_c, n), cfg.c_min).astype(np.float32)
        leak = cfg.leak_rate_hz * np.maximum(rng.normal(1.0, cfg.leak_jitter, n), 0.0)
        # Reference drift in log units per µs.
        self._leak_per_us = (leak * self.c_on * 1e-6).astype(np.float32)
        self._lp = None    # photoreceptor output (log units), flattened
        self._ref = None   # memorised reference level
        self._last = None  # time of the last emitted event (µs, float)
        self._t = None     # time of the previous frame (µs)

    # ------------------------------------------------------------------ state

    def _log(self, frame) -> tuple[np.ndarray, np.ndarray]:
        f = np.asarray(frame)
        if f.shape != (self.height, self.width):
            raise ValueError(f"DVSEmulator: frame shape {f.shape}, expected "
                             f"{(self.height, self.width)}")
        inten = np.maximum(f.reshape(-1).astype(np.float32, copy=False), np.float32(0.0))
        return inten, np.log(inten + np.float32(self.config.eps))

    def reset(self, first_frame, t0_us: int) -> None:
        """Start from ``first_frame`` at ``t0_us``: the reference is set to the frame's
        log intensity (at a random leak phase when the leak is on); nothing is emitted."""
        _, logi = self._log(first_frame)
        n = logi.size
        self._lp = logi.copy()
        if self.config.leak_rate_hz > 0:
            self._ref = logi - self.rng.random(n, dtype=np.float32) * self.c_on
        else:
            self._ref = logi.copy()
        self._last = np.full(n, -np.inf)
        self._t = int(t0_us)

    # ------------------------------------------------------------------- step

    def step(self, frame, t_us: int) -> np.ndarray:
        """Advance to ``frame`` at ``t_us`` and return the events of the interval
        (``EVENT_DTYPE``, sorted by ``t``; timestamps in ``[t_prev, t_us]``)."""
        if self._t is None:
            raise RuntimeError("DVSEmulator.step called before reset()")
        t0 = self._t
        t1 = int(t_us)
        if t1 <= t0:
            raise ValueError(f"DVSEmulator.step: t_us={t1} is not after the previous frame "
                             f"time {t0}")
        cfg = self.config
        dt = float(t1 - t0)
        inten, logi = self._log(frame)

        lp0 = self._lp
        if cfg.cutoff_hz > 0:
            fc = cfg.cutoff_hz * (cfg.cutoff_floor
                                  + (1.0 - cfg.cutoff_floor) * np.minimum(inten, 1.0))
            gain = -np.expm1(np.float32(-2.0 * math.pi * 1e-6 * dt) * fc)
            lp1 = lp0 + gain * (logi - lp0)
        else:
            lp1 = logi

        ref0 = self._ref
        d0 = lp0 - ref0
        if cfg.leak_rate_hz > 0:
            drift = self._leak_per_us * np.float32(dt)
            d1 = lp1 - ref0 + drift
            ref1 = ref0 - drift
        else:
            d1 = lp1 - ref0
            ref1 = ref0.copy()

        # Refractory state before this interval (the shot-noise filter uses it).
        last_before = self._last.copy() if cfg.shot_rate_hz > 0 else None
        n_on = np.floor(d1 / self.c_on + _CROSS_TOL)
        n_off = np.floor(-d1 / self.c_off + _CROSS_TOL)
        parts = []
        for pol, n_cross, c in ((1, n_on, self.c_on), (0, n_off, self.c_off)):
            idx = np.flatnonzero(n_cross > 0)
            if idx.size == 0:
                continue
            n = n_cross[idx].astype(np.int64)
            sign = 1.0 if pol == 1 else -1.0
            ref1[idx] += (sign * n * c[idx]).astype(np.float32)
            cc = c[idx].astype(np.float64)
            a = d0[idx].astype(np.float64)
            span = d1[idx] - a  # > 0 for ON, < 0 for OFF; guarded against 0
            span = np.where(sign * span > 0, span, sign * 1e-12)
            # First crossing time and spacing of the (equally spaced) crossings.
            t_first = t0 + (sign * cc - a) / span * dt
            spacing = cc * dt / np.abs(span)
            parts.append(self._emit(idx, n, t_first, spacing, pol, t0, t1))

        self._ref = ref1
        self._lp = lp1

        if cfg.shot_rate_hz > 0:
            parts.append(self._shot_noise(inten, t0, dt, last_before))

        self._t = t1
        if not parts:
            return np.empty(0, dtype=EVENT_DTYPE)
        ev = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return ev[np.argsort(ev["t"], kind="stable")]

    def _emit(self, idx, n, t_first, spacing, pol, t0, t1) -> np.ndarray:
        """Kept events of pixels ``idx`` having ``n`` crossings at
        ``t_first + j * spacing`` (j < n), after the refractory filter."""
        refr = self.config.refractory_us
        last = self._last[idx]
        if refr > 0:
            j0 = np.ceil((last + refr - t_first) / spacing - _CROSS_TOL)
            j0 = np.maximum(np.nan_to_num(j0, neginf=0.0), 0.0).astype(np.int64)
            m = np.maximum(np.ceil(refr / spacing - _CROSS_TOL), 1.0).astype(np.int64)
        else:
            j0 = np.zeros_like(n)
            m = np.ones_like(n)
        kept = np.where(j0 < n, (n - 1 - j0) // m + 1, 0)
        has = kept > 0
        if np.any(has):
            j_last = j0[has] + (kept[has] - 1) * m[has]
            self._last[idx[has]] = t_first[has] + j_last * spacing[has]
        rep = np.repeat(np.arange(idx.size), kept)
        j = j0[rep] + _group_ranks(kept) * m[rep]
        t = t_first[rep] + j * spacing[rep]
        pix = idx[rep]
        ev = np.empty(pix.size, dtype=EVENT_DTYPE)
        ev["x"] = pix % self.width
        ev["y"] = pix // self.width
        ev["t"] = np.clip(np.rint(t), t0, t1).astype(np.int64)
        ev["p"] = pol
        return ev

    def _shot_noise(self, inten, t0, dt, last_before) -> np.ndarray:
        # Poisson process by thinning: candidates at the maximal rate, uniform over
        # pixels and time, each kept with probability r(I) / r_max.
        cfg = self.config
        r_max = cfg.shot_rate_hz * max(1.0, cfg.shot_bright_factor)
        n_pix = inten.size
        count = int(self.rng.poisson(r_max * n_pix * dt * 1e-6))
        if count == 0:
            return np.empty(0, dtype=EVENT_DTYPE)
        pix = self.rng.integers(0, n_pix, count)
        t = t0 + self.rng.random(count) * dt
        pol = self.rng.integers(0, 2, count, dtype=np.uint8)
        u = self.rng.random(count)
        rate = cfg.shot_rate_hz * (1.0 + (cfg.shot_bright_factor - 1.0)
                                   * np.minimum(inten[pix].astype(np.float64), 1.0))
        keep = (u * r_max < rate) & (t >= last_before[pix] + cfg.refractory_us)
        pix, t, pol = pix[keep], t[keep], pol[keep]
        np.maximum.at(self._last, pix, t)
        ev = np.empty(pix.size, dtype=EVENT_DTYPE)
        ev["x"] = pix % self.width
        ev["y"] = pix // self.width
        ev["t"] = np.rint(t).astype(np.int64)
        ev["p"] = pol
        return ev
