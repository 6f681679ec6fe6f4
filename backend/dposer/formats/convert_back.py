"""A task's SMPL-X result written back onto a BVH take's own skeleton: the inverse of :mod:`dposer.formats.convert` for a
changed take (``dposer batch`` writes cleaned / completed BVH takes with it). NumPy + SciPy, no torch.

How: :func:`dposer.formats.convert.convert_bvh` aims each body joint of the built-in skeleton so that its bones point where
the take's bones point. A task then turns those joints' world rotations from G to G'. The same world-space turn
D = G' G^T is applied to the BVH joint mapped to that SMPL-X joint (Q' = D Q, in the take's own axes), so the take's
bones turn exactly as the built-in skeleton's did, and a bone that pointed where the SMPL-X bone pointed still
does (to the conversion's fit error). Unmapped BVH joints (extra spine or helper joints, a Bandai ``joint_Root``,
fingers) keep their local rotation and ride along with their parent; every position channel (root motion,
Bandai's per-joint translations) is kept, as the tasks keep the translation.

A changed rotation is written in the joint's own channel order as the Euler angles nearest the file's (the
equivalent triple and multiples of 360 degrees are picked per frame, so nothing flips), rounded to 1e-6 degree.
Channels whose local rotation did not change keep their values bit for bit (a task that left the body alone, such
as completing the hands, gives back the file's motion unchanged).

Not carried back: anything the take has no mapped joint for. Convert maps the 22 body joints only, so completed
hands, jaw and face stay in the SMPL-X result (``dposer batch`` writes it beside the BVH).
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial.transform import Rotation

from . import convert
from .bvh import Bvh, BvhError

_T = (0, 1, 3, 2)  # transpose of stacked (F, J, 3, 3) matrices


def world_rotations(global_orient: np.ndarray, body_pose: np.ndarray) -> np.ndarray:
    """World rotations (F, 22, 3, 3) of the built-in skeleton's body joints for axis-angle poses."""
    n = len(body_pose)
    local = np.concatenate([np.asarray(global_orient, np.float64).reshape(n, 1, 3),
                            np.asarray(body_pose, np.float64).reshape(n, 21, 3)], 1)
    R = Rotation.from_rotvec(local.reshape(-1, 3)).as_matrix().reshape(n, convert.NB, 3, 3)
    G = np.empty_like(R)
    G[:, 0] = R[:, 0]
    for j in range(1, convert.NB):
        G[:, j] = G[:, convert.PARENT[j]] @ R[:, j]
    return G


def euler_near(R: np.ndarray, order: str, ref: np.ndarray) -> np.ndarray:
    """Intrinsic Euler angles (F, 3), degrees, of rotations R (F, 3, 3) in ``order`` (e.g. 'ZXY'), picked per
    frame among the equivalent triples (and their 360-degree turns) as the one nearest ``ref`` (F, 3)."""
    with warnings.catch_warnings():  # gimbal lock: SciPy still returns a valid triple
        warnings.simplefilter("ignore", UserWarning)
        e = Rotation.from_matrix(R).as_euler(order, degrees=True)
    alt = e + np.array([180.0, 0.0, 180.0])
    alt[:, 1] = -e[:, 1] if order[0] == order[2] else 180.0 - e[:, 1]  # proper Euler / Tait-Bryan twin
    cands = [c + 360.0 * np.round((ref - c) / 360.0) for c in (e, alt)]
    pick = np.abs(cands[1] - ref).sum(1) < np.abs(cands[0] - ref).sum(1)
    return np.where(pick[:, None], cands[1], cands[0])


def apply_to_bvh(take: Bvh, bone_map: dict[str, str], before: dict, after: dict) -> Bvh:
    """The take with the change from ``before`` to ``after`` (dicts with ``global_orient`` (F, 3) and
    ``body_pose`` (F, 63): the take's conversion and a task's result) applied to its mapped joints.
    ``bone_map``: {SMPL-X joint: BVH joint name}, as the conversion used (its ``bone_map``)."""
    F = take.num_frames
    for name, d in (("before", before), ("after", after)):
        for key, width in (("global_orient", 3), ("body_pose", 63)):
            if np.shape(d[key]) != (F, width):
                raise ValueError(f"{name}[{key!r}] has shape {np.shape(d[key])}; the take has {F} frames")
    _, info = convert.mapped_take(take, bone_map)
    A = info["up_rotation"]  # file axes -> the Y-up frame the SMPL-X poses live in
    D = world_rotations(after["global_orient"], after["body_pose"]) \
        @ world_rotations(before["global_orient"], before["body_pose"]).transpose(_T)
    D = A.T @ D @ A  # the same turns in the file's axes
    joint_of = {take.index(b): convert.J[j] for j, b in bone_map.items()}
    rot, _ = take.local_transforms()
    glob, _ = take.global_transforms()
    new_glob, new_local = np.empty_like(glob), rot.copy()
    for k, jt in enumerate(take.joints):
        parent = new_glob[:, jt.parent] if jt.parent >= 0 else None
        if k in joint_of:
            new_glob[:, k] = D[:, joint_of[k]] @ glob[:, k]
            new_local[:, k] = new_glob[:, k] if parent is None else parent.transpose(0, 2, 1) @ new_glob[:, k]
        else:
            new_glob[:, k] = rot[:, k] if parent is None else parent @ rot[:, k]
    motion = take.motion.copy()
    col = 0
    for k, jt in enumerate(take.joints):
        cols = {c.lower(): col + i for i, c in enumerate(jt.channels)}
        col += len(jt.channels)
        if k not in joint_of:
            continue
        changed = np.flatnonzero(np.linalg.norm(new_local[:, k] - rot[:, k], axis=(1, 2)) > 1e-9)
        if not len(changed):
            continue
        order = jt.rotation_order
        if len(order) != 3:
            raise BvhError(f"joint {jt.name!r} has rotation channels {order or 'none'}: writing a changed rotation "
                           "back needs three")
        idx = [cols[a.lower() + "rotation"] for a in order]
        sel = np.ix_(changed, idx)
        motion[sel] = np.round(euler_near(new_local[changed, k], order, motion[sel]), 6)
    return Bvh(take.joints, take.frame_time, motion)
