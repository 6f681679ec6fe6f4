"""A seeded model of the faults real optical mocap has, injected into a clip of SMPL-X body rotations.

Used by ``dposer bench clean`` and the tests to measure cleaning against a known truth. Every fault is applied in
rotation space (R' = R exp(delta), joint-local), on the 21 body joints:

- jitter: per-channel Gaussian rotation noise on every joint and frame (``jitter_deg`` per axis);
- spike: one frame of one bone off by 20-40 deg (a marker swapped for one frame);
- pop: 3-8 frames of one bone off by a constant 15-30 deg rotation (a marker mislabelled for a few frames);
- gap: 15-30 frames of one limb held at its last value (optical systems on marker dropout), then it jumps back;
- limit break: 3-8 frames of a knee or elbow bent 25-50 deg backwards (a flipped IK solution).

Faults are placed at least ``margin`` frames from the clip's ends and never on a (frame, joint) cell another
fault already holds. The fault mask marks the cells the faults changed (jitter, which is everywhere, is not a
fault cell).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from ..spec import layout

BODY = layout.VECTOR_JOINTS[:21]  # the body joints of body_pose, in order
LIMBS = {"left_arm": ("left_shoulder", "left_elbow", "left_wrist"),
         "right_arm": ("right_shoulder", "right_elbow", "right_wrist"),
         "left_leg": ("left_hip", "left_knee", "left_ankle", "left_foot"),
         "right_leg": ("right_hip", "right_knee", "right_ankle", "right_foot")}
KINDS = ("spike", "pop", "gap", "limit")


@dataclass
class FaultModel:
    jitter_deg: float = 1.5
    spikes_per_100: float = 2.0  # events per 100 frames (at least one of each kind whose rate is > 0)
    pops_per_100: float = 1.0
    gaps_per_100: float = 0.5
    limits_per_100: float = 0.5
    spike_deg: tuple = (20.0, 40.0)
    pop_deg: tuple = (15.0, 30.0)
    pop_frames: tuple = (3, 8)
    gap_frames: tuple = (15, 30)
    limit_deg: tuple = (25.0, 50.0)
    limit_frames: tuple = (3, 8)
    margin: int = 3

    @property
    def min_frames(self) -> int:
        """The shortest clip the model can place every kind of fault in."""
        return 2 * self.margin + max(self.gap_frames[1], self.pop_frames[1], self.limit_frames[1]) + 1


@dataclass
class Faulty:
    body_pose: np.ndarray  # (F, 63) the faulty clip
    mask: np.ndarray  # (F, 21) bool: cells a fault changed
    events: list = field(default_factory=list)  # (kind, joint name(s), first frame, last frame)

    @property
    def fault_frames(self) -> np.ndarray:
        return self.mask.any(1)


def _count(rate: float, frames: int) -> int:
    return 0 if rate <= 0 else max(1, int(round(rate * frames / 100)))


def _random_rotvec(rng, deg_range, n=1) -> np.ndarray:
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    return axis * np.radians(rng.uniform(*deg_range, size=(n, 1)))


def _compose(aa: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """R(aa) @ R(delta), as axis-angle (joint-local perturbation)."""
    return (Rotation.from_rotvec(aa.reshape(-1, 3)) * Rotation.from_rotvec(delta.reshape(-1, 3))).as_rotvec().reshape(aa.shape)


def inject(body_pose: np.ndarray, seed: int = 0, model: FaultModel | None = None) -> Faulty:
    """Faulty copy of ``body_pose`` (F, 63) axis-angle; the input is not changed."""
    m = model or FaultModel()
    pose = np.asarray(body_pose, dtype=np.float64).reshape(len(body_pose), 21, 3).copy()
    F = len(pose)
    if F < m.min_frames:
        raise ValueError(f"a clip of {F} frames is too short for the fault model")
    rng = np.random.default_rng(seed)
    mask = np.zeros((F, 21), bool)
    events = []
    if m.jitter_deg > 0:
        pose = _compose(pose, rng.normal(scale=np.radians(m.jitter_deg), size=pose.shape))
    J = {j: i for i, j in enumerate(BODY)}

    def place(joints, lengths, tries=50):
        """A free window (first, last) for these joints, or None."""
        for _ in range(tries):
            n = int(rng.integers(lengths[0], lengths[1] + 1))
            a = int(rng.integers(m.margin, F - m.margin - n + 1))
            # keep a clean frame either side so faults do not merge
            if not mask[max(0, a - 1):a + n + 1, joints].any():
                return a, a + n - 1
        return None

    for _ in range(_count(m.gaps_per_100, F)):  # gaps first: they hold the (jittered) last value
        limb = list(LIMBS)[rng.integers(len(LIMBS))]
        idx = [J[j] for j in LIMBS[limb]]
        w = place(idx, m.gap_frames)
        if w:
            a, b = w
            pose[a:b + 1, idx] = pose[a - 1, idx]
            mask[a:b + 1, idx] = True
            events.append(("gap", limb, a, b))
    hinges = list(layout.HINGE_AXES)
    for _ in range(_count(m.limits_per_100, F)):
        joint = hinges[rng.integers(len(hinges))]
        w = place([J[joint]], m.limit_frames)
        if w:
            a, b = w
            axis = np.asarray(layout.HINGE_AXES[joint])
            theta = np.radians(rng.uniform(*m.limit_deg))
            aa = pose[a:b + 1, J[joint]]
            pose[a:b + 1, J[joint]] = aa - ((aa @ axis) + theta)[:, None] * axis  # flexion -> -theta
            mask[a:b + 1, J[joint]] = True
            events.append(("limit", joint, a, b))
    for kind, rate, lengths, degs in (("pop", m.pops_per_100, m.pop_frames, m.pop_deg),
                                      ("spike", m.spikes_per_100, (1, 1), m.spike_deg)):
        for _ in range(_count(rate, F)):
            j = int(rng.integers(21))
            w = place([j], lengths)
            if w:
                a, b = w
                pose[a:b + 1, j] = _compose(pose[a:b + 1, j], np.repeat(_random_rotvec(rng, degs), b - a + 1, 0))
                mask[a:b + 1, j] = True
                events.append((kind, BODY[j], a, b))
    return Faulty(pose.reshape(F, 63).astype(np.float32), mask, sorted(events, key=lambda e: e[2]))
