"""dposer convert on the BVH layouts other studios write: the verbatim CMU cgspeed hierarchy (root and helper joints
at OFFSET 0 0 0, LowerBack on the Hips origin, Neck / LeftShoulder on the Spine1 origin), its style-set variant
(ZXY channels, centimetres), the two loose takes in ../shared/data/bvh/other_studios/ (read, converted, written
back) and a Blender-metarig take whose forearms end in an End Site. The converted pose must keep the take's knee
and elbow flexion and its hip and shoulder angles to the trunk (:mod:`dposer.eval.convert_angles`)."""
from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bvh_synth import cgspeed_bvh
from conftest import DATA, needs_data
from dposer.formats import bvh, convert, convert_back
from dposer.eval.convert_angles import ANGLES, anatomical_angles, joint_angle_errors, summarize

OTHER = None if DATA is None else DATA / "bvh" / "other_studios"
LOOSE = ("cmu_cgspeed_example_278f.bvh", "cmu_131_03_hop.bvh")


def _check_angles(take: bvh.Bvh, r: dict, mean_deg: float, max_deg: float) -> None:
    s = summarize(joint_angle_errors(take, r))
    assert set(s) == set(ANGLES)
    for k, (mean, worst) in s.items():
        assert mean < mean_deg and worst < max_deg, (k, mean, worst)


@pytest.mark.parametrize("variant,kw,unit", [("cgspeed", {}, "cmu"),
                                             ("style set", {"order": "ZXY", "unit_scale": 5.644}, "cm")])
def test_cgspeed_layout_converts_and_keeps_joint_angles(variant, kw, unit):
    text = cgspeed_bvh(40, seed=3, **kw)
    take = bvh.parse(text)
    assert take.joints[take.index("LowerBack")].offset == (0.0, 0.0, 0.0)  # the layout that broke the aim
    r = convert.convert_bvh(text)
    assert r["skeleton"] == "cmu_bvh" and r["unit"] == unit
    assert r["body_pose"].shape == (40, 63) and np.isfinite(r["body_pose"]).all()
    assert json.loads(r["bone_map"])["spine1"] == "LowerBack"
    _check_angles(take, r, 0.5, 1.0)
    # frame 0 is the rest pose (every channel zero): legs straight, arms out
    knee = r["body_pose"].reshape(-1, 21, 3)[0, [3, 4]]
    assert np.degrees(np.linalg.norm(knee, axis=-1)).max() < 15
    # a bone of zero length in the take has no direction: no fit error is claimed for it
    bones = json.loads(r["fit_error_per_bone"])
    assert "pelvis-spine1" not in bones and "left_hip-left_knee" in bones
    assert bones["left_hip-left_knee"][1] < 1.0 and bones["left_elbow-left_wrist"][1] < 1.0
    assert r["fit_error_deg_max"] == pytest.approx(max(m for _, m in bones.values()), abs=0.01)


def test_trans_is_in_metres_whatever_the_unit():
    a = convert.convert_bvh(cgspeed_bvh(6, seed=1))
    b = convert.convert_bvh(cgspeed_bvh(6, seed=1, order="ZXY", unit_scale=5.644))
    np.testing.assert_allclose(a["body_pose"], b["body_pose"], atol=1e-3)
    np.testing.assert_allclose(a["trans"], b["trans"], atol=1e-3)
    assert 0.7 < a["trans"][0, 1] + 0.93 < 1.1  # the rest frame's pelvis ~0.96 m up (17 CMU units)


@needs_data
@pytest.mark.parametrize("name", LOOSE)
def test_loose_other_studio_take_reads_converts_and_writes_back(name):
    take = bvh.read(OTHER / name)
    r = convert.convert_bvh(OTHER / name)
    assert r["unit"] == "cmu" and np.isfinite(r["body_pose"]).all()
    _check_angles(take, r, 1.0, 2.0)
    bone_map = json.loads(r["bone_map"])
    before = {"global_orient": r["global_orient"], "body_pose": r["body_pose"]}
    same = convert_back.apply_to_bvh(take, bone_map, before, {k: v.copy() for k, v in before.items()})
    assert np.array_equal(same.motion, take.motion)
    # bend the left knee a further 20 deg about its hinge: the written take's knee bends 20 deg more
    body = r["body_pose"].reshape(-1, 21, 3).astype(np.float64)
    body[:, 3] = (Rotation.from_rotvec(body[:, 3]) * Rotation.from_euler("x", 20, degrees=True)).as_rotvec()
    after = {"global_orient": r["global_orient"], "body_pose": body.reshape(-1, 63)}
    written = bvh.dumps(convert_back.apply_to_bvh(take, bone_map, before, after))
    out, again = bvh.parse(written), convert.convert_bvh(written)
    k0 = anatomical_angles(convert.mapped_take(take, bone_map)[0].P)["left knee flexion"]
    k1 = anatomical_angles(convert.mapped_take(out, bone_map)[0].P)["left knee flexion"]
    assert np.median(np.abs(k1 - k0)) > 10  # the change reached the file
    body_again = again["body_pose"].reshape(-1, 21, 3)[:, 3]
    assert np.degrees((Rotation.from_rotvec(body_again).inv() * Rotation.from_rotvec(body[:, 3])).magnitude()
                      ).mean() < 1.0


@needs_data
def test_metarig_take_with_end_site_hands():
    path = OTHER / "reactidle_idle_24fps.tar.xz"
    with tarfile.open(path, "r|xz") as tar:  # the first take in the archive (nothing extracted)
        m = next(x for x in tar if x.name.endswith(".bvh"))
        text = tar.extractfile(m).read().decode()
    take = bvh.parse(text, m.name)
    assert "hand.L" not in take.names and take.joints[take.index("forearm.L")].end_site is not None
    r = convert.convert_bvh(text)
    assert r["skeleton"] == "metarig_bvh" and r["unit"] == "m" and r["mocap_framerate"] == pytest.approx(24, 0.01)
    assert "left_wrist" not in json.loads(r["bone_map"])  # placed on the forearm's End Site, not a joint
    _check_angles(take, r, 1.0, 2.0)


def test_unmappable_take_is_one_sentence_naming_what_is_missing():
    text = cgspeed_bvh(2).replace("LeftLeg", "LeftShin")
    with pytest.raises(bvh.BvhError) as e:
        convert.convert_bvh(text)
    msg = str(e.value)
    assert "no joint for left_knee among the file's joints" in msg and msg.count(". ") == 0 and msg.endswith(".")


@pytest.mark.parametrize("order,fps", [("XYZ", 24.0), ("YXZ", 240.0), ("YZX", 60.0)])
def test_channel_order_and_frame_rate_leave_the_pose_alone(order, fps):
    ref = convert.convert_bvh(cgspeed_bvh(8, seed=2))
    r = convert.convert_bvh(cgspeed_bvh(8, seed=2, order=order, fps=fps))
    assert r["mocap_framerate"] == pytest.approx(fps, rel=1e-4)
    np.testing.assert_allclose(r["body_pose"], ref["body_pose"], atol=1e-3)
