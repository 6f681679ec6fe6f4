"""Fixtures for the add-on tests in real Blender-as-a-module (``bpy`` from PyPI), headless.

Run them in a bpy venv (scripts/setup_blender_venvs.sh):

    .venv-bpy50/bin/python -m pytest -q tests/blender
    .venv-bpy42/bin/python -m pytest -q tests/blender

Without ``bpy`` every test module here skips (``pytest.importorskip`` at the top of each), so the main suite
(``.venv``, no bpy) stays green. Nothing here imports bpy at module level.

Backend: the embedded backend (dposer + torch in this process) and a real subprocess backend (``python -m
dposer.serve`` in ``DPOSER_TEST_PYTHON``, default this interpreter). Checkpoint: ``DPOSER_TEST_CHECKPOINT``, else
the bundled default when ``backend/dposer/weights/default.safetensors`` exists, else a tiny random-weight prior.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ADDON = "blender_dposer"
os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the subprocess backend


def _data_dir():
    env = os.environ.get("DPOSER_DATA")
    p = Path(env) if env else REPO.parent / "shared" / "data"
    return p if (p / "dposer_x").is_dir() else None


@pytest.fixture(scope="session")
def bpy_addon():
    """bpy with the add-on enabled (through addon_utils, so its AddonPreferences exist); disabled at the end."""
    bpy = pytest.importorskip("bpy")
    import addon_utils

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    mod = addon_utils.enable(ADDON, default_set=True)
    assert mod is not None, "addon_utils.enable failed"
    yield bpy
    addon_utils.disable(ADDON, default_set=True)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """``DPOSER_TEST_CHECKPOINT`` when set, else the bundled checkpoint ('' = bundled) when present, else a tiny
    random-weight prior."""
    if os.environ.get("DPOSER_TEST_CHECKPOINT"):
        return os.environ["DPOSER_TEST_CHECKPOINT"]
    if (REPO / "backend" / "dposer" / "weights" / "default.safetensors").is_file():
        return ""
    torch = pytest.importorskip("torch")
    from dposer.core.model import NetConfig, ScoreNet
    from dposer.core.prior import Normalizer, save_prior

    torch.manual_seed(0)
    net = ScoreNet(NetConfig(body_width=32, hand_width=32, face_width=32, fusion_width=32, time_dim=16))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_prior(path, net, Normalizer(torch.zeros(256), torch.ones(256)))
    return str(path)


@pytest.fixture
def prefs(bpy_addon, checkpoint):
    """The add-on's preferences, reset to test defaults (single-threaded backend, test checkpoint)."""
    p = bpy_addon.context.preferences.addons[ADDON].preferences
    p.backend_mode = "EMBEDDED"
    p.python_path = os.environ.get("DPOSER_TEST_PYTHON", sys.executable)
    p.device = "CPU"
    p.threads = 1
    p.checkpoint = checkpoint
    return p


@pytest.fixture
def scene(bpy_addon):
    """An empty scene (objects, armatures, actions and collections removed), frame 1, nothing active."""
    bpy = bpy_addon
    if bpy.context.object is not None and bpy.context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    for coll in (bpy.data.objects, bpy.data.armatures, bpy.data.actions, bpy.data.collections):
        for item in list(coll):
            coll.remove(item)
    sc = bpy.context.scene
    sc.frame_start, sc.frame_end = 1, 250
    sc.frame_set(1)
    return sc


@pytest.fixture(scope="session")
def data_root():
    d = _data_dir()
    if d is None:
        pytest.skip("shared pose data not found (set DPOSER_DATA to ../shared/data)")
    return d


def keyed_quaternions(obj, bone, frames):
    """(F, 4) keyed quaternion values of a bone at the given frames (every channel must be keyed there)."""
    import numpy as np

    from blender_dposer import keyframes as kf

    ch = kf.Channels(obj)
    cols = []
    for i in range(4):
        fc = ch.find(kf.rotation_data_path(bone, "QUATERNION"), i)
        assert fc is not None, (bone, i)
        co = kf.fcurve_keys(fc)
        idx = [int(np.flatnonzero(np.abs(co[:, 0] - f) < 1e-3)[0]) for f in frames]
        cols.append(co[idx, 1])
    return np.stack(cols, -1).astype(np.float64)


