"""Complete with K hypotheses and a preview, in real bpy (embedded backend): hypothesis 1 is written, Next/Previous
cycle through the backend's own ranked hypotheses, Accept keeps one, Cancel puts the original keys back exactly
(every key attribute), and other jobs wait until the preview is settled."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="needs Blender's bpy module (scripts/setup_blender_venvs.sh)")
pytest.importorskip("dposer", reason="the embedded backend needs dposer + torch in this Python")

from blender_dposer import keyframes as kf  # noqa: E402
from blender_dposer import jobs, session  # noqa: E402
from blender_dposer import preview  # noqa: E402
from blender_dposer import rig_math as rm  # noqa: E402

from .conftest import assert_scene_unchanged, draw_panel, key_pose, keyed_quaternions, scene_snapshot  # noqa: E402

K = 3
RIGHT_HAND = range(40, 55)


@pytest.fixture(scope="module")
def poses(data_root):
    from dposer.formats.data import load_wholebody_set

    aa = rm.joints_from_pose_dict(load_wholebody_set("test", root=data_root).subset(np.arange(2)).to_dict())
    aa[:, 40:55] = 0.0
    return aa


@pytest.fixture
def posed(prefs, bpy_addon, scene, poses):
    prefs.backend_mode = "EMBEDDED"
    assert bpy.ops.dposer.add_armature() == {"FINISHED"}
    obj = bpy.context.active_object
    key_pose(obj, poses)
    # give the keys some non-default attributes, so an exact restore is tested for more than values
    fc = kf.Channels(obj).find(kf.rotation_data_path("right_index1", "QUATERNION"), 1)
    fc.keyframe_points[0].interpolation = "CONSTANT"
    fc.keyframe_points[0].handle_left_type = "FREE"
    fc.keyframe_points[0].handle_left = (0.25, 0.5)
    fc.keyframe_points[1].type = "BREAKDOWN"
    return obj


def hand_error(obj, frames, expected):
    """Max quaternion error of the right hand's keys against (F, 55, 3) axis-angles."""
    err = 0.0
    for j in RIGHT_HAND:
        q = keyed_quaternions(obj, rm.JOINT_NAMES[j], frames)
        ref = rm.axis_angle_to_quaternion(expected[:, j])
        err = max(err, float(np.minimum(np.abs(q - ref).max(-1), np.abs(q + ref).max(-1)).max()))
    return err


def hypotheses(result, frames):
    """(K, F, 55, 3) ranked hypotheses of a complete result."""
    out = []
    for i in range(len(result["right_hand_pose_hypotheses"])):
        out.append(rm.joints_from_pose_dict({k: np.asarray(result[f"{k}_hypotheses"])[i]
                                             for k in ("body_pose", "left_hand_pose", "right_hand_pose",
                                                       "jaw_pose")}))
    assert out[0].shape[0] == len(frames)
    return np.stack(out)


def test_preview_cycle_cancel_accept(posed):
    obj = posed
    before = scene_snapshot()
    args = jobs.CompleteJob(bpy.context, "right_hand", 1, 2, K, 0, with_preview=True).args  # from the scene
    assert bpy.ops.dposer.complete(parts="right_hand", hypotheses=K, preview=True, frame_start=1,
                                   frame_end=2) == {"FINISHED"}
    backend = session.current_backend()
    frames = [1.0, 2.0]
    render = bpy.context.scene.render
    assert args["clip"] is True and args["fps"] == render.fps / render.fps_base  # a range is completed as one motion
    result = backend.call("complete", args, timeout=300)
    hyps = hypotheses(result, frames)
    best = rm.joints_from_pose_dict({k: np.asarray(result[k]) for k in ("body_pose", "left_hand_pose",
                                                                        "right_hand_pose", "jaw_pose")})
    assert len(hyps) == K and not np.allclose(hyps[0, :, 40:55], hyps[1, :, 40:55], atol=1e-3)
    # shown first: the best estimate (the mean of the hypotheses), then each hypothesis
    assert hand_error(obj, frames, best) < 1e-5 and preview.status(obj) == f"Best estimate: mean of {K} hypotheses"
    # other jobs wait for the preview to be settled
    with pytest.raises(RuntimeError, match="pending Complete preview: accept or cancel it first"):
        bpy.ops.dposer.refine()
    assert bpy.ops.dposer.preview_next() == {"FINISHED"}
    assert hand_error(obj, frames, hyps[0]) < 1e-5 and preview.status(obj).startswith(f"Hypothesis 1/{K}")
    assert bpy.ops.dposer.preview_next() == {"FINISHED"}
    assert hand_error(obj, frames, hyps[1]) < 1e-5 and preview.status(obj).startswith(f"Hypothesis 2/{K}")
    assert bpy.ops.dposer.preview_previous() == {"FINISHED"}
    assert bpy.ops.dposer.preview_previous() == {"FINISHED"}
    assert bpy.ops.dposer.preview_previous() == {"FINISHED"}  # wraps around
    assert hand_error(obj, frames, hyps[K - 1]) < 1e-5
    # cancel: the original keys exactly (co, handles, handle types, interpolation, key type, ...), pose values too
    assert bpy.ops.dposer.preview_cancel() == {"FINISHED"}
    assert not preview.has_preview(obj)
    assert_scene_unchanged(before)
    with pytest.raises(RuntimeError, match="no pending DPoser preview"):
        bpy.ops.dposer.preview_accept()

    # again, accept the second hypothesis: it stays, the preview is gone, the body keys are untouched
    assert bpy.ops.dposer.complete(parts="right_hand", hypotheses=K, preview=True, frame_start=1,
                                   frame_end=2) == {"FINISHED"}
    assert bpy.ops.dposer.preview_next() == {"FINISHED"}
    assert bpy.ops.dposer.preview_next() == {"FINISHED"}
    assert bpy.ops.dposer.preview_accept() == {"FINISHED"}
    assert not preview.has_preview(obj) and hand_error(obj, frames, hyps[1]) < 1e-5
    after = scene_snapshot()["objects"]["DPoser"]["keys"]
    for key, co in before["objects"]["DPoser"]["keys"].items():
        if key[0].split('"')[1] not in {rm.JOINT_NAMES[j] for j in RIGHT_HAND}:
            assert after[key] == co, key


