"""dposer.spec.bone_maps without Blender: presets, auto-detection (case, prefixes), BVH names as Blender's BVH
importer creates them (the real Bandai Namco file when ../shared/data is present)."""
from __future__ import annotations

import os
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from dposer.spec import bone_maps as bm  # noqa: E402
from dposer.spec import bvh_names  # noqa: E402
from blender_dposer import rig_math as rm  # noqa: E402

BVH_DIR = Path(os.environ.get("DPOSER_DATA", REPO.parent / "shared" / "data")) / "bvh"
BANDAI_TAR = BVH_DIR / "bandai_namco_motion_1.tar.xz"
BANDAI_FILE = "dataset-1_walk_normal_001.bvh"

BANDAI_NAMES = ["joint_Root", "Hips", "Spine", "Chest", "Neck", "Head", "Shoulder_L", "UpperArm_L", "LowerArm_L",
                "Hand_L", "Shoulder_R", "UpperArm_R", "LowerArm_R", "Hand_R", "UpperLeg_L", "LowerLeg_L", "Foot_L",
                "Toes_L", "UpperLeg_R", "LowerLeg_R", "Foot_R", "Toes_R"]
CMU_NAMES = ["Hips", "LHipJoint", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "RHipJoint", "RightUpLeg",
             "RightLeg", "RightFoot", "RightToeBase", "LowerBack", "Spine", "Spine1", "Neck", "Neck1", "Head",
             "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand", "LeftFingerBase", "LeftHandIndex1", "LThumb",
             "RightShoulder", "RightArm", "RightForeArm", "RightHand", "RightFingerBase", "RightHandIndex1", "RThumb"]


def preset_rig_names(preset: bm.Preset) -> list[str]:
    return list(preset.bones.values()) + list(preset.extra_bones)


def test_presets_are_well_formed():
    for p in bm.PRESETS.values():
        assert not bm.validate_bone_map(p.bones), p.id
        assert len(set(p.bones.values())) == len(p.bones), p.id
        if p.read_bones is not None:
            assert set(p.read_bones) == set(p.bones)
    assert len(bm.SMPLX_OFFICIAL.bones) == len(bm.SMPLX_MESHCAPADE.bones) == 55
    assert bm.SMPLX_OFFICIAL.bones["left_eye_smplhf"] == "left_eye_smplhf"
    assert bm.SMPLX_MESHCAPADE.bones["left_eye_smplhf"] == "left_eye"
    assert bm.MIXAMO.bones["right_pinky3"] == "mixamorig:RightHandPinky3"
    assert bm.MIXAMO.bones["left_thumb1"] == "mixamorig:LeftHandThumb1"
    assert bm.RIGIFY.bones["left_thumb2"] == "thumb.02.L" and bm.RIGIFY.bones["right_ring1"] == "f_ring.01.R"
    assert bm.RIGIFY.read_bones["left_elbow"] == "DEF-forearm.L"
    assert bm.RIGIFY.fk_switches["upper_arm_parent.L"] == ("IK_FK", 1.0)
    assert any("IK_FK" in w for w in bm.RIGIFY.warnings)
    assert bm.BANDAI_BVH.euler and bm.CMU_BVH.euler and not bm.MIXAMO.euler


@pytest.mark.parametrize("pid", list(bm.PRESETS))
def test_detects_each_preset_from_its_own_names(pid):
    p = bm.PRESETS[pid]
    det = bm.detect_preset(preset_rig_names(p))
    assert det is not None and det.preset.id == pid
    assert det.coverage == 1.0 and det.matched == len(p.bones) and not det.missing_bones
    assert det.bone_map == dict(p.bones)
    # shuffled, with unrelated bones mixed in
    rng = np.random.default_rng(0)
    names = preset_rig_names(p) + ["Camera_target", "prop_sword", "IK_foot_ctrl"]
    det = bm.detect_preset(list(rng.permutation(names)))
    assert det.preset.id == pid


