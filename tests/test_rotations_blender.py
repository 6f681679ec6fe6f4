"""dposer.spec.rotations without Blender: quaternion / axis-angle / matrix round trips, Blender's Euler
convention in every order, rotation modes and continuity across frames."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from dposer.spec import rotations as rot  # noqa: E402
from rig_helpers import C, random_aa, rodrigues  # noqa: E402


# ---------------------------------------------------------------------------------------------------------
# Quaternion <-> axis-angle <-> matrix.

def test_axis_angle_quaternion_matrix_round_trips(rng):
    aa = random_aa(rng, 500)
    aa[:5] = [[0, 0, 0], [1e-9, 0, 0], [0, 0, np.pi], [0, np.pi - 1e-7, 0], [1e-5, -2e-5, 3e-6]]
    ref = rodrigues(aa)
    q = rot.axis_angle_to_quaternion(aa)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(rot.quaternion_to_matrix(q), ref, atol=1e-12)
    np.testing.assert_allclose(rot.axis_angle_to_matrix(aa), ref, atol=1e-12)
    # matrix -> quaternion (w >= 0) -> matrix
    q2 = rot.matrix_to_quaternion(ref)
    assert (q2[:, 0] >= 0).all()
    np.testing.assert_allclose(rot.quaternion_to_matrix(q2), ref, atol=1e-12)
    np.testing.assert_allclose(np.abs(np.sum(q2 * q, -1)), 1.0, atol=1e-12)  # same up to sign
    # matrix -> axis-angle: canonical and the same rotation
    aa2 = rot.matrix_to_axis_angle(ref)
    assert (np.linalg.norm(aa2, axis=-1) <= np.pi + 1e-9).all()
    np.testing.assert_allclose(rodrigues(aa2), ref, atol=1e-9)
    inside = np.linalg.norm(aa, axis=-1) < np.pi - 1e-3
    np.testing.assert_allclose(aa2[inside], aa[inside], atol=1e-9)
    # quaternion -> axis-angle ignores the sign of q
    np.testing.assert_allclose(rot.quaternion_to_axis_angle(-q)[inside], aa[inside], atol=1e-9)


def test_canonical_axis_angle_folds_angles_above_pi():
    # mathutils' to_axis_angle can return up to 2 pi (w < 0 gave 5.61 rad, blender.md 1.5e)
    aa = np.array([[5.61, 0.0, 0.0], [0.0, 0.0, 3 * np.pi / 2]])
    c = rot.canonical_axis_angle(aa)
    np.testing.assert_allclose(c, [[5.61 - 2 * np.pi, 0, 0], [0, 0, -np.pi / 2]], atol=1e-12)
    np.testing.assert_allclose(rodrigues(c), rodrigues(aa), atol=1e-12)


def test_quaternion_multiply_is_matrix_product(rng):
    a, b = rot.axis_angle_to_quaternion(random_aa(rng, 20)), rot.axis_angle_to_quaternion(random_aa(rng, 20))
    np.testing.assert_allclose(rot.quaternion_to_matrix(rot.quaternion_multiply(a, b)),
                               rot.quaternion_to_matrix(a) @ rot.quaternion_to_matrix(b), atol=1e-12)
    np.testing.assert_allclose(rot.quaternion_to_matrix(rot.quaternion_conjugate(a)),
                               rot.transpose(rot.quaternion_to_matrix(a)), atol=1e-12)


def test_axis_angle4_blender_mode(rng):
    aa = random_aa(rng, 50)
    m = rodrigues(aa)
    v = rot.matrix_to_axis_angle4(m)
    np.testing.assert_allclose(rot.axis_angle4_to_matrix(v), m, atol=1e-10)
    np.testing.assert_allclose(rot.matrix_to_axis_angle4(np.eye(3)), [0, 0, 1, 0])  # Blender's default value
    np.testing.assert_allclose(rot.axis_angle4_to_matrix([0.3, 0, 0, 5.0]), rot.rot_z(0.3), atol=1e-12)  # axis scaled


# ---------------------------------------------------------------------------------------------------------
# Euler, Blender convention.

def test_euler_convention():
    x, y, z = 0.3, -0.7, 1.1
    np.testing.assert_allclose(rot.euler_to_matrix([x, y, z], "XYZ"), rot.rot_z(z) @ rot.rot_y(y) @ rot.rot_x(x), atol=1e-15)
    np.testing.assert_allclose(rot.euler_to_matrix([x, y, z], "ZXY"), rot.rot_y(y) @ rot.rot_x(x) @ rot.rot_z(z), atol=1e-15)
    # a BVH channel list "Zrotation Xrotation Yrotation" means Rz @ Rx @ Ry = Blender order 'YXZ'
    np.testing.assert_allclose(rot.euler_to_matrix([x, y, z], "YXZ"), rot.rot_z(z) @ rot.rot_x(x) @ rot.rot_y(y), atol=1e-15)
    np.testing.assert_allclose(rot.rot_x(np.pi / 2), C, atol=1e-15)  # C_ZUP = Rx(+90 deg)
    np.testing.assert_allclose(C @ [0, 1, 0], [0, 0, 1], atol=1e-15)  # SMPL-X up -> Blender up
    np.testing.assert_allclose(C @ [0, 0, 1], [0, -1, 0], atol=1e-15)  # SMPL-X forward -> Blender -Y (front view)


@pytest.mark.parametrize("order", rot.EULER_ORDERS)
def test_euler_round_trips_all_orders(order, rng):
    # axis-angle -> quaternion -> matrix -> Euler -> matrix -> axis-angle
    aa = random_aa(rng, 300)
    m = rot.quaternion_to_matrix(rot.axis_angle_to_quaternion(aa))
    e = rot.matrix_to_euler(m, order)
    m2 = rot.euler_to_matrix(e, order)
    np.testing.assert_allclose(m2, m, atol=1e-12)
    np.testing.assert_allclose(rot.matrix_to_axis_angle(m2)[np.linalg.norm(aa, axis=-1) < 3.1],
                               aa[np.linalg.norm(aa, axis=-1) < 3.1], atol=1e-9)
    # Euler -> matrix -> Euler gives the angles back inside the principal range
    i, j, k = ("XYZ".index(c) for c in order)
    e0 = np.zeros((300, 3))
    e0[:, [i, k]] = rng.uniform(-1.5, 1.5, (300, 2))
    e0[:, j] = rng.uniform(-1.5, 1.5, 300)
    np.testing.assert_allclose(rot.matrix_to_euler(rot.euler_to_matrix(e0, order), order), e0, atol=1e-10)
    # through the generic rotation-mode helpers
    np.testing.assert_allclose(rot.rotation_to_matrix(rot.matrix_to_rotation(m, order), order), m, atol=1e-12)
    # gimbal lock (middle angle +-90 deg) still reproduces the matrix
    g = e0[:10].copy()
    g[:, j] = np.pi / 2 * np.sign(rng.normal(size=10))
    mg = rot.euler_to_matrix(g, order)
    np.testing.assert_allclose(rot.euler_to_matrix(rot.matrix_to_euler(mg, order), order), mg, atol=1e-7)


@pytest.mark.parametrize("order", rot.EULER_ORDERS)
def test_euler_sequence_is_continuous(order, rng):
    # a bone spinning 2.5 turns about a tilted axis: no +-2 pi (or +-pi) jumps between frames
    axis = np.array([0.3, 0.9, -0.2]) / np.linalg.norm([0.3, 0.9, -0.2])
    angles = np.linspace(0, 5 * np.pi, 1000)
    mats = rodrigues(axis * angles[:, None])
    assert np.abs(np.diff(rot.matrix_to_euler(mats, order), axis=0)).max() > 6.0  # frame by frame it wraps
    e = rot.euler_sequence(mats, order)
    np.testing.assert_allclose(rot.euler_to_matrix(e, order), mats, atol=1e-10)
    assert np.abs(np.diff(e, axis=0)).max() < 0.2
    # the seam with the key before the range stays continuous too (compat far from the principal range)
    prev = rot.matrix_to_euler(mats[0], order) + 2 * np.pi
    e2 = rot.euler_sequence(mats, order, compat=prev)
    assert np.abs(e2[0] - prev).max() < 1e-9
    np.testing.assert_allclose(rot.euler_to_matrix(e2, order), mats, atol=1e-10)


@pytest.mark.parametrize("mode", rot.ROTATION_MODES)
def test_rotation_modes_round_trip(mode, rng):
    mats = rodrigues(np.array([0.2, -0.5, 0.4]) * np.linspace(0, 8, 60)[:, None])
    seq = rot.rotation_sequence(mats, mode)
    assert seq.shape == (60, rot.rotation_channels(mode))
    np.testing.assert_allclose(rot.rotation_to_matrix(seq, mode), mats, atol=1e-10)
    assert np.abs(np.diff(seq, axis=0)).max() < 0.5  # continuous F-curves


def test_quaternion_sign_continuity(rng):
    aa = np.array([0.4, 0.1, -0.3]) * np.linspace(0, 20, 100)[:, None]  # passes through several full turns
    q = rot.axis_angle_to_quaternion(rot.canonical_axis_angle(aa))  # w >= 0: sign jumps
    assert (np.sum(q[1:] * q[:-1], -1) < 0).any()
    flips = np.where(rng.random(100) < 0.5, -1.0, 1.0)[:, None]
    c = rot.quaternion_continuity(q * flips)
    assert (np.sum(c[1:] * c[:-1], -1) >= 0).all()
    np.testing.assert_allclose(rot.quaternion_to_matrix(c), rot.quaternion_to_matrix(q), atol=1e-12)
    # seeded by the key before the range
    seed = -c[0]
    c2 = rot.quaternion_continuity(q * flips, seed=seed)
    np.testing.assert_allclose(c2, -c, atol=1e-15)
    # several bones at once (frames on axis 0), bones independent
    qb = np.stack([q * flips, q], axis=1)
    cb = rot.quaternion_continuity(qb)
    assert (np.sum(cb[1:] * cb[:-1], -1) >= 0).all()
