# SPDX-License-Identifier: MIT
"""A renderer of the 11 DVS128 Gesture classes as intensity frames.

The camera looks at a person standing in front of a textured background, framed
from the waist up as in DVS128 Gesture. Frames are ``float32`` arrays of shape
``(height, width)`` (default 128 x 128) holding linear intensity, nominally in
[0, 1]; they are meant for ``pysg.synth.dvs.DVSEmulator``.

Conventions
-----------
* Image coordinates: ``x`` = column (to the right), ``y`` = row (downward), the
  centre of pixel ``[row, col]`` is at ``(x, y) = (col, row)``. Geometry is defined
  on a 128 x 128 canvas and scaled to other sizes.
* The subject faces the camera, so the subject's RIGHT arm appears on the image's
  LEFT side (smaller x), as in the real dataset. "right_hand_wave" moves the arm on
  the image's left.
* Rotation directions are as seen by the camera, i.e. in the displayed image (y
  down): "clockwise" runs top -> right -> bottom -> left of the circle. Seen from the
  subject's own viewpoint these directions are reversed.
* Time ``t`` is seconds since the gesture started.

Model
-----
Body: head disc, neck, a shoulder bar and a torso capsule (static, drawn once per
user into a cached layer over the background), and per arm three capsules: upper arm
(sleeve), forearm and hand (skin). Every primitive is a thick segment drawn from its
distance field ``d`` with coverage ``clip(r + 1/2 - d, 0, 1)`` (a one-pixel
anti-aliasing ramp), composited over what is below: ``I <- I + cov * (level - I)``.
So sub-pixel motion changes intensity smoothly. Only the arms' bounding boxes are
recomputed per frame.

Arms are two-link chains (shoulder -> elbow -> wrist, lengths ``l1``, ``l2``; the hand
extends beyond the wrist along the forearm). Most classes give a wrist target per arm
and solve the two-link inverse kinematics with a per-class elbow side; hand waves set
the joint angles directly. Over the gesture the joint angles blend from the rest pose
(arms hanging) with a smoothstep envelope of length ``ramp_s`` at both ends, so the
person moves into the gesture and back to rest inside the labelled interval.

Phase: ``theta(t) = phase + 2 pi t / P + w sin(2 pi f_w t + phi_w)`` with
``P = style.period_s * rep.period_scale * class_factor`` (a slightly irregular tempo).
Per class the wrist targets (``S`` shoulder, ``rho = l1 + l2`` reach, ``A`` amplitude):

1. hand_clapping: both wrists at chest height, ``x = cx -/+ (gap + A 0.36 rho (1 - cos theta)/2)``;
   the hands meet at the midline and part.
2. right_hand_wave / 3. left_hand_wave: upper arm out and down, forearm raised,
   swinging about the elbow by ``A 0.5 sin theta`` rad; the other arm rests.
4.-7. {right,left}_arm_{clockwise,counter_clockwise}: the wrist runs a circle of radius
   ``A 0.36 rho`` centred 0.4 reach outward of the shoulder, ``(cos d theta, sin d theta)``
   with ``d = +1`` clockwise and ``-1`` counter-clockwise (image coordinates); the other
   arm rests. The direction shows in the order in which the arc is swept and so in
   which side of the moving arm carries ON vs OFF events.
8. arm_roll: both wrists on one small circle in front of the chest, half a turn apart,
   so the forearms roll around each other (direction fixed per user).
9. air_drums: both wrists below the shoulders beating up and down half a period apart,
   with a fast down-stroke.
10. air_guitar: the subject's right hand (image left) strums at the hip (fast, small
    vertical strokes), the left hand (image right) is held out high on the guitar
    neck, sliding slightly and fretting.
11. other: per-repetition random smooth trajectories (sums of incommensurate
    sinusoids around a random anchor) of one or both arms: none of the above.

Lighting scales the reflectance image: ``I = light_level * (1 + flicker_amp sin(2 pi
flicker_hz t + phi)) * reflectance``. The per-lighting ``noise_factor`` is meant to
multiply the DVS shot-noise rate (dim "natural" light -> more noise).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from pysg.datasets.gesture import GESTURE_CLASSES, LIGHTINGS

__all__ = [
    "LIGHTING_PARAMS", "UserStyle", "Repetition", "Pose", "Renderer",
    "pose", "rest_pose", "render", "frames",
]

_CANVAS = 128.0
N_CLASSES = len(GESTURE_CLASSES)

# Per lighting: (light level range, flicker Hz, flicker amplitude range, noise factor range).
LIGHTING_PARAMS: dict[str, tuple[tuple[float, float], float, tuple[float, float], tuple[float, float]]] = {
    "fluorescent": ((0.80, 1.00), 100.0, (0.010, 0.025), (0.8, 1.2)),
    "fluorescent_led": ((0.75, 0.95), 100.0, (0.005, 0.015), (0.8, 1.2)),
    "lab": ((0.55, 0.80), 100.0, (0.000, 0.008), (1.0, 1.5)),
    "led": ((0.65, 0.90), 100.0, (0.000, 0.005), (0.8, 1.2)),
    "natural": ((0.20, 0.35), 0.0, (0.000, 0.000), (2.0, 3.0)),
}

# Per class: period multiplier (some gestures are naturally quicker).
_CLASS_PERIOD = (0.8, 0.6, 0.6, 1.0, 1.0, 1.0, 1.0, 0.6, 0.8, 0.9, 1.0)


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


@dataclass(frozen=True)
class Pose:
    """Joint positions on the 128 x 128 canvas: ``joints[arm, k]`` = (x, y) of the
    shoulder, elbow, wrist and hand tip (k = 0..3); arm 0 is the subject's right arm
    (image left), arm 1 the left arm (image right)."""

    joints: np.ndarray


# ----------------------------------------------------------------- kinematics


class _Body:
    """Derived body geometry of a style (canvas units)."""

    __slots__ = ("cx", "sy", "s", "l1", "l2", "reach", "hand_len", "shoulders")

    def __init__(self, style: UserStyle):
        s = style.scale
        self.cx = style.cx
        self.sy = style.shoulder_y
        self.s = s
        self.l1 = 24.0 * s
        self.l2 = 22.0 * s
        self.reach = self.l1 + self.l2
        self.hand_len = 5.0 * s
        half = 15.0 * s
        # arm 0 = subject's right = image left; outward x sign o = -1 / +1.
        self.shoulders = ((self.cx - half, self.sy), (self.cx + half, self.sy))


_OUT = (-1.0, 1.0)  # outward x direction of arm 0 (image left) and arm 1 (image right)


def _ik(shoulder, wrist, l1: float, l2: float, bend: float) -> tuple[float, float]:
    """Absolute angles (upper arm, forearm) reaching ``wrist`` from ``shoulder``.
    ``bend`` = +1 puts the elbow clockwise (on screen) of the shoulder->wrist line,
    -1 counter-clockwise. The distance is clipped to the reachable range."""
    dx = wrist[0] - shoulder[0]
    dy = wrist[1] - shoulder[1]
    d = math.hypot(dx, dy)
    d = min(max(d, abs(l1 - l2) + 1e-3, 1e-3), l1 + l2 - 1e-3)
    base = math.atan2(dy, dx)
    cos_a = (l1 * l1 + d * d - l2 * l2) / (2.0 * l1 * d)
    a_up = base + bend * math.acos(min(1.0, max(-1.0, cos_a)))
    ex = shoulder[0] + l1 * math.cos(a_up)
    ey = shoulder[1] + l1 * math.sin(a_up)
    wx = shoulder[0] + d * math.cos(base)
    wy = shoulder[1] + d * math.sin(base)
    return a_up, math.atan2(wy - ey, wx - ex)


def _rest_angles(arm: int) -> tuple[float, float]:
    """Arms hanging, slightly out from the body, elbow slightly bent."""
    o = _OUT[arm]
    return math.atan2(math.cos(0.16), o * math.sin(0.16)), math.atan2(math.cos(0.06), o * math.sin(0.06))


def _wrap(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def _other_params(seed: int, body: _Body) -> list:
    """Random smooth trajectories for class 'other': per arm None (rest) or
    (anchor, [(ax, fx, px, ay, fy, py) x 3], bend)."""
    rng = np.random.default_rng(seed)
    moving = [bool(rng.random() < 0.75), bool(rng.random() < 0.75)]
    if not any(moving):
        moving[int(rng.integers(0, 2))] = True
    out = []
    for arm in range(2):
        if not moving[arm]:
            out.append(None)
            continue
        o = _OUT[arm]
        sx, sy = body.shoulders[arm]
        ang = _u(rng, -0.5, 1.5)  # 0 = straight out, pi/2 = straight down
        dist = _u(rng, 0.5, 0.85) * body.reach
        inward = rng.random() < 0.4
        ox = -o * math.cos(ang) if inward else o * math.cos(ang)
        anchor = (sx + ox * dist, sy + math.sin(ang) * dist)
        terms = [(_u(rng, 0.3, 1.0), _u(rng, 0.5, 1.6), _u(rng, 0, 2 * math.pi),
                  _u(rng, 0.3, 1.0), _u(rng, 0.5, 1.6), _u(rng, 0, 2 * math.pi)) for _ in range(3)]
        # Scale to an RMS wrist speed of 1.5..2.5 reaches per second (a visible
        # gesture), with at most 0.55 reach of excursion per axis.
        speed = math.sqrt(sum((2 * math.pi * fx * ax) ** 2 + (2 * math.pi * fy * ay) ** 2
                              for ax, fx, _, ay, fy, _ in terms) / 2.0)
        k = _u(rng, 1.5, 2.5) * body.reach / speed
        k = min(k, 0.55 * body.reach / max(sum(t[0] for t in terms), sum(t[3] for t in terms)))
        terms = [(k * ax, fx, px, k * ay, fy, py) for ax, fx, px, ay, fy, py in terms]
        bend = -o if inward or ang > 1.0 else o
        out.append((anchor, terms, bend))
    return out


@lru_cache(maxsize=64)
def _other_cached(seed: int, style: UserStyle) -> list:
    return _other_params(seed, _Body(style))


def _gesture_angles(cls: int, style: UserStyle, body: _Body, t: float, rep: Repetition):
    """Per arm (upper, fore) angles of class ``cls`` at time ``t`` (no blending)."""
    period = style.period_s * rep.period_scale * _CLASS_PERIOD[cls]
    th = (style.phase + rep.phase + 2.0 * math.pi * t / period
          + rep.wobble * math.sin(2.0 * math.pi * rep.wobble_hz * t + rep.wobble_phase))
    amp = style.amplitude * rep.amp_scale
    rho = body.reach
    cx, sy = body.cx + rep.dx, body.sy + rep.dy
    sh = body.shoulders
    l1, l2 = body.l1, body.l2
    rest = [_rest_angles(0), _rest_angles(1)]

    if cls == 0:  # hand_clapping: hands meet at the midline and part.
        open_ = 0.5 * (1.0 - math.cos(th))
        sep = 3.5 * body.s + amp * 0.36 * rho * open_
        y = sy + 0.46 * rho - 0.05 * rho * open_
        return [_ik(sh[a], (cx + _OUT[a] * sep, y), l1, l2, -_OUT[a]) for a in range(2)]

    if cls in (1, 2):  # hand waves: forearm raised, swinging about the elbow.
        arm = 0 if cls == 1 else 1
        o = _OUT[arm]
        beta = 0.6 + 0.1 * math.sin(0.5 * th)
        a_up = math.atan2(math.sin(beta), o * math.cos(beta))
        psi = o * 0.12 + amp * 0.5 * math.sin(th)
        a_fore = math.atan2(-math.cos(psi), math.sin(psi))
        out = list(rest)
        out[arm] = (a_up, a_fore)
        return out

    if 3 <= cls <= 6:  # arm circles
        arm = 0 if cls in (3, 4) else 1
        d = 1.0 if cls in (3, 5) else -1.0  # clockwise in the image: +1
        o = _OUT[arm]
        sx, syy = sh[arm]
        r = min(amp * 0.36, 0.42) * rho
        cxx = sx + o * 0.4 * rho + rep.dx
        cyy = syy + 0.03 * rho + rep.dy
        w = (cxx + r * math.cos(d * th), cyy + r * math.sin(d * th))
        out = list(rest)
        out[arm] = _ik(sh[arm], w, l1, l2, o)
        return out

    if cls == 7:  # arm_roll: forearms rolling around each other.
        r = amp * 0.14 * rho
        c = (cx, sy + 0.5 * rho)
        d = float(style.roll_dir)
        out = []
        for a in range(2):
            ph = d * th + (0.0 if a == 0 else math.pi)
            w = (c[0] - _OUT[a] * 0.06 * rho + r * math.cos(ph), c[1] + r * math.sin(ph))
            out.append(_ik(sh[a], w, l1, l2, -_OUT[a]))
        return out

    if cls == 8:  # air_drums: alternate beats, fast down-stroke.
        out = []
        for a in range(2):
            ph = th + (0.0 if a == 0 else math.pi)
            lift = (0.5 * (1.0 + math.cos(ph))) ** 1.6
            w = (sh[a][0] + _OUT[a] * 0.1 * rho + rep.dx, sy + 0.6 * rho - amp * 0.24 * rho * lift)
            out.append(_ik(sh[a], w, l1, l2, -_OUT[a]))
        return out

    if cls == 9:  # air_guitar: right hand strums at the hip, left hand frets high.
        strum = (cx - 0.1 * rho, sy + 0.78 * rho + amp * 0.14 * rho * math.sin(2.0 * th))
        fret0 = (sh[1][0] + 0.55 * rho + rep.dx, sh[1][1] - 0.1 * rho + rep.dy)
        nx, ny = fret0[0] - strum[0], fret0[1] - strum[1]
        nn = math.hypot(nx, ny)
        slide = 0.05 * rho * math.sin(0.5 * th) + 0.012 * rho * math.sin(3.1 * th)
        fret = (fret0[0] + slide * nx / nn, fret0[1] + slide * ny / nn)
        return [_ik(sh[0], strum, l1, l2, -_OUT[0]), _ik(sh[1], fret, l1, l2, _OUT[1])]

    # cls == 10: other
    out = []
    for a, prm in enumerate(_other_cached(rep.other_seed, style)):
        if prm is None:
            out.append(rest[a])
            continue
        (axx, ayy), terms, bend = prm
        x = axx + rep.dx
        y = ayy + rep.dy
        for ax, fx, px, ay, fy, py in terms:
            x += amp * ax * math.sin(2.0 * math.pi * fx * t + px)
            y += amp * ay * math.sin(2.0 * math.pi * fy * t + py)
        out.append(_ik(sh[a], (x, y), l1, l2, bend))
    return out


def _pose_from_angles(body: _Body, angles) -> Pose:
    j = np.empty((2, 4, 2), dtype=np.float64)
    for a in range(2):
        a_up, a_fore = angles[a]
        sx, sy = body.shoulders[a]
        ex, ey = sx + body.l1 * math.cos(a_up), sy + body.l1 * math.sin(a_up)
        wx, wy = ex + body.l2 * math.cos(a_fore), ey + body.l2 * math.sin(a_fore)
        hx, hy = wx + body.hand_len * math.cos(a_fore), wy + body.hand_len * math.sin(a_fore)
        j[a] = ((sx, sy), (ex, ey), (wx, wy), (hx, hy))
    return Pose(j)


def rest_pose(style: UserStyle) -> Pose:
    """Both arms hanging (the pose between gestures)."""
    return _pose_from_angles(_Body(style), [_rest_angles(0), _rest_angles(1)])


def pose(class_index: int, style: UserStyle, t_seconds: float, rep: Repetition | None = None,
         duration: float | None = None) -> Pose:
    """The pose of gesture ``class_index`` (0..10, GESTURE_CLASSES order) at
    ``t_seconds`` after its start. With ``duration`` the pose blends in from and
    back out to the rest pose over ``rep.ramp_s`` at both ends of [0, duration]."""
    cls = _check_class(class_index)
    rep = rep if rep is not None else Repetition()
    body = _Body(style)
    t = float(t_seconds)
    ang = _gesture_angles(cls, style, body, t, rep)
    if duration is not None:
        ramp = max(1e-6, min(rep.ramp_s, 0.25 * float(duration)))
        w = _smoothstep(t / ramp) * _smoothstep((float(duration) - t) / ramp)
        if w < 1.0:
            rest = (_rest_angles(0), _rest_angles(1))
            ang = [tuple(r + w * _wrap(g - r) for g, r in zip(ang[a], rest[a])) for a in range(2)]
    return _pose_from_angles(body, ang)


# ------------------------------------------------------------------ rendering


def _background(style: UserStyle, height: int, width: int) -> np.ndarray:
    """Static textured background reflectance: smooth noise plus a few soft-edged
    rectangles (furniture, door frames), log-amplitude ``texture_amp``."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(style.texture_seed)
    k = min(width, height) / _CANVAS
    noise = gaussian_filter(rng.standard_normal((height, width)), sigma=7.0 * k, mode="wrap")
    noise /= max(float(noise.std()), 1e-12)
    tex = 0.5 * noise
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(int(rng.integers(2, 5))):
        x0, x1 = np.sort(rng.uniform(0, width, 2))
        y0, y1 = np.sort(rng.uniform(0, height, 2))
        soft = 1.5 * k
        mx = np.clip((xx - x0) / soft, 0, 1) * np.clip((x1 - xx) / soft, 0, 1)
        my = np.clip((yy - y0) / soft, 0, 1) * np.clip((y1 - yy) / soft, 0, 1)
        tex += float(rng.choice((-1.0, 1.0))) * _u(rng, 0.6, 1.2) * mx * my
    return np.clip(style.bg_level * np.exp(style.texture_amp * tex), 0.0, 1.0)