def test_detection_case_and_prefixes():
    # Mixamo: a second character gets 'mixamorig1:'; some exports lower-case or lose the namespace
    names = [b.replace("mixamorig:", "mixamorig1:") for b in bm.MIXAMO.bones.values()]
    det = bm.detect_preset(names)
    assert det.preset.id == "mixamo" and det.coverage == 1.0
    assert det.bone_map["left_wrist"] == "mixamorig1:LeftHand"
    det = bm.detect_preset([b.split(":")[1].upper() for b in bm.MIXAMO.bones.values()])
    assert det.preset.id == "mixamo" and det.bone_map["pelvis"] == "HIPS"
    det = bm.detect_preset(["Armature|" + b for b in bm.SMPLX_OFFICIAL.bones.values()])
    assert det.preset.id == "smplx" and det.coverage == 1.0
    # female SMPL FBX uses f_avg_
    det = bm.detect_preset([b.replace("m_avg_", "f_avg_") for b in bm.SMPL_FBX.bones.values()])
    assert det.preset.id == "smpl_fbx" and det.bone_map["left_knee"] == "f_avg_L_Knee"
    assert bm.normalize_name("mixamorig12:LeftHandIndex1") == "lefthandindex1"
    assert bm.normalize_name("DEF-thigh.L") == "thigh.l"
    assert bm.normalize_name("ValveBiped_Bip01_Pelvis") == "pelvis"  # both prefixes stripped, in turn
    assert bm.normalize_name("ValveBiped.Bip01_Pelvis") == "pelvis"  # the Source engine's own spelling
    assert bm.normalize_name("Bip01 L Thigh") == "l_thigh"
    assert bm.normalize_name("CC_Base_L_Upperarm") == "l_upperarm"


def test_smplx_namings_are_told_apart():
    official = list(bm.SMPLX_OFFICIAL.bones.values()) + ["root"]
    meshcapade = list(bm.SMPLX_MESHCAPADE.bones.values()) + ["root"]
    assert bm.detect_preset(official).preset.id == "smplx"
    assert bm.detect_preset(meshcapade).preset.id == "smplx_meshcapade"
    # without eyes both fit all their other bones; the official naming is preferred
    no_eyes = [b for b in official if "eye" not in b]
    det = bm.detect_preset(no_eyes)
    assert det.preset.id == "smplx" and det.undriven == ()  # eyes are not modelled


def test_cmu_versus_mixamo():
    det = bm.detect_preset(CMU_NAMES)
    assert det.preset.id == "cmu_bvh" and det.coverage == 1.0
    assert det.bone_map["spine1"] == "LowerBack" and det.bone_map["left_thumb1"] == "LThumb"
    # a Mixamo rig without fingers is detected as Mixamo, not CMU
    body = [b for j, b in bm.MIXAMO.bones.items() if not any(f in j for f in bm.FINGERS)]
    assert bm.detect_preset(body).preset.id == "mixamo"
    ranked = bm.rank_presets(CMU_NAMES)
    assert ranked[0].preset.id == "cmu_bvh" and len(ranked) == len(bm.PRESETS)


def test_rigify_generated_rig_names():
    # a generated Rigify rig holds FK controls next to DEF/ORG/MCH bones and IK controls
    names = (list(bm.RIGIFY.bones.values()) + list(bm.RIGIFY.read_bones.values()) + list(bm.RIGIFY.extra_bones)
             + ["ORG-" + b for b in ("spine", "thigh.L", "shin.L")] + ["hand_ik.L", "foot_ik.R", "MCH-thigh_ik.L"])
    det = bm.detect_preset(names)
    assert det.preset.id == "rigify" and det.coverage == 1.0
    assert det.bone_map["left_hip"] == "thigh_fk.L"  # writes go to FK controls, never DEF bones
    read = bm.resolve(det.preset.read_bones, names)
    assert read["left_hip"] == "DEF-thigh.L"


def test_nothing_detected_for_unrelated_rigs():
    assert bm.detect_preset(["Bone", "Bone.001", "Bone.002"]) is None
    assert bm.detect_preset([]) is None
    tail = ["tail_%02d" % i for i in range(30)] + ["Hips"]
    assert bm.detect_preset(tail) is None


def test_undriven_joints_and_summary():
    lacks = set(bm.BANDAI_BVH.lacks)
    fingers = {f"{s}_{f}{n}" for s in ("left", "right") for f in bm.FINGERS for n in (1, 2, 3)}
    assert lacks == fingers | {"jaw", "spine2"}
    det = bm.detect_preset(BANDAI_NAMES)
    assert set(det.undriven) == lacks
    text = bm.summarize_joints(det.undriven)
    assert "left fingers (15)" in text and "right fingers (15)" in text and "jaw" in text and "spine2" in text
    assert set(bm.CMU_BVH.lacks) == fingers - {"left_index1", "right_index1", "left_thumb1", "right_thumb1"} | {"jaw"}
    assert bm.MIXAMO.lacks == ("jaw",)
    assert bm.SMPLX_OFFICIAL.lacks == ()
    # a rig missing some preset bones: they are undriven too
    names = [b for b in bm.MIXAMO.bones.values() if "Pinky" not in b]
    det = bm.detect_preset(names)
    assert {j for j in det.undriven if "pinky" in j} == {f"{s}_pinky{n}" for s in ("left", "right") for n in (1, 2, 3)}


