"""bpy-free math behind the calibration, variation and preset-choice operators (runs without Blender): the zero-pose
basis round-trips through a posed calibration, crowd grid offsets, and choosing a bone-map preset by id."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

from dposer.spec import bone_maps as bm  # noqa: E402
from blender_dposer import rig_math as rm  # noqa: E402
from rig_helpers import apose_rig  # noqa: E402


def test_zero_pose_basis_round_trips_through_calibration():
    """Posing an A-pose rig with the zero-pose basis of its true calibration and calibrating from that pose gives the
    calibration back; the pose reads as the SMPL-X zero pose."""
    rng = np.random.default_rng(3)
    rig, _, M_true = apose_rig(rng)
    bone_map = {j: j for j in rm.JOINT_NAMES}
    ret = rm.Retarget(rig, bone_map, calibration=M_true)
    current = rm.axis_angle_to_matrix(rng.normal(scale=0.3, size=(len(rig), 3)))
    L = ret.zero_pose_basis(current)
    cal = rm.calibration_from_basis(rig, L, bones=rm.JOINT_NAMES)
    for b in rm.JOINT_NAMES:
        np.testing.assert_allclose(cal[b], M_true[b], atol=1e-10)
    # unmapped bones keep their current basis
    for b in ("root", "spine_helper"):
        np.testing.assert_allclose(L[rig.index[b]], current[rig.index[b]], atol=1e-12)
    np.testing.assert_allclose(ret.smplx_aa_from_basis(L), 0.0, atol=1e-7)


def test_grid_offsets():
    off = rm.grid_offsets(8, 2.0)
    assert off.shape == (8, 3)
    # a 3x3 grid with the original in cell (0, 0): all cells distinct, none at the origin, spacing 2
    cells = {tuple(np.round(o[:2] / 2.0).astype(int)) for o in off}
    assert len(cells) == 8 and (0, 0) not in cells
    assert cells <= {(x, y) for x in range(3) for y in range(3)}
    assert np.all(off[:, 2] == 0.0)
    assert rm.grid_offsets(0, 1.0).shape == (0, 3)
    assert np.allclose(rm.grid_offsets(3, 1.0, columns=4)[:, 1], 0.0)  # one row
    with pytest.raises(ValueError):
        rm.grid_offsets(2, 0.0)


def test_detection_for_a_chosen_preset():
    names = ["joint_Root", "Hips", "Spine", "Chest", "Neck", "Head", "UpperLeg_L", "LowerLeg_L", "Foot_L",
             "UpperArm_L", "LowerArm_L", "Hand_L"]
    det = bm.detection_for("bandai_bvh", names)
    assert det.preset is bm.BANDAI_BVH and det.bone_map["left_knee"] == "LowerLeg_L"
    assert bm.BANDAI_BVH.needs_calibration and not bm.CMU_BVH.needs_calibration
    with pytest.raises(ValueError, match="unknown bone-map preset 'nope'"):
        bm.detection_for("nope", names)
    with pytest.raises(ValueError, match="the rig has only 0 of the"):
        bm.detection_for("mixamo", ["a", "b"])
    with pytest.raises(ValueError, match=r"only 4 of the \d+ bones of the preset 'Mixamo"):
        bm.detection_for("mixamo", names)  # Hips, Spine, Neck, Head
