import math

import numpy as np
import torch

from dposer.spec import layout
from dposer.core import kinematics as skeleton
from dposer.core.torch_rotations import axis_angle_to_matrix


def _naive_fk(aa):
    """Reference FK: one joint at a time, numpy."""
    out = []
    for pose in aa:
        R = axis_angle_to_matrix(torch.as_tensor(pose, dtype=torch.float64)).numpy()
        glob = [None] * 55
        pos = np.zeros((55, 3))
        for j, p in enumerate(layout.PARENTS):
            if p < 0:
                glob[j], pos[j] = R[j], skeleton.REST_OFFSETS[j]
            else:
                glob[j] = glob[p] @ R[j]
                pos[j] = pos[p] + glob[p] @ skeleton.REST_OFFSETS[j]
        out.append(pos)
    return np.stack(out)


def test_zero_pose_gives_rest_joints():
    j = skeleton.forward_kinematics(torch.zeros(2, 55, 3))
    assert np.allclose(j[0].numpy(), skeleton.rest_joints(), atol=1e-6)


def test_rest_skeleton_is_plausible_and_symmetric():
    r = skeleton.rest_joints()
    idx = layout.JOINT_INDEX
    height = r[idx["head"], 1] - min(r[idx["left_foot"], 1], r[idx["left_ankle"], 1])
    assert 1.3 < height < 1.8
    for name in layout.JOINT_NAMES:
        if name.startswith("left_"):
            other = r[idx["right_" + name[5:]]]
            assert np.allclose(r[idx[name]] * [-1, 1, 1], other)
    assert r[idx["left_wrist"], 0] > 0.5  # T-pose: the left arm points along +x


def test_vectorised_fk_matches_naive():
    aa = torch.randn(3, 55, 3, dtype=torch.float64) * 0.5
    assert np.allclose(skeleton.forward_kinematics(aa).numpy(), _naive_fk(aa.numpy()), atol=1e-9)


def test_fk_preserves_bone_lengths_and_rotates_children():
    aa = torch.zeros(1, 55, 3)
    aa[0, layout.JOINT_INDEX["left_shoulder"]] = torch.tensor([0, 0, -math.pi / 2])  # arm down
    j = skeleton.forward_kinematics(aa)[0].numpy()
    sh, el = j[layout.JOINT_INDEX["left_shoulder"]], j[layout.JOINT_INDEX["left_elbow"]]
    off = skeleton.REST_OFFSETS[layout.JOINT_INDEX["left_elbow"]]
    assert np.isclose(np.linalg.norm(el - sh), np.linalg.norm(off), atol=1e-6)
    assert el[1] < sh[1] - 0.2  # the elbow hangs below the shoulder
    rand = torch.randn(4, 55, 3)
    jr = skeleton.forward_kinematics(rand)
    par = list(layout.PARENTS)
    lengths = (jr[:, 1:] - jr[:, par[1:]]).norm(dim=-1)
    assert torch.allclose(lengths, torch.from_numpy(np.linalg.norm(skeleton.REST_OFFSETS[1:], axis=1)).float().expand(4, -1), atol=1e-5)


def test_vector_to_full_pose_places_parts():
    v = torch.zeros(1, 256)
    v[0, 108:111] = torch.tensor([0.1, 0.2, 0.3])  # right_index1
    v[0, 153:156] = 1.0  # jaw
    v[0, 0:3] = 2.0  # left_hip
    fp = skeleton.full_pose(v, global_orient=torch.tensor([[0.5, 0, 0]]))
    assert torch.allclose(fp[0, layout.JOINT_INDEX["right_index1"]], torch.tensor([0.1, 0.2, 0.3]))
    assert (fp[0, layout.JOINT_INDEX["jaw"]] == 1).all() and (fp[0, 1] == 2).all() and fp[0, 0, 0] == 0.5


def test_mirror_pose_mirrors_the_skeleton():
    v = (np.random.default_rng(0).normal(size=(3, 256)) * 0.4).astype(np.float32)
    m = layout.mirror_pose(v)
    ja = skeleton.joints_from_vector(torch.from_numpy(v)).numpy()
    jb = skeleton.joints_from_vector(torch.from_numpy(m)).numpy()
    swap = [layout.JOINT_INDEX[("right" + n[4:]) if n.startswith("left") else ("left" + n[5:]) if n.startswith("right") else n]
            for n in layout.JOINT_NAMES]
    assert np.allclose(jb[:, swap] * [-1, 1, 1], ja, atol=1e-5)
    assert np.allclose(layout.mirror_pose(m), v)
