# SPDX-License-Identifier: MIT
"""The hard synthetic set (`pysg synth --difficulty hard`): the easy set's people and
gestures in cluttered rooms, seen by a shaking hand-held camera, with passers-by, hot
pixels, background-activity noise and a noisier, more mismatched sensor, and a wider
spread of people's size, position, tempo and gesture duration. docs/SYNTH.md lists
every effect with its parameters and ranges (:class:`HardConfig`).

Each effect draws from its own child of the file's ``SeedSequence``, so switching one
off (a zero range in :class:`HardConfig`) leaves every other effect's randomness, and
the label windows, unchanged: that is how the tests measure each effect alone.
"""
from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, replace

import numpy as np

from pysg.datasets.gesture import GESTURE_CLASSES, LIGHTINGS
from pysg.events import EVENT_DTYPE
from pysg.synth.dvs import DVSConfig, DVSEmulator
from pysg.synth.pose import pose, rest_pose
from pysg.synth.renderer import Renderer, _Body
from pysg.synth.style import Repetition, UserStyle

__all__ = ["HardConfig", "HardScene", "HardRenderer", "Passerby", "draw_scene", "hard_style",
           "shake_path", "synthesize_hard_recording",
           "HardPlan", "plan_hard_recording"]

SENSOR = 128
_EPOCH = _dt.datetime(2017, 1, 1, tzinfo=_dt.timezone.utc)
Range = tuple[float, float]


@dataclass(frozen=True)
class HardConfig:
    """The ranges the hard set draws from (uniform unless said otherwise). Pixels are
    sensor pixels (128 x 128), rates per second. A range (0, 0) switches an effect off."""

    # clutter: a textured room, static (it fires only when the camera moves)
    texture_amp: Range = (0.35, 0.6)        # log-amplitude of the two-scale texture
    clutter_items: tuple[int, int] = (8, 16)  # furniture, shelves, frames (soft rectangles)
    # hand-held camera shake: a smooth random walk of the whole scene, in bursts
    shake_px: Range = (1.0, 3.0)            # largest offset of a file's path
    shake_move_s: Range = (0.3, 1.2)        # a burst of movement ...
    shake_still_s: Range = (0.2, 1.0)       # ... then the camera is held still
    margin_px: int = 6                      # canvas drawn around the sensor (> shake_px)
    # passers-by: soft upright blobs crossing the room behind the person
    passerby_hz: Range = (0.15, 0.4)        # arrivals per second (Poisson)
    passerby_speed: Range = (30.0, 90.0)    # px / s
    passerby_radius: Range = (4.0, 9.0)     # px
    passerby_half_height: Range = (8.0, 25.0)  # px
    # sensor: hot pixels, background activity, threshold mismatch
    hot_pixels: tuple[int, int] = (2, 8)    # how many (integers, inclusive)
    hot_rate_hz: Range = (50.0, 300.0)      # each, Poisson, one polarity
    noise_hz: Range = (0.5, 2.0)            # background activity per pixel (Poisson, either polarity)
    c_mean: Range = (0.18, 0.32)            # mean ON / OFF contrast threshold (drawn separately)
    sigma_c: Range = (0.05, 0.10)           # per-pixel threshold spread (sensor mismatch)
    # people: wider than the easy set's (easy: +-5, +-4, 0.88..1.08, 0.6..1.3 s, 1 x seconds)
    cx_px: Range = (-14.0, 14.0)            # body centre column from the middle
    shoulder_dy: Range = (-8.0, 8.0)        # shoulder row from 46
    scale: Range = (0.7, 1.25)              # body size (distance to the camera)
    period_s: Range = (0.45, 1.8)           # base gesture period (tempo)
    amplitude: Range = (0.75, 1.25)
    duration: Range = (0.6, 1.4)            # gesture length as a multiple of `seconds`

    def __post_init__(self):
        for name, v in self.__dict__.items():
            if isinstance(v, tuple) and not (len(v) == 2 and 0 <= v[1] - v[0] and
                                             (name in ("cx_px", "shoulder_dy") or v[0] >= 0)):
                raise ValueError(f"HardConfig.{name} must be a range (lo, hi) with lo <= hi"
                                 f"{'' if name in ('cx_px', 'shoulder_dy') else ' and lo >= 0'}, got {v!r}")
        if self.duration[0] <= 0 or self.scale[0] <= 0 or self.period_s[0] <= 0:
            raise ValueError("HardConfig: duration, scale and period_s must be > 0")
        if not self.margin_px > self.shake_px[1] + 1:
            raise ValueError(f"HardConfig.margin_px {self.margin_px} must exceed shake_px's upper end + 1 "
                             f"({self.shake_px[1] + 1})")


