"""Undo of the data-changing operators in real bpy: Calibrate Rest, Clean and a preview step each come back out
exactly with one undo.

What is verified, precisely: every one of these operators declares bl_options {'REGISTER', 'UNDO'} (Blender pushes
one undo step after an UNDO operator run from the UI; a modal run pushes it when it returns FINISHED). Headless,
operators called from Python push no step of their own, so each test brackets the call with ``ed.undo_push`` (the
step Blender would push) and then runs ``ed.undo``: the scene after undo equals the snapshot before the call
(objects, collections, actions, custom properties, pose values, every key attribute)."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="needs Blender's bpy module (scripts/setup_blender_venvs.sh)")
pytest.importorskip("dposer", reason="the embedded backend needs dposer + torch in this Python")

from blender_dposer import operators as ops  # noqa: E402
from blender_dposer import preview  # noqa: E402

from .conftest import assert_scene_unchanged, key_pose, scene_snapshot  # noqa: E402


@pytest.fixture
def posed(prefs, bpy_addon, scene):
    prefs.backend_mode = "EMBEDDED"
    assert bpy.ops.dposer.add_armature() == {"FINISHED"}
    obj = bpy.context.active_object
    key_pose(obj, np.random.default_rng(2).normal(scale=0.2, size=(5, 55, 3)))
    return obj


def undo_round_trip(run):
    before = scene_snapshot()
    bpy.ops.ed.undo_push(message="before")
    assert run() == {"FINISHED"}
    bpy.ops.ed.undo_push(message="after")
    changed = scene_snapshot()
    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert_scene_unchanged(before)
    return before, changed


def test_operators_declare_one_undo_step():
    for cls in (ops.DPOSER_OT_calibrate_rest, ops.DPOSER_OT_show_zero_pose, ops.DPOSER_OT_complete,
                ops.DPOSER_OT_clean, ops.DPOSER_OT_vary, preview.DPOSER_OT_preview_next,
                preview.DPOSER_OT_preview_previous, preview.DPOSER_OT_preview_accept,
                preview.DPOSER_OT_preview_cancel):
        assert {"REGISTER", "UNDO"} <= set(cls.bl_options), cls.__name__


def test_undo_calibrate(posed):
    _, changed = undo_round_trip(lambda: bpy.ops.dposer.calibrate_rest(method="AUTO"))
    assert "dposer_calibration" in changed["objects"]["DPoser"]["props"]
    assert "dposer_calibration" not in bpy.data.objects["DPoser"]


def test_undo_clean(posed):
    before, changed = undo_round_trip(lambda: bpy.ops.dposer.clean(frame_start=1, frame_end=5, lock_selected=False))
    assert changed["objects"]["DPoser"]["keys"] != before["objects"]["DPoser"]["keys"]


def test_undo_preview_step(posed):
    assert bpy.ops.dposer.complete(parts="right_hand", hypotheses=2, preview=True) == {"FINISHED"}
    _, changed = undo_round_trip(lambda: bpy.ops.dposer.preview_next())
    assert '"index": 1' in changed["objects"]["DPoser"]["props"]["dposer_preview"]
    # undone: back on entry 0, the best estimate (the mean of the hypotheses)
    assert preview.status(bpy.data.objects["DPoser"]) == "Best estimate: mean of 2 hypotheses"
