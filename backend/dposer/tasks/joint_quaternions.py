"""Joint rotations as time series of unit quaternions, for finding and repairing mocap faults (:mod:`.cleaning`):
axis-angle <-> sign-continuous quaternions, angles between them, and each joint composed with its ancestors."""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from ..spec import layout


def to_quaternions(aa: np.ndarray) -> np.ndarray:
    """(F, J, 3) axis-angle -> (F, J, 4) unit quaternions (x, y, z, w), sign-continuous in time."""
    F, J, _ = aa.shape
    return _continuous(Rotation.from_rotvec(aa.reshape(-1, 3)).as_quat().reshape(F, J, 4))


def _continuous(q: np.ndarray) -> np.ndarray:
    """(F, J, 4) quaternions with signs flipped so that each joint's stay on one hemisphere from frame to frame."""
    dots = np.einsum("fjc,fjc->fj", q[1:], q[:-1])
    sign = np.concatenate([np.ones((1, q.shape[1])), np.cumprod(np.where(dots < 0, -1.0, 1.0), axis=0)])
    return q * sign[..., None]


def from_quaternions(q: np.ndarray) -> np.ndarray:
    F, J, _ = q.shape
    return Rotation.from_quat(q.reshape(-1, 4)).as_rotvec().reshape(F, J, 3)


def _angle(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Rotation angle (radians) between quaternions on the same hemisphere (|q1 - q2| = 2 sin(theta / 4))."""
    return 4 * np.arcsin(np.clip(np.linalg.norm(q1 - q2, axis=-1) / 2, 0, 1))


def _unit(q: np.ndarray) -> np.ndarray:
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def chain_parents(joints: list) -> np.ndarray:
    """(J,) for each joint (by name) the index in ``joints`` of its nearest ancestor among them, -1 if none."""
    pos = {layout.JOINT_INDEX[n]: i for i, n in enumerate(joints)}
    out = np.full(len(joints), -1)
    for i, n in enumerate(joints):
        a = layout.PARENTS[layout.JOINT_INDEX[n]]
        while a >= 0 and a not in pos:
            a = layout.PARENTS[a]
        out[i] = pos.get(a, -1)
    return out


def chained(q: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """(F, J, 4) each joint's rotation composed with its ancestors' among the examined joints (its orientation in
    the frame of the topmost one's parent: a leg's in the pelvis's), sign-continuous in time."""
    F, J, _ = q.shape
    out = q.copy()
    done = parents < 0
    while not done.all():  # parents before children, whatever the order of the joints
        for j in np.nonzero(~done & done[np.maximum(parents, 0)])[0]:
            out[:, j] = (Rotation.from_quat(out[:, parents[j]]) * Rotation.from_quat(q[:, j])).as_quat()
            done[j] = True
    return _continuous(out)