class Renderer:
    """Draws poses of one ``UserStyle`` as intensity frames of ``(height, width)``.

    The background and the static body are drawn once; ``frame`` redraws only the
    arms. Thread-compatible, not thread-safe (it keeps a scratch frame).
    """

    def __init__(self, style: UserStyle, width: int = 128, height: int = 128):
        if int(width) < 8 or int(height) < 8:
            raise ValueError(f"Renderer: image size {width}x{height} is too small")
        self.style = style
        self.width = int(width)
        self.height = int(height)
        self._kx = self.width / _CANVAS
        self._ky = self.height / _CANVAS
        self._kr = min(self._kx, self._ky)
        self._xs = np.arange(self.width, dtype=np.float32)
        self._ys = np.arange(self.height, dtype=np.float32)
        body = _Body(style)
        self._body = body
        s = body.s
        img = _background(style, self.height, self.width)
        shirt, skin = style.shirt_level, style.skin_level
        cx, sy = body.cx, body.sy
        (rx, _), (lx, _) = body.shoulders
        # Static body: torso, shoulder bar, neck, head.
        self._capsule(img, (cx, sy + 10 * s), (cx, sy + 140), 15.5 * s, shirt)
        self._capsule(img, (rx, sy + 3 * s), (lx, sy + 3 * s), 6.5 * s, shirt)
        self._capsule(img, (cx, sy - 14 * s), (cx, sy), 4.0 * s, skin)
        self._capsule(img, (cx, sy - 22 * s), (cx, sy - 22 * s), 9.5 * s, skin)
        self._static = img.astype(np.float32)
        self._sleeve = float(np.clip(shirt * 1.15 if shirt < 0.8 else shirt * 0.87, 0, 1))
        self._rest_frame = self._draw_arms(rest_pose(style))

    def _capsule(self, img: np.ndarray, p0, p1, r: float, level: float) -> None:
        """Composite a capsule (canvas units) onto ``img`` in place, only over its
        bounding box."""
        x0, y0 = p0[0] * self._kx, p0[1] * self._ky
        x1, y1 = p1[0] * self._kx, p1[1] * self._ky
        r = r * self._kr
        pad = r + 1.0
        c0 = max(int(math.floor(min(x0, x1) - pad)), 0)
        c1 = min(int(math.ceil(max(x0, x1) + pad)) + 1, self.width)
        r0 = max(int(math.floor(min(y0, y1) - pad)), 0)
        r1 = min(int(math.ceil(max(y0, y1) + pad)) + 1, self.height)
        if c0 >= c1 or r0 >= r1:
            return
        px = self._xs[c0:c1][None, :] - np.float32(x0)
        py = self._ys[r0:r1][:, None] - np.float32(y0)
        vx, vy = x1 - x0, y1 - y0
        vv = vx * vx + vy * vy
        if vv > 1e-12:
            h = np.clip((px * np.float32(vx / vv) + py * np.float32(vy / vv)), 0.0, 1.0)
            dx = px - h * np.float32(vx)
            dy = py - h * np.float32(vy)
        else:
            dx, dy = px, py
        cov = np.clip(np.float32(r + 0.5) - np.sqrt(dx * dx + dy * dy), 0.0, 1.0)
        sub = img[r0:r1, c0:c1]
        sub += cov * (np.float32(level) - sub)

    def _draw_arms(self, p: Pose) -> np.ndarray:
        img = self._static.copy()
        s = self._body.s
        skin = self.style.skin_level
        for a in range(2):
            sh, el, wr, tip = p.joints[a]
            self._capsule(img, sh, el, 4.2 * s, self._sleeve)
            self._capsule(img, el, wr, 3.4 * s, skin)
            self._capsule(img, wr, tip, 4.3 * s, skin)
        return img

    def _light(self, img: np.ndarray, t: float) -> np.ndarray:
        st = self.style
        g = st.light_level
        if st.flicker_amp > 0 and st.flicker_hz > 0:
            g *= 1.0 + st.flicker_amp * math.sin(2.0 * math.pi * st.flicker_hz * t + st.flicker_phase)
        return img * np.float32(g)

    def frame(self, p: Pose, t_seconds: float) -> np.ndarray:
        """Intensity frame of pose ``p`` at absolute time ``t_seconds`` (the time only
        matters for the lighting flicker)."""
        return self._light(self._draw_arms(p), t_seconds)

    def rest_frame(self, t_seconds: float) -> np.ndarray:
        """Intensity frame of the rest pose (cached drawing) at ``t_seconds``."""
        return self._light(self._rest_frame, t_seconds)

    def render(self, class_index: int, t_seconds: float, rep: Repetition | None = None,
               duration: float | None = None, t_light: float | None = None) -> np.ndarray:
        """Frame of gesture ``class_index`` at ``t_seconds`` into the gesture
        (see ``pose``); ``t_light`` is the absolute time for the flicker (default
        ``t_seconds``)."""
        p = pose(class_index, self.style, t_seconds, rep, duration)
        return self.frame(p, t_seconds if t_light is None else t_light)


