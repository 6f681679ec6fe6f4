"""Rotations in Blender's conventions, NumPy only (no ``bpy``): quaternions, axis-angle, Euler orders, a bone's
rotation in its own ``rotation_mode``, and continuity across frames (see :mod:`blender_dposer.rig_math` for the
conventions).
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "rot_x", "rot_y", "rot_z", "transpose", "orthonormalize", "quaternion_normalize", "quaternion_canonical",
    "quaternion_multiply", "quaternion_conjugate", "quaternion_to_matrix", "matrix_to_quaternion",
    "axis_angle_to_quaternion", "quaternion_to_axis_angle", "axis_angle_to_matrix", "matrix_to_axis_angle",
    "canonical_axis_angle", "axis_angle4_to_matrix", "matrix_to_axis_angle4", "quaternion_continuity",
    "EULER_ORDERS", "ROTATION_MODES", "euler_to_matrix", "compatible_euler", "matrix_to_euler", "euler_sequence",
    "rotation_channels", "rotation_to_matrix", "matrix_to_rotation", "rotation_sequence",
]

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
