"""A real Bandai Namco BVH clip through Blender's own BVH importer: preset detection, rest calibration, the rig's
pose read through map + calibration checked against its own bone positions, and ``dposer.clean`` on 120 frames
(embedded backend) written back in the bones' Euler modes."""
from __future__ import annotations

import tarfile

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="needs Blender's bpy module (scripts/setup_blender_venvs.sh)")
pytest.importorskip("dposer", reason="the embedded backend needs dposer + torch in this Python")

from blender_dposer import keyframes as kf  # noqa: E402
from blender_dposer import jobs, session  # noqa: E402
from blender_dposer import operators as ops  # noqa: E402
from blender_dposer import rig_math as rm  # noqa: E402
from blender_dposer import rig_profile as rp  # noqa: E402
from dposer.eval.blender_clean import graph_butterworth  # noqa: E402

CLIP = "dataset-1_walk_normal_001.bvh"  # 195 frames at 30 fps
FIRST, LAST = 31, 150  # 120 frames, with keys before and after the range


@pytest.fixture(scope="module")
def bvh_file(data_root, tmp_path_factory):
    archive = data_root / "bvh" / "bandai_namco_motion_1.tar.xz"
    if not archive.is_file():
        pytest.skip(f"{archive} not found")
    out = tmp_path_factory.mktemp("bvh")
    with tarfile.open(archive) as tar:
        member = tar.getmember(f"./{CLIP}")
        member.name = CLIP
        tar.extract(member, out)
    return out / CLIP


@pytest.fixture
def bandai(bpy_addon, scene, bvh_file):
    import addon_utils

    addon_utils.enable("io_anim_bvh")
    assert bpy.ops.import_anim.bvh(filepath=str(bvh_file)) == {"FINISHED"}
    obj = bpy.context.active_object
    assert obj.type == "ARMATURE" and obj.pose.bones["Hips"].rotation_mode == "ZXY"
    scene.frame_set(1)
    return obj


def calibrate(obj):
    """Pose the rig in the SMPL-X zero pose (the automatic guess from its rest geometry) and calibrate from it."""
    assert bpy.ops.dposer.show_zero_pose(source="AUTO") == {"FINISHED"}
    assert bpy.ops.dposer.calibrate_rest(method="POSE") == {"FINISHED"}
    bpy.context.scene.frame_set(bpy.context.scene.frame_current)  # back to the keyed pose


def test_detect_and_calibrate(prefs, bandai, tmp_path):
    rig, det = rp.detect_rig(bandai)
    assert det.preset.id == "bandai_bvh" and len(det.bone_map) == 21
    assert rp.profile_text(bandai)[1].startswith("Calibration needed")
    # uncalibrated: a clear refusal, nothing changed
    before = kf.snapshot(bandai)
    with pytest.raises(RuntimeError, match=r"is not calibrated: its rest pose is not the SMPL-X zero pose"):
        bpy.ops.dposer.clean(frame_start=FIRST, frame_end=LAST)
    after = kf.snapshot(bandai)
    assert set(after) == set(before) and all(np.array_equal(after[k], v) for k, v in before.items())

    calibrate(bandai)
    cal = rp.load_calibration(bandai)
    auto = rm.auto_calibration(rig, det.bone_map, C=rm.armature_up_axes(np.array(bandai.matrix_world)))
    assert set(cal) == set(det.bone_map.values())
    assert max(np.abs(cal[b] - auto[b]).max() for b in auto) < 1e-5  # pose -> calibration round trip (float32 keys)
    assert rp.profile_text(bandai) == ("Rig: Bandai Namco BVH (detected, 21 bones)", "Calibrated (21 bones)")
    # the keyed animation is untouched by posing and calibrating
    after = kf.snapshot(bandai)
    assert all(np.array_equal(after[k], v) for k, v in before.items())

    # stored on the object: saved with the file (appended back from the saved .blend)
    path = tmp_path / "calibrated.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    name = bandai.name
    with bpy.data.libraries.load(str(path)) as (src, dst):
        dst.objects = [name]
    loaded = dst.objects[0]
    try:
        assert loaded.name != name and loaded[rp.CALIBRATION_PROP] == bandai[rp.CALIBRATION_PROP]
    finally:
        bpy.data.objects.remove(loaded)

    # a chosen preset is stored too; clearing goes back to 'needs calibration'
    assert bpy.ops.dposer.calibrate_rest(method="REST", preset="bandai_bvh") == {"FINISHED"}
    assert bandai[rp.PRESET_PROP] == "bandai_bvh" and rp.CALIBRATION_PROP not in bandai
    assert rp.profile_text(bandai) == ("Rig: Bandai Namco BVH (chosen, 21 bones)",
                                       "Calibration needed (rest pose is not a T-pose)")
    with pytest.raises(RuntimeError, match=r"has only 4 of the \d+ bones of the preset 'Mixamo"):
        bpy.ops.dposer.calibrate_rest(method="POSE", preset="mixamo")
    assert bandai[rp.PRESET_PROP] == "bandai_bvh"


