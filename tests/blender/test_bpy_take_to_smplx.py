"""SMPL-X Armature from Take in real bpy: a finger-less BVH take (synthetic, from a real AMASS take's body motion,
written in centimetres) through Blender's BVH importer, calibrated, turned into a keyed DPoser armature, whose
hands Complete then fills over the range: finger keys on every frame, knee and elbow angles following the take's,
the pelvis following its root motion."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="needs Blender's bpy module (scripts/setup_blender_venvs.sh)")
pytest.importorskip("dposer", reason="the embedded backend needs dposer + torch in this Python")

from blender_dposer import keyframes as kf  # noqa: E402
from blender_dposer import rig_math as rm  # noqa: E402

from .conftest import assert_scene_unchanged, keyed_quaternions, scene_snapshot  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bvh_synth import CMU_NAMES, synth_bvh  # noqa: E402

FRAMES = 48
HINGES = ("left_knee", "right_knee", "left_elbow", "right_elbow")
FINGERS = [rm.JOINT_NAMES[j] for j in range(25, 55)]


@pytest.fixture(scope="module")
def motion(data_root):
    """(body (F, 63), global_orient (F, 3), trans (F, 3)): the AMASS take at 30 fps, moved along x."""
    from dposer.formats.data import load_amass_take

    ps = load_amass_take(data_root).subset(np.arange(0, 4 * FRAMES, 4))
    body = ps.to_dict()["body_pose"].astype(np.float64)
    orient = np.zeros((FRAMES, 3))
    trans = np.zeros((FRAMES, 3))
    trans[:, 0] = np.linspace(0.0, 1.2, FRAMES)  # a walk of 1.2 m along x
    return body, orient, trans


@pytest.fixture
def take_rig(prefs, bpy_addon, scene, motion, tmp_path):
    import addon_utils

    prefs.backend_mode = "EMBEDDED"
    addon_utils.enable("io_anim_bvh")
    path = tmp_path / "take.bvh"
    path.write_text(synth_bvh(*motion, CMU_NAMES, unit=0.01))
    assert bpy.ops.import_anim.bvh(filepath=str(path)) == {"FINISHED"}
    obj = bpy.context.active_object
    scene.render.fps, scene.render.fps_base = 30, 1.0
    scene.frame_start, scene.frame_end = 1, FRAMES
    scene.frame_set(1)
    return obj


def _angles(q: np.ndarray) -> np.ndarray:
    return 2 * np.degrees(np.arccos(np.clip(np.abs(q[:, 0]), 0, 1)))


def test_take_to_smplx_then_complete_hands(take_rig, motion, scene):
    obj = take_rig
    assert bpy.ops.dposer.show_zero_pose(source="AUTO") == {"FINISHED"}
    assert bpy.ops.dposer.calibrate_rest(method="POSE") == {"FINISHED"}
    scene.frame_set(1)
    with pytest.raises(RuntimeError, match=r"has no bones for .*SMPL-X Armature from Take \(dposer.take_to_smplx\)"):
        bpy.ops.dposer.complete(parts="left_hand,right_hand", frame_start=1, frame_end=FRAMES)
    # one undo step (headless, the step Blender pushes after an UNDO operator is pushed by hand), from Pose Mode
    bpy.ops.object.mode_set(mode="POSE")
    name = obj.name
    before = scene_snapshot()
    bpy.ops.ed.undo_push(message="before")
    assert bpy.ops.dposer.take_to_smplx() == {"FINISHED"}
    bpy.ops.ed.undo_push(message="after")
    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert_scene_unchanged(before)
    obj, scene = bpy.data.objects[name], bpy.context.scene  # undo rebuilt the data: fresh references
    bpy.context.view_layer.objects.active = obj
    if obj.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    n_objects = len(bpy.data.objects)
    assert bpy.ops.dposer.take_to_smplx() == {"FINISHED"}
    new = bpy.context.active_object
    assert len(bpy.data.objects) == n_objects + 1 and new is not obj and new["dposer_take_source"] == obj.name
    assert scene.frame_current == 1

    frames = [float(f) for f in range(1, FRAMES + 1)]
    body = motion[0].reshape(FRAMES, 21, 3)
    for joint in HINGES:
        real = np.degrees(np.linalg.norm(body[:, rm.JOINT_INDEX[joint] - 1], axis=-1))
        copied = _angles(keyed_quaternions(new, joint, frames))
        assert real.std() > 1.0, joint  # the take bends it: a correlation can tell
        assert np.corrcoef(real, copied)[0, 1] >= 0.95, joint
    # root motion: the pelvis walks the take's 1.2 m (the take is in centimetres: scaled by the leg lengths)
    heads = []
    for f in (1, FRAMES):
        scene.frame_set(f)
        heads.append(np.array(new.matrix_world) @ np.r_[np.array(new.pose.bones["pelvis"].head), 1.0])
    assert abs((heads[1] - heads[0])[0] - 1.2) < 0.1 and abs((heads[1] - heads[0])[1]) < 0.05
    scene.frame_set(1)

    assert bpy.ops.dposer.complete(parts="left_hand,right_hand", frame_start=1, frame_end=FRAMES) == {"FINISHED"}
    ch = kf.Channels(new)
    for bone in FINGERS:
        fc = ch.find(kf.rotation_data_path(bone, "QUATERNION"), 0)
        assert fc is not None, bone
        keyed = kf.fcurve_keys(fc)[:, 0]
        assert all(np.any(np.abs(keyed - f) < 1e-3) for f in frames), bone
    # Complete wrote the fingers only: the body still follows the take
    for joint in HINGES:
        real = np.degrees(np.linalg.norm(body[:, rm.JOINT_INDEX[joint] - 1], axis=-1))
        assert np.corrcoef(real, _angles(keyed_quaternions(new, joint, frames)))[0, 1] >= 0.95, joint

    # the preview's hypotheses are finger motions: the shown one moves, the best estimate barely does
    def motion(bones):
        q = [keyed_quaternions(new, b, frames) for b in bones]
        return float(np.mean([_angles(np.concatenate([(a[1:, :1] * a[:-1, :1] + (a[1:, 1:] * a[:-1, 1:]).sum(-1,
                      keepdims=True))], 1)) for a in q]))

    calm = motion(FINGERS)
    assert bpy.ops.dposer.complete(parts="left_hand,right_hand", frame_start=1, frame_end=FRAMES, hypotheses=3,
                                   preview=True) == {"FINISHED"}
    assert bpy.ops.dposer.preview_next() == {"FINISHED"}
    lively = motion(FINGERS)
    assert lively > 0.5 and lively > 5 * calm, (lively, calm)  # degrees per frame at 30 fps
    assert bpy.ops.dposer.preview_accept() == {"FINISHED"}
    assert abs(motion(FINGERS) - lively) < 1e-6


def test_take_to_smplx_refuses_a_rig_without_animation(prefs, bpy_addon, scene):
    assert bpy.ops.dposer.add_armature() == {"FINISHED"}
    before = scene_snapshot()
    with pytest.raises(RuntimeError, match="has no animation"):
        bpy.ops.dposer.take_to_smplx()
    assert_scene_unchanged(before)


def _hinge_angles(obj, bones: dict[str, str], frames) -> dict[str, np.ndarray]:
    """Per frame, the bend (degrees) at each hinge: the angle between the segments into and out of the joint,
    from the evaluated bone heads (parent joint -> joint -> child joint)."""
    out = {h: [] for h in HINGES}
    for f in frames:
        bpy.context.scene.frame_set(int(f))
        for h in HINGES:
            a, b, c = (np.array(obj.pose.bones[bones[j]].head) for j in _CHAIN[h])
            u, v = b - a, c - b
            out[h].append(np.degrees(np.arccos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1))))
    return {h: np.asarray(x) for h, x in out.items()}


_CHAIN = {f"{s}_knee": (f"{s}_hip", f"{s}_knee", f"{s}_ankle") for s in ("left", "right")}
_CHAIN |= {f"{s}_elbow": (f"{s}_shoulder", f"{s}_elbow", f"{s}_wrist") for s in ("left", "right")}


def test_take_to_smplx_on_a_real_bandai_take(prefs, bpy_addon, scene, data_root, tmp_path):
    """A real finger-less take (Bandai Namco, a kick at 30 fps) through Blender's BVH importer: the new
    armature's knees and elbows bend as the take's do (angles between the evaluated bone segments)."""
    import addon_utils
    import tarfile

    from blender_dposer import rig_profile as rp

    archive = data_root / "bvh" / "bandai_namco_motion_1.tar.xz"
    if not archive.is_file():
        pytest.skip(f"{archive} not found")
    clip = "dataset-1_kick_normal_001.bvh"
    with tarfile.open(archive) as tar:
        member = tar.getmember(f"./{clip}")
        member.name = clip
        tar.extract(member, tmp_path)
    addon_utils.enable("io_anim_bvh")
    assert bpy.ops.import_anim.bvh(filepath=str(tmp_path / clip)) == {"FINISHED"}
    src = bpy.context.active_object
    scene.render.fps, scene.render.fps_base = 30, 1.0
    scene.frame_start, scene.frame_end = 1, 60
    scene.frame_set(1)
    assert bpy.ops.dposer.show_zero_pose(source="AUTO") == {"FINISHED"}
    assert bpy.ops.dposer.calibrate_rest(method="POSE") == {"FINISHED"}
    scene.frame_set(1)
    assert bpy.ops.dposer.take_to_smplx() == {"FINISHED"}
    new = bpy.context.active_object
    frames = range(1, 61)
    bone_map = rp.detect_rig(src)[1].bone_map
    real = _hinge_angles(src, bone_map, frames)
    copied = _hinge_angles(new, {j: j for j in rm.JOINT_NAMES}, frames)
    # the kick bends every hinge (std over 2 deg: a correlation can tell)
    assert all(real[h].std() > 2.0 for h in HINGES), {h: real[h].std() for h in HINGES}
    for h in HINGES:
        assert np.corrcoef(real[h], copied[h])[0, 1] >= 0.95, (h, np.corrcoef(real[h], copied[h])[0, 1])
