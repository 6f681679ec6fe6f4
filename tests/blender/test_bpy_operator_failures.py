"""Failure paths of the calibration, clean, vary and preview operators in real bpy: backend missing, backend killed
mid-operation, unknown rig, nothing selected, bad input. Each gives a clear report and leaves the scene exactly as
it was (objects, collections, actions, custom properties, pose values and every key attribute compared)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="needs Blender's bpy module (scripts/setup_blender_venvs.sh)")
pytest.importorskip("dposer", reason="the embedded backend needs dposer + torch in this Python")

from blender_dposer import session as prf  # noqa: E402

from .conftest import assert_scene_unchanged, key_pose, scene_snapshot, unknown_rig  # noqa: E402

N_FRAMES = 60


@pytest.fixture
def posed(prefs, bpy_addon, scene):
    assert bpy.ops.dposer.add_armature() == {"FINISHED"}
    obj = bpy.context.active_object
    rng = np.random.default_rng(5)
    key_pose(obj, rng.normal(scale=0.2, size=(N_FRAMES, 55, 3)))
    return obj


def fails(match, op, **kw):
    with pytest.raises(RuntimeError, match=match):
        getattr(bpy.ops.dposer, op)(**kw)


NEW_JOBS = [("clean", {"frame_start": 1, "frame_end": N_FRAMES}), ("vary", {"count": 2}),
            ("vary", {"count": 2, "mode": "ACTIONS"}),
            ("complete", {"parts": "right_hand", "hypotheses": 2, "preview": True})]


def test_backend_missing(prefs, posed):
    prefs.backend_mode = "SUBPROCESS"
    prefs.python_path = "/nonexistent/venv/bin/python"
    before = scene_snapshot()
    for op, kw in NEW_JOBS:
        fails(r"DPoser: backend Python interpreter not found: '/nonexistent/venv/bin/python'", op, **kw)
        assert_scene_unchanged(before)


@pytest.mark.parametrize("op,kw", [("clean", {"frame_start": 1, "frame_end": N_FRAMES}),
                                   ("vary", {"count": 64, "strength": 1.0})])
def test_backend_killed_mid_operation(prefs, posed, op, kw):
    prefs.backend_mode = "SUBPROCESS"
    backend = prf.get_backend(bpy.context)
    backend.wait_ready()
    before = scene_snapshot()
    killed = []

    def killer():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if op in backend.outstanding.values():
                backend.proc.kill()
                killed.append(True)
                return
            time.sleep(0.002)

    th = threading.Thread(target=killer)
    th.start()
    try:
        fails(r"DPoser: .*the backend process was killed \(SIGKILL", op, **kw)
    finally:
        th.join()
    assert killed
    assert_scene_unchanged(before)


def test_unknown_rig(prefs, bpy_addon, scene):
    unknown_rig()
    before = scene_snapshot()
    for op, kw in NEW_JOBS + [("show_zero_pose", {})]:
        fails(r"DPoser: Unknown rig 'Thing': its bone names \(Bone, Bone.001, tentacle_a, ", op, **kw)
    fails(r"DPoser: Unknown rig 'Thing': no bone-map preset matches its bone names; choose one", "calibrate_rest")
    fails(r"the rig has only 0 of the \d+ bones of the preset 'Mixamo'", "calibrate_rest", preset="mixamo")
    assert_scene_unchanged(before)


def test_nothing_selected(prefs, posed):
    before = scene_snapshot()
    ops = NEW_JOBS + [("calibrate_rest", {}), ("show_zero_pose", {})]
    bpy.context.view_layer.objects.active = None
    for op, kw in ops:
        fails("No active object: select an armature", op, **kw)
    for op in ("preview_next", "preview_previous", "preview_accept", "preview_cancel"):
        fails("no pending DPoser preview", op)
    empty = bpy.data.objects.new("Empty", None)
    bpy.context.collection.objects.link(empty)
    bpy.context.view_layer.objects.active = empty
    for op, kw in ops:
        fails("'Empty' is not an armature", op, **kw)
    bpy.data.objects.remove(empty)
    assert_scene_unchanged(before)


def test_bad_input(prefs, posed):
    prefs.backend_mode = "EMBEDDED"
    before = scene_snapshot()
    fails(r"Clean needs at least 3 frames, got 1-2", "clean", frame_start=1, frame_end=2)
    fails(r"frame_end \(1\) is before frame_start \(5\)", "clean", frame_start=5, frame_end=1)
    fails(r"unknown part/group/joint name\(s\): 'bdy'", "clean", parts="bdy", frame_start=1, frame_end=5)
    fails(r"lock: 'left_elbw' is neither a mapped bone of 'DPoser' nor an SMPL-X part", "clean",
          lock="left_elbw", frame_start=1, frame_end=5)
    fails(r"Nothing to clean on 'DPoser'.*no unlocked bone in \['left_arm'\]", "clean", parts="left_arm",
          lock="left_arm", frame_start=1, frame_end=5)
    fails(r"Nothing to vary on 'DPoser'.*every body, jaw and hand bone is locked", "vary", lock="all")
    fails(r"lock: 'tail' is neither", "vary", lock="body, tail")
    assert_scene_unchanged(before)


def test_everything_selected_is_locked_with_a_hint(prefs, posed):
    """Clean in Pose Mode with every bone selected: all locked, and the message says why."""
    before = scene_snapshot()
    bpy.ops.object.mode_set(mode="POSE")
    try:
        bpy.ops.pose.select_all(action="SELECT")
        fails(r"Nothing to clean on 'DPoser'.*in Pose Mode the selected bones are locked: deselect them or turn off "
              r"'Lock selected bones'", "clean", frame_start=1, frame_end=5)
        bpy.ops.pose.select_all(action="DESELECT")
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    assert_scene_unchanged(before)
