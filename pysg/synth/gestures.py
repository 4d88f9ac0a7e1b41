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

The code: :mod:`pysg.synth.style` (UserStyle, Repetition, lighting), :mod:`pysg.synth.pose`
(the kinematics), :mod:`pysg.synth.renderer` (the frames); every name is importable from here.
"""
from __future__ import annotations

from pysg.synth.pose import Pose, pose, rest_pose
from pysg.synth.renderer import Renderer, frames, render
from pysg.synth.style import LIGHTING_PARAMS, N_CLASSES, Repetition, UserStyle  # noqa: F401 - N_CLASSES: public here too

__all__ = [
    "LIGHTING_PARAMS", "UserStyle", "Repetition", "Pose", "Renderer",
    "pose", "rest_pose", "render", "frames",
]
