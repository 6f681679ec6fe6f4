"""blender_dposer.rig_math without Blender: rotations, Euler orders, continuity, mirroring, and the SMPL-X <-> rig
conversion of blender.md 1.5 on the official SMPL-X rig and on an A-pose rig with arbitrary bone orientations."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from blender_dposer import rig_math as rm  # noqa: E402

C = rm.C_ZUP


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


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
    return np.linalg.norm(rm.matrix_to_axis_angle(rm.transpose(a) @ b), axis=-1)


# ---------------------------------------------------------------------------------------------------------
# Tables shared with the backend.

def test_smplx_tables_match_backend():
    from dposer import layout, skeleton

    assert rm.JOINT_NAMES == layout.JOINT_NAMES
    assert rm.PARENTS == layout.PARENTS
    np.testing.assert_array_equal(rm.REST_OFFSETS, skeleton.REST_OFFSETS)
    np.testing.assert_allclose(rm.rest_joints(), skeleton.rest_joints(), atol=1e-6)
    assert set(rm.MODELLED_JOINTS) == set(layout.VECTOR_JOINTS)


def test_smplx_fk_matches_backend(rng):
    import torch

    from dposer import skeleton

    aa = random_aa(rng, 4, 55, max_angle=1.5)
    t = rng.normal(size=(4, 3))
    _, pos = rm.smplx_fk(aa, translation=t)
    ref = skeleton.forward_kinematics(torch.tensor(aa), translation=torch.tensor(t)).numpy()
    np.testing.assert_allclose(pos, ref, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# Quaternion <-> axis-angle <-> matrix.

def test_axis_angle_quaternion_matrix_round_trips(rng):
    aa = random_aa(rng, 500)
    aa[:5] = [[0, 0, 0], [1e-9, 0, 0], [0, 0, np.pi], [0, np.pi - 1e-7, 0], [1e-5, -2e-5, 3e-6]]
    ref = rodrigues(aa)
    q = rm.axis_angle_to_quaternion(aa)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(rm.quaternion_to_matrix(q), ref, atol=1e-12)
    np.testing.assert_allclose(rm.axis_angle_to_matrix(aa), ref, atol=1e-12)
    # matrix -> quaternion (w >= 0) -> matrix
    q2 = rm.matrix_to_quaternion(ref)
    assert (q2[:, 0] >= 0).all()
    np.testing.assert_allclose(rm.quaternion_to_matrix(q2), ref, atol=1e-12)
    np.testing.assert_allclose(np.abs(np.sum(q2 * q, -1)), 1.0, atol=1e-12)  # same up to sign
    # matrix -> axis-angle: canonical and the same rotation
    aa2 = rm.matrix_to_axis_angle(ref)
    assert (np.linalg.norm(aa2, axis=-1) <= np.pi + 1e-9).all()
    np.testing.assert_allclose(rodrigues(aa2), ref, atol=1e-9)
    inside = np.linalg.norm(aa, axis=-1) < np.pi - 1e-3
    np.testing.assert_allclose(aa2[inside], aa[inside], atol=1e-9)
    # quaternion -> axis-angle ignores the sign of q
    np.testing.assert_allclose(rm.quaternion_to_axis_angle(-q)[inside], aa[inside], atol=1e-9)


def test_canonical_axis_angle_folds_angles_above_pi():
    # mathutils' to_axis_angle can return up to 2 pi (w < 0 gave 5.61 rad, blender.md 1.5e)
    aa = np.array([[5.61, 0.0, 0.0], [0.0, 0.0, 3 * np.pi / 2]])
    c = rm.canonical_axis_angle(aa)
    np.testing.assert_allclose(c, [[5.61 - 2 * np.pi, 0, 0], [0, 0, -np.pi / 2]], atol=1e-12)
    np.testing.assert_allclose(rodrigues(c), rodrigues(aa), atol=1e-12)


def test_quaternion_multiply_is_matrix_product(rng):
    a, b = rm.axis_angle_to_quaternion(random_aa(rng, 20)), rm.axis_angle_to_quaternion(random_aa(rng, 20))
    np.testing.assert_allclose(rm.quaternion_to_matrix(rm.quaternion_multiply(a, b)),
                               rm.quaternion_to_matrix(a) @ rm.quaternion_to_matrix(b), atol=1e-12)
    np.testing.assert_allclose(rm.quaternion_to_matrix(rm.quaternion_conjugate(a)),
                               rm.transpose(rm.quaternion_to_matrix(a)), atol=1e-12)


def test_axis_angle4_blender_mode(rng):
    aa = random_aa(rng, 50)
    m = rodrigues(aa)
    v = rm.matrix_to_axis_angle4(m)
    np.testing.assert_allclose(rm.axis_angle4_to_matrix(v), m, atol=1e-10)
    np.testing.assert_allclose(rm.matrix_to_axis_angle4(np.eye(3)), [0, 0, 1, 0])  # Blender's default value
    np.testing.assert_allclose(rm.axis_angle4_to_matrix([0.3, 0, 0, 5.0]), rm.rot_z(0.3), atol=1e-12)  # axis scaled


# ---------------------------------------------------------------------------------------------------------
# Euler, Blender convention.

def test_euler_convention():
    x, y, z = 0.3, -0.7, 1.1
    np.testing.assert_allclose(rm.euler_to_matrix([x, y, z], "XYZ"), rm.rot_z(z) @ rm.rot_y(y) @ rm.rot_x(x), atol=1e-15)
    np.testing.assert_allclose(rm.euler_to_matrix([x, y, z], "ZXY"), rm.rot_y(y) @ rm.rot_x(x) @ rm.rot_z(z), atol=1e-15)
    # a BVH channel list "Zrotation Xrotation Yrotation" means Rz @ Rx @ Ry = Blender order 'YXZ'
    np.testing.assert_allclose(rm.euler_to_matrix([x, y, z], "YXZ"), rm.rot_z(z) @ rm.rot_x(x) @ rm.rot_y(y), atol=1e-15)
    np.testing.assert_allclose(rm.rot_x(np.pi / 2), C, atol=1e-15)  # C_ZUP = Rx(+90 deg)
    np.testing.assert_allclose(C @ [0, 1, 0], [0, 0, 1], atol=1e-15)  # SMPL-X up -> Blender up
    np.testing.assert_allclose(C @ [0, 0, 1], [0, -1, 0], atol=1e-15)  # SMPL-X forward -> Blender -Y (front view)


@pytest.mark.parametrize("order", rm.EULER_ORDERS)
def test_euler_round_trips_all_orders(order, rng):
    # axis-angle -> quaternion -> matrix -> Euler -> matrix -> axis-angle
    aa = random_aa(rng, 300)
    m = rm.quaternion_to_matrix(rm.axis_angle_to_quaternion(aa))
    e = rm.matrix_to_euler(m, order)
    m2 = rm.euler_to_matrix(e, order)
    np.testing.assert_allclose(m2, m, atol=1e-12)
    np.testing.assert_allclose(rm.matrix_to_axis_angle(m2)[np.linalg.norm(aa, axis=-1) < 3.1],
                               aa[np.linalg.norm(aa, axis=-1) < 3.1], atol=1e-9)
    # Euler -> matrix -> Euler gives the angles back inside the principal range
    i, j, k = ("XYZ".index(c) for c in order)
    e0 = np.zeros((300, 3))
    e0[:, [i, k]] = rng.uniform(-1.5, 1.5, (300, 2))
    e0[:, j] = rng.uniform(-1.5, 1.5, 300)
    np.testing.assert_allclose(rm.matrix_to_euler(rm.euler_to_matrix(e0, order), order), e0, atol=1e-10)
    # through the generic rotation-mode helpers
    np.testing.assert_allclose(rm.rotation_to_matrix(rm.matrix_to_rotation(m, order), order), m, atol=1e-12)
    # gimbal lock (middle angle +-90 deg) still reproduces the matrix
    g = e0[:10].copy()
    g[:, j] = np.pi / 2 * np.sign(rng.normal(size=10))
    mg = rm.euler_to_matrix(g, order)
    np.testing.assert_allclose(rm.euler_to_matrix(rm.matrix_to_euler(mg, order), order), mg, atol=1e-7)


@pytest.mark.parametrize("order", rm.EULER_ORDERS)
def test_euler_sequence_is_continuous(order, rng):
    # a bone spinning 2.5 turns about a tilted axis: no +-2 pi (or +-pi) jumps between frames
    axis = np.array([0.3, 0.9, -0.2]) / np.linalg.norm([0.3, 0.9, -0.2])
    angles = np.linspace(0, 5 * np.pi, 1000)
    mats = rodrigues(axis * angles[:, None])
    assert np.abs(np.diff(rm.matrix_to_euler(mats, order), axis=0)).max() > 6.0  # frame by frame it wraps
    e = rm.euler_sequence(mats, order)
    np.testing.assert_allclose(rm.euler_to_matrix(e, order), mats, atol=1e-10)
    assert np.abs(np.diff(e, axis=0)).max() < 0.2
    # the seam with the key before the range stays continuous too (compat far from the principal range)
    prev = rm.matrix_to_euler(mats[0], order) + 2 * np.pi
    e2 = rm.euler_sequence(mats, order, compat=prev)
    assert np.abs(e2[0] - prev).max() < 1e-9
    np.testing.assert_allclose(rm.euler_to_matrix(e2, order), mats, atol=1e-10)


@pytest.mark.parametrize("mode", rm.ROTATION_MODES)
def test_rotation_modes_round_trip(mode, rng):
    mats = rodrigues(np.array([0.2, -0.5, 0.4]) * np.linspace(0, 8, 60)[:, None])
    seq = rm.rotation_sequence(mats, mode)
    assert seq.shape == (60, rm.rotation_channels(mode))
    np.testing.assert_allclose(rm.rotation_to_matrix(seq, mode), mats, atol=1e-10)
    assert np.abs(np.diff(seq, axis=0)).max() < 0.5  # continuous F-curves


def test_quaternion_sign_continuity(rng):
    aa = np.array([0.4, 0.1, -0.3]) * np.linspace(0, 20, 100)[:, None]  # passes through several full turns
    q = rm.axis_angle_to_quaternion(rm.canonical_axis_angle(aa))  # w >= 0: sign jumps
    assert (np.sum(q[1:] * q[:-1], -1) < 0).any()
    flips = np.where(rng.random(100) < 0.5, -1.0, 1.0)[:, None]
    c = rm.quaternion_continuity(q * flips)
    assert (np.sum(c[1:] * c[:-1], -1) >= 0).all()
    np.testing.assert_allclose(rm.quaternion_to_matrix(c), rm.quaternion_to_matrix(q), atol=1e-12)
    # seeded by the key before the range
    seed = -c[0]
    c2 = rm.quaternion_continuity(q * flips, seed=seed)
    np.testing.assert_allclose(c2, -c, atol=1e-15)
    # several bones at once (frames on axis 0), bones independent
    qb = np.stack([q * flips, q], axis=1)
    cb = rm.quaternion_continuity(qb)
    assert (np.sum(cb[1:] * cb[:-1], -1) >= 0).all()


# ---------------------------------------------------------------------------------------------------------
# Hand mirroring.

def test_hand_mirroring_matches_backend(rng):
    from dposer import layout

    hand = rng.normal(size=(7, 45)).astype(np.float32)
    np.testing.assert_array_equal(rm.mirror_hand(hand), layout.mirror_hand(hand))
    np.testing.assert_array_equal(rm.mirror_hand(rm.mirror_hand(hand)), hand)
    aa = random_aa(rng, 15)
    # matrix form: reflection across the sagittal plane, S R S with S = diag(-1, 1, 1)
    np.testing.assert_allclose(rodrigues(rm.mirror_hand(aa)), rm.mirror_matrix(rodrigues(aa)), atol=1e-12)
    # a mirrored left hand posed on mirrored offsets gives mirrored joint positions
    left = rm.JOINT_INDEX["left_index1"]
    right = rm.JOINT_INDEX["right_index1"]
    pose = np.zeros((55, 3))
    pose[left:left + 15] = aa
    pose[right:right + 15] = rm.mirror_hand(aa)
    _, pos = rm.smplx_fk(pose)
    np.testing.assert_allclose(pos[right:right + 15] * [-1, 1, 1], pos[left:left + 15], atol=1e-6)


def test_pose_dict_round_trip(rng):
    aa = random_aa(rng, 3, 55, max_angle=1.0)
    d = rm.pose_dict_from_joints(aa)
    assert {k: v.shape for k, v in d.items()} == {"global_orient": (3, 3), "body_pose": (3, 63), "jaw_pose": (3, 3),
                                                  "left_hand_pose": (3, 45), "right_hand_pose": (3, 45)}
    back = rm.joints_from_pose_dict(d)
    keep = [j for j in range(55) if j not in (23, 24)]  # eyes are never sent
    np.testing.assert_allclose(back[:, keep], aa[:, keep], atol=1e-6)
    # only body joints driven: the hands are left out (unobserved for the backend)
    d2 = rm.pose_dict_from_joints(aa[0], joints=rm.JOINT_NAMES[:22])
    assert set(d2) == {"global_orient", "body_pose"}


# ---------------------------------------------------------------------------------------------------------
# Bone rest matrices.

def test_bone_matrix_from_head_tail_roll(rng):
    # the official SMPL-X rig: bones along +Z, roll 0 -> Rx(+90 deg) = C (blender.md 1.1, verified in Blender)
    np.testing.assert_allclose(rm.bone_matrix_from_head_tail_roll([1, 2, 3], [1, 2, 3.1], 0.0), C, atol=1e-15)
    np.testing.assert_allclose(rm.bone_matrix_from_head_tail_roll([0, 0, 0], [0, 1, 0], 0.0), np.eye(3), atol=1e-15)
    dirs = rng.normal(size=(200, 3))
    dirs[:3] = [[0, -1, 0], [1e-6, -1, 0], [0, -1, 1e-3]]  # the -Y special cases
    rolls = rng.uniform(-np.pi, np.pi, 200)
    B = rm.bone_matrix_from_head_tail_roll(np.zeros(3), dirs, rolls)
    np.testing.assert_allclose(B @ rm.transpose(B), np.broadcast_to(np.eye(3), B.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(B), 1.0, atol=1e-9)
    unit = dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
    np.testing.assert_allclose(B[:, :, 1], unit, atol=1e-5)  # +Y along the bone (Blender snaps within 2.5e-4 of -Y)
    np.testing.assert_allclose(B[3:, :, 1], unit[3:], atol=1e-12)
    # roll turns the bone about its own Y axis
    B0 = rm.bone_matrix_from_head_tail_roll(np.zeros(3), dirs, 0.0)
    np.testing.assert_allclose(B, B0 @ rm.rot_y(rolls), atol=1e-5)
    np.testing.assert_allclose(B[3:], B0[3:] @ rm.rot_y(rolls[3:]), atol=1e-9)


# ---------------------------------------------------------------------------------------------------------
# Formula (a): the official SMPL-X rig (quaternion == axis-angle).

def test_official_rig_quaternion_equals_axis_angle(rng):
    import torch

    from dposer import skeleton

    rig = rm.official_smplx_rig()
    assert rig.names[0] == "root" and rig.names[1:] == rm.JOINT_NAMES
    np.testing.assert_allclose(rig.rest_rot, np.broadcast_to(C, rig.rest_rot.shape), atol=1e-15)
    aa = random_aa(rng, 5, 55, max_angle=2.0)
    R = rodrigues(aa)
    # per bone: L = B^-1 C R C^-1 B with B = C is R itself
    np.testing.assert_allclose(rm.smplx_to_local(R, rig.rest_rot[1:], C), R, atol=1e-12)
    rt = rm.Retarget(rig, {j: j for j in rm.JOINT_NAMES})
    L = rt.basis_from_smplx(R)
    np.testing.assert_allclose(L[:, 1:], R, atol=1e-12)
    np.testing.assert_allclose(L[:, 0], np.broadcast_to(np.eye(3), (5, 3, 3)))  # root stays at rest
    q = rm.matrix_to_quaternion(L[:, 1:])
    np.testing.assert_allclose(q, rm.axis_angle_to_quaternion(aa), atol=1e-12)  # rotation_quaternion == axis-angle
    np.testing.assert_allclose(rt.smplx_aa_from_basis(L), aa, atol=1e-9)
    # FK of the Blender rig = C @ SMPL-X FK, with the pelvis translation through its location (blender.md 1.5d)
    t = rng.normal(size=(5, 3)) * 0.3
    loc = np.zeros((5, len(rig), 3))
    loc[:, 1] = rm.transl_to_location(t, rig.rest_rot[1], C)
    np.testing.assert_allclose(loc[:, 1], t, atol=1e-12)  # the pelvis bone's frame is the SMPL-X frame
    heads = rig.pose_matrices(L, loc)[..., :3, 3]
    ref = skeleton.forward_kinematics(torch.tensor(aa), translation=torch.tensor(t)).numpy()
    np.testing.assert_allclose(heads[:, 1:], ref @ C.T, atol=1e-9)


def test_meshcapade_rig_is_identity_too(rng):
    # bones along +Y (identity rest), Y-up armature space: C = I, B = I
    R = random_rotations(rng, 10)
    np.testing.assert_allclose(rm.smplx_to_local(R, np.eye(3), rm.C_YUP), R, atol=1e-12)
    np.testing.assert_allclose(rm.local_to_smplx(R, np.eye(3), rm.C_YUP), R, atol=1e-12)


def test_formula_a_with_random_rolls(rng):
    # a T-pose rig (rest = SMPL-X zero pose) whose bones point anywhere with any roll: (a) both ways, exact
    B = random_rotations(rng, 55)
    R = random_rotations(rng, 4, 55)
    L = rm.smplx_to_local(R, B, C)
    np.testing.assert_allclose(rm.local_to_smplx(L, B, C), R, atol=1e-12)
    heads = rm.rest_joints() @ C.T
    rig = rm.Rig(rm.JOINT_NAMES, rm.PARENTS, rm.matrix_4x4(B, heads))
    rt = rm.Retarget(rig, {j: j for j in rm.JOINT_NAMES}, C)  # no calibration: M = B
    np.testing.assert_allclose(rt.basis_from_smplx(R), L, atol=1e-12)  # (b) reduces to (a)
    np.testing.assert_allclose(rt.smplx_from_basis(L), R, atol=1e-12)
    _, pos = rm.smplx_fk(R)
    np.testing.assert_allclose(rig.pose_matrices(L)[..., :3, 3], pos @ C.T, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# Formula (b) on an A-pose rig with arbitrary rest orientations.

A_POSE = {"left_shoulder": rm.rot_z(-0.8), "right_shoulder": rm.rot_z(0.8),
          "left_hip": rm.rot_z(0.15), "right_hip": rm.rot_z(-0.15)}


def apose_rig(rng, scale: float = 1.0):
    """An A-pose rig built from the built-in skeleton: SMPL-X-named bones plus two unmapped bones ('root' above the
    pelvis, 'spine_helper' between spine2 and spine3 with its head at spine3's), armature Z-up, bones pointing at a
    child (or anywhere) with random rolls, some with entirely random rest orientations. Returns (rig, R_A, M_true)."""
    R_A = np.tile(np.eye(3), (55, 1, 1))
    for name, r in A_POSE.items():
        R_A[rm.JOINT_INDEX[name]] = r
    G_A, J_A = rm.smplx_fk(R_A)
    heads = (J_A @ C.T) * scale
    first_child = {}
    for j, p in enumerate(rm.PARENTS):
        first_child.setdefault(p, j)
    B = np.empty((55, 3, 3))
    for j in range(55):
        if j % 3 == 2:
            B[j] = random_rotations(rng)  # arbitrary orientation
        else:
            d = heads[first_child[j]] - heads[j] if j in first_child else rng.normal(size=3)
            B[j] = rm.bone_matrix_from_head_tail_roll(np.zeros(3), d, rng.uniform(-np.pi, np.pi))
    names = ["root"] + list(rm.JOINT_NAMES) + ["spine_helper"]
    parents = [None] + ["root" if p < 0 else rm.JOINT_NAMES[p] for p in rm.PARENTS] + ["spine2"]
    parents[1 + rm.JOINT_INDEX["spine3"]] = "spine_helper"
    rest = np.concatenate([rm.matrix_4x4(random_rotations(rng), [0.0, 0.0, 0.0])[None],
                           rm.matrix_4x4(B, heads),
                           rm.matrix_4x4(random_rotations(rng), heads[rm.JOINT_INDEX["spine3"]])[None]])
    rig = rm.Rig(names, parents, rest)
    # bone k's orientation in the SMPL-X zero pose: undo the A-pose's global rotation
    M_true = {rm.JOINT_NAMES[j]: C @ G_A[j].T @ C.T @ B[j] for j in range(55)}
    return rig, R_A, M_true


def zero_pose_basis(rig, R_A):
    """What an artist keys to put the A-pose rig in the SMPL-X zero pose: the inverse A rotations at the shoulders
    and hips, through formula (a) relative to the rig's own rest (only those four bones move)."""
    L = rig.identity_basis()
    for name in A_POSE:
        k = rig.index[name]
        L[k] = rm.smplx_to_local(R_A[rm.JOINT_INDEX[name]].T, rig.rest_rot[k], C)
    return L


def test_calibration_from_posed_zero_pose(rng):
    rig, R_A, M_true = apose_rig(rng)
    cal = rm.calibration_from_basis(rig, zero_pose_basis(rig, R_A), bones=rm.JOINT_NAMES)
    for b in rm.JOINT_NAMES:
        np.testing.assert_allclose(cal[b], M_true[b], atol=1e-12)
    # unmoved bones are calibrated to their rest orientation
    np.testing.assert_allclose(cal["spine1"], rig.rest_rot[rig.index["spine1"]], atol=1e-12)
    # from evaluated pose matrices (4x4) as well
    pose4 = rig.pose_matrices(zero_pose_basis(rig, R_A))
    cal4 = rm.calibration_from_pose(rig, pose4, bones=["left_elbow"])
    np.testing.assert_allclose(cal4["left_elbow"], M_true["left_elbow"], atol=1e-12)
    # stored as quaternions (custom property) and back
    back = rm.calibration_from_dict(rm.calibration_to_dict(cal))
    for b in cal:
        np.testing.assert_allclose(back[b], cal[b], atol=1e-12)
    with pytest.raises(ValueError):
        rm.calibration_from_dict({"pelvis": [0, 0, 0]})


@pytest.mark.parametrize("helper_rotated", [False, True])
def test_apose_rig_round_trip_and_fk(rng, helper_rotated):
    import torch

    from dposer import skeleton

    rig, R_A, _ = apose_rig(rng)
    cal = rm.calibration_from_basis(rig, zero_pose_basis(rig, R_A), bones=rm.JOINT_NAMES)
    rt = rm.Retarget(rig, {j: j for j in rm.JOINT_NAMES}, C, cal)
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
    # FK of the Blender-side rotations with the rest matrices = dposer.skeleton FK of the SMPL-X pose
    t = rng.normal(size=(F, 3)) * 0.2
    loc = np.zeros((F, len(rig), 3))
    loc[:, rig.index["pelvis"]] = rm.transl_to_location(t, rig.rest_rot[rig.index["pelvis"]], C)
    np.testing.assert_allclose(rm.location_to_transl(loc[:, rig.index["pelvis"]],
                                                     rig.rest_rot[rig.index["pelvis"]], C), t, atol=1e-12)
    heads = rig.pose_matrices(L, loc)[..., :3, 3]
    ref = skeleton.forward_kinematics(torch.tensor(aa), translation=torch.tensor(t)).numpy() @ C.T
    idx = [rig.index[j] for j in rm.JOINT_NAMES]
    np.testing.assert_allclose(heads[:, idx], ref, atol=1e-9)
    # reading the posed orientations directly (e.g. evaluated pose_bone.matrix) gives the same
    np.testing.assert_allclose(rt.smplx_from_pose(rig.pose_matrices(L, loc)), R, atol=1e-10)


def test_rest_pose_reads_as_a_pose(rng):
    rig, R_A, _ = apose_rig(rng)
    cal = rm.calibration_from_basis(rig, zero_pose_basis(rig, R_A), bones=rm.JOINT_NAMES)
    rt = rm.Retarget(rig, {j: j for j in rm.JOINT_NAMES}, C, cal)
    # the rig at rest is the A-pose; the zero-pose keys read as the SMPL-X zero pose
    np.testing.assert_allclose(rt.smplx_from_basis(rig.identity_basis()), R_A, atol=1e-12)
    np.testing.assert_allclose(rt.smplx_from_basis(zero_pose_basis(rig, R_A)),
                               np.broadcast_to(np.eye(3), (55, 3, 3)), atol=1e-12)


def test_unmapped_smplx_joint_folds_into_child(rng):
    rig, R_A, _ = apose_rig(rng)
    cal = rm.calibration_from_basis(rig, zero_pose_basis(rig, R_A), bones=rm.JOINT_NAMES)
    bone_map = {j: j for j in rm.JOINT_NAMES if j not in ("spine2", "left_eye_smplhf", "right_eye_smplhf")}
    rt = rm.Retarget(rig, bone_map, C, cal)
    assert "spine2" in rt.unmapped_joints and not rt.known_mask()[rm.JOINT_INDEX["spine2"]]
    R = random_rotations(rng, 3, 55)
    back = rt.smplx_from_basis(rt.basis_from_smplx(R))
    s1, s2, s3 = (rm.JOINT_INDEX[n] for n in ("spine1", "spine2", "spine3"))
    np.testing.assert_allclose(back[:, s2], np.broadcast_to(np.eye(3), (3, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(back[:, s3], R[:, s2] @ R[:, s3], atol=1e-10)  # spine2's bend folds into spine3
    keep = [j for j in range(55) if j not in (s2, s3, 23, 24)]
    np.testing.assert_allclose(back[:, keep], R[:, keep], atol=1e-10)


def test_evaluated_pose_of_unmapped_parent(rng):
    # an unmapped parent driven by a constraint: its evaluated orientation replaces propagation
    rig, R_A, _ = apose_rig(rng)
    cal = rm.calibration_from_basis(rig, zero_pose_basis(rig, R_A), bones=rm.JOINT_NAMES)
    rt = rm.Retarget(rig, {j: j for j in rm.JOINT_NAMES}, C, cal)
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
    rig_t = rm.Rig(rm.JOINT_NAMES, rm.PARENTS, rm.matrix_4x4(B, 100.0 * rm.rest_joints() @ C.T))  # centimetres
    cal = rm.auto_calibration(rig_t, {j: j for j in rm.JOINT_NAMES}, C)
    for j, name in enumerate(rm.JOINT_NAMES):
        np.testing.assert_allclose(cal[name], B[j], atol=1e-9)
    # A-pose rig: limb directions come out exact; twist of single-child bones only approximately
    rig, R_A, M_true = apose_rig(rng)
    bone_map = {j: j for j in rm.JOINT_NAMES}
    cal = rm.auto_calibration(rig, bone_map, C)
    err = {j: float(angle_between(cal[j], M_true[j])) for j in rm.JOINT_NAMES}
    exact = ("pelvis", "spine1", "spine2", "spine3", "neck", "left_collar", "right_collar", "left_wrist",
             "right_wrist", "left_index2", "right_middle3")
    assert max(err[j] for j in exact) < 1e-9, {j: err[j] for j in exact}
    assert max(err.values()) < np.radians(5.0), err
    rt = rm.Retarget(rig, bone_map, C, cal)
    L = rt.basis_from_smplx(np.broadcast_to(np.eye(3), (55, 3, 3)))  # the SMPL-X zero pose on the rig
    heads = rig.pose_matrices(L)[..., :3, 3]
    ref = rm.rest_joints() @ C.T
    idx = [rig.index[j] for j in rm.JOINT_NAMES]
    assert np.abs(heads[idx] - ref).max() < 0.02  # metres


def test_retarget_rejects_bad_maps(rng):
    rig = rm.official_smplx_rig()
    with pytest.raises(ValueError, match="unknown SMPL-X joint"):
        rm.Retarget(rig, {"left_pinkie1": "left_pinky1"})
    with pytest.raises(ValueError, match="not in the rig"):
        rm.Retarget(rig, {"pelvis": "Hips"})
    with pytest.raises(ValueError, match="mapped to both"):
        rm.Retarget(rig, {"pelvis": "pelvis", "spine1": "pelvis"})
    with pytest.raises(ValueError, match="cycle"):
        rm.Rig(["a", "b"], ["b", "a"], np.tile(np.eye(4), (2, 1, 1)))
    with pytest.raises(ValueError):
        rm.euler_to_matrix([0, 0, 0], "XXY")


def test_armature_spec_for_add_dposer_armature():
    spec = rm.armature_spec()
    assert spec["names"][0] == "root" and spec["parents"][1] == "root" and len(spec["names"]) == 56
    np.testing.assert_allclose(spec["tails"] - spec["heads"], np.broadcast_to([0, 0, 0.1], (56, 3)))
    np.testing.assert_allclose(spec["heads"][1:], rm.rest_joints() @ C.T, atol=1e-12)
    assert spec["heads"][1 + rm.JOINT_INDEX["head"], 2] > 1.4  # Z up, about 1.6 m
    assert (spec["rolls"] == 0).all()


def test_armature_axes():
    np.testing.assert_allclose(rm.armature_axes(), C)
    # Mixamo/FBX: object rotation X +90 deg (and scale 0.01): armature space is Y-up, C = I
    obj = rm.matrix_4x4(rm.rot_x(np.pi / 2) * 0.01, [1.0, 2.0, 0.0])
    np.testing.assert_allclose(rm.armature_axes(obj), np.eye(3), atol=1e-12)
    # an armature object turned 90 deg about Z: C absorbs it, so the body still faces the world's -Y
    Cz = rm.armature_axes(rm.rot_z(np.pi / 2))
    np.testing.assert_allclose(rm.rot_z(np.pi / 2) @ Cz @ [0, 0, 1], [0, -1, 0], atol=1e-12)


def test_package_imports_without_bpy_or_torch():
    import subprocess

    code = ("import sys; import blender_dposer, blender_dposer.rig_math, blender_dposer.bone_maps, "
            "blender_dposer.backend_client as bc; bc.EmbeddedBackend.available(); "
            "bad = [m for m in ('bpy', 'torch', 'dposer') if m in sys.modules]; "
            "assert not bad, bad; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    import blender_dposer

    if "bpy" not in sys.modules:
        with pytest.raises(RuntimeError, match="bpy"):
            blender_dposer.register()


def test_build_addon_zip(tmp_path):
    import importlib.util
    import zipfile

    spec = importlib.util.spec_from_file_location("build_addon", REPO / "build_addon.py")
    build_addon = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_addon)
    manifest = build_addon.read_manifest()
    assert build_addon.check_manifest(manifest) == []
    assert manifest["id"] == "blender_dposer" and manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert manifest["blender_version_min"] == "4.2.0" and set(manifest["permissions"]) == {"files", "network"}
    out = build_addon.build(tmp_path)
    assert out.name == f"blender_dposer-{manifest['version']}.zip"
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
    assert {"blender_manifest.toml", "__init__.py", "rig_math.py", "bone_maps.py", "backend_client.py",
            "installer.py", "install_ops.py"} <= set(names)
    assert not any(n.endswith(".pyc") or "__pycache__" in n for n in names)
    # the backend: the dposer package (every module of backend/dposer) and the default checkpoint, nothing else
    backend = {n for n in names if "/" in n}
    assert all(n.startswith("backend/dposer/") for n in backend)
    modules = {f"backend/dposer/{p.name}" for p in (REPO / "backend" / "dposer").glob("*.py")}
    assert modules <= backend and "backend/dposer/weights/default.safetensors" in backend
    assert not any(n.endswith((".npz", ".pkl", ".pt", ".ckpt")) or "torch/" in n for n in names)
    slim = build_addon.build(tmp_path / "slim", backend=None)
    with zipfile.ZipFile(slim) as z:
        assert not any("/" in n for n in z.namelist())
    bad = dict(manifest, tagline="x" * 65 + ".", id="_bad", permissions={"subprocess": "x"})
    assert len(build_addon.check_manifest(bad)) == 4
