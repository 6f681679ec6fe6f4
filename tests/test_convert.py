"""dposer.formats.bvh and dposer.formats.convert: a strict BVH parser, and BVH takes -> SMPL-X body poses.

Round trips: known SMPL-X poses -> a BVH the test writes (CMU-style names with helper joints, in cm, Y up; Mixamo
names, in inches, Z up) -> convert -> the same poses. Real data: Bandai Namco takes read straight from the shared
archive (nothing extracted). Bad files -> BvhError naming the problem."""
from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bvh_synth import CMU_EXTRA, CMU_NAMES, MIXAMO_NAMES, synth_bvh  # noqa: E402
from conftest import DATA  # noqa: E402
from dposer.formats import bvh, convert  # noqa: E402
from dposer import cli  # noqa: E402
from dposer.spec import layout  # noqa: E402

J = {n: i for i, n in enumerate(layout.JOINT_NAMES[1:22])}  # body_pose joint -> index in (21, 3)
# Joints whose rotation the positions determine (knees and elbows as hinges), and the wrists (copied relative to
# the elbow, whose frame is exact); the neck and head are copied relative to the chest, whose twist is a guess
DETERMINED = ("left_hip", "right_hip", "left_knee", "right_knee", "left_elbow", "right_elbow", "left_wrist",
              "right_wrist")


def _poses(n=40, seed=0):
    """Real AMASS body poses made to fit the converter's assumptions: knees and elbows pure hinges bent >= 20 deg
    (a straight limb has no bending plane to read the twist from), toes at zero."""
    if DATA is None:
        pytest.skip("shared pose data not found (set DPOSER_DATA)")
    body = np.load(DATA / "dposer_x" / "body_poses_10k.npz")["body_pose"].astype(np.float64).reshape(-1, 21, 3)
    for name, axis in (("left_knee", 0), ("right_knee", 0), ("left_elbow", 1), ("right_elbow", 1)):
        keep = body[:, J[name], axis].copy()
        body[:, J[name]] = 0
        body[:, J[name], axis] = keep
    body[:, [J["left_foot"], J["right_foot"]]] = 0
    ok = ((body[:, J["left_knee"], 0] > 0.35) & (body[:, J["right_knee"], 0] > 0.35)
          & (body[:, J["left_elbow"], 1] < -0.35) & (body[:, J["right_elbow"], 1] > 0.35))
    body = body[ok][:n]
    rng = np.random.default_rng(seed)
    orient = (Rotation.from_euler("y", rng.uniform(-180, 180, (len(body), 1)), degrees=True)
              * Rotation.from_rotvec(rng.normal(size=(len(body), 3)) * 0.15)).as_rotvec()
    trans = rng.normal(size=(len(body), 3)) * 0.5
    return body.reshape(-1, 63), orient, trans


def _angle_deg(a, b):
    """Per-joint angle (degrees) between axis-angle arrays (N, 3k) -> (N, k)."""
    n = len(a)
    d = Rotation.from_rotvec(a.reshape(-1, 3)).inv() * Rotation.from_rotvec(b.reshape(-1, 3))
    return np.degrees(d.magnitude()).reshape(n, -1)


@pytest.mark.parametrize("names,unit,up,extra,preset,unit_name", [
    (CMU_NAMES, 0.01, "y", CMU_EXTRA, "cmu_bvh", "cm"),
    (MIXAMO_NAMES, 0.0254, "z", None, "mixamo", "inch"),
])
def test_round_trip_known_poses(names, unit, up, extra, preset, unit_name):
    body, orient, trans = _poses()
    r = convert.convert_bvh(synth_bvh(body, orient, trans, names, unit=unit, up=up, extra=extra))
    assert r["skeleton"] == preset and r["unit"] == unit_name
    assert r["mocap_framerate"] == pytest.approx(30.0, rel=1e-4)
    assert r["body_pose"].shape == (len(body), 63) and r["trans"].shape == (len(body), 3)
    np.testing.assert_allclose(r["trans"], trans, atol=1e-4)
    assert _angle_deg(r["global_orient"], orient).max() < 0.01
    err = _angle_deg(r["body_pose"], body)
    determined = [J[n] for n in DETERMINED]
    assert err[:, determined].max() < 0.5, dict(zip(DETERMINED, err[:, determined].max(0).round(2)))
    # the twists positions cannot see (collars, chest, ankles; spine shares) stay within a few degrees on average
    assert err.mean() < 5.0
    # every aimed bone points where the take's does
    assert r["fit_error_deg_mean"] < 3.0