def test_bone_map_json_and_validation():
    det = bm.detect_preset(CMU_NAMES)
    text = bm.bone_map_to_json(det.bone_map, det.preset.id)
    back, pid = bm.bone_map_from_json(text)
    assert back == det.bone_map and pid == "cmu_bvh"
    assert bm.validate_bone_map({"pelvis": "Hips", "spine1": "Hips"}) == ["bone 'Hips' is mapped to both pelvis and spine1"]
    assert bm.validate_bone_map({"left_pinkie1": "x"}) == ["unknown SMPL-X joint 'left_pinkie1'"]
    assert bm.validate_bone_map({"pelvis": "Hips"}, rig_bones=["hips"]) == ["pelvis: bone 'Hips' is not in the rig"]
    for bad in ("not json", '{"version": 2, "bones": {}}', '{"version": 1, "bones": {"x": "y"}}'):
        with pytest.raises(ValueError):
            bm.bone_map_from_json(bad)


SYNTHETIC_BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT Left Up Leg
  {
    OFFSET 1 -1 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -4 0
    }
  }
  JOINT Spine
  {
    OFFSET 0 2 0
    CHANNELS 3 Xrotation Yrotation Zrotation
    JOINT Spine
    {
      OFFSET 0 2 0
      CHANNELS 3 Yrotation Zrotation Xrotation
    }
  }
}
MOTION
Frames: 1
Frame Time: 0.0333333
0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
"""


def test_parse_bvh_hierarchy_synthetic():
    joints = bvh_names.parse_bvh_hierarchy(SYNTHETIC_BVH)
    assert [j.name for j in joints] == ["Hips", "Left_Up_Leg", "Spine", "Spine.001"]  # as io_anim_bvh names them
    assert [j.parent for j in joints] == [-1, 0, 0, 2]
    assert joints[1].offset == (1.0, -1.0, 0.0) and joints[1].end_site == (0.0, -4.0, 0.0)
    assert [j.rotation_mode for j in joints] == ["ZYX", "ZXY", "XYZ", "YZX"]
    assert joints[1].euler_order == "YXZ"
    # a BVH channel rotation (Rz @ Rx @ Ry for Z X Y) is Blender's Euler in the reversed order
    x, y, z = 0.2, -0.4, 0.9
    np.testing.assert_allclose(rm.euler_to_matrix([x, y, z], joints[1].euler_order),
                               rm.rot_z(z) @ rm.rot_x(x) @ rm.rot_y(y), atol=1e-15)


@pytest.fixture(scope="module")
def bandai_bvh(tmp_path_factory):
    if not BANDAI_TAR.is_file():
        pytest.skip(f"Bandai Namco BVH archive not found at {BANDAI_TAR} (set DPOSER_DATA to ../shared/data)")
    with tarfile.open(BANDAI_TAR, "r:xz") as tar:
        member = next(m for m in tar if m.name.endswith(BANDAI_FILE))
        return tar.extractfile(member).read().decode("utf-8")


def test_bandai_bvh_names_from_the_real_file(bandai_bvh):
    joints = bvh_names.parse_bvh_hierarchy(bandai_bvh)
    names = [j.name for j in joints]
    assert sorted(names) == sorted(BANDAI_NAMES) and len(names) == 22
    assert all(j.rotation_mode == "ZXY" for j in joints)  # "Zrotation Xrotation Yrotation" on every joint
    assert bvh_names.bvh_bone_names(bandai_bvh) == names
    det = bm.detect_preset(names)
    assert det.preset.id == "bandai_bvh" and det.coverage == 1.0 and det.matched == 21
    assert det.bone_map["pelvis"] == "Hips" and det.bone_map["spine3"] == "Chest"
    assert det.bone_map["left_wrist"] == "Hand_L" and det.bone_map["right_foot"] == "Toes_R"
    # the SMPL-X kinematic tree is respected: each mapped joint's nearest mapped ancestor is its rig ancestor
    parent = {j.name: (joints[j.parent].name if j.parent >= 0 else None) for j in joints}
    for joint, bone in det.bone_map.items():
        a = rm.PARENTS[rm.JOINT_INDEX[joint]]
        while a >= 0 and rm.JOINT_NAMES[a] not in det.bone_map:
            a = rm.PARENTS[a]
        if a < 0:
            continue
        ancestors, b = [], parent[bone]
        while b is not None:
            ancestors.append(b)
            b = parent[b]
        assert det.bone_map[rm.JOINT_NAMES[a]] in ancestors, (joint, bone)


# ---- CMU BVH with ASF-style names; partial maps; uncalibrated rigs

# A CMU take converted with ASF-style names: LeftCollar is the clavicle, LeftShoulder the upper arm.
ASF_PARENTS = {"Hips": None, "LeftHip": "Hips", "LeftKnee": "LeftHip", "LeftAnkle": "LeftKnee", "LeftToe": "LeftAnkle",
               "RightHip": "Hips", "RightKnee": "RightHip", "RightAnkle": "RightKnee", "RightToe": "RightAnkle",
               "Chest": "Hips", "Chest2": "Chest", "Chest3": "Chest2", "Neck": "Chest3", "Head": "Neck",
               "LeftCollar": "Chest3", "LeftShoulder": "LeftCollar", "LeftElbow": "LeftShoulder",
               "LeftWrist": "LeftElbow", "RightCollar": "Chest3", "RightShoulder": "RightCollar",
               "RightElbow": "RightShoulder", "RightWrist": "RightElbow"}


def test_cmu_asf_names_map_the_upper_arm_and_legs():
    det = bm.detect_preset(list(ASF_PARENTS), parents=ASF_PARENTS)
    assert det.preset.id == "cmu_asf_bvh"
    m = det.bone_map
    assert (m["left_collar"], m["left_shoulder"], m["left_elbow"], m["left_wrist"]) == \
        ("LeftCollar", "LeftShoulder", "LeftElbow", "LeftWrist")
    assert (m["right_hip"], m["right_knee"], m["right_ankle"]) == ("RightHip", "RightKnee", "RightAnkle")
    assert det.missing_joints == () and not det.warnings(calibrated=True)


def test_cgspeed_names_map_collar_and_upper_arm():
    parents = {"Hips": None, "LowerBack": "Hips", "Spine": "LowerBack", "Spine1": "Spine",
               "LeftShoulder": "Spine1", "LeftArm": "LeftShoulder", "LeftForeArm": "LeftArm", "LeftHand": "LeftForeArm",
               "LHipJoint": "Hips", "LeftUpLeg": "LHipJoint", "LeftLeg": "LeftUpLeg", "LeftFoot": "LeftLeg"}
    det = bm.detect_preset(list(parents), parents=parents)
    assert det.preset.id == "cmu_bvh"
    assert (det.bone_map["left_collar"], det.bone_map["left_shoulder"]) == ("LeftShoulder", "LeftArm")


def test_hierarchy_moves_an_upper_arm_named_shoulder_off_the_collar():
    """Names alone would make 'LeftShoulder' the collar (cgspeed); the hierarchy shows it is the elbow's parent,
    i.e. the upper arm. The collar then has no bone and the detection says so."""
    parents = {"Hips": None, "LowerBack": "Hips", "Spine": "LowerBack", "Spine1": "Spine", "Neck": "Spine1",
               "Head": "Neck", "LeftShoulder": "Spine1", "LeftForeArm": "LeftShoulder", "LeftHand": "LeftForeArm",
               "LeftUpLeg": "Hips", "LeftLeg": "LeftUpLeg", "LeftFoot": "LeftLeg"}
    names = list(parents)
    assert bm.detection_for("cmu_bvh", names).bone_map["left_collar"] == "LeftShoulder"  # names only: wrong
    det = bm.detection_for("cmu_bvh", names, parents=parents)
    assert det.bone_map["left_shoulder"] == "LeftShoulder" and "left_collar" not in det.bone_map
    assert "left_collar" in det.missing_joints
    text = " ".join(det.warnings(calibrated=True))
    assert "partial bone map" in text and "left_collar" in text


def test_partial_map_lists_missing_joints():
    names = [n for n in ASF_PARENTS if n not in ("Chest2", "LeftToe", "RightToe")]
    det = bm.detect_preset(names, parents={n: ASF_PARENTS[n] for n in names})
    assert det.preset.id == "cmu_asf_bvh"
    assert set(det.missing_joints) == {"spine2", "left_foot", "right_foot"}
    assert "spine2" in det.warnings(calibrated=True)[0]


def test_mixamo_uncalibrated_warns():
    names = [b for b in bm.MIXAMO.bones.values()]
    det = bm.detect_preset(names)
    assert det.preset.id == "mixamo"
    assert any("uncalibrated" in w and "Calibrate Rest" in w for w in det.warnings(calibrated=False))
    assert not det.warnings(calibrated=True)
    smplx = bm.detect_preset(list(bm.SMPLX_OFFICIAL.bones.values()))
    assert not smplx.warnings(calibrated=False)  # an SMPL-X rig's rest pose is the zero pose
