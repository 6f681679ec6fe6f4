import numpy as np
import pytest

from dposer.formats import data
from dposer.spec import layout


def test_part_splits_are_disjoint_and_complete(data_root):
    for part, n_val in (("body", 1000), ("hand", 1000), ("face", 1000)):
        tr, va, te = (data.load_part_set(part, s, data_root) for s in ("train", "val", "test"))
        assert len(va) == n_val and 7500 < len(tr) <= 9000
        keys = {r.tobytes() for r in tr.vectors}
        assert not any(r.tobytes() in keys for r in va.vectors)
        assert not any(r.tobytes() in keys for r in te.vectors), f"{part} test rows leak into train"
    assert len(data.load_part_set("hand", "test", data_root)) == 497  # 3 duplicates of the 10k set dropped


def test_part_masks(data_root):
    body = data.load_part_set("body", "train", data_root)
    assert body.part_mask[0].tolist() == [True, False, False, False]
    assert (body.vectors[:, 63:] == 0).all()
    hand = data.load_part_set("hand", "val", data_root)
    assert hand.part_mask[0].tolist() == [False, False, True, False]
    face = data.load_part_set("face", "test", data_root)
    assert face.part_mask[0].tolist() == [False, False, False, True]


def test_egobody_hands_become_absolute(data_root):
    raw = np.load(data_root / "dposer_x" / "wholebody_egobody_500.npz")
    mean = np.load(data_root / "dposer_x" / "mano_right_hands_mean.npz")["hands_mean"]
    sets = [data.load_wholebody_set(s, data_root) for s in ("train", "val", "test")]
    assert [len(s) for s in sets] == [300, 50, 150]
    ws = data.PoseSet.concat(sets)
    assert ws.part_mask.all()
    # relative hands average ~0; absolute hands average near the MANO mean (curled fingers)
    assert np.abs(raw["right_hand_pose"].mean(0)).mean() < 0.1
    assert np.abs(ws.vectors[:, 108:153].mean(0) - mean).mean() < 0.1
    assert np.abs(layout.mirror_hand(ws.vectors[:, 63:108]).mean(0) - mean).mean() < 0.1


def test_amass_smplh_take(data_root):
    take = data.load_amass_take(data_root)
    assert len(take) == 500 and take.extras["framerate"] == 120.0
    assert take.extras["trans"].shape == (500, 3) and take.extras["global_orient"].shape == (500, 3)
    assert take.part_mask[0].tolist() == [True, True, True, False]
    mean = np.load(data_root / "dposer_x" / "mano_right_hands_mean.npz")["hands_mean"]
    assert np.allclose(take.vectors[0, 108:153], mean, atol=1e-5)  # the take holds the absolute mean hand


def test_smplx_amass_layout():
    poses = np.arange(2 * 165, dtype=np.float32).reshape(2, 165) / 100  # distinct values within +-4 pi
    ps = data.from_amass({"poses": poses, "mocap_frame_rate": np.array(30.0)})
    assert np.allclose(ps.vectors[:, :63], poses[:, 3:66])
    assert np.allclose(ps.vectors[:, 153:156], poses[:, 66:69])  # jaw
    assert np.allclose(ps.vectors[:, 63:153], poses[:, 75:165])  # hands after the eyes
    assert ps.extras["framerate"] == 30.0 and ps.part_mask[0].tolist() == [True, True, True, False]


def test_gestures_clip(data_root):
    clip = data.load_gestures_clip(data_root)
    assert len(clip) == 240 and clip.part_mask[0].tolist() == [True, False, False, False]
    assert clip.extras["global_orient"].shape == (240, 3)


def test_smplx_dict_subset_and_round_trip(tmp_path):
    d = {"body_pose": np.zeros((3, 63)), "expression": np.ones((3, 10))}
    ps = data.from_smplx_dict(d)
    assert ps.present[:, :63].all() and ps.present[:, 156:256].all() and not ps.present[:, 153:156].any()
    assert ps.vectors[0, 156:166].tolist() == [1.0] * 10 and ps.vectors[0, 166] == 0
    np.savez(tmp_path / "p.npz", **ps.to_dict())
    back = data.load_pose_file(tmp_path / "p.npz")
    assert np.allclose(back.vectors, ps.vectors)


@pytest.mark.parametrize("bad, message", [
    ({"body_pose": np.zeros((2, 60))}, r"shape \(N, 63\)"),
    ({"body_pose": np.full((2, 63), np.nan)}, "NaN"),
    ({"body_pose": np.zeros((2, 63)), "right_hand_pose": np.zeros((3, 45))}, "rows"),
    ({"betas": np.zeros((2, 10))}, "no pose keys"),
    ({"body_pose": np.array([["a"] * 63])}, "real numbers"),
])
def test_bad_input_is_named(bad, message):
    with pytest.raises(data.DataError, match=message):
        data.from_smplx_dict(bad)


def test_bad_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(data.DataError, match="not an npz file"):
        data.load_pose_file(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", foo=np.zeros(3))
    with pytest.raises(data.DataError, match="unrecognised"):
        data.load_pose_file(tmp_path / "other.npz")
    np.savez(tmp_path / "amass.npz", poses=np.zeros((4, 100)))
    with pytest.raises(data.DataError, match="156"):
        data.load_pose_file(tmp_path / "amass.npz")
