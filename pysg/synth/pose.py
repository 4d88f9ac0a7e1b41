# SPDX-License-Identifier: MIT
"""The kinematics of the 11 synthetic gestures: per class the arms' joint angles over
time (two-link inverse kinematics towards per-class wrist targets, or the joint angles
directly), blended from and back to the rest pose; :func:`pose` gives the joint
positions. The model is described in :mod:`pysg.synth.gestures`."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pysg.synth.style import Repetition, UserStyle, _check_class, _u

__all__ = ["Pose", "pose", "rest_pose"]

# Per class: period multiplier (some gestures are naturally quicker).
_CLASS_PERIOD = (0.8, 0.6, 0.6, 1.0, 1.0, 1.0, 1.0, 0.6, 0.8, 0.9, 1.0)


@dataclass(frozen=True)
class Pose:
    """Joint positions on the 128 x 128 canvas: ``joints[arm, k]`` = (x, y) of the
    shoulder, elbow, wrist and hand tip (k = 0..3); arm 0 is the subject's right arm
    (image left), arm 1 the left arm (image right)."""

    joints: np.ndarray


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
