"""Shared helpers of the add-on's rig-math tests (tests/test_rotations_blender.py, test_smplx_skeleton.py,
test_retarget.py, blender/test_profile_math.py): an independent Rodrigues reference, random rotations, and an A-pose
rig with arbitrary bone orientations and its true calibration."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from blender_dposer import retarget  # noqa: E402
from dposer.spec import rotations as rot  # noqa: E402
from dposer.spec import skeleton as sk  # noqa: E402

C = retarget.C_ZUP


def rodrigues(aa: np.ndarray) -> np.ndarray:
    """Independent reference: R = I + sin(t) K + (1 - cos(t)) K^2."""
    aa = np.asarray(aa, dtype=np.float64)
    out = np.empty(aa.shape[:-1] + (3, 3))
    for idx in np.ndindex(aa.shape[:-1]):
        v = aa[idx]
        t = np.linalg.norm(v)
        if t < 1e-15:
            out[idx] = np.eye(3)
            continue
        k = v / t
        K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        out[idx] = np.eye(3) + np.sin(t) * K + (1 - np.cos(t)) * K @ K
    return out


def random_aa(rng, *shape, max_angle=np.pi):
    axis = rng.normal(size=shape + (3,))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    return axis * rng.uniform(0, max_angle, shape + (1,))


def random_rotations(rng, *shape):
    return rodrigues(random_aa(rng, *shape))


def angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Geodesic angle between rotation matrices."""
    return np.linalg.norm(rot.matrix_to_axis_angle(rot.transpose(a) @ b), axis=-1)


# ---------------------------------------------------------------------------------------------------------
# Formula (b) on an A-pose rig with arbitrary rest orientations.

A_POSE = {"left_shoulder": rot.rot_z(-0.8), "right_shoulder": rot.rot_z(0.8),
          "left_hip": rot.rot_z(0.15), "right_hip": rot.rot_z(-0.15)}


def apose_rig(rng, scale: float = 1.0):
    """An A-pose rig built from the built-in skeleton: SMPL-X-named bones plus two unmapped bones ('root' above the
    pelvis, 'spine_helper' between spine2 and spine3 with its head at spine3's), armature Z-up, bones pointing at a
    child (or anywhere) with random rolls, some with entirely random rest orientations. Returns (rig, R_A, M_true)."""
    R_A = np.tile(np.eye(3), (55, 1, 1))
    for name, r in A_POSE.items():
        R_A[sk.JOINT_INDEX[name]] = r
    G_A, J_A = sk.smplx_fk(R_A)
    heads = (J_A @ C.T) * scale
    first_child = {}
    for j, p in enumerate(sk.PARENTS):
        first_child.setdefault(p, j)
    B = np.empty((55, 3, 3))
    for j in range(55):
        if j % 3 == 2:
            B[j] = random_rotations(rng)  # arbitrary orientation
        else:
            d = heads[first_child[j]] - heads[j] if j in first_child else rng.normal(size=3)
            B[j] = retarget.bone_matrix_from_head_tail_roll(np.zeros(3), d, rng.uniform(-np.pi, np.pi))
    names = ["root"] + list(sk.JOINT_NAMES) + ["spine_helper"]
    parents = [None] + ["root" if p < 0 else sk.JOINT_NAMES[p] for p in sk.PARENTS] + ["spine2"]
    parents[1 + sk.JOINT_INDEX["spine3"]] = "spine_helper"
    rest = np.concatenate([retarget.matrix_4x4(random_rotations(rng), [0.0, 0.0, 0.0])[None],
                           retarget.matrix_4x4(B, heads),
                           retarget.matrix_4x4(random_rotations(rng), heads[sk.JOINT_INDEX["spine3"]])[None]])
    rig = retarget.Rig(names, parents, rest)
    # bone k's orientation in the SMPL-X zero pose: undo the A-pose's global rotation
    M_true = {sk.JOINT_NAMES[j]: C @ G_A[j].T @ C.T @ B[j] for j in range(55)}
    return rig, R_A, M_true


def zero_pose_basis(rig, R_A):
    """What an artist keys to put the A-pose rig in the SMPL-X zero pose: the inverse A rotations at the shoulders
    and hips, through formula (a) relative to the rig's own rest (only those four bones move)."""
    L = rig.identity_basis()
    for name in A_POSE:
        k = rig.index[name]
        L[k] = retarget.smplx_to_local(R_A[sk.JOINT_INDEX[name]].T, rig.rest_rot[k], C)
    return L