HARD = HardConfig()


def _u(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


def _user_seq(seed: int, user: int) -> np.random.SeedSequence:
    # keys (user, 100...) never meet the easy set's (user,) and (user, 1..5)
    return np.random.SeedSequence(seed, spawn_key=(user, 100))


def hard_style(base: UserStyle, seed: int, user: int, cfg: HardConfig = HARD) -> UserStyle:
    """The easy set's person ``base`` with the hard set's wider geometry and tempo and a
    cluttered room (``texture_seed``)."""
    rng = np.random.default_rng(_user_seq(seed, user))
    return replace(base, cx=64.0 + _u(rng, cfg.cx_px), shoulder_y=46.0 + _u(rng, cfg.shoulder_dy),
                   scale=_u(rng, cfg.scale), period_s=_u(rng, cfg.period_s), amplitude=_u(rng, cfg.amplitude),
                   texture_amp=_u(rng, cfg.texture_amp), texture_seed=int(rng.integers(0, 2**31 - 1)))


def cluttered_room(style: UserStyle, size: int, cfg: HardConfig = HARD) -> np.ndarray:
    """Reflectance of a cluttered room on a ``size`` x ``size`` canvas: smooth noise at a
    coarse (7 px) and a fine (1.5 px) scale, then ``clutter_items`` soft rectangles and
    thin bars (shelves, frames) of random sign and contrast."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(style.texture_seed)
    tex = np.zeros((size, size))
    for sigma, weight in ((7.0, 0.5), (1.5, 0.35)):
        n = gaussian_filter(rng.standard_normal((size, size)), sigma=sigma, mode="wrap")
        tex += weight * n / max(float(n.std()), 1e-12)
    yy, xx = np.mgrid[0:size, 0:size]
    lo, hi = cfg.clutter_items
    for _ in range(int(rng.integers(lo, hi + 1)) if hi > 0 else 0):
        if rng.random() < 0.4:  # a thin bar, horizontal or vertical
            thick = rng.uniform(1.0, 3.0)
            if rng.random() < 0.5:
                x0, x1 = np.sort(rng.uniform(0, size, 2))
                y0 = rng.uniform(0, size)
                x0, x1, y0, y1 = x0, x1, y0, y0 + thick
            else:
                y0, y1 = np.sort(rng.uniform(0, size, 2))
                x0 = rng.uniform(0, size)
                x1 = x0 + thick
        else:
            x0, x1 = np.sort(rng.uniform(0, size, 2))
            y0, y1 = np.sort(rng.uniform(0, size, 2))
        mx = np.clip(xx - x0 + 0.5, 0, 1) * np.clip(x1 - xx + 0.5, 0, 1)
        my = np.clip(yy - y0 + 0.5, 0, 1) * np.clip(y1 - yy + 0.5, 0, 1)
        tex += float(rng.choice((-1.0, 1.0))) * rng.uniform(0.6, 1.4) * mx * my
    return np.clip(style.bg_level * np.exp(style.texture_amp * tex), 0.0, 1.0).astype(np.float32)


def shake_path(rng: np.random.Generator, n_frames: int, fps: float, cfg: HardConfig = HARD
               ) -> tuple[np.ndarray, np.ndarray]:
    """Camera offsets (n_frames, 2) in px (x, y) and whether the camera moves into each
    frame (bool, n_frames; frame 0 False). The camera alternates bursts of movement
    (``shake_move_s``) and still spells (``shake_still_s``, the offset held exactly).
    In a burst the velocity is a smoothed random walk (an Ornstein-Uhlenbeck process of
    time constant 80 ms), pulled back towards the centre; the path is then scaled so its
    largest offset is a draw from ``shake_px``."""
    moving = np.zeros(n_frames, bool)
    t, state = 0.0, bool(rng.random() < 0.5)
    while t * fps < n_frames:
        span = _u(rng, cfg.shake_move_s if state else cfg.shake_still_s)
        a, b = int(math.ceil(t * fps)), int(math.ceil((t + span) * fps))
        moving[max(a, 1):b] = state
        t += max(span, 1.0 / fps)
        state = not state
    dt = 1.0 / fps
    rho = math.exp(-dt / 0.08)
    pull = dt / 0.4
    v = np.zeros(2)
    p = np.zeros((n_frames, 2))
    noise = rng.standard_normal((n_frames, 2))
    for k in range(1, n_frames):
        if moving[k]:
            v = rho * v + math.sqrt(1 - rho * rho) * noise[k]
            p[k] = p[k - 1] + v * dt * 20.0 - pull * p[k - 1]
        else:
            v[:] = 0.0
            p[k] = p[k - 1]
    peak = float(np.abs(p).max())
    amp = _u(rng, cfg.shake_px)
    if peak == 0.0 or amp == 0.0:
        return np.zeros((n_frames, 2)), np.zeros(n_frames, bool)
    p *= amp / peak
    return p, moving & np.any(p != np.roll(p, 1, axis=0), axis=1)


@dataclass(frozen=True)
class Passerby:
    """A soft upright blob crossing the room: centre x at ``x0 + v (t - t0)`` (px,
    canvas), row ``y`` (plus a 1.5 px walking bob at 1.8 Hz), radius ``r``, half height
    ``hh``, reflectance ``level``; on screen while ``t_in <= t <= t_out``."""

    t0: float
    x0: float
    v: float
    y: float
    r: float
    hh: float
    level: float
    t_in: float
    t_out: float

    def at(self, t: float) -> tuple[float, float]:
        return self.x0 + self.v * (t - self.t0), self.y + 1.5 * math.sin(2.0 * math.pi * 1.8 * (t - self.t0))


def _passersby(rng: np.random.Generator, total_s: float, margin: int, cfg: HardConfig) -> list[Passerby]:
    n = int(rng.poisson(_u(rng, cfg.passerby_hz) * total_s))
    out = []
    for _ in range(n):
        r, hh, speed = _u(rng, cfg.passerby_radius), _u(rng, cfg.passerby_half_height), _u(rng, cfg.passerby_speed)
        span = SENSOR + 2 * margin + 2 * (r + 2.0)
        t_in = float(rng.uniform(-span / speed, total_s))
        left = bool(rng.random() < 0.5)
        x0 = -margin - r - 2.0 if left else SENSOR + margin + r + 2.0
        level = math.exp(rng.uniform(math.log(0.08), math.log(0.95)))
        out.append(Passerby(t_in, x0, speed if left else -speed, float(rng.uniform(20.0, 108.0)), r, hh, level,
                            t_in, t_in + span / speed))
    return out


class HardRenderer(Renderer):
    """Frames of one person in a cluttered room drawn on a canvas ``margin`` px larger
    than the sensor on every side, then cropped at the camera offset (bilinear, so a
    sub-pixel shake changes intensity smoothly). Passers-by are drawn behind the person."""

    def __init__(self, style: UserStyle, cfg: HardConfig = HARD):
        m = int(cfg.margin_px)
        self.style = style
        self.margin = m
        self.width = self.height = SENSOR + 2 * m   # the padded canvas
        self._kx = self._ky = self._kr = 1.0
        self._ox = self._oy = float(m)
        self._xs = np.arange(self.width, dtype=np.float32)
        self._ys = np.arange(self.height, dtype=np.float32)
        self._body = _Body(style)
        self._room = cluttered_room(style, self.width, cfg)

    def canvas(self, p, t_seconds: float, passersby=()) -> np.ndarray:
        """The lit padded canvas of pose ``p`` at ``t_seconds``."""
        img = self._room.copy()
        for pb in passersby:
            if pb.t_in <= t_seconds <= pb.t_out:
                x, y = pb.at(t_seconds)
                self._capsule(img, (x, y - pb.hh), (x, y + pb.hh), pb.r, pb.level)
        self._draw_body(img)
        s, skin = self._body.s, self.style.skin_level
        for a in range(2):
            sh, el, wr, tip = p.joints[a]
            self._capsule(img, sh, el, 4.2 * s, self._sleeve)
            self._capsule(img, el, wr, 3.4 * s, skin)
            self._capsule(img, wr, tip, 4.3 * s, skin)
        return self._light(img, t_seconds)

    def crop(self, canvas: np.ndarray, offset) -> np.ndarray:
        """The sensor's view of ``canvas`` with the camera moved by ``offset`` (x, y) px:
        sensor pixel (r, c) sees canvas point (r + margin + y, c + margin + x)."""
        ox, oy = self.margin + float(offset[0]), self.margin + float(offset[1])
        ix, iy = int(math.floor(ox)), int(math.floor(oy))
        fx, fy = np.float32(ox - ix), np.float32(oy - iy)
        a = canvas[iy:iy + SENSOR + 1, ix:ix + SENSOR + 1]
        top = a[:-1, :-1] + fx * (a[:-1, 1:] - a[:-1, :-1])
        bot = a[1:, :-1] + fx * (a[1:, 1:] - a[1:, :-1])
        return top + fy * (bot - top)

    def view(self, p, t_seconds: float, offset=(0.0, 0.0), passersby=()) -> np.ndarray:
        return self.crop(self.canvas(p, t_seconds, passersby), offset)


@dataclass(frozen=True)
class HardScene:
    """Everything a hard file draws besides the easy set's plan: the sensor
    (``dvs``), the hot pixels (flat index, rate Hz, polarity), the background-activity
    rate, the passers-by; the shake path is drawn per frame grid by :func:`shake_path`."""

    dvs: DVSConfig
    hot_pixels: np.ndarray   # int64 flat indices y * 128 + x
    hot_rates: np.ndarray    # Hz
    hot_polarity: np.ndarray  # uint8
    noise_hz: float
    passersby: tuple[Passerby, ...]


def draw_scene(rngs: dict[str, np.random.Generator], base_dvs: DVSConfig, noise_factor: float, total_s: float,
               cfg: HardConfig = HARD) -> HardScene:
    r = rngs["sensor"]
    dvs = replace(base_dvs, c_on=_u(r, cfg.c_mean), c_off=_u(r, cfg.c_mean), sigma_c=_u(r, cfg.sigma_c),
                  shot_rate_hz=base_dvs.shot_rate_hz * noise_factor)
    h = rngs["hot"]
    lo, hi = cfg.hot_pixels
    n_hot = int(h.integers(lo, hi + 1))
    pix = np.sort(h.choice(SENSOR * SENSOR, n_hot, replace=False)).astype(np.int64)
    rates = h.uniform(cfg.hot_rate_hz[0], cfg.hot_rate_hz[1], n_hot)
    pol = h.integers(0, 2, n_hot, dtype=np.uint8)
    return HardScene(dvs, pix, rates, pol, _u(rngs["noise"], cfg.noise_hz),
                     tuple(_passersby(rngs["passersby"], total_s, cfg.margin_px, cfg)))


def _events(pix: np.ndarray, t: np.ndarray, pol: np.ndarray) -> np.ndarray:
    ev = np.empty(pix.size, dtype=EVENT_DTYPE)
    ev["x"] = pix % SENSOR
    ev["y"] = pix // SENSOR
    ev["t"] = t
    ev["p"] = pol
    return ev


def hot_pixel_events(rng: np.random.Generator, scene: HardScene, t0_us: int, t1_us: int) -> np.ndarray:
    """Each hot pixel fires a Poisson train at its rate over [t0_us, t1_us)."""
    span = t1_us - t0_us
    n = rng.poisson(scene.hot_rates * span * 1e-6)
    idx = np.repeat(np.arange(scene.hot_pixels.size), n)
    t = t0_us + np.floor(rng.random(idx.size) * span).astype(np.int64)
    return _events(scene.hot_pixels[idx], t, scene.hot_polarity[idx])


def background_activity(rng: np.random.Generator, rate_hz: float, t0_us: int, t1_us: int) -> np.ndarray:
    """Poisson events at ``rate_hz`` per pixel over [t0_us, t1_us), random polarity."""
    span = t1_us - t0_us
    n = int(rng.poisson(rate_hz * SENSOR * SENSOR * span * 1e-6))
    pix = rng.integers(0, SENSOR * SENSOR, n)
    t = t0_us + np.floor(rng.random(n) * span).astype(np.int64)
    return _events(pix, t, rng.integers(0, 2, n, dtype=np.uint8))


_STREAMS = ("light", "plan", "dvs", "sensor", "shake", "passersby", "hot", "noise", "hot_events", "noise_events")


def file_rngs(seed: int, user: int, lighting: str) -> dict[str, np.random.Generator]:
    seq = np.random.SeedSequence(seed, spawn_key=(user, 101 + LIGHTINGS.index(lighting)))
    return {name: np.random.default_rng(s) for name, s in zip(_STREAMS, seq.spawn(len(_STREAMS)))}


@dataclass(frozen=True)
class HardPlan:
    """The draws of one hard file before rendering: the person, the timeline (segments
    ``(start_us, class, repetition, length_us)`` from ``t0_us``), the scene."""

    style: UserStyle
    t0_us: int
    segments: tuple
    total_us: int
    start_time: _dt.datetime
    scene: HardScene
    rngs: dict


def plan_hard_recording(seed: int, user: int, lighting: str, *, seconds: float, dvs_config: DVSConfig,
                        base_style: UserStyle, offset_us: tuple[int, int], lead_in_s: Range, pause_s: Range,
                        cfg: HardConfig = HARD) -> HardPlan:
    """Everything :func:`synthesize_hard_recording` draws before its frame loop."""
    rngs = file_rngs(seed, user, lighting)
    style = hard_style(base_style, seed, user, cfg).relit(lighting, rngs["light"])
    plan = rngs["plan"]
    order = plan.permutation(len(GESTURE_CLASSES))
    t0_us = int(plan.integers(*offset_us))
    segments = []
    cursor = int(round(plan.uniform(*lead_in_s) * 1e6))
    for cls in order:
        length = int(round(seconds * _u(plan, cfg.duration) * 1e6))
        segments.append((cursor, int(cls), Repetition.draw(plan), length))
        cursor += length + int(round(plan.uniform(*pause_s) * 1e6))
    start_time = _EPOCH + _dt.timedelta(seconds=int(plan.integers(0, 3 * 365 * 86400)))
    scene = draw_scene(rngs, dvs_config, style.noise_factor, cursor * 1e-6, cfg)
    return HardPlan(style, t0_us, tuple(segments), cursor, start_time, scene, rngs)


def synthesize_hard_recording(seed: int, user: int, lighting: str, *, seconds: float = 2.0, fps: float = 250.0,
                              dvs_config: DVSConfig, base_style: UserStyle, offset_us: tuple[int, int],
                              lead_in_s: Range, pause_s: Range, cfg: HardConfig = HARD
                              ) -> tuple[np.ndarray, list[tuple[int, int, int]], _dt.datetime]:
    """One hard recording (as :func:`pysg.synth.dataset.synthesize_recording`): the
    same timeline rules, each gesture ``seconds x duration`` long."""
    hp = plan_hard_recording(seed, user, lighting, seconds=seconds, dvs_config=dvs_config, base_style=base_style,
                             offset_us=offset_us, lead_in_s=lead_in_s, pause_s=pause_s, cfg=cfg)
    style, t0_us, segments, scene, rngs = hp.style, hp.t0_us, hp.segments, hp.scene, hp.rngs
    emu = DVSEmulator(SENSOR, SENSOR, scene.dvs, rngs["dvs"])
    ren = HardRenderer(style, cfg)
    rest = rest_pose(style)
    n_frames = int(math.floor(hp.total_us * fps / 1e6))
    frame_us = np.rint(np.arange(n_frames + 1) * (1e6 / fps)).astype(np.int64)
    offsets, _ = shake_path(rngs["shake"], n_frames + 1, fps, cfg)
    starts = np.array([s[0] for s in segments], dtype=np.int64)
    seg_of = np.searchsorted(starts, frame_us, side="right") - 1
    chunks = []
    for k in range(n_frames + 1):
        t = int(frame_us[k])
        j = int(seg_of[k])
        rel = t - starts[j] if j >= 0 else -1
        if j >= 0 and 0 <= rel <= segments[j][3]:
            _, cls, rep, length = segments[j]
            p = pose(cls, style, rel * 1e-6, rep, length * 1e-6)
        else:
            p = rest
        img = ren.view(p, t * 1e-6, offsets[k], scene.passersby)
        if k == 0:
            emu.reset(img, t0_us + t)
        else:
            ev = emu.step(img, t0_us + t)
            if ev.size:
                chunks.append(ev)
    t_end = t0_us + int(frame_us[-1])
    chunks.append(hot_pixel_events(rngs["hot_events"], scene, t0_us, t_end))
    chunks.append(background_activity(rngs["noise_events"], scene.noise_hz, t0_us, t_end))
    events = np.concatenate(chunks)
    events = events[np.argsort(events["t"], kind="stable")]
    labels = [(cls + 1, t0_us + int(s), t0_us + int(s) + length) for s, cls, _, length in segments]
    return events, labels, hp.start_time
