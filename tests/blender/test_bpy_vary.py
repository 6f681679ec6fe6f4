"""``dposer.vary`` in real bpy (embedded backend): N armatures in a grid or N actions, each keyed with the backend's own
variation; distinct and plausible poses; the original untouched; undo restores the scene exactly; a failure while
creating leaves nothing behind."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="needs Blender's bpy module (scripts/setup_blender_venvs.sh)")
pytest.importorskip("dposer", reason="the embedded backend needs dposer + torch in this Python")

from blender_dposer import keyframes as kf  # noqa: E402
from blender_dposer import jobs, session  # noqa: E402
from blender_dposer import operators as ops  # noqa: E402
from blender_dposer import rig_math as rm  # noqa: E402

from .conftest import (assert_scene_unchanged, key_pose, keyed_quaternions, scene_snapshot,  # noqa: E402
                       start_modal, tick_until_done)

N = 4
WRITTEN = [j for j in range(1, 55) if j not in (23, 24)]  # body, jaw, hands


@pytest.fixture(scope="module")
def real_poses(data_root):
    """(32, 55, 3) whole-body test poses (EgoBody test split)."""
    from dposer.formats.data import load_wholebody_set

    return rm.joints_from_pose_dict(load_wholebody_set("test", root=data_root).subset(np.arange(32)).to_dict())


@pytest.fixture
def posed(prefs, bpy_addon, scene, real_poses):
    prefs.backend_mode = "EMBEDDED"
    assert bpy.ops.dposer.add_armature() == {"FINISHED"}
    obj = bpy.context.active_object
    key_pose(obj, real_poses[:2])  # frames 1 and 2
    return obj


def plausibility(checkpoint, aa):
    """The prior's own plausibility residual (dposer.core.solver.plausibility, lower = more plausible) per pose."""
    import torch
    from dposer.formats.data import from_smplx_dict
    from dposer.core.prior import load_prior
    from dposer.core.solver import plausibility as residual

    prior = load_prior(checkpoint or None)
    x = prior.normalize(torch.from_numpy(from_smplx_dict(rm.pose_dict_from_joints(aa)).vectors))
    return residual(prior, x).numpy()


def keyed_pose(obj, frame, joints=range(55)):
    """(55, 3) SMPL-X pose keyed on an SMPL-X-named armature (quaternion = axis-angle); joints not read are 0."""
    out = np.zeros((55, 3))
    for j in joints:
        out[j] = rm.quaternion_to_axis_angle(keyed_quaternions(obj, rm.JOINT_NAMES[j], [frame])[0])
    return out


def angle(a, b):
    """Per-joint rotation angle between two (..., 55, 3) poses."""
    R = rm.transpose(rm.axis_angle_to_matrix(a)) @ rm.axis_angle_to_matrix(b)
    return np.linalg.norm(rm.matrix_to_axis_angle(R), axis=-1)