def _mapped_parent(j: int, bone_map) -> int:
    a = rm.PARENTS[j]
    while a >= 0 and rm.JOINT_NAMES[a] not in bone_map:
        a = rm.PARENTS[a]
    return a


def test_pose_read_through_calibration_matches_the_rig(prefs, bandai):
    """The rig's keyed pose, read through the bone map and calibration into SMPL-X axis-angle and run through FK on
    the built-in skeleton (dposer.core.kinematics), points every segment (a mapped joint -> its nearest mapped SMPL-X
    ancestor) the way the rig's own posed bone heads do.

    Formulation: the built-in skeleton has other proportions than the Bandai actor, so positions cannot match; the
    segment *directions* in armature space can. A segment whose parent joint has one mapped child (limbs, neck, head,
    spine1 -> spine3 over the unmapped spine2) is aligned exactly by the calibration, so its FK direction must equal
    the rig's to float32 precision (0.05 deg). A parent with several children (pelvis -> hips/spine, chest ->
    neck/collars) is calibrated by a best fit, so its segments differ by the skeletons' proportions: a fixed angle,
    the same on every frame (to 0.05 deg)."""
    import torch
    from dposer.core.kinematics import forward_kinematics

    calibrate(bandai)
    rig, det = rp.detect_rig(bandai)
    ret = rp.retarget_for(bandai, rig, det)
    frames = [FIRST, 90, LAST]
    single, multi = {}, {}
    n_children = {}
    for j in det.bone_map:
        a = _mapped_parent(rm.JOINT_INDEX[j], det.bone_map)
        n_children[a] = n_children.get(a, 0) + 1
    for f in frames:
        bpy.context.scene.frame_set(f)
        heads = {b: np.array(bandai.pose.bones[b].head) for b in det.bone_map.values()}
        aa = ret.smplx_aa_from_basis(kf.read_basis_rotations(bandai, [f], rig.names))
        J = forward_kinematics(torch.from_numpy(aa)).numpy()[0].astype(np.float64)
        for j, b in det.bone_map.items():
            jj = rm.JOINT_INDEX[j]
            a = _mapped_parent(jj, det.bone_map)
            if a < 0:
                continue
            u = heads[b] - heads[det.bone_map[rm.JOINT_NAMES[a]]]
            t = ret.C @ (J[jj] - J[a])
            angle = np.degrees(np.arccos(np.clip(u @ t / np.linalg.norm(u) / np.linalg.norm(t), -1.0, 1.0)))
            (single if n_children[a] == 1 else multi).setdefault(j, []).append(angle)
    assert len(single) == 14 and len(multi) == 6
    for j, angles in single.items():
        assert max(angles) < 0.05, (j, angles)
    for j, angles in multi.items():
        assert np.ptp(angles) < 0.05, (j, angles)
        assert max(angles) < 30.0, (j, angles)  # proportions, not a wrong pose


