import numpy as np
import pytest
import torch

from dposer.spec import layout


def test_joint_table():
    assert len(layout.JOINT_NAMES) == 55 == len(layout.PARENTS)
    assert layout.JOINT_NAMES[22] == "jaw" and layout.JOINT_NAMES[40] == "right_index1"
    for j, p in enumerate(layout.PARENTS):
        assert p < j  # parents come first
    assert layout.PARENTS[layout.JOINT_INDEX["right_pinky1"]] == layout.JOINT_INDEX["right_wrist"]
    assert layout.PARENTS[layout.JOINT_INDEX["left_eye_smplhf"]] == layout.JOINT_INDEX["head"]


def test_part_slices_tile_the_vector():
    covered = np.concatenate([np.arange(256)[s] for s in layout.PART_SLICES.values()])
    assert sorted(covered.tolist()) == list(range(256))
    assert layout.VECTOR_JOINTS[0] == "left_hip" and layout.VECTOR_JOINTS[20] == "right_wrist"


def test_masks_from_names():
    assert layout.names_to_dims("right_hand").tolist() == list(range(108, 153))
    assert layout.names_to_dims(["left_leg"]).tolist() == [0, 1, 2, 9, 10, 11, 18, 19, 20, 27, 28, 29]
    assert layout.names_to_dims("right_pinky1").tolist() == [108 + 6 * 3, 108 + 6 * 3 + 1, 108 + 6 * 3 + 2]
    pinky_ring = layout.names_to_dims("right_pinky,right_ring")
    assert len(pinky_ring) == 18 and pinky_ring.min() == 126 and pinky_ring.max() == 143
    assert layout.names_to_dims("face").tolist() == list(range(153, 256))
    assert layout.names_to_dims("jaw").tolist() == [153, 154, 155]
    assert len(layout.names_to_dims("legs")) == 24 and len(layout.names_to_dims("arms")) == 24
    assert len(layout.names_to_dims("trunk")) == 15
    m = layout.dim_mask("body, right_thumb3")
    assert m.sum() == 66 and m[150:153].all()


def test_unknown_names_are_reported():
    with pytest.raises(ValueError, match="right_pinkie"):
        layout.names_to_dims("right_hand,right_pinkie")


def test_part_masks_round_trip():
    pm = np.array([[1, 0, 1, 0], [0, 1, 0, 1]], bool)
    dims = layout.dims_from_part_mask(pm)
    assert dims.sum(1).tolist() == [63 + 45, 45 + 103]
    assert (layout.part_mask_from_dims(dims) == pm).all()


def test_mirror_hand_is_an_involution_and_flips_y_z():
    h = np.random.default_rng(0).normal(size=(4, 45)).astype(np.float32)
    m = layout.mirror_hand(h)
    assert np.allclose(m[:, 0::3], h[:, 0::3]) and np.allclose(m[:, 1::3], -h[:, 1::3]) and np.allclose(m[:, 2::3], -h[:, 2::3])
    assert np.allclose(layout.mirror_hand(m), h)
    assert torch.allclose(layout.mirror_hand(torch.from_numpy(h)), torch.from_numpy(m))


def test_mirrored_hand_moves_a_hand_to_the_other_slot():
    v = np.random.default_rng(1).normal(size=(3, layout.DIM)).astype(np.float32)
    right, left = layout.PART_SLICES["right_hand"], layout.PART_SLICES["left_hand"]
    assert np.array_equal(layout.mirrored_hand(v, "right_hand"), layout.mirror_hand(v[:, right]))
    t = torch.from_numpy(v)
    assert torch.equal(layout.mirrored_hand(t, "left_hand"), layout.mirror_hand(t[:, left]))
    assert layout.HANDS.start == left.start and layout.HANDS.stop == right.stop
    with pytest.raises(ValueError, match="side"):
        layout.mirrored_hand(v, "hands")


def test_vector_dict_round_trip_any_leading_shape():
    v = np.random.default_rng(2).normal(size=(2, 3, layout.DIM)).astype(np.float32)
    d = layout.vectors_to_dict(v)
    assert list(d) == list(layout.POSE_KEYS) and d["global_orient"].shape == (2, 3, 3) and not d["global_orient"].any()
    assert np.array_equal(layout.dict_to_vectors(d), v)
    only = layout.vectors_to_dict(v[0], keys=("body_pose",))
    assert list(only) == ["body_pose"] and np.array_equal(only["body_pose"], v[0, :, layout.KEY_SLICES["body_pose"]])
    with pytest.raises(ValueError, match="unknown pose key"):
        layout.vectors_to_dict(v, keys=("hands",))