def test_preview_on_unkeyed_rig_and_direct_paths(prefs, bpy_addon, scene, poses):
    """Cancel removes the action the preview had to create; hypotheses=1 (or preview off) writes directly."""
    prefs.backend_mode = "EMBEDDED"
    assert bpy.ops.dposer.add_armature() == {"FINISHED"}
    obj = bpy.context.active_object
    for j, name in enumerate(rm.JOINT_NAMES):
        obj.pose.bones[name].rotation_quaternion = [float(x) for x in rm.axis_angle_to_quaternion(poses[0, j])]
    before = scene_snapshot()
    assert obj.animation_data is None
    assert bpy.ops.dposer.complete(parts="right_hand", hypotheses=2, preview=True) == {"FINISHED"}
    assert obj.animation_data.action is not None and preview.has_preview(obj)
    assert bpy.ops.dposer.preview_cancel() == {"FINISHED"}
    assert len(bpy.data.actions) == 0
    assert_scene_unchanged(before)
    # preview with one hypothesis, or hypotheses without preview: written at once, no preview state
    args = jobs.CompleteJob(bpy.context, "right_hand", None, None, 1, 0, with_preview=True).args
    assert bpy.ops.dposer.complete(parts="right_hand", hypotheses=1, preview=True) == {"FINISHED"}
    assert not preview.has_preview(obj)
    expected = rm.joints_from_pose_dict(session.current_backend().call("complete", args))
    assert hand_error(obj, [1.0], expected) < 1e-5
    assert bpy.ops.dposer.complete(parts="right_hand", hypotheses=2) == {"FINISHED"}
    assert not preview.has_preview(obj)


def test_panel_shows_rig_state_clean_variations_and_preview_controls(posed):
    """The DPoser panel draws the rig's preset and calibration state, Calibrate/Show Zero Pose, Clean, Variations,
    and the preview controls while a preview is pending (a recording stand-in for the UI layout)."""
    from blender_dposer import panel

    def draw():
        calls = draw_panel(panel.DPOSER_PT_main, bpy.context)
        return ([a[0] for name, a, _ in calls if name == "operator"],
                [kw.get("text") for name, _, kw in calls if name == "label"])

    ops_drawn, labels = draw()
    assert {"dposer.calibrate_rest", "dposer.show_zero_pose", "dposer.take_to_smplx", "dposer.complete",
            "dposer.clean", "dposer.vary"} <= set(ops_drawn)
    assert "dposer.preview_accept" not in ops_drawn
    assert "Rig: SMPL-X (official add-on) (detected, 55 bones)" in labels
    assert "Not calibrated: rest pose used as zero pose" in labels
    assert bpy.ops.dposer.complete(parts="right_hand", hypotheses=2, preview=True) == {"FINISHED"}
    ops_drawn, labels = draw()
    assert {"dposer.preview_next", "dposer.preview_previous", "dposer.preview_accept",
            "dposer.preview_cancel", "screen.animation_play"} <= set(ops_drawn)
    assert "Best estimate: mean of 2 hypotheses" in labels
    assert bpy.ops.dposer.preview_cancel() == {"FINISHED"}


def test_preview_size_is_bounded(posed):
    before = scene_snapshot()
    with pytest.raises(RuntimeError, match=r"a preview keeps every hypothesis: at most 2000 hypotheses x frames, "
                                           r"got 32 x 100"):
        bpy.ops.dposer.complete(parts="right_hand", hypotheses=32, preview=True, frame_start=1, frame_end=100)
    assert_scene_unchanged(before)
