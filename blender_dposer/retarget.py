# SPDX-License-Identifier: GPL-3.0-or-later
"""Retargeting between a Blender rig and SMPL-X, NumPy only (no ``bpy``): armature axes, the per-bone formulas,
rest matrices from edit-bone data, :class:`Rig`, calibration, :class:`Retarget`, the official SMPL-X rig and the crowd
grid (blender.md section 1.5; the math is written out in :mod:`blender_dposer.rig_math`).
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from dposer.spec.rotations import (axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quaternion, orthonormalize,
    quaternion_to_matrix, transpose)
from dposer.spec.skeleton import JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS, rest_joints, smplx_global_rotations

__all__ = [
    "C_ZUP", "C_YUP", "armature_axes", "armature_up_axes", "smplx_to_local", "local_to_smplx", "transl_to_location",
    "location_to_transl", "bone_matrix_from_head_tail_roll", "matrix_4x4", "Rig", "calibration_from_pose",
    "calibration_from_basis", "auto_calibration", "calibration_to_dict", "calibration_from_dict", "Retarget",
    "official_smplx_rig", "armature_spec",
]

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
