# SPDX-License-Identifier: GPL-3.0-or-later
"""The math of SMPL-X Armature from Take (no bpy): a calibrated rig's take, read per frame as SMPL-X rotations and
its pelvis' world position, becomes keys of a DPoser (SMPL-X) armature placed beside it.

- Rotations: the take's SMPL-X local rotations (what every job reads through the rig's bone map and calibration)
  drive the new armature's body bones through its own :class:`.retarget.Retarget`; joints the take's rig does not
  drive (fingers, jaw, eyes, a spine joint it lacks) stay at rest, ready for Complete.
- Placement: the new armature's object turns like the take's (the SMPL-X frame in the world is the same for both),
  so the root's global orientation carries over as is.
- Root motion: the pelvis follows the take's pelvis in the world, scaled by the ratio of the two skeletons' leg
  lengths (a take in centimetres, or a taller actor, moves the SMPL-X body by as much as its own legs would).
"""
from __future__ import annotations

import numpy as np

from . import retarget as rm

BODY_JOINTS = rm.JOINT_NAMES[:22]  # pelvis .. wrists: the bones the new armature gets keys for
LEG = ("left_hip", "left_knee", "left_ankle")


def object_rotation(source_rotation, source_C) -> np.ndarray:
    """World rotation (3, 3) of the new armature's object so that the SMPL-X frame sits in the world as it does for
    the source rig: ``R_new C_ZUP = R_source C_source`` (an FBX rig's X+90 object gives the identity)."""
    r = rm.orthonormalize(np.asarray(source_rotation, dtype=np.float64)[:3, :3])
    return rm.orthonormalize(r @ np.asarray(source_C, dtype=np.float64) @ rm.C_ZUP.T)


def leg_scale(source_joints: dict[str, np.ndarray], smplx_joints: np.ndarray) -> float:
    """SMPL-X leg length over the source rig's (hip -> knee -> ankle, world rest positions); 1 when the source rig
    lacks a leg joint or its leg has no length."""
    if not all(j in source_joints for j in LEG):
        return 1.0
    src = sum(float(np.linalg.norm(np.asarray(source_joints[b]) - np.asarray(source_joints[a])))
              for a, b in zip(LEG[:-1], LEG[1:]))
    idx = [rm.JOINT_INDEX[j] for j in LEG]
    ref = sum(float(np.linalg.norm(smplx_joints[b] - smplx_joints[a])) for a, b in zip(idx[:-1], idx[1:]))
    return ref / src if src > 1e-9 else 1.0


def pelvis_locations(pelvis_world, source_origin, new_origin, new_rotation, scale: float, rest_head, rest_rotation
                     ) -> np.ndarray:
    """(F, 3) pose-bone locations of the new armature's pelvis (its parent, the root bone, unposed) that put its
    head at ``new_origin + scale * (pelvis_world - source_origin)`` in the world.

    Blender: a pose bone's armature-space head is ``rest_head + rest_rotation @ location`` when its parent is at
    rest; the armature space is the world turned by ``new_rotation`` about ``new_origin`` (scale 1)."""
    p = np.asarray(pelvis_world, dtype=np.float64)
    world = np.asarray(new_origin, dtype=np.float64) + scale * (p - np.asarray(source_origin, dtype=np.float64))
    arm = (world - np.asarray(new_origin, dtype=np.float64)) @ np.asarray(new_rotation, dtype=np.float64)
    return (arm - np.asarray(rest_head, dtype=np.float64)) @ np.asarray(rest_rotation, dtype=np.float64)


def body_rotations(smplx_rotations) -> np.ndarray:
    """(F, 55, 3, 3) SMPL-X local rotations with every joint but the body's (pelvis .. wrists) at rest."""
    R = np.array(smplx_rotations, dtype=np.float64)
    R[:, len(BODY_JOINTS):] = np.eye(3)
    return R
