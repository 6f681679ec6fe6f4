"""Rig detection on real imported BVH armatures: a CMU take with ASF-style names (LeftCollar /
LeftShoulder = upper arm / LeftElbow) maps the arms and legs correctly; a partial map and an uncalibrated rig that
needs calibration are reported with the job's result."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="needs Blender's bpy module (scripts/setup_blender_venvs.sh)")

from blender_dposer import rig_profile as rp  # noqa: E402

# (name, parent, offset) of a CMU skeleton as an ASF-style conversion names it (Y up, centimetres-ish)
ASF = [("Hips", None, (0, 0, 0)), ("LeftHip", "Hips", (8, -5, 0)), ("LeftKnee", "LeftHip", (0, -40, 0)),
       ("LeftAnkle", "LeftKnee", (0, -40, 0)), ("RightHip", "Hips", (-8, -5, 0)),
       ("RightKnee", "RightHip", (0, -40, 0)), ("RightAnkle", "RightKnee", (0, -40, 0)),
       ("Chest", "Hips", (0, 10, 0)), ("Chest2", "Chest", (0, 12, 0)), ("Chest3", "Chest2", (0, 12, 0)),
       ("Neck", "Chest3", (0, 12, 0)), ("Head", "Neck", (0, 10, 0)),
       ("LeftCollar", "Chest3", (4, 8, 0)), ("LeftShoulder", "LeftCollar", (12, 0, 0)),
       ("LeftElbow", "LeftShoulder", (26, 0, 0)), ("LeftWrist", "LeftElbow", (25, 0, 0)),
       ("RightCollar", "Chest3", (-4, 8, 0)), ("RightShoulder", "RightCollar", (-12, 0, 0)),
       ("RightElbow", "RightShoulder", (-26, 0, 0)), ("RightWrist", "RightElbow", (-25, 0, 0))]


def write_bvh(path, joints, frames=4):
    children = {n: [c for c, p, _ in joints if p == n] for n, _, _ in joints}
    offsets = {n: o for n, _, o in joints}
    lines = ["HIERARCHY"]

    def emit(name, depth):
        pad = "  " * depth
        root = depth == 0
        lines.append(f"{pad}{'ROOT' if root else 'JOINT'} {name}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {' '.join(str(float(x)) for x in offsets[name])}")
        chans = "6 Xposition Yposition Zposition Zrotation Xrotation Yrotation" if root else "3 Zrotation Xrotation Yrotation"
        lines.append(f"{pad}  CHANNELS {chans}")
        for c in children[name]:
            emit(c, depth + 1)
        if not children[name]:
            lines.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET 0.0 5.0 0.0", pad + "  }"])
        lines.append(pad + "}")

    emit(joints[0][0], 0)
    n_chan = 6 + 3 * (len(joints) - 1)
    rng = np.random.default_rng(0)
    lines += ["MOTION", f"Frames: {frames}", "Frame Time: 0.033333"]
    lines += [" ".join(f"{x:.3f}" for x in rng.normal(0, 5, n_chan)) for _ in range(frames)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def asf_rig(bpy_addon, scene, tmp_path):
    import addon_utils

    addon_utils.enable("io_anim_bvh")
    assert bpy.ops.import_anim.bvh(filepath=str(write_bvh(tmp_path / "cmu_asf.bvh", ASF))) == {"FINISHED"}
    return bpy.context.active_object


def test_cmu_asf_names_detected_with_the_upper_arm(asf_rig):
    rig, det = rp.detect_rig(asf_rig)
    assert det.preset.id == "cmu_asf_bvh"
    m = det.bone_map
    assert (m["left_collar"], m["left_shoulder"], m["left_elbow"]) == ("LeftCollar", "LeftShoulder", "LeftElbow")
    assert (m["right_hip"], m["right_knee"], m["right_ankle"]) == ("RightHip", "RightKnee", "RightAnkle")
    # no toe bones: the map is partial, and the detection says which joints it misses
    assert set(det.missing_joints) == {"left_foot", "right_foot"}
    line1, _ = rp.profile_text(asf_rig)
    assert "partial" in line1 and "left_foot" in line1


def test_clean_reports_partial_map_and_missing_calibration(asf_rig, prefs):
    from blender_dposer import operators as ops

    job = ops.CleanJob(bpy.context, 1, 4, 0.5, "body", "", False, 0)
    text = " | ".join(job.warnings)
    assert "partial bone map" in text and "left_foot" in text
    assert "uncalibrated" in text
    assert {j for j, _ in job.fill} >= {"left_hip", "left_knee", "left_shoulder", "left_elbow"}  # legs cleaned too
