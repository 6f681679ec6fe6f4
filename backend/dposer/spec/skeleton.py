"""The built-in SMPL-X-shaped skeleton and its NumPy math (no ``bpy``, no torch): the rest offsets, forward
kinematics, hand mirroring, and per-joint axis-angle <-> protocol pose dict. Joint names and parents come from
:mod:`.layout`; :mod:`dposer.core.kinematics` runs the same skeleton in torch.

The rest offsets are APPROXIMATE adult proportions (about 1.75 m tall) authored by hand for this project; they are
not derived from the licensed SMPL-X model. Frame: SMPL-X canonical, metres, +Y up, +Z forward, +X towards the
body's left; rest pose is the SMPL-X zero pose (T-pose, flat hands, palms down).
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from .layout import GROUPS, JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS, PARTS
from .rotations import axis_angle_to_matrix

__all__ = [
    "JOINT_NAMES", "NUM_JOINTS", "PARENTS", "JOINT_INDEX", "MODELLED_JOINTS", "KEY_JOINTS", "REST_OFFSETS",
    "rest_joints", "MIRROR_X", "mirror_hand", "mirror_matrix", "smplx_global_rotations", "smplx_fk",
    "pose_dict_from_joints", "joints_from_pose_dict",
]

# ---------------------------------------------------------------------------------------------------------
# SMPL-X tables.

# Joints DPoser-X models (body 1-21, jaw 22, fingers 25-54); the pelvis (global orient) and the eyes are not.
MODELLED_JOINTS = tuple(JOINT_NAMES[1:23]) + tuple(JOINT_NAMES[25:55])
# Slices of the per-joint (55, 3) array that make up the protocol's pose keys.
KEY_JOINTS = {
    "global_orient": slice(0, 1),
    "body_pose": slice(1, 22),
    "jaw_pose": slice(22, 23),
    "left_hand_pose": slice(25, 40),
    "right_hand_pose": slice(40, 55),
}

_LEFT_OFFSETS = {
    "pelvis": (0.0, 0.93, 0.0),
    "left_hip": (0.085, -0.08, -0.01),
    "spine1": (0.0, 0.11, -0.02),
    "left_knee": (0.035, -0.39, 0.01),
    "spine2": (0.0, 0.135, 0.01),
    "left_ankle": (-0.01, -0.41, -0.04),
    "spine3": (0.0, 0.055, 0.0),
    "left_foot": (0.02, -0.06, 0.12),
    "neck": (0.0, 0.21, -0.03),
    "left_collar": (0.08, 0.12, -0.01),
    "head": (0.0, 0.09, 0.05),
    "left_shoulder": (0.12, 0.03, -0.01),
    "left_elbow": (0.26, -0.01, -0.02),
    "left_wrist": (0.25, 0.01, 0.0),
    "jaw": (0.0, -0.03, 0.04),
    "left_eye_smplhf": (0.03, 0.06, 0.09),
    "left_index1": (0.095, -0.005, 0.025), "left_index2": (0.035, 0.0, 0.0), "left_index3": (0.025, 0.0, 0.0),
    "left_middle1": (0.097, 0.0, 0.002), "left_middle2": (0.037, 0.0, 0.0), "left_middle3": (0.027, 0.0, 0.0),
    "left_pinky1": (0.08, -0.01, -0.04), "left_pinky2": (0.022, 0.0, 0.0), "left_pinky3": (0.018, 0.0, 0.0),
    "left_ring1": (0.09, -0.005, -0.02), "left_ring2": (0.033, 0.0, 0.0), "left_ring3": (0.025, 0.0, 0.0),
    "left_thumb1": (0.025, -0.015, 0.03), "left_thumb2": (0.028, -0.006, 0.022), "left_thumb3": (0.024, 0.0, 0.012),
}


def _rest_offsets() -> np.ndarray:
    out = np.zeros((NUM_JOINTS, 3), dtype=np.float32)
    for i, name in enumerate(JOINT_NAMES):
        if name in _LEFT_OFFSETS:
            out[i] = _LEFT_OFFSETS[name]
        else:  # right side: mirror x of the left joint
            out[i] = _LEFT_OFFSETS["left" + name[len("right"):]]
            out[i, 0] *= -1.0
    return out


# Offset of each joint from its parent (the pelvis' from the origin), SMPL-X frame, metres (float32).
REST_OFFSETS = _rest_offsets()


def rest_joints(offsets: np.ndarray | None = None, dtype=np.float64) -> np.ndarray:
    """(55, 3) joint positions of the zero pose (T-pose, flat hands) in the SMPL-X frame, summed in ``dtype``."""
    offsets = REST_OFFSETS if offsets is None else np.asarray(offsets)
    pos = np.zeros((NUM_JOINTS, 3), dtype=dtype)
    for j, p in enumerate(PARENTS):
        pos[j] = offsets[j] + (pos[p] if p >= 0 else 0.0)
    return pos


# ---------------------------------------------------------------------------------------------------------
# Hand mirroring (the backend's convention, dposer.spec.layout.mirror_hand).

MIRROR_X = np.diag([-1.0, 1.0, 1.0])


def mirror_hand(aa) -> np.ndarray:
    """Mirror hand axis-angles between left and right conventions: ``(x, y, z) -> (x, -y, -z)`` per joint.

    Accepts (..., 45) or (..., 3) arrays; its own inverse. In matrix form it is ``S @ R @ S`` with
    ``S = diag(-1, 1, 1)`` (reflection across the body's sagittal plane). The add-on sends *un-mirrored* SMPL-X
    left-hand rotations; mirroring into the model's right-hand convention is the backend's job (blender.md 1.5e).
    """
    aa = np.asarray(aa)
    if aa.shape[-1] % 3:
        raise ValueError(f"mirror_hand expects (..., 3k) axis-angles, got shape {aa.shape}")
    if aa.dtype.kind != "f":
        aa = aa.astype(np.float64)
    return aa * np.tile(np.array([1.0, -1.0, -1.0], dtype=aa.dtype), aa.shape[-1] // 3)


def mirror_matrix(m) -> np.ndarray:
    """``S @ R @ S`` with ``S = diag(-1, 1, 1)``: the matrix form of :func:`mirror_hand`."""
    return MIRROR_X @ np.asarray(m, dtype=np.float64) @ MIRROR_X


# ---------------------------------------------------------------------------------------------------------
# SMPL-X forward kinematics and pose packing.

def smplx_global_rotations(rotations) -> np.ndarray:
    """Local rotations (..., 55, 3, 3) -> global rotations G (..., 55, 3, 3) over the SMPL-X tree."""
    r = np.asarray(rotations, dtype=np.float64)
    g = np.empty_like(r)
    for j, p in enumerate(PARENTS):
        g[..., j, :, :] = r[..., j, :, :] if p < 0 else g[..., p, :, :] @ r[..., j, :, :]
    return g


def smplx_fk(rotations, offsets=None, translation=None) -> tuple[np.ndarray, np.ndarray]:
    """SMPL-X forward kinematics in NumPy (the test twin of ``dposer.core.kinematics.forward_kinematics``).

    ``rotations``: axis-angle (..., 55, 3) or matrices (..., 55, 3, 3). Returns (global rotations (..., 55, 3, 3),
    joint positions (..., 55, 3)) in the SMPL-X frame; ``translation`` (..., 3) is added to every joint.
    """
    r = np.asarray(rotations, dtype=np.float64)
    if r.shape[-2:] == (NUM_JOINTS, 3):
        r = axis_angle_to_matrix(r)
    off = np.asarray(REST_OFFSETS if offsets is None else offsets, dtype=np.float64)
    g = smplx_global_rotations(r)
    pos = np.zeros(r.shape[:-2] + (3,))
    for j, p in enumerate(PARENTS):
        pos[..., j, :] = off[j] if p < 0 else pos[..., p, :] + g[..., p, :, :] @ off[j]
    if translation is not None:
        pos = pos + np.asarray(translation, dtype=np.float64)[..., None, :]
    return g, pos


def pose_dict_from_joints(aa, joints: Iterable[str] | None = None, dtype=np.float32) -> dict[str, np.ndarray]:
    """Per-joint axis-angle (F, 55, 3) -> a protocol pose ``{key: (F, D)}`` (global_orient, body_pose, jaw_pose,
    left_hand_pose, right_hand_pose). With ``joints`` (the joints the rig drives), a key none of whose joints is
    driven is left out, so the backend treats it as unobserved; eyes are never sent. Undriven joints inside a key
    that is sent (e.g. the fingers of a CMU hand) go as zeros: name them in the request's ``missing``/``free``
    (``bone_maps.undriven_joints(bone_map)``) so the backend fills them in."""
    aa = np.asarray(aa, dtype=np.float64)
    if aa.ndim == 2:
        aa = aa[None]
    driven = None if joints is None else {JOINT_INDEX[j] for j in joints}
    out = {}
    for key, sl in KEY_JOINTS.items():
        idx = range(NUM_JOINTS)[sl]
        if driven is not None and not any(i in driven for i in idx):
            continue
        out[key] = aa[:, sl].reshape(aa.shape[0], -1).astype(dtype)
    return out


def joints_from_pose_dict(pose: Mapping[str, Sequence]) -> np.ndarray:
    """A protocol pose/result ``{key: (F, D)}`` -> per-joint axis-angle (F, 55, 3); missing keys are zeros."""
    rows = None
    for key in KEY_JOINTS:
        if key in pose:
            rows = len(np.atleast_2d(np.asarray(pose[key])))
            break
    if rows is None:
        raise ValueError(f"pose holds none of {', '.join(KEY_JOINTS)}")
    out = np.zeros((rows, NUM_JOINTS, 3))
    for key, sl in KEY_JOINTS.items():
        if key in pose:
            out[:, sl] = np.atleast_2d(np.asarray(pose[key], dtype=np.float64)).reshape(rows, -1, 3)
    return out


# ---------------------------------------------------------------------------------------------------------
# Part / group / joint names of the protocol (docs/protocol.md 2, "Names"): which joints a request's ``missing``
# or ``parts`` names, so the add-on knows which bones it will write (the groups and parts of :mod:`.layout`).

_NAME_JOINTS: dict[str, tuple[str, ...]] = {
    "all": MODELLED_JOINTS,
    "body": tuple(JOINT_NAMES[1:22]),
    "left_hand": tuple(JOINT_NAMES[25:40]),
    "right_hand": tuple(JOINT_NAMES[40:55]),
    "face": ("jaw",),
    "body_pose": tuple(JOINT_NAMES[1:22]),
    "left_hand_pose": tuple(JOINT_NAMES[25:40]),
    "right_hand_pose": tuple(JOINT_NAMES[40:55]),
    "jaw_pose": ("jaw",),
    "expression": (),  # FLAME coefficients: no bone
    **GROUPS,
    **{j: (j,) for j in MODELLED_JOINTS},
}


def split_names(names: str | Iterable[str]) -> list[str]:
    """A comma-separated string (or a list) -> stripped, non-empty names."""
    if isinstance(names, str):
        names = names.split(",")
    return [n for n in (s.strip() for s in names) if n]


def names_to_joints(names: str | Iterable[str]) -> tuple[str, ...]:
    """SMPL-X joints (SMPL-X order) named by part / group / pose-key / joint names, as the backend resolves them
    (``dposer.spec.layout.names_to_dims``). Raises ValueError listing unknown names."""
    found: set[str] = set()
    unknown = []
    for n in split_names(names):
        if n in _NAME_JOINTS:
            found.update(_NAME_JOINTS[n])
        else:
            unknown.append(n)
    if unknown:
        raise ValueError(f"unknown part/group/joint name(s): {', '.join(map(repr, unknown))}; parts: "
                         f"{', '.join(PARTS)}, groups: {', '.join(sorted(GROUPS))}, or an SMPL-X joint name such as "
                         f"'right_pinky1'")
    return tuple(j for j in JOINT_NAMES if j in found)


# The joints a motion (a take's body motion, ``dposer fill``) holds: the root orientation and the 21 body joints.
BODY_MOTION_JOINTS = tuple(JOINT_NAMES[:22])
ROOT_NAMES = ("root", "pelvis", "global_orient")


def body_motion_joints(names: str | Iterable[str]) -> np.ndarray:
    """(22,) bool over :data:`BODY_MOTION_JOINTS` named by ``names``: 'body' = all 22 (the root included), the
    root ('root', 'pelvis', 'global_orient'), a group (its body joints, e.g. 'left_leg') or body joint names.
    Raises ValueError for a name that names no body joint (a hand, an unknown name)."""
    sel = np.zeros(len(BODY_MOTION_JOINTS), dtype=bool)
    bad = []
    for n in split_names(names):
        if n == "body":
            sel[:] = True
        elif n in ROOT_NAMES:
            sel[0] = True
        elif n in BODY_MOTION_JOINTS:
            sel[BODY_MOTION_JOINTS.index(n)] = True
        elif n in GROUPS and any(j in BODY_MOTION_JOINTS for j in GROUPS[n]):
            sel[[BODY_MOTION_JOINTS.index(j) for j in GROUPS[n] if j in BODY_MOTION_JOINTS]] = True
        else:
            bad.append(n)
    if bad:
        groups = sorted(g for g, js in GROUPS.items() if any(j in BODY_MOTION_JOINTS for j in js))
        raise ValueError(f"unknown body part {', '.join(map(repr, bad))}: use body, root, a group "
                         f"({', '.join(groups)}) or body joint names ({', '.join(BODY_MOTION_JOINTS[1:4])}, ...)")
    return sel
