"""Hands over a take: the best estimate of a hidden hand and hypotheses that move like fingers.

Clip completion (:func:`dposer.tasks.complete` with ``clip=True``) fills a hand that is missing on every frame of
a take from this model instead of the prior, whose frames agree only by being frozen:

- **Best estimate**: a constant hand, moved toward the mirrored other hand where that hand is known, per finger by a
  weight learned on EgoBody (the only data with both hands): mostly toward the other hand's slow trend over the take
  (its shape, which a subject's two hands share), and by ``fast_factor`` of that toward its quick motion (which on
  its own predicts little). It is a smooth trajectory, so it never flickers.
- **Hypotheses**: the best estimate plus a smooth Gaussian-process motion in the hand training set's PCA space
  (amplitude and timescale from real finger motion), so each hypothesis is one coherent, lively finger motion
  over the take; their mean over the K hypotheses is the best estimate exactly. The motion's clock runs at the
  hand's *liveliness*: the same side's wrist speed (observed, low-passed) over the wrist speed of the take the
  dynamics were fitted on, so a hand on a gesturing arm runs through its shapes fast and one on a resting arm
  holds its shape; the spread of shapes (what is unknown about the hand) is the same either way. Without an
  observed arm the clock runs at the fitted pace.

Every fitted number is in ``hands_model.json``, written by :mod:`dposer.train.hands_fit` (which says what saw which
data). Hands here are 45-D axis-angle in right-hand convention unless a side is named.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..spec import layout, rotations

MODEL_FILE = Path(__file__).with_name("hands_model.json")
# The other hand's slow trend: a Gaussian low-pass of this many seconds (the time over which a hand keeps its
# shape while it gestures; a take shorter than a few seconds reduces to the other hand's mean shape). Set, not tuned.
SLOW_S = 2.0
SIDES = ("left_hand", "right_hand")
# The wrist's speed is low-passed over this many seconds (about one phase of a gesture), and the liveliness it
# gives is at most LIVELY_MAX times the fitted pace (bounds a spinning or jittering wrist). Set, not tuned.
ARM_S = 0.5
LIVELY_MAX = 4.0
# Grid points per sigma of the Gaussian the motion's white noise is convolved with (on its own clock, in seconds).
GRID_PER_SIGMA = 4


@dataclass(frozen=True)
class HandModel:
    basis: np.ndarray  # (C, 45) PCA directions of the hand training set
    variances: np.ndarray  # (C,)
    constant: np.ndarray  # (45,) the estimate when the other hand is unknown
    other_weight: np.ndarray  # (45,) how far toward the other hand's slow trend
    fast_factor: float  # the share of that weight given to the other hand's quick motion
    amplitude: float  # within-take variance as a fraction of ``variances``
    timescale_s: float  # squared-exponential timescale of the hypotheses' motion
    wrist_speed: float  # deg/s: the low-passed wrist speed at which the motion runs at its fitted pace

    @staticmethod
    @functools.lru_cache(maxsize=1)
    def load(path: str | None = None) -> "HandModel":
        d = json.loads(Path(path or MODEL_FILE).read_text())
        a = {k: np.asarray(d[k], np.float64) for k in ("basis", "variances", "constant", "other_weight")}
        return HandModel(**a, fast_factor=float(d["fast_factor"]), amplitude=float(d["amplitude"]),
                         timescale_s=float(d["timescale_s"]), wrist_speed=float(d["wrist_speed"]))


def lowpass_np(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass of (F, D) along F (sigma in frames); the kernel renormalised at the ends."""
    x = np.asarray(x, np.float64)
    if sigma <= 0 or len(x) < 2:
        return x.copy()
    r = min(int(math.ceil(3 * sigma)), len(x) - 1)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    pad = np.pad(x, ((r, r), (0, 0)))
    ones = np.pad(np.ones(len(x)), r)
    num = np.stack([np.convolve(pad[:, d], k, mode="valid") for d in range(x.shape[1])], 1)
    return num / np.convolve(ones, k, mode="valid")[:, None]


def _fps(fps: float | None) -> float:
    fps = 30.0 if fps is None else float(fps)
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    return fps


def best_estimate(frames: int, other: np.ndarray | None, fps: float | None = None,
                  model: HandModel | None = None) -> np.ndarray:
    """(F, 45) best estimate of a hidden hand over a take; ``other``: the other hand (F, 45) mirrored into this
    hand's convention, or None when unknown."""
    m = model or HandModel.load()
    if other is None:
        return np.broadcast_to(m.constant, (frames, 45)).copy()
    other = np.asarray(other, np.float64)
    if other.shape != (frames, 45) or not np.isfinite(other).all():
        raise ValueError(f"the other hand must be ({frames}, 45) finite values, got {other.shape}")
    slow = lowpass_np(other, SLOW_S * _fps(fps))
    c, w = m.constant, m.other_weight
    return c + w * (slow - c) + m.fast_factor * w * (other - slow)


