"""Rotation conversions in torch, built on `roma`.

Conventions: axis-angle (rotation vector) (..., 3) in radians; quaternions are (w, x, y, z) as in
Blender (roma itself uses (x, y, z, w), so we convert at this boundary); matrices (..., 3, 3); the 6D
representation is the first two columns of the matrix, flattened to (..., 6) as (r00, r10, r20, r01, r11, r21)
(Zhou et al. 2019).
"""
from __future__ import annotations

import math

import roma
import torch


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    return roma.rotvec_to_rotmat(aa)


def matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    return roma.rotmat_to_rotvec(m)


def axis_angle_to_quaternion(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle -> unit quaternion (w, x, y, z) with w >= 0."""
    q = roma.quat_xyzw_to_wxyz(roma.rotvec_to_unitquat(aa))
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """Quaternion (w, x, y, z), not necessarily normalised -> canonical axis-angle (angle in [0, pi])."""
    q = q / q.norm(dim=-1, keepdim=True)
    return roma.unitquat_to_rotvec(roma.quat_wxyz_to_xyzw(q), shortest_arc=True)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    q = q / q.norm(dim=-1, keepdim=True)
    return roma.unitquat_to_rotmat(roma.quat_wxyz_to_xyzw(q))


def matrix_to_quaternion(m: torch.Tensor) -> torch.Tensor:
    q = roma.quat_xyzw_to_wxyz(roma.rotmat_to_unitquat(m))
    return torch.where(q[..., :1] < 0, -q, q)


def matrix_to_rot6d(m: torch.Tensor) -> torch.Tensor:
    return m[..., :, :2].transpose(-1, -2).reshape(*m.shape[:-2], 6)


def rot6d_to_matrix(r6: torch.Tensor) -> torch.Tensor:
    """6D -> rotation matrix by Gram-Schmidt (any 6-vector with independent halves is accepted)."""
    cols = r6.reshape(*r6.shape[:-1], 2, 3).transpose(-1, -2)
    return roma.special_gramschmidt(cols)


def axis_angle_to_rot6d(aa: torch.Tensor) -> torch.Tensor:
    return matrix_to_rot6d(axis_angle_to_matrix(aa))


def rot6d_to_axis_angle(r6: torch.Tensor) -> torch.Tensor:
    return matrix_to_axis_angle(rot6d_to_matrix(r6))


def canonical_axis_angle(aa: torch.Tensor) -> torch.Tensor:
    """The same rotation with angle in [0, pi] (e.g. a 3*pi/2 turn about x becomes pi/2 about -x)."""
    return quaternion_to_axis_angle(axis_angle_to_quaternion(aa))


def geodesic_distance(aa1: torch.Tensor, aa2: torch.Tensor) -> torch.Tensor:
    """Angle (radians, in [0, pi]) of the relative rotation between two axis-angle rotations (..., 3)."""
    return roma.rotmat_geodesic_distance(axis_angle_to_matrix(aa1), axis_angle_to_matrix(aa2))


def geodesic_degrees(aa1: torch.Tensor, aa2: torch.Tensor) -> torch.Tensor:
    return geodesic_distance(aa1, aa2) * (180.0 / math.pi)