def test_vary_rigs(posed, real_poses, checkpoint):
    """A crowd: N copies in a grid, each keyed on one frame (asked for by frame_start = frame_end; an animated rig is
    otherwise varied over its whole range, tests/blender/test_bpy_vary_motion.py) with the backend's variation of
    that frame's pose; pairwise different, each as plausible as real poses (the prior's own residual, bounded by 1.5 x the worst
    of 32 real test poses, a bound noisy poses do not meet); the original and frame 1 untouched."""
    scene = bpy.context.scene
    scene.frame_set(2)
    before = scene_snapshot()
    args = jobs.VaryJob(bpy.context, N, 0.3, "", False, 1, frame_start=2, frame_end=2).args  # before the run
    assert "clip" not in args and len(args["pose"]["body_pose"]) == 1
    assert bpy.ops.dposer.vary(count=N, strength=0.3, seed=1, lock_selected=False, frame_start=2,
                               frame_end=2) == {"FINISHED"}
    backend = session.current_backend()
    assert args["n"] == N and args["strength"] == pytest.approx(0.3) and args["seed"] == 1
    assert args["lock"] == []  # nothing locked; the DPoser armature drives every modelled joint
    expected = rm.joints_from_pose_dict(backend.call("vary", args, timeout=300))

    # the original is untouched
    after = scene_snapshot()
    assert after["objects"]["DPoser"] == before["objects"]["DPoser"]
    rigs = [bpy.data.objects[f"DPoser.var{i + 1:03d}"] for i in range(N)]
    assert {o.name for o in bpy.data.collections["DPoser variations"].objects} == {o.name for o in rigs}
    cells = {tuple(np.round(np.array(o.location)[:2], 6)) for o in rigs} | {(0.0, 0.0)}
    assert len(cells) == N + 1  # a grid, none on the original
    poses = []
    for i, rig in enumerate(rigs):
        assert rig.data is posed.data and rig.animation_data.action is not posed.animation_data.action
        pose = keyed_pose(rig, 2.0)
        assert angle(pose[WRITTEN], expected[i, WRITTEN]).max() < 1e-5
        assert angle(pose[[0]], real_poses[1, [0]]).max() < 1e-5  # global orientation kept
        assert angle(keyed_pose(rig, 1.0), real_poses[0]).max() < 1e-5  # other frames: copies of the original's
        assert np.allclose(rm.quaternion_to_axis_angle(np.array(rig.pose.bones["left_elbow"].rotation_quaternion)),
                           expected[i, rm.JOINT_INDEX["left_elbow"]], atol=1e-5)  # shown now
        poses.append(pose)
    poses = np.stack(poses)
    for i in range(N):
        for j in range(i + 1, N):
            assert angle(poses[i, WRITTEN], poses[j, WRITTEN]).max() > 0.05, (i, j)
    real = plausibility(checkpoint, real_poses)
    bound = 1.5 * real.max()
    assert np.all(plausibility(checkpoint, poses) < bound)
    rng = np.random.default_rng(0)
    assert np.all(plausibility(checkpoint, real_poses[:8] + rng.normal(scale=0.5, size=(8, 55, 3))) > bound)


def test_vary_undo_restores_the_scene(posed):
    """Undo after Variations gives back the exact scene. Headless, Python-called operators push no undo step of
    their own, so the test brackets the call with ed.undo_push (what Blender does around an UNDO operator) and
    undoes that step with ed.undo; the operator's bl_options carry REGISTER + UNDO."""
    assert {"REGISTER", "UNDO"} <= set(ops.DPOSER_OT_vary.bl_options)
    before = scene_snapshot()
    bpy.ops.ed.undo_push(message="before DPoser variations")
    assert bpy.ops.dposer.vary(count=2, seed=3, lock_selected=False) == {"FINISHED"}
    bpy.ops.ed.undo_push(message="DPoser variations")
    assert "DPoser.var002" in bpy.data.objects
    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert "DPoser.var001" not in bpy.data.objects and "DPoser variations" not in bpy.data.collections
    assert_scene_unchanged(before)


def test_vary_actions_and_locks(posed, real_poses):
    """ACTIONS mode: N new actions (fake user) on the same armature, which keeps its own action; locked bones (by
    rig bone name and by part name, and the selected bones in Pose Mode) keep their keys in every action."""
    obj = posed
    original = obj.animation_data.action
    bpy.ops.object.mode_set(mode="POSE")
    for pb in obj.pose.bones:
        sel = pb.name == "right_knee"
        if hasattr(pb, "select"):
            pb.select = sel
        else:
            pb.bone.select = sel
    try:
        before = scene_snapshot()
        args = jobs.VaryJob(bpy.context, 3, 0.3, "left_elbow, right_hand", True, 2, "ACTIONS", frame_start=1,
                            frame_end=1).args
        assert bpy.ops.dposer.vary(count=3, mode="ACTIONS", seed=2, lock="left_elbow, right_hand", frame_start=1,
                                   frame_end=1) == {"FINISHED"}
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    backend = session.current_backend()
    locked = set(rm.JOINT_NAMES[40:55]) | {"left_elbow", "right_knee"}
    assert locked <= set(args["lock"])
    expected = rm.joints_from_pose_dict(backend.call("vary", args, timeout=300))
    assert obj.animation_data.action == original
    after = scene_snapshot()
    assert after["objects"]["DPoser"] == before["objects"]["DPoser"]  # keys, pose, action of the rig
    actions = [bpy.data.actions[f"{original.name}.var{i + 1:03d}"] for i in range(3)]
    try:
        for i, act in enumerate(actions):
            assert act.use_fake_user
            obj.animation_data.action = act
            if kf.SLOTTED and obj.animation_data.action_slot is None:
                obj.animation_data.action_slot = act.slots[0]
            pose = keyed_pose(obj, 1.0)
            free = [j for j in WRITTEN if rm.JOINT_NAMES[j] not in locked]
            assert angle(pose[free], expected[i, free]).max() < 1e-5
            kept = [rm.JOINT_INDEX[j] for j in locked]
            assert angle(pose[kept], real_poses[0, kept]).max() < 1e-5
            assert angle(keyed_pose(obj, 2.0), real_poses[1]).max() < 1e-5
    finally:
        obj.animation_data.action = original