@lru_cache(maxsize=8)
def _renderer(style: UserStyle, width: int, height: int) -> Renderer:
    return Renderer(style, width, height)


def render(class_index: int, style: UserStyle, t_seconds: float, rep: Repetition | None = None,
           duration: float | None = None, *, width: int = 128, height: int = 128) -> np.ndarray:
    """One intensity frame (float32, ``(height, width)``) of gesture ``class_index``
    performed by ``style`` at ``t_seconds`` into the gesture. Renderers are cached
    per style."""
    return _renderer(style, int(width), int(height)).render(class_index, t_seconds, rep, duration)


def frames(class_index: int, style: UserStyle, duration: float, *, fps: float = 250.0,
           rep: Repetition | None = None, width: int = 128, height: int = 128
           ) -> Iterator[tuple[int, np.ndarray]]:
    """Frames of one gesture over ``[0, duration]`` s at ``fps``, blended in from and
    out to rest: yields ``(t_us, frame)`` with ``t_us`` from 0."""
    if not duration > 0 or not fps > 0:
        raise ValueError(f"frames: duration and fps must be > 0, got {duration!r}, {fps!r}")
    r = _renderer(style, int(width), int(height))
    n = int(math.floor(duration * fps + 1e-9))
    for i in range(n + 1):
        t_us = int(round(i * 1e6 / fps))
        yield t_us, r.render(class_index, t_us * 1e-6, rep, duration)