def key_pose(obj, aa, first_frame=1):
    """Key every SMPL-X bone's quaternion with plain keyframe_insert (independent of the add-on's writer)."""
    import bpy

    from blender_dposer import rig_math as rm

    for f in range(len(aa)):
        for j, name in enumerate(rm.JOINT_NAMES):
            pb = obj.pose.bones[name]
            pb.rotation_quaternion = [float(x) for x in rm.axis_angle_to_quaternion(aa[f, j])]
            pb.keyframe_insert("rotation_quaternion", frame=first_frame + f)
    bpy.context.scene.frame_set(first_frame)


def unknown_rig():
    """An armature named 'Thing' whose bone names match no bone-map preset, made active."""
    import bpy

    arm = bpy.data.armatures.new("Thing")
    obj = bpy.data.objects.new("Thing", arm)
    bpy.context.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for i, name in enumerate(("Bone", "Bone.001", "tentacle_a", "tentacle_b", "tentacle_c", "wing")):
        eb = arm.edit_bones.new(name)
        eb.head, eb.tail = (0.0, 0.0, 0.2 * i), (0.0, 0.0, 0.2 * i + 0.2)
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


class Event:
    """A window-manager event as an operator's invoke()/modal() reads it (its type)."""

    def __init__(self, type_: str):
        self.type = type_


def start_modal(op_class, call, **props):
    """Start a _JobOperator the way its button does and return the running operator instance: its real invoke() on
    a real instance registers the real timer and modal handler (``_start_modal``). Blender calls execute() for
    INVOKE_DEFAULT in background mode, so for this one call ``op_class.execute`` hands over to invoke(). (Reports
    from a modal() called by hand are not printed, nor can they be intercepted: Blender looks report up in RNA.)"""
    from blender_dposer import operators as ops

    def execute(self, context):
        return self.invoke(context, Event("NONE"))

    real = op_class.execute
    op_class.execute = execute
    try:
        assert call(**props) == {"RUNNING_MODAL"}
    finally:
        op_class.execute = real
    op = ops._Running.op
    assert op is not None and op._timer is not None
    return op


def tick_until_done(op, context, seen=None, ticks=30000):
    """Send TIMER events to the running operator (timers never fire headless) until it stops passing them
    through; ``seen`` collects the progress shown after each tick. ``ticks`` bounds a hang (10 minutes)."""
    import time

    for _ in range(ticks):
        r = op.modal(context, Event("TIMER"))
        if seen is not None:
            seen.append(context.window_manager.dposer_progress)
        if r != {"PASS_THROUGH"}:
            return r
        time.sleep(0.02)
    raise AssertionError(f"{op.bl_idname} still running after {ticks} timer ticks")


def draw_panel(panel_class, context):
    """Draw a panel into a recording layout; returns the (method, args, kwargs) calls it made."""
    calls = []

    class Layout:
        def __getattr__(self, name):
            def f(*a, **kw):
                calls.append((name, a, kw))
                return Layout()
            return f

    panel_class.draw(type("P", (), {"layout": Layout()})(), context)
    return calls


def scene_snapshot():
    """Everything the DPoser operators may touch, for 'the scene is unchanged' checks: objects (type, location,
    parent, collections, custom properties, pose rotation values, every F-curve key with all its attributes),
    collections, and actions (name, fake user, users)."""
    import bpy
    from blender_dposer import keyframes as kf

    snap = {"collections": sorted(c.name for c in bpy.data.collections),
            "actions": sorted((a.name, a.use_fake_user, a.users) for a in bpy.data.actions), "objects": {}}
    for o in bpy.data.objects:
        entry = {"type": o.type, "location": tuple(o.location), "parent": o.parent.name if o.parent else None,
                 "collections": sorted(c.name for c in o.users_collection),
                 "props": {k: str(o[k]) for k in o.keys()},
                 "action": o.animation_data.action.name if o.animation_data and o.animation_data.action else None}
        if o.type == "ARMATURE":
            entry["pose"] = [tuple(pb.rotation_quaternion) + tuple(pb.rotation_euler) + tuple(pb.rotation_axis_angle)
                             + tuple(pb.location) for pb in o.pose.bones]
            entry["channels"] = {(fc.data_path, fc.array_index): {a: v.tolist() for a, v in
                                                                   kf.key_attributes(fc).items()}
                                 for fc in kf.Channels(o).all()}
            entry["keys"] = {k: v.tolist() for k, v in kf.snapshot(o).items()}
        snap["objects"][o.name] = entry
    return snap


def assert_scene_unchanged(before):
    after = scene_snapshot()
    assert after["collections"] == before["collections"]
    assert after["actions"] == before["actions"]
    assert set(after["objects"]) == set(before["objects"])
    for name, entry in before["objects"].items():
        for key, value in entry.items():
            assert after["objects"][name][key] == value, (name, key)