def test_clean_120_frames(prefs, bandai, monkeypatch):
    calibrate(bandai)
    rig, det = rp.detect_rig(bandai)
    ret = rp.retarget_for(bandai, rig, det)
    before = kf.snapshot(bandai)
    frames = np.arange(FIRST, LAST + 1, dtype=np.float64)
    aa_before = ret.smplx_aa_from_basis(kf.read_basis_rotations(bandai, frames, rig.names))

    writes = []  # one bulk write per F-curve (keyframe_points.foreach_set), no per-frame keyframe_insert
    real_write = kf._write_channel
    monkeypatch.setattr(kf, "_write_channel",
                        lambda fc, f, v, *more: writes.append(fc.data_path) or real_write(fc, f, v, *more))
    args = jobs.CleanJob(bpy.context, FIRST, LAST, 0.5, "body", "", False, 0).args  # the request, from the scene
    assert bpy.ops.dposer.clean(frame_start=FIRST, frame_end=LAST, strength=0.5, lock_selected=False) == {"FINISHED"}
    assert len(writes) == 20 * 3 and len(set(writes)) == 20  # 20 bones (all but Hips) x 3 Euler channels
    backend = session.current_backend()
    # one request for the whole clip: the keyed pose, read through the calibration
    assert set(args["clip"]) == {"global_orient", "body_pose"} and len(args["clip"]["body_pose"]) == 120
    assert np.allclose(rm.joints_from_pose_dict(args["clip"])[:, :22], aa_before[:, :22], atol=1e-5)
    assert args["parts"] == ["body"] and "spine2" in args["lock"] and args["strength"] == 0.5
    expected = rm.joints_from_pose_dict(backend.call("clean", args, timeout=300))

    # reading the keys back gives the backend's cleaned pose (every body joint; spine2 stays at rest)
    aa_after = ret.smplx_aa_from_basis(kf.read_basis_rotations(bandai, frames, rig.names))
    body = range(1, 22)
    R_after = rm.axis_angle_to_matrix(aa_after[:, body])
    R_expected = rm.axis_angle_to_matrix(expected[:, body])
    err = np.linalg.norm(rm.matrix_to_axis_angle(rm.transpose(R_after) @ R_expected), axis=-1)
    assert err.max() < 1e-4, err.max()
    moved = np.linalg.norm(rm.matrix_to_axis_angle(rm.transpose(rm.axis_angle_to_matrix(aa_before[:, body]))
                                                   @ R_expected), axis=-1)
    assert moved.max() < 1e-3  # a clean take: nothing to repair, nothing smoothed

    # Euler curves stay Euler, no curve added; pelvis, root and all locations bit-for-bit; keys outside the range too
    after = kf.snapshot(bandai)
    assert set(after) == set(before)
    assert not any("rotation_quaternion" in dp for dp, _ in after)
    for (dp, i), co in before.items():
        bone = dp.split('"')[1]
        if bone in ("Hips", "joint_Root") or dp.endswith("location"):
            assert np.array_equal(after[(dp, i)], co), (dp, i)
        else:
            # keys outside the range keep their values (the importer leaves handles at 0 on its LINEAR keys;
            # the curve's update() after the write recomputes them)
            outside = (co[:, 0] < FIRST) | (co[:, 0] > LAST)
            assert np.array_equal(after[(dp, i)][outside, :2], co[outside, :2]), (dp, i)
            assert len(after[(dp, i)]) == len(co)  # keys replaced in place, none added


def _body_joints_mm(aa: np.ndarray) -> np.ndarray:
    """(F, 22, 3) body joints (mm) on the built-in skeleton, root orientation zeroed."""
    import torch
    from dposer.core.kinematics import forward_kinematics

    aa = aa.copy()
    aa[:, 0] = 0
    return 1000 * forward_kinematics(torch.from_numpy(aa)).numpy()[:, :22]


