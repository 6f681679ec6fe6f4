# SPDX-License-Identifier: GPL-3.0-or-later
"""Rig math of the DPoser add-on: NumPy only, no ``bpy``, unit-tested without Blender.

Conventions (the same as Blender's ``mathutils``):

- Rotation matrices act on column vectors (``v' = R @ v``); arrays are ``(..., 3, 3)``.
- Quaternions are ``(w, x, y, z)`` (``rotation_quaternion`` F-curve order). Axis-angle is a rotation vector
  ``(..., 3)`` in radians (SMPL-X); Blender's ``rotation_axis_angle`` is ``(angle, x, y, z)`` ("axis_angle4" here).
- Euler angles are stored ``(x, y, z)`` whatever the order. Order ``'ABC'`` means "rotate about A first, then B,
  then C" (extrinsic), i.e. ``M = R_C @ R_B @ R_A``; so ``'XYZ'`` is ``Rz @ Ry @ Rx``. A BVH channel list
  ``Zrotation Xrotation Yrotation`` is Blender order ``'YXZ'`` (Blender's BVH importer reverses the string), yet
  the importer sets the pose bone's ``rotation_mode`` to the *unreversed* ``'ZXY'``.
- SMPL-X frame: metres, +Y up, +Z forward (the body faces +Z), +X the body's left. The rotation ``C`` maps SMPL-X
  axes to a rig's armature axes: ``C_ZUP`` = Rx(+90 deg) for a Blender Z-up armature, ``C_YUP`` = identity for a
  Y-up armature (e.g. an FBX rig whose object carries the X 90 deg).

The rig <-> SMPL-X mapping is blender.md section 1.5 ("The exact math, both ways"):

- ``R_k``  SMPL-X local rotation of joint k; ``G_k = G_parent(k) @ R_k`` its global rotation (``G_0 = R_0``).
- ``B_k``  rest orientation of bone k in armature space (``bone.matrix_local.to_3x3()``).
- ``L_k``  pose-bone basis rotation (``matrix_basis``: quaternion / Euler / axis-angle).
- ``P_k``  posed orientation in armature space (``pose_bone.matrix.to_3x3()``); with default inheritance and no
  constraints ``P_k = P_p @ (B_p^-1 @ B_k) @ L_k``.
- ``M_k``  calibration: bone k's armature-space orientation when the rig shows the SMPL-X zero pose.

(a) rest = SMPL-X zero pose (``M_k = B_k``): ``R_k = C^-1 B_k L_k B_k^-1 C`` and ``L_k = B_k^-1 C R_k C^-1 B_k``
    (:func:`local_to_smplx`, :func:`smplx_to_local`). On the official SMPL-X rig ``B_k = C`` so ``L_k = R_k``.
(b) any rest pose: ``G_k = C^-1 P_k M_k^-1 C``, ``R_k = G_parent^-1 G_k`` (parent = the SMPL-X parent's mapped
    bone; rig bones in between fold in); back: FK over the SMPL-X tree, ``P*_k = C G_k C^-1 M_k``, then per rig
    bone in hierarchy order ``L_k = (B_p'^-1 B_k)^-1 P_p'^-1 P*_k`` with p' the real rig parent; unmapped bones
    keep their ``L`` (:class:`Retarget`).
(c) calibration: ``M_k = P_k`` of the rig posed in the SMPL-X zero pose (:func:`calibration_from_pose`,
    :func:`calibration_from_basis`), or automatic from the rest geometry (:func:`auto_calibration`).
(d) translation: pelvis ``location = B_pelvis^-1 C t`` (:func:`transl_to_location`).
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

# ---------------------------------------------------------------------------------------------------------
# SMPL-X tables. Copies of dposer.layout.JOINT_NAMES / PARENTS and dposer.skeleton's built-in rest offsets (the
# add-on must not import the backend, which needs torch); tests/test_rig_math.py checks that they are equal.

JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "jaw", "left_eye_smplhf", "right_eye_smplhf",
    "left_index1", "left_index2", "left_index3", "left_middle1", "left_middle2", "left_middle3",
    "left_pinky1", "left_pinky2", "left_pinky3", "left_ring1", "left_ring2", "left_ring3",
    "left_thumb1", "left_thumb2", "left_thumb3",
    "right_index1", "right_index2", "right_index3", "right_middle1", "right_middle2", "right_middle3",
    "right_pinky1", "right_pinky2", "right_pinky3", "right_ring1", "right_ring2", "right_ring3",
    "right_thumb1", "right_thumb2", "right_thumb3",
)
NUM_JOINTS = len(JOINT_NAMES)  # 55
PARENTS = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}
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


# Offset of each joint from its parent (the pelvis' from the origin), SMPL-X frame, metres. Approximate adult
# proportions authored for the project (not SMPL-X model data); float32 like dposer.skeleton.REST_OFFSETS.
REST_OFFSETS = _rest_offsets()


def rest_joints(offsets: np.ndarray | None = None) -> np.ndarray:
    """(55, 3) joint positions of the zero pose (T-pose, flat hands) in the SMPL-X frame."""
    offsets = REST_OFFSETS if offsets is None else np.asarray(offsets)
    pos = np.zeros((NUM_JOINTS, 3), dtype=np.float64)
    for j, p in enumerate(PARENTS):
        pos[j] = offsets[j] + (pos[p] if p >= 0 else 0.0)
    return pos


# ---------------------------------------------------------------------------------------------------------
# Basic rotations.

def rot_x(angle) -> np.ndarray:
    return _axis_rotation(0, angle)


def rot_y(angle) -> np.ndarray:
    return _axis_rotation(1, angle)


def rot_z(angle) -> np.ndarray:
    return _axis_rotation(2, angle)


def _axis_rotation(axis: int, angle) -> np.ndarray:
    a = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    m = np.zeros(a.shape + (3, 3))
    p, q = {0: (1, 2), 1: (2, 0), 2: (0, 1)}[axis]
    m[..., axis, axis] = 1.0
    m[..., p, p] = c
    m[..., p, q] = -s
    m[..., q, p] = s
    m[..., q, q] = c
    return m


# SMPL-X (Y-up) -> Blender Z-up armature space: (x, y, z) -> (x, -z, y). Equals the official SMPL-X rig's bone rest
# orientation (bones along +Z, roll 0).
C_ZUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
C_YUP = np.eye(3)


def armature_axes(object_matrix=None, world_C=C_ZUP) -> np.ndarray:
    """C for an armature whose object carries a rotation (``obj.matrix_world``, 3x3 or 4x4, scale allowed):
    ``C = R_obj^-1 @ world_C``, so that the SMPL-X body stands up in the Blender world. A Mixamo/FBX armature with
    object rotation X +90 deg gives the identity (its armature space is Y-up), a plain Blender armature gives
    ``world_C``. For AMASS-style Z-up world data pass ``world_C = identity`` (blender.md 1.5d)."""
    if object_matrix is None:
        return np.asarray(world_C, dtype=np.float64)
    r = orthonormalize(np.asarray(object_matrix, dtype=np.float64)[:3, :3])
    return r.T @ np.asarray(world_C, dtype=np.float64)


def armature_up_axes(object_matrix=None) -> np.ndarray:
    """C for an armature object from the armature-space axis that points up in the world (snapped to the nearest
    signed axis): ``C_ZUP`` for +Z (a plain Blender armature, whatever its yaw or position), the identity for +Y (an
    FBX rig whose object carries X +90 deg); any other axis: ``C_ZUP`` turned by the minimal rotation taking +Z there.
    Unlike :func:`armature_axes`, turning the character around (object yaw) leaves C alone, so joint-local rotations
    read and write the same; only the root's global orientation sees the object's yaw."""
    if object_matrix is None:
        return C_ZUP.copy()
    r = orthonormalize(np.asarray(object_matrix, dtype=np.float64)[:3, :3])
    up = r.T @ np.array([0.0, 0.0, 1.0])
    k = int(np.argmax(np.abs(up)))
    axis = np.zeros(3)
    axis[k] = 1.0 if up[k] >= 0 else -1.0
    return _swing(np.array([0.0, 0.0, 1.0]), axis) @ C_ZUP


def transpose(m: np.ndarray) -> np.ndarray:
    """Transpose of the last two axes (the inverse of a rotation)."""
    return np.swapaxes(m, -1, -2)


def orthonormalize(m: np.ndarray) -> np.ndarray:
    """Nearest rotation matrix (SVD), e.g. to strip scale from a 3x3 taken off a 4x4."""
    u, _, vt = np.linalg.svd(np.asarray(m, dtype=np.float64))
    d = np.sign(np.linalg.det(u @ vt))
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    return u @ vt


# ---------------------------------------------------------------------------------------------------------
# Quaternions (w, x, y, z).

def quaternion_normalize(q) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quaternion_canonical(q) -> np.ndarray:
    """The same rotation with w >= 0 (what the backend's normaliser expects; blender.md 1.5e)."""
    q = quaternion_normalize(q)
    return np.where(q[..., :1] < 0, -q, q)


def quaternion_multiply(a, b) -> np.ndarray:
    """Hamilton product ``a * b`` (apply b first, then a), as mathutils ``a @ b``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def quaternion_conjugate(q) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quaternion_to_matrix(q) -> np.ndarray:
    w, x, y, z = np.moveaxis(quaternion_normalize(q), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def matrix_to_quaternion(m) -> np.ndarray:
    """Rotation matrices -> unit quaternions with w >= 0 (Shepperd's method, vectorised)."""
    m = np.asarray(m, dtype=np.float64)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    tr = m00 + m11 + m22
    cands = []
    s = 2.0 * np.sqrt(np.maximum(1.0 + tr, 1e-300))
    cands.append(np.stack([0.25 * s, (m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s], -1))
    s = 2.0 * np.sqrt(np.maximum(1.0 + m00 - m11 - m22, 1e-300))
    cands.append(np.stack([(m21 - m12) / s, 0.25 * s, (m01 + m10) / s, (m02 + m20) / s], -1))
    s = 2.0 * np.sqrt(np.maximum(1.0 + m11 - m00 - m22, 1e-300))
    cands.append(np.stack([(m02 - m20) / s, (m01 + m10) / s, 0.25 * s, (m12 + m21) / s], -1))
    s = 2.0 * np.sqrt(np.maximum(1.0 + m22 - m00 - m11, 1e-300))
    cands.append(np.stack([(m10 - m01) / s, (m02 + m20) / s, (m12 + m21) / s, 0.25 * s], -1))
    choice = np.argmax(np.stack([tr, m00, m11, m22], -1), axis=-1)
    q = np.take_along_axis(np.stack(cands, -2), choice[..., None, None], axis=-2)[..., 0, :]
    return quaternion_canonical(q)


def axis_angle_to_quaternion(aa) -> np.ndarray:
    """Rotation vectors (..., 3) -> quaternions (w, x, y, z) with w >= 0 for angles <= pi."""
    aa = np.asarray(aa, dtype=np.float64)
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)
    half = 0.5 * theta
    small = theta < 1e-8
    k = np.where(small, 0.5 - theta ** 2 / 48.0, np.sin(half) / np.where(small, 1.0, theta))
    return np.concatenate([np.cos(half), aa * k], axis=-1)


def quaternion_to_axis_angle(q) -> np.ndarray:
    """Quaternions -> canonical rotation vectors (angle in [0, pi]; q and -q give the same result)."""
    q = quaternion_canonical(q)
    w = q[..., :1]
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, w)
    small = s < 1e-12
    k = np.where(small, 2.0 / np.maximum(w, 1e-300), angle / np.where(small, 1.0, s))
    return v * k


def axis_angle_to_matrix(aa) -> np.ndarray:
    return quaternion_to_matrix(axis_angle_to_quaternion(aa))


def matrix_to_axis_angle(m) -> np.ndarray:
    """Rotation matrices -> canonical rotation vectors (angle in [0, pi])."""
    return quaternion_to_axis_angle(matrix_to_quaternion(m))


def canonical_axis_angle(aa) -> np.ndarray:
    """The same rotations with angles in [0, pi] (e.g. from mathutils ``to_axis_angle``, which goes up to 2 pi)."""
    return quaternion_to_axis_angle(axis_angle_to_quaternion(aa))


def axis_angle4_to_matrix(v) -> np.ndarray:
    """Blender ``rotation_axis_angle`` values ``(angle, x, y, z)`` -> matrices (the axis need not be unit)."""
    v = np.asarray(v, dtype=np.float64)
    axis = v[..., 1:]
    n = np.linalg.norm(axis, axis=-1, keepdims=True)
    unit = np.where(n > 1e-12, axis / np.where(n > 1e-12, n, 1.0), np.array([0.0, 1.0, 0.0]))
    return axis_angle_to_matrix(unit * v[..., :1])


def matrix_to_axis_angle4(m) -> np.ndarray:
    """Matrices -> ``(angle, x, y, z)`` with angle in [0, pi]; identity gives (0, 0, 1, 0) like Blender's default."""
    aa = matrix_to_axis_angle(m)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    ok = angle > 1e-12
    axis = np.where(ok, aa / np.where(ok, angle, 1.0), np.array([0.0, 1.0, 0.0]))
    return np.concatenate([angle, axis], axis=-1)


def quaternion_continuity(q, seed=None, axis: int = 0) -> np.ndarray:
    """Flip signs along ``axis`` (time) so consecutive quaternions have a non-negative dot product.

    F-curves interpolate components independently, so a sign flip between keys spins the bone through 360 deg
    (blender.md 5.4). ``seed`` (the key just before the range, shape of one time slice) fixes the sign of the
    first element so the seam is continuous. Any other axes (bones) are handled independently.
    """
    q = np.moveaxis(np.asarray(q, dtype=np.float64), axis, 0)
    if q.shape[0] == 0:
        return np.moveaxis(q.copy(), 0, axis)
    step = np.where(np.sum(q[1:] * q[:-1], axis=-1) < 0, -1.0, 1.0)
    if seed is not None:
        first = np.where(np.sum(q[0] * np.asarray(seed, dtype=np.float64), axis=-1) < 0, -1.0, 1.0)[None]
    else:
        first = np.ones((1,) + q.shape[1:-1])
    sign = np.cumprod(np.concatenate([first, step], axis=0), axis=0)
    return np.moveaxis(q * sign[..., None], 0, axis)


# ---------------------------------------------------------------------------------------------------------
# Euler angles, Blender's convention.

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
ROTATION_MODES = ("QUATERNION", "AXIS_ANGLE") + EULER_ORDERS
_ODD_ORDERS = ("XZY", "YXZ", "ZYX")


def _order_axes(order: str) -> tuple[int, int, int]:
    if order not in EULER_ORDERS:
        raise ValueError(f"unknown Euler order {order!r}; expected one of {', '.join(EULER_ORDERS)}")
    return tuple("XYZ".index(c) for c in order)  # type: ignore[return-value]


def euler_to_matrix(euler, order: str = "XYZ") -> np.ndarray:
    """Euler angles ``(x, y, z)`` (radians) in Blender order ``order`` -> matrices (``'XYZ'`` = Rz @ Ry @ Rx)."""
    e = np.asarray(euler, dtype=np.float64)
    i, j, k = _order_axes(order)
    return _axis_rotation(k, e[..., k]) @ _axis_rotation(j, e[..., j]) @ _axis_rotation(i, e[..., i])


def _matrix_to_euler_pair(m: np.ndarray, order: str) -> tuple[np.ndarray, np.ndarray]:
    """Both Euler solutions of rotation matrices (as Blender's mat3_normalized_to_eulO2)."""
    i, j, k = _order_axes(order)
    m = np.asarray(m, dtype=np.float64)
    cy = np.hypot(m[..., i, i], m[..., j, i])
    e1 = np.zeros(m.shape[:-2] + (3,))
    e2 = np.zeros_like(e1)
    regular = cy > 16.0 * np.finfo(np.float32).eps
    e1[..., i] = np.where(regular, np.arctan2(m[..., k, j], m[..., k, k]), np.arctan2(-m[..., j, k], m[..., j, j]))
    e1[..., j] = np.arctan2(-m[..., k, i], cy)
    e1[..., k] = np.where(regular, np.arctan2(m[..., j, i], m[..., i, i]), 0.0)
    e2[..., i] = np.where(regular, np.arctan2(-m[..., k, j], -m[..., k, k]), e1[..., i])
    e2[..., j] = np.where(regular, np.arctan2(-m[..., k, i], -cy), e1[..., j])
    e2[..., k] = np.where(regular, np.arctan2(-m[..., j, i], -m[..., i, i]), e1[..., k])
    if order in _ODD_ORDERS:
        e1, e2 = -e1, -e2
    return e1, e2


def compatible_euler(euler, compat) -> np.ndarray:
    """Shift angles by multiples of 2 pi to stay close to ``compat`` (Blender's ``compatible_eul``)."""
    e = np.array(euler, dtype=np.float64, copy=True)
    old = np.broadcast_to(np.asarray(compat, dtype=np.float64), e.shape)
    two_pi = 2.0 * np.pi
    d = e - old
    big = d > 5.1
    e = np.where(big, e - np.floor(d / two_pi + 0.5) * two_pi, e)
    small = d < -5.1
    e = np.where(small, e + np.floor(-d / two_pi + 0.5) * two_pi, e)
    d = e - old
    ad = np.abs(d)
    for a in range(3):
        others = [b for b in range(3) if b != a]
        flip = (ad[..., a] > 3.2) & (ad[..., others[0]] < 1.6) & (ad[..., others[1]] < 1.6)
        e[..., a] = np.where(flip, e[..., a] - np.sign(d[..., a]) * two_pi, e[..., a])
    return e


def matrix_to_euler(m, order: str = "XYZ", compat=None) -> np.ndarray:
    """Matrices -> Euler ``(x, y, z)`` in ``order``, as mathutils ``Matrix.to_euler(order, compat)``.

    Without ``compat`` the solution with the smaller sum of absolute angles is returned; with ``compat`` (e.g. the
    previous frame's Euler) both solutions are made compatible and the closer one is returned, which avoids
    +-180 deg wraps in F-curves (blender.md 5.4).
    """
    e1, e2 = _matrix_to_euler_pair(m, order)
    if compat is None:
        pick2 = np.abs(e1).sum(-1) > np.abs(e2).sum(-1)
    else:
        old = np.asarray(compat, dtype=np.float64)
        e1 = compatible_euler(e1, old)
        e2 = compatible_euler(e2, old)
        pick2 = np.abs(e1 - old).sum(-1) > np.abs(e2 - old).sum(-1)
    return np.where(pick2[..., None], e2, e1)


def euler_sequence(mats, order: str, compat=None) -> np.ndarray:
    """Matrices (F, ..., 3, 3) over time -> continuous Euler angles (F, ..., 3), each frame compatible with the
    previous one (the first with ``compat``, e.g. the key before the edited range)."""
    mats = np.asarray(mats, dtype=np.float64)
    out = np.zeros(mats.shape[:-2] + (3,))
    prev = None if compat is None else np.asarray(compat, dtype=np.float64)
    for f in range(mats.shape[0]):
        prev = out[f] = matrix_to_euler(mats[f], order, prev)
    return out


# ---------------------------------------------------------------------------------------------------------
# A bone's rotation in its own rotation mode.

def rotation_channels(mode: str) -> int:
    """Number of F-curve channels of a rotation mode (quaternion and axis-angle 4, Euler 3)."""
    _check_mode(mode)
    return 4 if mode in ("QUATERNION", "AXIS_ANGLE") else 3


def _check_mode(mode: str) -> None:
    if mode not in ROTATION_MODES:
        raise ValueError(f"unknown rotation mode {mode!r}; expected one of {', '.join(ROTATION_MODES)}")


def rotation_to_matrix(values, mode: str) -> np.ndarray:
    """Pose-bone rotation values in ``mode`` (``rotation_quaternion``, ``rotation_axis_angle`` or
    ``rotation_euler`` with ``rotation_mode`` = an Euler order) -> matrices."""
    _check_mode(mode)
    if mode == "QUATERNION":
        return quaternion_to_matrix(values)
    if mode == "AXIS_ANGLE":
        return axis_angle4_to_matrix(values)
    return euler_to_matrix(values, mode)


def matrix_to_rotation(m, mode: str, compat=None) -> np.ndarray:
    """Matrices -> rotation values in ``mode``, made compatible with ``compat`` (same mode) when given:
    Euler via :func:`matrix_to_euler`, quaternion by sign (dot >= 0), axis-angle by axis direction."""
    _check_mode(mode)
    if mode == "QUATERNION":
        q = matrix_to_quaternion(m)
        if compat is not None:
            q = np.where((np.sum(q * np.asarray(compat), -1) < 0)[..., None], -q, q)
        return q
    if mode == "AXIS_ANGLE":
        v = matrix_to_axis_angle4(m)
        if compat is not None:
            old = np.asarray(compat, dtype=np.float64)
            still = (np.abs(v[..., 0]) < 1e-12)[..., None]  # no rotation: any axis will do, keep the previous one
            v = np.where(still, np.concatenate([v[..., :1], np.broadcast_to(old[..., 1:], v[..., 1:].shape)], -1), v)
            flip = np.sum(v[..., 1:] * old[..., 1:], -1) < 0
            v = np.where(flip[..., None], -v, v)
            turns = np.round((old[..., 0] - v[..., 0]) / (2 * np.pi))  # (angle + 2 pi k, axis) is the same rotation
            v = np.concatenate([(v[..., 0] + 2 * np.pi * turns)[..., None], v[..., 1:]], axis=-1)
        return v
    return matrix_to_euler(m, mode, compat)


def rotation_sequence(mats, mode: str, previous=None) -> np.ndarray:
    """Matrices (F, ..., 3, 3) over time -> continuous rotation values (F, ..., 3 or 4) in ``mode``;
    ``previous`` is the value of the key before the range (the seam stays continuous)."""
    _check_mode(mode)
    mats = np.asarray(mats, dtype=np.float64)
    if mode == "QUATERNION":
        return quaternion_continuity(matrix_to_quaternion(mats), seed=previous)
    if mode in EULER_ORDERS:
        return euler_sequence(mats, mode, previous)
    out = np.zeros(mats.shape[:-2] + (4,))
    prev = previous
    for f in range(mats.shape[0]):
        prev = out[f] = matrix_to_rotation(mats[f], mode, prev)
    if previous is None:  # leading frames without rotation take the axis of the first rotated frame
        moving = np.abs(out[..., 0]) >= 1e-12
        first = np.argmax(moving, axis=0)
        axis = np.take_along_axis(out[..., 1:], first[None, ..., None], axis=0)[0]
        lead = (np.arange(out.shape[0]).reshape((-1,) + (1,) * (out.ndim - 2)) < first) & moving.any(axis=0)
        out[..., 1:] = np.where(lead[..., None], axis, out[..., 1:])
    return out


# ---------------------------------------------------------------------------------------------------------
# Hand mirroring (the backend's convention, dposer.layout.mirror_hand).

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
    """SMPL-X forward kinematics in NumPy (the test twin of ``dposer.skeleton.forward_kinematics``).

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
# Formula (a): per-bone conversion for a rig whose rest pose is the SMPL-X zero pose.

def smplx_to_local(rotation, rest, C=C_ZUP) -> np.ndarray:
    """SMPL-X local rotation matrices R (..., 3, 3) -> pose-bone basis L = B^-1 C R C^-1 B (blender.md 1.5a).

    ``rest`` is B, the bone's rest orientation (``bone.matrix_local`` 3x3), broadcastable against R. With
    B = C (official SMPL-X rig: bones along +Z, roll 0) this is the identity map.
    """
    B = np.asarray(rest, dtype=np.float64)[..., :3, :3]
    C = np.asarray(C, dtype=np.float64)
    return transpose(B) @ C @ np.asarray(rotation, dtype=np.float64) @ C.T @ B


def local_to_smplx(local, rest, C=C_ZUP) -> np.ndarray:
    """Pose-bone basis L -> SMPL-X local R = C^-1 B L B^-1 C (blender.md 1.5a); inverse of :func:`smplx_to_local`."""
    B = np.asarray(rest, dtype=np.float64)[..., :3, :3]
    C = np.asarray(C, dtype=np.float64)
    return C.T @ B @ np.asarray(local, dtype=np.float64) @ transpose(B) @ C


def transl_to_location(transl, rest, C=C_ZUP, scale: float = 1.0) -> np.ndarray:
    """SMPL-X ``transl`` (..., 3) -> pelvis pose-bone ``location`` = B^-1 C t * scale (blender.md 1.5d), for a
    pelvis bone whose rig parents are at rest (``use_local_location`` on). ``scale`` converts metres to rig units
    (e.g. 100 for a centimetre rig, or a leg-length ratio)."""
    B = np.asarray(rest, dtype=np.float64)[..., :3, :3]
    return np.einsum("ji,jk,...k->...i", B, np.asarray(C, dtype=np.float64), np.asarray(transl, dtype=np.float64)) * scale


def location_to_transl(location, rest, C=C_ZUP, scale: float = 1.0) -> np.ndarray:
    """Inverse of :func:`transl_to_location`."""
    B = np.asarray(rest, dtype=np.float64)[..., :3, :3]
    return np.einsum("kj,jl,...l->...k", np.asarray(C, dtype=np.float64).T, B, np.asarray(location, dtype=np.float64)) / scale


# ---------------------------------------------------------------------------------------------------------
# Blender bone rest matrices from edit-bone data.

def bone_matrix_from_head_tail_roll(head, tail, roll=0.0) -> np.ndarray:
    """Rest orientation (3x3, armature space) of an edit bone, as Blender computes ``bone.matrix_local``.

    The bone's +Y axis points from head to tail; ``roll`` (radians) turns the bone about that axis. This follows
    Blender's ``vec_roll_to_mat3`` (a bone within 2.5e-4 of straight down -Y snaps to it, as in Blender; near -Y the
    float64 result is exact where Blender uses a float32 series). A bone along +Z with roll 0 gives Rx(+90 deg) =
    :data:`C_ZUP`.
    """
    d = np.asarray(tail, dtype=np.float64) - np.asarray(head, dtype=np.float64)
    n = np.linalg.norm(d, axis=-1, keepdims=True)
    if np.any(n == 0):
        raise ValueError("a bone needs a tail different from its head")
    nor = d / n
    x, y, z = nor[..., 0], nor[..., 1], nor[..., 2]
    theta_alt = x * x + z * z
    # 1 + y, computed stably near -Y as (x^2 + z^2) / (1 - y) (Blender uses a float32 series there)
    theta = np.where(y < 0, theta_alt / np.where(y < 0, 1.0 - y, 1.0), 1.0 + y)
    safe, critical = 6.1e-3, 2.5e-4
    regular = (theta > safe) | (theta_alt > critical * critical)
    theta = np.where(regular, theta, 1.0)
    bm = np.stack([
        np.stack([1 - x * x / theta, x, -x * z / theta], -1),
        np.stack([-x, y, -z], -1),
        np.stack([-x * z / theta, z, 1 - z * z / theta], -1),
    ], -2)
    flipped = np.broadcast_to(np.diag([-1.0, -1.0, 1.0]), bm.shape)
    bm = np.where(regular[..., None, None], bm, flipped)
    roll_m = axis_angle_to_matrix(nor * np.asarray(roll, dtype=np.float64)[..., None])
    return roll_m @ bm


def matrix_4x4(rotation, translation=None) -> np.ndarray:
    """Compose (..., 3, 3) rotations and (..., 3) translations into (..., 4, 4) matrices."""
    r = np.asarray(rotation, dtype=np.float64)
    out = np.zeros(r.shape[:-2] + (4, 4))
    out[..., :3, :3] = r
    out[..., 3, 3] = 1.0
    if translation is not None:
        out[..., :3, 3] = translation
    return out


# ---------------------------------------------------------------------------------------------------------
# A rig: bones, hierarchy, rest matrices, and its forward kinematics.

class Rig:
    """A rig as the bpy layer reads it from ``armature.data.bones``: names, parents, ``matrix_local``.

    ``parents``: per bone, the parent's name (or index), or None/-1 for roots. ``rest``: (B, 4, 4) armature-space
    rest matrices (``bone.matrix_local``) or (B, 3, 3) orientations (heads then sit at the origin). Bones may come
    in any order; :attr:`order` is a parents-first order.
    """

    def __init__(self, names: Sequence[str], parents: Sequence, rest):
        self.names = tuple(names)
        self.index = {n: i for i, n in enumerate(self.names)}
        if len(self.index) != len(self.names):
            raise ValueError("bone names must be unique")
        par = []
        for p in parents:
            if p is None or (isinstance(p, (int, np.integer)) and p < 0):
                par.append(-1)
            elif isinstance(p, (int, np.integer)):
                par.append(int(p))
            else:
                if p not in self.index:
                    raise ValueError(f"unknown parent bone {p!r}")
                par.append(self.index[p])
        if len(par) != len(self.names):
            raise ValueError("one parent per bone is needed")
        self.parents = np.asarray(par, dtype=np.int64)
        rest = np.asarray(rest, dtype=np.float64)
        if rest.shape == (len(self.names), 3, 3):
            rest = matrix_4x4(rest)
        if rest.shape != (len(self.names), 4, 4):
            raise ValueError(f"rest must be (B, 4, 4) or (B, 3, 3), got {rest.shape}")
        self.rest = rest
        self.rest_rot = rest[:, :3, :3]
        self.order = self._parents_first()
        # rest_p^-1 @ rest_k (the rest matrix itself for roots)
        inv = np.linalg.inv(rest)
        self.rel = np.array([rest[k] if p < 0 else inv[p] @ rest[k] for k, p in enumerate(self.parents)])
        self.rel_rot = self.rel[:, :3, :3]

    def _parents_first(self) -> np.ndarray:
        order, seen = [], set()
        children: dict[int, list[int]] = {}
        for k, p in enumerate(self.parents):
            children.setdefault(int(p), []).append(k)
        stack = list(reversed(children.get(-1, [])))
        while stack:
            k = stack.pop()
            order.append(k)
            seen.add(k)
            stack.extend(reversed(children.get(k, [])))
        if len(order) != len(self.names):
            raise ValueError("the bone hierarchy has a cycle")
        return np.asarray(order)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def heads(self) -> np.ndarray:
        """(B, 3) rest head positions (armature space)."""
        return self.rest[:, :3, 3]

    def pose_rotations(self, basis) -> np.ndarray:
        """Basis rotations L (..., B, 3, 3) -> posed orientations P (..., B, 3, 3), armature space."""
        L = np.asarray(basis, dtype=np.float64)
        P = np.empty_like(L)
        for k in self.order:
            p = self.parents[k]
            P[..., k, :, :] = (self.rel_rot[k] if p < 0 else P[..., p, :, :] @ self.rel_rot[k]) @ L[..., k, :, :]
        return P

    def pose_matrices(self, basis, location=None) -> np.ndarray:
        """Basis rotations (..., B, 3, 3) and optional locations (..., B, 3) -> ``pose_bone.matrix`` (..., B, 4, 4):
        ``pose_k = pose_p @ rest_p^-1 @ rest_k @ basis_k`` with ``basis_k = T(location) @ R(L)``."""
        L = np.asarray(basis, dtype=np.float64)
        basis4 = matrix_4x4(L, None if location is None else np.asarray(location, dtype=np.float64))
        out = np.empty_like(basis4)
        for k in self.order:
            p = self.parents[k]
            out[..., k, :, :] = (self.rel[k] if p < 0 else out[..., p, :, :] @ self.rel[k]) @ basis4[..., k, :, :]
        return out

    def identity_basis(self, *batch: int) -> np.ndarray:
        return np.broadcast_to(np.eye(3), tuple(batch) + (len(self), 3, 3)).copy()


# ---------------------------------------------------------------------------------------------------------
# Calibration (blender.md 1.5c).

def calibration_from_pose(rig: Rig, pose, bones: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Option 1: ``M_k = P_k``, the bones' armature-space orientations (``pose_bone.matrix`` 3x3, (B, 3, 3) or
    (B, 4, 4)) while the rig shows the SMPL-X zero pose. Returns {bone name: 3x3} for ``bones`` (default all)."""
    P = orthonormalize(np.asarray(pose, dtype=np.float64)[..., :3, :3])
    names = rig.names if bones is None else tuple(bones)
    return {b: P[rig.index[b]] for b in names}


