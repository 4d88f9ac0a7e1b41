# SPDX-License-Identifier: MIT
"""The scoring rule: which steps of a sample count towards its prediction.

A sample's scores are its logits summed over the scored steps; its prediction is the
argmax (the smallest index on ties; -1 before any step). Each model kind has one rule
(`pysg.engines` attaches it to the kind), and every engine, job, the device client and
the trainer's evaluation read it from here:

* SpikingGamma networks (float and int8) skip the first floor(0.2 T) of a sample's T
  steps: their buckets still fill up there (the trainer's loss skips the same steps);
* imported int8 networks score every step that sees a whole input window: the runtime
  (and `pysg.qnet.QnetRef`) skip the first W - 1 steps themselves (docs/FORMAT.md 8), so
  their rule skips nothing more.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ScoringRule", "SPIKING_GAMMA", "WHOLE_WINDOW", "WARMUP", "first_scored_step", "scores",
           "decision_at"]

WARMUP = 0.2  # the SpikingGamma warm-up fraction


@dataclass(frozen=True)
class ScoringRule:
    """Score a sample of T steps from step floor(warmup T) on."""
    warmup: float

    def first_step(self, n_steps: int) -> int:
        return first_scored_step(n_steps, self.warmup)


SPIKING_GAMMA = ScoringRule(WARMUP)
WHOLE_WINDOW = ScoringRule(0.0)


def first_scored_step(n_steps: int, warmup: float = WARMUP) -> int:
    """floor(warmup x n_steps): the first step whose logits are summed."""
    return int(math.floor(warmup * n_steps))


def scores(logits: np.ndarray, lengths: np.ndarray, warmup: float = WARMUP) -> np.ndarray:
    """(B, n_classes) int64 of a batch's (T, B, n_classes) integer logits: each sample's
    logits summed over steps floor(warmup len) .. len - 1."""
    t_steps = logits.shape[0]
    t = np.arange(t_steps)[:, None]
    lengths = np.asarray(lengths)
    live = (t >= np.floor(warmup * lengths)[None, :]) & (t < lengths[None, :])
    return np.einsum("tb,tbc->bc", live.astype(np.int64), logits.astype(np.int64))


def decision_at(logits: np.ndarray, rule: ScoringRule, n_steps: int) -> int:
    """The prediction of a sample cut after its first `n_steps` steps (all of them if it
    has fewer): the rule applied to that shorter sample, as if the gesture had ended there.
    `logits` is the sample's (T, n_classes) per-step logits; the model is causal, so its
    first steps do not depend on what comes later. -1 when no step is scored yet."""
    n = min(int(n_steps), len(logits))
    first = rule.first_step(n)
    if n <= first:
        return -1
    live = logits[first:n]
    return int(np.argmax(live.astype(np.int64).sum(axis=0) if np.issubdtype(live.dtype, np.integer)
                         else live.sum(axis=0)))