def test_clean_repairs_injected_faults_better_than_butterworth(prefs, bandai):
    """Faults from dposer.tasks.faults (spike, pop, knee/elbow bent backwards; no jitter) keyed into a 60-frame stretch of
    the imported take: Clean brings the joints closer to the take than Blender's Butterworth filter on the same
    keys, leaves the unfaulted frames within 1 mm, tags the repaired keys, reports them, and undo restores the
    faulty keys. With no range given, Clean covers the action's frames, not the scene's 1-250."""
    from dposer.tasks import faults

    calibrate(bandai)
    first, last = 61, 120
    job = ops.CleanJob(bpy.context, first, last, 0.5, "body", "", False, 0)
    truth = job.aa.copy()
    model = faults.FaultModel(jitter_deg=0.0, gaps_per_100=0.0, spikes_per_100=3.0, pops_per_100=2.0,
                              limits_per_100=2.0)
    f = faults.inject(truth[:, 1:22].reshape(len(truth), 63), seed=3, model=model)
    driven = [rm.JOINT_INDEX[j] - 1 for j, _ in job.fill if rm.JOINT_INDEX[j] <= 21]
    faulty = truth.copy()
    faulty[:, 1 + np.array(driven)] = f.body_pose.reshape(-1, 21, 3)[:, driven]
    mask = np.zeros_like(f.mask)
    mask[:, driven] = f.mask[:, driven]
    assert mask.any(1).sum() >= 8
    job.apply(bpy.context, job._keys_for(faulty))
    faulty_keys = kf.snapshot(bandai)
    frames = job.frames
    rig = job.rig

    name = bandai.name

    def obj():  # undo replaces the object's Python reference
        return bpy.data.objects[name]

    def read():
        return job.retarget.smplx_aa_from_basis(kf.read_basis_rotations(obj(), frames, rig.names))

    def err(aa, rows=slice(None)):
        return np.linalg.norm(_body_joints_mm(aa)[rows] - _body_joints_mm(truth)[rows], axis=-1).mean()

    e_in = err(read())
    bpy.ops.ed.undo_push(message="faulty")
    assert bpy.ops.dposer.clean(frame_start=first, frame_end=last, lock_selected=False) == {"FINISHED"}
    bpy.ops.ed.undo_push(message="cleaned")
    cleaned = read()
    e_clean = err(cleaned)
    good = ~mask.any(1)
    untouched = np.linalg.norm(_body_joints_mm(cleaned)[good] - _body_joints_mm(faulty)[good], axis=-1)
    tagged = {int(k.co[0]) for fc in kf.Channels(obj()).all() for k in fc.keyframe_points
              if k.type == ops.REPAIRED_KEY_TYPE}
    assert bpy.ops.ed.undo() == {"FINISHED"}
    after_undo = kf.snapshot(obj())
    assert set(after_undo) == set(faulty_keys)
    assert all(np.allclose(after_undo[k], v, atol=1e-6) for k, v in faulty_keys.items())

    graph_butterworth(obj(), None, first, last)  # Blender's default cutoff, on the faulted stretch only
    e_butter = err(read())
    print(f"joint error mm: faulty {e_in:.1f}, Clean {e_clean:.1f}, graph.butterworth_smooth {e_butter:.1f}; "
          f"untouched frames moved max {untouched.max():.3f} mm")
    assert e_clean < 0.5 * e_in and e_clean < e_butter, (e_in, e_clean, e_butter)
    assert untouched.max() < 1.0
    assert tagged and tagged <= set(range(first, last + 1))
    assert set(np.nonzero(mask.any(1))[0] + first) & tagged

    # default range: the action's frames (the importer leaves the scene at 1-250)
    start, end = kf.action_frame_range(obj())
    assert (bpy.context.scene.frame_start, bpy.context.scene.frame_end) != (start, end)
    assert jobs.clean_frame_range(bpy.context) == (start, end)  # what the operator cleans when given no range
    assert bpy.ops.dposer.clean(lock_selected=False) == {"FINISHED"}
