"""``dposer.complete`` end to end in real bpy: a real pose keyed on the DPoser armature with the right hand zeroed,
completed through the embedded backend and a real subprocess backend; the keys must equal the backend's own answer
to the same request; observed bones untouched; failures leave the scene unchanged with a clear report."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="needs Blender's bpy module (scripts/setup_blender_venvs.sh)")
pytest.importorskip("dposer", reason="the embedded backend needs dposer + torch in this Python")

from blender_dposer import keyframes as kf  # noqa: E402
from blender_dposer import jobs  # noqa: E402

from .conftest import Event, key_pose, keyed_quaternions, start_modal, tick_until_done, unknown_rig  # noqa: E402
from blender_dposer import operators as ops  # noqa: E402
from blender_dposer import session as prf  # noqa: E402
from blender_dposer import rig_math as rm  # noqa: E402

RIGHT_HAND = rm.JOINT_NAMES[40:55]
N_FRAMES = 3


@pytest.fixture(scope="module")
def poses(data_root):
    """(N_FRAMES, 55, 3) whole-body test poses (EgoBody test split), right hand zeroed."""
    from dposer.formats.data import load_wholebody_set

    d = load_wholebody_set("test", root=data_root).subset(np.arange(N_FRAMES)).to_dict()
    aa = rm.joints_from_pose_dict(d)
    aa[:, 40:55] = 0.0
    return aa


@pytest.fixture
def posed(bpy_addon, scene, poses):
    assert bpy.ops.dposer.add_armature() == {"FINISHED"}
    obj = bpy.context.active_object
    key_pose(obj, poses)
    return obj


def check_completion(obj, before, frames, poses, args):
    """The written right-hand keys reproduce the backend's own result for the same request (``args``, the job's
    request built from the scene before the run); everything else is untouched."""
    backend = prf.current_backend()
    # the request is the keyed pose (read back from the rig), with the right hand to be filled in
    assert "right_hand" in args["missing"] and args["seed"] == 0
    sent = rm.joints_from_pose_dict(args["pose"])
    rows = [int(f) - 1 for f in frames]
    assert np.allclose(sent[:, 1:22], poses[rows, 1:22], atol=1e-5)
    assert np.allclose(sent[:, 25:40], poses[rows, 25:40], atol=1e-5)
    assert np.allclose(sent[:, 40:55], 0.0, atol=1e-6)
    # the same request straight to the backend (same seed) -> the same numbers
    result = backend.call("complete", args, timeout=120)
    expected = rm.joints_from_pose_dict(result)
    assert not np.allclose(expected[:, 40:55], 0.0)
    for j, name in zip(range(40, 55), RIGHT_HAND):
        q = keyed_quaternions(obj, name, frames)
        ref = rm.axis_angle_to_quaternion(expected[:, j])
        err = np.minimum(np.abs(q - ref).max(-1), np.abs(q + ref).max(-1))
        assert err.max() < 1e-5, (name, err)
        assert np.all(np.sum(q[1:] * q[:-1], -1) >= 0)  # sign continuity over the range
    # observed bones' keys are untouched (bit for bit); only right-hand curves changed
    after = kf.snapshot(obj)
    for key, co in before.items():
        bone = key[0].split('"')[1]
        if bone not in RIGHT_HAND:
            assert np.array_equal(after[key], co), key
    assert set(after) == set(before)  # the hand bones were keyed (zeros) already, so no new curves


def test_complete_embedded(prefs, posed, poses):
    prefs.backend_mode = "EMBEDDED"
    before = kf.snapshot(posed)
    args = jobs.CompleteJob(bpy.context, "right_hand", None, None, 1, 0).args
    t = time.monotonic()
    assert bpy.ops.dposer.complete(parts="right_hand") == {"FINISHED"}  # current frame (1)
    print(f"embedded complete, 1 frame: {time.monotonic() - t:.2f} s")
    assert type(prf.current_backend()).__name__ == "EmbeddedBackend"
    check_completion(posed, before, [1.0], poses, args)
    # the pose shows the completed hand now
    q = np.array(posed.pose.bones["right_index1"].rotation_quaternion)
    assert np.allclose(np.abs(q), np.abs(keyed_quaternions(posed, "right_index1", [1.0])[0]), atol=1e-6)


def test_complete_range_subprocess(prefs, posed, poses):
    prefs.backend_mode = "SUBPROCESS"
    before = kf.snapshot(posed)
    args = jobs.CompleteJob(bpy.context, "right_hand", 1, N_FRAMES, 1, 0).args
    t = time.monotonic()
    assert bpy.ops.dposer.complete(parts="right_hand", frame_start=1, frame_end=N_FRAMES) == {"FINISHED"}
    print(f"subprocess complete, {N_FRAMES} frames (incl. start-up): {time.monotonic() - t:.2f} s")
    backend = prf.current_backend()
    assert type(backend).__name__ == "SubprocessBackend" and backend.alive
    check_completion(posed, before, [float(f) for f in range(1, N_FRAMES + 1)], poses, args)
    assert bpy.ops.dposer.test_backend() == {"FINISHED"}


def test_complete_euler_bones_and_unkeyed_hand(prefs, bpy_addon, scene, poses):
    """Bones in Euler modes are written as Euler; a hand without any keys gets new curves."""
    prefs.backend_mode = "EMBEDDED"
    assert bpy.ops.dposer.add_armature() == {"FINISHED"}
    obj = bpy.context.active_object
    for j, name in enumerate(rm.JOINT_NAMES[:40]):  # the right hand stays un-keyed
        pb = obj.pose.bones[name]
        pb.rotation_quaternion = [float(x) for x in rm.axis_angle_to_quaternion(poses[0, j])]
        pb.keyframe_insert("rotation_quaternion", frame=1)
    obj.pose.bones["right_thumb1"].rotation_mode = "ZXY"
    obj.pose.bones["right_index2"].rotation_mode = "AXIS_ANGLE"
    before = kf.snapshot(obj)
    args = jobs.CompleteJob(bpy.context, "right_thumb,right_index", None, None, 2, 3).args
    assert bpy.ops.dposer.complete(parts="right_thumb,right_index", seed=3, hypotheses=2) == {"FINISHED"}
    backend = prf.current_backend()
    assert args["hypotheses"] == 2 and args["seed"] == 3
    expected = rm.joints_from_pose_dict(backend.call("complete", args, timeout=120))
    ch = kf.Channels(obj)
    e = np.array([kf.fcurve_keys(ch.find(kf.rotation_data_path("right_thumb1", "ZXY"), i))[0, 1] for i in range(3)])
    assert np.allclose(rm.euler_to_matrix(e, "ZXY"), rm.axis_angle_to_matrix(expected[0, rm.JOINT_INDEX["right_thumb1"]]),
                       atol=1e-5)
    a4 = np.array([kf.fcurve_keys(ch.find(kf.rotation_data_path("right_index2", "AXIS_ANGLE"), i))[0, 1]
                   for i in range(4)])
    assert np.allclose(rm.axis_angle4_to_matrix(a4), rm.axis_angle_to_matrix(expected[0, rm.JOINT_INDEX["right_index2"]]),
                       atol=1e-5)
    after = kf.snapshot(obj)
    assert all(np.array_equal(after[k], v) for k, v in before.items())
    new = {k[0].split('"')[1] for k in set(after) - set(before)}
    assert new == {f"right_{f}{n}" for f in ("thumb", "index") for n in (1, 2, 3)}


def test_modal_poll_job(prefs, posed):
    """The modal path's timer body (timers do not fire headless): submit + poll_job gives execute()'s result."""
    prefs.backend_mode = "EMBEDDED"
    job = ops.CompleteJob(bpy.context, "right_hand", None, None, 1, 0)
    backend = prf.get_backend(bpy.context)
    rid = backend.submit("complete", job.args)
    progress = []
    deadline = time.monotonic() + 120
    result = None
    while result is None:
        assert time.monotonic() < deadline
        result = ops.poll_job(backend, rid, lambda d, t: progress.append((d, t)))
        time.sleep(0.02)
    assert progress and progress[-1][0] == progress[-1][1]
    direct = backend.call("complete", job.args, timeout=120)
    assert np.array_equal(np.asarray(result["right_hand_pose"]), np.asarray(direct["right_hand_pose"]))
    keys = job.keys_from_result(result)
    assert [k.bone for k in keys] == list(RIGHT_HAND)


# -- failures: a clear report, nothing changed ------------------------------------------------------------

def assert_fails(match, **kw):
    with pytest.raises(RuntimeError, match=match):
        bpy.ops.dposer.complete(**kw)


def test_missing_interpreter(prefs, posed):
    prefs.backend_mode = "SUBPROCESS"
    prefs.python_path = "/nonexistent/venv/bin/python"
    before = kf.snapshot(posed)
    assert_fails(r"DPoser: backend Python interpreter not found: '/nonexistent/venv/bin/python'", parts="right_hand")
    assert_fails("interpreter not found", parts="right_hand", frame_start=1, frame_end=2)
    after = kf.snapshot(posed)
    assert set(after) == set(before) and all(np.array_equal(after[k], v) for k, v in before.items())
    with pytest.raises(RuntimeError, match="interpreter not found"):
        bpy.ops.dposer.test_backend()


def test_backend_killed_mid_operation(prefs, posed):
    prefs.backend_mode = "SUBPROCESS"
    backend = prf.get_backend(bpy.context)
    backend.wait_ready()
    before = kf.snapshot(posed)
    pose_before = [tuple(pb.rotation_quaternion) for pb in posed.pose.bones]

    def killer():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "complete" in backend.outstanding.values():
                backend.proc.kill()
                return
            time.sleep(0.005)

    th = threading.Thread(target=killer)
    th.start()
    try:
        assert_fails(r"DPoser: .*the backend process was killed \(SIGKILL", parts="right_hand",
                     frame_start=1, frame_end=N_FRAMES, hypotheses=8)
    finally:
        th.join()
    after = kf.snapshot(posed)
    assert set(after) == set(before) and all(np.array_equal(after[k], v) for k, v in before.items())
    assert [tuple(pb.rotation_quaternion) for pb in posed.pose.bones] == pose_before
    # the next run starts a fresh backend
    assert bpy.ops.dposer.complete(parts="right_hand") == {"FINISHED"}
    assert prf.current_backend() is not backend


def test_unknown_rig(prefs, bpy_addon, scene):
    obj = unknown_rig()
    assert_fails(r"DPoser: Unknown rig 'Thing': its bone names \(Bone, Bone.001, tentacle_a, ", parts="right_hand")
    assert obj.animation_data is None


def test_nothing_selected_and_bad_parts(prefs, posed):
    before = kf.snapshot(posed)
    assert_fails("DPoser: Nothing to complete: 'parts' is empty", parts=" , ")
    assert_fails(r"unknown part/group/joint name\(s\): 'right_hnd'", parts="right_hnd")
    bpy.context.view_layer.objects.active = None
    with pytest.raises(RuntimeError, match="No active object: select an armature"):
        bpy.ops.dposer.complete(parts="right_hand")
    empty = bpy.data.objects.new("Empty", None)
    bpy.context.collection.objects.link(empty)
    bpy.context.view_layer.objects.active = empty
    with pytest.raises(RuntimeError, match="'Empty' is not an armature"):
        bpy.ops.dposer.complete(parts="right_hand")
    after = kf.snapshot(posed)
    assert all(np.array_equal(after[k], v) for k, v in before.items())


def test_shutdown_on_unregister(prefs, bpy_addon):
    import addon_utils

    prefs.backend_mode = "SUBPROCESS"
    backend = prf.get_backend(bpy.context)
    backend.wait_ready()
    addon_utils.disable("blender_dposer", default_set=True)
    try:
        assert prf.current_backend() is None
        assert backend.proc.poll() is not None and backend.returncode == 0
    finally:
        assert addon_utils.enable("blender_dposer", default_set=True) is not None


def test_modal_invoke_finish_and_escape(prefs, posed, poses):
    """The button's path on the real operator (real timer and modal handler; timer ticks and Esc sent by hand):
    Esc cancels with nothing written; a run shows progress and writes execute()'s keys."""
    prefs.backend_mode = "EMBEDDED"
    ctx = bpy.context
    before = kf.snapshot(posed)
    props = {"parts": "right_hand", "hypotheses": 1, "seed": 0, "preview": False}
    # Esc right after invoke: cancelled, nothing written, progress cleared, the timer removed
    op = start_modal(ops.DPOSER_OT_complete, bpy.ops.dposer.complete, **props)
    assert ctx.window_manager.dposer_progress == 0.0
    assert op.modal(ctx, Event("ESC")) == {"CANCELLED"}
    assert ctx.window_manager.dposer_progress == -1.0 and ops._Running.op is None and op._timer is None
    after = kf.snapshot(posed)
    assert set(after) == set(before) and all(np.array_equal(after[k], v) for k, v in before.items())
    # a full run through timer ticks: progress, then the same keys as execute()
    op = start_modal(ops.DPOSER_OT_complete, bpy.ops.dposer.complete, **props)
    assert op.modal(ctx, Event("MOUSEMOVE")) == {"PASS_THROUGH"}  # the artist keeps working
    seen = []
    r = tick_until_done(op, ctx, seen)
    assert r == {"FINISHED"}
    assert any(0.0 < p <= 1.0 for p in seen) and ctx.window_manager.dposer_progress == -1.0
    assert type(op._backend).__name__ == "EmbeddedBackend"
    check_completion(posed, before, [1.0], poses, op._job.args)  # the backend's own answer, observed bones untouched
