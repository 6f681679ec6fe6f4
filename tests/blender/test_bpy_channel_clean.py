"""Clean's channel pass in Blender (blender_dposer.channel_keys): a CMU cgspeed BVH imported with Blender's own
importer, a 30 deg twist spike keyed on Neck1 (a bone with no SMPL-X joint), repaired in the bone's own Euler
curves; no other key of that bone moves. The cleaner gets the rig's skeleton."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="needs Blender's bpy module (scripts/setup_blender_venvs.sh)")

from blender_dposer import channel_keys  # noqa: E402
from blender_dposer import keyframes as kf  # noqa: E402
from blender_dposer import rig_math as rm  # noqa: E402

BONE, FRAME = "Neck1", 140


@pytest.fixture
def cgspeed(bpy_addon, scene, data_root):
    import addon_utils

    path = data_root / "bvh" / "other_studios" / "cmu_cgspeed_example_278f.bvh"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    addon_utils.enable("io_anim_bvh")
    assert bpy.ops.import_anim.bvh(filepath=str(path), update_scene_fps=True, update_scene_duration=True) == {"FINISHED"}
    return bpy.context.active_object


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.linalg.norm(rm.matrix_to_axis_angle(rm.transpose(a) @ b), axis=-1))


def test_a_twist_spike_on_a_bone_without_smplx_joint_is_repaired(cgspeed):
    obj = cgspeed
    mode = obj.pose.bones[BONE].rotation_mode
    assert mode not in ("QUATERNION", "AXIS_ANGLE")  # the importer keeps the file's Euler order
    frames = np.arange(1, 279, dtype=np.float64)
    original = kf.read_rotation_values(obj, BONE, frames, mode)
    R0 = rm.rotation_to_matrix(original, mode)
    # a twist about the bone's own axis (a pose bone's local Y) on one frame
    twist = rm.axis_angle_to_matrix(np.array([0.0, np.radians(30.0), 0.0]))
    spiked = kf.rotation_keys(BONE, mode, [FRAME], (R0[FRAME - 1] @ twist)[None], original[FRAME - 2])
    kf.write_rotation_keys(obj, [spiked])
    R1 = rm.rotation_to_matrix(kf.read_rotation_values(obj, BONE, frames, mode), mode)
    assert _angle_deg(R1[FRAME - 1], R0[FRAME - 1]) == pytest.approx(30.0, abs=0.01)

    fps = bpy.context.scene.render.fps / bpy.context.scene.render.fps_base
    assert fps == pytest.approx(120.0, rel=1e-3)
    keys, repaired = channel_keys.clean_bones(obj, 1, 278, fps)
    assert {"bone": BONE, "kind": "spike", "first": FRAME, "last": FRAME} in repaired
    kf.write_rotation_keys(obj, keys)
    after = kf.read_rotation_values(obj, BONE, frames, mode)
    R2 = rm.rotation_to_matrix(after, mode)
    assert _angle_deg(R2[FRAME - 1], R0[FRAME - 1]) < 3.0  # back to within a tenth of the spike
    others = frames != FRAME
    assert np.abs(after[others] - original[others]).max() < 1e-6  # no other key of the bone moved


def test_clean_repairs_a_twist_spike_on_a_mapped_bone(prefs, cgspeed):
    """Through the Clean operator on the calibrated rig: a 30 deg twist about LeftForeArm's own axis (a bone the
    prior drives) is repaired in the bone's own curves, reported and tagged; no other key of that bone moves."""
    from blender_dposer import operators as ops

    from .test_bpy_bvh_clean import calibrate

    obj, bone, frame = cgspeed, "LeftForeArm", 140
    calibrate(obj)
    mode = obj.pose.bones[bone].rotation_mode
    frames = np.arange(1, 279, dtype=np.float64)
    original = kf.read_rotation_values(obj, bone, frames, mode)
    R0 = rm.rotation_to_matrix(original, mode)
    twist = rm.axis_angle_to_matrix(np.array([0.0, np.radians(30.0), 0.0]))
    kf.write_rotation_keys(obj, [kf.rotation_keys(bone, mode, [frame], (R0[frame - 1] @ twist)[None],
                                                  original[frame - 2])])
    assert bpy.ops.dposer.clean(frame_start=1, frame_end=278, lock_selected=False) == {"FINISHED"}
    after = kf.read_rotation_values(obj, bone, frames, mode)
    assert _angle_deg(rm.rotation_to_matrix(after, mode)[frame - 1], R0[frame - 1]) < 3.0
    others = frames != frame
    assert np.abs(after[others] - original[others]).max() < 1e-6
    tagged = {int(k.co[0]) for fc in kf.Channels(obj).all() if f'"{bone}"' in fc.data_path
              for k in fc.keyframe_points if k.type == ops.REPAIRED_KEY_TYPE}
    assert tagged == {frame}


def test_the_cleaner_walks_the_rigs_skeleton(cgspeed, data_root):
    """The channel pass gives the cleaner each bone's parent from the rig, the same skeleton as the BVH's own
    hierarchy (so only bones near each other in it count as companions); a bone left out is skipped to its nearest
    ancestor among those cleaned."""
    from dposer.formats import bvh, bvh_channels

    take = bvh.read(data_root / "bvh" / "other_studios" / "cmu_cgspeed_example_278f.bvh")
    names = [take.joints[k].name for k in bvh_channels.rotation_bones(take)]
    assert list(channel_keys.bone_parents(cgspeed, names)) == list(bvh_channels.rotation_parents(take))
    without = [n for n in names if n != "LeftForeArm"]
    parents = channel_keys.bone_parents(cgspeed, without)
    assert without[parents[without.index("LeftHand")]] == "LeftArm"
    assert parents[without.index(names[0])] == -1