def test_vary_failure_while_creating_leaves_nothing(posed, monkeypatch):
    before = scene_snapshot()
    calls = []
    real_write = kf.write_rotation_keys

    def fail_on_third(obj, keys):
        calls.append(obj.name)
        if len(calls) == 3:
            raise RuntimeError("disk full (test)")
        return real_write(obj, keys)

    monkeypatch.setattr(kf, "write_rotation_keys", fail_on_third)
    for mode in ("RIGS", "ACTIONS"):
        calls.clear()
        with pytest.raises(RuntimeError, match=r"disk full \(test\)"):
            bpy.ops.dposer.vary(count=4, mode=mode, lock_selected=False)
        assert len(calls) == 3
        assert_scene_unchanged(before)


def test_vary_modal(posed):
    """The button's path (real operator, timer and modal handler; timer ticks run by hand, as in
    test_random_pose_modal): the same armatures as execute(); the keyed rig (frames 1-2) is varied as a motion."""
    op = start_modal(ops.DPOSER_OT_vary, bpy.ops.dposer.vary, count=2, strength=0.3, seed=4, mode="RIGS",
                     spacing=0.0, lock="", lock_selected=False)
    assert tick_until_done(op, bpy.context) == {"FINISHED"}
    assert op._job.args["clip"] is True
    result = op._backend.call("vary", op._job.args)
    for i in range(2):
        expected = rm.joints_from_pose_dict({k: v[i] for k, v in result.items() if k in rm.KEY_JOINTS})
        for f in (1, 2):
            pose = keyed_pose(bpy.data.objects[f"DPoser.var{i + 1:03d}"], float(f))
            assert angle(pose[WRITTEN], expected[f - 1, WRITTEN]).max() < 1e-5


def test_vary_unkeyed_rig(prefs, bpy_addon, scene, real_poses):
    """A posed but unkeyed armature: RIGS copies get their own new actions, ACTIONS makes new actions and leaves the
    armature without animation."""
    prefs.backend_mode = "EMBEDDED"
    assert bpy.ops.dposer.add_armature() == {"FINISHED"}
    obj = bpy.context.active_object
    for j, name in enumerate(rm.JOINT_NAMES):
        obj.pose.bones[name].rotation_quaternion = [float(x) for x in rm.axis_angle_to_quaternion(real_poses[0, j])]
    assert bpy.ops.dposer.vary(count=2, mode="ACTIONS", lock_selected=False) == {"FINISHED"}
    assert obj.animation_data is None
    assert sorted(a.name for a in bpy.data.actions) == ["DPoserAction.var001", "DPoserAction.var002"]
    assert all(a.use_fake_user for a in bpy.data.actions)
    args = jobs.VaryJob(bpy.context, 2, 0.3, "", False, 0, "RIGS").args
    assert bpy.ops.dposer.vary(count=2, mode="RIGS", lock_selected=False) == {"FINISHED"}
    expected = rm.joints_from_pose_dict(session.current_backend().call("vary", args))
    actions = set()
    for i in range(2):
        rig = bpy.data.objects[f"DPoser.var{i + 1:03d}"]
        actions.add(rig.animation_data.action.name)
        assert angle(keyed_pose(rig, 1.0, WRITTEN)[WRITTEN], expected[i, WRITTEN]).max() < 1e-5
    assert len(actions) == 2
