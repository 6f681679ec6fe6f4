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

This module gathers the three modules the operators use, so they read ``rig_math.X``:

- :mod:`dposer.spec.skeleton`   SMPL-X tables, rest offsets, FK, hand mirroring, pose dicts
- :mod:`dposer.spec.rotations`  quaternions, axis-angle, Euler orders, rotation modes, continuity (Blender's
  conventions)
- :mod:`.retarget`               armature axes, formulas (a)-(d), :class:`Rig`, calibration, :class:`Retarget`
- :mod:`.crowd_layout`           the crowd grid
"""
from dposer.spec.rotations import *  # noqa: F401,F403
from dposer.spec.rotations import __all__ as _rotations_all
from dposer.spec.skeleton import *  # noqa: F401,F403
from dposer.spec.skeleton import __all__ as _smplx_all

from .crowd_layout import grid_offsets  # noqa: F401
from .retarget import *  # noqa: F401,F403
from .retarget import __all__ as _retarget_all

__all__ = list(_smplx_all) + list(_rotations_all) + list(_retarget_all) + ["grid_offsets"]