def joint_speed(rotation: np.ndarray, fps: float | None = None) -> np.ndarray:
    """(F,) angular speed (deg/s) of one joint's local rotation (F, 3) axis-angle, per frame (the mean of the steps
    on either side), low-passed over ``ARM_S`` seconds."""
    fps = _fps(fps)
    q = rotations.axis_angle_to_quaternion(np.asarray(rotation, np.float64))
    if len(q) < 2:
        return np.zeros(len(q))
    step = np.degrees(2 * np.arccos(np.clip(np.abs((q[1:] * q[:-1]).sum(-1)), 0.0, 1.0))) * fps
    per_frame = np.concatenate([step[:1], 0.5 * (step[1:] + step[:-1]), step[-1:]])
    return lowpass_np(per_frame[:, None], ARM_S * fps)[:, 0]


def liveliness(vectors: np.ndarray, free: np.ndarray, side: str, fps: float | None = None,
               model: HandModel | None = None) -> np.ndarray | None:
    """(F,) how fast the hand in ``side`` moves over the fitted pace, from its wrist's observed speed; None when
    the wrist is free or not a number on some frame, never moves from a rig's rest (all zeros) or the take has one
    frame."""
    m = model or HandModel.load()
    sl = layout.joint_vector_slice(side.replace("_hand", "_wrist"))
    wrist = np.asarray(vectors)[:, sl].astype(np.float64)
    if len(wrist) < 2 or np.asarray(free)[:, sl].any() or not wrist.any() or not np.isfinite(wrist).all():
        return None
    return np.minimum(joint_speed(wrist, fps) / m.wrist_speed, LIVELY_MAX)


def motion(k: int, frames: int, fps: float | None = None, seed: int = 0, model: HandModel | None = None,
           lively: np.ndarray | None = None) -> np.ndarray:
    """(K, F, 45) smooth finger motions around zero: a squared-exponential Gaussian process per PCA direction
    (white noise on a grid convolved with a Gaussian, read at each frame's time on the motion's own clock), centred
    over the K hypotheses when K > 1 so their mean is zero. ``lively`` (F,): the clock's rate per frame (1, the
    default, is the fitted pace; 0 holds the shape); the spread is the same at any rate."""
    m = model or HandModel.load()
    fps = _fps(fps)
    rate = np.ones(frames) if lively is None else np.asarray(lively, np.float64)
    if rate.shape != (frames,) or not np.isfinite(rate).all() or (rate < 0).any():
        raise ValueError(f"lively must be ({frames},) finite values >= 0, got {rate.shape}")
    if frames == 0:
        return np.zeros((k, 0, 45))
    clock = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]))])[:frames] / fps  # seconds
    sigma = m.timescale_s / math.sqrt(2.0)  # a Gaussian of sigma gives a kernel of timescale sigma*sqrt2
    h = sigma / GRID_PER_SIGMA
    r = int(math.ceil(3 * GRID_PER_SIGMA))
    near = np.floor(clock / h).astype(np.int64)[:, None] + np.arange(-r, r + 2)  # (F, W) grid points around
    g = np.exp(-0.5 * ((clock[:, None] - near * h) / sigma) ** 2)
    g /= np.sqrt((g ** 2).sum(1, keepdims=True))  # unit variance
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((k, len(m.variances), int(near.max()) + r + 1))
    z = np.stack([np.einsum("cfw,fw->cf", w[:, near + r], g) for w in white])  # (K, C, F)
    if k > 1:
        z = (z - z.mean(0, keepdims=True)) * math.sqrt(k / (k - 1))
    z *= np.sqrt(m.amplitude * m.variances)[None, :, None]
    return np.einsum("kcf,cd->kfd", z, m.basis)


def _known(vectors: np.ndarray, free: np.ndarray, side: str) -> np.ndarray | None:
    """The hand in ``side`` if it is observed on every frame and not a rig at rest (all zeros), else None."""
    sl = layout.PART_SLICES[side]
    if free[:, sl].any():
        return None
    hand = vectors[:, sl].astype(np.float64)
    return None if not hand.any() else hand


def clip_hands(vectors: np.ndarray, free: np.ndarray, k: int, fps: float | None = None, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Fill every hand that is free on all frames of a take.

    ``vectors`` (F, 256) and ``free`` (F, 256) as in :func:`dposer.tasks.complete`. Returns None when no hand is
    wholly free, else (dims (D,) of the filled hands in the 256-D vector, best (F, D), hypotheses (K, F, D))."""
    vectors, free = np.asarray(vectors), np.asarray(free, bool)
    sides = [s for s in SIDES if free[:, layout.PART_SLICES[s]].all()]
    if not sides:
        return None
    dims, best, hyps = [], [], []
    for i, side in enumerate(sides):
        other = SIDES[1 - SIDES.index(side)]
        known = _known(vectors, free, other)
        flip = layout.mirror_hand if side == "left_hand" else (lambda h: h)  # right convention <-> this side
        # the other hand in right-hand convention, where this hand is estimated: a left hand mirrored; a right
        # hand as it is (this left hand is estimated as its mirror image, a right hand)
        other_rc = None if known is None else (layout.mirror_hand(known) if other == "left_hand" else known)
        est = best_estimate(len(vectors), other_rc, fps)
        lively = liveliness(vectors, free, side, fps)
        moves = est[None] + motion(k, len(vectors), fps, seed=seed * 2 + i, lively=lively)
        sl = layout.PART_SLICES[side]
        dims.append(np.arange(sl.start, sl.stop))
        best.append(flip(est))
        hyps.append(flip(moves))
    return np.concatenate(dims), np.concatenate(best, 1), np.concatenate(hyps, 2)