def test_body_pose_of_the_same_take_does_not_depend_on_units_or_up_axis():
    body, orient, trans = _poses(8, seed=1)
    a = convert.convert_bvh(synth_bvh(body, orient, trans, CMU_NAMES, unit=0.01, up="y"))
    b = convert.convert_bvh(synth_bvh(body, orient, trans, CMU_NAMES, unit=1.0, up="z"))
    assert b["unit"] == "m"
    np.testing.assert_allclose(a["body_pose"], b["body_pose"], atol=1e-4)


def test_one_name_table_reads_cmu_asf_and_mixamo_names():
    # 'LeftShoulder' is the collar in CMU / Mixamo naming and the upper arm in ASF-style naming
    asf = ["Hips", "Spine", "Chest", "Neck", "Head"] + [f"{s}{b}" for s in ("Left", "Right") for b in (
        "Hip", "Knee", "Ankle", "Toe", "Collar", "Shoulder", "Elbow", "Wrist")]
    preset, bones = convert.body_map(asf)
    assert preset == "asf_bvh" and bones["left_shoulder"] == "LeftShoulder" and bones["left_collar"] == "LeftCollar"
    preset, bones = convert.body_map(list(CMU_NAMES.values()) + ["LHipJoint", "RHipJoint"])
    assert preset == "cmu_bvh" and bones["left_collar"] == "LeftShoulder" and bones["left_shoulder"] == "LeftArm"
    preset, bones = convert.body_map(list(MIXAMO_NAMES.values()))
    assert preset == "mixamo" and bones["spine1"] == "mixamorig:Spine"


BANDAI_1 = None if DATA is None else DATA / "bvh" / "bandai_namco_motion_1.tar.xz"


@pytest.fixture(scope="module")
def bandai_walk():
    if BANDAI_1 is None or not BANDAI_1.is_file():
        pytest.skip("Bandai Namco archive not found (set DPOSER_DATA to ../shared/data)")
    with tarfile.open(BANDAI_1, "r:xz") as tar:
        m = next(x for x in tar if x.name.endswith("dataset-1_walk_normal_001.bvh"))
        return tar.extractfile(m).read().decode()


def test_bandai_take(bandai_walk):
    take = bvh.parse(bandai_walk)
    assert take.num_frames == 195 and take.fps == pytest.approx(30.0, rel=1e-4) and len(take.joints) == 22
    r = convert.convert_bvh(bandai_walk)
    assert r["skeleton"] == "bandai_bvh" and r["unit"] == "cm"
    assert r["body_pose"].shape == (195, 63) and np.isfinite(r["body_pose"]).all()
    assert 0 < r["fit_error_deg_mean"] < 10 and r["fit_error_deg_max"] < 45
    body = r["body_pose"].reshape(-1, 21, 3)
    knee = body[:, [J["left_knee"], J["right_knee"]], 0]
    assert knee.min() > -0.2 and knee.max() > 0.8  # knees bend forward only, by > 45 deg during the walk
    # a walk: the pelvis stays ~0.9 m above the floor (trans puts the built-in pelvis, rest height 0.93, there)
    pelvis_y = r["trans"][:, 1] + 0.93
    assert 0.75 < pelvis_y.mean() < 1.05
    step = np.linalg.norm(np.diff(r["trans"][:, [0, 2]], axis=0), axis=1).mean() * 30  # m/s
    assert 0.5 < step < 2.5
    # the head and neck stay near upright (the neck joints are placed differently in the two skeletons)
    assert np.degrees(np.abs(body[:, [J["neck"], J["head"]]]).mean()) < 15


