"""Out-of-range operator values from scripts are refused with a report and the scene unchanged, not clamped;
the ends of each range are accepted and take effect; the panel and the operators take defaults and ranges from one
declaration (params.py)."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="needs Blender's bpy module (scripts/setup_blender_venvs.sh)")
pytest.importorskip("dposer", reason="the embedded backend needs dposer + torch in this Python")

from blender_dposer import keyframes as kf  # noqa: E402
from blender_dposer import params as P  # noqa: E402

from .conftest import key_pose, keyed_quaternions  # noqa: E402


@pytest.fixture
def posed(bpy_addon, scene, prefs):
    assert bpy.ops.dposer.add_armature() == {"FINISHED"}
    obj = bpy.context.active_object
    key_pose(obj, np.random.default_rng(3).normal(scale=0.2, size=(3, 55, 3)))
    return obj


@pytest.mark.parametrize("op, kwargs, message", [
    ("clean", {"strength": 5.0, "frame_start": 1, "frame_end": 3}, r"strength must be in \[0, 1\], got 5"),
    ("clean", {"strength": -0.5, "frame_start": 1, "frame_end": 3}, r"strength must be in \[0, 1\]"),
    ("vary", {"count": 0}, r"count must be in \[1, 1000\], got 0"),
    ("vary", {"count": 5000}, r"count must be in \[1, 1000\], got 5000"),
    ("vary", {"strength": 1.5}, r"strength must be in \[0, 1\]"),
    ("vary", {"spacing": -1.0}, r"spacing must be in \[0, inf\]"),
    ("complete", {"hypotheses": 0}, r"hypotheses must be in \[1, 32\], got 0"),
    ("complete", {"hypotheses": 1000}, r"hypotheses must be in \[1, 32\], got 1000"),
    ("complete", {"seed": -1}, r"seed must be in \[0, "),
    ("refine", {"strength": 0.0}, r"strength must be in \(0, 1\], got 0"),
    ("refine", {"strength": 2.0}, r"strength must be in \(0, 1\]"),
    ("random_pose", {"seed": -3}, r"seed must be in \[0, "),
])
def test_out_of_range_is_refused_and_scene_unchanged(posed, op, kwargs, message):
    objects, actions = set(bpy.data.objects.keys()), set(bpy.data.actions.keys())
    before = kf.snapshot(posed)
    with pytest.raises(RuntimeError, match=message):  # the operator's ERROR report, raised by bpy.ops
        getattr(bpy.ops.dposer, op)(**kwargs)
    assert set(bpy.data.objects.keys()) == objects and set(bpy.data.actions.keys()) == actions
    after = kf.snapshot(posed)
    assert set(after) == set(before) and all(np.array_equal(after[k], v) for k, v in before.items())


def test_range_ends_are_accepted_and_take_effect(bpy_addon, scene, prefs):
    """Clean at strength 1 repairs a spike; Variations at strength 0 copy the pose."""
    from blender_dposer import rig_math as rm

    assert bpy.ops.dposer.add_armature() == {"FINISHED"}
    obj = bpy.context.active_object
    t = np.linspace(0, 1, 32)[:, None, None]
    truth = 0.2 * np.sin(2 * np.pi * t + np.random.default_rng(3).uniform(0, 6, (1, 55, 3)))
    spiked = truth.copy()
    knee = rm.JOINT_INDEX["left_knee"]
    spiked[10, knee, 0] += 0.6  # frame 11
    key_pose(obj, spiked)
    frames = list(range(1, 33))

    def angle(a, b):  # radians between the keyed quaternions and axis-angle poses
        q = np.stack([rm.axis_angle_to_quaternion(x) for x in b])
        return 2 * np.arccos(np.clip(np.abs((a * q).sum(-1)), 0, 1))

    assert bpy.ops.dposer.clean(strength=1.0, frame_start=1, frame_end=32) == {"FINISHED"}
    err = angle(keyed_quaternions(obj, "left_knee", frames), truth[:, knee])
    assert err[10] < np.radians(1) and err.max() < np.radians(1), err  # 34 degrees off before
    scene.frame_set(5)
    objects = set(bpy.data.objects.keys())
    assert bpy.ops.dposer.vary(count=1, strength=0.0) == {"FINISHED"}
    (made,) = set(bpy.data.objects.keys()) - objects
    for j in ("left_knee", "spine2", "right_wrist", "jaw"):
        a, b = keyed_quaternions(bpy.data.objects[made], j, [5]), keyed_quaternions(obj, j, [5])
        assert np.abs(np.abs((a * b).sum(-1)) - 1).max() < 1e-6, j


def test_panel_and_operators_share_defaults_and_ranges(bpy_addon):
    settings = bpy.context.scene.dposer_settings
    props = settings.bl_rna.properties
    pairs = [("hypotheses", "complete", "hypotheses", P.HYPOTHESES), ("preview", "complete", "preview",
             P.COMPLETE_PREVIEW), ("refine_strength", "refine", "strength", P.REFINE_STRENGTH),
             ("clean_strength", "clean", "strength", P.CLEAN_STRENGTH), ("vary_count", "vary", "count", P.VARY_COUNT),
             ("vary_strength", "vary", "strength", P.VARY_STRENGTH), ("seed", "complete", "seed", P.SEED)]
    for panel_name, op, op_name, param in pairs:
        op_prop = getattr(bpy.ops.dposer, op).get_rna_type().properties[op_name]
        assert props[panel_name].default == op_prop.default == pytest.approx(param.default), panel_name
        if param.hi is not None:
            assert props[panel_name].soft_max == op_prop.soft_max == param.hi, panel_name
            assert props[panel_name].hard_max == param.hi  # the panel's UI input never leaves the range
        if param.lo is not None:
            assert props[panel_name].soft_min == pytest.approx(op_prop.soft_min) == pytest.approx(param.soft_min)
    # the panel cannot hold a refine strength the job refuses
    settings.refine_strength = 0.0
    P.REFINE_STRENGTH.check(settings.refine_strength)
