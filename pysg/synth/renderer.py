# SPDX-License-Identifier: MIT
"""Drawing poses as intensity frames: a textured background and the static body drawn
once per user, the arms redrawn per frame as anti-aliased capsules, the lighting's level
and flicker applied last. The model is described in :mod:`pysg.synth.gestures`."""
from __future__ import annotations

import math
from collections.abc import Iterator
from functools import lru_cache

import numpy as np

from pysg.synth.pose import Pose, _Body, pose, rest_pose
from pysg.synth.style import Repetition, UserStyle, _u

__all__ = ["Renderer", "render", "frames"]

_CANVAS = 128.0


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
        self._body = _Body(style)
        img = _background(style, self.height, self.width)
        self._draw_body(img)
        self._static = img.astype(np.float32)
        self._rest_frame = self._draw_arms(rest_pose(style))

    # Canvas origin in pixels (the hard set draws on a canvas padded for the camera shake).
    _ox = 0.0
    _oy = 0.0

    def _draw_body(self, img: np.ndarray) -> None:
        """The static body: torso, shoulder bar, neck, head (in place)."""
        style, body = self.style, self._body
        s, shirt, skin = body.s, style.shirt_level, style.skin_level
        cx, sy = body.cx, body.sy
        (rx, _), (lx, _) = body.shoulders
        self._capsule(img, (cx, sy + 10 * s), (cx, sy + 140), 15.5 * s, shirt)
        self._capsule(img, (rx, sy + 3 * s), (lx, sy + 3 * s), 6.5 * s, shirt)
        self._capsule(img, (cx, sy - 14 * s), (cx, sy), 4.0 * s, skin)
        self._capsule(img, (cx, sy - 22 * s), (cx, sy - 22 * s), 9.5 * s, skin)

    @property
    def _sleeve(self) -> float:
        shirt = self.style.shirt_level
        return float(np.clip(shirt * 1.15 if shirt < 0.8 else shirt * 0.87, 0, 1))

    def _capsule(self, img: np.ndarray, p0, p1, r: float, level: float) -> None:
        """Composite a capsule (canvas units) onto ``img`` in place, only over its
        bounding box."""
        x0, y0 = p0[0] * self._kx + self._ox, p0[1] * self._ky + self._oy
        x1, y1 = p1[0] * self._kx + self._ox, p1[1] * self._ky + self._oy
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