BAD = {
    "not a BVH": ("hello world\n", "no MOTION"),
    "no hierarchy": ("MOTION\nFrames: 1\nFrame Time: 0.1\n0\n", "starts with HIERARCHY"),
    "unbalanced": ("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n CHANNELS 3 Xrotation Yrotation Zrotation\n"
                   "MOTION\nFrames: 1\nFrame Time: 0.1\n0 0 0\n", "unbalanced"),
    "bad channel": ("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n CHANNELS 3 Xrotation Yrotation Wrotation\n}\n"
                    "MOTION\nFrames: 1\nFrame Time: 0.1\n0 0 0\n", "bad CHANNELS"),
    "short motion": ("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n CHANNELS 3 Xrotation Yrotation Zrotation\n}\n"
                     "MOTION\nFrames: 2\nFrame Time: 0.1\n0 0 0\n", "need 6"),
    "bad number": ("HIERARCHY\nROOT Hips\n{\n OFFSET 0 zero 0\n CHANNELS 3 Xrotation Yrotation Zrotation\n}\n"
                   "MOTION\nFrames: 1\nFrame Time: 0.1\n0 0 0\n", "expected a number"),
    "bad frame time": ("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n CHANNELS 3 Xrotation Yrotation Zrotation\n}\n"
                       "MOTION\nFrames: 1\nFrame Time: 0\n0 0 0\n", "Frame Time"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_bvh_is_a_clear_error(name):
    text, msg = BAD[name]
    with pytest.raises(bvh.BvhError, match=msg):
        bvh.parse(text)


def test_unmappable_skeleton_names_the_missing_joints():
    text = ("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n CHANNELS 3 Xrotation Yrotation Zrotation\n JOINT Tail\n {\n"
            "  OFFSET 0 -1 0\n  CHANNELS 3 Xrotation Yrotation Zrotation\n  End Site\n  {\n   OFFSET 0 -1 0\n  }\n"
            " }\n}\nMOTION\nFrames: 1\nFrame Time: 0.1\n0 0 0 0 0 0\n")
    with pytest.raises(bvh.BvhError, match="no joint for left_hip"):
        convert.convert_bvh(text)


def test_cli_folder_in_folder_out(tmp_path, capsys):
    body, orient, trans = _poses(5)
    src = tmp_path / "takes"
    (src / "sub").mkdir(parents=True)
    (src / "a.bvh").write_text(synth_bvh(body, orient, trans, CMU_NAMES))
    (src / "sub" / "b.bvh").write_text(synth_bvh(body, orient, trans, MIXAMO_NAMES, unit=0.0254))
    (src / "bad.bvh").write_text("HIERARCHY\n")
    out = tmp_path / "out"
    assert cli.main(["convert", "--input", str(src), "--output", str(out)]) == 2  # one bad take: reported
    printed = capsys.readouterr()
    assert "fit error" in printed.out and "bad.bvh: error" in printed.err
    for name in ("a.npz", "sub/b.npz"):
        with np.load(out / name) as d:
            assert d["body_pose"].shape == (5, 63) and float(d["mocap_framerate"]) == pytest.approx(30.0, rel=1e-4)
    assert not list(out.rglob("*.tmp*"))
    # single file; refusing to overwrite the input
    assert cli.main(["convert", "--input", str(src / "a.bvh"), "--output", str(tmp_path / "a.npz")]) == 0
    assert (tmp_path / "a.npz").is_file()
    assert cli.main(["convert", "--input", str(src), "--output", str(src)]) == 2
    assert "must differ" in capsys.readouterr().err


def test_corpus_cache_feeds_the_training_mix(tmp_path):
    import torch

    from dposer.train import corpus
    from dposer.train.train import TrainingData

    if BANDAI_1 is None or not BANDAI_1.is_file():
        pytest.skip("Bandai Namco archive not found (set DPOSER_DATA to ../shared/data)")
    path = corpus.build(1, tmp_path / "b1.npz", root=DATA, limit=3, log=lambda *_: None)
    with np.load(path) as d:
        assert len(d["names"]) == 3 and d["body_pose"].shape == (d["frames"].sum(), 63)
        assert list(d["names"]) == sorted(d["names"])
        frames = d["frames"]
    body = corpus.load_body(path, stride=4)
    assert len(body) == sum((f + 3) // 4 for f in frames)
    with pytest.raises(ValueError, match="inside the repository"):
        corpus.build(1, Path(__file__).resolve().parents[1] / "x.npz", root=DATA, limit=1)
    td = TrainingData("train", limit=None, root=DATA, bvh_body=str(path), bvh_stride=4)
    src = td.sources["bvh_body"]
    assert len(src) == 2 * len(body) and src.present[:, :63].all() and not src.present[:, 63:].any()
    np.testing.assert_allclose(src.vectors[len(body):], layout.mirror_pose(src.vectors[:len(body)]))
    v, pm, lm = td.batch(64, {"body": 0.5, "bvh_body": 0.5}, 0.5, torch.Generator().manual_seed(0))
    assert pm[:, 0].all() and not pm[:, 1:].any() and v.shape == (64, 256)
    assert "bvh_body" not in TrainingData("val", root=DATA, bvh_body=str(path)).sources
