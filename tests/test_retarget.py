"""blender_dposer.retarget without Blender: the SMPL-X <-> rig conversion of blender.md 1.5 on the official SMPL-X
rig and on an A-pose rig with arbitrary bone orientations, calibration and armature axes."""
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
from rig_helpers import C, angle_between, random_aa, random_rotations, rodrigues  # noqa: E402
from rig_helpers import apose_rig, zero_pose_basis  # noqa: E402


# ---------------------------------------------------------------------------------------------------------
# Bone rest matrices.

def test_bone_matrix_from_head_tail_roll(rng):
    # the official SMPL-X rig: bones along +Z, roll 0 -> Rx(+90 deg) = C (blender.md 1.1, verified in Blender)
    np.testing.assert_allclose(retarget.bone_matrix_from_head_tail_roll([1, 2, 3], [1, 2, 3.1], 0.0), C, atol=1e-15)
    np.testing.assert_allclose(retarget.bone_matrix_from_head_tail_roll([0, 0, 0], [0, 1, 0], 0.0), np.eye(3), atol=1e-15)
    dirs = rng.normal(size=(200, 3))
    dirs[:3] = [[0, -1, 0], [1e-6, -1, 0], [0, -1, 1e-3]]  # the -Y special cases
    rolls = rng.uniform(-np.pi, np.pi, 200)
    B = retarget.bone_matrix_from_head_tail_roll(np.zeros(3), dirs, rolls)
    np.testing.assert_allclose(B @ rot.transpose(B), np.broadcast_to(np.eye(3), B.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(B), 1.0, atol=1e-9)
    unit = dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
    np.testing.assert_allclose(B[:, :, 1], unit, atol=1e-5)  # +Y along the bone (Blender snaps within 2.5e-4 of -Y)
    np.testing.assert_allclose(B[3:, :, 1], unit[3:], atol=1e-12)
    # roll turns the bone about its own Y axis
    B0 = retarget.bone_matrix_from_head_tail_roll(np.zeros(3), dirs, 0.0)
    np.testing.assert_allclose(B, B0 @ rot.rot_y(rolls), atol=1e-5)
    np.testing.assert_allclose(B[3:], B0[3:] @ rot.rot_y(rolls[3:]), atol=1e-9)


# ---------------------------------------------------------------------------------------------------------
# Formula (a): the official SMPL-X rig (quaternion == axis-angle).

def test_official_rig_quaternion_equals_axis_angle(rng):
    import torch

    from dposer.core import kinematics as skeleton

    rig = retarget.official_smplx_rig()
    assert rig.names[0] == "root" and rig.names[1:] == sk.JOINT_NAMES
    np.testing.assert_allclose(rig.rest_rot, np.broadcast_to(C, rig.rest_rot.shape), atol=1e-15)
    aa = random_aa(rng, 5, 55, max_angle=2.0)
    R = rodrigues(aa)
    # per bone: L = B^-1 C R C^-1 B with B = C is R itself
    np.testing.assert_allclose(retarget.smplx_to_local(R, rig.rest_rot[1:], C), R, atol=1e-12)
    rt = retarget.Retarget(rig, {j: j for j in sk.JOINT_NAMES})
    L = rt.basis_from_smplx(R)
    np.testing.assert_allclose(L[:, 1:], R, atol=1e-12)
    np.testing.assert_allclose(L[:, 0], np.broadcast_to(np.eye(3), (5, 3, 3)))  # root stays at rest
    q = rot.matrix_to_quaternion(L[:, 1:])
    np.testing.assert_allclose(q, rot.axis_angle_to_quaternion(aa), atol=1e-12)  # rotation_quaternion == axis-angle
    np.testing.assert_allclose(rt.smplx_aa_from_basis(L), aa, atol=1e-9)
    # FK of the Blender rig = C @ SMPL-X FK, with the pelvis translation through its location (blender.md 1.5d)
    t = rng.normal(size=(5, 3)) * 0.3
    loc = np.zeros((5, len(rig), 3))
    loc[:, 1] = retarget.transl_to_location(t, rig.rest_rot[1], C)
    np.testing.assert_allclose(loc[:, 1], t, atol=1e-12)  # the pelvis bone's frame is the SMPL-X frame
    heads = rig.pose_matrices(L, loc)[..., :3, 3]
    ref = skeleton.forward_kinematics(torch.tensor(aa), translation=torch.tensor(t)).numpy()
    np.testing.assert_allclose(heads[:, 1:], ref @ C.T, atol=1e-9)


def test_meshcapade_rig_is_identity_too(rng):
    # bones along +Y (identity rest), Y-up armature space: C = I, B = I
    R = random_rotations(rng, 10)
    np.testing.assert_allclose(retarget.smplx_to_local(R, np.eye(3), retarget.C_YUP), R, atol=1e-12)
    np.testing.assert_allclose(retarget.local_to_smplx(R, np.eye(3), retarget.C_YUP), R, atol=1e-12)


def test_formula_a_with_random_rolls(rng):
    # a T-pose rig (rest = SMPL-X zero pose) whose bones point anywhere with any roll: (a) both ways, exact
    B = random_rotations(rng, 55)
    R = random_rotations(rng, 4, 55)
    L = retarget.smplx_to_local(R, B, C)
    np.testing.assert_allclose(retarget.local_to_smplx(L, B, C), R, atol=1e-12)
    heads = sk.rest_joints() @ C.T
    rig = retarget.Rig(sk.JOINT_NAMES, sk.PARENTS, retarget.matrix_4x4(B, heads))
    rt = retarget.Retarget(rig, {j: j for j in sk.JOINT_NAMES}, C)  # no calibration: M = B
    np.testing.assert_allclose(rt.basis_from_smplx(R), L, atol=1e-12)  # (b) reduces to (a)
    np.testing.assert_allclose(rt.smplx_from_basis(L), R, atol=1e-12)
    _, pos = sk.smplx_fk(R)
    np.testing.assert_allclose(rig.pose_matrices(L)[..., :3, 3], pos @ C.T, atol=1e-12)


def test_calibration_from_posed_zero_pose(rng):
    rig, R_A, M_true = apose_rig(rng)
    cal = retarget.calibration_from_basis(rig, zero_pose_basis(rig, R_A), bones=sk.JOINT_NAMES)
    for b in sk.JOINT_NAMES:
        np.testing.assert_allclose(cal[b], M_true[b], atol=1e-12)
    # unmoved bones are calibrated to their rest orientation
    np.testing.assert_allclose(cal["spine1"], rig.rest_rot[rig.index["spine1"]], atol=1e-12)
    # from evaluated pose matrices (4x4) as well
    pose4 = rig.pose_matrices(zero_pose_basis(rig, R_A))
    cal4 = retarget.calibration_from_pose(rig, pose4, bones=["left_elbow"])
    np.testing.assert_allclose(cal4["left_elbow"], M_true["left_elbow"], atol=1e-12)
    # stored as quaternions (custom property) and back
    back = retarget.calibration_from_dict(retarget.calibration_to_dict(cal))
    for b in cal:
        np.testing.assert_allclose(back[b], cal[b], atol=1e-12)
    with pytest.raises(ValueError):
        retarget.calibration_from_dict({"pelvis": [0, 0, 0]})


@pytest.mark.parametrize("helper_rotated", [False, True])
def test_apose_rig_round_trip_and_fk(rng, helper_rotated):
    import torch

    from dposer.core import kinematics as skeleton

    rig, R_A, _ = apose_rig(rng)
    cal = retarget.calibration_from_basis(rig, zero_pose_basis(rig, R_A), bones=sk.JOINT_NAMES)
    rt = retarget.Retarget(rig, {j: j for j in sk.JOINT_NAMES}, C, cal)
    F = 6
    aa = random_aa(rng, F, 55, max_angle=1.2)
    aa[:, 0] = random_aa(rng, F)  # any global orientation
    R = rodrigues(aa)
    current = rig.identity_basis(F)
    if helper_rotated:  # an unmapped bone the artist rotated: mapped bones compensate, reading folds it in
        current[:, rig.index["spine_helper"]] = random_rotations(rng, F)
    L = rt.basis_from_smplx(R, current_basis=current)
    np.testing.assert_allclose(L[:, rig.index["spine_helper"]], current[:, rig.index["spine_helper"]])
    np.testing.assert_allclose(L[:, rig.index["root"]], current[:, rig.index["root"]])
    # SMPL-X -> Blender local -> SMPL-X
    np.testing.assert_allclose(rt.smplx_from_basis(L), R, atol=1e-10)
    np.testing.assert_allclose(rt.smplx_aa_from_basis(L), aa, atol=1e-8)
    # FK of the Blender-side rotations with the rest matrices = dposer.core.kinematics FK of the SMPL-X pose
    t = rng.normal(size=(F, 3)) * 0.2
    loc = np.zeros((F, len(rig), 3))
    loc[:, rig.index["pelvis"]] = retarget.transl_to_location(t, rig.rest_rot[rig.index["pelvis"]], C)
    np.testing.assert_allclose(retarget.location_to_transl(loc[:, rig.index["pelvis"]],
                                                     rig.rest_rot[rig.index["pelvis"]], C), t, atol=1e-12)
    heads = rig.pose_matrices(L, loc)[..., :3, 3]
    ref = skeleton.forward_kinematics(torch.tensor(aa), translation=torch.tensor(t)).numpy() @ C.T
    idx = [rig.index[j] for j in sk.JOINT_NAMES]
    np.testing.assert_allclose(heads[:, idx], ref, atol=1e-9)
    # reading the posed orientations directly (e.g. evaluated pose_bone.matrix) gives the same
    np.testing.assert_allclose(rt.smplx_from_pose(rig.pose_matrices(L, loc)), R, atol=1e-10)


def test_rest_pose_reads_as_a_pose(rng):
    rig, R_A, _ = apose_rig(rng)
    cal = retarget.calibration_from_basis(rig, zero_pose_basis(rig, R_A), bones=sk.JOINT_NAMES)
    rt = retarget.Retarget(rig, {j: j for j in sk.JOINT_NAMES}, C, cal)
    # the rig at rest is the A-pose; the zero-pose keys read as the SMPL-X zero pose
    np.testing.assert_allclose(rt.smplx_from_basis(rig.identity_basis()), R_A, atol=1e-12)
    np.testing.assert_allclose(rt.smplx_from_basis(zero_pose_basis(rig, R_A)),
                               np.broadcast_to(np.eye(3), (55, 3, 3)), atol=1e-12)


def test_unmapped_smplx_joint_folds_into_child(rng):
    rig, R_A, _ = apose_rig(rng)
    cal = retarget.calibration_from_basis(rig, zero_pose_basis(rig, R_A), bones=sk.JOINT_NAMES)
    bone_map = {j: j for j in sk.JOINT_NAMES if j not in ("spine2", "left_eye_smplhf", "right_eye_smplhf")}
    rt = retarget.Retarget(rig, bone_map, C, cal)
    assert "spine2" in rt.unmapped_joints and not rt.known_mask()[sk.JOINT_INDEX["spine2"]]
    R = random_rotations(rng, 3, 55)
    back = rt.smplx_from_basis(rt.basis_from_smplx(R))
    s1, s2, s3 = (sk.JOINT_INDEX[n] for n in ("spine1", "spine2", "spine3"))
    np.testing.assert_allclose(back[:, s2], np.broadcast_to(np.eye(3), (3, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(back[:, s3], R[:, s2] @ R[:, s3], atol=1e-10)  # spine2's bend folds into spine3
    keep = [j for j in range(55) if j not in (s2, s3, 23, 24)]
    np.testing.assert_allclose(back[:, keep], R[:, keep], atol=1e-10)


def test_evaluated_pose_of_unmapped_parent(rng):
    # an unmapped parent driven by a constraint: its evaluated orientation replaces propagation
    rig, R_A, _ = apose_rig(rng)
    cal = retarget.calibration_from_basis(rig, zero_pose_basis(rig, R_A), bones=sk.JOINT_NAMES)
    rt = retarget.Retarget(rig, {j: j for j in sk.JOINT_NAMES}, C, cal)
    R = random_rotations(rng, 2, 55)
    basis = rig.identity_basis(2)
    basis[:, rig.index["spine_helper"]] = random_rotations(rng, 2)  # what the constraint produces
    evaluated = rig.pose_rotations(rt.basis_from_smplx(R, current_basis=basis))
    L = rt.basis_from_smplx(R, evaluated_pose=evaluated)  # current basis unknown (identity)
    np.testing.assert_allclose(rt.smplx_from_pose(rig.pose_rotations(np.where(
        np.arange(len(rig))[:, None, None] == rig.index["spine_helper"], basis, L))), R, atol=1e-10)


def test_auto_calibration(rng):
    # T-pose rig with random bone orientations: the automatic calibration is exactly the rest (M = B)
    B = random_rotations(rng, 55)
    rig_t = retarget.Rig(sk.JOINT_NAMES, sk.PARENTS, retarget.matrix_4x4(B, 100.0 * sk.rest_joints() @ C.T))  # centimetres
    cal = retarget.auto_calibration(rig_t, {j: j for j in sk.JOINT_NAMES}, C)
    for j, name in enumerate(sk.JOINT_NAMES):
        np.testing.assert_allclose(cal[name], B[j], atol=1e-9)
    # A-pose rig: limb directions come out exact; twist of single-child bones only approximately
    rig, R_A, M_true = apose_rig(rng)
    bone_map = {j: j for j in sk.JOINT_NAMES}
    cal = retarget.auto_calibration(rig, bone_map, C)
    err = {j: float(angle_between(cal[j], M_true[j])) for j in sk.JOINT_NAMES}
    exact = ("pelvis", "spine1", "spine2", "spine3", "neck", "left_collar", "right_collar", "left_wrist",
             "right_wrist", "left_index2", "right_middle3")
    assert max(err[j] for j in exact) < 1e-9, {j: err[j] for j in exact}
    assert max(err.values()) < np.radians(5.0), err
    rt = retarget.Retarget(rig, bone_map, C, cal)
    L = rt.basis_from_smplx(np.broadcast_to(np.eye(3), (55, 3, 3)))  # the SMPL-X zero pose on the rig
    heads = rig.pose_matrices(L)[..., :3, 3]
    ref = sk.rest_joints() @ C.T
    idx = [rig.index[j] for j in sk.JOINT_NAMES]
    assert np.abs(heads[idx] - ref).max() < 0.02  # metres


def test_retarget_rejects_bad_maps(rng):
    rig = retarget.official_smplx_rig()
    with pytest.raises(ValueError, match="unknown SMPL-X joint"):
        retarget.Retarget(rig, {"left_pinkie1": "left_pinky1"})
    with pytest.raises(ValueError, match="not in the rig"):
        retarget.Retarget(rig, {"pelvis": "Hips"})
    with pytest.raises(ValueError, match="mapped to both"):
        retarget.Retarget(rig, {"pelvis": "pelvis", "spine1": "pelvis"})
    with pytest.raises(ValueError, match="cycle"):
        retarget.Rig(["a", "b"], ["b", "a"], np.tile(np.eye(4), (2, 1, 1)))
    with pytest.raises(ValueError):
        rot.euler_to_matrix([0, 0, 0], "XXY")


def test_armature_spec_for_add_dposer_armature():
    spec = retarget.armature_spec()
    assert spec["names"][0] == "root" and spec["parents"][1] == "root" and len(spec["names"]) == 56
    np.testing.assert_allclose(spec["tails"] - spec["heads"], np.broadcast_to([0, 0, 0.1], (56, 3)))
    np.testing.assert_allclose(spec["heads"][1:], sk.rest_joints() @ C.T, atol=1e-12)
    assert spec["heads"][1 + sk.JOINT_INDEX["head"], 2] > 1.4  # Z up, about 1.6 m
    assert (spec["rolls"] == 0).all()


def test_armature_axes():
    np.testing.assert_allclose(retarget.armature_axes(), C)
    # Mixamo/FBX: object rotation X +90 deg (and scale 0.01): armature space is Y-up, C = I
    obj = retarget.matrix_4x4(rot.rot_x(np.pi / 2) * 0.01, [1.0, 2.0, 0.0])
    np.testing.assert_allclose(retarget.armature_axes(obj), np.eye(3), atol=1e-12)
    # an armature object turned 90 deg about Z: C absorbs it, so the body still faces the world's -Y
    Cz = retarget.armature_axes(rot.rot_z(np.pi / 2))
    np.testing.assert_allclose(rot.rot_z(np.pi / 2) @ Cz @ [0, 0, 1], [0, -1, 0], atol=1e-12)
