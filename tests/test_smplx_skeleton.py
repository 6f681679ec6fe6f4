"""dposer.spec.skeleton (NumPy, what the add-on uses): the modelled joints, NumPy FK against the torch FK, hand
mirroring and the per-joint <-> pose-dict packing."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from dposer.spec import skeleton as sk  # noqa: E402
from rig_helpers import random_aa, rodrigues  # noqa: E402


# ---------------------------------------------------------------------------------------------------------
# The skeleton's tables against the pose layout, its NumPy FK against the torch FK.

def test_modelled_joints_are_the_vector_joints():
    from dposer.spec import layout

    assert set(sk.MODELLED_JOINTS) == set(layout.VECTOR_JOINTS)


def test_smplx_fk_matches_backend(rng):
    import torch

    from dposer.core import kinematics as skeleton

    aa = random_aa(rng, 4, 55, max_angle=1.5)
    t = rng.normal(size=(4, 3))
    _, pos = sk.smplx_fk(aa, translation=t)
    ref = skeleton.forward_kinematics(torch.tensor(aa), translation=torch.tensor(t)).numpy()
    np.testing.assert_allclose(pos, ref, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# Hand mirroring.

def test_hand_mirroring_matches_backend(rng):
    from dposer.spec import layout

    hand = rng.normal(size=(7, 45)).astype(np.float32)
    np.testing.assert_array_equal(sk.mirror_hand(hand), layout.mirror_hand(hand))
    np.testing.assert_array_equal(sk.mirror_hand(sk.mirror_hand(hand)), hand)
    aa = random_aa(rng, 15)
    # matrix form: reflection across the sagittal plane, S R S with S = diag(-1, 1, 1)
    np.testing.assert_allclose(rodrigues(sk.mirror_hand(aa)), sk.mirror_matrix(rodrigues(aa)), atol=1e-12)
    # a mirrored left hand posed on mirrored offsets gives mirrored joint positions
    left = sk.JOINT_INDEX["left_index1"]
    right = sk.JOINT_INDEX["right_index1"]
    pose = np.zeros((55, 3))
    pose[left:left + 15] = aa
    pose[right:right + 15] = sk.mirror_hand(aa)
    _, pos = sk.smplx_fk(pose)
    np.testing.assert_allclose(pos[right:right + 15] * [-1, 1, 1], pos[left:left + 15], atol=1e-6)


def test_pose_dict_round_trip(rng):
    aa = random_aa(rng, 3, 55, max_angle=1.0)
    d = sk.pose_dict_from_joints(aa)
    assert {k: v.shape for k, v in d.items()} == {"global_orient": (3, 3), "body_pose": (3, 63), "jaw_pose": (3, 3),
                                                  "left_hand_pose": (3, 45), "right_hand_pose": (3, 45)}
    back = sk.joints_from_pose_dict(d)
    keep = [j for j in range(55) if j not in (23, 24)]  # eyes are never sent
    np.testing.assert_allclose(back[:, keep], aa[:, keep], atol=1e-6)
    # only body joints driven: the hands are left out (unobserved for the backend)
    d2 = sk.pose_dict_from_joints(aa[0], joints=sk.JOINT_NAMES[:22])
    assert set(d2) == {"global_orient", "body_pose"}
