"""Fill Gap (``dposer.fill_gap``) in real bpy with the embedded backend, on a real take: the CMU cgspeed BVH (120 fps)
imported with Blender's own importer and calibrated with the add-on's operators. A dropout (the body's keys at rest
on frames 120-149) is filled back close to the take from the motion around it; every key outside the gap keeps every
attribute bit for bit; the filled keys are tagged; the motion runs on across the gap's edges without a pop. Selected
bones limit the fill, one undo step restores the scene, and Esc leaves it as it was."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="needs Blender's bpy module (scripts/setup_blender_venvs.sh)")
pytest.importorskip("dposer", reason="the embedded backend needs dposer + torch in this Python")

from blender_dposer import fill_ops  # noqa: E402
from blender_dposer import keyframes as kf  # noqa: E402
from blender_dposer import rig_math as rm  # noqa: E402
from blender_dposer import rig_profile as rp  # noqa: E402
from dposer.spec.skeleton import BODY_MOTION_JOINTS  # noqa: E402

from .conftest import Event, assert_scene_unchanged, scene_snapshot, start_modal  # noqa: E402

START, END = 120, 149
FRAMES = np.arange(1, 279, dtype=np.float64)
GAP = (FRAMES >= START) & (FRAMES <= END)


@pytest.fixture
def take(prefs, bpy_addon, scene, data_root):
    import addon_utils

    path = data_root / "bvh" / "other_studios" / "cmu_cgspeed_example_278f.bvh"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    prefs.backend_mode = "EMBEDDED"
    addon_utils.enable("io_anim_bvh")
    assert bpy.ops.import_anim.bvh(filepath=str(path), update_scene_fps=True,
                                   update_scene_duration=True) == {"FINISHED"}
    obj = bpy.context.active_object
    assert kf.action_frame_range(obj) == (1, 278)
    assert bpy.ops.dposer.show_zero_pose(source="AUTO") == {"FINISHED"}
    assert bpy.ops.dposer.calibrate_rest(method="POSE") == {"FINISHED"}
    scene.frame_set(1)
    return obj


def body_bones(obj) -> list[str]:
    bone_map = rp.detect_rig(obj)[1].bone_map
    return [bone_map[j] for j in BODY_MOTION_JOINTS if j in bone_map]


def channels(obj) -> dict:
    """{(data_path, index): every key attribute as (keys, width)} of every F-curve."""
    out = {}
    for fc in kf.Channels(obj).all():
        attrs = kf.key_attributes(fc)
        n = len(fc.keyframe_points)
        out[(fc.data_path, fc.array_index)] = {a: v.reshape(n, -1) for a, v in attrs.items()}
    return out


def rotations(obj, bone) -> np.ndarray:
    mode = obj.pose.bones[bone].rotation_mode
    return rm.rotation_to_matrix(kf.read_rotation_values(obj, bone, FRAMES, mode), mode)


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.linalg.norm(rm.matrix_to_axis_angle(rm.transpose(a) @ b), axis=-1))


def assert_outside_untouched(before: dict, after: dict, filled: list[str]) -> None:
    """Every key outside the gap keeps every attribute bit for bit; the channels of bones not filled are whole."""
    assert set(after) == set(before)
    for ch, attrs in before.items():
        frames = attrs["co"][:, 0]
        out = (frames < START) | (frames > END)
        is_filled = any(f'"{b}"' in ch[0] for b in filled) and "rotation" in ch[0]
        for attr, v in attrs.items():
            if is_filled:
                assert np.array_equal(after[ch][attr][(after[ch]["co"][:, 0] < START) | (after[ch]["co"][:, 0] > END)],
                                      v[out]), (ch, attr)
            else:
                assert np.array_equal(after[ch][attr], v), (ch, attr)


def test_fill_gap_refills_a_dropout_from_the_motion_around_it(take):
    obj = take
    bones = body_bones(obj)
    assert len(bones) >= 20
    truth = {b: rotations(obj, b) for b in bones}
    rest = np.tile(np.eye(3), (int(GAP.sum()), 1, 1))
    kf.write_rotation_keys(obj, [kf.rotation_keys(b, obj.pose.bones[b].rotation_mode, FRAMES[GAP], rest)
                                 for b in bones])
    before = channels(obj)
    assert bpy.ops.dposer.fill_gap(frame_start=START, frame_end=END) == {"FINISHED"}
    after = channels(obj)
    assert_outside_untouched(before, after, bones)

    dropout, filled = [], []
    for b in bones:
        R = rotations(obj, b)
        assert np.array_equal(R[~GAP], truth[b][~GAP])
        dropout.append(angle_deg(rest, truth[b][GAP]).mean())
        filled.append(angle_deg(R[GAP], truth[b][GAP]).mean())
        # no pop: the step into the gap (frame START-1 -> START) and out of it (END -> END+1) is within 2x the
        # take's own steps just outside it (0.2 deg floor for bones at rest); step[i]: frame i+1 -> i+2
        step = angle_deg(R[:-1], R[1:])
        into, beside_in = step[START - 2], max(step[START - 3], step[START - 4])
        out, beside_out = step[END - 1], max(step[END], step[END + 1])
        assert into <= 2.0 * beside_in + 0.2, (b, into, beside_in)
        assert out <= 2.0 * beside_out + 0.2, (b, out, beside_out)
    assert np.mean(filled) < 0.25 * np.mean(dropout), (np.mean(filled), np.mean(dropout))
    # the filled keys, and only they, are tagged
    breakdown = bpy.types.Keyframe.bl_rna.properties["type"].enum_items[fill_ops.FILLED_KEY_TYPE].value
    for ch, attrs in after.items():
        if "rotation" in ch[0] and any(f'"{b}"' in ch[0] for b in bones):
            tagged = attrs["co"][attrs["type"][:, 0] == breakdown, 0]
            assert sorted(tagged.astype(int).tolist()) == list(range(START, END + 1)), ch


def test_selected_bones_limit_the_fill(take):
    obj = take
    bpy.ops.object.mode_set(mode="POSE")
    chosen = ("LeftUpLeg", "LeftLeg")
    for pb in obj.pose.bones:
        if hasattr(pb, "select"):  # PoseBone.select from 5.0, Bone.select before
            pb.select = pb.name in chosen
        else:
            pb.bone.select = pb.name in chosen
    before = channels(obj)
    assert bpy.ops.dposer.fill_gap(frame_start=START, frame_end=END) == {"FINISHED"}
    after = channels(obj)
    assert_outside_untouched(before, after, list(chosen))
    changed = {ch[0].split('"')[1] for ch in before if not np.array_equal(after[ch]["co"], before[ch]["co"])}
    assert changed == set(chosen)


def test_one_undo_step_restores_the_scene(take):
    before = scene_snapshot()
    bpy.ops.ed.undo_push(message="before")
    assert bpy.ops.dposer.fill_gap(frame_start=START, frame_end=END) == {"FINISHED"}
    bpy.ops.ed.undo_push(message="after")
    assert scene_snapshot()["objects"][take.name]["keys"] != before["objects"][take.name]["keys"]
    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert_scene_unchanged(before)


def test_preview_range_and_esc(take):
    """The preview range is the default gap (none set: a clear refusal); Esc right after invoke leaves the scene
    exactly as it was."""
    scene = bpy.context.scene
    scene.use_preview_range = False
    with pytest.raises(RuntimeError, match="preview range"):
        bpy.ops.dposer.fill_gap()
    scene.use_preview_range = True
    scene.frame_preview_start, scene.frame_preview_end = START, END
    ctx = bpy.context
    before = scene_snapshot()
    op = start_modal(fill_ops.DPOSER_OT_fill_gap, bpy.ops.dposer.fill_gap)
    assert ctx.window_manager.dposer_progress == 0.0 and "Esc to cancel" in ctx.window_manager.dposer_status
    assert op.modal(ctx, Event("ESC")) == {"CANCELLED"}
    assert ctx.window_manager.dposer_progress == -1.0 and op._timer is None
    assert_scene_unchanged(before)

