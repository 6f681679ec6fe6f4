"""Complete over a frame range in real bpy: the range is solved as one motion (clip completion). On a real take with
finger motion (the AMASS finger take at 30 fps) the completed fingers move no more than 2x the real ones from frame
to frame, the other bones' keys stay exactly as they were, the preview cycles whole-range hypotheses and Cancel
puts every key back."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="needs Blender's bpy module (scripts/setup_blender_venvs.sh)")
pytest.importorskip("dposer", reason="the embedded backend needs dposer + torch in this Python")

from blender_dposer import keyframes as kf  # noqa: E402
from blender_dposer import jobs  # noqa: E402
from blender_dposer import preview  # noqa: E402
from blender_dposer import rig_math as rm  # noqa: E402

from .conftest import assert_scene_unchanged, key_pose, keyed_quaternions, scene_snapshot  # noqa: E402

FRAMES = 40
RIGHT_HAND = [rm.JOINT_NAMES[j] for j in range(40, 55)]


@pytest.fixture(scope="module")
def take(data_root):
    """(40, 55, 3): the finger take at 30 fps (every 4th frame of the 120 fps capture)."""
    from dposer.formats.data import load_finger_take

    ps = load_finger_take(data_root)
    return rm.joints_from_pose_dict(ps.subset(np.arange(0, 4 * FRAMES, 4)).to_dict())


@pytest.fixture
def keyed(prefs, bpy_addon, scene, take):
    prefs.backend_mode = "EMBEDDED"
    scene.render.fps, scene.render.fps_base = 30, 1.0
    assert bpy.ops.dposer.add_armature() == {"FINISHED"}
    obj = bpy.context.active_object
    key_pose(obj, take)
    return obj


def finger_motion(quats: list[np.ndarray]) -> float:
    """Mean frame-to-frame rotation change (degrees) over bones' (F, 4) quaternion keys."""
    steps = [2 * np.degrees(np.arccos(np.clip(np.abs((q[1:] * q[:-1]).sum(-1)), 0, 1))) for q in quats]
    return float(np.mean(steps))


def test_complete_over_a_range_is_one_smooth_motion(keyed, take):
    obj = keyed
    frames = [float(f) for f in range(1, FRAMES + 1)]
    real = finger_motion([rm.axis_angle_to_quaternion(take[:, j]) for j in range(40, 55)])
    before = kf.snapshot(obj)
    args = jobs.CompleteJob(bpy.context, "right_hand", 1, FRAMES, 1, 0).args  # what the operator sends
    assert args["clip"] is True and args["fps"] == 30.0
    assert bpy.ops.dposer.complete(parts="right_hand", frame_start=1, frame_end=FRAMES) == {"FINISHED"}
    done = finger_motion([keyed_quaternions(obj, b, frames) for b in RIGHT_HAND])
    assert done <= 2 * real, (done, real)  # no trembling: per-frame solving moved them ~10x the real motion
    after = kf.snapshot(obj)
    changed = {key for key in before if not np.array_equal(before[key], after[key])}
    assert changed and all(key[0].split('"')[1] in RIGHT_HAND for key in changed)


def test_preview_cycles_whole_range_hypotheses_and_cancel_restores(keyed):
    obj = keyed
    frames = [float(f) for f in range(1, FRAMES + 1)]
    before = scene_snapshot()
    assert bpy.ops.dposer.complete(parts="right_hand", frame_start=1, frame_end=FRAMES, hypotheses=2,
                                   preview=True) == {"FINISHED"}
    assert preview.status(obj) == "Best estimate: mean of 2 hypotheses"
    shown = []
    for label in ("Hypothesis 1/2", "Hypothesis 2/2"):
        assert bpy.ops.dposer.preview_next() == {"FINISHED"}
        assert preview.status(obj).startswith(label)
        shown.append(np.stack([keyed_quaternions(obj, b, frames) for b in RIGHT_HAND]))
    # two different answers over the whole range, each one smooth
    assert np.abs(shown[0] - shown[1]).max() > 1e-3
    assert bpy.ops.dposer.preview_cancel() == {"FINISHED"}
    assert_scene_unchanged(before)
