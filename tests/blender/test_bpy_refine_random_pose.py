"""``dposer.refine`` and ``dposer.random_pose`` end to end in real bpy (embedded backend): the written keys equal the
backend's own answer to the same request and seed; the global orientation (and eyes) are untouched; failures leave
the scene unchanged."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="needs Blender's bpy module (scripts/setup_blender_venvs.sh)")
pytest.importorskip("dposer", reason="the embedded backend needs dposer + torch in this Python")

from blender_dposer import keyframes as kf  # noqa: E402
from blender_dposer import jobs  # noqa: E402

from .conftest import draw_panel, key_pose, keyed_quaternions, start_modal, tick_until_done  # noqa: E402
from blender_dposer import operators as ops  # noqa: E402
from blender_dposer import session as prf  # noqa: E402
from blender_dposer import rig_math as rm  # noqa: E402

N_FRAMES = 2
WRITTEN = [j for j in range(1, 55) if j not in (23, 24)]  # body, jaw, hands (not the pelvis, not the eyes)
KEPT = [0, 23, 24]


def synthetic_poses():
    rng = np.random.default_rng(7)
    return rng.normal(scale=0.25, size=(N_FRAMES, 55, 3))


@pytest.fixture
def posed(bpy_addon, scene):
    assert bpy.ops.dposer.add_armature() == {"FINISHED"}
    obj = bpy.context.active_object
    key_pose(obj, synthetic_poses())
    return obj


def quat_err(q, aa):
    ref = rm.axis_angle_to_quaternion(aa)
    return np.minimum(np.abs(q - ref).max(-1), np.abs(q + ref).max(-1)).max()


def check_written(obj, before, expected, frames):
    """Written joints' keys equal ``expected`` (F, 55, 3); the kept joints' curves are bit-for-bit unchanged."""
    for j in WRITTEN:
        name = rm.JOINT_NAMES[j]
        q = keyed_quaternions(obj, name, frames)
        assert quat_err(q, expected[:, j]) < 1e-5, name
    after = kf.snapshot(obj)
    assert set(after) == set(before)
    for key, co in before.items():
        bone = key[0].split('"')[1]
        if bone in {rm.JOINT_NAMES[j] for j in KEPT} or bone == "root":
            assert np.array_equal(after[key], co), key


def assert_unchanged(obj, before, pose_before):
    after = kf.snapshot(obj)
    assert set(after) == set(before) and all(np.array_equal(after[k], v) for k, v in before.items())
    assert [tuple(pb.rotation_quaternion) for pb in obj.pose.bones] == pose_before


# -- refine ---------------------------------------------------------------------------------------------------

def test_refine_current_frame(prefs, posed):
    prefs.backend_mode = "EMBEDDED"
    poses = synthetic_poses()
    before = kf.snapshot(posed)
    args = jobs.RefineJob(bpy.context, 0.5, None, None, 4).args  # the request, from the scene before the run
    assert bpy.ops.dposer.refine(strength=0.5, seed=4) == {"FINISHED"}
    backend = prf.current_backend()
    assert type(backend).__name__ == "EmbeddedBackend"
    assert args["strength"] == pytest.approx(0.5) and args["seed"] == 4 and args["lock"] == []
    sent = rm.joints_from_pose_dict(args["pose"])
    assert sent.shape[0] == 1
    assert np.allclose(rm.axis_angle_to_matrix(sent[0, :23]), rm.axis_angle_to_matrix(poses[0, :23]), atol=1e-5)
    expected = rm.joints_from_pose_dict(backend.call("refine", args, timeout=120))
    check_written(posed, before, expected, [1.0])
    # the pose changed (keys and the current pose), frame 2 untouched
    q = np.stack([keyed_quaternions(posed, rm.JOINT_NAMES[j], [1.0])[0] for j in WRITTEN])
    assert max(quat_err(q[i:i + 1], poses[0, j]) for i, j in enumerate(WRITTEN)) > 1e-3
    cur = np.array(posed.pose.bones["left_elbow"].rotation_quaternion)
    assert quat_err(cur[None], expected[0, rm.JOINT_INDEX["left_elbow"]]) < 1e-5
    for j in WRITTEN:
        q2 = keyed_quaternions(posed, rm.JOINT_NAMES[j], [2.0])
        assert quat_err(q2, poses[1, j]) < 1e-6


def test_refine_range_same_seed_same_keys(prefs, posed):
    prefs.backend_mode = "EMBEDDED"
    before = kf.snapshot(posed)
    args = jobs.RefineJob(bpy.context, 0.3, 1, N_FRAMES, 0).args
    assert bpy.ops.dposer.refine(frame_start=1, frame_end=N_FRAMES) == {"FINISHED"}  # defaults: 0.3, seed 0
    backend = prf.current_backend()
    assert args["strength"] == pytest.approx(0.3) and args["seed"] == 0
    assert rm.joints_from_pose_dict(args["pose"]).shape[0] == N_FRAMES
    expected = rm.joints_from_pose_dict(backend.call("refine", args, timeout=120))
    check_written(posed, before, expected, [float(f) for f in range(1, N_FRAMES + 1)])


def test_refine_failures_leave_scene_unchanged(prefs, posed, monkeypatch):
    before = kf.snapshot(posed)
    pose_before = [tuple(pb.rotation_quaternion) for pb in posed.pose.bones]
    prefs.backend_mode = "SUBPROCESS"
    prefs.python_path = "/nonexistent/venv/bin/python"
    with pytest.raises(RuntimeError, match="interpreter not found"):
        bpy.ops.dposer.refine()
    assert_unchanged(posed, before, pose_before)
    prefs.backend_mode = "EMBEDDED"
    with pytest.raises(RuntimeError, match=r"strength must be in \(0, 1\]"):
        bpy.ops.dposer.refine(strength=0.0)
    assert_unchanged(posed, before, pose_before)

    # a backend that fails mid-request, and one that answers with the wrong number of poses
    class Failing:
        ready = True

        def wait_ready(self):
            pass

        def call(self, op, args, **kw):
            raise ops.BackendError.from_reply(
                {"type": "error", "error": {"code": "internal", "message": "refine exploded"}})

    class Wrong(Failing):
        def call(self, op, args, **kw):
            return {"body_pose": np.zeros((3, 63)).tolist()}

    monkeypatch.setattr(ops, "get_backend", lambda context: Failing())
    with pytest.raises(RuntimeError, match="refine exploded"):
        bpy.ops.dposer.refine(frame_start=1, frame_end=N_FRAMES)
    assert_unchanged(posed, before, pose_before)
    monkeypatch.setattr(ops, "get_backend", lambda context: Wrong())
    with pytest.raises(RuntimeError, match="returned 3 poses for 1 frames"):
        bpy.ops.dposer.refine()
    with pytest.raises(RuntimeError, match="returned 3 poses for 1 frames"):
        bpy.ops.dposer.random_pose()
    assert_unchanged(posed, before, pose_before)


# -- random pose ------------------------------------------------------------------------------------------------

def test_random_pose_seeded(prefs, posed):
    prefs.backend_mode = "EMBEDDED"
    poses = synthetic_poses()
    bpy.context.scene.frame_set(2)
    before = kf.snapshot(posed)
    args = jobs.RandomPoseJob(bpy.context, 5).args
    assert bpy.ops.dposer.random_pose(seed=5) == {"FINISHED"}
    backend = prf.current_backend()
    assert args == {"n": 1, "seed": 5}
    expected = rm.joints_from_pose_dict(backend.call("sample", {"n": 1, "seed": 5}, timeout=120))
    check_written(posed, before, expected, [2.0])
    for j in WRITTEN:  # frame 1 untouched
        assert quat_err(keyed_quaternions(posed, rm.JOINT_NAMES[j], [1.0]), poses[0, j]) < 1e-6
    first = np.stack([keyed_quaternions(posed, rm.JOINT_NAMES[j], [2.0])[0] for j in WRITTEN])
    # another seed -> another pose
    assert bpy.ops.dposer.random_pose(seed=6) == {"FINISHED"}
    other = rm.joints_from_pose_dict(backend.call("sample", {"n": 1, "seed": 6}, timeout=120))
    check_written(posed, before, other, [2.0])
    second = np.stack([keyed_quaternions(posed, rm.JOINT_NAMES[j], [2.0])[0] for j in WRITTEN])
    assert np.minimum(np.abs(first - second).max(-1), np.abs(first + second).max(-1)).max() > 1e-3


def test_random_pose_modal(prefs, posed):
    """The button's path: invoke() on the real operator registers the timer and modal handler; timer ticks (run
    by hand) finish it with the keys execute() writes; the timer is removed."""
    prefs.backend_mode = "EMBEDDED"
    before = kf.snapshot(posed)
    op = start_modal(ops.DPOSER_OT_random_pose, bpy.ops.dposer.random_pose, seed=9)
    assert tick_until_done(op, bpy.context) == {"FINISHED"}
    assert op._timer is None and ops._Running.op is None
    backend = prf.get_backend(bpy.context)
    expected = rm.joints_from_pose_dict(backend.call("sample", {"n": 1, "seed": 9}, timeout=120))
    check_written(posed, before, expected, [1.0])


def test_panel_has_refine_and_random(bpy_addon, scene):
    """The DPoser panel draws the Refine and Random Pose buttons (a recording stand-in for the UI layout; no UI
    headless)."""
    from blender_dposer import panel

    scene.dposer_settings.use_range = True
    try:
        calls = draw_panel(panel.DPOSER_PT_main, bpy.context)
    finally:
        scene.dposer_settings.use_range = False
    ops_drawn = [a[0] for name, a, _ in calls if name == "operator"]
    assert {"dposer.complete", "dposer.refine", "dposer.random_pose"} <= set(ops_drawn)
