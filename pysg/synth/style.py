# SPDX-License-Identifier: MIT
"""Who performs a synthetic gesture and under which light: :class:`UserStyle` (body,
tempo, clothing, background, lighting; drawn per user and lighting) and
:class:`Repetition` (the small variations of one gesture). The model they parametrise
is described in :mod:`pysg.synth.gestures`."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from pysg.datasets.gesture import GESTURE_CLASSES, LIGHTINGS

__all__ = ["LIGHTING_PARAMS", "UserStyle", "Repetition", "N_CLASSES"]

N_CLASSES = len(GESTURE_CLASSES)

# Per lighting: (light level range, flicker Hz, flicker amplitude range, noise factor range).
LIGHTING_PARAMS: dict[str, tuple[tuple[float, float], float, tuple[float, float], tuple[float, float]]] = {
    "fluorescent": ((0.80, 1.00), 100.0, (0.010, 0.025), (0.8, 1.2)),
    "fluorescent_led": ((0.75, 0.95), 100.0, (0.005, 0.015), (0.8, 1.2)),
    "lab": ((0.55, 0.80), 100.0, (0.000, 0.008), (1.0, 1.5)),
    "led": ((0.65, 0.90), 100.0, (0.000, 0.005), (0.8, 1.2)),
    "natural": ((0.20, 0.35), 0.0, (0.000, 0.000), (2.0, 3.0)),
}


def _check_lighting(lighting: str) -> None:
    if lighting not in LIGHTINGS:
        raise ValueError(f"unknown lighting {lighting!r}; expected one of {', '.join(LIGHTINGS)}")


def _check_class(class_index: int) -> int:
    if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)) \
            or not 0 <= class_index < N_CLASSES:
        raise ValueError(f"class_index must be an integer in 0..{N_CLASSES - 1}, got {class_index!r}")
    return int(class_index)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


@dataclass(frozen=True)
class UserStyle:
    """Everything that is fixed for one person under one lighting.

    Geometry is on the 128 x 128 canvas: ``cx`` body centre column, ``shoulder_y``
    shoulder row, ``scale`` body size (1 = shoulders 30 px apart, reach 46 px).
    ``period_s`` base gesture period, ``amplitude`` motion amplitude factor, ``phase``
    start phase (rad), ``roll_dir`` +1/-1 arm-roll direction. Reflectances (linear, 0..1):
    ``bg_level`` background mean, ``shirt_level`` torso and sleeves, ``skin_level`` head,
    forearms, hands; ``texture_amp`` log-amplitude of the background texture,
    ``texture_seed`` its seed. Lighting: ``light_level``, ``flicker_hz``,
    ``flicker_amp``, ``flicker_phase``, ``noise_factor`` (for the DVS shot noise).
    """

    lighting: str = "lab"
    cx: float = 64.0
    shoulder_y: float = 46.0
    scale: float = 1.0
    period_s: float = 0.9
    amplitude: float = 1.0
    phase: float = 0.0
    roll_dir: int = 1
    bg_level: float = 0.2
    shirt_level: float = 0.6
    skin_level: float = 0.9
    texture_amp: float = 0.2
    texture_seed: int = 0
    light_level: float = 0.7
    flicker_hz: float = 0.0
    flicker_amp: float = 0.0
    flicker_phase: float = 0.0
    noise_factor: float = 1.0

    def __post_init__(self):
        _check_lighting(self.lighting)

    @classmethod
    def draw(cls, rng: np.random.Generator, lighting: str = "lab") -> UserStyle:
        """A random person (body, tempo, clothing, background) under ``lighting``."""
        _check_lighting(lighting)
        # Reflectances: rejection-sample log levels so that skin, shirt and
        # background differ clearly (body brighter or darker than the background).
        # (Pairwise log contrast >= 0.6, skin vs background >= 0.8, spread <= 1.8:
        # about one draw in eight is accepted.)
        lo, hi = math.log(0.08), math.log(0.95)
        for _ in range(10_000):
            lb, ls, lk = (float(v) for v in rng.uniform(lo, hi, 3))
            if min(abs(ls - lb), abs(lk - ls)) >= 0.6 and abs(lk - lb) >= 0.8 \
                    and max(lb, ls, lk) - min(lb, ls, lk) <= 1.8:
                break
        else:  # pragma: no cover - the acceptance rate makes this unreachable
            raise RuntimeError("UserStyle.draw: could not draw reflectances")
        style = cls(
            lighting=lighting,
            cx=64.0 + _u(rng, -5.0, 5.0),
            shoulder_y=46.0 + _u(rng, -4.0, 4.0),
            scale=_u(rng, 0.88, 1.08),
            period_s=_u(rng, 0.6, 1.3),
            amplitude=_u(rng, 0.85, 1.15),
            phase=_u(rng, 0.0, 2.0 * math.pi),
            roll_dir=int(rng.choice((-1, 1))),
            bg_level=math.exp(lb),
            shirt_level=math.exp(ls),
            skin_level=math.exp(lk),
            texture_amp=_u(rng, 0.1, 0.35),
            texture_seed=int(rng.integers(0, 2**31 - 1)),
        )
        return style.relit(lighting, rng)

    def relit(self, lighting: str, rng: np.random.Generator) -> UserStyle:
        """The same person under another lighting (level, flicker and noise drawn
        from ``LIGHTING_PARAMS[lighting]``)."""
        _check_lighting(lighting)
        level, hz, amp, noise = LIGHTING_PARAMS[lighting]
        return replace(self, lighting=lighting, light_level=_u(rng, *level), flicker_hz=hz,
                       flicker_amp=_u(rng, *amp), flicker_phase=_u(rng, 0.0, 2.0 * math.pi),
                       noise_factor=_u(rng, *noise))


@dataclass(frozen=True)
class Repetition:
    """Small per-repetition variations, so that no two gestures are identical.

    ``period_scale``/``amp_scale`` multiply the user's period and amplitude,
    ``phase`` is added to the user's phase, ``dx``/``dy`` shift the gesture's wrist
    targets (px), ``wobble``/``wobble_hz``/``wobble_phase`` make the tempo slightly
    irregular, ``ramp_s`` is the rest <-> gesture blend time, ``other_seed`` seeds the
    trajectories of class "other". The defaults are a neutral repetition.
    """

    period_scale: float = 1.0
    amp_scale: float = 1.0
    phase: float = 0.0
    dx: float = 0.0
    dy: float = 0.0
    wobble: float = 0.0
    wobble_hz: float = 0.3
    wobble_phase: float = 0.0
    ramp_s: float = 0.2
    other_seed: int = 0

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Repetition:
        return cls(
            period_scale=_u(rng, 0.9, 1.1),
            amp_scale=_u(rng, 0.88, 1.12),
            phase=_u(rng, 0.0, 2.0 * math.pi),
            dx=_u(rng, -2.5, 2.5),
            dy=_u(rng, -2.5, 2.5),
            wobble=_u(rng, 0.0, 0.35),
            wobble_hz=_u(rng, 0.15, 0.5),
            wobble_phase=_u(rng, 0.0, 2.0 * math.pi),
            ramp_s=_u(rng, 0.15, 0.3),
            other_seed=int(rng.integers(0, 2**31 - 1)),
        )