def calibration_from_basis(rig: Rig, basis, bones: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Option 1 from basis rotations: the rig posed in the SMPL-X zero pose by its (B, 3, 3) ``matrix_basis``
    rotations (default inheritance, no constraints). See :func:`calibration_from_pose`."""
    return calibration_from_pose(rig, rig.pose_rotations(basis), bones)


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimal rotation taking unit vector a to unit vector b."""
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    s = float(np.linalg.norm(v))
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        perp = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(perp) < 1e-6:
            perp = np.cross(a, [0.0, 1.0, 0.0])
        return axis_angle_to_matrix(perp / np.linalg.norm(perp) * np.pi)
    return axis_angle_to_matrix(v / s * np.arctan2(s, c))


def auto_calibration(rig: Rig, bone_map: Mapping[str, str], C=C_ZUP, template_joints=None,
                     pose=None) -> dict[str, np.ndarray]:
    """Option 2 (automatic default): calibration from the rig's geometry against an SMPL-X T-pose template.

    For each mapped joint, the rotation K that best aligns the directions from its bone's head to its mapped SMPL-X
    children's heads with the template's (``C @ (J_child - J_k)``) is found (Kabsch over unit directions); then
    ``M_k = K @ P_k``. With a single child (or collinear children) only the swing is known: the twist is carried
    over from the SMPL-X parent's K and the minimal swing added; a joint without mapped children takes its parent's
    K. Exact when each bone's children are rigidly rotated relative to the template (e.g. an A-pose built by
    rotating the shoulders), approximate otherwise (twist of single-child bones, different proportions): offer a
    preview and the posed calibration (:func:`calibration_from_pose`) as the precise fallback.

    ``template_joints``: (55, 3) SMPL-X-frame positions (default :func:`rest_joints`, or the user's SMPL-X rig's);
    ``pose``: (B, 4, 4) ``pose_bone.matrix`` of a reference pose (default the rest pose).
    """
    J = rest_joints() if template_joints is None else np.asarray(template_joints, dtype=np.float64)
    ref = rig.rest if pose is None else np.asarray(pose, dtype=np.float64)
    heads = ref[:, :3, 3]
    P = orthonormalize(ref[:, :3, :3])
    C = np.asarray(C, dtype=np.float64)
    mapped = {j: rig.index[b] for j, b in bone_map.items()}
    K: dict[str, np.ndarray] = {}
    out: dict[str, np.ndarray] = {}
    children: dict[int, list[int]] = {}
    for j, p in enumerate(PARENTS):
        children.setdefault(p, []).append(j)

    def mapped_children(j: int) -> list[int]:
        # nearest mapped descendants along each branch
        found, stack = [], list(children.get(j, []))
        while stack:
            c = stack.pop()
            if JOINT_NAMES[c] in mapped:
                found.append(c)
            else:
                stack.extend(children.get(c, []))
        return found

    for j, name in enumerate(JOINT_NAMES):
        if name not in mapped:
            continue
        a = PARENTS[j]
        while a >= 0 and JOINT_NAMES[a] not in mapped:
            a = PARENTS[a]
        K_par = K[JOINT_NAMES[a]] if a >= 0 else np.eye(3)
        k = mapped[name]
        us, ts = [], []
        for c in mapped_children(j):
            u = heads[mapped[JOINT_NAMES[c]]] - heads[k]
            t = C @ (J[c] - J[j])
            if np.linalg.norm(u) > 1e-9 and np.linalg.norm(t) > 1e-9:
                us.append(u / np.linalg.norm(u))
                ts.append(t / np.linalg.norm(t))
        if not us:
            Kj = K_par
        else:
            U, T = np.asarray(us), np.asarray(ts)
            H = U.T @ T
            u_, s_, vt_ = np.linalg.svd(H)
            if len(us) >= 2 and s_[1] > 1e-3 * s_[0]:
                d = np.sign(np.linalg.det(vt_.T @ u_.T))
                Kj = vt_.T @ np.diag([1.0, 1.0, d]) @ u_.T
            else:
                u_mean = (K_par @ U.sum(0))
                t_mean = T.sum(0)
                Kj = _swing(u_mean / np.linalg.norm(u_mean), t_mean / np.linalg.norm(t_mean)) @ K_par
        K[name] = Kj
        out[bone_map[name]] = Kj @ P[k]
    return out


def calibration_to_dict(calibration: Mapping[str, np.ndarray]) -> dict[str, list[float]]:
    """{bone: 3x3} -> {bone: [w, x, y, z]} (JSON / custom-property friendly)."""
    return {b: [float(x) for x in matrix_to_quaternion(m)] for b, m in calibration.items()}


def calibration_from_dict(data: Mapping[str, Sequence[float]]) -> dict[str, np.ndarray]:
    """{bone: [w, x, y, z]} -> {bone: 3x3}; inverse of :func:`calibration_to_dict`."""
    out = {}
    for b, q in data.items():
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (4,) or not np.all(np.isfinite(q)) or np.linalg.norm(q) < 1e-6:
            raise ValueError(f"calibration of bone {b!r} must be a quaternion [w, x, y, z], got {list(q)}")
        out[b] = quaternion_to_matrix(q)
    return out


# ---------------------------------------------------------------------------------------------------------
# Retargeting between a rig and SMPL-X (blender.md 1.5b).

class Retarget:
    """SMPL-X local rotations <-> a rig's pose-bone basis rotations, through a bone map and calibration.

    ``bone_map``: {SMPL-X joint name: bone name}; unmapped joints are not driven. ``C``: SMPL-X -> armature axes.
    ``calibration``: {bone name: M_k 3x3}; bones without one use their rest orientation (``M_k = B_k``, i.e. the rig's
    rest is taken to be the SMPL-X zero pose, formula (a)).

    Reading (:meth:`smplx_from_pose`): an unmapped SMPL-X joint gets the identity local rotation, so what the rig does
    between two mapped bones folds into the child. Writing (:meth:`basis_from_smplx`): unmapped rig bones keep their
    current basis (or their evaluated orientation) and mapped bones compensate for them.
    """

    def __init__(self, rig: Rig, bone_map: Mapping[str, str], C=C_ZUP,
                 calibration: Mapping[str, np.ndarray] | None = None):
        self.rig = rig
        self.C = np.asarray(C, dtype=np.float64)
        unknown = [j for j in bone_map if j not in JOINT_INDEX]
        if unknown:
            raise ValueError(f"unknown SMPL-X joint name(s) in the bone map: {unknown}")
        missing = [b for b in bone_map.values() if b not in rig.index]
        if missing:
            raise ValueError(f"bone(s) not in the rig: {missing}")
        seen: dict[str, str] = {}
        for j, b in bone_map.items():
            if b in seen:
                raise ValueError(f"bone {b!r} is mapped to both {seen[b]!r} and {j!r}")
            seen[b] = j
        self.bone_map = dict(bone_map)
        self.joint_bone = np.full(NUM_JOINTS, -1, dtype=np.int64)
        for j, b in bone_map.items():
            self.joint_bone[JOINT_INDEX[j]] = rig.index[b]
        self.bone_joint = np.full(len(rig), -1, dtype=np.int64)
        for j, k in enumerate(self.joint_bone):
            if k >= 0:
                self.bone_joint[k] = j
        cal = {} if calibration is None else dict(calibration)
        self.M = np.tile(np.eye(3), (NUM_JOINTS, 1, 1))
        for j, k in enumerate(self.joint_bone):
            if k >= 0:
                b = rig.names[k]
                self.M[j] = orthonormalize(cal[b]) if b in cal else rig.rest_rot[k]

    @property
    def mapped_joints(self) -> tuple[str, ...]:
        return tuple(JOINT_NAMES[j] for j in range(NUM_JOINTS) if self.joint_bone[j] >= 0)

    @property
    def unmapped_joints(self) -> tuple[str, ...]:
        return tuple(JOINT_NAMES[j] for j in range(NUM_JOINTS) if self.joint_bone[j] < 0)

    def known_mask(self) -> np.ndarray:
        """(55,) bool: joints the rig drives."""
        return self.joint_bone >= 0

    # -- rig -> SMPL-X -----------------------------------------------------------------------------------------
    def smplx_from_pose(self, pose) -> np.ndarray:
        """Armature-space orientations P (..., B, 3, 3) (or ``pose_bone.matrix`` (..., B, 4, 4), e.g. evaluated, so
        constraints/IK count) -> SMPL-X local rotations R (..., 55, 3, 3); unmapped joints get the identity."""
        P = np.asarray(pose, dtype=np.float64)[..., :3, :3]
        C, Ct = self.C, self.C.T
        batch = P.shape[:-3]
        G = np.empty(batch + (NUM_JOINTS, 3, 3))
        R = np.empty_like(G)
        eye = np.broadcast_to(np.eye(3), batch + (3, 3))
        for j, p in enumerate(PARENTS):
            k = self.joint_bone[j]
            if k < 0:
                G[..., j, :, :] = eye if p < 0 else G[..., p, :, :]
                R[..., j, :, :] = eye
                continue
            G[..., j, :, :] = Ct @ P[..., k, :, :] @ self.M[j].T @ C
            R[..., j, :, :] = G[..., j, :, :] if p < 0 else transpose(G[..., p, :, :]) @ G[..., j, :, :]
        return R

    def smplx_from_basis(self, basis) -> np.ndarray:
        """Basis rotations L (..., B, 3, 3) -> SMPL-X local rotations R (..., 55, 3, 3)."""
        return self.smplx_from_pose(self.rig.pose_rotations(basis))

    def smplx_aa_from_basis(self, basis) -> np.ndarray:
        """Basis rotations -> canonical SMPL-X axis-angle (..., 55, 3) (angles in [0, pi])."""
        return matrix_to_axis_angle(self.smplx_from_basis(basis))

    # -- SMPL-X -> rig -----------------------------------------------------------------------------------------
    def target_pose(self, rotations) -> np.ndarray:
        """SMPL-X local rotations R (..., 55, 3, 3) -> target orientations P* (..., 55, 3, 3) = C G C^-1 M per joint."""
        G = smplx_global_rotations(rotations)
        return self.C @ G @ self.C.T @ self.M

    def basis_from_smplx(self, rotations, current_basis=None, evaluated_pose=None) -> np.ndarray:
        """SMPL-X local rotations R (..., 55, 3, 3) -> basis rotations L (..., B, 3, 3) of every rig bone.

        Unmapped bones keep ``current_basis`` (default identity); with ``evaluated_pose`` (..., B, 3, 3 or 4, 4),
        an unmapped bone's orientation is taken from it instead of being propagated (constraint-driven parents,
        e.g. Rigify's ``*_parent`` bones). Unmapped SMPL-X joints use whatever R holds (usually the identity).
        """
        R = np.asarray(rotations, dtype=np.float64)
        target = self.target_pose(R)
        batch = R.shape[:-3]
        rig = self.rig
        B = len(rig)
        L = (np.broadcast_to(np.eye(3), batch + (B, 3, 3)) if current_basis is None
             else np.broadcast_to(np.asarray(current_basis, dtype=np.float64), batch + (B, 3, 3))).copy()
        ev = None if evaluated_pose is None else np.asarray(evaluated_pose, dtype=np.float64)[..., :3, :3]
        P = np.empty(batch + (B, 3, 3))
        for k in rig.order:
            p = rig.parents[k]
            base = rig.rel_rot[k] if p < 0 else P[..., p, :, :] @ rig.rel_rot[k]  # P_p B_p^-1 B_k
            j = self.bone_joint[k]
            if j >= 0:
                L[..., k, :, :] = transpose(base) @ target[..., j, :, :]
                P[..., k, :, :] = target[..., j, :, :]
            elif ev is not None:
                P[..., k, :, :] = ev[..., k, :, :]
            else:
                P[..., k, :, :] = base @ L[..., k, :, :]
        return L

    def basis_from_smplx_aa(self, aa, current_basis=None, evaluated_pose=None) -> np.ndarray:
        """SMPL-X axis-angle (..., 55, 3) -> basis rotations (..., B, 3, 3)."""
        return self.basis_from_smplx(axis_angle_to_matrix(aa), current_basis, evaluated_pose)

    def zero_pose_basis(self, current_basis=None) -> np.ndarray:
        """Basis rotations (B, 3, 3) that show the SMPL-X zero pose (T-pose, palms down, flat hands, facing the
        armature's -Y for ``C_ZUP``) through this calibration: every mapped bone ends at ``P_k = M_k``; unmapped
        bones keep ``current_basis``. Posing a rig with it and calibrating from that pose gives back ``M``."""
        return self.basis_from_smplx(np.tile(np.eye(3), (NUM_JOINTS, 1, 1)), current_basis)


def official_smplx_rig(joints=None, with_root: bool = True, C=C_ZUP) -> Rig:
    """The rig that "Add DPoser armature" builds (and the official SMPL-X add-on's layout): SMPL-X-named bones at
    ``C @ joints`` (default the built-in skeleton's rest joints), each along armature +Z (tail = head + 0.1 m),
    roll 0, so every rest orientation is C and a bone's quaternion equals the SMPL-X axis-angle. ``with_root`` adds
    the official rig's ``root`` bone (at the origin) as the pelvis' parent."""
    J = rest_joints() if joints is None else np.asarray(joints, dtype=np.float64)
    spec = armature_spec(J, with_root=with_root, C=C)
    rest = matrix_4x4(bone_matrix_from_head_tail_roll(spec["heads"], spec["tails"], spec["rolls"]), spec["heads"])
    return Rig(spec["names"], spec["parents"], rest)


def armature_spec(joints=None, with_root: bool = True, C=C_ZUP, bone_length: float = 0.1) -> dict:
    """Edit-bone data for an SMPL-X-named armature (the bpy operator only copies it): names, parent names (None for
    roots), heads, tails (head + ``bone_length`` along armature +Z) and rolls (0), in parents-first order."""
    J = rest_joints() if joints is None else np.asarray(joints, dtype=np.float64)
    heads = (np.asarray(C, dtype=np.float64) @ J.T).T
    names = list(JOINT_NAMES)
    parents = [None if p < 0 else JOINT_NAMES[p] for p in PARENTS]
    if with_root:
        names = ["root"] + names
        parents = [None] + ["root" if p is None else p for p in parents]
        heads = np.concatenate([np.zeros((1, 3)), heads])
    tails = heads + np.array([0.0, 0.0, bone_length])
    return {"names": names, "parents": parents, "heads": heads, "tails": tails, "rolls": np.zeros(len(names))}


# ---------------------------------------------------------------------------------------------------------
# Crowd layout.

def grid_offsets(n: int, spacing: float, columns: int | None = None) -> np.ndarray:
    """(n, 3) offsets (x, y, 0) of n copies on a square grid next to an original at the origin: cells are
    ``spacing`` apart, filled row by row along +x, rows going back along +y (away from a front camera; the SMPL-X zero
    pose faces -y), and cell (0, 0) is left to the original."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not spacing > 0:
        raise ValueError(f"spacing must be > 0, got {spacing}")
    cols = columns or int(np.ceil(np.sqrt(n + 1)))
    cells = np.arange(1, n + 1)
    out = np.zeros((n, 3))
    out[:, 0] = (cells % cols) * spacing
    out[:, 1] = (cells // cols) * spacing
    return out
